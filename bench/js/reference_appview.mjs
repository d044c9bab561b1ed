// The reference appview for tests/appview_diff: @atproto/dev-env's TestNetwork (PLC, PDS and the
// official appview @atproto/bsky on PostgreSQL and Redis) in one Node process. Prints one JSON
// line {plc, pds, bsky, bskyDid} and serves until stdin closes. DB_POSTGRES_URL and REDIS_HOST
// name the databases; every listener is kept on 127.0.0.1.
import { Server } from 'node:net'
import { TestNetwork } from '@atproto/dev-env'
import pg from 'pg'

const listen = Server.prototype.listen
Server.prototype.listen = function (...args) {
  if (typeof args[0] === 'number' && typeof args[1] !== 'string') args.splice(1, 0, '127.0.0.1')
  if (typeof args[0] === 'object' && args[0] !== null && args[0].host === undefined) {
    args[0] = { ...args[0], host: '127.0.0.1' }
  }
  return listen.apply(this, args)
}

// schema names allow letters and underscores only; dev-env prefixes appview_ and ozone_
const schema = `diff_${[...String(process.pid)].map((d) => 'abcdefghij'[d]).join('')}`
const network = await TestNetwork.create({
  dbPostgresSchema: schema,
})
console.log(
  JSON.stringify({
    plc: network.plc.url.replace('localhost', '127.0.0.1'),
    pds: `http://127.0.0.1:${network.pds.port}`,
    bsky: `http://127.0.0.1:${network.bsky.port}`,
    bskyDid: network.bsky.ctx.cfg.serverDid,
  }),
)

let closing = false
async function shutdown() {
  if (closing) return
  closing = true
  await network.close()
  const db = new pg.Client({ connectionString: process.env.DB_POSTGRES_URL })
  await db.connect()
  for (const prefix of ['appview', 'ozone']) {
    await db.query(`DROP SCHEMA IF EXISTS ${prefix}_${schema} CASCADE`)
  }
  await db.end()
  process.exit(0)
}
process.stdin.on('end', shutdown)
process.stdin.on('close', shutdown)
process.stdin.resume()
process.on('SIGTERM', shutdown)
