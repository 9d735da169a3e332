import t from 'tap'
import { readFile, writeFile } from 'node:fs/promises'
import { join } from 'node:path'
import { disktro, tempDir } from '../helpers/disktro.js'

// The upgrade path of a storage-only member joined with a code older than
// version 3 (issue #28, item 2): it takes full-role claims on trust until it
// gets the role key from a new storage-only code of the same volume; codes
// of another volume, or of the full role, are refused.
t.test('join --upgrade gives an old storage-only member the role key, and nothing else', async t => {
  const base = await tempDir(t)
  const [a, s, other] = ['a', 's', 'other'].map(n => join(base, n))
  for (const dir of [a, other]) t.equal((await disktro(['init', '--data-dir', dir])).code, 0)
  const code = (await disktro(['invite', '--storage-only', '--data-dir', a])).stdout.trim()
  t.equal((await disktro(['join', code, '--data-dir', s])).code, 0)
  // As a code before version 3 left it: no role key.
  const file = JSON.parse(await readFile(join(s, 'volume.json'), 'utf8'))
  const key = file.fullRoleKey
  t.match(key, /^[0-9a-f]{64}$/)
  delete file.fullRoleKey
  await writeFile(join(s, 'volume.json'), JSON.stringify(file, null, 2))
  const st = JSON.parse((await disktro(['status', '--json', '--data-dir', s])).stdout)
  t.equal(st.node.trustsRoleClaims, true, 'status says it takes role claims on trust')

  const wrongVolume = (await disktro(['invite', '--storage-only', '--data-dir', other])).stdout.trim()
  const r1 = await disktro(['join', wrongVolume, '--upgrade', '--data-dir', s])
  t.not(r1.code, 0)
  t.match(r1.stderr, /the code is for volume/, 'a code of another volume is refused')
  const fullCode = (await disktro(['invite', '--data-dir', a])).stdout.trim()
  const r2 = await disktro(['join', fullCode, '--upgrade', '--data-dir', s])
  t.not(r2.code, 0)
  t.match(r2.stderr, /must be a storage-only join code/, 'a full member\'s code is refused (it would hand over the volume key)')

  const fresh = (await disktro(['invite', '--storage-only', '--data-dir', a])).stdout.trim()
  const r3 = await disktro(['join', fresh, '--upgrade', '--data-dir', s])
  t.equal(r3.code, 0, r3.stderr)
  const after = JSON.parse(await readFile(join(s, 'volume.json'), 'utf8'))
  t.equal(after.fullRoleKey, key, 'the role key is the volume\'s')
  t.equal(after.nodeId, file.nodeId, 'the identity is kept')
  const st2 = JSON.parse((await disktro(['status', '--json', '--data-dir', s])).stdout)
  t.notOk(st2.node.trustsRoleClaims, 'status no longer warns')
})
