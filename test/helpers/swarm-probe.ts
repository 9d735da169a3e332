// A raw Hyperswarm (HyperDHT + UDX + secret-stream) stream, the lab's
// yardstick for what the transport disktro runs on carries over a link
// (test/helpers/net-lab.ts), 1 MiB writes as disktro makes them:
//   node swarm-probe.js server BOOTSTRAP SEED [widen]       prints "listening", then {"bytes","seconds"}
//   node swarm-probe.js client BOOTSTRAP SEED MiB [widen]
// widen: the socket buffers disktro gives its own connections.
import { createRequire } from 'node:module'
import { createHash } from 'node:crypto'
import { widenSocketBuffers } from '../../src/net/socket-buffers.js'

const require = createRequire(import.meta.url)
const HyperDHT = require('hyperdht')
const [mode, bootstrap, seed, ...rest] = process.argv.slice(2)
const keyPair = HyperDHT.keyPair(createHash('sha256').update(seed).digest())
const dht = new HyperDHT({ bootstrap: [bootstrap] })
const widen = rest.includes('widen')

if (mode === 'server') {
  const server = dht.createServer((conn: any) => {
    conn.on('error', () => {})
    if (widen) widenSocketBuffers(conn)
    let bytes = 0
    let first = 0
    conn.on('data', (d: Buffer) => {
      if (first === 0) first = performance.now()
      bytes += d.length
    })
    conn.on('end', () => {
      process.stdout.write(JSON.stringify({ bytes, seconds: (performance.now() - first) / 1000 }) + '\n')
      conn.end('done')
      setTimeout(() => process.exit(0), 500)
    })
  })
  await server.listen(keyPair)
  process.stdout.write('listening\n')
} else {
  const conn = dht.connect(keyPair.publicKey)
  conn.on('error', (e: Error) => { process.stderr.write(e.message + '\n'); process.exit(1) })
  conn.on('open', () => {
    if (widen) widenSocketBuffers(conn)
    const buf = Buffer.alloc(1024 * 1024, 7)
    let left = Number(rest[0]) * 1024 * 1024
    const pump = (): void => {
      while (left > 0) {
        left -= buf.length
        if (!conn.write(buf)) { conn.once('drain', pump); return }
      }
      conn.end()
    }
    pump()
  })
  conn.on('data', () => { conn.destroy(); process.exit(0) })
}
