// The interop network, all on 127.0.0.1: the reference PLC directory, two
// reference PDSes, `atrelay serve` and `atrelay pds` (PDS mode, registering
// its accounts at the reference PLC and asking the relay to crawl it).
import { randomBytes } from 'node:crypto'
import { mkdirSync } from 'node:fs'
import path from 'node:path'
import { fileURLToPath } from 'node:url'
import { answers, freePort, printedReady } from './procs.mjs'

const here = path.dirname(fileURLToPath(import.meta.url))
const script = (name) => path.join(here, '..', name)

/** Starts the reference PLC; resolves to its base URL. */
async function startPlc(procs) {
  const port = await freePort()
  await procs.start('plc', process.execPath, [script('plc.mjs'), String(port)], {
    ready: printedReady,
  })
  return `http://127.0.0.1:${port}`
}

/**
 * Starts one reference PDS. Its public name is `localhost:<port>`: the
 * reference PDS serves http:// only for the hostname `localhost` (dev mode),
 * and that is also the name its DID documents give relays.
 */
async function startReferencePds(procs, name, { dataDir, plcUrl }) {
  const port = await freePort()
  const dir = path.join(dataDir, name)
  const adminPassword = randomBytes(8).toString('hex')
  mkdirSync(path.join(dir, 'blobs'), { recursive: true })
  await procs.start(name, process.execPath, [script('pds.mjs')], {
    env: {
      PDS_HOSTNAME: 'localhost',
      PDS_PORT: String(port),
      PDS_DEV_MODE: 'true',
      PDS_DATA_DIRECTORY: dir,
      PDS_BLOBSTORE_DISK_LOCATION: path.join(dir, 'blobs'),
      PDS_DID_PLC_URL: plcUrl,
      PDS_INVITE_REQUIRED: 'false',
      PDS_JWT_SECRET: randomBytes(16).toString('hex'),
      PDS_ADMIN_PASSWORD: adminPassword,
      PDS_PLC_ROTATION_KEY_K256_PRIVATE_KEY_HEX: randomBytes(32).toString('hex'),
      LOG_ENABLED: 'true',
      LOG_LEVEL: 'info',
    },
    ready: printedReady,
    timeoutMs: 90_000,
  })
  return { ...pdsEndpoints(name, `localhost:${port}`, port), adminPassword }
}

function pdsEndpoints(name, hostname, port) {
  return {
    name,
    hostname,
    // Clients use the address itself; `hostname` is what DID documents name.
    url: `http://127.0.0.1:${port}`,
    ws: `ws://127.0.0.1:${port}`,
  }
}

async function startRelay(procs, atrelay, { dataDir, plcUrl }) {
  const port = await freePort()
  const metricsPort = await freePort()
  const url = `http://127.0.0.1:${port}`
  await procs.start(
    'relay',
    atrelay,
    [
      'serve',
      '--listen',
      `127.0.0.1:${port}`,
      '--metrics-listen',
      `127.0.0.1:${metricsPort}`,
      '--data-dir',
      path.join(dataDir, 'relay'),
      '--plc-url',
      plcUrl,
      '--allow-private-hosts',
    ],
    { env: { ATRELAY_LOG: 'info' }, ready: answers(`${url}/xrpc/_health`) },
  )
  return { url, ws: `ws://127.0.0.1:${port}`, metrics: `http://127.0.0.1:${metricsPort}/metrics` }
}

async function startPdsMode(procs, atrelay, { dataDir, plcUrl, relayUrl }) {
  const port = await freePort()
  const hostname = `localhost:${port}`
  await procs.start(
    'atrelay-pds',
    atrelay,
    [
      'pds',
      '--listen',
      `127.0.0.1:${port}`,
      '--hostname',
      hostname,
      '--data-dir',
      path.join(dataDir, 'atrelay-pds'),
      '--plc-url',
      plcUrl,
      '--crawlers',
      relayUrl,
    ],
    {
      env: { ATRELAY_LOG: 'info' },
      ready: answers(`http://127.0.0.1:${port}/xrpc/_health`),
    },
  )
  return pdsEndpoints('atrelay-pds', hostname, port)
}

/** Starts every part; `procs.stopAll()` stops them. */
export async function startNetwork(procs, { atrelay, dataDir }) {
  const plcUrl = await startPlc(procs)
  const relay = await startRelay(procs, atrelay, { dataDir, plcUrl })
  // The reference PDSes take seconds each to start: in parallel.
  const refPds = await Promise.all(
    ['pds-a', 'pds-b'].map((name) => startReferencePds(procs, name, { dataDir, plcUrl })),
  )
  const ourPds = await startPdsMode(procs, atrelay, { dataDir, plcUrl, relayUrl: relay.url })
  return { plcUrl, relay, refPds, ourPds }
}

/** Asks the relay to crawl `hostname`, as a PDS admin would. */
export async function requestCrawl(relay, hostname) {
  const res = await fetch(`${relay.url}/xrpc/com.atproto.sync.requestCrawl`, {
    method: 'POST',
    headers: { 'content-type': 'application/json' },
    body: JSON.stringify({ hostname }),
  })
  if (!res.ok) throw new Error(`requestCrawl ${hostname}: ${res.status} ${await res.text()}`)
}

/**
 * The relay's drop and ignore counters that are not zero, for failure
 * reports: why an event a scenario expected never came out.
 */
export async function relayDrops(relay) {
  try {
    return (await metricLines(relay)).filter(
      (l) => /^atrelay_\w*(drop|ignor|error|reject)\w*/.test(l) && !/ 0$/.test(l),
    )
  } catch (err) {
    return [`(metrics unavailable: ${err.message})`]
  }
}

/** The relay's count of events ignored as not newer than the repo's rev. */
export async function relayIgnoredStale(relay) {
  let n = 0
  for (const line of await metricLines(relay)) {
    const m = /^atrelay_relay_events_ignored_total\{reason="(duplicate|stale_sync)"\} (\d+)/.exec(line)
    if (m) n += Number(m[2])
  }
  return n
}

/** The lines of the relay's Prometheus scrape. */
async function metricLines(relay) {
  return (await (await fetch(relay.metrics)).text()).split('\n')
}
