// Drive a PDS's operations with @atproto/api's AtpAgent: an account made with an invite code,
// app passwords (login, refused account management, revocation), preferences, a call proxied
// to the appview, and a taken-down account's login. Each step reports its result or error.
// stdin: {service, handle, email, password, inviteCode, adminPassword}.
// stdout: {step: {ok: result} or {error: {name, message, status, error}}}.
import { AtpAgent } from '@atproto/api'
import { describeError, printJson, readInput } from './common.mjs'

const POST = 'app.bsky.feed.post'
const CREATED_AT = '2024-05-01T12:00:00.000Z'
const PREFERENCES = [
  { $type: 'app.bsky.actor.defs#adultContentPref', enabled: true },
  {
    $type: 'app.bsky.actor.defs#contentLabelPref',
    label: 'graphic-media',
    visibility: 'warn',
  },
  { $type: 'app.bsky.actor.defs#savedFeedsPrefV2', items: [] },
]

const input = await readInput()
const account = { handle: input.handle, email: input.email, password: input.password }
const agent = new AtpAgent({ service: input.service })
const appAgent = new AtpAgent({ service: input.service })
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

const post = (text) => ({
  repo: agent.session.did,
  collection: POST,
  record: { $type: POST, text, createdAt: CREATED_AT },
})

await step('describeServer', async () => {
  const { data } = await agent.com.atproto.server.describeServer()
  return { inviteCodeRequired: data.inviteCodeRequired }
})
await step('createAccountWithoutInvite', async () => {
  await new AtpAgent({ service: input.service }).createAccount(account)
  return 'created'
})
await step('createAccount', async () => {
  const { data } = await agent.createAccount({ ...account, inviteCode: input.inviteCode })
  return { did: data.did, handle: data.handle }
})
const appPassword = await step('createAppPassword', async () => {
  const { data } = await agent.com.atproto.server.createAppPassword({ name: 'js client' })
  return { name: data.name, privileged: data.privileged ?? null, password: data.password }
})
await step('listAppPasswords', async () => {
  const { data } = await agent.com.atproto.server.listAppPasswords()
  return data.passwords.map(({ name, privileged }) => ({ name, privileged }))
})
await step('loginWithAppPassword', async () => {
  const { data } = await appAgent.login({
    identifier: input.handle,
    password: appPassword.password,
  })
  return { did: data.did, handle: data.handle, active: data.active ?? null }
})
await step('appPasswordWrites', async () => {
  const { data } = await appAgent.com.atproto.repo.createRecord(post('from an app password'))
  return { collection: data.uri.split('/')[3] }
})
await step('appPasswordCreateAppPassword', async () => {
  await appAgent.com.atproto.server.createAppPassword({ name: 'another' })
  return 'created'
})
await step('appPasswordUpdateEmail', async () => {
  await appAgent.com.atproto.server.updateEmail({ email: 'taken-over@example.com' })
  return 'updated'
})
await step('appPasswordRevokeAppPassword', async () => {
  await appAgent.com.atproto.server.revokeAppPassword({ name: 'js client' })
  return 'revoked'
})
await step('putPreferences', async () => {
  await appAgent.app.bsky.actor.putPreferences({ preferences: PREFERENCES })
  return 'stored'
})
await step('getPreferences', async () => {
  const { data } = await agent.app.bsky.actor.getPreferences()
  return data.preferences
})
await step('parsedPreferences', async () => {
  const prefs = await agent.getPreferences()
  return {
    adultContentEnabled: prefs.moderationPrefs.adultContentEnabled,
    graphicMedia: prefs.moderationPrefs.labels['graphic-media'] ?? null,
  }
})
await step('getProfile', async () => {
  const { data } = await agent.getProfile({ actor: input.handle })
  return { did: data.did, handle: data.handle, displayName: data.displayName ?? null }
})
await step('appPasswordGetProfile', async () => {
  const { data } = await appAgent.getProfile({ actor: input.handle })
  return { did: data.did, displayName: data.displayName ?? null }
})
await step('revokeAppPassword', async () => {
  await agent.com.atproto.server.revokeAppPassword({ name: 'js client' })
  const { data } = await agent.com.atproto.server.listAppPasswords()
  return data.passwords.map(({ name }) => name)
})
await step('refreshRevokedSession', async () => {
  await appAgent.sessionManager.refreshSession()
  return 'refreshed'
})
await step('sessionDroppedAfterRevoke', async () => appAgent.session === undefined)
await step('loginWithRevokedAppPassword', async () => {
  await new AtpAgent({ service: input.service }).login({
    identifier: input.handle,
    password: appPassword.password,
  })
  return 'logged in'
})

// The operator takes the account down; the agent's login says so, or opens a narrow session.
await step('takedown', async () => {
  const basic = Buffer.from(`admin:${input.adminPassword}`).toString('base64')
  const response = await fetch(`${input.service}/xrpc/com.atproto.admin.updateSubjectStatus`, {
    method: 'POST',
    headers: { authorization: `Basic ${basic}`, 'content-type': 'application/json' },
    body: JSON.stringify({
      subject: { $type: 'com.atproto.admin.defs#repoRef', did: agent.session.did },
      takedown: { applied: true, ref: 'js-test' },
    }),
  })
  return response.status
})
await step('loginTakendown', async () => {
  await new AtpAgent({ service: input.service }).login({
    identifier: account.handle,
    password: account.password,
  })
  return 'logged in'
})
const narrow = new AtpAgent({ service: input.service })
await step('loginAllowTakendown', async () => {
  const { data } = await narrow.login({
    identifier: account.handle,
    password: account.password,
    allowTakendown: true,
  })
  return { did: data.did, active: data.active ?? null, status: data.status ?? null }
})
await step('takendownWrites', async () => {
  await narrow.com.atproto.repo.createRecord(post('while taken down'))
  return 'written'
})
await step('takendownGetPreferences', async () => {
  const { data } = await narrow.app.bsky.actor.getPreferences()
  return data.preferences.length
})

printJson(results)
