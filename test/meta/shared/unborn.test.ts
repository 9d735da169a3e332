// A regular file created here joins the shared namespace as one create op
// that carries its content, emitted a moment after it was written; a file
// removed before then never costs an op; and a create not yet emitted when
// the process dies is emitted by the next start.
import t from 'tap'
import { spawn } from 'node:child_process'
import { join } from 'node:path'
import { pathToFileURL } from 'node:url'
import { openNode } from '../../helpers/node.js'
import { tempDir, PASSWORD, ROOT } from '../../helpers/disktro.js'
import type { DisktroNode } from '../../../src/node.js'
import { decodeOpRecord } from '../../../src/codec/op-record.js'
import { decodeManifest } from '../../../src/meta/shared/manifest.js'
import { ROOT_ID, type Op } from '../../../src/meta/merge/op.js'

const CS = 64 * 1024

function ownOps (node: DisktroNode): Op[] {
  const { shared, keys } = node.volume.full
  if (!shared) throw new Error('no shared namespace')
  return [...shared.log.all()].map(r => decodeOpRecord(r, keys.meta, false)).filter(op => op.member === shared.memberId)
}

async function settled (node: DisktroNode): Promise<void> {
  const shared = node.volume.full.shared
  for (let i = 0; i < 200 && !shared?.settled; i++) await new Promise(resolve => setTimeout(resolve, 10))
  t.ok(shared?.settled, 'every local change is in the log')
}

async function writeNew (node: DisktroNode, path: string, data: Buffer): Promise<void> {
  const fh = node.vfs.create(path, 0o640)
  await node.vfs.write(fh, data, data.length, 0)
  await node.vfs.release(fh)
}

function listing (node: DisktroNode, dir = ROOT_ID): Map<string, { content: string, kind: string, mode?: number }> {
  const tree = node.volume.full.shared!.tree
  return new Map(tree.listDir(dir).map(e => [e.name, { content: e.content, kind: e.kind, mode: e.attrs.mode }]))
}

t.test('a new file is one create op carrying its content', async t => {
  const node = await openNode(t, { config: { chunkSize: CS } })
  await settled(node)
  const before = ownOps(node).length
  // Under 64 KiB: sealed at once, so create to close takes milliseconds, well
  // inside the 150 ms after which the shared namespace emits.
  const data = Buffer.alloc(CS - 100, 7)
  const started = Date.now()
  const fh = node.vfs.create('/a', 0o640)
  t.equal(ownOps(node).length, before, 'nothing is journaled at create time')
  await node.vfs.write(fh, data, data.length, 0)
  await node.vfs.release(fh)
  node.vfs.chmod('/a', 0o600)
  const quick = Date.now() - started < 100
  t.notOk(listing(node).has('a'), 'the shared tree does not show it yet')
  await settled(node)
  const ops = ownOps(node).slice(before)
  // (Had the emit come between create and close, a write op would follow.)
  if (quick) t.same(ops.map(o => o.type), ['create'], 'one op for the file')
  else t.equal(ops[0]?.type, 'create', `create to chmod took ${Date.now() - started} ms: the content may come in a second op`)
  const e = listing(node).get('a')
  t.ok(e, 'the shared tree shows it')
  t.equal(e?.kind, 'file')
  t.equal(decodeManifest(e!.content, CS).size, data.length, 'with its content')
  t.equal((e?.mode ?? 0) & 0o7777, 0o600, 'and its attributes as they were when it was emitted')

  // Created and removed before it was emitted: no op at all.
  const n0 = ownOps(node).length
  await writeNew(node, '/scratch', Buffer.from('temporary'))
  node.vfs.unlink('/scratch')
  await settled(node)
  t.equal(ownOps(node).length, n0, 'a file unlinked before it was shared costs no op')
  t.notOk(listing(node).has('scratch'))

  // Save by rename over a shared file: the new file is created where it ends up.
  const n1 = ownOps(node).length
  await writeNew(node, '/a.tmp', Buffer.from('new content'))
  node.vfs.rename('/a.tmp', '/a')
  await settled(node)
  t.same(ownOps(node).slice(n1).map(o => o.type).sort(), ['create', 'remove'], 'the replaced file is removed, the new one created')
  t.same([...listing(node).keys()], ['a'])
  t.equal(decodeManifest(listing(node).get('a')!.content, CS).size, 11)

  // A hard link of a file not yet shared: the file is shared first, then the link's copy.
  await writeNew(node, '/h', Buffer.from('linked'))
  node.vfs.link('/h', '/h2')
  await settled(node)
  t.same([...listing(node).keys()].sort(), ['a', 'h', 'h2'])
})

t.test('a create not yet emitted when the process dies is emitted at the next start', async t => {
  const dataDir = await tempDir(t)
  const nodeUrl = pathToFileURL(join(ROOT, 'dist', 'src', 'node.js')).href
  const configUrl = pathToFileURL(join(ROOT, 'dist', 'src', 'config.js')).href
  // Opens the volume, creates two files (one moved into a new directory),
  // and dies by SIGKILL before the 150 ms emit delay is over.
  const script = `
    const { DisktroNode } = await import(${JSON.stringify(nodeUrl)})
    const { DEFAULT_CONFIG } = await import(${JSON.stringify(configUrl)})
    const node = await DisktroNode.open({ dataDir: ${JSON.stringify(dataDir)}, password: async () => ${JSON.stringify(PASSWORD)}, newPassword: async () => ${JSON.stringify(PASSWORD)}, config: { ...DEFAULT_CONFIG, chunkSize: ${CS} }, offline: true, log: () => {} })
    const vfs = node.vfs
    vfs.mkdir('/d', 0o755)
    for (const [path, text] of [['/d/x', 'crash test x'], ['/y', 'crash test y']]) {
      const fh = vfs.create(path, 0o644)
      const b = Buffer.from(text)
      await vfs.write(fh, b, b.length, 0)
      await vfs.release(fh)
    }
    vfs.rename('/y', '/d/z')
    console.log(node.volume.full.shared.settled ? 'settled' : 'pending')
    process.kill(process.pid, 'SIGKILL')
  `
  const out = await new Promise<string>((resolve, reject) => {
    const c = spawn(process.execPath, ['--input-type=module', '-e', script], { stdio: ['ignore', 'pipe', 'inherit'] })
    let s = ''
    c.stdout.on('data', d => { s += String(d) })
    c.on('error', reject)
    c.on('exit', (_code, signal) => signal === 'SIGKILL' ? resolve(s.trim()) : reject(new Error(`child exited without being killed: ${s}`)))
  })
  t.equal(out, 'pending', 'the creates were still waiting when the process died')
  const node = await openNode(t, { dataDir, config: { chunkSize: CS } })
  await settled(node)
  const d = listing(node).get('d')
  t.ok(d, 'the directory is shared')
  const tree = node.volume.full.shared!.tree
  const dId = tree.listDir(ROOT_ID).find(e => e.name === 'd')!.id
  const inD = listing(node, dId)
  t.same([...inD.keys()].sort(), ['x', 'z'], 'both files are shared, under the names they had')
  t.equal(decodeManifest(inD.get('z')!.content, CS).size, 'crash test y'.length)
  t.same(ownOps(node).filter(o => o.type === 'create').length, 3, 'one create each: the directory and the two files')
})

t.test('while the filesystem is busy, new files wait to be emitted, at most emitDeferMaxMs; then in slices, every one', async t => {
  const node = await openNode(t, { config: { chunkSize: CS } })
  await settled(node)
  const shared = node.volume.full.shared!
  t.equal(shared.emitDeferMaxMs, 15_000, 'a burst holds the emission back up to 15 s')
  shared.emitDeferMaxMs = 3000 // shortened here
  let busy = true
  shared.deferEmitWhile(() => busy)
  const before = ownOps(node).length
  // More than one slice (512 files a transaction).
  const N = 600
  for (let i = 0; i < N; i++) await writeNew(node, `/f${i}`, Buffer.from(`file ${i}`))
  await new Promise(resolve => setTimeout(resolve, 500))
  t.equal(ownOps(node).length, before, 'no op while busy (500 ms, beyond the 150 ms delay)')
  t.notOk(shared.settled)
  busy = false
  await settled(node)
  const creates = ownOps(node).slice(before).filter(o => o.type === 'create')
  t.equal(creates.length, N, 'once quiet, one create op per file')
  t.equal(listing(node).size, N, 'and the shared tree shows them all')

  // Busy for good: the wait ends emitDeferMaxMs after the oldest change.
  busy = true
  const started = Date.now()
  await writeNew(node, '/late', Buffer.from('late'))
  for (let i = 0; i < 1000 && !shared.settled; i++) await new Promise(resolve => setTimeout(resolve, 20))
  const waited = Date.now() - started
  t.ok(shared.settled, `emitted while still busy, after ${waited} ms`)
  t.ok(waited >= 2900, 'not before emitDeferMaxMs')
  t.ok(listing(node).has('late'))
})
