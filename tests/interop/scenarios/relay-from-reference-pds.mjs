// relay ← reference PDS: accounts on two reference PDSes, written to by the
// reference client; the relay crawls one before the writes (live) and the
// other after them (from cursor 0). Its stream must hold every event each PDS
// emitted, per repo in order and unchanged, but for those the sync spec says
// to ignore (rev not above the last; counted by the relay), and
// @atproto/sync must accept every frame of it.
import { countByType } from '../lib/compare.mjs'
import { checkRelayed, readAllSources, writeProblems } from '../lib/expect.mjs'
import { startSyncConsumer } from '../lib/firehose.mjs'
import { requestCrawl } from '../lib/network.mjs'
import { batchWrites, createAccounts, lifecycle, socialRound } from '../lib/traffic.mjs'

export const name = 'relay <- reference PDS'

export async function run(net, world) {
  const [a, b] = net.refPds
  await requestCrawl(net.relay, a.hostname)
  world.onA = await createAccounts(a.url, ['alice', 'bob'])
  world.onB = await createAccounts(b.url, ['carol', 'dave'])
  world.referenceAccounts = [...world.onA, ...world.onB]
  await socialRound(world.referenceAccounts, 0)
  await lifecycle(world.onA[1], 'bobby')
  await lifecycle(world.onB[1], 'davey')
  await batchWrites(world.onA[0], 20)
  await requestCrawl(net.relay, b.hostname)

  const source = await readAllSources(net)
  const relayed = await checkRelayed(net.relay, source)
  const sync = await startSyncConsumer(net.relay.ws, net.plcUrl).finish(relayed.read.events)
  return {
    problems: [
      ...writeProblems(world.referenceAccounts, source),
      ...relayed.problems,
      ...sync.problems.map((p) => `@atproto/sync: ${p}`),
    ],
    figures: {
      'events emitted by the PDSes': JSON.stringify(countByType(source)),
      'events on the relay': relayed.read.events.length,
      'ignored as the spec says (rev not above the last)': JSON.stringify(countByType(relayed.ignored)),
      '@atproto/sync events (verified ops + identity/account/sync)': `${sync.handled} of ${sync.want}`,
    },
  }
}
