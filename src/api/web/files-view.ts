import type { DirListing, FileEntry, PeerView } from '../web-types.js'
import { call, download, q, uploadFile, ApiError } from './api.js'
import { byId, h, replace } from './dom.js'
import { bytes, shortId, when } from './format.js'
import type { TransfersPanel } from './transfers.js'
import { replicationBar } from './replication-bar.js'

const REFRESH_MS = 4000

// Browse the volume: sizes, chunks, each file's replication as a bar,
// pins; upload into the folder shown, download, delete, pin to a peer.
export class FilesView {
  path = '/'
  private peers: PeerView[] = []
  private peerKey = ''
  private last: DirListing | null = null
  private timer: ReturnType<typeof setInterval> | null = null
  private loading = false

  constructor (private readonly transfers: TransfersPanel, private readonly error: (msg: string) => void) {
    const input = byId<HTMLInputElement>('upload-input')
    input.addEventListener('change', () => {
      const files = [...(input.files ?? [])]
      input.value = ''
      void this.uploadAll(files)
    })
    byId('new-folder').addEventListener('click', () => { void this.newFolder() })
    const drop = byId('drop')
    drop.addEventListener('dragover', e => { e.preventDefault(); drop.classList.add('over') })
    drop.addEventListener('dragleave', () => drop.classList.remove('over'))
    drop.addEventListener('drop', e => {
      e.preventDefault()
      drop.classList.remove('over')
      void this.uploadAll([...(e.dataTransfer?.files ?? [])])
    })
  }

  async show (path: string): Promise<void> {
    this.path = path
    this.start()
    await this.load()
  }

  hide (): void {
    if (this.timer) clearInterval(this.timer)
    this.timer = null
  }

  // Peers coming and going change the pin menus and chips: re-render then.
  setPeers (peers: PeerView[]): void {
    this.peers = peers
    const key = peers.map(p => `${p.id}:${p.online}`).sort().join()
    if (key === this.peerKey) return
    this.peerKey = key
    this.uploadTargets()
    if (this.last && this.timer && document.activeElement?.tagName !== 'SELECT') this.render(this.last)
  }

  private start (): void {
    if (this.timer) return
    this.timer = setInterval(() => {
      // Not while a pin menu is open: re-rendering would close it.
      if (document.activeElement?.tagName !== 'SELECT') void this.load()
    }, REFRESH_MS)
  }

  async load (): Promise<void> {
    if (this.loading) return
    this.loading = true
    try {
      const listing = await call<DirListing>('GET', `/api/files?path=${q(this.path)}`)
      if (listing.path === this.path) this.render(listing)
    } catch (e) {
      this.error((e as Error).message)
    } finally {
      this.loading = false
    }
  }

  private render (l: DirListing): void {
    this.last = l
    this.crumbs(l.path)
    const entries = [...l.entries].sort((a, b) => (a.type === 'dir' ? 0 : 1) - (b.type === 'dir' ? 0 : 1) || a.name.localeCompare(b.name))
    replace(byId('file-rows'), ...entries.map(e => this.row(e)))
    byId('files-empty').hidden = entries.length > 0
    const note = byId('files-note')
    note.hidden = !l.truncated
    note.textContent = l.truncated ? `Showing the first ${entries.length} entries.` : ''
  }

  private crumbs (path: string): void {
    const parts = path.split('/').filter(Boolean)
    const links: Array<Node | string> = [h('a', { href: '#/files/' }, 'volume')]
    parts.forEach((p, i) => {
      links.push(h('span', { class: 'sep' }, '/'))
      links.push(h('a', { href: '#/files/' + parts.slice(0, i + 1).map(encodeURIComponent).join('/') }, p))
    })
    replace(byId('crumbs'), ...links)
  }

  private row (e: FileEntry): HTMLTableRowElement {
    const isDir = e.type === 'dir'
    const name = isDir
      ? h('a', { href: '#/files' + e.path.split('/').map(encodeURIComponent).join('/') }, e.name)
      : h('span', { title: `modified ${when(e.mtime)}` }, e.name)
    const r = e.replication
    return h('tr', { 'data-path': e.path, 'data-type': e.type },
      h('td', { class: 'name' }, h('span', { class: 'icon' }, isDir ? '▸' : e.type === 'symlink' ? '↪' : '·'), name),
      h('td', { class: 'num' }, isDir ? '' : bytes(e.size)),
      h('td', { class: 'num' }, r ? String(r.chunks) : ''),
      h('td', {}, r ? replicationBar(r, 'chunks') : null),
      h('td', {}, ...e.pins.map(p => this.pinChip(e, p))),
      h('td', { class: 'row-actions' },
        e.type === 'file' ? h('a', { href: '#', class: 'download', onclick: (ev: Event) => { ev.preventDefault(); this.download(e) } }, 'Download') : null,
        this.pinMenu(e),
        h('button', { type: 'button', class: 'link danger delete', onclick: () => { void this.remove(e) } }, 'Delete')))
  }

  private pinChip (e: FileEntry, peer: string): HTMLElement {
    const p = this.peers.find(x => x.id === peer)
    return h('span', { class: `chip${p?.online ? '' : ' offline'}`, title: `${e.path} is pinned to ${peer}: that peer always holds all of it`, 'data-pin': peer },
      shortId(peer),
      h('button', { type: 'button', title: 'unpin', onclick: () => { void this.pin(e, peer, false) } }, '×'))
  }

  private pinMenu (e: FileEntry): HTMLElement | null {
    if (e.type !== 'file' && e.type !== 'dir') return null
    const choices = this.peers.filter(p => !e.pins.includes(p.id))
    if (choices.length === 0) return null
    const sel = h('select', { class: 'pin-select', title: 'keep a full copy on one peer' },
      h('option', { value: '' }, 'Pin to…'),
      ...choices.map(p => h('option', { value: p.id }, `${shortId(p.id)} (${p.role}${p.online ? '' : ', offline'})`)))
    sel.addEventListener('change', () => { if (sel.value) void this.pin(e, sel.value, true) })
    return sel
  }

  private async pin (e: FileEntry, peer: string, on: boolean): Promise<void> {
    try {
      await call('POST', on ? '/api/pin' : '/api/unpin', { path: e.path, peer })
    } catch (err) {
      this.error((err as Error).message)
    }
    await this.load()
  }

  private download (e: FileEntry): void {
    download(e.path, e.name).catch(err => this.error((err as Error).message))
  }

  private async remove (e: FileEntry): Promise<void> {
    const what = e.type === 'dir' ? `the folder ${e.path} and everything in it` : e.path
    if (!confirm(`Delete ${what}?`)) return
    try {
      await call('DELETE', `/api/files?path=${q(e.path)}&recursive=1`)
    } catch (err) {
      this.error((err as Error).message)
    }
    await this.load()
  }

  private async newFolder (): Promise<void> {
    const name = prompt('Name of the new folder')
    if (!name) return
    try {
      await call('POST', `/api/mkdir?path=${q(this.join(name))}`)
    } catch (err) {
      this.error((err as Error).message)
    }
    await this.load()
  }

  private join (name: string): string {
    return this.path === '/' ? `/${name}` : `${this.path}/${name}`
  }

  // "Upload to": the usual placement, or also pinned to one peer.
  private uploadTargets (): void {
    const sel = byId<HTMLSelectElement>('upload-pin')
    const keep = sel.value
    replace(sel, h('option', { value: '' }, 'Upload to: replicas as usual'),
      ...this.peers.map(p => h('option', { value: p.id }, `Upload to ${shortId(p.id)} (${p.role}${p.online ? '' : ', offline'}) and pin`)))
    sel.value = this.peers.some(p => p.id === keep) ? keep : ''
  }

  // One at a time: each streams from disk to the daemon, nothing is held in memory.
  private async uploadAll (files: File[]): Promise<void> {
    const pin = byId<HTMLSelectElement>('upload-pin').value
    for (const f of files) this.transfers.uploadStarted(this.join(f.name), f.size)
    for (const f of files) {
      const path = this.join(f.name)
      try {
        try {
          await uploadFile(path, f, { overwrite: false, pin }, (sent, total) => this.transfers.uploadProgress(path, sent, total))
        } catch (e) {
          if (!(e instanceof ApiError && e.status === 409 && confirm(`${path} exists. Replace it?`))) throw e
          await uploadFile(path, f, { overwrite: true, pin }, (sent, total) => this.transfers.uploadProgress(path, sent, total))
        }
        this.transfers.uploadDone(path, null)
      } catch (e) {
        this.transfers.uploadDone(path, (e as Error).message)
      }
      await this.load()
    }
  }
}
