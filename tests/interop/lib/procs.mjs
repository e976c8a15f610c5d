// Child processes of one interop run: each one's output goes to its own log
// file, start-up waits for a readiness signal (or fails with the log's tail
// when the process dies first), and everything is stopped at the end, on
// failure too, so no server outlives the run.
import { spawn } from 'node:child_process'
import { createWriteStream, readFileSync } from 'node:fs'
import net from 'node:net'
import path from 'node:path'
import { setTimeout as sleep } from 'node:timers/promises'

/** A free TCP port on 127.0.0.1 (the kernel's pick, released at once). */
export async function freePort() {
  return new Promise((resolve, reject) => {
    const srv = net.createServer()
    srv.once('error', reject)
    srv.listen(0, '127.0.0.1', () => {
      const { port } = srv.address()
      srv.close(() => resolve(port))
    })
  })
}

export class Procs {
  constructor(logDir) {
    this.logDir = logDir
    this.children = []
  }

  logPath(name) {
    return path.join(this.logDir, `${name}.log`)
  }

  /** The last `lines` lines of a child's log, for failure messages. */
  tail(name, lines = 30) {
    try {
      const text = readFileSync(this.logPath(name), 'utf8').trimEnd()
      return text.split('\n').slice(-lines).join('\n')
    } catch {
      return '(no log)'
    }
  }

  /**
   * Starts `cmd args` and resolves once `ready()` says so (polled every
   * 100 ms), rejecting with the log's tail if the child exits first or
   * `timeoutMs` passes.
   */
  async start(name, cmd, args, { env = {}, ready, timeoutMs = 60_000 } = {}) {
    // Appended: a restarted child keeps one log.
    const log = createWriteStream(this.logPath(name), { flags: 'a' })
    const child = spawn(cmd, args, {
      env: { ...process.env, ...env },
      stdio: ['ignore', 'pipe', 'pipe'],
    })
    const entry = { name, child, exited: null, stdout: '', spec: { cmd, args, env, ready, timeoutMs } }
    this.children.push(entry)
    child.stdout.on('data', (chunk) => {
      entry.stdout += chunk
      log.write(chunk)
    })
    child.stderr.on('data', (chunk) => log.write(chunk))
    const exited = new Promise((resolve) => {
      child.on('exit', (code, signal) => {
        entry.exited = { code, signal }
        resolve()
      })
      child.on('error', (err) => {
        entry.exited = { code: null, signal: null, error: err.message }
        resolve()
      })
    })
    entry.done = exited
    const deadline = Date.now() + timeoutMs
    for (;;) {
      if (entry.exited) {
        throw new Error(
          `${name} exited before it was ready (${JSON.stringify(entry.exited)}):\n${this.tail(name)}`,
        )
      }
      if (await Promise.resolve().then(() => ready(entry)).catch(() => false)) return entry
      if (Date.now() > deadline) {
        throw new Error(`${name} not ready after ${timeoutMs} ms:\n${this.tail(name)}`)
      }
      await sleep(100)
    }
  }

  /**
   * Stops the live child `name` with `signal` (SIGKILL: a crash), runs
   * `whileDown`, then starts it again as it was started, waiting until it is
   * ready.
   */
  async restart(name, signal, whileDown = async () => {}) {
    const old = this.children.find((c) => c.name === name && !c.exited)
    if (!old) throw new Error(`${name} is not running`)
    old.child.kill(signal)
    await old.done
    await whileDown()
    const { cmd, args, ...opts } = old.spec
    return this.start(name, cmd, args, opts)
  }

  /** SIGTERM to every live child, SIGKILL to any still alive after 5 s. */
  async stopAll() {
    const live = this.children.filter((c) => !c.exited)
    for (const c of live) c.child.kill('SIGTERM')
    const all = Promise.all(live.map((c) => c.done))
    const timedOut = await Promise.race([all.then(() => false), sleep(5000).then(() => true)])
    if (timedOut) {
      for (const c of live) if (!c.exited) c.child.kill('SIGKILL')
      await all
    }
  }
}

/** Readiness: the child printed a JSON line with a `ready` key. */
export const printedReady = (entry) => entry.stdout.includes('"ready"')

/** Readiness: `url` answers 200. */
export const answers = (url) => async () => (await fetch(url)).ok
