// Drive a PDS with @atproto/api's AtpAgent: account, session, record and blob calls, one step
// after another. Each step reports what the client returned or the error it raised.
// stdin: {service, serviceDid, jwtSecret, handle, email, password, png: base64, rkeys: [tid, tid]}.
// stdout: {step: {ok: result} or {error: {name, message, status, error}}}.
import { createHmac } from 'node:crypto'
import { AtpAgent } from '@atproto/api'
import { describeError, printJson, readInput } from './common.mjs'

const POST = 'app.bsky.feed.post'
const WRITE = 'com.atproto.repo.applyWrites'
const CREATED_AT = '2024-05-01T12:00:00.000Z'

const input = await readInput()
const agent = new AtpAgent({ service: input.service })
const results = {}

// Each step records what the client returned, or the error it raised, and the run goes on.
async function step(name, call) {
  try {
    results[name] = { ok: await call() }
  } catch (err) {
    results[name] = { error: describeError(err) }
  }
  return results[name].ok
}

const repo = () => agent.session.did
const post = (text, extra = {}) => ({ $type: POST, text, createdAt: CREATED_AT, ...extra })

await step('createAccount', async () => {
  const { data } = await agent.createAccount({
    handle: input.handle,
    email: input.email,
    password: input.password,
  })
  return { did: data.did, handle: data.handle, hasTokens: !!(data.accessJwt && data.refreshJwt) }
})
await step('getSession', async () => {
  const { data } = await agent.com.atproto.server.getSession()
  return { did: data.did, handle: data.handle, email: data.email, active: data.active }
})
const first = await step('createRecord', async () => {
  const { data } = await agent.com.atproto.repo.createRecord({
    repo: repo(),
    collection: POST,
    record: post('hello from @atproto/api'),
  })
  return { uri: data.uri, cid: data.cid, rev: data.commit?.rev ?? null }
})
const rkey = first?.uri.split('/').pop()
await step('getRecord', async () => {
  const { data } = await agent.com.atproto.repo.getRecord({ repo: repo(), collection: POST, rkey })
  return data
})
await step('listRecords', async () => {
  const { data } = await agent.com.atproto.repo.listRecords({ repo: repo(), collection: POST })
  return data
})
await step('putRecord', async () => {
  const { data } = await agent.com.atproto.repo.putRecord({
    repo: repo(),
    collection: POST,
    rkey,
    record: post('edited by @atproto/api'),
    swapRecord: first.cid,
  })
  return { uri: data.uri, cid: data.cid }
})
await step('getRecordAfterPut', async () => {
  const { data } = await agent.com.atproto.repo.getRecord({ repo: repo(), collection: POST, rkey })
  return data
})
const blob = await step('uploadBlob', async () => {
  const { data } = await agent.uploadBlob(Buffer.from(input.png, 'base64'), {
    encoding: 'image/png',
  })
  return data.blob
})
const imagePost = await step('createImagePost', async () => {
  const embed = {
    $type: 'app.bsky.embed.images',
    images: [{ image: blob, alt: 'a tiny png', aspectRatio: { width: 1, height: 1 } }],
  }
  const { data } = await agent.com.atproto.repo.createRecord({
    repo: repo(),
    collection: POST,
    record: post('with an image', { embed }),
  })
  return { uri: data.uri, cid: data.cid }
})
await step('getImagePost', async () => {
  const { data } = await agent.com.atproto.repo.getRecord({
    repo: repo(),
    collection: POST,
    rkey: imagePost.uri.split('/').pop(),
  })
  return data
})
await step('getBlob', async () => {
  const { data, headers } = await agent.com.atproto.sync.getBlob({
    did: repo(),
    cid: blob.ref.toString(),
  })
  return { base64: Buffer.from(data).toString('base64'), contentType: headers['content-type'] }
})
await step('applyWrites', async () => {
  const [one, two] = input.rkeys
  const { data } = await agent.com.atproto.repo.applyWrites({
    repo: repo(),
    writes: [
      { $type: `${WRITE}#create`, collection: POST, rkey: one, value: post('one') },
      { $type: `${WRITE}#create`, collection: POST, rkey: two, value: post('two') },
      { $type: `${WRITE}#update`, collection: POST, rkey, value: post('edited by applyWrites') },
    ],
  })
  return data
})
await step('applyWritesDelete', async () => {
  const { data } = await agent.com.atproto.repo.applyWrites({
    repo: repo(),
    writes: [{ $type: `${WRITE}#delete`, collection: POST, rkey: input.rkeys[1] }],
  })
  return data
})
await step('deleteRecord', async () => {
  const { data } = await agent.com.atproto.repo.deleteRecord({
    repo: repo(),
    collection: POST,
    rkey,
  })
  return data
})
await step('getDeletedRecord', async () => {
  const { data } = await agent.com.atproto.repo.getRecord({ repo: repo(), collection: POST, rkey })
  return data
})
await step('refreshSession', async () => {
  const before = { ...agent.session }
  const { data } = await agent.sessionManager.refreshSession()
  const after = agent.session
  return {
    did: data.did,
    handle: data.handle,
    refreshChanged: after.refreshJwt !== before.refreshJwt,
  }
})
await step('getSessionAfterRefresh', async () => {
  const { data } = await agent.com.atproto.server.getSession()
  return { did: data.did, handle: data.handle }
})
// An access token that expired a minute ago, signed with the PDS's secret, as the reference
// shapes them: the agent must get ExpiredToken, refresh its session and retry the call.
function expiredAccessJwt() {
  const now = Math.floor(Date.now() / 1000)
  const part = (value) => Buffer.from(JSON.stringify(value)).toString('base64url')
  const header = part({ typ: 'at+jwt', alg: 'HS256' })
  const claims = { scope: 'com.atproto.access', sub: repo(), aud: input.serviceDid }
  const payload = part({ ...claims, iat: now - 7260, exp: now - 60 })
  const sig = createHmac('sha256', input.jwtSecret).update(`${header}.${payload}`)
  return `${header}.${payload}.${sig.digest('base64url')}`
}
await step('getSessionWithExpiredToken', async () => {
  const expired = expiredAccessJwt()
  agent.sessionManager.session = { ...agent.session, accessJwt: expired }
  const { data } = await agent.com.atproto.server.getSession()
  return { did: data.did, refreshed: agent.session.accessJwt !== expired }
})
await step('describeRepo', async () => {
  const { data } = await agent.com.atproto.repo.describeRepo({ repo: input.handle })
  const { did, handle, collections, handleIsCorrect } = data
  return { did, handle, collections, handleIsCorrect, didDocId: data.didDoc?.id }
})
await step('login', async () => {
  const fresh = new AtpAgent({ service: input.service })
  const { data } = await fresh.login({ identifier: input.handle, password: input.password })
  const { did, handle, active } = data
  return { did, handle, active: active ?? null, pdsUrl: fresh.pdsUrl?.toString() ?? null }
})
await step('listRecordsAtEnd', async () => {
  const { data } = await agent.com.atproto.repo.listRecords({ repo: repo(), collection: POST })
  return data
})

printJson(results)
