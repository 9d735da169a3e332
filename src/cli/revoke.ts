import type { Argv } from 'yargs'
import { addRevoked } from '../volume/revoked.js'
import { askDaemon } from '../api/control-client.js'
import { dataDirOf, type GlobalArgs } from './common.js'

export function revokeCommand (y: Argv<GlobalArgs>): Argv<GlobalArgs> {
  return y.command('revoke <node-id>', 'stop talking to a member: this node closes its connection and refuses it from now on',
    a => a.positional('node-id', { type: 'string', demandOption: true, describe: 'the 64-hex-character node id from `disktro status --json`' }),
    async argv => {
      const dataDir = dataDirOf(argv)
      const id = await addRevoked(dataDir, String(argv['node-id']))
      const live = await askDaemon(dataDir, { cmd: 'revoke', id })
      process.stdout.write(`revoked ${id.slice(0, 16)}${live === null ? ' (takes effect when the daemon starts)' : ' (disconnected now)'}\n`)
      process.stderr.write('Note: the revoked member still holds the volume key; other members must revoke it too.\n')
    })
}
