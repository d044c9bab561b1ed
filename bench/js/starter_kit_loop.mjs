// The TypeScript feed-generator starter kit's indexing loop, run by bench/feedgen.py side by side
// with `skyloft feedgen serve` on the same firehose frames. The kit is a repository template, not
// a package, so this is its loop written out, in one of two variants:
//
// `kit`: what github.com/bluesky-social/feed-generator's code does (src/util/subscription.ts,
// src/subscription.ts, src/db/ at e4f3b82): @atproto/xrpc-server's Subscription on
// com.atproto.sync.subscribeRepos, every message checked by lexicons.assertValidXrpcMessage; for
// each #commit, getOpsByType: readCar of its blocks, and for every create of a post, repost, like
// or follow the record decoded (cborToLexRecord) and checked by lexicons.assertValidRecord after
// fixBlobRefs; the posts whose text contains the keyword inserted (ON CONFLICT DO NOTHING) and
// deleted posts deleted, one Kysely statement each per event over better-sqlite3 (a file, no
// pragmas, as `new SqliteDb(location)`); handleEvent is not awaited by the loop, as the kit's; the
// cursor written every 20th seq (the kit's UPDATE of a sub_state row it never inserts) and read
// once when connecting. The kit verifies no signature or MST proof and resolves no identity. Left
// out: its console.log of every post's text ("Delete before actually using"). The packages are
// today's, pinned in package.json (the kit's yarn.lock has older @atproto ones and its own
// generated lexicons; @atproto/api's are used here), and better-sqlite3 is the 10.1.0 this
// directory pins for the reference PDS where the kit asks for ^11.
//
// `sync`: the newer client the issue names, @atproto/sync's Firehose and MemoryRunner (whose
// setCursor stores the cursor), the keyword filter (case-sensitive, as the bench's Python feed
// function), and prepared better-sqlite3 statements in WAL
// mode instead of Kysely: cheaper per event than the kit's own code.
//
// Usage: node starter_kit_loop.mjs kit|sync <subscribeRepos service URL> <sqlite path> <last seq>
//        [plc URL]
// The plc URL (sync only) authenticates commits; without it they are not (unauthenticatedCommits),
// as the Python side trusting the relay. Prints one JSON line, {"seq": N}, once the event of seq
// <last seq> is handled, or {"seq": N, "lost": "reconnected"} when the kit's client dropped its
// connection after seq N (see getParams).
import { ids, lexicons } from '@atproto/api'
import { IdResolver } from '@atproto/identity'
import { BlobRef } from '@atproto/lexicon'
import { cborToLexRecord, readCar } from '@atproto/repo'
import { Firehose, MemoryRunner } from '@atproto/sync'
import { Subscription } from '@atproto/xrpc-server'
import SqliteDb from 'better-sqlite3'
import { Kysely, Migrator, SqliteDialect } from 'kysely'

const KEYWORD = 'python'
const [variant, service, dbPath, lastSeq, plcUrl] = process.argv.slice(2)
const last = Number(lastSeq)

function finished(seq, lost) {
  process.stdout.write(JSON.stringify(lost ? { seq, lost } : { seq }) + '\n')
  process.exit(0)
}

// --- variant `kit`: the starter kit's src/db, src/util/subscription.ts and src/subscription.ts

const migrations = {
  '001': {
    async up(db) {
      await db.schema
        .createTable('post')
        .addColumn('uri', 'varchar', (col) => col.primaryKey())
        .addColumn('cid', 'varchar', (col) => col.notNull())
        .addColumn('indexedAt', 'varchar', (col) => col.notNull())
        .execute()
      await db.schema
        .createTable('sub_state')
        .addColumn('service', 'varchar', (col) => col.primaryKey())
        .addColumn('cursor', 'integer', (col) => col.notNull())
        .execute()
    },
  },
}

const isCommit = (evt) => evt?.$type === `${ids.ComAtprotoSyncSubscribeRepos}#commit`

const isType = (obj, nsid) => {
  try {
    lexicons.assertValidRecord(nsid, fixBlobRefs(obj))
    return true
  } catch (err) {
    return false
  }
}

const fixBlobRefs = (obj) => {
  if (Array.isArray(obj)) {
    return obj.map(fixBlobRefs)
  }
  if (obj && typeof obj === 'object') {
    if (obj.constructor.name === 'BlobRef') {
      return new BlobRef(obj.ref, obj.mimeType, obj.size, obj.original)
    }
    return Object.entries(obj).reduce((acc, [key, val]) => {
      return Object.assign(acc, { [key]: fixBlobRefs(val) })
    }, {})
  }
  return obj
}

const KINDS = {
  [ids.AppBskyFeedPost]: 'posts',
  [ids.AppBskyFeedRepost]: 'reposts',
  [ids.AppBskyFeedLike]: 'likes',
  [ids.AppBskyGraphFollow]: 'follows',
}

const getOpsByType = async (evt) => {
  const car = await readCar(evt.blocks)
  const opsByType = {
    posts: { creates: [], deletes: [] },
    reposts: { creates: [], deletes: [] },
    likes: { creates: [], deletes: [] },
    follows: { creates: [], deletes: [] },
  }
  for (const op of evt.ops) {
    const uri = `at://${evt.repo}/${op.path}`
    const [collection] = op.path.split('/')
    if (op.action === 'update') continue
    if (op.action === 'create') {
      if (!op.cid) continue
      const recordBytes = car.blocks.get(op.cid)
      if (!recordBytes) continue
      const record = cborToLexRecord(recordBytes)
      const create = { uri, cid: op.cid.toString(), author: evt.repo }
      const kind = KINDS[collection]
      if (kind && isType(record, collection)) {
        opsByType[kind].creates.push({ record, ...create })
      }
    }
    if (op.action === 'delete') {
      const kind = KINDS[collection]
      if (kind) opsByType[kind].deletes.push({ uri })
    }
  }
  return opsByType
}

async function runKit() {
  const db = new Kysely({ dialect: new SqliteDialect({ database: new SqliteDb(dbPath) }) })
  const migrator = new Migrator({ db, provider: { getMigrations: async () => migrations } })
  const { error } = await migrator.migrateToLatest()
  if (error) throw error

  const handleEvent = async (evt) => {
    if (!isCommit(evt)) return
    const ops = await getOpsByType(evt)
    const postsToDelete = ops.posts.deletes.map((del) => del.uri)
    const postsToCreate = ops.posts.creates
      .filter((create) => create.record.text.toLowerCase().includes(KEYWORD))
      .map((create) => ({
        uri: create.uri,
        cid: create.cid,
        indexedAt: new Date().toISOString(),
      }))
    if (postsToDelete.length > 0) {
      await db.deleteFrom('post').where('uri', 'in', postsToDelete).execute()
    }
    if (postsToCreate.length > 0) {
      await db
        .insertInto('post')
        .values(postsToCreate)
        .onConflict((oc) => oc.doNothing())
        .execute()
    }
  }

  let connections = 0
  let lastSeen = 0
  const sub = new Subscription({
    service,
    method: ids.ComAtprotoSyncSubscribeRepos,
    getParams: async () => {
      // The keep-alive client pings every 10 s and drops a connection whose pong is late: a loop
      // more than 10 s behind reads the pong too late, reconnects, and (no sub_state row) comes
      // back live, the frames in between lost. Say so rather than wait for them.
      if (++connections > 1) finished(lastSeen, 'reconnected')
      const res = await db
        .selectFrom('sub_state')
        .selectAll()
        .where('service', '=', service)
        .executeTakeFirst()
      return res ? { cursor: res.cursor } : {}
    },
    validate: (value) => {
      try {
        return lexicons.assertValidXrpcMessage(ids.ComAtprotoSyncSubscribeRepos, value)
      } catch (err) {
        console.error('repo subscription skipped invalid message', err)
      }
    },
  })
  for await (const evt of sub) {
    lastSeen = evt.seq
    const handled = handleEvent(evt).catch((err) => {
      console.error('repo subscription could not handle message', err)
    })
    if (isCommit(evt) && evt.seq % 20 === 0) {
      await db
        .updateTable('sub_state')
        .set({ cursor: evt.seq })
        .where('service', '=', service)
        .execute()
    }
    if (evt.seq >= last) {
      await handled
      finished(evt.seq)
    }
  }
}

// --- variant `sync`: @atproto/sync's Firehose into prepared better-sqlite3 statements

function runSync() {
  const db = new SqliteDb(dbPath)
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
      if (cursor >= last) finished(cursor)
    },
  })
  firehose = new Firehose({
    service,
    idResolver: new IdResolver({ plcUrl: plcUrl ?? 'http://127.0.0.1:1' }),
    runner,
    filterCollections: [ids.AppBskyFeedPost],
    unauthenticatedCommits: plcUrl === undefined,
    unauthenticatedHandles: true,
    // Neither loop resolves identities: the SDK reads no #identity, and a resolution per event
    // would measure the PLC, not the loop.
    excludeIdentity: true,
    excludeSync: true,
    handleEvent: async (evt) => {
      if (evt.event === 'create') {
        const text = evt.record?.text
        if (typeof text === 'string' && text.includes(KEYWORD)) {
          insertPost.run(evt.uri.toString(), evt.cid.toString(), new Date().toISOString())
        }
      } else if (evt.event === 'delete') {
        deletePost.run(evt.uri.toString())
      }
    },
    onError: (err) => console.error(err),
  })
  firehose.start()
}

if (variant === 'kit') {
  await runKit()
} else if (variant === 'sync') {
  runSync()
} else {
  throw new Error(`unknown variant ${variant}: kit or sync`)
}
