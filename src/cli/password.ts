import { readFile } from 'node:fs/promises'
import { readFileSync, openSync, readSync, writeSync, closeSync } from 'node:fs'
import { createInterface } from 'node:readline'
import { Writable } from 'node:stream'
import { fail } from '../errors.js'

export interface PasswordSource {
  passwordFile?: string
}

// DISKTRO_PASSWORD, taken out of the environment when the CLI starts
// (takeEnvPassword): a daemon runs for days, and every process it starts
// would inherit the variable (issue 28, item 9).
let envPassword: string | undefined

export function takeEnvPassword (): void {
  const v = process.env.DISKTRO_PASSWORD
  // process.env is the C environment: this unsets it for everything the
  // process starts from now on, libfuse's fusermount included.
  delete process.env.DISKTRO_PASSWORD
  if (v) {
    envPassword = v
    scrubInitialEnvironment('DISKTRO_PASSWORD')
  }
}

// unsetenv only drops the variable's pointer: the kernel goes on showing
// the process's initial environment in /proc/<pid>/environ (to its user and
// root) as long as it runs. The value's bytes are overwritten in place,
// through /proc/self/mem, where the kernel lets a process write its own
// memory (else they stay; --password-file avoids the environment).
function scrubInitialEnvironment (name: string): void {
  let fd: number | null = null
  try {
    const stat = readFileSync('/proc/self/stat', 'utf8')
    const fields = stat.slice(stat.lastIndexOf(')') + 2).split(' ')
    const start = Number(fields[47]) // env_start, field 50 of proc(5)
    const end = Number(fields[48]) // env_end
    if (!(start > 0 && end > start && end - start < 1 << 24)) return
    fd = openSync('/proc/self/mem', 'r+')
    const block = Buffer.alloc(end - start)
    readSync(fd, block, 0, block.length, start)
    const key = Buffer.from(name + '=')
    for (let i = block.indexOf(key); i >= 0; i = block.indexOf(key, i + 1)) {
      if (i > 0 && block[i - 1] !== 0) continue
      const from = i + key.length
      const to = block.indexOf(0, from) < 0 ? block.length : block.indexOf(0, from)
      writeSync(fd, Buffer.alloc(to - from), 0, to - from, start + from)
    }
  } catch {
  } finally {
    if (fd !== null) closeSync(fd)
  }
}

// Where a password comes from, in order: --password-file, DISKTRO_PASSWORD,
// then a prompt on the terminal (twice when creating a volume).
export async function readPassword (src: PasswordSource, confirm: boolean): Promise<string> {
  takeEnvPassword()
  if (src.passwordFile) {
    const text = await readFile(src.passwordFile, 'utf8').catch((e: Error) => {
      throw fail('NO_PASSWORD', `cannot read password file ${src.passwordFile}: ${e.message}`)
    })
    const pw = text.replace(/\r?\n$/, '')
    if (!pw) throw fail('NO_PASSWORD', `password file ${src.passwordFile} is empty`)
    return pw
  }
  if (envPassword) return envPassword
  if (!process.stdin.isTTY) throw fail('NO_PASSWORD', 'no password: set DISKTRO_PASSWORD, pass --password-file, or run on a terminal')
  const pw = await prompt('Volume password: ')
  if (!pw) throw fail('NO_PASSWORD', 'empty password')
  if (confirm && await prompt('Repeat password: ') !== pw) throw fail('NO_PASSWORD', 'passwords do not match')
  return pw
}

function prompt (question: string): Promise<string> {
  let muted = false
  const out = new Writable({
    write (chunk, _enc, cb) {
      if (!muted) process.stderr.write(chunk)
      cb()
    }
  })
  const rl = createInterface({ input: process.stdin, output: out, terminal: true })
  return new Promise(resolve => {
    rl.question(question, answer => {
      rl.close()
      process.stderr.write('\n')
      resolve(answer)
    })
    process.stderr.write(question)
    muted = true
  })
}
