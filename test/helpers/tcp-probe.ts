// A plain TCP stream, the lab's yardstick for a link (test/helpers/net-lab.ts):
//   node tcp-probe.js server HOST PORT      receives one stream, prints {"bytes","seconds"} and exits
//   node tcp-probe.js client HOST PORT MiB  sends MiB, waits for the server's word that all arrived
// The receiver times from its first byte to the last.
import net from 'node:net'

const [mode, host, port, mib] = process.argv.slice(2)
if (mode === 'server') {
  const server = net.createServer(s => {
    let bytes = 0
    let first = 0
    s.on('data', (d: Buffer) => {
      if (first === 0) first = performance.now()
      bytes += d.length
    })
    s.on('end', () => {
      const seconds = (performance.now() - first) / 1000
      process.stdout.write(JSON.stringify({ bytes, seconds }) + '\n')
      s.end('done', () => { server.close(); process.exit(0) })
    })
  })
  server.listen(Number(port), '0.0.0.0', () => process.stdout.write('listening\n'))
} else if (mode === 'client') {
  const s = net.connect(Number(port), host, () => {
    const buf = Buffer.alloc(1 << 16, 7)
    let left = Number(mib) * 1024 * 1024
    const pump = (): void => {
      while (left > 0) {
        left -= buf.length
        if (!s.write(buf)) { s.once('drain', pump); return }
      }
      s.end()
    }
    pump()
  })
  s.on('data', () => { s.destroy(); process.exit(0) })
  s.on('error', e => { process.stderr.write(e.message + '\n'); process.exit(1) })
} else {
  process.stderr.write('usage: tcp-probe server HOST PORT | client HOST PORT MiB\n')
  process.exit(2)
}
