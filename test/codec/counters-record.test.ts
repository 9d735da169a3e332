// The volume totals in `sys` and the refs record, pinned by fixtures: an
// upgrade must read what an older version wrote.
import t from 'tap'
import { encodeCounts, decodeCounts } from '../../src/codec/counters-record.js'
import { encodeRefs, refsCount, refsLength } from '../../src/codec/refs-record.js'

t.test('counters record: version 1, five f64 LE', async t => {
  const c = { files: 3, directories: 2, logicalBytes: 5000, referencedBytes: 6000, uniqueBytes: 4096 }
  const fixture = '01' + '0000000000000840' + '0000000000000040' + '000000000088b340' + '000000000070b740' + '000000000000b040'
  t.equal(encodeCounts(c).toString('hex'), fixture)
  t.same(decodeCounts(Buffer.from(fixture, 'hex')), c)
  t.throws(() => decodeCounts(Buffer.from('02' + fixture.slice(2), 'hex')), { code: 'UNSUPPORTED_VERSION' })
  t.throws(() => decodeCounts(Buffer.from(fixture.slice(0, -2), 'hex')), { code: 'CORRUPT_RECORD' })
})

t.test('refs record: u32 LE count, then u32 LE length; the count alone before the counters', async t => {
  t.equal(encodeRefs(2, 4096).toString('hex'), '0200000000100000')
  const old = Buffer.from('07000000', 'hex')
  t.equal(refsCount(old), 7)
  t.equal(refsLength(old), undefined)
  const now = Buffer.from('0200000000100000', 'hex')
  t.equal(refsCount(now), 2)
  t.equal(refsLength(now), 4096)
})
