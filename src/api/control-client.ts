import { connect } from 'node:net'
import { join } from 'node:path'
import { CONTROL_SOCKET } from './control-server.js'

// Asks the running daemon of a data dir. Resolves null when none answers.
export function askDaemon (dataDir: string, request: { cmd: string, [k: string]: unknown }, timeoutMs = 10_000): Promise<unknown | null> {
  return new Promise((resolve, reject) => {
    const sock = connect(join(dataDir, CONTROL_SOCKET))
    let buf = ''
    const timer = setTimeout(() => { sock.destroy(); reject(new Error('the daemon did not answer in time')) }, timeoutMs)
    sock.setEncoding('utf8')
    sock.on('connect', () => sock.write(JSON.stringify(request) + '\n'))
    sock.on('data', (d: string) => {
      buf += d
      const nl = buf.indexOf('\n')
      if (nl < 0) return
      clearTimeout(timer)
      sock.end()
      try {
        const reply = JSON.parse(buf.slice(0, nl))
        if (reply.ok) resolve(reply.data)
        else reject(new Error(reply.error))
      } catch (e) {
        reject(e)
      }
    })
    sock.on('error', (e: NodeJS.ErrnoException) => {
      clearTimeout(timer)
      if (e.code === 'ENOENT' || e.code === 'ECONNREFUSED') resolve(null)
      else reject(e)
    })
  })
}
