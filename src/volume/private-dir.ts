import { chmod, mkdir, readdir } from 'node:fs/promises'
import { join } from 'node:path'

// A data dir holds the wrapped keys, the store and the control socket: no
// one but its owner may list or read it (issue 28, item 9). mkdir's mode
// only applies to a directory it makes, so a data dir that already existed
// (made by hand, by an older disktro, or restored from a backup) is set to
// 0700 at every open, and the store in it, which LMDB makes under the
// umask (store/ 0755, data.mdb 0644), is closed too.
// `create`: make it if missing (init, join); opening a volume never does
// (`disktro status` of a missing data dir leaves it missing).
export async function privateDataDir (dataDir: string, o: { create: boolean }): Promise<void> {
  if (o.create) await mkdir(dataDir, { recursive: true, mode: 0o700 })
  await chmodOwn(dataDir, 0o700)
}

// The store's directory 0700 and its files 0600 (after LMDB made them).
export async function privateStore (storeDir: string): Promise<void> {
  await chmodOwn(storeDir, 0o700)
  const names = await readdir(storeDir).catch(() => [] as string[])
  for (const name of names) await chmodOwn(join(storeDir, name), 0o600)
}

// chmod, except where this user may not (a data dir of someone else's that
// it may still read, e.g. `disktro status` as root): the owner's mode stays.
async function chmodOwn (path: string, mode: number): Promise<void> {
  try {
    await chmod(path, mode)
  } catch (e) {
    const code = (e as NodeJS.ErrnoException).code
    if (code !== 'EPERM' && code !== 'ENOENT' && code !== 'EROFS') throw e
  }
}
