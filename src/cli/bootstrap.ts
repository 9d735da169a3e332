import type { Argv } from 'yargs'
import { createRequire } from 'node:module'
import type { GlobalArgs } from './common.js'
import { createSocket } from 'node:dgram'

const require = createRequire(import.meta.url)

export function bootstrapCommand (y: Argv<GlobalArgs>): Argv<GlobalArgs> {
  return y.command('bootstrap', 'run a DHT bootstrap node for a private network or tests (foreground)',
    a => a
      .option('host', { type: 'string', demandOption: true, describe: 'address to bind and announce, e.g. 127.0.0.1' })
      .option('port', { type: 'number', default: 49737, describe: 'UDP port (0 picks a free one)' })
      .option('nodes', { type: 'number', default: 2, describe: 'extra DHT nodes to run beside it, so a small network has a routing table' }),
    async argv => {
      const HyperDHT = require('hyperdht')
      const host = String(argv.host)
      const boot = HyperDHT.bootstrapper(Number(argv.port) || await freeUdpPort(host), host)
      await boot.ready()
      const port = boot.address().port
      const extra: Array<{ destroy (): Promise<void> }> = []
      for (let i = 0; i < Number(argv.nodes); i++) {
        const n = new HyperDHT({ ephemeral: false, firewalled: false, bootstrap: [{ host, port }], host })
        await n.fullyBootstrapped()
        extra.push(n)
      }
      process.stdout.write(`disktro: DHT bootstrap node listening on ${host}:${port}\n`)
      await new Promise<void>(resolve => {
        process.once('SIGINT', resolve)
        process.once('SIGTERM', resolve)
      })
      await Promise.all([...extra.map(n => n.destroy()), boot.destroy()])
      process.exit(0)
    })
}

// dht-rpc's bootstrapper needs a concrete port: ask the OS for a free one.
function freeUdpPort (host: string): Promise<number> {
  return new Promise((resolve, reject) => {
    const s = createSocket('udp4')
    s.once('error', reject)
    s.bind(0, host, () => {
      const port = s.address().port
      s.close(() => resolve(port))
    })
  })
}
