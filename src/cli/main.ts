import yargs, { type Argv } from 'yargs'
import { hideBin } from 'yargs/helpers'
import { DisktroError } from '../errors.js'
import type { GlobalArgs } from './common.js'
import { initCommand } from './init.js'
import { mountCommand } from './mount.js'
import { unmountCommand } from './unmount.js'
import { statusCommand } from './status.js'
import { bootstrapCommand } from './bootstrap.js'
import { inviteCommand, joinCommand } from './invite.js'
import { serveCommand } from './serve.js'
import { revokeCommand } from './revoke.js'
import { webCommand } from './web.js'
import { fsckCommand } from './fsck.js'
import { takeEnvPassword } from './password.js'

export async function main (argv: string[]): Promise<void> {
  takeEnvPassword()
  let y = yargs(hideBin(argv))
    .scriptName('disktro')
    .usage('$0 <command> [options]')
    .option('data-dir', { type: 'string', describe: 'volume data directory (default $DISKTRO_HOME or ~/.local/share/disktro)' })
    .option('config', { type: 'string', describe: 'config file, JSON or YAML (chunkSize, replicaCount, heartbeatInterval, port, webHost)' })
    .option('password-file', { type: 'string', describe: 'read the password from this file (else $DISKTRO_PASSWORD or a prompt)' })
    .option('bootstrap', { type: 'string', array: true, describe: 'DHT bootstrap node host:port (repeatable; overrides the config file)' }) as unknown as Argv<GlobalArgs>
  for (const add of [initCommand, mountCommand, serveCommand, unmountCommand, statusCommand, webCommand, inviteCommand, joinCommand, revokeCommand, fsckCommand, bootstrapCommand]) y = add(y)
  await y
    .demandCommand(1, 'name a command: init, mount, serve, unmount, status, web, invite, join, revoke, fsck or bootstrap')
    .strict()
    .help()
    .alias('h', 'help')
    .fail((msg, err) => {
      if (err) throw err
      process.stderr.write(`disktro: ${msg}\n(run \`disktro --help\` for usage)\n`)
      process.exit(2)
    })
    .parseAsync()
}

main(process.argv).catch((e: unknown) => {
  if (e instanceof DisktroError) {
    process.stderr.write(`disktro: ${e.message}\n`)
  } else {
    process.stderr.write(`disktro: unexpected error: ${e instanceof Error ? e.stack ?? e.message : String(e)}\n`)
  }
  process.exit(1)
})
