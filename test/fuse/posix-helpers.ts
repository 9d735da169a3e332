// Shared bits of the POSIX suites (test/fuse/posix-*.test.ts). Everything
// that touches a mount goes through child processes or async fs calls.
import { spawn } from 'node:child_process'
import { access } from 'node:fs/promises'

// Like the harness's run()/sh(), but stdin is /dev/null: the harness writes
// to the child's stdin, which races with a child that exits at once (EPIPE
// as an unhandled 'error' event kills the test process).
export function run (cmd: string, args: string[], opts: { timeoutMs?: number } = {}): Promise<{ code: number | null, signal: NodeJS.Signals | null, stdout: string, stderr: string }> {
  return new Promise((resolve, reject) => {
    const child = spawn(cmd, args, { stdio: ['ignore', 'pipe', 'pipe'] })
    const out: Buffer[] = []; const err: Buffer[] = []
    child.stdout.on('data', (d: Buffer) => out.push(d))
    child.stderr.on('data', (d: Buffer) => err.push(d))
    const timer = setTimeout(() => child.kill('SIGKILL'), opts.timeoutMs ?? 120_000)
    child.on('error', reject)
    child.on('close', (code, signal) => {
      clearTimeout(timer)
      resolve({ code, signal, stdout: Buffer.concat(out).toString(), stderr: Buffer.concat(err).toString() })
    })
  })
}

// `sh -c script`; rejects with the output when it exits non-zero.
export async function sh (script: string, opts: { timeoutMs?: number } = {}): Promise<string> {
  const r = await run('sh', ['-c', script], opts)
  if (r.code !== 0) throw new Error(`sh failed (${r.code ?? r.signal}): ${script}\n${r.stderr}${r.stdout}`)
  return r.stdout
}

export function sleep (ms: number): Promise<void> {
  return new Promise(resolve => setTimeout(resolve, ms))
}

export const IS_ROOT = process.getuid?.() === 0

// Single-quotes a string for sh.
export function q (s: string): string {
  return `'${s.replace(/'/g, `'\\''`)}'`
}

export async function hasTool (name: string): Promise<boolean> {
  const r = await run('sh', ['-c', `command -v ${q(name)}`])
  return r.code === 0
}

// A real tree to copy around: /usr/share/perl5 when present, else a package of ours.
export async function sourceTree (root: string): Promise<string> {
  for (const p of ['/usr/share/perl5', `${root}/node_modules/yargs`]) {
    try { await access(p); return p } catch {}
  }
  throw new Error('no source tree to copy')
}

// `stat -c fmt` of each path (no dereference), one line per path.
export async function stat (fmt: string, ...paths: string[]): Promise<string[]> {
  const out = await sh(`stat -c ${q(fmt)} ${paths.map(q).join(' ')}`)
  return out.trimEnd().split('\n')
}

// Nanosecond timestamps as bigint so ms-scale changes compare exactly.
export async function times (path: string): Promise<{ atime: bigint, mtime: bigint, ctime: bigint }> {
  const [l] = await stat('%.9X %.9Y %.9Z', path)
  const [a, m, c] = l.split(' ').map(s => BigInt(s.replace('.', '')))
  return { atime: a, mtime: m, ctime: c }
}

// One syscall via perl; answers 'OK' or the errno name (ENOTEMPTY, ...).
const PERL_SYSCALL = `
use Errno;
my ($op, @a) = @ARGV;
my $ok = $op eq 'rename' ? rename($a[0], $a[1])
  : $op eq 'link' ? link($a[0], $a[1])
  : $op eq 'rmdir' ? rmdir($a[0])
  : $op eq 'unlink' ? unlink($a[0])
  : $op eq 'mkdir' ? mkdir($a[0])
  : die "unknown op $op";
if ($ok) { print "OK" } else { my @n = grep { $!{$_} } keys %!; print $n[0] // "errno " . ($! + 0) }
`
export async function syscall (op: 'rename' | 'link' | 'rmdir' | 'unlink' | 'mkdir', ...args: string[]): Promise<string> {
  const r = await run('perl', ['-e', PERL_SYSCALL, op, ...args], { timeoutMs: 30_000 })
  if (r.code !== 0) throw new Error(`perl ${op} failed: ${r.stderr}`)
  return r.stdout.trim()
}

// Lines where the daemon logged a failed FUSE op for an unexpected reason (a
// bug turned into EIO) or an uncaught error.
const OPS = 'getattr|fgetattr|access|statfs|readdir|opendir|mkdir|rmdir|create|mknod|open|read|write|flush|fsync|fsyncdir|release|truncate|ftruncate|unlink|rename|link|symlink|readlink|chmod|chown|utimens'
export function daemonErrors (stderr: string): string[] {
  const re = new RegExp(`^disktro: (${OPS}) /|uncaught|unhandled|TypeError|RangeError|ReferenceError`, 'i')
  return stderr.split('\n').filter(l => re.test(l))
}
