import t from 'tap'
import { writeFile, readFile } from 'node:fs/promises'
import { Mount, requireFuse } from './helpers/disktro.js'

t.test('a fresh mount stores and returns a file', async t => {
  if (!await requireFuse(t)) return
  const m = await Mount.start(t)
  await writeFile(m.path('hello.txt'), 'hello world\n')
  t.equal(await readFile(m.path('hello.txt'), 'utf8'), 'hello world\n')
  const r = await m.stop()
  t.equal(r.code, 0, 'SIGTERM exits 0')
})
