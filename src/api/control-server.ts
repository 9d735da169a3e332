import { createServer, type Server, type Socket } from 'node:net'
import { chmod, unlink } from 'node:fs/promises'
import { join } from 'node:path'

export const CONTROL_SOCKET = 'control.sock'
const MAX_REQUEST = 64 * 1024

export type ControlHandler = (request: { cmd: string, [k: string]: unknown }) => Promise<unknown>

// The local control channel: a unix socket in the data dir, mode 0600, one
// JSON request per line, one JSON reply per line. Only the owner of the data
// dir can talk to the daemon.
export class ControlServer {
  private server: Server | null = null
  readonly path: string

  constructor (dataDir: string, private readonly handler: ControlHandler, private readonly log: (line: string) => void) {
    this.path = join(dataDir, CONTROL_SOCKET)
  }

  async open (): Promise<void> {
    await unlink(this.path).catch(() => {})
    const server = createServer(sock => this.serve(sock))
    await new Promise<void>((resolve, reject) => {
      server.once('error', reject)
      // The socket is made by bind(2), synchronously inside listen(), with
      // the mode 0777 & ~umask: under umask 077 it never exists open to
      // others, not even until the chmod below (issue 28, item 9).
      const umask = process.umask(0o077)
      try {
        server.listen(this.path, () => { server.off('error', reject); resolve() })
      } finally {
        process.umask(umask)
      }
    })
    await chmod(this.path, 0o600)
    server.unref()
    this.server = server
  }

  private serve (sock: Socket): void {
    let buf = ''
    sock.setEncoding('utf8')
    sock.on('error', () => {})
    sock.on('data', (d: string) => {
      buf += d
      if (buf.length > MAX_REQUEST) { sock.destroy(); return }
      let nl: number
      while ((nl = buf.indexOf('\n')) >= 0) {
        const line = buf.slice(0, nl)
        buf = buf.slice(nl + 1)
        void this.answer(sock, line)
      }
    })
  }

  private async answer (sock: Socket, line: string): Promise<void> {
    let reply: unknown
    try {
      const req = JSON.parse(line)
      if (typeof req !== 'object' || req === null || typeof req.cmd !== 'string') throw new Error('request needs a cmd')
      reply = { ok: true, data: await this.handler(req) }
    } catch (e) {
      reply = { ok: false, error: (e as Error).message }
    }
    if (!sock.destroyed) sock.write(JSON.stringify(reply) + '\n')
  }

  async close (): Promise<void> {
    const s = this.server
    if (!s) return
    this.server = null
    await new Promise<void>(resolve => s.close(() => resolve()))
    await unlink(this.path).catch(() => {})
  }
}
