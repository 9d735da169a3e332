// POSIX suite, part 3: file data over a real mount: sparse files, offsets past
// 4 GiB, truncate, random writes into a large file, and confidentiality at
// rest once the daemon is stopped.
import t from 'tap'
import { randomBytes } from 'node:crypto'
import { join } from 'node:path'
import { writeFile } from 'node:fs/promises'
import { Mount, requireFuse, tempDir } from '../helpers/disktro.js'
import { isMounted } from '../../src/fuse/unmount.js'
import { sh, q, stat, daemonErrors } from './posix-helpers.js'

const MiB = 1024 * 1024
const GiB = 1024 * MiB

t.test('POSIX file data through a mount', async t => {
  if (!await requireFuse(t)) return
  const m = await Mount.start(t)
  const local = await tempDir(t, 'disktro-posix-local-')
  const p = (...parts: string[]) => m.path(...parts)
  // Runs the same shell commands on a mounted and a local file, then compares them.
  const both = async (name: string, script: (f: string) => string): Promise<void> => {
    await sh(script(q(p(name))))
    await sh(script(q(join(local, name))))
  }
  const same = async (name: string): Promise<void> => {
    await sh(`cmp ${q(p(name))} ${q(join(local, name))}`)
  }

  await t.test('truncate -s 5G makes a sparse file', async t => {
    const f = p('sparse')
    await sh(`truncate -s 5G ${q(f)}`)
    t.same(await stat('%s', f), [String(5 * GiB)], 'size is 5 GiB')
    const du = Number((await sh(`du -k ${q(f)}`)).split(/\s/)[0])
    t.ok(du < 1024, `du is small (${du} KiB)`)
    // Zeros at the start, in the middle (across the 4 GiB line) and at the very end.
    t.equal(await sh(`dd if=${q(f)} bs=1M count=3 status=none | tr -d '\\0' | wc -c`), '0\n', 'head reads zeros')
    t.equal(await sh(`dd if=${q(f)} bs=1M skip=4095 count=2 status=none | tr -d '\\0' | wc -c`), '0\n', 'reads zeros across 4 GiB')
    t.equal(await sh(`tail -c 1000 ${q(f)} | wc -c`), '1000\n', 'the tail is there')
    t.equal(await sh(`tail -c 1000 ${q(f)} | tr -d '\\0' | wc -c`), '0\n', 'and reads zeros')
  })

  await t.test('writes past 4 GiB read back', async t => {
    const f = p('sparse')
    const off = 4 * GiB + 12345
    await sh(`printf 'PAST-4-GIB' | dd of=${q(f)} bs=1 seek=${off} conv=notrunc status=none`)
    t.equal(await sh(`dd if=${q(f)} bs=1 skip=${off} count=10 status=none`), 'PAST-4-GIB')
    t.equal(await sh(`dd if=${q(f)} bs=1 skip=${off - 5} count=5 status=none | tr -d '\\0' | wc -c`), '0\n', 'zeros before it')
    t.same(await stat('%s', f), [String(5 * GiB)], 'size unchanged')
    const du = Number((await sh(`du -k ${q(f)}`)).split(/\s/)[0])
    t.ok(du > 0 && du < 16 * 1024, `du counts just the written block (${du} KiB)`)
    // A fresh file written only past 4 GiB: size grows to the end of the write.
    await sh(`printf 'FAR' | dd of=${q(p('far'))} bs=1 seek=${6 * GiB} status=none`)
    t.same(await stat('%s', p('far')), [String(6 * GiB + 3)])
    t.equal(await sh(`tail -c 3 ${q(p('far'))}`), 'FAR')
    // Truncating below the write drops it; regrowing reads zeros there.
    await sh(`truncate -s ${4 * GiB} ${q(f)} && truncate -s 5G ${q(f)}`)
    t.equal(await sh(`dd if=${q(f)} bs=1 skip=${off} count=10 status=none | tr -d '\\0' | wc -c`), '0\n', 'cut-off data does not come back')
    await sh(`rm ${q(f)} ${q(p('far'))}`)
  })

  await t.test('truncate shrink then grow reads zeros in the regrown part', async t => {
    const seed = join(local, 'seed')
    await sh(`head -c ${3 * MiB + 777} /dev/urandom > ${q(seed)}`)
    // By path, with the file closed.
    await both('tr1', f => `cp ${q(seed)} ${f} && truncate -s 1500000 ${f} && truncate -s ${3 * MiB + 777} ${f}`)
    await same('tr1')
    t.equal(await sh(`tail -c +1500001 ${q(p('tr1'))} | tr -d '\\0' | wc -c`), '0\n', 'regrown part is zeros')
    t.equal(await sh(`head -c 1500000 ${q(p('tr1'))} | cmp - ${q(seed)} -n 1500000 && echo kept`), 'kept\n', 'the kept part is intact')
    // Through an open handle, mixed with writes (ftruncate on buffered data).
    const ops = `use Fcntl; sysopen(my $h, $ARGV[0], O_RDWR|O_CREAT|O_TRUNC) or die "open: $!";
      open(my $s, '<', $ARGV[1]) or die; binmode $s; local $/; my $d = <$s>;
      syswrite($h, $d) == length $d or die "w1";
      truncate($h, 1234567) or die "t1: $!";
      sysseek($h, 2600000, 0); syswrite($h, "TAIL" x 1000) or die "w2";
      truncate($h, 2000000) or die "t2"; truncate($h, 3000001) or die "t3";
      sysseek($h, ${MiB - 6}, 0); syswrite($h, "ACROSS-A-BLOCK-EDGE") or die "w3";
      close($h) or die "close: $!";
      truncate($ARGV[0], 2500000) or die "t4"; truncate($ARGV[0], 4000000) or die "t5";`
    await both('tr2', f => `perl -e ${q(ops)} ${f} ${q(seed)}`)
    t.same(await stat('%s', p('tr2')), ['4000000'])
    await same('tr2')
    t.pass('ftruncate/write mix matches a local reference')
  })

  await t.test('random writes into a 20 MiB file change only that region', async t => {
    await sh(`head -c ${20 * MiB} /dev/urandom > ${q(join(local, 'big'))} && cp ${q(join(local, 'big'))} ${q(p('big'))}`)
    await same('big')
    await writeFile(join(local, 'patch'), randomBytes(300_000))
    const patch = q(join(local, 'patch'))
    // Unaligned, across block edges, inside one block, and one ending past EOF.
    const writes: Array<[number, number]> = [[10_000_000, 300_000], [MiB - 1000, 5000], [7 * MiB + 3, 17], [20 * MiB - 100_000, 300_000]]
    for (const [off, len] of writes) {
      await both('big', f => `head -c ${len} ${patch} | dd of=${f} bs=64K iflag=fullblock oflag=seek_bytes seek=${off} conv=notrunc status=none`)
    }
    t.same(await stat('%s', p('big')), [String(20 * MiB + 200_000)], 'size grew by the write past the end')
    await same('big')
    t.pass('content equals the local reference made with the same writes')
    // Several writes through one open handle, read back before closing.
    const rw = `use Fcntl; sysopen(my $h, $ARGV[0], O_RDWR) or die; my $r;
      for my $i (0..49) { my $o = ($i * 7919 * 4099) % ${20 * MiB}; sysseek($h, $o, 0); syswrite($h, "W$i" x 300) or die; }
      sysseek($h, 0, 0); my $all = ''; while (sysread($h, $r, 1 << 20)) { $all .= $r } print length($all);`
    await both('big', f => `perl -e ${q(rw)} ${f} > /dev/null`)
    await same('big')
    t.pass('interleaved writes through one handle match too')
  })

  // Small writes are answered before the daemon applies them (write-behind,
  // fuse/write-behind.ts): they must still land in the order written, and a
  // read through the same handle must see each one at once.
  await t.test('thousands of small overlapping writes land in order and read back at once', async t => {
    const script = `const fs = require('fs'); const crypto = require('crypto')
      const [mounted, local] = process.argv.slice(1)
      let x = 12345; const rnd = n => { x = (x * 1103515245 + 12345) % 2147483648; return x % n }
      const a = fs.openSync(mounted, 'w+'); const b = fs.openSync(local, 'w+')
      for (let i = 0; i < 3000; i++) {
        // Mostly small writes; now and then a whole aligned 1 MiB block, which
        // is sealed and stored at once, so the next write into it reloads it.
        const whole = i % 40 === 39
        const len = whole ? 1048576 : 1 + rnd(9000)
        const off = whole ? 1048576 * rnd(3) : rnd(3 * 1048576)
        const buf = crypto.randomBytes(len)
        fs.writeSync(a, buf, 0, len, off); fs.writeSync(b, buf, 0, len, off)
        if (i % 50 === 0) {
          const r = Buffer.alloc(len); fs.readSync(a, r, 0, len, off)
          if (!r.equals(buf)) { console.error('write ' + i + ' did not read back'); process.exit(2) }
        }
      }
      fs.fsyncSync(a); fs.closeSync(a); fs.closeSync(b)`
    await sh(`${q(process.execPath)} -e ${q(script)} ${q(p('small-writes'))} ${q(join(local, 'small-writes'))}`)
    await same('small-writes')
    t.pass('3,000 writes (1 to 9,000 bytes at random offsets, and whole blocks) equal the local reference')
  })

  t.ok(m.running, 'daemon alive after the data checks')

  await t.test('confidentiality at rest: no names or content in the data dir', async t => {
    const tag = randomBytes(8).toString('hex')
    const name = `cleartext-name-${tag}`
    const word = `CLEARTEXT-CONTENT-${tag}`
    // Compressible: the word repeated over several blocks. Incompressible: random bytes around it.
    await sh(`mkdir ${q(p(name + '-dir'))} && yes ${q(word)} | head -c ${3 * MiB} > ${q(p(name + '-dir', name + '.txt'))}`)
    const rnd = Buffer.concat([randomBytes(300_000), Buffer.from(word), randomBytes(300_000)])
    await writeFile(join(local, 'rnd'), rnd)
    await sh(`cp ${q(join(local, 'rnd'))} ${q(p(name + '.bin'))} && printf %s ${q(word)} > ${q(p('small-' + tag))} && ln -s ${q(word)} ${q(p(name + '.lnk'))}`)
    await sh(`mv ${q(p('small-' + tag))} ${q(p(name + '-renamed'))}`)
    t.equal(await sh(`grep -c ${q(word)} ${q(p(name + '.bin'))}`), '1\n', 'the word is in the mounted file (the grep can find it)')
    const r = await m.stop()
    t.equal(r.code, 0, 'SIGTERM exits 0')
    t.equal(await isMounted(m.dir), false, 'no mount left')
    for (const needle of [name, word, tag]) {
      const out = await sh(`grep -r -a -l -F ${q(needle)} ${q(m.dataDir)} || true`)
      t.equal(out, '', `"${needle}" is nowhere in the data dir`)
    }
    // Control: the same grep finds the word in a plain copy.
    t.equal(await sh(`grep -r -a -l -F ${q(word)} ${q(local)} | wc -l`), '1\n', 'grep would have found it')
    t.same(daemonErrors(m.stderr), [], 'the daemon logged no unexpected errors')

    // Everything is still there after a restart.
    const m2 = await Mount.start(t, { dataDir: m.dataDir, mountpoint: m.dir })
    await sh(`cmp ${q(m2.path(name + '.bin'))} ${q(join(local, 'rnd'))} && cmp ${q(m2.path('big'))} ${q(join(local, 'big'))} && cmp ${q(m2.path('tr2'))} ${q(join(local, 'tr2'))}`)
    t.equal(await sh(`readlink ${q(m2.path(name + '.lnk'))} && cat ${q(m2.path(name + '-renamed'))}`), `${word}\n${word}`)
    t.equal(await sh(`yes ${q(word)} | head -c ${3 * MiB} | cmp - ${q(m2.path(name + '-dir', name + '.txt'))} && echo same`), 'same\n')
    t.pass('files read back after a remount')
    const r2 = await m2.stop()
    t.equal(r2.code, 0, 'second SIGTERM exits 0')
    t.equal(await isMounted(m2.dir), false, 'no mount left')
  })
})
