// Subscribe to a PDS's com.atproto.sync.subscribeRepos with @atproto/sync's Firehose, which
// validates each frame against the lexicon and, for commits, checks the signature with the key
// from the DID document and the MST proof of every op. Handles are verified with the PDS's
// com.atproto.identity.resolveHandle: `.test` handles have no DNS or well-known to resolve.
// This @atproto/sync (the last for Node 20) predates sync 1.1, so a second, raw subscription
// checks each #commit's inversion with @atproto/repo's MST: undoing the ops on the new tree
// from the event's blocks alone must give `prevData`.
// stdin: {service, plcUrl, did, cursor, events, timeoutMs}: keeps the events of `did` (all
// when null) and stops after `events` of them (or on timeout); a null cursor starts live, as
// a runner with no saved cursor does (it sends `cursor=`).
// stdout: {events, errors, commits: [{seq, ops, inverted}], timedOut}.
import { IdResolver } from '@atproto/identity'
import { MST, MemoryBlockstore, def, readCarWithRoot } from '@atproto/repo'
import { Firehose, MemoryRunner } from '@atproto/sync'
import { Subscription } from '@atproto/xrpc-server'
import { describeError, printJson, readInput, toJson } from './common.mjs'

const input = await readInput()
const service = input.service.replace(/^http/, 'ws')
const idResolver = new IdResolver({ plcUrl: input.plcUrl })
idResolver.handle.resolve = async (handle) => {
  const url = new URL('/xrpc/com.atproto.identity.resolveHandle', input.service)
  url.searchParams.set('handle', handle)
  const response = await fetch(url)
  return response.ok ? (await response.json()).did : undefined
}

const events = []
const errors = []
const commits = []
let rawSeq = 0
let finish
const done = new Promise((resolve) => {
  finish = resolve
})

const path = (evt) => ({ path: `${evt.collection}/${evt.rkey}`, rev: evt.rev, commit: evt.commit })

function summary(evt) {
  const base = { event: evt.event, seq: evt.seq, did: evt.did, time: evt.time }
  switch (evt.event) {
    case 'create':
    case 'update':
      return { ...base, ...path(evt), cid: evt.cid, record: evt.record }
    case 'delete':
      return { ...base, ...path(evt) }
    case 'identity':
      return { ...base, handle: evt.handle ?? null, didDocumentId: evt.didDocument?.id ?? null }
    case 'account':
      return { ...base, active: evt.active, status: evt.status ?? null }
    case 'sync':
      return { ...base, cid: evt.cid, rev: evt.rev, blocks: evt.blocks.size }
    default:
      return base
  }
}

// Undo the commit's ops, last first, on the tree its blocks carry; the root must be prevData.
// A commit without prevData (a repo's first) has nothing to invert: null.
async function inverts(body) {
  if (!body.prevData && body.ops.length === 0) return null
  const car = await readCarWithRoot(body.blocks)
  const storage = new MemoryBlockstore(car.blocks)
  const commit = await storage.readObj(body.commit, def.commit)
  let tree = MST.load(storage, commit.data)
  for (const op of [...body.ops].reverse()) {
    if (op.action === 'create') tree = await tree.delete(op.path)
    else if (op.action === 'update') tree = await tree.update(op.path, op.prev)
    else tree = await tree.add(op.path, op.prev)
  }
  const root = await tree.getPointer()
  return root.equals(body.prevData)
}

const firehose = new Firehose({
  idResolver,
  service,
  runner: new MemoryRunner({ startCursor: input.cursor ?? undefined }),
  unauthenticatedCommits: false,
  unauthenticatedHandles: false,
  subscriptionReconnectDelay: 100,
  handleEvent: (evt) => {
    if (input.did && evt.did !== input.did) return
    events.push(summary(evt))
    if (events.length >= input.events) finish(false)
  },
  onError: (err) => {
    errors.push({ ...describeError(err), event: toJson(err.event ?? err.value ?? null) })
  },
})

const abort = new AbortController()
const raw = new Subscription({
  service,
  method: 'com.atproto.sync.subscribeRepos',
  signal: abort.signal,
  getParams: () => ({ cursor: input.cursor ?? undefined }),
  validate: (body) => body,
})
async function readRaw() {
  try {
    for await (const body of raw) {
      rawSeq = Math.max(rawSeq, body.seq ?? 0)
      if (body.$type !== 'com.atproto.sync.subscribeRepos#commit') continue
      if (input.did && body.repo !== input.did) continue
      try {
        commits.push({ seq: body.seq, ops: body.ops.length, inverted: await inverts(body) })
      } catch (err) {
        const error = describeError(err)
        commits.push({ seq: body.seq, ops: body.ops.length, inverted: false, error })
      }
    }
  } catch (err) {
    if (err?.name !== 'AbortError') errors.push(describeError(err))
  }
}

firehose.start()
const rawDone = readRaw()
const timer = setTimeout(() => finish(true), input.timeoutMs)
const timedOut = await done
// The raw reader sees the same stream; let it reach the last event the Firehose handled.
const lastSeq = Math.max(0, ...events.map((e) => e.seq))
const deadline = Date.now() + 2000
while (rawSeq < lastSeq && Date.now() < deadline) {
  await new Promise((resolve) => setTimeout(resolve, 20))
}
clearTimeout(timer)
abort.abort()
await firehose.destroy()
await rawDone
printJson({ events, errors, commits, timedOut })
process.exit(0)
