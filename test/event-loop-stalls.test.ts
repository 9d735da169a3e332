import t from 'tap'
import { performance } from 'node:perf_hooks'
import { EventLoopStalls } from '../src/event-loop-stalls.js'

const sleep = (ms: number): Promise<void> => new Promise(resolve => setTimeout(resolve, ms))
function block (ms: number): void {
  const end = Date.now() + ms
  while (Date.now() < end) {}
}

t.test('a blocked event loop is measured: the longest stall, and a count over 50 ms, since start and over the last minute', async t => {
  const m = new EventLoopStalls().start()
  t.teardown(() => m.close())
  // The machine's other work can stall this process too (2 cores shared):
  // counts are checked as at least what the test caused.
  await sleep(100)
  const before = m.report()
  const c0 = process.cpuUsage()
  const w0 = performance.now()
  block(150)
  await sleep(60)
  block(220)
  await sleep(60)
  const c = process.cpuUsage(c0)
  const share = (c.user + c.system) / 1000 / (performance.now() - w0)
  const r = m.report()
  t.ok(r.stallsOver50ms >= before.stallsOver50ms + 2, `two more stalls over 50 ms: ${before.stallsOver50ms} then ${r.stallsOver50ms}`)
  t.ok(r.longestStallMs >= 190, `the longest at least about 220 ms: ${r.longestStallMs}`)
  t.ok(r.lastMinute.stallsOver50ms >= 2 && r.lastMinute.longestStallMs >= 190, 'both within the last minute')
  // On a machine loaded past its cores the blocks themselves may not get a
  // CPU: then they are rightly not "busy", and nothing is asserted of them.
  if (share >= 0.7) t.ok(r.busy.stallsOver50ms >= before.busy.stallsOver50ms + 2 && r.busy.longestStallMs >= 190, `both busy: this process was on a CPU (${Math.round(share * 100)}% of the time)`)
  else t.comment(`the blocks got a CPU ${Math.round(share * 100)}% of the time: busy not checked`)
  t.ok(r.sinceSec >= 0)
  m.close()
  m.close()
})

t.test('a stall spent waiting, not working, is not counted as busy', async t => {
  const m = new EventLoopStalls().start()
  t.teardown(() => m.close())
  await sleep(60)
  const before = m.report()
  // Atomics.wait blocks the thread without using a CPU, as the scheduler does to a process on a loaded machine.
  Atomics.wait(new Int32Array(new SharedArrayBuffer(4)), 0, 0, 200)
  await sleep(60)
  const r = m.report()
  t.ok(r.stallsOver50ms >= before.stallsOver50ms + 1 && r.longestStallMs >= 170, `a stall: ${r.longestStallMs} ms`)
  t.equal(r.busy.stallsOver50ms, before.busy.stallsOver50ms, 'not a busy one')
})

t.test('one meter per process, started on first use', async t => {
  t.equal(EventLoopStalls.shared(), EventLoopStalls.shared())
  EventLoopStalls.shared().close()
})
