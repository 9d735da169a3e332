import { homedir } from 'node:os'
import { join, resolve } from 'node:path'
import { loadConfig, parseHostPort, type Config } from '../config.js'
import { readPassword } from './password.js'

export interface GlobalArgs {
  dataDir?: string
  config?: string
  passwordFile?: string
  bootstrap?: string[]
}

export function dataDirOf (a: GlobalArgs): string {
  return resolve(a.dataDir ?? process.env.DISKTRO_HOME ?? join(homedir(), '.local', 'share', 'disktro'))
}

// Bootstrap nodes: --bootstrap, else the config file, else $DISKTRO_BOOTSTRAP
// (host:port,... or "none" to run without a network), else hyperdht's public ones.
export async function configOf (a: GlobalArgs): Promise<Config> {
  const c = await loadConfig(a.config)
  if (a.bootstrap && a.bootstrap.length > 0) {
    c.bootstrap = a.bootstrap.map(v => parseHostPort(v, '--bootstrap'))
  } else if (c.bootstrap === null && process.env.DISKTRO_BOOTSTRAP) {
    const env = process.env.DISKTRO_BOOTSTRAP.trim()
    c.bootstrap = env === 'none' ? [] : env.split(',').map(v => parseHostPort(v, 'DISKTRO_BOOTSTRAP'))
  }
  return c
}

export function passwords (a: GlobalArgs): { password: () => Promise<string>, newPassword: () => Promise<string> } {
  let entered: string | undefined
  return {
    // A password chosen while creating the volume is not asked again to unlock it.
    password: async () => entered ?? await readPassword(a, false),
    newPassword: async () => (entered = await readPassword(a, true))
  }
}

export function log (line: string): void {
  process.stderr.write(`disktro: ${line}\n`)
}
