import type { LiveHello, LiveTick, NodeInfo, ReplicationSummary } from '../web-types.js'
import { call, events, takeToken, whenUnauthorized } from './api.js'
import { byId } from './dom.js'
import { shortId } from './format.js'
import { health } from './health.js'
import { FilesView } from './files-view.js'
import { PeersView } from './peers-view.js'
import { VolumeView } from './volume-view.js'
import { TransfersPanel } from './transfers.js'

type ViewName = 'files' | 'peers' | 'volume'

// The dashboard: three views behind hash routes (#/files/<path>, #/peers,
// #/volume), kept live by the daemon's event stream.
class App {
  private readonly transfers = new TransfersPanel()
  private readonly files = new FilesView(this.transfers, m => this.banner(m))
  private readonly peers = new PeersView()
  private readonly volume = new VolumeView(m => this.banner(m))
  private info: NodeInfo | null = null
  private view: ViewName = 'files'

  async start (): Promise<void> {
    takeToken()
    whenUnauthorized(() => this.banner('This page\'s access has expired (the daemon restarted?): run `disktro web` for a new link.', true))
    this.info = await call<NodeInfo>('GET', '/api/info')
    byId('whoami').textContent = `node ${shortId(this.info.nodeId)} · ${this.info.role === 'full' ? 'full member' : 'storage-only'}`
    byId('whoami').title = `volume ${this.info.volumeId}\nnode ${this.info.nodeId}`
    if (!this.info.files) byId('tab-files').classList.add('disabled')
    window.addEventListener('hashchange', () => { void this.route() })
    this.listen()
    await this.route()
    void this.volume.load().then(s => { if (s) this.health(s.replication, s.peers.map(p => ({ ...p, sentBytes: 0, pins: 0 }))) })
  }

  private async route (): Promise<void> {
    const hash = decodeURIComponent(location.hash.replace(/^#\/?/, ''))
    let view = (hash.split('/')[0] || 'files') as ViewName
    if (!['files', 'peers', 'volume'].includes(view)) view = 'files'
    if (view === 'files' && !this.info?.files) view = 'peers'
    this.view = view
    for (const v of ['files', 'peers', 'volume']) {
      byId(`view-${v}`).hidden = v !== view
      byId(`tab-${v}`).classList.toggle('active', v === view)
    }
    this.peers.visible = view === 'peers'
    if (view !== 'files') this.files.hide()
    if (view === 'files') {
      const parts = hash.split('/').slice(1).filter(Boolean)
      // The tab leads back to the folder last shown.
      byId('tab-files').setAttribute('href', '#/files/' + parts.map(encodeURIComponent).join('/'))
      await this.files.show('/' + parts.join('/'))
    }
    if (view === 'peers') this.peers.render()
    if (view === 'volume') await this.volume.load()
  }

  private listen (): void {
    events((event, data) => {
      if (event === 'hello') {
        const hello = JSON.parse(data) as LiveHello
        this.peers.history(hello.history)
      } else if (event === 'tick') {
        const t = JSON.parse(data) as LiveTick
        this.peers.update(t.peers, t.sample)
        this.files.setPeers(t.peers)
        this.volume.setPeers(t.peers)
        this.transfers.fromServer(t.transfers)
        if (t.replication) {
          this.health(t.replication, t.peers)
          if (this.view === 'volume') this.volume.replication(t.replication)
        }
        document.body.dataset.live = 'yes'
      }
    }, up => { if (!up) document.body.dataset.live = 'no' })
  }

  // The page is served by the daemon, so a daemon runs.
  private health (r: ReplicationSummary, peers: LiveTick['peers']): void {
    const el = byId('health')
    const h = health({ daemonRunning: true, role: this.info?.role ?? 'full', replication: r, peers: peers.map(p => ({ id: p.id, online: p.online, lastSeen: p.lastSeen ?? null })) })
    el.className = 'health ' + (r.lost > 0 ? 'lost' : h.state === 'safe' ? 'safe' : 'behind')
    el.textContent = h.headline
  }

  private banner (message: string, sticky = false): void {
    const el = byId('banner')
    el.textContent = message
    el.hidden = false
    if (!sticky) setTimeout(() => { if (el.textContent === message) el.hidden = true }, 8000)
  }
}

void new App().start().catch(e => {
  const el = document.getElementById('banner')
  if (el) { el.textContent = `The dashboard could not start: ${(e as Error).message}`; el.hidden = false }
})
