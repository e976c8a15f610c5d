// account takedown and deletion ← reference PDS: the PDS's admin takes an
// account down, reverses it, then deletes the account. After each step the
// relay, once it has passed the PDS's events on, must report the account's
// status as the spec's table says (getRepoStatus) and refuse or serve its
// repo accordingly (getRepo), through the reference client; its stream must
// still hold exactly the PDSes' events.
import { AtpAgent } from '@atproto/api'
import { checkRelayed, readAllSources, readRelayAfter, relayExpected } from '../lib/expect.mjs'
import { createAccounts } from '../lib/traffic.mjs'

export const name = 'account takedown and deletion <- reference PDS'

/** The XRPC error name a call fails with, or null when it succeeds. */
async function errorName(call) {
  try {
    await call()
    return null
  } catch (err) {
    return err.error ?? String(err)
  }
}

export async function run(net) {
  const pds = net.refPds[0]
  const [grace] = await createAccounts(pds.url, ['grace'])
  await grace.agent.post({ text: 'soon gone' })

  const admin = new AtpAgent({ service: pds.url })
  const auth = {
    encoding: 'application/json',
    headers: { authorization: `Basic ${Buffer.from(`admin:${pds.adminPassword}`).toString('base64')}` },
  }
  const subject = { $type: 'com.atproto.admin.defs#repoRef', did: grace.did }
  const relay = new AtpAgent({ service: net.relay.url })

  const steps = [
    {
      step: 'takedown',
      act: () => admin.com.atproto.admin.updateSubjectStatus({ subject, takedown: { applied: true, ref: 'interop' } }, auth),
      status: { active: false, status: 'takendown' },
      getRepo: 'RepoTakendown',
    },
    {
      step: 'takedown reversed',
      act: () => admin.com.atproto.admin.updateSubjectStatus({ subject, takedown: { applied: false } }, auth),
      status: { active: true },
      getRepo: null,
    },
    {
      step: 'deletion',
      act: () => admin.com.atproto.admin.deleteAccount({ did: grace.did }, auth),
      status: { active: false, status: 'deleted' },
      getRepo: 'RepoNotFound',
    },
  ]
  const problems = []
  for (const { step, act, status, getRepo } of steps) {
    await act()
    const read = await readRelayAfter(net.relay, relayExpected(await readAllSources(net)).expected)
    if (read.timedOut) problems.push(`${step}: the relay did not pass the PDS's events on`)
    const got = (await relay.com.atproto.sync.getRepoStatus({ did: grace.did })).data
    const { did, rev, ...shown } = got
    if (JSON.stringify(shown) !== JSON.stringify(status)) {
      problems.push(`${step}: relay getRepoStatus ${JSON.stringify(got)}, expected ${JSON.stringify(status)}`)
    }
    const refused = await errorName(() => relay.com.atproto.sync.getRepo({ did: grace.did }))
    if (refused !== getRepo) {
      problems.push(`${step}: relay getRepo ${refused ? `fails with ${refused}` : 'serves the repo'}, expected ${getRepo ?? 'the repo'}`)
    }
  }
  const relayed = await checkRelayed(net.relay, await readAllSources(net))
  const graceEvents = relayed.read.events.filter((e) => e.did === grace.did)
  return {
    problems: [...problems, ...relayed.problems],
    figures: {
      "the account's events on the relay": graceEvents.map((e) => (e.type === 'account' ? `account:${e.status ?? 'active'}` : e.type)).join(' '),
    },
  }
}
