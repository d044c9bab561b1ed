// Shared by the interop scripts: read the test's JSON from stdin, print results as JSON.

// Bound what we accept from the test process.
const MAX_INPUT = 16 * 1024 * 1024

export async function readInput() {
  const chunks = []
  let size = 0
  for await (const chunk of process.stdin) {
    size += chunk.length
    if (size > MAX_INPUT) throw new Error('input larger than 16 MiB')
    chunks.push(chunk)
  }
  const text = Buffer.concat(chunks).toString('utf8')
  return text ? JSON.parse(text) : {}
}

// CIDs print as their string form, bytes as {$bytes: base64}, like the JSON data model.
export function toJson(value) {
  if (value === null || value === undefined) return null
  if (value instanceof Uint8Array) return { $bytes: Buffer.from(value).toString('base64') }
  if (Array.isArray(value)) return value.map(toJson)
  if (typeof value === 'object') {
    if (value.asCID === value) return value.toString()
    if (value.constructor?.name === 'BlobRef' && typeof value.toJSON === 'function') {
      return toJson(value.toJSON())
    }
    if (value instanceof Map) return toJson(Object.fromEntries(value))
    if (value instanceof Date) return value.toISOString()
    return Object.fromEntries(Object.entries(value).map(([k, v]) => [k, toJson(v)]))
  }
  if (typeof value === 'bigint') return Number(value)
  return value
}

export function printJson(value) {
  process.stdout.write(JSON.stringify(toJson(value)) + '\n')
}

// An error as the test wants to see it: class, message, and any XRPC status and error name.
export function describeError(err) {
  return {
    name: err?.constructor?.name ?? 'Error',
    message: String(err?.message ?? err),
    status: err?.status ?? null,
    error: err?.error ?? null,
    cause: err?.cause ? describeError(err.cause) : null,
  }
}
