import { createHash, randomBytes, timingSafeEqual } from 'node:crypto'
import { isIP } from 'node:net'
import type { IncomingMessage } from 'node:http'

export type AuthMethod = 'cookie' | 'bearer' | 'query'

const STATE_CHANGING = new Set(['POST', 'PUT', 'PATCH', 'DELETE'])

// Who may talk to the dashboard: a secret token, new for every daemon run,
// handed out only over the control socket (mode 0600). The page gets it once
// in its URL and keeps it as an HttpOnly SameSite=Strict cookie; scripts send
// it as a bearer token. On top of that the Host header must name this server
// (a DNS-rebinding page names its own domain) and a state-changing request
// must come from the dashboard's own origin.
export class WebGuard {
  readonly token = randomBytes(32).toString('base64url')
  private readonly tokenHash = digest(this.token)
  private allowed = new Set<string>()
  private anyIp = false
  private port = 0

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

  get cookieName (): string {
    // Cookies ignore ports: one name per port keeps two daemons apart.
    return `disktro_${this.port}`
  }

  get cookie (): string {
    return `${this.cookieName}=${this.token}; HttpOnly; SameSite=Strict; Path=/`
  }

  hostAllowed (host: string | undefined): boolean {
    if (!host) return false
    const h = host.toLowerCase()
    if (this.allowed.has(h)) return true
    if (!this.anyIp) return false
    const m = /^\[?([0-9a-f:.]+)\]?:(\d+)$/.exec(h)
    return m !== null && Number(m[2]) === this.port && isIP(m[1]) !== 0
  }

  authenticate (req: IncomingMessage, url: URL): AuthMethod | null {
    const auth = req.headers.authorization
    if (auth?.startsWith('Bearer ')) return this.matches(auth.slice(7).trim()) ? 'bearer' : null
    const cookie = cookieValue(req.headers.cookie, this.cookieName)
    if (cookie !== null && this.matches(cookie)) return 'cookie'
    const q = url.searchParams.get('token')
    if (q !== null && this.matches(q)) return 'query'
    return null
  }

  // Why a state-changing request is refused as cross-site, or null. Browsers
  // send Origin (and Sec-Fetch-Site) with every POST/PUT/DELETE; a request
  // without either comes from a script, which must then hold the token itself.
  // Any API call another site's page makes (an <img>, a form, a fetch) is
  // refused too, reads included: only the dashboard's own page, a typed URL
  // and scripts without browser headers get through.
  crossSite (req: IncomingMessage, via: AuthMethod, api: boolean): string | null {
    const site = header(req, 'sec-fetch-site')
    if (api && (site === 'cross-site' || site === 'same-site')) return `cross-site request refused (Sec-Fetch-Site: ${site})`
    if (!STATE_CHANGING.has(req.method ?? '')) return null
    if (site !== null && site !== 'same-origin') return `cross-site request refused (Sec-Fetch-Site: ${site})`
    const origin = header(req, 'origin')
    if (origin !== null && origin.toLowerCase() !== `http://${(req.headers.host ?? '').toLowerCase()}`) return `cross-site request refused (Origin: ${origin})`
    if (site === null && origin === null && via === 'cookie') return 'request without Origin refused: send the token as a bearer token'
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

function cookieValue (header: string | undefined, name: string): string | null {
  if (!header) return null
  for (const part of header.split(';')) {
    const eq = part.indexOf('=')
    if (eq > 0 && part.slice(0, eq).trim() === name) return part.slice(eq + 1).trim()
  }
  return null
}
