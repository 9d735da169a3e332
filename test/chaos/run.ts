// `npm run chaos -- [--minutes 5] [--seed 1]`: the long chaos run.
import { parseArgs } from 'node:util'
import { runChaos } from './chaos.js'

const { values } = parseArgs({ options: { minutes: { type: 'string', default: '5' }, seed: { type: 'string', default: String(Date.now() % 100000) } } })
const cleanups: Array<() => unknown> = []
const t = { teardown: (fn: () => unknown) => { cleanups.push(fn) } }
let code = 0
try {
  const seed = Number(values.seed)
  console.log(`chaos: seed ${seed}, ${values.minutes} min (rerun with --seed ${seed})`)
  const r = await runChaos(t, { seed, durationMs: Number(values.minutes) * 60_000, log: line => console.log(line) })
  console.log(JSON.stringify(r))
  if (r.verifiedFiles !== r.files) code = 1
} catch (e) {
  console.error(`chaos: FAILED: ${(e as Error).message}`)
  code = 1
} finally {
  for (const fn of cleanups.reverse()) await Promise.resolve(fn()).catch(() => {})
}
process.exit(code)
