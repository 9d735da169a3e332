// HotLoop keeps the event loop polling for its window after each touch, and
// no longer: an idle daemon must not spin.
import t from 'tap'
import { setTimeout as sleep } from 'node:timers/promises'
import { HotLoop } from '../../src/fuse/hot-loop.js'

const immediates = (): number => process.getActiveResourcesInfo().filter(r => r === 'Immediate').length

t.test('the loop stays awake for the window after the last touch, then sleeps', async t => {
  const hot = new HotLoop(300_000) // 300 ms: timers on a loaded machine run late
  t.equal(immediates(), 0, 'nothing pending before')
  hot.touch()
  await sleep(100)
  t.ok(immediates() > 0, 'still polling 100 ms after a touch')
  hot.touch() // extends the window to 300 ms from now
  await sleep(250)
  t.ok(immediates() > 0, 'a second touch extends it (350 ms after the first)')
  await sleep(400)
  t.equal(immediates(), 0, 'asleep once the window has passed')
})

t.test('a window of zero, or of no number, never spins', async t => {
  for (const window of [0, NaN, -5]) {
    const hot = new HotLoop(window)
    hot.touch()
    t.equal(immediates(), 0, `window ${window}`)
  }
})

t.test('in a burst of touches the window is the longer burst window', async t => {
  const hot = new HotLoop(10_000, 300_000) // 10 ms alone, 300 ms in a burst
  hot.touch()
  t.notOk(hot.inBurst, 'one touch is no burst')
  await sleep(100)
  t.equal(immediates(), 0, 'asleep 100 ms after a lone touch')
  for (let i = 0; i < 25; i++) hot.touch()
  t.ok(hot.inBurst, '25 touches at once are a burst')
  await sleep(100)
  t.ok(immediates() > 0, 'still polling 100 ms after a burst')
  await sleep(400)
  t.equal(immediates(), 0, 'asleep once the burst window has passed')
  hot.touch()
  t.ok(hot.inBurst, 'the next touch, a bucket later, still counts the burst before it')
  await sleep(100)
  hot.touch()
  t.notOk(hot.inBurst, 'a bucket with one touch ends it')
  await sleep(100)
  t.equal(immediates(), 0, 'and the window is short again')
})

t.test('busy while a burst goes on, not after it or for a lone touch', async t => {
  const hot = new HotLoop(10_000, 20_000)
  hot.touch()
  t.notOk(hot.busy, 'one touch is not busy')
  await sleep(60)
  for (let i = 0; i < 25; i++) hot.touch()
  t.ok(hot.busy, 'busy right after a burst of touches')
  await sleep(100)
  t.ok(hot.busy, 'still busy in a gap of 100 ms: a burst pauses (tar x makes a directory)')
  await sleep(200)
  t.notOk(hot.busy, 'not busy once the burst has been quiet for more than 250 ms')
  t.same(new HotLoop(0).busy, false, 'a loop that never spins is never busy')
})
