import t from 'tap'
import { readFileSync, readdirSync } from 'node:fs'
import { Worker } from 'node:worker_threads'
import { randomBytes } from 'node:crypto'
import { lowerThreadPriority } from '../../src/chunks/thread-priority.js'
import { CryptoWorkers } from '../../src/chunks/crypto-workers.js'
import { ChunkPipeline } from '../../src/chunks/chunk-pipeline.js'
import { randomKey } from '../../src/crypto/volume-keys.js'

const linux = process.platform === 'linux'

// A thread's nice value from /proc (field 19 of stat, after the command in parentheses).
function niceOf (tid: number): number {
  const stat = readFileSync(`/proc/self/task/${tid}/stat`, 'utf8')
  return Number(stat.slice(stat.lastIndexOf(')') + 2).split(' ')[16])
}

function threadNices (): number[] {
  return readdirSync('/proc/self/task').map(tid => niceOf(Number(tid)))
}

t.test('a thread lowers its own priority and no other thread\'s', { skip: !linux && 'per-thread priorities are a Linux feature' }, async t => {
  const before = niceOf(process.pid)
  const w = new Worker(`
    const { parentPort, workerData } = require('node:worker_threads')
    import(workerData.url).then(m => {
      const got = m.lowerThreadPriority(3)
      const tid = Number(require('node:fs').readlinkSync('/proc/thread-self').split('/').pop())
      parentPort.postMessage({ got, tid })
      parentPort.on('message', () => process.exit(0)) // stays alive until told
    })`, { eval: true, workerData: { url: new URL('../../src/chunks/thread-priority.js', import.meta.url).href } })
  const { got, tid } = await new Promise<{ got: number, tid: number }>((resolve, reject) => { w.once('message', resolve); w.once('error', reject) })
  t.equal(got, Math.min(19, before + 3), 'the new nice value is returned')
  t.equal(niceOf(tid), got, 'the worker thread runs at it')
  t.equal(niceOf(process.pid), before, 'the main thread keeps its priority')
  await w.terminate()
  t.equal(lowerThreadPriority(0), null, 'a step of 0 changes nothing')
  t.equal(niceOf(process.pid), before)
})

t.test('crypto workers seal on lowered threads and open on normal ones', { skip: !linux && 'per-thread priorities are a Linux feature' }, async t => {
  const base = niceOf(process.pid)
  const lowered = Math.min(19, base + 5)
  t.not(lowered, base, 'the test process is not already at the lowest priority')
  const dataKey = randomKey(); const idKey = randomKey()
  const workers = new CryptoWorkers({ dataKey, idKey, idHash: 'blake3' }, 1, null, 1)
  const pipeline = new ChunkPipeline(dataKey, idKey, workers)
  t.teardown(() => pipeline.close())
  const count = (): number => threadNices().filter(n => n === lowered).length
  const before = count()
  const block = randomBytes(1024 * 1024)
  const sealed = await pipeline.seal(block)
  t.equal(count(), before + 1, 'the sealing thread runs lowered')
  t.ok((await pipeline.open(sealed.id, sealed.record)).equals(block), 'opened')
  t.equal(count(), before + 1, 'the opening thread does not')
})
