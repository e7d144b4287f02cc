// Starts the AT Protocol reference servers (PLC, PDS, AppView) for the
// integration tests; bsky_network.py drives it. Prints one JSON line once
// ready, then answers one JSON line per command read from stdin.
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
// Node's default report dumps whole response objects; the message and stack say enough.
process.on('uncaughtException', (err) => {
  console.error(`start-network: ${err.stack ?? err}`)
  process.exit(1)
})

const network = await TestNetwork.create({
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

let closing
const shutdown = () => {
  closing ??= network.close().finally(() => process.exit(0))
}
process.on('SIGTERM', shutdown)
process.on('SIGINT', shutdown)

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
