import { createServer, type Server, type IncomingMessage, type ServerResponse } from 'node:http'
import { readFile } from 'node:fs/promises'
import { fileURLToPath } from 'node:url'
import { join } from 'node:path'
import { isIP } from 'node:net'
import { WebGuard } from './web-guard.js'
import { WebApi, clean } from './web-api.js'
import type { WebBackend } from './web-backend.js'
import { INDEX_HTML, STYLE_CSS } from './web-page.js'

const PORT_TRIES = 50 // "taken": look this far up for a free port
const HEADERS_MS = 10_000
const IDLE_MS = 120_000
// The page's modules: tsc compiles src/api/web/*.ts next to this file.
const ASSET_DIR = fileURLToPath(new URL('./web/', import.meta.url))

const SECURITY_HEADERS = {
  'Content-Security-Policy': "default-src 'none'; script-src 'self'; style-src 'self'; connect-src 'self'; img-src 'self' data:; form-action 'self'; frame-ancestors 'none'; base-uri 'none'",
  'X-Content-Type-Options': 'nosniff',
  'X-Frame-Options': 'DENY',
  'Referrer-Policy': 'no-referrer',
  'Cross-Origin-Opener-Policy': 'same-origin',
  'Cross-Origin-Resource-Policy': 'same-origin'
}

export interface WebServerOptions {
  host: string
  port: number
  backend: WebBackend
  log: (line: string) => void
}

// The dashboard and its HTTP API on one port, plain node:http. Every request
// passes the Host check first; every API request then the token (or a
// download's ticket) and the cross-site checks (web-guard.ts).
export class WebServer {
  private server: Server | null = null
  private readonly guard = new WebGuard()
  private readonly api: WebApi
  private readonly requests = new Set<Promise<void>>()
  private port = 0

  constructor (private readonly o: WebServerOptions) {
    this.api = new WebApi(o.backend, o.log, path => this.guard.issueTicket(path))
  }

  async open (): Promise<void> {
    // Time limits: headers must arrive within HEADERS_MS (checked every
    // second), and a refused request's connection is cut at once (deny), so a
    // client without the token can neither trickle headers nor stream a body
    // for ever. An upload or download with the token takes as long as it
    // takes (no limit on the whole request), but not IDLE_MS without a byte.
    const server = createServer({ connectionsCheckingInterval: 1000 }, (req, res) => this.track(this.handle(req, res)))
    server.requestTimeout = 0
    server.headersTimeout = HEADERS_MS
    server.setTimeout(IDLE_MS, sock => sock.destroy())
    let port = this.o.port
    for (let i = 0; ; i++) {
      try {
        await listen(server, port, this.o.host)
        break
      } catch (e) {
        const code = (e as NodeJS.ErrnoException).code
        if (code !== 'EADDRINUSE' || port === 0 || i >= PORT_TRIES || port >= 65535) {
          this.api.close()
          throw new Error(`cannot serve the dashboard on ${this.o.host}:${port}: ${(e as Error).message}`)
        }
        port++
      }
    }
    server.unref()
    this.server = server
    this.port = (server.address() as { port: number }).port
    this.guard.bind(this.o.host, this.port)
    const moved = this.o.port !== 0 && this.port !== this.o.port ? ` (port ${this.o.port} was taken)` : ''
    this.o.log(`web dashboard on ${this.origin}/${moved}; \`disktro web\` prints its link with the access token`)
    if (!isLoopback(this.o.host)) this.o.log(`web dashboard listens on ${this.o.host}, beyond this machine: anyone with the token reaches it`)
  }

  get origin (): string {
    const host = this.o.host
    const h = host === '0.0.0.0' ? '127.0.0.1' : host === '::' ? '[::1]' : isIP(host) === 6 ? `[${host}]` : host
    return `http://${h}:${this.port}`
  }

  // The link `disktro web` prints: the token is in the fragment, which the
  // browser keeps to itself (web-guard.ts).
  get url (): string {
    return `${this.origin}/#token=${this.guard.token}`
  }

  get token (): string {
    return this.guard.token
  }

  async close (): Promise<void> {
    const s = this.server
    if (!s) return
    this.server = null
    this.api.close()
    const closed = new Promise<void>(resolve => s.close(() => resolve()))
    // Cut uploads and downloads in flight, and wait for them to clean up (an
    // upload removes its partial file) before the layers under them close.
    s.closeAllConnections()
    await Promise.allSettled([...this.requests])
    await closed
  }

  private track (p: Promise<void>): void {
    this.requests.add(p)
    void p.finally(() => this.requests.delete(p))
  }

  private async handle (req: IncomingMessage, res: ServerResponse): Promise<void> {
    try {
      for (const [k, v] of Object.entries(SECURITY_HEADERS)) res.setHeader(k, v)
      if (!this.guard.hostAllowed(req.headers.host)) return deny(req, res, 403, `Host ${req.headers.host ?? '(none)'} is not this dashboard's: open ${this.origin}/`)
      const url = new URL(req.url ?? '/', this.origin)
      const api = url.pathname.startsWith('/api/')
      // The page and its scripts hold no data: they load without the token,
      // which they then find in the fragment or in sessionStorage.
      if (!api) {
        if (req.method !== 'GET' && req.method !== 'HEAD') return deny(req, res, 405, `${req.method} not allowed`)
        return await this.asset(url.pathname, res)
      }
      const via = this.guard.authenticate(req, url, () => ticketPathOf(req, url))
      if (via === null) return deny(req, res, 401, 'access needs the token: run `disktro web` for the link')
      const refused = this.guard.crossSite(req)
      if (refused !== null) return deny(req, res, 403, refused)
      return await this.api.handle(req, res, url)
    } catch (e) {
      this.o.log(`web: ${req.method} ${req.url}: ${(e as Error).message}`)
      if (!res.headersSent) deny(req, res, 500, 'internal error')
      else res.destroy()
    }
  }

  private async asset (path: string, res: ServerResponse): Promise<void> {
    if (path === '/' || path === '/index.html') return send(res, 'text/html; charset=utf-8', INDEX_HTML)
    if (path === '/style.css') return send(res, 'text/css; charset=utf-8', STYLE_CSS)
    const m = /^\/app\/([a-z0-9-]+\.js)$/.exec(path)
    if (m) {
      const text = await readFile(join(ASSET_DIR, m[1]), 'utf8').catch(() => null)
      if (text !== null) return send(res, 'text/javascript; charset=utf-8', text)
    }
    res.writeHead(404, { 'Content-Type': 'text/plain; charset=utf-8' })
    res.end('not found\n')
  }
}

function send (res: ServerResponse, type: string, body: string): void {
  res.writeHead(200, { 'Content-Type': type, 'Content-Length': Buffer.byteLength(body), 'Cache-Control': 'no-cache' })
  res.end(body)
}

// A refusal: JSON under /api/, text elsewhere. A 401 or 403 ends the
// connection: the socket is destroyed once the answer is written, so a
// client without the token cannot stream a body, or keep the connection for
// another try; the body is never read. Other refusals drain it, so the
// client reads the answer instead of a reset.
function deny (req: IncomingMessage, res: ServerResponse, status: number, message: string): void {
  const cut = status === 401 || status === 403
  if (!cut) req.resume()
  const api = (req.url ?? '').startsWith('/api/')
  const body = api ? JSON.stringify({ success: false, message, data: { code: status === 401 ? 'UNAUTHORIZED' : status === 403 ? 'FORBIDDEN' : 'ERROR' } }) : message + '\n'
  res.writeHead(status, { 'Content-Type': api ? 'application/json; charset=utf-8' : 'text/plain; charset=utf-8', 'Content-Length': Buffer.byteLength(body), 'Cache-Control': 'no-store', ...(cut ? { Connection: 'close' } : {}) })
  res.end(body, () => { if (cut) req.socket.destroy() })
}

// The path a ticket must be for: only a download takes one.
function ticketPathOf (req: IncomingMessage, url: URL): string | null {
  if (req.method !== 'GET' || url.pathname !== '/api/download') return null
  try {
    return clean(url.searchParams.get('path') ?? '')
  } catch {
    return null
  }
}

function listen (server: Server, port: number, host: string): Promise<void> {
  return new Promise((resolve, reject) => {
    const onError = (e: Error): void => { server.off('listening', onListening); reject(e) }
    const onListening = (): void => { server.off('error', onError); resolve() }
    server.once('error', onError)
    server.once('listening', onListening)
    server.listen(port, host)
  })
}

function isLoopback (host: string): boolean {
  return host === 'localhost' || host === '::1' || /^127\./.test(host)
}
