// POSIX suite, part 1: real tools over a real mount (cp, tar, rsync, git,
// sqlite3, an editor's save-by-rename). One daemon serves every subtest.
import t from 'tap'
import { join } from 'node:path'
import { Mount, requireFuse, tempDir, ROOT } from '../helpers/disktro.js'
import { isMounted } from '../../src/fuse/unmount.js'
import { sh, q, stat, sourceTree, hasTool, IS_ROOT, daemonErrors } from './posix-helpers.js'

// Names, types, modes, sizes, whole-second mtimes, nlink, link targets (and
// owners as root) of a tree. Directory sizes and nlink vary by filesystem.
async function listing (dir: string): Promise<string> {
  const out = await sh(`cd ${q(dir)} && find . -printf '%p|%y|%m|%s|%T@|%n|%U:%G|%l\\n'`)
  return out.trimEnd().split('\n').map(line => {
    const [p, y, mode, size, mtime, nlink, owner, target] = line.split('|')
    return [p, y, mode, y === 'd' ? '-' : size, mtime.split('.')[0], y === 'd' ? '-' : nlink, IS_ROOT ? owner : '-', target].join('|')
  }).sort().join('\n') + '\n'
}

t.test('POSIX tools through a mount', async t => {
  if (!await requireFuse(t)) return
  const m = await Mount.start(t)
  const local = await tempDir(t, 'disktro-posix-local-')
  // The source: a real tree plus the awkward cases cp/tar/rsync must carry.
  const src = join(local, 'src')
  await sh(`cp -a ${q(await sourceTree(ROOT))} ${q(src)} && cd ${q(src)} &&
    mkdir -p 'odd dir/ünïcødé' empty-dir && printf 'spaced\\n' > 'odd dir/a file' && : > empty-file &&
    head -c 2500000 /dev/urandom > random.bin && ln random.bin random-hardlink.bin &&
    ln -s 'odd dir/a file' rel-link && ln -s /nonexistent/target dangling-link &&
    chmod 0640 empty-file && chmod 0711 empty-dir && chmod 4755 'odd dir/a file' &&
    touch -h -d '2001-01-01 00:00:00' rel-link && touch -d '1999-12-31 23:59:59' random.bin`)
  const srcListing = await listing(src)

  await t.test('cp -a into the mount, diff -r back', async t => {
    const start = Math.floor(Date.now() / 1000) - 1
    await sh(`cp -a ${q(src)} ${q(m.path('cpa'))}`)
    t.equal(await sh(`find ${q(m.path('cpa'))} ! -newerct @${start} | head -n 5`), '', 'every ctime is the time of the copy, not the preserved mtime')
    await sh(`diff -r --no-dereference ${q(src)} ${q(m.path('cpa'))}`)
    t.equal(await listing(m.path('cpa')), srcListing, 'names, types, modes, sizes, mtimes, links and owners preserved')
    const [a, b] = await stat('%i %h', m.path('cpa/random.bin'), m.path('cpa/random-hardlink.bin'))
    t.equal(a, b, 'cp -a kept the hard link (same inode, nlink 2)')
    t.match(a, / 2$/, 'nlink 2')
    // And back out of the mount.
    await sh(`cp -a ${q(m.path('cpa'))} ${q(join(local, 'back'))}`)
    t.equal(await listing(join(local, 'back')), srcListing, 'copy back out is identical')
    await sh(`diff -r --no-dereference ${q(src)} ${q(join(local, 'back'))}`)
  })

  await t.test('tar c of the mounted tree, tar x into the mount', async t => {
    const own = IS_ROOT ? '' : '--owner=0 --group=0 --numeric-owner'
    const tarOf = (dir: string, out: string) => sh(`tar -C ${q(dir)} --sort=name ${own} -cf ${q(out)} .`)
    await tarOf(src, join(local, 'ref.tar'))
    await tarOf(m.path('cpa'), join(local, 'mounted.tar'))
    await sh(`cmp ${q(join(local, 'ref.tar'))} ${q(join(local, 'mounted.tar'))}`)
    t.pass('tar of the mounted tree is byte-identical to tar of the source')
    await sh(`mkdir ${q(m.path('untar'))} && tar -C ${q(m.path('untar'))} -xpf ${q(join(local, 'ref.tar'))}`)
    t.equal(await listing(m.path('untar')), srcListing, 'tar x into the mount restores the tree')
    await sh(`diff -r --no-dereference ${q(src)} ${q(m.path('untar'))}`)
    await tarOf(m.path('untar'), join(local, 'untar.tar'))
    await sh(`cmp ${q(join(local, 'ref.tar'))} ${q(join(local, 'untar.tar'))}`)
    t.pass('re-tarring the extracted tree gives the same tarball')
  })

  await t.test('rsync -a, then a checksum dry run finds nothing to do', { skip: !await hasTool('rsync') && 'rsync not installed' }, async t => {
    await sh(`rsync -aH ${q(src + '/')} ${q(m.path('rs') + '/')}`)
    const changes = await sh(`rsync -aH --checksum --dry-run --itemize-changes ${q(src + '/')} ${q(m.path('rs') + '/')}`)
    t.equal(changes, '', 'no itemized changes')
    // The check can fail: a changed byte must show up.
    await sh(`printf 'CHANGED-CHANGED!' | dd of=${q(m.path('rs/random.bin'))} bs=1 seek=1000 conv=notrunc status=none && touch -r ${q(join(src, 'random.bin'))} ${q(m.path('rs/random.bin'))}`)
    t.match(await sh(`cmp ${q(join(src, 'random.bin'))} ${q(m.path('rs/random.bin'))} || true`), /differ: byte 1001/, 'the change is visible')
    const after = await sh(`rsync -aH --checksum --dry-run --itemize-changes ${q(src + '/')} ${q(m.path('rs') + '/')}`)
    t.match(after, /^>fc.* random(-hardlink)?\.bin$/m, 'a same-size change with the same mtime is found by --checksum')
  })

  await t.test('git init/add/commit/log/fsck in the mount', async t => {
    const repo = m.path('repo')
    const git = `git -c user.name=Test -c user.email=test@example.com -c init.defaultBranch=main -c gc.auto=0`
    await sh(`mkdir ${q(repo)} && cd ${q(repo)} && ${git} init -q && cp -a ${q(src)}/. . &&
      ${git} add -A && ${git} commit -qm 'first commit' &&
      echo 'one more line' >> 'odd dir/a file' && git mv rel-link renamed-link && rm empty-file &&
      ${git} commit -qam 'second commit' && ${git} gc -q`)
    t.equal(await sh(`cd ${q(repo)} && git log --format=%s`), 'second commit\nfirst commit\n')
    t.equal(await sh(`cd ${q(repo)} && git status --porcelain`), '', 'work tree clean')
    await sh(`cd ${q(repo)} && git fsck --strict --full --no-progress`)
    const files = (await sh(`cd ${q(repo)} && git ls-files | wc -l`)).trim()
    const expected = (await sh(`cd ${q(src)} && find . \\( -type f -o -type l \\) ! -name empty-file | wc -l`)).trim()
    t.equal(files, expected, 'every file is tracked')
    t.equal(await sh(`cd ${q(repo)} && git show HEAD~1:'odd dir/a file'`), 'spaced\n')
    t.equal(await sh(`cd ${q(repo)} && git cat-file -p HEAD:'odd dir/a file'`), 'spaced\none more line\n')
    // A clone out of the mount checks the packed objects once more.
    await sh(`git clone -q ${q(repo)} ${q(join(local, 'clone'))} && cd ${q(join(local, 'clone'))} && git fsck --strict --no-progress`)
    await sh(`diff -r --no-dereference --exclude=.git --exclude=empty-dir --exclude=ünïcødé ${q(repo)} ${q(join(local, 'clone'))}`)
  })

  await t.test('sqlite3 database created and queried in the mount', { skip: !await hasTool('sqlite3') && 'sqlite3 not installed' }, async t => {
    const db = q(m.path('test.sqlite'))
    await sh(`sqlite3 ${db} "create table t(x integer primary key, sq integer, pad text);
      with recursive c(x) as (select 1 union all select x+1 from c where x < 20000)
      insert into t select x, x*x, hex(randomblob(40)) from c;
      create index t_sq on t(sq);"`)
    t.equal(await sh(`sqlite3 ${db} 'select count(*), sum(x), sum(sq) from t; pragma integrity_check;'`),
      '20000|200010000|2666866670000\nok\n')
    await sh(`sqlite3 ${db} "pragma journal_mode=wal; begin; update t set sq = -sq where x % 3 = 0; delete from t where x > 19000; commit; pragma wal_checkpoint(truncate);"`)
    t.equal(await sh(`sqlite3 ${db} 'select count(*), sum(sq < 0) from t; pragma integrity_check;'`), '19000|6333\nok\n')
    await sh(`sqlite3 ${db} 'pragma journal_mode=delete; vacuum;'`)
    t.equal(await sh(`sqlite3 ${db} 'select count(*) from t where sq = 361 or sq = -324; pragma integrity_check;'`), '2\nok\n')
  })

  await t.test("an editor's save-by-rename replaces content and inode", async t => {
    await sh(`printf 'original text\\n' > ${q(m.path('doc.txt'))}`)
    const [before] = await stat('%i', m.path('doc.txt'))
    // Write a temp file, fsync it, rename it over the original (as vim/emacs/gedit
    // do), while a reader still has the original open.
    const save = `use IO::Handle; my ($tmp, $doc) = @ARGV;
      open(my $old, "<", $doc) or die "open old: $!";
      open(my $h, ">", $tmp) or die "open tmp: $!"; print $h "edited text\\n" x 3; $h->flush or die; $h->sync or die "fsync: $!"; close($h) or die "close: $!";
      rename($tmp, $doc) or die "rename: $!";
      local $/; print <$old>;`
    const seenByReader = await sh(`perl -e ${q(save)} ${q(m.path('.doc.txt.swp'))} ${q(m.path('doc.txt'))}`)
    t.equal(seenByReader, 'original text\n', 'a reader that had the old file open still reads the old content')
    const [after] = await stat('%i %s %h', m.path('doc.txt'))
    t.not(after.split(' ')[0], before, 'inode changed')
    t.equal(after.split(' ').slice(1).join(' '), '36 1', 'size and nlink of the new file')
    t.equal(await sh(`cat ${q(m.path('doc.txt'))}`), 'edited text\n'.repeat(3), 'new content')
    t.equal(await sh(`ls -A ${q(m.dir)} | grep -c -e swp -e fuse_hidden || true`), '0\n', 'no temp or hidden file left')
  })

  t.ok(m.running, 'daemon alive after the tools')
  const r = await m.stop()
  t.equal(r.code, 0, 'SIGTERM exits 0')
  t.equal(await isMounted(m.dir), false, 'no mount left')
  t.same(daemonErrors(m.stderr), [], 'the daemon logged no unexpected errors')
})
