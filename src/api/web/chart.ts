import type { ThroughputSample } from '../web-types.js'
import { byId, h, replace, svg } from './dom.js'
import { rate } from './format.js'

const W = 600
const H = 120
const SPAN = 120 // samples across the chart: two minutes

// A line per series over the last two minutes, scaled to the peak.
export function drawChart (samples: ThroughputSample[]): void {
  const s = samples.slice(-SPAN)
  const peak = Math.max(1024, ...s.map(x => Math.max(x.sent, x.received, x.web)))
  const x = (i: number): number => W - (s.length - 1 - i) * (W / (SPAN - 1))
  const y = (v: number): number => H - 4 - (H - 8) * v / peak
  const line = (key: 'sent' | 'received' | 'web'): SVGElement =>
    svg('polyline', { class: `line ${key}`, points: s.map((p, i) => `${x(i).toFixed(1)},${y(p[key]).toFixed(1)}`).join(' ') })
  replace(byId('chart'),
    svg('line', { class: 'axis', x1: 0, x2: W, y1: H - 4, y2: H - 4 }),
    svg('line', { class: 'axis', x1: 0, x2: W, y1: 4, y2: 4 }),
    line('received'), line('web'), line('sent'))
  const last = s[s.length - 1]
  replace(byId('chart-scale'),
    h('span', {}, 'two minutes ago'),
    h('span', { class: 'now' }, last ? `now: sent ${rate(last.sent)} · received ${rate(last.received)} · browser ${rate(last.web)}` : ''),
    h('span', {}, `peak ${rate(peak)}`))
}
