import t, { type Test } from 'tap'
import { HybridClock } from '../../src/meta/hlc.js'
import { Member } from '../../src/meta/merge/member.js'
import { MergeTree } from '../../src/meta/merge/merge-tree.js'
import { conflictName, ROOT_ID, type CreateOp, type Op } from '../../src/meta/merge/op.js'

// Focused cases for each conflict rule of docs/consistency.md. Two or three
// members share one fake wall clock; `sync` delivers ops as a peer would.
const A = 'aaaaaaaa11111111'
const B = 'bbbbbbbb22222222'
const C = 'cccccccc33333333'

function setup (ids = [A, B]): { now: { t: number }, m: Member[], ops: Op[], sync: (to: Member, ops: Op[]) => void } {
  const now = { t: 1000 }
  const m = ids.map(id => new Member(id, new HybridClock(0n, () => now.t)))
  const ops: Op[] = []
  return { now, m, ops, sync: (to, list) => { for (const o of list) to.receive(o) } }
}

function paths (tree: MergeTree): Record<string, string> {
  const out: Record<string, string> = {}
  for (const e of tree.snapshot()) out[e.path] = e.kind === 'dir' ? '<dir>' : e.content
  return out
}

// Applies `ops` to fresh trees in both orders and with duplicates; all equal.
function converged (t: Test, ops: Op[]): MergeTree {
  const fwd = new MergeTree(); fwd.applyAll(ops)
  const rev = new MergeTree(); rev.applyAll([...ops].reverse()); rev.applyAll(ops)
  t.same(rev.snapshot(), fwd.snapshot(), 'same tree in any order, with duplicates')
  return fwd
}

t.test('conflict names keep the extension', async t => {
  t.equal(conflictName('report.pdf', A, 1700000000123n << 16n), 'report.conflict-aaaaaaaa-1700000000123.pdf')
  t.equal(conflictName('a.tar.gz', A, 5n << 16n), 'a.tar.conflict-aaaaaaaa-5.gz')
  t.equal(conflictName('Makefile', B, 7n << 16n), 'Makefile.conflict-bbbbbbbb-7')
  t.equal(conflictName('.bashrc', B, 7n << 16n), '.bashrc.conflict-bbbbbbbb-7')
})

t.test('same name created on two members: the earlier keeps it', async t => {
  const { now, m: [a, b], sync } = setup()
  const x = a.create(ROOT_ID, 'notes.txt', 'file', 'from A')
  now.t = 1001
  const y = b.create(ROOT_ID, 'notes.txt', 'file', 'from B')
  sync(a, [y]); sync(b, [x])
  const want = { '/notes.txt': 'from A', '/notes.conflict-bbbbbbbb-1001.txt': 'from B' }
  t.same(paths(a.tree), want)
  t.same(paths(b.tree), want)
  converged(t, [x, y])
  // Renaming the copy away frees nothing and loses nothing.
  now.t = 1002
  const mv = b.move(y.id, ROOT_ID, 'notes-b.txt')
  sync(a, [mv])
  t.same(paths(a.tree), { '/notes.txt': 'from A', '/notes-b.txt': 'from B' })
})

t.test('concurrent writes: last writer wins, the other is a conflict copy', async t => {
  const { now, m: [a, b], sync } = setup()
  const f = a.create(ROOT_ID, 'doc.txt', 'file', 'v1')
  sync(b, [f])
  now.t = 2000
  const wa = a.write(f.id, 'A edit')
  now.t = 2001
  const wb = b.write(f.id, 'B edit')
  t.equal(wa.base, f.id); t.equal(wb.base, f.id)
  sync(a, [wb]); sync(b, [wa])
  const want = { '/doc.txt': 'B edit', '/doc.conflict-aaaaaaaa-2000.txt': 'A edit' }
  t.same(paths(a.tree), want)
  t.same(paths(b.tree), want)
  converged(t, [f, wa, wb])
  // A write that saw the winner supersedes it; the copy stays until removed.
  now.t = 3000
  const w2 = a.write(f.id, 'merged by hand')
  t.equal(w2.base, wb.version)
  sync(b, [w2])
  t.same(paths(b.tree), { '/doc.txt': 'merged by hand', '/doc.conflict-aaaaaaaa-2000.txt': 'A edit' })
  const rm = b.remove(`${f.id}@${wa.version}`)
  sync(a, [rm])
  t.same(paths(a.tree), { '/doc.txt': 'merged by hand' })
  converged(t, [f, wa, wb, w2, rm])
})

t.test('delete against modify: the modification survives', async t => {
  const { now, m: [a, b], sync } = setup()
  const f = a.create(ROOT_ID, 'f.txt', 'file', 'v1')
  sync(b, [f])
  now.t = 2000
  const w = a.write(f.id, 'v2') // not yet seen by B
  now.t = 3000 // the remove is later in time, still it did not see v2
  const rm = b.remove(f.id)
  t.same(rm.versions, [f.id])
  t.same(paths(b.tree), {})
  sync(a, [rm]); sync(b, [w])
  t.same(paths(a.tree), { '/f.txt': 'v2' })
  t.same(paths(b.tree), { '/f.txt': 'v2' })
  converged(t, [f, w, rm])
  // A remove that saw v2 deletes it.
  now.t = 4000
  const rm2 = b.remove(f.id)
  sync(a, [rm2])
  t.same(paths(a.tree), {})
  converged(t, [f, w, rm, rm2])
})

t.test('delete of the losing side of a write conflict keeps the other', async t => {
  const { now, m: [a, b, c], sync } = setup([A, B, C])
  const f = a.create(ROOT_ID, 'f', 'file', 'v1')
  sync(b, [f]); sync(c, [f])
  now.t = 2000
  const wa = a.write(f.id, 'A')
  now.t = 2001
  const wb = b.write(f.id, 'B')
  sync(c, [wa])
  now.t = 2002
  const rm = c.remove(f.id) // C saw only A's version
  const all = [f, wa, wb, rm]
  for (const x of [a, b, c]) sync(x, all)
  for (const x of [a, b, c]) t.same(paths(x.tree), { '/f': 'B' })
})

t.test('rmdir that raced with a create inside keeps both', async t => {
  const { now, m: [a, b], sync } = setup()
  const d = a.create(ROOT_ID, 'd', 'dir')
  sync(b, [d])
  now.t = 2000
  const x = b.create(d.id, 'x', 'file', 'inside')
  now.t = 2001
  const rm = a.remove(d.id)
  sync(a, [x]); sync(b, [rm])
  const want = { '/d': '<dir>', '/d/x': 'inside' }
  t.same(paths(a.tree), want)
  t.same(paths(b.tree), want)
  converged(t, [d, x, rm])
  // Once the entry inside goes, the removed directory goes with it.
  now.t = 3000
  const rx = b.remove(x.id)
  sync(a, [rx])
  t.same(paths(a.tree), {})
  converged(t, [d, x, rm, rx])
})

t.test('a move into a concurrently removed directory keeps the directory', async t => {
  const { now, m: [a, b], sync } = setup()
  const d = a.create(ROOT_ID, 'd', 'dir')
  const f = a.create(ROOT_ID, 'f', 'file', 'data')
  sync(b, [d, f])
  now.t = 2000
  const mv = b.move(f.id, d.id, 'f')
  const rm = a.remove(d.id)
  sync(a, [mv]); sync(b, [rm])
  t.same(paths(a.tree), { '/d': '<dir>', '/d/f': 'data' })
  t.same(paths(b.tree), paths(a.tree))
})

t.test('moves that would form a cycle: the later one is skipped, in either order', async t => {
  const { now, m: [a, b], sync } = setup()
  const p = a.create(ROOT_ID, 'p', 'dir')
  const q = a.create(ROOT_ID, 'q', 'dir')
  const pf = a.create(p.id, 'pf', 'file', 'in p')
  const qf = a.create(q.id, 'qf', 'file', 'in q')
  sync(b, [p, q, pf, qf])
  now.t = 2000
  const m1 = a.move(p.id, q.id, 'p') // q/p
  now.t = 2001
  const m2 = b.move(q.id, p.id, 'q') // p/q: a cycle with m1
  sync(a, [m2]); sync(b, [m1])
  const want = { '/q': '<dir>', '/q/p': '<dir>', '/q/p/pf': 'in p', '/q/qf': 'in q' }
  t.same(paths(a.tree), want)
  t.same(paths(b.tree), want)
  converged(t, [p, q, pf, qf, m1, m2])
  converged(t, [m2, qf, m1, pf, q, p])
  // A local attempt to move a directory into its own subtree is a no-op too.
  now.t = 3000
  const self = a.move(q.id, p.id, 'q')
  t.same(paths(a.tree), want)
  converged(t, [p, q, pf, qf, m1, m2, self])
})

t.test('ops delivered before their parents still land in place', async t => {
  const { m: [a, b] } = setup()
  const d = a.create(ROOT_ID, 'd', 'dir')
  const e = a.create(d.id, 'e', 'dir')
  const f = a.create(e.id, 'f', 'file', 'deep')
  b.receive(f)
  t.same(paths(b.tree), {})
  b.receive(d); b.receive(e)
  t.same(paths(b.tree), { '/d': '<dir>', '/d/e': '<dir>', '/d/e/f': 'deep' })
  t.equal(b.tree.resolve('/d/e/f')?.content, 'deep')
  t.equal(b.tree.resolve('/d/x'), undefined)
})

t.test('attributes: last writer wins per attribute', async t => {
  const { now, m: [a, b], sync } = setup()
  const f = a.create(ROOT_ID, 'f', 'file', '', { mode: 0o644 })
  sync(b, [f])
  now.t = 2000
  const s1 = a.setattr(f.id, { mode: 0o600 })
  now.t = 2001
  const s2 = b.setattr(f.id, { mtime: 5 })
  now.t = 2002
  const s3 = b.setattr(f.id, { mode: 0o755 })
  sync(a, [s2, s3]); sync(b, [s1])
  t.same(a.tree.snapshot()[0].attrs, { mode: 0o755, mtime: 5 })
  t.same(b.tree.snapshot(), a.tree.snapshot())
})

t.test('compaction drops the undo log below the stable horizon', async t => {
  const { now, m: [a, b], sync } = setup()
  const ops: CreateOp[] = []
  for (let i = 0; i < 20; i++) {
    now.t += 1
    const src = i % 2 === 0 ? a : b
    const o = src.create(ROOT_ID, `n${i}`, 'dir')
    ops.push(o)
    sync(src === a ? b : a, [o])
  }
  const horizon = [a, b].map(x => x.frontier([A, B])).reduce((x, y) => x < y ? x : y)
  t.ok(horizon > 0n)
  const before = a.tree.snapshot()
  t.equal(a.tree.undoLogLength, 20)
  a.tree.compact(horizon)
  t.ok(a.tree.undoLogLength <= 1, 'stable entries dropped')
  t.same(a.tree.snapshot(), before)
  a.tree.applyAll(ops) // duplicates below the horizon are ignored
  t.same(a.tree.snapshot(), before)
  now.t += 1
  const late = b.move(ops[0].id, ops[1].id, 'moved')
  sync(a, [late])
  t.same(a.tree.snapshot(), b.tree.snapshot())
})
