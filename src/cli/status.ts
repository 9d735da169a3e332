import type { Argv } from 'yargs'
import { Volume } from '../volume/volume.js'
import { volumeStats } from '../volume/stats.js'
import { askDaemon } from '../api/control-client.js'
import { summaryOf } from '../replication/replicator.js'
import { ReplicaState } from '../replication/replica-state.js'
import { health } from '../api/web/health.js'
import { storeStats } from '../replication/chunk-service.js'
import { Pinning } from '../replication/pinning.js'
import { Scrubber } from '../replication/scrubber.js'
import { spaceReport, type StatusReport } from '../status-report.js'
import { renderStatus, bytes } from './status-render.js'
import { fileReplication } from '../replication/file-replication.js'
import type { FileReplication } from '../status-report.js'
import { dataDirOf, configOf, passwords, type GlobalArgs } from './common.js'

export function statusCommand (y: Argv<GlobalArgs>): Argv<GlobalArgs> {
  return y.command('status', 'is my data safe? peers, replication, volume totals. Exit code: 0 safe (every chunk has copies at replicaCount), 1 at risk (chunks below target or lost), 2 unknown (no daemon running, or copies not counted yet)',
    a => a
      .option('json', { type: 'boolean', default: false, describe: 'everything, machine-readable' })
      .option('files', { type: 'boolean', default: false, describe: 'add per-file replication: every file, streamed, read from the data dir (works without a daemon)' })
      .option('limit', { type: 'number', describe: 'with --files: list at most this many files' })
      .option('watch', { type: 'boolean', default: false, describe: 'refresh every second with a progress bar while replication is behind' }),
    async argv => {
      const dataDir = dataDirOf(argv)
      const once = async (): Promise<StatusReport> => {
        const live = await askDaemon(dataDir, { cmd: 'status' }) as StatusReport | null
        return live ?? await offlineStatus(argv, dataDir)
      }
      let report = await once()
      if (argv.watch && !argv.json) {
        for (;;) {
          process.stdout.write('\x1b[2J\x1b[H' + renderStatus(report, true))
          await new Promise(resolve => setTimeout(resolve, 1000))
          report = await once()
        }
      }
      if (!argv.files) {
        process.stdout.write(argv.json ? JSON.stringify(report, null, 2) + '\n' : renderStatus(report, false))
      } else if (argv.json) {
        const head = JSON.stringify(report, null, 2)
        await write(head.slice(0, head.lastIndexOf('}')).trimEnd() + ',\n  "files": [')
        let first = true
        await eachFile(argv, dataDir, async f => { await write((first ? '\n    ' : ',\n    ') + JSON.stringify(f)); first = false })
        await write('\n  ]\n}\n')
      } else {
        await write(renderStatus(report, false) + '\nfiles\n')
        await eachFile(argv, dataDir, async f => await write(`  ${f.path}  ${bytes(f.size)}  ${f.atTarget}/${f.chunks} at target${f.lost ? `, ${f.lost} LOST` : ''}\n`))
      }
      process.exitCode = report.health.exitCode
    })
}

// Writes to stdout, waiting when the pipe is full (a listing of a million files).
async function write (text: string): Promise<void> {
  if (!process.stdout.write(text)) await new Promise(resolve => process.stdout.once('drain', resolve))
}

// Every file of the tree with its replication, from the data dir (a reader
// beside the daemon, if one runs), streamed.
async function eachFile (argv: GlobalArgs & { limit?: number }, dataDir: string, fn: (f: FileReplication) => Promise<void>): Promise<void> {
  const config = await configOf(argv)
  const volume = await Volume.open(dataDir, await passwords(argv).password(), { maxStoreBytes: config.maxStoreBytes, readOnly: true })
  try {
    if (!volume.access) return
    const state = new ReplicaState(volume.store, config.replicaCount, false, () => {}, true)
    let n = 0
    for (const f of fileReplication(volume.access.ns, id => state.copiesOf(id), config.replicaCount)) {
      if (argv.limit !== undefined && n >= argv.limit) break
      await fn(f)
      n++
    }
  } finally {
    await volume.close()
  }
}

// No daemon: what the data dir alone says (peers unknown).
async function offlineStatus (argv: GlobalArgs, dataDir: string): Promise<StatusReport> {
  const config = await configOf(argv)
  const volume = await Volume.open(dataDir, await passwords(argv).password(), { maxStoreBytes: config.maxStoreBytes, readOnly: true })
  try {
    const replication = summaryOf(new ReplicaState(volume.store, config.replicaCount, volume.file.role === 'storage', () => {}, true))
    const vs = volume.access ? volumeStats(volume) : null
    return {
      daemon: { running: false },
      dataDir,
      node: { id: volume.file.nodeId, role: volume.file.role, ...(volume.file.role === 'storage' && !volume.file.fullRoleKey ? { trustsRoleClaims: true } : {}) },
      volume: vs ?? { volumeId: volume.file.volumeId },
      store: storeStats(volume.store),
      space: spaceReport(volume.store.spaceStats(), vs?.logicalBytes ?? null),
      peers: [],
      replication,
      health: health({ daemonRunning: false, role: volume.file.role, replication, peers: [] }),
      pins: volume.access ? new Pinning(volume.store, volume.access.ns, () => {}, true).reports(() => false) : [],
      scrub: Scrubber.offlineReport(volume.store, config.scrubRate, config.scrubInterval)
    }
  } finally {
    await volume.close()
  }
}
