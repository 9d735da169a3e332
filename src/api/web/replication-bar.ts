import type { ChunkReplication } from '../web-types.js'
import { h } from './dom.js'

// Chunks at target (green), under target but held somewhere (amber), lost (red).
export function replicationBar (r: ChunkReplication, unit: string, done = 'at target'): HTMLElement {
  if (r.chunks === 0) return h('span', { class: 'bar-label' }, 'no data')
  const under = r.underReplicated - r.lost
  const seg = (cls: string, n: number): HTMLElement | null => {
    if (n <= 0) return null
    const s = h('span', { class: cls })
    s.style.flexGrow = String(n) // CSSOM, which the page's CSP allows
    return s
  }
  const label = r.lost > 0
    ? `${r.lost} of ${r.chunks} ${unit} LOST`
    : under > 0 ? `${r.atTarget} of ${r.chunks} ${unit} ${done}` : `all ${r.chunks} ${unit} ${done}`
  return h('div', { class: 'replication', 'data-at-target': r.atTarget, 'data-under': under, 'data-lost': r.lost, title: `${r.atTarget} at target, ${under} under target, ${r.lost} lost` },
    h('div', { class: 'bar' }, seg('ok', r.atTarget), seg('under', under), seg('lost', r.lost)),
    h('div', { class: 'bar-label' }, label))
}
