import type { Argv } from 'yargs'
import { Volume } from '../volume/volume.js'
import { volumeStats } from '../volume/stats.js'
import { runningPid, lockPath } from '../volume/data-dir-lock.js'
import { dataDirOf, configOf, passwords, type GlobalArgs } from './common.js'

export function statusCommand (y: Argv<GlobalArgs>): Argv<GlobalArgs> {
  return y.command('status', 'report the volume: files, bytes, compression and dedupe, chunks',
    a => a.option('json', { type: 'boolean', default: false, describe: 'machine-readable output' }),
    async argv => {
      const dataDir = dataDirOf(argv)
      const config = await configOf(argv)
      const pid = await runningPid(lockPath(dataDir))
      const volume = await Volume.open(dataDir, await passwords(argv).password(), { maxStoreBytes: config.maxStoreBytes, readOnly: true })
      try {
        const s = volumeStats(volume)
        const daemon = pid === null ? { running: false } : { running: true, pid }
        if (argv.json) {
          process.stdout.write(JSON.stringify({ dataDir, daemon, ...s }, null, 2) + '\n')
          return
        }
        const lines = [
          `volume      ${s.volumeId} (node ${s.nodeId})`,
          `data dir    ${dataDir}`,
          `daemon      ${pid === null ? 'not running' : `running (pid ${pid})`}`,
          `files       ${s.files} in ${s.directories} directories`,
          `logical     ${bytes(s.logicalBytes)}`,
          `stored      ${bytes(s.storedBytes)} in ${s.chunks} chunks of up to ${bytes(s.chunkSize)}`,
          `compression ${s.compressionRatio.toFixed(2)}x`,
          `dedupe      ${s.dedupeRatio.toFixed(2)}x`
        ]
        process.stdout.write(lines.join('\n') + '\n')
      } finally {
        await volume.close()
      }
    })
}

function bytes (n: number): string {
  const units = ['B', 'KiB', 'MiB', 'GiB', 'TiB']
  let i = 0
  while (n >= 1024 && i < units.length - 1) { n /= 1024; i++ }
  return `${i === 0 ? n : n.toFixed(1)} ${units[i]}`
}
