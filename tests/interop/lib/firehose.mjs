// Reading a subscribeRepos firehose with the reference consumers:
// `readFirehose` takes every frame as @atproto/xrpc-server decodes it (no
// validation, so nothing is hidden), `startSyncConsumer` runs @atproto/sync's
// Firehose with lexicon validation and commit authentication against a PLC.
import { createHash } from 'node:crypto'
import { Firehose } from '@atproto/sync'
import { Subscription } from '@atproto/xrpc-server'
import { plcResolver } from './resolver.mjs'

const METHOD = 'com.atproto.sync.subscribeRepos'

const digest = (bytes) => createHash('sha256').update(bytes).digest('hex').slice(0, 16)
const str = (cid) => (cid == null ? null : String(cid))

/**
 * What a relay must pass through unchanged, per event kind: everything but
 * `seq` and `time` (the relay sequences events itself). Blocks are compared
 * by digest.
 */
export function summarize(evt) {
  const type = evt.$type?.split('#')[1] ?? 'unknown'
  const base = { seq: evt.seq, type }
  switch (type) {
    case 'commit':
      return {
        ...base,
        did: evt.repo,
        rev: evt.rev,
        since: evt.since ?? null,
        commit: str(evt.commit),
        prevData: str(evt.prevData),
        tooBig: evt.tooBig ?? false,
        ops: evt.ops.map((op) => `${op.action} ${op.path} ${str(op.cid) ?? '-'}`),
        blocks: digest(evt.blocks),
      }
    case 'sync':
      return { ...base, did: evt.did, rev: evt.rev, blocks: digest(evt.blocks) }
    case 'identity':
      return { ...base, did: evt.did, handle: evt.handle ?? null }
    case 'account':
      return { ...base, did: evt.did, active: evt.active, status: evt.status ?? null }
    default:
      return { ...base, did: evt.did ?? evt.repo ?? null, raw: Object.keys(evt).sort().join(',') }
  }
}

/**
 * Reads `service`'s firehose from `cursor` until `done(events)` holds and no
 * frame has come for `idleMs` (so extra events are seen too), or until
 * `timeoutMs`. Returns the summarized events, in the order received, and
 * how many reconnect attempts it made (resuming after the last seq).
 */
export async function readFirehose(
  service,
  { cursor = 0, done = () => true, idleMs = 1500, timeoutMs = 60_000 } = {},
) {
  const ctrl = new AbortController()
  const events = []
  const started = Date.now()
  let lastAt = started
  let timedOut = false
  let error = null
  let reconnects = 0
  const sub = new Subscription({
    service,
    method: METHOD,
    // A reconnect resumes after the last event seen.
    getParams: () => ({ cursor: events.length ? events.at(-1).seq : cursor }),
    validate: (v) => v,
    signal: ctrl.signal,
    onReconnectError: () => {
      reconnects += 1
    },
  })
  const timer = setInterval(() => {
    const now = Date.now()
    if (now - lastAt >= idleMs && done(events)) ctrl.abort()
    else if (now - started > timeoutMs) {
      timedOut = true
      ctrl.abort()
    }
  }, 50)
  try {
    for await (const evt of sub) {
      events.push(summarize(evt))
      lastAt = Date.now()
    }
  } catch (err) {
    if (!ctrl.signal.aborted) error = err
  } finally {
    clearInterval(timer)
  }
  return { events, timedOut, error, reconnects }
}

/**
 * Starts @atproto/sync's Firehose (lexicon validation of every frame, commit
 * signature and MST proof checks against keys resolved at `plcUrl`) on
 * `service` from cursor 0. It consumes live until `finish(raw)`.
 */
export function startSyncConsumer(service, plcUrl) {
  const got = new Map()
  const errors = []
  const state = { handled: 0, lastAt: Date.now(), lastSeq: 0 }
  const firehose = new Firehose({
    service,
    idResolver: plcResolver(plcUrl),
    // Handles under .test cannot resolve offline; the DID documents do.
    unauthenticatedHandles: true,
    getCursor: () => state.lastSeq,
    handleEvent: (evt) => {
      got.set(evt.seq, (got.get(evt.seq) ?? 0) + 1)
      if (evt.event === 'identity' && !evt.didDocument) {
        errors.push(`seq ${evt.seq}: identity ${evt.did} did not resolve at the PLC`)
      }
      state.lastSeq = Math.max(state.lastSeq, evt.seq)
      state.handled += 1
      state.lastAt = Date.now()
    },
    onError: (err) => {
      const evt = err.event ?? err.value
      const where = evt?.seq != null ? `seq ${evt.seq}` : 'stream'
      errors.push(`${where}: ${err.message}: ${err.cause?.message ?? err.cause ?? ''}`)
      state.lastAt = Date.now()
    },
  })
  const running = firehose.start()

  /**
   * Waits until the Firehose has handled as many events as `raw` (the same
   * stream read by `readFirehose`) implies, then `idleMs` more; stops it and
   * returns the problems, each naming the event: validation, parse and
   * authentication errors, and frames whose events did not all come out
   * (a commit's op that failed its proof is dropped silently by the library).
   */
  async function finish(raw, { idleMs = 1000, timeoutMs = 60_000 } = {}) {
    // What the Firehose emits per frame: one event per verified op of a
    // commit, one per identity, account and sync frame.
    const expected = new Map(raw.map((e) => [e.seq, e.type === 'commit' ? e.ops.length : 1]))
    const want = [...expected.values()].reduce((a, b) => a + b, 0)
    const started = Date.now()
    let timedOut = false
    for (;;) {
      await new Promise((r) => setTimeout(r, 50))
      if (state.handled >= want && Date.now() - state.lastAt >= idleMs) break
      if (Date.now() - started > timeoutMs) {
        timedOut = true
        break
      }
    }
    await firehose.destroy()
    await running

    const problems = [...errors]
    if (timedOut) problems.push(`timed out with ${state.handled} of ${want} events handled`)
    for (const [seq, n] of expected) {
      const g = got.get(seq) ?? 0
      if (g !== n) problems.push(`seq ${seq}: ${n} events expected, @atproto/sync emitted ${g}`)
    }
    for (const [seq, g] of got) {
      if (!expected.has(seq)) problems.push(`seq ${seq}: ${g} events not in the raw stream`)
    }
    return { handled: state.handled, want, problems }
  }
  return { finish }
}
