import type { Transfer } from '../web-types.js'
import { byId, h, replace } from './dom.js'
import { bytes } from './format.js'

interface Row { key: string, label: string, bytes: number, total: number | null, done: boolean, error: string | null }

const KEEP_DONE_MS = 6000

// The progress box in the corner: uploads from this page (the browser knows
// how much it sent) and downloads (the daemon reports how much it streamed).
export class TransfersPanel {
  private readonly local = new Map<string, Row & { finishedAt: number | null }>()
  private server: Transfer[] = []
  private readonly el = byId('transfers')

  uploadStarted (path: string, total: number): void {
    this.local.set(path, { key: path, label: `↑ ${path}`, bytes: 0, total, done: false, error: null, finishedAt: null })
    this.render()
  }

  uploadProgress (path: string, sent: number, total: number): void {
    const r = this.local.get(path)
    if (!r) return
    r.bytes = sent
    r.total = total
    this.render()
  }

  uploadDone (path: string, error: string | null): void {
    const r = this.local.get(path)
    if (!r) return
    r.done = true
    r.error = error
    if (!error && r.total !== null) r.bytes = r.total
    r.finishedAt = Date.now()
    this.render()
    setTimeout(() => { this.local.delete(path); this.render() }, error ? 4 * KEEP_DONE_MS : KEEP_DONE_MS)
  }

  fromServer (transfers: Transfer[]): void {
    this.server = transfers
    this.render()
  }

  private render (): void {
    const rows: Row[] = [...this.local.values()]
    for (const t of this.server) {
      if (t.kind === 'upload' && this.local.has(t.path)) continue
      rows.push({ key: `s${t.id}`, label: `${t.kind === 'upload' ? '↑' : '↓'} ${t.path}`, bytes: t.bytes, total: t.total, done: t.done, error: t.error })
    }
    this.el.hidden = rows.length === 0
    replace(this.el, h('h3', {}, 'Transfers'), ...rows.map(r => {
      const pct = r.total ? Math.min(100, Math.round(100 * r.bytes / r.total)) : null
      const state = r.error ? `failed: ${r.error}` : r.done ? 'done' : `${bytes(r.bytes)}${r.total !== null ? ` of ${bytes(r.total)}` : ''}`
      return h('div', { class: `transfer${r.error ? ' failed' : ''}`, 'data-transfer': r.label },
        h('div', { class: 'what' }, h('span', { title: r.label }, r.label), h('span', {}, pct === null || r.done ? state : `${pct}%`)),
        h('progress', { max: 100, value: r.done && !r.error ? 100 : (pct ?? 0) }),
        r.done ? null : h('div', { class: 'bar-label' }, state))
    }))
  }
}
