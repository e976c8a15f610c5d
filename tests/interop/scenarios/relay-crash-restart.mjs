// relay crash and restart: a reference consumer is live on the relay when
// the relay is killed (SIGKILL); the reference client writes on every PDS
// while it is down; it restarts on the same data directory and port. It must
// resume each host from its cursor, and the consumer, reconnecting with its
// cursor as @atproto/xrpc-server does, must see every event exactly once:
// nothing it had seen lost or renumbered, nothing repeated, nothing missing.
// A fresh reader from cursor 0 and @atproto/sync must agree.
import { countByType } from '../lib/compare.mjs'
import { checkRelayed, hasAllOf, readAllSources, relayedProblems, relayExpected } from '../lib/expect.mjs'
import { readFirehose, startSyncConsumer } from '../lib/firehose.mjs'
import { socialRound } from '../lib/traffic.mjs'

export const name = 'relay crash and restart, a consumer live across it'

export async function run(net, world, { procs }) {
  if (!world.referenceAccounts || !world.pdsModeAccounts) {
    throw new Error('needs the accounts of the earlier scenarios')
  }
  const target = { done: null }
  const live = readFirehose(net.relay.ws, {
    done: (events) => target.done?.(events) ?? false,
    idleMs: 1500,
    timeoutMs: 120_000,
  })
  // Let it catch up with what is there, so the crash cuts a live stream.
  await new Promise((r) => setTimeout(r, 1500))

  const t0 = Date.now()
  await procs.restart('relay', 'SIGKILL', async () => {
    await socialRound(world.referenceAccounts, 2)
    await socialRound(world.pdsModeAccounts, 1)
  })
  const downSecs = ((Date.now() - t0) / 1000).toFixed(1)

  const source = await readAllSources(net)
  const { expected } = relayExpected(source)
  target.done = hasAllOf(expected)
  const liveRead = await live
  if (liveRead.reconnects === 0) throw new Error('the live consumer never lost its connection: no crash was tested')
  const fresh = await checkRelayed(net.relay, source, { counters: false })
  const sync = await startSyncConsumer(net.relay.ws, net.plcUrl).finish(fresh.read.events)
  return {
    problems: [
      ...relayedProblems(liveRead, expected).map((p) => `live consumer: ${p}`),
      ...fresh.problems.map((p) => `reader from cursor 0: ${p}`),
      ...sync.problems.map((p) => `@atproto/sync: ${p}`),
    ],
    figures: {
      'relay down (killed, writes, restarted)': `${downSecs} s`,
      'live consumer: events, reconnect attempts': `${liveRead.events.length}, ${liveRead.reconnects}`,
      'relay stream': JSON.stringify(countByType(fresh.read.events)),
      '@atproto/sync events': `${sync.handled} of ${sync.want}`,
    },
  }
}
