// CPU placement (src/fuse/cpu-placement.ts, scripts/build-fuse.cjs (j))
// through a real mount: the daemon's threads, as /proc shows them, sit where
// the placement says while the mount serves metadata, anywhere while the
// crypto workers have data, and placed again once that stops.
import t from 'tap'
import { readdir, readFile } from 'node:fs/promises'
import { Mount, sh, requireFuse } from '../helpers/disktro.js'
import { cpuBinding, loadFuse } from '../../src/fuse/native.js'
import { planPlacement } from '../../src/fuse/cpu-placement.js'

// tid -> the CPUs it may run on ("0-1", "1", "0,2-3" expanded)
async function threadCpus (pid: number): Promise<Map<number, number[]>> {
  const out = new Map<number, number[]>()
  for (const name of await readdir(`/proc/${pid}/task`)) {
    const status = await readFile(`/proc/${pid}/task/${name}/status`, 'utf8').catch(() => null)
    const list = status && /^Cpus_allowed_list:\s*(\S+)/m.exec(status)?.[1]
    if (!list) continue
    const cpus: number[] = []
    for (const part of list.split(',')) {
      const [a, b] = part.split('-').map(Number)
      for (let c = a; c <= (b ?? a); c++) cpus.push(c)
    }
    out.set(Number(name), cpus)
  }
  return out
}

async function until (what: string, cond: () => Promise<boolean>, ms = 10_000): Promise<void> {
  const deadline = Date.now() + ms
  while (Date.now() < deadline) {
    if (await cond()) return
    await new Promise(resolve => setTimeout(resolve, 50))
  }
  throw new Error(`timed out waiting until ${what}`)
}

t.test('the plan: the last CPU for the event loop, the rest for the others', async t => {
  t.same(planPlacement([0, 1]), { loop: 1, fuse: [0] })
  t.same(planPlacement([5, 2, 7, 3]), { loop: 7, fuse: [2, 3, 5] })
  t.equal(planPlacement([3]), null, 'nothing to do with one CPU')
  t.equal(planPlacement([]), null)
})

t.test('the patched addon reads and sets a thread\'s CPUs', async t => {
  if (!await requireFuse(t)) return
  loadFuse()
  const b = cpuBinding()
  t.ok(b, 'npm install built the addon with CPU placement (scripts/build-fuse.cjs)')
  if (!b) return
  const mine = b.fuse_native_cpus_get(process.pid)
  t.same(mine, (await threadCpus(process.pid)).get(process.pid), 'what the addon reads is what /proc shows')
  t.equal(b.fuse_native_cpus_set(2 ** 31 - 2, mine), 3, 'ESRCH for a thread that does not exist')
})

t.test('a mount keeps its event loop on a CPU of its own, and lets go while data flows', async t => {
  if (!await requireFuse(t)) return
  loadFuse()
  const allowed = cpuBinding()?.fuse_native_cpus_get(process.pid) ?? []
  const plan = planPlacement(allowed)
  if (!plan) { t.comment(`${allowed.length} CPU: nothing to place`); return }
  const m = await Mount.start(t)
  const pid = m.child.pid!
  // Metadata through FUSE threads: each binds itself on its next operation.
  await sh(`cd '${m.dir}' && mkdir d && for i in $(seq 1 50); do echo $i > d/f$i; done && ls -l d > /dev/null`)
  let cpus = await threadCpus(pid)
  t.same(cpus.get(pid), [plan.loop], 'the event loop runs on the last CPU alone')
  const others = [...cpus].filter(([tid]) => tid !== pid)
  t.ok(others.some(([, c]) => c.join() === plan.fuse.join()), 'threads that served the mount run on the other CPUs')
  t.notOk(others.some(([, c]) => c.length === 1 && c[0] === plan.loop), 'no other thread shares the event loop\'s CPU alone')

  // 64 MiB of incompressible data: 1 MiB blocks go to the crypto workers.
  const writing = sh(`head -c 64M /dev/urandom > '${m.dir}/big' && sync '${m.dir}/big'`)
  await until('the event loop may run anywhere', async () => (await threadCpus(pid)).get(pid)?.join() === allowed.join())
  await writing
  cpus = await threadCpus(pid)
  const workersLeft = [...cpus].filter(([tid, c]) => tid !== pid && c.length === 1 && c[0] === plan.loop)
  t.same(workersLeft, [], 'threads started meanwhile (crypto workers) are not left on the event loop\'s CPU')
  await until('placed again once the workers have nothing', async () => (await threadCpus(pid)).get(pid)?.join() === String(plan.loop))
  t.equal(await sh(`wc -c < '${m.dir}/big'`), `${64 * 1024 * 1024}\n`, 'the file reads back whole')
  t.equal((await m.stop()).code, 0)
})

t.test('DISKTRO_CPU_PLACEMENT=0 leaves every thread to the scheduler', async t => {
  if (!await requireFuse(t)) return
  loadFuse()
  const allowed = cpuBinding()?.fuse_native_cpus_get(process.pid) ?? []
  if (!planPlacement(allowed)) { t.comment(`${allowed.length} CPU: nothing to place`); return }
  process.env.DISKTRO_CPU_PLACEMENT = '0'
  t.teardown(() => { delete process.env.DISKTRO_CPU_PLACEMENT })
  const m = await Mount.start(t)
  await sh(`cd '${m.dir}' && echo x > f && ls -l > /dev/null`)
  const cpus = await threadCpus(m.child.pid!)
  t.ok([...cpus.values()].every(c => c.join() === allowed.join()), 'every thread may run on every CPU')
})
