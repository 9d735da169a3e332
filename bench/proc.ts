// Child-process helpers. Every workload runs in a child process: the bench
// process itself never makes a (sync or async) filesystem call into a mount.
import { spawn, type ChildProcess } from 'node:child_process'

export interface RunResult { code: number | null, signal: NodeJS.Signals | null, stdout: string, stderr: string }

const running = new Set<ChildProcess>()

/** Kills the workload commands in flight (on SIGINT/SIGTERM). */
export function killRunning (): void {
  for (const c of running) c.kill('SIGKILL')
}

export function run (cmd: string, args: string[], opts: { env?: NodeJS.ProcessEnv, timeoutMs?: number } = {}): Promise<RunResult> {
  return new Promise((resolve, reject) => {
    const child = spawn(cmd, args, { env: opts.env ?? process.env, stdio: ['ignore', 'pipe', 'pipe'] })
    running.add(child)
    child.on('exit', () => running.delete(child))
    const out: Buffer[] = []; const err: Buffer[] = []
    child.stdout.on('data', (d: Buffer) => out.push(d))
    child.stderr.on('data', (d: Buffer) => err.push(d))
    const timer = opts.timeoutMs ? setTimeout(() => child.kill('SIGKILL'), opts.timeoutMs) : null
    child.on('error', reject)
    child.on('close', (code, signal) => {
      if (timer) clearTimeout(timer)
      resolve({ code, signal, stdout: Buffer.concat(out).toString(), stderr: Buffer.concat(err).toString() })
    })
  })
}

/** `sh -c script`; rejects when it exits non-zero. */
export async function sh (script: string, timeoutMs = 30 * 60_000): Promise<RunResult> {
  const r = await run('sh', ['-c', script], { timeoutMs })
  if (r.code !== 0) throw new Error(`command failed (${r.code ?? r.signal}): ${script}\n${(r.stderr + r.stdout).trim().slice(-2000)}`)
  return r
}

/** Runs `sh -c script` and returns its wall time in seconds. */
export async function timed (script: string, timeoutMs?: number): Promise<{ seconds: number, result: RunResult }> {
  const t0 = process.hrtime.bigint()
  const result = await sh(script, timeoutMs)
  const seconds = Number(process.hrtime.bigint() - t0) / 1e9
  return { seconds, result }
}

export async function which (cmd: string): Promise<string | null> {
  const r = await run('sh', ['-c', `command -v ${q(cmd)}`])
  return r.code === 0 ? r.stdout.trim() || null : null
}

/** Shell-quotes one argument. */
export function q (s: string): string {
  return `'${s.replace(/'/g, `'\\''`)}'`
}

export function sleep (ms: number): Promise<void> {
  return new Promise(resolve => setTimeout(resolve, ms))
}
