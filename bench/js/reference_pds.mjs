// The reference PDS for bench/pds.py: @atproto/dev-env's TestNetworkNoAppView (an in-memory PLC
// and the PDS with its default SQLite storage in one Node process), one account, its session.
// Prints one JSON line {url, did, handle, accessJwt} and serves until stdin closes.
import { mkdir, mkdtemp, rm } from 'node:fs/promises'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { Server } from 'node:net'
import { TestNetworkNoAppView } from '@atproto/dev-env'

// The PLC and the PDS listen on a bare port (every interface); keep them on loopback.
const listen = Server.prototype.listen
Server.prototype.listen = function (...args) {
  if (typeof args[0] === 'number' && typeof args[1] !== 'string') args.splice(1, 0, '127.0.0.1')
  return listen.apply(this, args)
}

const dataDir = await mkdtemp(join(tmpdir(), 'reference-pds-'))
await mkdir(join(dataDir, 'data'))
const network = await TestNetworkNoAppView.create({
  pds: {
    hostname: 'localhost',
    dataDirectory: join(dataDir, 'data'),
    blobstoreDiskLocation: join(dataDir, 'blobs'),
  },
})
const url = `http://127.0.0.1:${network.pds.port}`
const response = await fetch(`${url}/xrpc/com.atproto.server.createAccount`, {
  method: 'POST',
  headers: { 'content-type': 'application/json' },
  body: JSON.stringify({
    handle: 'bench.test',
    email: 'bench@example.com',
    password: 'bench-password',
  }),
})
if (!response.ok) {
  console.error(`createAccount failed: ${response.status} ${await response.text()}`)
  process.exit(1)
}
const session = await response.json()
console.log(
  JSON.stringify({
    url,
    did: session.did,
    handle: session.handle,
    accessJwt: session.accessJwt,
    password: 'bench-password',
  }),
)

let closing = false
async function shutdown() {
  if (closing) return
  closing = true
  await network.close()
  await rm(dataDir, { recursive: true, force: true })
  process.exit(0)
}
process.stdin.on('end', shutdown)
process.stdin.on('close', shutdown)
process.stdin.resume()
process.on('SIGTERM', shutdown)
