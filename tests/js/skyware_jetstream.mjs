// Subscribe to a Jetstream /subscribe with @skyware/jetstream (Node's WebSocket is `ws` here:
// Node 20 has no global one) and report what it emits.
// stdin: {endpoint, wantedCollections, wantedDids, cursor, events, timeoutMs, update}: stops
// after `events` events (commit, identity and account) or on timeout; once `update.after`
// events have arrived, sends `update.payload` with updateOptions (an options_update message).
// stdout: {events, errors, cursor, timedOut}.
import { Jetstream } from '@skyware/jetstream'
import WebSocket from 'ws'
import { describeError, printJson, readInput } from './common.mjs'

const input = await readInput()
const events = []
const errors = []
let finish
const done = new Promise((resolve) => {
  finish = resolve
})

const jetstream = new Jetstream({
  ws: WebSocket,
  endpoint: input.endpoint,
  wantedCollections: input.wantedCollections ?? [],
  wantedDids: input.wantedDids ?? [],
  cursor: input.cursor ?? undefined,
})

function keep(event) {
  events.push(event)
  if (input.update && events.length === input.update.after) {
    jetstream.updateOptions(input.update.payload)
  }
  if (events.length >= input.events) finish(false)
}

jetstream.on('commit', keep)
jetstream.on('identity', keep)
jetstream.on('account', keep)
jetstream.on('error', (err) => errors.push(describeError(err)))
jetstream.start()
const timer = setTimeout(() => finish(true), input.timeoutMs)
const timedOut = await done
clearTimeout(timer)
const cursor = jetstream.cursor ?? null
jetstream.close()
printJson({ events, errors, cursor, timedOut })
process.exit(0)
