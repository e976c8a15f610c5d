// reference consumers ← relay: @atproto/sync and the Python client each read
// the relay's firehose from cursor 0 (replaying what the first scenario left)
// and stay on it live while the reference client writes another round. Every
// frame must decode, every commit and sync verify against the local PLC, and
// both must see exactly the relay's stream.
import { countByType } from '../lib/compare.mjs'
import { checkRelayed, readAllSources, writeProblems } from '../lib/expect.mjs'
import { startSyncConsumer } from '../lib/firehose.mjs'
import { finishPythonConsumer, startPythonConsumer } from '../lib/python.mjs'
import { socialRound } from '../lib/traffic.mjs'

export const name = 'reference consumers <- relay'

export async function run(net, world, { procs, python }) {
  if (!world.referenceAccounts) throw new Error('needs the accounts of "relay <- reference PDS"')
  const sync = startSyncConsumer(net.relay.ws, net.plcUrl)
  const py = await startPythonConsumer(procs, 'python-relay', python, { ws: net.relay.ws, plcUrl: net.plcUrl })

  await socialRound(world.referenceAccounts, 1)

  const source = await readAllSources(net)
  const relayed = await checkRelayed(net.relay, source)
  const syncResult = await sync.finish(relayed.read.events)
  const pyResult = await finishPythonConsumer(procs, py, relayed.read.events)
  return {
    problems: [
      ...writeProblems(world.referenceAccounts, source),
      ...relayed.problems,
      ...syncResult.problems.map((p) => `@atproto/sync: ${p}`),
      ...pyResult.problems.map((p) => `python atproto: ${p}`),
    ],
    figures: {
      'relay stream': JSON.stringify(countByType(relayed.read.events)),
      '@atproto/sync events': `${syncResult.handled} of ${syncResult.want}`,
      'python atproto: frames decoded, signatures verified, idle reconnects': `${pyResult.decoded}, ${pyResult.verified}, ${pyResult.reconnects}`,
    },
  }
}
