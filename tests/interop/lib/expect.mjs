// The checks scenarios share: reading a source's whole stream, waiting for a
// relay to have passed all of it on, and the exact counts the reference
// client's writes imply.
import { checkSeqOrder, compareRelayed, unconfirmedHandles } from './compare.mjs'
import { readFirehose } from './firehose.mjs'
import { relayIgnoredStale } from './network.mjs'
import { plcResolver } from './resolver.mjs'

// Every event read from each source so far, by seq.
const emitted = new Map()

/**
 * Everything a PDS has emitted: its firehose from cursor 0 (it is quiet:
 * writes are done), together with what earlier reads saw. A PDS may drop
 * events from its backlog (the reference PDS removes a deleted account's),
 * but a relay that took them live keeps them.
 */
export async function readSource(pds) {
  const r = await readFirehose(pds.ws, { idleMs: 1000, timeoutMs: 30_000 })
  if (r.error || r.timedOut) {
    throw new Error(`reading ${pds.name}'s firehose: ${r.error?.message ?? 'timed out'}`)
  }
  if (!emitted.has(pds.ws)) emitted.set(pds.ws, new Map())
  const seen = emitted.get(pds.ws)
  for (const e of r.events) seen.set(e.seq, e)
  return [...seen.values()].sort((a, b) => a.seq - b.seq)
}

/**
 * Everything every PDS of the network has emitted (see `readSource`): what
 * a relay crawling all of them must account for. A PDS not written to yet
 * adds nothing.
 */
export async function readAllSources(net) {
  const all = []
  for (const pds of [...net.refPds, net.ourPds]) all.push(...(await readSource(pds)))
  await markUnconfirmedHandles(all, net.plcUrl)
  return all
}

/**
 * Marks the `#identity` events whose handle the DID's document at the PLC
 * no longer claims (see `unconfirmedHandles`): a relay deciding them now
 * forwards them without a handle.
 */
async function markUnconfirmedHandles(events, plcUrl) {
  const resolver = plcResolver(plcUrl)
  const current = new Map()
  for (const e of events) {
    if (e.type !== 'identity' || e.handle === null) continue
    if (!current.has(e.did)) {
      const data = await resolver.did.resolveAtprotoData(e.did, true).catch(() => null)
      current.set(e.did, data?.handle ?? null)
    }
    if (current.get(e.did) !== e.handle) unconfirmedHandles.add(e)
  }
}

/**
 * The relay's whole stream from cursor 0, read until every repo in `source`
 * has as many events there as at the source (or 60 s), then 1.5 s more so
 * that extra events show.
 */
export async function readRelayAfter(relay, source) {
  return readFirehose(relay.ws, { done: hasAllOf(source), idleMs: 1500, timeoutMs: 60_000 })
}

/** A predicate: whether a stream has as many events per repo as `source`. */
export function hasAllOf(source) {
  const want = new Map()
  for (const e of source) want.set(e.did, (want.get(e.did) ?? 0) + 1)
  return (events) => {
    const got = new Map()
    for (const e of events) if (want.has(e.did)) got.set(e.did, (got.get(e.did) ?? 0) + 1)
    return [...want].every(([did, n]) => (got.get(did) ?? 0) >= n)
  }
}

/**
 * What a relay must pass on from `source` (one or more PDSes' whole
 * streams): the sync spec's validation checklist says to ignore `#commit`
 * and `#sync` events whose rev is lower than or equal to the last one
 * processed for the DID. The reference PDS emits such a `#sync` (at its last
 * commit's rev) after creating an account and after reactivating one. Returns
 * the events to expect, in source order, and those to expect ignored.
 */
export function relayExpected(source) {
  const lastRev = new Map()
  const expected = []
  const ignored = []
  for (const e of source) {
    if (e.type === 'commit' || e.type === 'sync') {
      const last = lastRev.get(e.did)
      // TIDs sort as strings.
      if (last !== undefined && e.rev <= last) {
        ignored.push(e)
        continue
      }
      lastRev.set(e.did, e.rev)
    }
    expected.push(e)
  }
  return { expected, ignored }
}

/**
 * Problems with what the relay passed on from `source` (everything the relay
 * was asked to crawl): its stream must hold exactly the source's events, per
 * repo in order and field for field, nothing else, with strictly increasing
 * seqs.
 */
export function relayedProblems(read, source) {
  const problems = []
  if (read.events.length !== source.length) {
    problems.push(`the relay's stream has ${read.events.length} events, its sources emitted ${source.length}`)
  }
  if (read.error) problems.push(`relay stream: ${read.error.message}`)
  if (read.timedOut) problems.push('relay stream: timed out before every source event arrived')
  problems.push(...checkSeqOrder(read.events), ...compareRelayed(source, read.events))
  return problems
}

/** Problems where a repo's ops at the source differ from the writes made. */
export function writeProblems(accounts, source) {
  const problems = []
  for (const a of accounts) {
    const ops = source
      .filter((e) => e.did === a.did && e.type === 'commit')
      .reduce((n, e) => n + e.ops.length, 0)
    if (ops !== a.writes) {
      problems.push(`${a.handle} (${a.did}): ${a.writes} writes made, ${ops} ops in the firehose`)
    }
  }
  return problems
}

/**
 * Reads the relay after `source` (every PDS it crawls, whole streams) and
 * returns the problems with what it passed on and what it ignored: exactly
 * `relayExpected(source)`, and (with `counters`) its stale-event counters
 * equal to the number the spec says to ignore.
 */
export async function checkRelayed(relay, source, { counters = true } = {}) {
  const { expected, ignored } = relayExpected(source)
  const read = await readRelayAfter(relay, expected)
  const problems = relayedProblems(read, expected)
  // Counters start at zero with the process: only a relay that has run
  // since the first event can account for all of them.
  const counted = counters ? await relayIgnoredStale(relay) : ignored.length
  if (counted !== ignored.length) {
    problems.push(
      `the relay counted ${counted} events ignored as stale; the sources emitted ${ignored.length} with a rev not above the last: ` +
        ignored.map((e) => `${e.type} ${e.did} ${e.rev}`).join(', '),
    )
  }
  return { read, expected, ignored, problems }
}
