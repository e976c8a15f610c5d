// One reference PDS (@atproto/pds), configured from PDS_* environment variables
// exactly as its own service entry point does, listening on 127.0.0.1 only.
// Prints one JSON line when it serves.
//
//   PDS_PORT=... PDS_DATA_DIRECTORY=... node pds.mjs
import { PDS, envToCfg, envToSecrets, readEnv } from '@atproto/pds'
import { bindLoopback } from './lib/loopback.mjs'

const env = readEnv()
const pds = await PDS.create(envToCfg(env), envToSecrets(env))
bindLoopback(pds.app)
await pds.start()
console.log(JSON.stringify({ ready: 'pds', url: pds.ctx.cfg.service.publicUrl }))

process.on('SIGTERM', async () => {
  await pds.destroy()
  process.exit(0)
})
