// Build a repository with the official @atproto/repo and export it twice: before and after
// a second round of writes (updates, deletes, creates). Each version is written both as
// getFullRepo streams it (commit, then the MST walk) and as the official PDS's
// com.atproto.sync.getRepo serves it (every stored block, newest rev first, then by CID
// descending), so the reader may assume no block order; the last version once more with every
// block any commit wrote (no garbage collection), as the spec allows additional blocks.
// stdin: {v1Full, v1Store, v2Full, v2Store, v2History: output paths}.
// stdout: {didKey, did, v1, v2, ops: [{action, path}]}, each version {rev, commit, blocks,
// records: [{uri, cid, value}]} with values in the JSON data model.
import { writeFile } from 'node:fs/promises'
import { Secp256k1Keypair } from '@atproto/crypto'
import { cidForRawBytes } from '@atproto/lex-data'
import { jsonToLex, lexToJson } from '@atproto/lex-json'
import {
  MemoryBlockstore,
  Repo,
  WriteOpAction,
  formatDataKey,
  getFullRepo,
  writeCarStream,
} from '@atproto/repo'
import { TID } from '@atproto/common-web'
import { printJson, readInput } from './common.mjs'

const input = await readInput()
const DID = 'did:plc:ewvi7nxzyoun6zhxrhs64oiz'
const CREATED = '2024-05-06T07:08:09.123Z'
const keypair = await Secp256k1Keypair.create()
const tids = Array.from({ length: 400 }, () => TID.nextStr())

function post(i, suffix = '') {
  const text = `post ${i}${suffix} mentions @alice.test and #tag${i % 5}`
  const start = text.indexOf('@')
  const tag = text.indexOf('#')
  return {
    $type: 'app.bsky.feed.post',
    text,
    langs: ['en'],
    createdAt: CREATED,
    facets: [
      {
        index: { byteStart: start, byteEnd: start + '@alice.test'.length },
        features: [{ $type: 'app.bsky.richtext.facet#mention', did: DID }],
      },
      {
        index: { byteStart: tag, byteEnd: text.length },
        features: [{ $type: 'app.bsky.richtext.facet#tag', tag: `tag${i % 5}` }],
      },
    ],
  }
}

const image = new Uint8Array(Array.from({ length: 256 }, (_, i) => i))
const imageCid = (await cidForRawBytes(image)).toString()
const SUBJECT_CID = (await cidForRawBytes(new Uint8Array([1, 2, 3]))).toString()

function subject(i) {
  return { uri: `at://${DID}/app.bsky.feed.post/${tids[i]}`, cid: SUBJECT_CID }
}
const avatar = { $type: 'blob', ref: { $link: imageCid }, mimeType: 'image/png', size: 256 }

const create = (collection, rkey, record) => ({
  action: WriteOpAction.Create,
  collection,
  rkey,
  record: jsonToLex(record),
})
const update = (collection, rkey, record) => ({
  ...create(collection, rkey, record),
  action: WriteOpAction.Update,
})
const remove = (collection, rkey) => ({ action: WriteOpAction.Delete, collection, rkey })

const POST = 'app.bsky.feed.post'
const LIKE = 'app.bsky.feed.like'
const FOLLOW = 'app.bsky.graph.follow'
const PROFILE = 'app.bsky.actor.profile'

const initial = [
  create(PROFILE, 'self', {
    $type: PROFILE,
    displayName: 'Official repo',
    description: 'built by @atproto/repo',
    avatar,
  }),
]
for (let i = 0; i < 150; i++) initial.push(create(POST, tids[i], post(i)))
for (let i = 0; i < 100; i++) {
  const like = { $type: LIKE, subject: subject(i), createdAt: CREATED }
  initial.push(create(LIKE, tids[150 + i], like))
}
for (let i = 0; i < 50; i++) {
  const followed = `did:plc:follow${String(i).padStart(18, 'a')}`
  const follow = { $type: FOLLOW, subject: followed, createdAt: CREATED }
  initial.push(create(FOLLOW, tids[250 + i], follow))
}

// Which rev first stored each block, as the PDS's repo_block table records it.
const blockRev = new Map()
const history = []
function noteBlocks(commit) {
  for (const { cid, bytes } of commit.newBlocks.entries()) {
    if (blockRev.has(cid.toString())) continue
    blockRev.set(cid.toString(), commit.rev)
    history.push({ cid, bytes })
  }
}

const storage = new MemoryBlockstore()
const first = await Repo.formatInitCommit(storage, DID, keypair, initial)
noteBlocks(first)
let repo = await Repo.createFromCommit(storage, first)
const v1 = await snapshot(repo, input.v1Full, input.v1Store)

// The second version, in three commits: edits, deletions, then new records.
const edits = [update(PROFILE, 'self', { $type: PROFILE, displayName: 'Edited', avatar })]
for (let i = 0; i < 150; i += 10) edits.push(update(POST, tids[i], post(i, ' edited')))
const deletions = []
for (let i = 3; i < 150; i += 17) deletions.push(remove(POST, tids[i]))
for (let i = 0; i < 100; i += 9) deletions.push(remove(LIKE, tids[150 + i]))
deletions.push(remove(FOLLOW, tids[299]))
const additions = []
for (let i = 300; i < 330; i++) additions.push(create(POST, tids[i], post(i, ' new')))
// A record outside app.bsky, holding bytes.
const thing = { $type: 'com.example.thing', n: 42, bytes: { $bytes: 'AAEC' } }
additions.push(create('com.example.thing', 'self', thing))
for (const writes of [edits, deletions, additions]) {
  const commit = await repo.formatCommit(writes, keypair)
  noteBlocks(commit)
  repo = await repo.applyCommit(commit)
}
const v2 = await snapshot(repo, input.v2Full, input.v2Store)
await writeStoreOrder(repo.cid, history, input.v2History)

const ops = [...edits, ...deletions, ...additions].map((op) => ({
  action: op.action,
  path: formatDataKey(op.collection, op.rkey),
}))
printJson({ didKey: keypair.did(), did: DID, v1, v2, ops })

async function snapshot(repo, fullPath, storePath) {
  const chunks = []
  for await (const chunk of getFullRepo(repo.storage, repo.cid)) chunks.push(chunk)
  await writeFile(fullPath, Buffer.concat(chunks))
  const blocks = await writeStoreOrder(repo.cid, repo.storage.blocks.entries(), storePath)
  const records = []
  for await (const { collection, rkey, cid, record } of repo.walkRecords()) {
    const uri = `at://${DID}/${collection}/${rkey}`
    records.push({ uri, cid: cid.toString(), value: lexToJson(record) })
  }
  return { rev: repo.commit.rev, commit: repo.cid.toString(), blocks, records }
}

// The CAR getRepo serves: blocks by rev descending, then CID string descending.
async function writeStoreOrder(root, blocks, path) {
  const stored = [...blocks].map(({ cid, bytes }) => ({
    cid,
    bytes,
    rev: blockRev.get(cid.toString()),
    key: cid.toString(),
  }))
  stored.sort((a, b) => (a.rev === b.rev ? cmp(b.key, a.key) : cmp(b.rev, a.rev)))
  const parts = []
  for await (const chunk of writeCarStream(root, iterate(stored))) parts.push(chunk)
  await writeFile(path, Buffer.concat(parts))
  return stored.length
}

async function* iterate(blocks) {
  for (const { cid, bytes } of blocks) yield { cid, bytes }
}

function cmp(a, b) {
  return a < b ? -1 : a > b ? 1 : 0
}
