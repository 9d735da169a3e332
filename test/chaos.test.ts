import t from 'tap'
import { requireFuse } from './helpers/disktro.js'
import { runChaos } from './chaos/chaos.js'

// The short version of `npm run chaos` (same scenario, 25 s of chaos).
t.test('chaos: peers killed and restarted under a writer workload', async t => {
  if (!await requireFuse(t)) return
  const seed = Number(process.env.CHAOS_SEED ?? 7)
  const r = await runChaos(t, { seed, durationMs: 25_000, log: line => t.comment(line) })
  t.ok(r.kills >= 2, `${r.kills} kills, ${r.restarts} restarts (seed ${seed})`)
  t.ok(r.ops > 20, `${r.ops} writer operations, ${(r.bytesWritten / 1048576).toFixed(1)} MiB written`)
  t.equal(r.verifiedFiles, r.files, `all ${r.files} files byte-identical on a freshly joined member`)
  t.ok(r.atTargetMs < 120_000, `every chunk at target ${r.atTargetMs} ms after the last restart`)
})
