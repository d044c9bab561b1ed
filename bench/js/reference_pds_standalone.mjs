// The reference PDS (@atproto/pds through @atproto/dev-env's TestPds) alone, on a PLC directory
// and an SMTP server it is given: `node reference_pds_standalone.mjs PLC_URL SMTP_URL`.
// Used by tests/account to migrate accounts between it and Skyloft's PDS. Prints one JSON line
// {url} once it serves, on 127.0.0.1 only, and stops when stdin closes.
import { Server } from 'node:net'
import { TestPds } from '@atproto/dev-env'

const listen = Server.prototype.listen
Server.prototype.listen = function (...args) {
  if (typeof args[0] === 'number' && typeof args[1] !== 'string') args.splice(1, 0, '127.0.0.1')
  return listen.apply(this, args)
}

const [plcUrl, smtpUrl] = process.argv.slice(2)
const pds = await TestPds.create({
  hostname: 'localhost',
  didPlcUrl: plcUrl,
  emailSmtpUrl: smtpUrl,
  emailFromAddress: 'reference-pds@example.com',
})
console.log(JSON.stringify({ url: pds.url }))

let closing = false
async function shutdown() {
  if (closing) return
  closing = true
  await pds.close()
  process.exit(0)
}
process.stdin.on('end', shutdown)
process.stdin.on('close', shutdown)
process.stdin.resume()
process.on('SIGTERM', shutdown)
