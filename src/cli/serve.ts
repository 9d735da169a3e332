import type { Argv } from 'yargs'
import { DisktroNode } from '../node.js'
import { dataDirOf, configOf, passwords, log, type GlobalArgs } from './common.js'

export function serveCommand (y: Argv<GlobalArgs>): Argv<GlobalArgs> {
  return y.command('serve', 'run this node without a mount: store, serve and replicate chunks (a headless replica)',
    a => a,
    async argv => {
      const node = await DisktroNode.open({ dataDir: dataDirOf(argv), config: await configOf(argv), log, ...passwords(argv) })
      process.stdout.write(`disktro: serving volume ${node.volume.file.volumeId} as node ${node.volume.file.nodeId.slice(0, 16)} (${node.volume.file.role})\n`)
      await untilSignal(node)
    })
}

// Foreground daemons stop cleanly on SIGINT/SIGTERM, or when their mount is
// unmounted from outside, and exit 0.
export async function untilSignal (node: DisktroNode): Promise<never> {
  await new Promise<void>(resolve => {
    let stopping = false
    const stop = (sig: string) => {
      if (stopping) return
      stopping = true
      log(`${sig}: shutting down`)
      node.close().then(resolve, e => { log(`shutdown: ${(e as Error).message}`); resolve() })
    }
    process.on('SIGINT', () => stop('SIGINT'))
    process.on('SIGTERM', () => stop('SIGTERM'))
    node.onUnmounted(() => stop('unmounted'))
  })
  process.exit(0)
}
