// Input files, generated once into the inputs dir (plain /tmp, never a mount)
// and reused by later runs of the same size.
import { mkdir, rm, stat, writeFile } from 'node:fs/promises'
import { randomBytes, randomInt } from 'node:crypto'
import { join } from 'node:path'
import { sh, q } from './proc.js'

const MiB = 1024 * 1024

async function sizeOf (path: string): Promise<number | null> {
  return await stat(path).then(s => s.size, () => null)
}

/** `mib` MiB from /dev/urandom. */
export async function randomFile (dir: string, mib: number, log: (s: string) => void): Promise<string> {
  const path = join(dir, `random-${mib}M.bin`)
  if (await sizeOf(path) === mib * MiB) return path
  log(`generating ${path}`)
  await sh(`dd if=/dev/urandom of=${q(path + '.tmp')} bs=1M count=${mib} iflag=fullblock status=none && mv ${q(path + '.tmp')} ${q(path)}`)
  return path
}

/**
 * `mib` MiB of compressible data: a tarball of /usr/share (text, man pages,
 * locale data, images: real-world mixed content) repeated and cut to size.
 * Falls back to /usr/lib, then to repeated text, if /usr/share is too small.
 */
export async function compressibleFile (dir: string, mib: number, log: (s: string) => void): Promise<string> {
  const path = join(dir, `compressible-${mib}M.bin`)
  if (await sizeOf(path) === mib * MiB) return path
  log(`generating ${path}`)
  const tar = join(dir, 'usr-share.tar')
  if (await sizeOf(tar) === null) {
    // tar exits 1 when files change while read; that is fine here
    await sh(`tar cf ${q(tar + '.tmp')} -C /usr share 2>/dev/null; [ -s ${q(tar + '.tmp')} ] && mv ${q(tar + '.tmp')} ${q(tar)}`)
  }
  // Repeat the tarball until the target size is reached.
  await sh(`(while :; do cat ${q(tar)} || exit 1; done) 2>/dev/null | head -c ${mib * MiB} > ${q(path + '.tmp')}; ` +
    `[ "$(stat -c %s ${q(path + '.tmp')})" = ${mib * MiB} ] && mv ${q(path + '.tmp')} ${q(path)}`)
  return path
}

/** A tarball of `files` files of 1-8 KiB of random bytes in ~100 directories. */
export async function smallFilesTar (dir: string, files: number, log: (s: string) => void): Promise<string> {
  const path = join(dir, `small-${files}.tar`)
  if (await sizeOf(path) !== null) return path
  log(`generating ${path}`)
  const src = join(dir, `small-${files}.src`)
  await rm(src, { recursive: true, force: true })
  const dirs = Math.max(1, Math.min(100, Math.ceil(files / 100)))
  for (let d = 0; d < dirs; d++) await mkdir(join(src, `d${String(d).padStart(3, '0')}`), { recursive: true })
  for (let i = 0; i < files; i++) {
    const d = i % dirs
    await writeFile(join(src, `d${String(d).padStart(3, '0')}`, `f${String(i).padStart(5, '0')}.bin`), randomBytes(randomInt(1024, 8 * 1024 + 1)))
  }
  await sh(`tar cf ${q(path + '.tmp')} -C ${q(src)} . && mv ${q(path + '.tmp')} ${q(path)}`)
  await rm(src, { recursive: true, force: true })
  return path
}

/** The small-file tarball unpacked once into a plain directory: the source of `cp -a`. */
export async function smallFilesTree (dir: string, tar: string, log: (s: string) => void): Promise<string> {
  const path = tar.replace(/\.tar$/, '.tree')
  if (await sizeOf(path) !== null) return path
  log(`unpacking ${tar} into ${path}`)
  await rm(path + '.tmp', { recursive: true, force: true })
  await mkdir(path + '.tmp')
  await sh(`tar xf ${q(tar)} -C ${q(path + '.tmp')} && mv ${q(path + '.tmp')} ${q(path)}`)
  return path
}

/**
 * A bare git repository whose one commit holds every file of `tree` (a plain
 * directory: the small-file tree, or e.g. a node_modules), made once per
 * tree path. Returns the repo and how many files a checkout holds.
 */
export async function gitRepo (dir: string, tree: string, log: (s: string) => void): Promise<{ repo: string, files: number }> {
  const name = tree.replace(/[^a-z0-9]+/gi, '_').replace(/^_+|_+$/g, '')
  const path = join(dir, `git-${name}.git`)
  const git = `git -c user.name=bench -c user.email=bench@localhost -c core.autocrlf=false --git-dir=${q(path + '.tmp')} --work-tree=${q(tree)}`
  if (await sizeOf(path) === null) {
    log(`committing ${tree} into ${path}`)
    await rm(path + '.tmp', { recursive: true, force: true })
    await sh(`git init -q --bare ${q(path + '.tmp')} && ${git} add -A -f . && ${git} commit -q -m tree && rm -f ${q(path + '.tmp')}/index && mv ${q(path + '.tmp')} ${q(path)}`)
  }
  const files = Number((await sh(`git --git-dir=${q(path)} ls-tree -r HEAD | wc -l`)).stdout.trim())
  return { repo: path, files }
}

/** An sqlite3 script: one table, then `n` transactions of one small INSERT each. */
export async function sqliteScript (dir: string, n: number): Promise<string> {
  const path = join(dir, `sqlite-${n}.sql`)
  if (await sizeOf(path) !== null) return path
  const lines = ['CREATE TABLE t (id INTEGER PRIMARY KEY, v BLOB);']
  for (let i = 0; i < n; i++) lines.push(`BEGIN; INSERT INTO t VALUES (${i}, randomblob(200)); COMMIT;`)
  await writeFile(path + '.tmp', lines.join('\n') + '\n')
  await sh(`mv ${q(path + '.tmp')} ${q(path)}`)
  return path
}
