import type { PeerView, ThroughputSample } from '../web-types.js'
import { byId, h, replace } from './dom.js'
import { ago, bytes, shortId } from './format.js'
import { drawChart } from './chart.js'

const HISTORY = 120

// Peers, live from the event stream: state, last heard, RTT, what they hold.
export class PeersView {
  private samples: ThroughputSample[] = []
  private peers: PeerView[] = []
  visible = false

  history (samples: ThroughputSample[]): void {
    this.samples = samples.slice(-HISTORY)
    if (this.visible) drawChart(this.samples)
  }

  update (peers: PeerView[], sample: ThroughputSample): void {
    this.peers = peers
    this.samples.push(sample)
    if (this.samples.length > HISTORY) this.samples.shift()
    if (this.visible) this.render()
  }

  render (): void {
    drawChart(this.samples)
    const peers = [...this.peers].sort((a, b) => Number(b.online) - Number(a.online) || a.id.localeCompare(b.id))
    replace(byId('peer-rows'), ...peers.map(p => h('tr', { 'data-peer': p.id, 'data-online': String(p.online) },
      h('td', { class: 'mono', title: `${p.id}\n${p.address}` }, shortId(p.id)),
      h('td', {}, p.role === 'full' ? 'full member' : 'storage-only'),
      h('td', {}, h('span', { class: `state ${p.online ? 'online' : 'offline'}` }, h('span', { class: 'dot' }), p.online ? 'online' : 'offline')),
      h('td', {}, p.online ? ago(p.lastSeen) : `${ago(p.lastSeen)}`),
      h('td', { class: 'num' }, p.rttMs === null ? '–' : `${p.rttMs.toFixed(1)} ms`),
      h('td', { class: 'num', title: p.chunks === null ? '' : `${p.chunks} chunks` }, p.bytes === null ? '–' : `${bytes(p.bytes)}`),
      h('td', { class: 'num' }, bytes(p.sentBytes)),
      h('td', { class: 'num' }, String(p.pins)))))
    byId('peers-empty').hidden = peers.length > 0
  }
}
