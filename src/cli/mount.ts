import type { Argv } from 'yargs'
import { DisktroNode } from '../node.js'
import { dataDirOf, configOf, passwords, log, type GlobalArgs } from './common.js'
import { untilSignal } from './serve.js'

export function mountCommand (y: Argv<GlobalArgs>): Argv<GlobalArgs> {
  return y.command('mount <mountpoint>', 'mount the volume in the foreground (creates it if the data dir has none); Ctrl-C unmounts',
    a => a
      .positional('mountpoint', { type: 'string', demandOption: true, describe: 'an existing empty directory' })
      .option('allow-other', { type: 'boolean', default: false, describe: 'let other users access the mount (needs user_allow_other in /etc/fuse.conf for non-root)' }),
    async argv => {
      const config = await configOf(argv)
      const node = await DisktroNode.mount({
        dataDir: dataDirOf(argv),
        mountpoint: String(argv.mountpoint),
        allowOther: Boolean(argv['allow-other']),
        config,
        log,
        ...passwords(argv)
      })
      process.stdout.write(`disktro: mounted volume ${node.volume.file.volumeId} at ${argv.mountpoint}\n`)
      await untilSignal(node)
    })
}
