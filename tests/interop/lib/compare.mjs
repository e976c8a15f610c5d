// Comparing what a source (a PDS) emitted with what a relay passed on: the
// same events for each repo, in the same order, field for field (but `seq`
// and `time`, which the relay assigns).
import { isDeepStrictEqual } from 'node:util'

const withoutSeq = ({ seq, ...rest }) => rest

/**
 * Source `#identity` events whose handle the DID document no longer claims
 * (marked by `readAllSources`). A relay forwards an `#identity` with its
 * handle only when the document confirms it, so for these it may forward
 * the handle (decided before the change) or none (decided after).
 */
export const unconfirmedHandles = new WeakSet()

/** Whether relayed `g` stands for source `w`. */
function sameEvent(w, g) {
  if (isDeepStrictEqual(withoutSeq(w), withoutSeq(g))) return true
  return (
    w.type === 'identity' &&
    g.type === 'identity' &&
    g.handle === null &&
    unconfirmedHandles.has(w) &&
    isDeepStrictEqual(withoutSeq({ ...w, handle: null }), withoutSeq(g))
  )
}

function byDid(events) {
  const m = new Map()
  for (const e of events) {
    if (!m.has(e.did)) m.set(e.did, [])
    m.get(e.did).push(e)
  }
  return m
}

/**
 * Problems (human-readable, each naming the repo and the event) where
 * `relayed`, filtered to the repos `source` has, differs from `source`.
 */
export function compareRelayed(source, relayed) {
  const problems = []
  const want = byDid(source)
  const got = byDid(relayed.filter((e) => want.has(e.did)))
  for (const [did, events] of want) {
    const seen = got.get(did) ?? []
    const n = Math.max(events.length, seen.length)
    for (let i = 0; i < n; i++) {
      const w = events[i]
      const g = seen[i]
      if (w && g && sameEvent(w, g)) continue
      problems.push(
        `${did} event ${i + 1} of ${events.length}: ` +
          (w ? `source seq ${w.seq} ${JSON.stringify(withoutSeq(w))}` : 'none at the source') +
          ' | ' +
          (g ? `relay seq ${g.seq} ${JSON.stringify(withoutSeq(g))}` : 'missing at the relay'),
      )
      break // the rest of this repo's stream is shifted: one line says it
    }
  }
  return problems
}

/** Counts of events by type, e.g. `{ commit: 12, identity: 3 }`. */
export function countByType(events) {
  const c = {}
  for (const e of events) c[e.type] = (c[e.type] ?? 0) + 1
  return c
}

/** Problems where the stream's seqs are not strictly increasing. */
export function checkSeqOrder(events) {
  const problems = []
  for (let i = 1; i < events.length; i++) {
    if (events[i].seq <= events[i - 1].seq) {
      problems.push(`seq ${events[i].seq} follows seq ${events[i - 1].seq}`)
    }
  }
  return problems
}
