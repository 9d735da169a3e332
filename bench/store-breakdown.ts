// Where a store's bytes go: pages per LMDB database (branch, leaf, overflow),
// the file's extent and the free pages in it, from LMDB's own accounting
// (mdb_stat per database, mdb_env_info). `node dist/bench/store-breakdown.js
// DATA_DIR/store [logical bytes]`; the scale bench prints it for member A.
// Read-only: safe beside a running daemon (LMDB readers do not block writers).
import { open } from 'lmdb'
import { join } from 'node:path'
import { stat } from 'node:fs/promises'

export interface DbPages { name: string, entries: number, branch: number, leaf: number, overflow: number, bytes: number }
export interface StoreBreakdown { pageSize: number, fileBytes: number, usedPages: number, freePages: number, dbs: DbPages[] }

export async function storeBreakdown (storeDir: string): Promise<StoreBreakdown> {
  const env = open<Buffer, Buffer>({ path: storeDir, readOnly: true, maxDbs: 32, encoding: 'binary', keyEncoding: 'binary', compression: false })
  try {
    const names: string[] = []
    // The root database's keys are the names of the named databases.
    for (const k of env.getKeys({})) names.push((Buffer.isBuffer(k) ? k.toString() : String(k)).replace(/\0+$/, ''))
    const root = env.getStats() as any
    const pageSize: number = root.pageSize
    const dbs: DbPages[] = []
    for (const name of names) {
      let s: any
      try { s = env.openDB<Buffer, Buffer>({ name, encoding: 'binary', keyEncoding: 'binary', compression: false }).getStats() } catch { continue }
      const pages = s.treeBranchPageCount + s.treeLeafPageCount + s.overflowPages
      dbs.push({ name, entries: s.entryCount, branch: s.treeBranchPageCount, leaf: s.treeLeafPageCount, overflow: s.overflowPages, bytes: pages * pageSize })
    }
    const fr = root.free
    const freeDbPages = fr.treeBranchPageCount + fr.treeLeafPageCount + fr.overflowPages
    dbs.push({ name: '(free list)', entries: fr.entryCount, branch: fr.treeBranchPageCount, leaf: fr.treeLeafPageCount, overflow: fr.overflowPages, bytes: freeDbPages * pageSize })
    const rootPages = root.root.treeBranchPageCount + root.root.treeLeafPageCount + root.root.overflowPages
    dbs.push({ name: '(root: db names)', entries: root.root.entryCount, branch: root.root.treeBranchPageCount, leaf: root.root.treeLeafPageCount, overflow: root.root.overflowPages, bytes: rootPages * pageSize })
    dbs.sort((a, b) => b.bytes - a.bytes)
    const usedPages = root.lastPageNumber + 1
    const inTrees = dbs.reduce((n, d) => n + d.bytes / pageSize, 0) + 2 // two meta pages
    const fileBytes = (await stat(join(storeDir, 'data.mdb'))).size
    return { pageSize, fileBytes, usedPages, freePages: Math.max(0, usedPages - inTrees), dbs }
  } finally {
    await env.close()
  }
}

export function breakdownTable (b: StoreBreakdown, logical: number, files: number): string {
  const f = (n: number, d = 2): string => n.toFixed(d)
  const rows = ['| db | entries | branch / leaf / overflow pages | MiB | bytes per file | bytes per file byte |', '|---|---:|---:|---:|---:|---:|']
  const line = (name: string, entries: string, pages: string, bytes: number): void => {
    rows.push(`| ${name} | ${entries} | ${pages} | ${f(bytes / 2 ** 20, 1)} | ${f(bytes / files, 0)} | ${f(bytes / logical, 3)} |`)
  }
  for (const d of b.dbs) if (d.bytes > 0) line(d.name, String(d.entries), `${d.branch} / ${d.leaf} / ${d.overflow}`, d.bytes)
  line('free pages (in the file, reusable)', '', String(b.freePages), b.freePages * b.pageSize)
  line('**file extent (last page)**', '', String(b.usedPages), b.usedPages * b.pageSize)
  return rows.join('\n')
}

if (import.meta.url === `file://${process.argv[1]}`) {
  const [dir, logical] = process.argv.slice(2)
  const b = await storeBreakdown(dir)
  process.stdout.write(breakdownTable(b, Number(logical ?? 1), Number(process.argv[4] ?? 1)) + '\n')
}
