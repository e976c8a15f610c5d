// reference client ← relay sync endpoints: what an AppView backfilling
// through the relay asks of it, with @atproto/api. listRepos (paged) names
// exactly the accounts of the earlier scenarios with each one's current head;
// getLatestCommit and getRepoStatus agree with the account's own PDS; getRepo
// (a redirect to that PDS) yields a repo @atproto/repo verifies against the
// PLC's key, at that head.
import { AtpAgent } from '@atproto/api'
import { verifyRepoCar } from '@atproto/repo'
import { plcResolver } from '../lib/resolver.mjs'

export const name = 'reference client <- relay sync endpoints'

export async function run(net, world) {
  if (!world.referenceAccounts || !world.pdsModeAccounts) {
    throw new Error('needs the accounts of the earlier scenarios')
  }
  const accounts = [...world.referenceAccounts, ...world.pdsModeAccounts]
  const relay = new AtpAgent({ service: net.relay.url })
  const resolver = plcResolver(net.plcUrl)
  const problems = []

  // Small pages, so the cursor is exercised.
  const listed = new Map()
  let cursor
  let pages = 0
  do {
    const page = await relay.com.atproto.sync.listRepos({ limit: 2, cursor })
    for (const repo of page.data.repos) {
      if (listed.has(repo.did)) problems.push(`listRepos names ${repo.did} twice`)
      listed.set(repo.did, repo)
    }
    cursor = page.data.cursor
    pages += 1
  } while (cursor && pages < 100)
  if (listed.size !== accounts.length) {
    problems.push(`listRepos names ${listed.size} repos; the scenarios made ${accounts.length} accounts`)
  }

  let verified = 0
  for (const a of accounts) {
    const head = (await a.agent.com.atproto.sync.getLatestCommit({ did: a.did })).data
    const latest = (await relay.com.atproto.sync.getLatestCommit({ did: a.did })).data
    if (latest.cid !== head.cid || latest.rev !== head.rev) {
      problems.push(`${a.handle}: relay getLatestCommit ${latest.rev} ${latest.cid}, its PDS ${head.rev} ${head.cid}`)
    }
    const repo = listed.get(a.did)
    if (!repo || repo.head !== head.cid || repo.rev !== head.rev || repo.active !== true) {
      problems.push(`${a.handle}: listRepos entry ${JSON.stringify(repo)}, its PDS is at ${head.rev} ${head.cid}`)
    }
    const status = (await relay.com.atproto.sync.getRepoStatus({ did: a.did })).data
    if (status.active !== true || status.rev !== head.rev) {
      problems.push(`${a.handle}: relay getRepoStatus ${JSON.stringify(status)}, its PDS is at ${head.rev}`)
    }
    const car = await relay.com.atproto.sync.getRepo({ did: a.did })
    const key = await resolver.did.resolveAtprotoKey(a.did)
    try {
      const repoData = await verifyRepoCar(car.data, a.did, key)
      if (repoData.commit.rev !== head.rev) {
        problems.push(`${a.handle}: getRepo through the relay is at ${repoData.commit.rev}, not ${head.rev}`)
      } else {
        verified += 1
      }
    } catch (err) {
      problems.push(`${a.handle}: getRepo through the relay does not verify: ${err.message}`)
    }
  }
  return {
    problems,
    figures: {
      'repos listed (pages of 2)': `${listed.size} in ${pages} pages`,
      'repo exports verified through the relay': `${verified} of ${accounts.length}`,
    },
  }
}
