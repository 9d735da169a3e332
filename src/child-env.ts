// The environment of a process the daemon starts (fusermount, umount):
// named variables only, never the daemon's whole environment, which may
// hold a secret the daemon was started with (issue 28, item 9).
const PASSED = ['PATH', 'LANG', 'LC_ALL', 'LC_MESSAGES', 'TZ']

export function childEnv (): NodeJS.ProcessEnv {
  const env: NodeJS.ProcessEnv = {}
  for (const k of PASSED) if (process.env[k] !== undefined) env[k] = process.env[k]
  env.PATH ??= '/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin'
  return env
}
