// The reference PLC directory (@did-plc/server) with its in-memory database,
// listening on 127.0.0.1 only. Prints one JSON line when it serves.
//
//   node plc.mjs <port>
import plcServer from '@did-plc/server'
import { bindLoopback } from './lib/loopback.mjs'

const { PlcServer, Database } = plcServer
const port = Number(process.argv[2])
if (!Number.isInteger(port) || port <= 0) {
  console.error('usage: node plc.mjs <port>')
  process.exit(2)
}

const server = PlcServer.create({ db: Database.mock(), port })
bindLoopback(server.app)
await server.start()
console.log(JSON.stringify({ ready: 'plc', url: `http://127.0.0.1:${port}` }))

process.on('SIGTERM', async () => {
  await server.destroy()
  process.exit(0)
})
