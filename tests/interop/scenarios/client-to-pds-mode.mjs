// reference client → PDS mode: @atproto/api against `atrelay pds` (whose
// accounts live at the reference PLC): create accounts, log in, write, read
// back, upload and fetch a blob, refresh the session, change a handle,
// deactivate and reactivate, and export the repo, which @atproto/repo must
// verify. @atproto/sync and the Python client read
// that PDS's firehose from cursor 0, live through the writes.
import { AtpAgent } from '@atproto/api'
import { verifyRepoCar } from '@atproto/repo'
import { isDeepStrictEqual } from 'node:util'
import { countByType } from '../lib/compare.mjs'
import { readSource, writeProblems } from '../lib/expect.mjs'
import { startSyncConsumer } from '../lib/firehose.mjs'
import { finishPythonConsumer, startPythonConsumer } from '../lib/python.mjs'
import { plcResolver } from '../lib/resolver.mjs'
import { batchWrites, createAccounts, lifecycle, PASSWORD, socialRound } from '../lib/traffic.mjs'

export const name = 'reference client -> PDS mode'

// A 1x1 PNG.
const PNG = Buffer.from(
  'iVBORw0KGgoAAAANSUhEUgAAAAEAAAABCAYAAAAfFcSJAAAADUlEQVR42mP8z8BQDwAEhQGAhKmMIQAAAABJRU5ErkJggg==',
  'base64',
)
const POST = 'app.bsky.feed.post'

/** Checks `cond`, recording `what` as a problem when it fails. */
function expect(problems, cond, what) {
  if (!cond) problems.push(what)
}

export async function run(net, world, { procs, python }) {
  const pds = net.ourPds
  const problems = []
  const sync = startSyncConsumer(pds.ws, net.plcUrl)
  const py = await startPythonConsumer(procs, 'python-pds-mode', python, { ws: pds.ws, plcUrl: net.plcUrl })

  const accounts = await createAccounts(pds.url, ['erin', 'frank'])
  world.pdsModeAccounts = accounts
  const [erin] = accounts

  // A second session by password, as a returning user's client makes.
  const agent = new AtpAgent({ service: pds.url })
  await agent.login({ identifier: erin.handle, password: PASSWORD })
  erin.agent = agent
  const session = await agent.com.atproto.server.getSession()
  expect(problems, session.data.did === erin.did, `getSession says ${session.data.did}, not ${erin.did}`)

  const record = { $type: POST, text: 'hello from the reference client', createdAt: new Date().toISOString() }
  const created = await agent.com.atproto.repo.createRecord({ repo: erin.did, collection: POST, record })
  erin.writes += 1
  const rkey = created.data.uri.split('/').pop()
  const read = await agent.com.atproto.repo.getRecord({ repo: erin.did, collection: POST, rkey })
  expect(problems, read.data.cid === created.data.cid, `getRecord cid ${read.data.cid}, createRecord said ${created.data.cid}`)
  expect(problems, isDeepStrictEqual(read.data.value, record), `getRecord value ${JSON.stringify(read.data.value)}`)

  const uploaded = await agent.uploadBlob(PNG, { encoding: 'image/png' })
  const blob = uploaded.data.blob
  expect(problems, blob.size === PNG.length && blob.mimeType === 'image/png', `uploadBlob said ${JSON.stringify(blob)}`)
  await agent.post({
    text: 'with a picture',
    embed: { $type: 'app.bsky.embed.images', images: [{ image: blob, alt: 'one pixel' }] },
  })
  erin.writes += 1
  const fetched = await agent.com.atproto.sync.getBlob({ did: erin.did, cid: blob.ref.toString() })
  expect(problems, Buffer.from(fetched.data).equals(PNG), `getBlob returned ${fetched.data.length} bytes, not the upload`)

  // Refresh rotation: the new tokens must work for a write.
  await agent.sessionManager.refreshSession()
  await agent.post({ text: 'after a session refresh' })
  erin.writes += 1

  await socialRound(accounts, 0)
  await batchWrites(erin, 20)
  await lifecycle(accounts[1], 'franky')

  // The repo export must verify against the key the PLC publishes, and hold
  // exactly the records listRecords lists.
  const resolver = plcResolver(net.plcUrl)
  for (const a of accounts) {
    const car = await a.agent.com.atproto.sync.getRepo({ did: a.did })
    const key = await resolver.did.resolveAtprotoKey(a.did)
    const verified = await verifyRepoCar(car.data, a.did, key)
    const described = await a.agent.com.atproto.repo.describeRepo({ repo: a.did })
    let listed = 0
    for (const collection of described.data.collections) {
      const list = await a.agent.com.atproto.repo.listRecords({ repo: a.did, collection, limit: 100 })
      listed += list.data.records.length
    }
    expect(problems, verified.creates.length === listed, `${a.handle}: getRepo holds ${verified.creates.length} records, listRecords lists ${listed}`)
  }

  const source = await readSource(pds)
  const syncResult = await sync.finish(source)
  const pyResult = await finishPythonConsumer(procs, py, source)
  return {
    problems: [
      ...problems,
      ...writeProblems(accounts, source),
      ...syncResult.problems.map((p) => `@atproto/sync: ${p}`),
      ...pyResult.problems.map((p) => `python atproto: ${p}`),
    ],
    figures: {
      'PDS-mode firehose': JSON.stringify(countByType(source)),
      '@atproto/sync events': `${syncResult.handled} of ${syncResult.want}`,
      'python atproto: frames decoded, signatures verified, idle reconnects': `${pyResult.decoded}, ${pyResult.verified}, ${pyResult.reconnects}`,
    },
  }
}
