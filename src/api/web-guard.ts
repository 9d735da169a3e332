import { createHash, randomBytes, timingSafeEqual } from 'node:crypto'
import { isIP } from 'node:net'
import type { IncomingMessage } from 'node:http'

export type AuthMethod = 'bearer' | 'ticket'

const STATE_CHANGING = new Set(['POST', 'PUT', 'PATCH', 'DELETE'])
const TICKET_MS = 60_000
const MAX_TICKETS = 256

// Who may talk to the dashboard: a secret token, new for every daemon run,
// handed out only over the control socket (mode 0600). It is never a
// cookie: cookies ignore ports, so a browser would send one to every other
// HTTP server on 127.0.0.1 too (issue 28, item 10). The link carries it in
// its fragment (#token=...), which a browser never sends to any server; the
// page keeps it in sessionStorage (per origin, port included) and sends it
// as `Authorization: Bearer` with each API call. A download, which the
// browser fetches by itself, carries a ticket instead: single use, for one
// path, for a minute. On top of that the Host header must name this server
// (a DNS-rebinding page names its own domain) and a state-changing request
// must come from the dashboard's own origin.
export class WebGuard {
  readonly token = randomBytes(32).toString('base64url')
  private readonly tokenHash = digest(this.token)
  private allowed = new Set<string>()
  private anyIp = false
  private port = 0
  // Tickets by their hash: the path they open and until when.
  private readonly tickets = new Map<string, { path: string, until: number }>()

  // After listening: the names this server answers to.
  bind (listenHost: string, port: number): void {
    this.port = port
    const hosts = ['127.0.0.1', 'localhost', '[::1]']
    if (!['127.0.0.1', 'localhost', '::1'].includes(listenHost)) hosts.push(isIP(listenHost) === 6 ? `[${listenHost}]` : listenHost.toLowerCase())
    this.allowed = new Set(hosts.map(h => `${h}:${port}`))
    // Listening on every address: any IP literal is fine (rebinding needs a
    // DNS name), names other than localhost are not.
    this.anyIp = listenHost === '0.0.0.0' || listenHost === '::'
  }

  hostAllowed (host: string | undefined): boolean {
    if (!host) return false
    const h = host.toLowerCase()
    if (this.allowed.has(h)) return true
    if (!this.anyIp) return false
    const m = /^\[?([0-9a-f:.]+)\]?:(\d+)$/.exec(h)
    return m !== null && Number(m[2]) === this.port && isIP(m[1]) !== 0
  }

  // The bearer token, or (only where `ticketPath` says which path the request
  // is for) a ticket for that path, used up here. Nothing else: no cookie,
  // no token in the URL (it would stay in the history and in logs).
  authenticate (req: IncomingMessage, url: URL, ticketPath: () => string | null): AuthMethod | null {
    const auth = req.headers.authorization
    if (auth !== undefined) return auth.startsWith('Bearer ') && this.matches(auth.slice(7).trim()) ? 'bearer' : null
    const ticket = url.searchParams.get('ticket')
    if (ticket === null) return null
    const path = ticketPath()
    return path !== null && this.redeem(ticket, path) ? 'ticket' : null
  }

  // A ticket for one GET of `path`, good once within TICKET_MS.
  issueTicket (path: string): { ticket: string, expiresIn: number } {
    const now = Date.now()
    for (const [k, v] of this.tickets) if (v.until <= now) this.tickets.delete(k)
    // Never more than MAX_TICKETS outstanding: the oldest go first.
    while (this.tickets.size >= MAX_TICKETS) this.tickets.delete(this.tickets.keys().next().value as string)
    const ticket = randomBytes(24).toString('base64url')
    this.tickets.set(digest(ticket).toString('hex'), { path, until: now + TICKET_MS })
    return { ticket, expiresIn: TICKET_MS / 1000 }
  }

  private redeem (ticket: string, path: string): boolean {
    const key = digest(ticket).toString('hex')
    const t = this.tickets.get(key)
    if (t === undefined) return false
    this.tickets.delete(key) // single use, also when it does not fit
    return t.until > Date.now() && t.path === path
  }

  // Why an API request is refused as cross-site, or null, token or not. Any
  // request another site's page makes (an <img>, a form, a fetch) is
  // refused, reads included. Browsers send Origin (and Sec-Fetch-Site) with
  // every POST/PUT/DELETE, which must then be the dashboard's own; a request
  // without either comes from a script.
  crossSite (req: IncomingMessage): string | null {
    const site = header(req, 'sec-fetch-site')
    if (site === 'cross-site' || site === 'same-site') return `cross-site request refused (Sec-Fetch-Site: ${site})`
    if (!STATE_CHANGING.has(req.method ?? '')) return null
    if (site !== null && site !== 'same-origin') return `cross-site request refused (Sec-Fetch-Site: ${site})`
    const origin = header(req, 'origin')
    if (origin !== null && origin.toLowerCase() !== `http://${(req.headers.host ?? '').toLowerCase()}`) return `cross-site request refused (Origin: ${origin})`
    return null
  }

  private matches (candidate: string): boolean {
    return timingSafeEqual(digest(candidate), this.tokenHash)
  }
}

function digest (s: string): Buffer {
  return createHash('sha256').update(s).digest()
}

function header (req: IncomingMessage, name: string): string | null {
  const v = req.headers[name]
  return typeof v === 'string' ? v : null
}
