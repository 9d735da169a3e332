import type { ApiReply } from '../web-types.js'

// Talks to the daemon that served this page. The token travels as an
// HttpOnly cookie, so scripts never see it.
export class ApiError extends Error {
  constructor (message: string, readonly status: number, readonly code: string | null) {
    super(message)
  }
}

let onUnauthorized: (() => void) | null = null
export function whenUnauthorized (fn: () => void): void { onUnauthorized = fn }

export async function call<T> (method: string, url: string, body?: unknown): Promise<T> {
  const res = await fetch(url, {
    method,
    credentials: 'same-origin',
    headers: body === undefined ? {} : { 'Content-Type': 'application/json' },
    body: body === undefined ? undefined : JSON.stringify(body)
  })
  return await unwrap<T>(res.status, await res.text())
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
    xhr.upload.onprogress = e => progress(e.loaded, e.lengthComputable ? e.total : file.size)
    xhr.onerror = () => reject(new ApiError('the connection to the daemon broke', 0, null))
    xhr.onload = () => {
      unwrap(xhr.status, xhr.responseText).then(() => resolve(), reject)
    }
    xhr.send(file)
  })
}
