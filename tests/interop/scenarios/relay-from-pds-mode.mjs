// relay ← PDS mode: `atrelay pds` asked the relay to crawl it (its
// --crawlers) after its first event. The relay's stream must hold every
// event that PDS emitted, per repo in order and unchanged, beside the
// reference PDSes' events (as the first scenario states them) and nothing
// else; @atproto/sync must accept all of it.
import { countByType } from '../lib/compare.mjs'
import { checkRelayed, readAllSources } from '../lib/expect.mjs'
import { startSyncConsumer } from '../lib/firehose.mjs'

export const name = 'relay <- PDS mode'

export async function run(net, world) {
  if (!world.pdsModeAccounts) throw new Error('needs the writes of "reference client -> PDS mode"')
  const all = await readAllSources(net)
  const oursDids = new Set(world.pdsModeAccounts.map((a) => a.did))
  const ours = all.filter((e) => oursDids.has(e.did))
  const relayed = await checkRelayed(net.relay, all)
  const sync = await startSyncConsumer(net.relay.ws, net.plcUrl).finish(relayed.read.events)
  const hosts = await (await fetch(`${net.relay.url}/xrpc/com.atproto.sync.listHosts?limit=100`)).json()
  const names = (hosts.hosts ?? []).map((h) => h.hostname)
  return {
    problems: [
      ...(names.includes(net.ourPds.hostname) ? [] : [`listHosts does not name ${net.ourPds.hostname}: ${names}`]),
      ...relayed.problems,
      ...sync.problems.map((p) => `@atproto/sync: ${p}`),
    ],
    figures: {
      'PDS-mode events relayed': `${relayed.read.events.filter((e) => oursDids.has(e.did)).length} of ${ours.length}`,
      'relay stream': JSON.stringify(countByType(relayed.read.events)),
      '@atproto/sync events': `${sync.handled} of ${sync.want}`,
    },
  }
}
