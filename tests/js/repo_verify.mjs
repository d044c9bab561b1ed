// Verify a PDS's repo export with @atproto/repo: the full CAR from com.atproto.sync.getRepo,
// a record proof from com.atproto.sync.getRecord for every record and for each absent key,
// and, given an earlier export, the diff getRepo?since=<its rev> gives on top of it.
// stdin: {service, plcUrl, did, absent: ["collection/rkey", ...], earlier: base64 CAR | null}.
// stdout: {signingKey, latest, commit, records, proofs, diff} or {error}.
import { IdResolver } from '@atproto/identity'
import {
  MemoryBlockstore,
  Repo,
  cborToLexRecord,
  formatDataKey,
  readCarWithRoot,
  verifyProofs,
  verifyDiffCar,
  verifyRepo,
} from '@atproto/repo'
import { describeError, printJson, readInput } from './common.mjs'

const input = await readInput()

async function fetchXrpc(nsid, params) {
  const url = new URL(`/xrpc/${nsid}`, input.service)
  for (const [name, value] of Object.entries(params)) url.searchParams.set(name, value)
  const response = await fetch(url)
  if (!response.ok) throw new Error(`${nsid}: HTTP ${response.status} ${await response.text()}`)
  return response
}

// A record proof checked against the claim that `key` holds `cid` (null: absent).
async function checkProof(key, cid) {
  const [collection, rkey] = key.split('/')
  const params = { did: input.did, collection, rkey }
  const response = await fetchXrpc('com.atproto.sync.getRecord', params)
  const proof = new Uint8Array(await response.arrayBuffer())
  const claim = { collection, rkey, cid }
  const result = await verifyProofs(proof, [claim], input.did, signingKey)
  return { key, verified: result.verified.length === 1, unverified: result.unverified.length }
}

// The changes since an earlier export, checked against the tree that export holds.
async function checkDiff(earlier) {
  const old = await readCarWithRoot(Buffer.from(earlier, 'base64'))
  const repo = await Repo.load(new MemoryBlockstore(old.blocks), old.root)
  const params = { did: input.did, since: repo.commit.rev }
  const response = await fetchXrpc('com.atproto.sync.getRepo', params)
  const car = new Uint8Array(await response.arrayBuffer())
  const diff = await verifyDiffCar(repo, car, input.did, signingKey)
  const writes = diff.writes.map((w) => ({
    action: w.action,
    path: formatDataKey(w.collection, w.rkey),
    cid: w.cid ?? null,
  }))
  return { since: repo.commit.rev, rev: diff.commit.rev, writes }
}

let signingKey
try {
  const resolver = new IdResolver({ plcUrl: input.plcUrl })
  signingKey = await resolver.did.resolveAtprotoKey(input.did)
  const head = await fetchXrpc('com.atproto.sync.getLatestCommit', { did: input.did })
  const latest = await head.json()
  const response = await fetchXrpc('com.atproto.sync.getRepo', { did: input.did })
  const car = await readCarWithRoot(new Uint8Array(await response.arrayBuffer()))
  const verified = await verifyRepo(car.blocks, car.root, input.did, signingKey)
  const records = verified.creates.map(({ collection, rkey, cid }) => ({
    collection,
    rkey,
    cid,
    record: cborToLexRecord(car.blocks.get(cid)),
  }))
  const proofs = []
  for (const c of verified.creates) {
    proofs.push(await checkProof(formatDataKey(c.collection, c.rkey), c.cid))
  }
  for (const key of input.absent ?? []) proofs.push(await checkProof(key, null))
  printJson({
    signingKey,
    contentType: response.headers.get('content-type'),
    latest,
    commit: { cid: verified.commit.cid.toString(), rev: verified.commit.rev },
    records,
    proofs,
    diff: input.earlier ? await checkDiff(input.earlier) : null,
  })
} catch (err) {
  printJson({ error: describeError(err) })
}
