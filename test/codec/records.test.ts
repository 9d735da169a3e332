import t from 'tap'
import { encodeInode, decodeInode, type InodeAttrs } from '../../src/codec/inode-record.js'
import { encodeDirent, decodeDirent } from '../../src/codec/dirent-record.js'
import { encodeBlockRef, decodeBlockRef } from '../../src/codec/block-record.js'
import { encodeChunkRecord, decodeChunkRecord } from '../../src/codec/chunk-record.js'
import { encodeChange, decodeChange } from '../../src/codec/change-record.js'

// Fixtures pin the on-disk bytes: a change to a format must bump its version
// byte and keep reading the old one, or these fail.
const attrs: InodeAttrs = { mode: 0o100644, uid: 1000, gid: 100, nlink: 2, rdev: 0, size: 5 * 2 ** 32 + 7, blocks: 3, atime: 1700000000123, mtime: 1700000000456, ctime: 1700000000789 }
const INODE_FIXTURE = '01a4810000e803000064000000020000000000000000001c00000014420300000000b08756febc784200809c56febc78420050b156febc7842'

t.test('inode record', async t => {
  const b = encodeInode(attrs)
  t.equal(b[0], 1, 'version byte')
  t.same(decodeInode(b), attrs)
  const link = { ...attrs, mode: 0o120777, target: 'ünïcode/target' }
  t.same(decodeInode(encodeInode(link)), link)
  t.equal(b.toString('hex'), INODE_FIXTURE, 'pinned bytes')
  const bad = Buffer.from(b); bad[0] = 9
  t.throws(() => decodeInode(bad), { code: 'UNSUPPORTED_VERSION' })
  t.throws(() => decodeInode(b.subarray(0, 10)), { code: 'CORRUPT_RECORD' })
})

// Version 2: times finer than a ms (issue 29) add the ns past the ms of
// atime and mtime; a record without them stays version 1 (above).
t.test('inode record with nanoseconds', async t => {
  const fine: InodeAttrs = { ...attrs, fine: { atime: [attrs.atime, 456789], mtime: [attrs.mtime, 1] } }
  const b = encodeInode(fine)
  t.equal(b[0], 2, 'version byte 2')
  t.equal(b.toString('hex'), INODE_FIXTURE.replace(/^01/, '02') + '55f80600' + '01000000', 'pinned bytes: version 1\'s, then u32 LE ns of atime and mtime')
  t.same(decodeInode(b), fine)
  const link = { ...fine, mode: 0o120777, target: 'ünïcode/target' }
  t.same(decodeInode(encodeInode(link)), link, 'a symlink target follows them')
  t.same(decodeInode(encodeInode({ ...fine, mtime: attrs.mtime + 1 })).fine, { atime: [attrs.atime, 456789] }, 'ns of a time since set anew are not written')
  t.equal(encodeInode({ ...attrs, fine: { mtime: [attrs.mtime - 5, 7] } })[0], 1, 'so a record whose ns all went stale is version 1 again')
  const bad = Buffer.from(b); bad.writeUInt32LE(1_000_000, b.length - 4)
  t.throws(() => decodeInode(bad), { code: 'CORRUPT_RECORD' }, 'ns past 999,999')
})

t.test('directory entry, block ref, chunk record, change record', async t => {
  const d = { name: 'résumé.txt', ino: 123456789 }
  t.same(decodeDirent(encodeDirent(d)), d)
  t.equal(encodeDirent(d).toString('hex'), '0100000054346f9d41' + Buffer.from('résumé.txt').toString('hex'))
  const ref = { id: Buffer.alloc(32, 0xab), length: 1048576 }
  const rb = encodeBlockRef(ref)
  t.equal(rb.toString('hex'), '01' + 'ab'.repeat(32) + '00001000')
  t.same(decodeBlockRef(rb), ref)
  t.throws(() => decodeBlockRef(rb.subarray(1)), { code: 'CORRUPT_RECORD' })
  const cr = encodeChunkRecord(1, Buffer.from('sealed'))
  t.equal(cr.toString('hex'), '0101' + Buffer.from('sealed').toString('hex'))
  t.same(decodeChunkRecord(cr), { flags: 1, sealed: Buffer.from('sealed') })
  t.throws(() => decodeChunkRecord(Buffer.from([2, 0, 1])), { code: 'CORRUPT_CHUNK' })
  const change = { op: 'rename' as const, parent: 1, name: 'a', newParent: 2, newName: 'b', ctime: 5, hlc: (1700000000000n << 16n) + 3n, node: 'ab'.repeat(16) }
  const cb = encodeChange(change)
  t.equal(cb[0], 1)
  t.same(decodeChange(cb), change)
})
