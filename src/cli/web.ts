import type { Argv } from 'yargs'
import { askDaemon } from '../api/control-client.js'
import { dataDirOf, type GlobalArgs } from './common.js'

export function webCommand (y: Argv<GlobalArgs>): Argv<GlobalArgs> {
  return y.command('web', 'print the link to the running daemon\'s web dashboard (it carries the access token: keep it to yourself)',
    a => a.option('json', { type: 'boolean', default: false, describe: 'url, origin and token as JSON' }),
    async argv => {
      const dataDir = dataDirOf(argv)
      const web = await askDaemon(dataDir, { cmd: 'web' }) as { url: string, origin: string, token: string } | null
      if (web === null) {
        process.stderr.write(`disktro: no daemon is running for ${dataDir}: start one with \`disktro mount <dir>\` or \`disktro serve\`\n`)
        process.exitCode = 1
        return
      }
      process.stdout.write(argv.json ? JSON.stringify(web) + '\n' : web.url + '\n')
    })
}
