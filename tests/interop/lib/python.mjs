// Driving consumer.py (the Python `atproto` firehose client) as a child
// process: it prints one JSON line per message; the scenario stops it once
// it has reached the end of the stream and compares what it saw.
import path from 'node:path'
import { fileURLToPath } from 'node:url'
import { setTimeout as sleep } from 'node:timers/promises'

const here = path.dirname(fileURLToPath(import.meta.url))

/** Starts the Python consumer on `ws` (a service's ws:// base) from `cursor`. */
export async function startPythonConsumer(procs, name, python, { ws, plcUrl, cursor = 0 }) {
  return procs.start(
    name,
    python,
    ['-u', path.join(here, '..', 'consumer.py'), `${ws}/xrpc`, plcUrl, String(cursor)],
    { ready: () => true },
  )
}

const lines = (entry) =>
  entry.stdout
    .split('\n')
    .filter((l) => l.startsWith('{'))
    .map((l) => JSON.parse(l))

/**
 * Waits until the consumer has printed `raw`'s last seq (or `timeoutMs`),
 * lets it idle `idleMs` so extra messages show, stops it, and returns the
 * problems: a message missing, extra, out of order or of another kind than
 * in `raw`, and every failed check.
 */
export async function finishPythonConsumer(procs, entry, raw, { idleMs = 1000, timeoutMs = 60_000 } = {}) {
  const last = raw.at(-1)?.seq
  const started = Date.now()
  while (Date.now() - started < timeoutMs && !entry.exited) {
    if (lines(entry).some((l) => l.seq === last)) break
    await sleep(100)
  }
  await sleep(idleMs)
  if (!entry.exited) entry.child.kill('SIGTERM')
  await entry.done

  const seen = lines(entry)
  const problems = seen.filter((l) => !l.ok).map((l) => `seq ${l.seq} (${l.type} ${l.did}): ${l.why}`)
  const got = seen.filter((l) => l.seq != null)
  const n = Math.max(raw.length, got.length)
  for (let i = 0; i < n; i++) {
    const w = raw[i]
    const g = got[i]
    if (w && g && w.seq === g.seq && w.type === g.type && w.did === g.did) continue
    problems.push(
      `message ${i + 1} of ${raw.length}: stream has ${w ? `seq ${w.seq} ${w.type} ${w.did}` : 'nothing'}, ` +
        `the Python client decoded ${g ? `seq ${g.seq} ${g.type} ${g.did}` : 'nothing'}`,
    )
    break
  }
  return {
    decoded: got.length,
    verified: got.filter((l) => l.ok && (l.type === 'commit' || l.type === 'sync')).length,
    reconnects: seen.filter((l) => l.type === 'reconnect').length,
    problems,
  }
}
