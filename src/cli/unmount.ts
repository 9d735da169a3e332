import type { Argv } from 'yargs'
import { resolve } from 'node:path'
import { unmountPath, isMounted } from '../fuse/unmount.js'
import { fail } from '../errors.js'
import type { GlobalArgs } from './common.js'

export function unmountCommand (y: Argv<GlobalArgs>): Argv<GlobalArgs> {
  return y.command('unmount <mountpoint>', 'unmount a disktro mount, also one whose daemon died',
    a => a.positional('mountpoint', { type: 'string', demandOption: true }),
    async argv => {
      const mnt = resolve(String(argv.mountpoint))
      if (!await isMounted(mnt)) throw fail('UNMOUNT_FAILED', `${mnt} is not mounted`)
      try {
        await unmountPath(mnt)
      } catch {
        await unmountPath(mnt, { lazy: true }).catch((e: Error) => { throw fail('UNMOUNT_FAILED', e.message) })
      }
      process.stdout.write(`unmounted ${mnt}\n`)
    })
}
