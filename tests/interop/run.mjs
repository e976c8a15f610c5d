// The interop stage: atrelay against the reference implementations, all on
// 127.0.0.1. Starts the network (lib/network.mjs), runs the scenarios in
// order (later ones build on the accounts of earlier ones), prints each
// one's figures and problems, and exits 1 if any scenario had a problem.
//
//   node run.mjs --atrelay PATH --python PATH [--until NAME-PART] [--keep]
//
// --until stops after the first scenario whose name contains NAME-PART (the
// scenarios before it make the accounts it needs).
//
// Bounded: the whole run is stopped after 10 minutes. Logs of every process
// stay in the printed directory when a scenario fails (or with --keep).
import { mkdtempSync, rmSync } from 'node:fs'
import os from 'node:os'
import path from 'node:path'
import { parseArgs } from 'node:util'
import { relayDrops, startNetwork } from './lib/network.mjs'
import { Procs } from './lib/procs.mjs'
import * as accountStatus from './scenarios/account-status.mjs'
import * as clientToPdsMode from './scenarios/client-to-pds-mode.mjs'
import * as referenceConsumers from './scenarios/reference-consumers.mjs'
import * as relayFromPdsMode from './scenarios/relay-from-pds-mode.mjs'
import * as relayCrashRestart from './scenarios/relay-crash-restart.mjs'
import * as relayFromReferencePds from './scenarios/relay-from-reference-pds.mjs'
import * as relaySyncEndpoints from './scenarios/relay-sync-endpoints.mjs'

const SCENARIOS = [
  relayFromReferencePds,
  referenceConsumers,
  clientToPdsMode,
  relayFromPdsMode,
  relaySyncEndpoints,
  accountStatus,
  // Last: the restart resets the relay's counters, which earlier ones check.
  relayCrashRestart,
]
const RUN_LIMIT_MS = 10 * 60_000
const MAX_PROBLEMS_SHOWN = 20

const { values: args } = parseArgs({
  options: {
    atrelay: { type: 'string' },
    python: { type: 'string' },
    until: { type: 'string' },
    keep: { type: 'boolean', default: false },
  },
})
if (!args.atrelay || !args.python) {
  console.error('usage: node run.mjs --atrelay PATH --python PATH [--until NAME-PART] [--keep]')
  process.exit(2)
}

const runDir = mkdtempSync(path.join(os.tmpdir(), 'atrelay-interop-'))
const procs = new Procs(runDir)
let failed = false

const limit = setTimeout(async () => {
  console.error(`interop: run limit of ${RUN_LIMIT_MS / 1000} s reached; logs in ${runDir}`)
  await procs.stopAll()
  process.exit(1)
}, RUN_LIMIT_MS)

try {
  const t0 = Date.now()
  const net = await startNetwork(procs, { atrelay: args.atrelay, dataDir: runDir })
  console.log(`interop: network up in ${((Date.now() - t0) / 1000).toFixed(1)} s (logs: ${runDir})`)
  const world = {}
  for (const scenario of SCENARIOS) {
    const started = Date.now()
    let result
    try {
      result = await scenario.run(net, world, { procs, python: args.python })
    } catch (err) {
      result = { problems: [`aborted: ${err.stack ?? err}`], figures: {} }
    }
    const secs = ((Date.now() - started) / 1000).toFixed(1)
    const ok = result.problems.length === 0
    console.log(`${ok ? 'PASS' : 'FAIL'} ${scenario.name} (${secs} s)`)
    for (const [k, v] of Object.entries(result.figures)) console.log(`     ${k}: ${v}`)
    if (!ok) {
      failed = true
      for (const p of result.problems.slice(0, MAX_PROBLEMS_SHOWN)) console.log(`   - ${p}`)
      if (result.problems.length > MAX_PROBLEMS_SHOWN) {
        console.log(`   ... and ${result.problems.length - MAX_PROBLEMS_SHOWN} more`)
      }
      const drops = await relayDrops(net.relay)
      if (drops.length) console.log(`   relay counters:\n     ${drops.join('\n     ')}`)
    }
    if (args.until && scenario.name.includes(args.until)) break
  }
} catch (err) {
  failed = true
  console.log(`FAIL interop network: ${err.stack ?? err}`)
} finally {
  clearTimeout(limit)
  await procs.stopAll()
}

if (failed || args.keep) {
  console.log(`interop: process logs kept in ${runDir}`)
} else {
  rmSync(runDir, { recursive: true, force: true })
}
process.exit(failed ? 1 : 0)
