import type { Argv } from 'yargs'
import { Volume } from '../volume/volume.js'
import { readVolumeFile } from '../volume/volume-file.js'
import { DataDirLock, lockPath, runningPid } from '../volume/data-dir-lock.js'
import { ChunkVerifier } from '../chunks/chunk-verifier.js'
import { Fsck, PROBLEMS, type FsckReport } from '../volume/fsck.js'
import { bytes } from './status-render.js'
import { DisktroError } from '../errors.js'
import { dataDirOf, configOf, passwords, type GlobalArgs } from './common.js'

export function fsckCommand (y: Argv<GlobalArgs>): Argv<GlobalArgs> {
  return y.command('fsck', 'check the local store and namespace of a data dir no daemon is using (exit 0 clean, 1 problems found, 2 could not check)',
    a => a
      .option('repair', { type: 'boolean', default: false, describe: 'fix what needs no other machine: counts, leaked chunks, entries pointing nowhere' })
      .option('json', { type: 'boolean', default: false, describe: 'the report, machine-readable' }),
    async argv => {
      try {
        await fsck(argv)
      } catch (e) {
        // Could not check (no volume, wrong password, store unreadable): not "problems found".
        if (!(e instanceof DisktroError)) throw e
        process.stderr.write(`disktro: ${e.message}\n`)
        process.exitCode = 2
      }
    })
}

async function fsck (argv: GlobalArgs & { repair?: boolean, json?: boolean }): Promise<void> {
  const dataDir = dataDirOf(argv)
  await readVolumeFile(dataDir)
  const pid = await runningPid(lockPath(dataDir))
  if (pid !== null) {
    process.stderr.write(`disktro: a daemon (pid ${pid}) is using ${dataDir}: stop it first (disktro status shows what its scrubber found)\n`)
    process.exitCode = 2
    return
  }
  const lock = await DataDirLock.acquire(dataDir)
  let report: FsckReport
  try {
    const config = await configOf(argv)
    // readOnly: no namespace start-up work, and the clean flag stays as
    // it was, so an unclean volume still gets crash recovery at start.
    const volume = await Volume.open(dataDir, await passwords(argv).password(), { maxStoreBytes: config.maxStoreBytes, readOnly: true })
    try {
      report = await new Fsck(volume.store, new ChunkVerifier(volume.access?.pipeline ?? null), volume.access?.keys ?? null).run(Boolean(argv.repair))
    } finally {
      await volume.close()
    }
  } finally {
    await lock.release()
  }
  process.stdout.write(argv.json ? JSON.stringify({ dataDir, ...report }, null, 2) + '\n' : render(dataDir, report, Boolean(argv.repair)))
  process.exitCode = report.found > 0 ? 1 : 0
}

function render (dataDir: string, r: FsckReport, repair: boolean): string {
  const c = r.checked
  const lines = [r.role === 'full'
    ? `checked ${dataDir} (full member): ${c.inodes} inodes, ${c.dirents} directory entries, ${c.blocks} block map entries, ${c.chunks} chunks (${bytes(c.bytes)})`
    : `checked ${dataDir} (storage-only: chunk checksums only): ${c.chunks} chunks (${bytes(c.bytes)})`]
  for (const p of r.problems) {
    const how = PROBLEMS[p.kind].repair
    const state = p.fixed === p.count ? `: ${how}` : !repair ? (how ? ' (--repair: ' + how + ')' : '') : how ? `: ${p.fixed} ${how}` : ': NOT repaired offline'
    let hint = ''
    if (p.kind === 'chunk-corrupt' || p.kind === 'chunk-missing') hint = '; start the daemon: its scrubber fetches good copies from peers'
    lines.push(`${p.what}: ${p.count}${state}${hint}`)
  }
  for (const n of r.notes) lines.push(`note: ${n.what}: ${n.count}`)
  if (r.found === 0) lines.push('clean')
  else lines.push(`${r.found} problem(s) found${repair ? `, ${r.found - r.remaining} fixed, ${r.remaining} remain` : ''}`)
  return lines.join('\n') + '\n'
}
