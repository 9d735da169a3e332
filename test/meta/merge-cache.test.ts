// The merge contract with the smallest caches (#26): the merge tests and
// the incremental reconcile (in-process: no mount timeouts to meet) run
// again in child processes with
// DISKTRO_META_CACHE_ENTRIES=1, so every directory listing, merged
// attribute, decoded inode, lookup and block ref is evicted as soon as
// another is made, and every answer comes from the state itself. A cache
// that changed what the view shows, or a listing evicted and not noticed
// by the materializer, fails them here.
import t from 'tap'
import { spawn } from 'node:child_process'
import { dirname, join } from 'node:path'
import { fileURLToPath } from 'node:url'

const here = dirname(fileURLToPath(import.meta.url))

async function runWithTinyCaches (file: string, env: Record<string, string> = {}): Promise<{ code: number | null, out: string }> {
  return await new Promise(resolve => {
    const child = spawn(process.execPath, [join(here, file)], { env: { ...process.env, ...env, DISKTRO_META_CACHE_ENTRIES: '1', TAP: '0' }, stdio: ['ignore', 'pipe', 'pipe'] })
    let out = ''
    child.stdout.on('data', (d: Buffer) => { out += d.toString() })
    child.stderr.on('data', (d: Buffer) => { out += d.toString() })
    child.on('exit', code => resolve({ code, out }))
  })
}

for (const [file, env] of [
  ['merge-tree.test.js', {}],
  ['merge-sim.test.js', { MERGE_CASES: '300' }],
  ['shared/incremental-reconcile.test.js', {}]
] as Array<[string, Record<string, string>]>) {
  t.test(`${file} with caches of one entry`, async t => {
    const r = await runWithTinyCaches(file, env)
    t.equal(r.code, 0, r.code === 0 ? 'passes' : r.out.slice(-4000))
    t.match(r.out, /^\s*ok \d+/m, 'ran its tests')
  })
}
