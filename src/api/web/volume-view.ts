import type { PinReport, ReplicationSummary, StatusReport, PeerView } from '../web-types.js'
import type { VolumeStats } from '../../volume/stats.js'
import { call } from './api.js'
import { byId, h, replace } from './dom.js'
import { bytes, rate, ratio, shortId, when } from './format.js'
import { replicationBar } from './replication-bar.js'

// Totals: logical and stored bytes, compression and dedupe, replication,
// and every pin with its progress.
export class VolumeView {
  private peers: PeerView[] = []

  constructor (private readonly error: (msg: string) => void) {}

  setPeers (peers: PeerView[]): void {
    this.peers = peers
  }

  async load (): Promise<StatusReport | null> {
    try {
      const s = await call<StatusReport>('GET', '/api/status')
      this.render(s)
      return s
    } catch (e) {
      this.error((e as Error).message)
      return null
    }
  }

  private render (s: StatusReport): void {
    const v = s.volume
    const stat = (k: string, value: string, sub = ''): HTMLElement => h('div', { class: 'stat', 'data-stat': k }, h('div', { class: 'k' }, k), h('div', { class: 'v' }, value), h('div', { class: 's' }, sub))
    const cards: HTMLElement[] = []
    if ('files' in v) {
      const full = v as VolumeStats
      cards.push(
        stat('logical', bytes(full.logicalBytes), `${full.files} files in ${full.directories} folders`),
        stat('stored here', bytes(full.storedBytes), `${full.chunks} chunks`),
        stat('compression', ratio(full.compressionRatio), `${bytes(full.uniqueBytes)} → ${bytes(full.storedBytes)}`),
        stat('dedupe', ratio(full.dedupeRatio), `${bytes(full.referencedBytes)} → ${bytes(full.uniqueBytes)}`))
    } else {
      cards.push(stat('volume', shortId(v.volumeId), 'storage-only: names and sizes are sealed'))
    }
    cards.push(stat('held for the volume', bytes(s.store.bytes), `${s.store.chunks} chunks in this node's store`))
    cards.push(stat('peers', `${s.peers.filter(p => p.online).length} / ${s.peers.length}`, 'online / seen'))
    replace(byId('volume-cards'), ...cards)
    this.replication(s.replication)
    this.pins(s.pins)
  }

  replication (r: ReplicationSummary): void {
    replace(byId('volume-replication'),
      replicationBar(r, 'chunks'),
      h('dl', { class: 'kv' },
        h('dt', {}, 'target'), h('dd', {}, `${r.target} copies of every chunk`),
        h('dt', {}, 'at target'), h('dd', {}, String(r.atTarget)),
        h('dt', {}, 'under target'), h('dd', {}, `${r.underReplicated} (${r.onlyHere} only on this node)`),
        h('dt', {}, 'lost'), h('dd', {}, String(r.lost)),
        h('dt', {}, 'proven'), h('dd', {}, r.unproven === undefined ? '-' : r.unproven === 0 ? `every copy elsewhere proven by a challenge` : `${r.chunks - r.unproven} of ${r.chunks} chunks: every copy proven; the others have a copy reported only, about chunks not held here (checked by HAS)`),
        h('dt', {}, 'pending'), h('dd', {}, bytes(r.pendingBytes)),
        h('dt', {}, 'uploading'), h('dd', {}, rate(r.uploadRate))))
  }

  private pins (pins: PinReport[]): void {
    replace(byId('pin-rows'), ...pins.map(p => {
      const peer = this.peers.find(x => x.id === p.peer)
      return h('tr', { 'data-pin-path': p.path ?? '', 'data-pin-peer': p.peer },
        h('td', {}, p.path ?? `(inode ${p.ino}, no longer named)`),
        h('td', { class: 'mono', title: `${p.peer}\npinned ${when(p.created)}` }, `${shortId(p.peer)} ${p.peerOnline || peer?.online ? '' : '(offline)'}`),
        h('td', {}, replicationBar({ chunks: p.chunks, atTarget: p.held, underReplicated: p.chunks - p.held, lost: 0 }, 'chunks', 'held')),
        h('td', { class: 'row-actions' }, p.path === null ? null : h('button', { type: 'button', class: 'link danger', onclick: () => { void this.unpin(p) } }, 'Unpin')))
    }))
    byId('pins-empty').hidden = pins.length > 0
  }

  private async unpin (p: PinReport): Promise<void> {
    try {
      await call('POST', '/api/unpin', { path: p.path, peer: p.peer })
    } catch (e) {
      this.error((e as Error).message)
    }
    await this.load()
  }
}
