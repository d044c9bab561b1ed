// The TypeScript feed-generator starter kit's indexing loop, run by bench/feedgen.py side by side
// with `skyloft feedgen serve` on the same firehose frames. The kit is a repository template, not
// a package, so this is its loop written out: @atproto/sync's Firehose client with a MemoryRunner
// whose setCursor stores the cursor, the keyword filter on created posts, inserts of matching posts
// and deletes into better-sqlite3. One difference, in the kit's favour: prepared better-sqlite3
// statements instead of the kit's Kysely query builder.
//
// Usage: node starter_kit_loop.mjs <subscribeRepos service URL> <sqlite path> <last seq> [plc URL]
// Without a PLC URL commits are not authenticated (unauthenticatedCommits), as the Python side
// trusting the relay. Prints one JSON line, {"seq": N}, once the cursor reached <last seq>.
import { IdResolver } from '@atproto/identity'
import { Firehose, MemoryRunner } from '@atproto/sync'
import Database from 'better-sqlite3'

const [service, dbPath, lastSeq, plcUrl] = process.argv.slice(2)
const last = Number(lastSeq)

const db = new Database(dbPath)
db.pragma('journal_mode = WAL')
db.exec(`
  CREATE TABLE IF NOT EXISTS post (uri TEXT PRIMARY KEY, cid TEXT NOT NULL, indexedAt TEXT NOT NULL);
  CREATE TABLE IF NOT EXISTS sub_state (service TEXT PRIMARY KEY, cursor INTEGER NOT NULL);
`)
const insertPost = db.prepare(
  'INSERT INTO post (uri, cid, indexedAt) VALUES (?, ?, ?) ON CONFLICT (uri) DO NOTHING',
)
const deletePost = db.prepare('DELETE FROM post WHERE uri = ?')
const saveCursor = db.prepare(
  'INSERT INTO sub_state (service, cursor) VALUES (?, ?)' +
    ' ON CONFLICT (service) DO UPDATE SET cursor = excluded.cursor',
)

let firehose
const runner = new MemoryRunner({
  setCursor: async (cursor) => {
    saveCursor.run(service, cursor)
    if (cursor >= last) {
      process.stdout.write(JSON.stringify({ seq: cursor }) + '\n')
      await firehose.destroy()
      db.close()
      process.exit(0)
    }
  },
})

firehose = new Firehose({
  service,
  idResolver: new IdResolver({ plcUrl: plcUrl ?? 'http://127.0.0.1:1' }),
  runner,
  filterCollections: ['app.bsky.feed.post'],
  unauthenticatedCommits: plcUrl === undefined,
  unauthenticatedHandles: true,
  // Neither loop resolves identities: the SDK reads no #identity, and a resolution per event
  // would measure the PLC, not the loop.
  excludeIdentity: true,
  excludeSync: true,
  handleEvent: async (evt) => {
    if (evt.event === 'create') {
      const text = evt.record?.text
      if (typeof text === 'string' && text.includes('python')) {
        insertPost.run(evt.uri.toString(), evt.cid.toString(), new Date().toISOString())
      }
    } else if (evt.event === 'delete') {
      deletePost.run(evt.uri.toString())
    }
  },
  onError: (err) => console.error(err),
})
firehose.start()
