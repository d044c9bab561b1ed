// Verify a PDS's repo export with @atproto/repo: the full CAR from com.atproto.sync.getRepo,
// and a record proof from com.atproto.sync.getRecord for every record and for each absent key.
// stdin: {service, plcUrl, did, absent: ["collection/rkey", ...]}.
// stdout: {signingKey, latest, commit, records, proofs} or {error}.
import { IdResolver } from '@atproto/identity'
import {
  cborToLexRecord,
  formatDataKey,
  readCarWithRoot,
  verifyProofs,
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
  })
} catch (err) {
  printJson({ error: describeError(err) })
}
