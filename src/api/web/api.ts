import type { ApiReply } from '../web-types.js'

// Talks to the daemon that served this page. The token arrives once, in the
// fragment of the link `disktro web` prints (#token=..., never sent to a
// server), and is kept in sessionStorage: this tab, this origin (port
// included), gone with the tab. Every API call sends it as a bearer token;
// there is no cookie, which other servers on 127.0.0.1 would receive too.
export class ApiError extends Error {
  constructor (message: string, readonly status: number, readonly code: string | null) {
    super(message)
  }
}

const TOKEN_KEY = 'disktro-token'

// Moves a token in the fragment into sessionStorage and out of the address
// bar (and so out of the history). Called before the page reads its route.
export function takeToken (): void {
  const m = /^#token=([A-Za-z0-9_-]+)/.exec(location.hash)
  if (m === null) return
  sessionStorage.setItem(TOKEN_KEY, m[1])
  history.replaceState(null, '', location.pathname + location.search + '#/files')
}

function authHeader (): Record<string, string> {
  const token = sessionStorage.getItem(TOKEN_KEY)
  return token === null ? {} : { Authorization: `Bearer ${token}` }
}

let onUnauthorized: (() => void) | null = null
export function whenUnauthorized (fn: () => void): void { onUnauthorized = fn }

export async function call<T> (method: string, url: string, body?: unknown): Promise<T> {
  const res = await fetch(url, {
    method,
    credentials: 'omit',
    headers: { ...authHeader(), ...(body === undefined ? {} : { 'Content-Type': 'application/json' }) },
    body: body === undefined ? undefined : JSON.stringify(body)
  })
  return await unwrap<T>(res.status, await res.text())
}

// A download: the browser fetches it by itself, so it goes with a ticket
// (single use, this path, a minute) instead of the token.
export async function download (path: string, name: string): Promise<void> {
  const t = await call<{ ticket: string }>('POST', '/api/ticket', { path })
  const a = document.createElement('a')
  a.href = `/api/download?path=${q(path)}&ticket=${encodeURIComponent(t.ticket)}`
  a.download = name
  a.hidden = true
  document.body.append(a)
  a.click()
  a.remove()
}

// The daemon's event stream (server-sent events), read with fetch, which
// sends the token (EventSource cannot). Reconnects after a break; stops
// for good on a 401.
export function events (on: (event: string, data: string) => void, live: (up: boolean) => void): void {
  const connect = async (): Promise<boolean> => {
    const res = await fetch('/api/events', { credentials: 'omit', headers: authHeader() })
    if (res.status === 401) { onUnauthorized?.(); return false }
    if (!res.ok || res.body === null) return true
    live(true)
    const reader = res.body.pipeThrough(new TextDecoderStream()).getReader()
    let buf = ''
    for (;;) {
      const { value, done } = await reader.read()
      if (done) return true
      buf += value
      let end: number
      while ((end = buf.indexOf('\n\n')) >= 0) {
        const block = buf.slice(0, end)
        buf = buf.slice(end + 2)
        let event = 'message'
        const data: string[] = []
        for (const line of block.split('\n')) {
          if (line.startsWith('event: ')) event = line.slice(7)
          else if (line.startsWith('data: ')) data.push(line.slice(6))
        }
        on(event, data.join('\n'))
      }
    }
  }
  const loop = (): void => {
    connect().catch(() => true).then(again => {
      live(false)
      if (again) setTimeout(loop, 2000)
    }, () => {})
  }
  loop()
}

async function unwrap<T> (status: number, text: string): Promise<T> {
  let r: ApiReply<T | { code?: string } | null>
  try {
    r = JSON.parse(text)
  } catch {
    throw new ApiError(`the daemon answered ${status}`, status, null)
  }
  if (status === 401) onUnauthorized?.()
  if (!r.success) throw new ApiError(r.message, status, (r.data as { code?: string } | null)?.code ?? null)
  return r.data as T
}

export function q (path: string): string {
  return encodeURIComponent(path)
}

// XMLHttpRequest, not fetch: only it reports upload progress. The browser
// streams the File from disk.
export function uploadFile (path: string, file: File, o: { overwrite: boolean, pin: string }, progress: (sent: number, total: number) => void): Promise<void> {
  return new Promise((resolve, reject) => {
    const xhr = new XMLHttpRequest()
    xhr.open('POST', `/api/upload?path=${q(path)}${o.overwrite ? '&overwrite=1' : ''}${o.pin ? `&pin=${o.pin}` : ''}`)
    xhr.setRequestHeader('Content-Type', 'application/octet-stream')
    for (const [k, v] of Object.entries(authHeader())) xhr.setRequestHeader(k, v)
    xhr.upload.onprogress = e => progress(e.loaded, e.lengthComputable ? e.total : file.size)
    xhr.onerror = () => reject(new ApiError('the connection to the daemon broke', 0, null))
    xhr.onload = () => {
      unwrap(xhr.status, xhr.responseText).then(() => resolve(), reject)
    }
    xhr.send(file)
  })
}
