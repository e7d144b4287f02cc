// Starts the AT Protocol reference servers (PLC, PDS, AppView) for the
// integration tests; bsky_network.py drives it. Prints one JSON line once
// ready, then answers one JSON line per command read from stdin.
import { mkdtempSync, rmSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { createInterface } from 'node:readline'
import { parseArgs } from 'node:util'
import { TestNetwork } from '@atproto/dev-env'

const { values: args } = parseArgs({
  options: {
    schema: { type: 'string' },
    plc: { type: 'string' },
    pds: { type: 'string' },
    appview: { type: 'string' },
    ozone: { type: 'string' },
    account: { type: 'string', multiple: true, default: [] },
  },
})
const send = (msg) => process.stdout.write(JSON.stringify(msg) + '\n')

// The PDS keeps SQLite files and blobs under TMPDIR and never deletes them.
const scratch = mkdtempSync(join(tmpdir(), 'conversant-bsky-'))
process.env.TMPDIR = scratch
const exit = (code) => {
  rmSync(scratch, { recursive: true, force: true })
  process.exit(code)
}
// Node's default report dumps whole response objects; the message and stack say enough.
process.on('uncaughtException', (err) => {
  console.error(`start-network: ${err.stack ?? err}`)
  exit(1)
})
let network
let closing
const shutdown = () => {
  closing ??= Promise.resolve(network?.close()).finally(() => exit(0))
}
process.on('SIGTERM', shutdown)
process.on('SIGINT', shutdown)

network = await TestNetwork.create({
  dbPostgresSchema: args.schema,
  plc: { port: Number(args.plc) },
  pds: { port: Number(args.pds), hostname: 'localhost' },
  bsky: { port: Number(args.appview) },
  ozone: { port: Number(args.ozone) },
})

const accounts = {}
for (const handle of args.account) {
  const password = `${handle.split('.')[0]}-password`
  const { data } = await network.pds.getAgent().createAccount({
    handle,
    email: `${handle}@example.com`,
    password,
  })
  accounts[handle] = { did: data.did, password }
}
await network.processAll()

const commands = {
  processAll: () => network.processAll(),
}
const input = createInterface({ input: process.stdin })
input.on('line', async (line) => {
  try {
    const { cmd } = JSON.parse(line)
    if (!commands[cmd]) throw new Error(`unknown command: ${cmd}`)
    await commands[cmd]()
    send({ ok: true })
  } catch (err) {
    send({ ok: false, error: String(err) })
  }
})
// A parent that dies without stopping us closes our stdin.
input.on('close', shutdown)

send({
  ready: true,
  plc: network.plc.url,
  pds: network.pds.url,
  appview: network.bsky.url,
  accounts,
})
