// Nanosecond timestamps end to end (issue 29): what touch -d, cp -a or
// utimensat set reads back to the nanosecond, after a restart too; a time
// set anew (a write) drops them; ms-only times stay as they were.
import t from 'tap'
import { Mount, requireFuse } from '../helpers/disktro.js'
import { sh, q, stat, daemonErrors } from './posix-helpers.js'

process.env.TZ = 'UTC' // touch -d reads and stat prints local time: the expected strings are UTC

const envTimeout = Number(process.env.TAP_TIMEOUT ?? '30')
if (envTimeout !== 0 && envTimeout < 180) t.setTimeout(180_000)

t.test('touch -d with nanoseconds reads back exactly, through a restart', async t => {
  if (!await requireFuse(t)) return
  const m = await Mount.start(t)
  const p = (...parts: string[]) => m.path(...parts)
  await sh(`cd ${q(m.dir)} && mkdir d && echo x > f && echo y > g && echo z > h && ln -s f l`)

  await sh(`touch -d '2020-01-01 00:00:00.123456789' ${q(p('f'))} ${q(p('d'))}`)
  t.same(await stat('%y|%x', p('f'), p('d')), Array(2).fill('2020-01-01 00:00:00.123456789 +0000|2020-01-01 00:00:00.123456789 +0000'), 'a file and a directory: mtime and atime to the ns')
  await sh(`touch -m -d '2021-06-07 08:09:10.000000001' ${q(p('g'))} && touch -a -d '2019-02-03 04:05:06.999999999' ${q(p('g'))}`)
  t.same(await stat('%y|%x', p('g')), ['2021-06-07 08:09:10.000000001 +0000|2019-02-03 04:05:06.999999999 +0000'], 'touch -m and touch -a each keep their own')
  await sh(`touch -h -d '2018-01-01 00:00:00.5' ${q(p('l'))}`)
  t.same(await stat('%y', p('l')), ['2018-01-01 00:00:00.500000000 +0000'], 'a symlink itself (touch -h)')
  await sh(`touch -d '2017-01-01 00:00:00.250' ${q(p('h'))}`)
  t.same(await stat('%y', p('h')), ['2017-01-01 00:00:00.250000000 +0000'], 'a time in whole ms')

  // cp -a and rsync carry ns (utimensat with the source's times).
  await sh(`touch -d '2016-05-05 05:05:05.987654321' ${q(p('f'))} && cp -a ${q(p('f'))} ${q(p('copy'))}`)
  t.same(await stat('%.9Y', p('copy')), await stat('%.9Y', p('f')), 'cp -a keeps the ns')
  t.same(await stat('%y', p('copy')), ['2016-05-05 05:05:05.987654321 +0000'])

  // A write sets mtime anew: the old ns go with the old time.
  await sh(`touch -d '2015-01-01 00:00:00.111111111' ${q(p('g'))} && echo more >> ${q(p('g'))}`)
  const [y] = await stat('%Y', p('g'))
  t.ok(Number(y) > 1_700_000_000, `the write set mtime to now: ${y}`)
  t.notMatch((await stat('%y', p('g')))[0], /111111/, 'and the old ns are gone')
  const [atimeG] = await stat('%x', p('g'))

  t.same(daemonErrors(m.stderr), [], 'the daemon logged no failed operation')
  t.equal((await m.stop()).code, 0, 'clean exit')

  const again = await Mount.start(t, { dataDir: m.dataDir, mountpoint: m.dir })
  const r = (...parts: string[]) => again.path(...parts)
  t.same(await stat('%y|%x', r('d')), ['2020-01-01 00:00:00.123456789 +0000|2020-01-01 00:00:00.123456789 +0000'], 'after a restart: the directory')
  t.same(await stat('%y', r('f'), r('copy'), r('h'), r('l')), ['2016-05-05 05:05:05.987654321 +0000', '2016-05-05 05:05:05.987654321 +0000', '2017-01-01 00:00:00.250000000 +0000', '2018-01-01 00:00:00.500000000 +0000'], 'the files and the symlink')
  t.same(await stat('%x', r('g')), [atimeG], 'the atime ns of a file whose mtime was set anew')
  t.equal((await again.stop()).code, 0, 'clean exit')
})
