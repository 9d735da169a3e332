import type { Argv } from 'yargs'
import { addRevoked } from '../volume/revoked.js'
import { askDaemon } from '../api/control-client.js'
import { dataDirOf, type GlobalArgs } from './common.js'

// With the daemon running, a full member signs a revocation that spreads to
// every member (membership.ts); without it, the id is noted in the data dir
// and signed when the daemon starts. A storage-only member cannot sign one:
// it only stops talking to the member itself.
export function revokeCommand (y: Argv<GlobalArgs>): Argv<GlobalArgs> {
  return y.command('revoke <node-id>', 'revoke a member: every member refuses its connections and its later changes',
    a => a.positional('node-id', { type: 'string', demandOption: true, describe: 'the node id (or a unique prefix of 8+ hex characters while the daemon runs) from `disktro status`' }),
    async argv => {
      const dataDir = dataDirOf(argv)
      const given = String(argv['node-id'])
      const live = await askDaemon(dataDir, { cmd: 'revoke', id: given }) as { revoked: string, signed: boolean } | null
      if (live !== null) {
        await addRevoked(dataDir, live.revoked)
        process.stdout.write(`revoked ${live.revoked.slice(0, 16)}${live.signed ? ': a signed revocation is on its way to every member' : ' here only (a storage-only member cannot sign a revocation; ask a full member)'}\n`)
      } else {
        const id = await addRevoked(dataDir, given)
        process.stdout.write(`revoked ${id.slice(0, 16)} (signed and sent to every member when the daemon starts)\n`)
      }
      process.stderr.write('Note: the volume\'s keys are not rotated yet: a revoked full member still holds the volume key (docs/security.md).\n')
    })
}
