#!/usr/bin/env node
'use strict'
// postinstall: rebuild fuse-native's addon with two fixes and an rpath.
//   (a) utimens passed atime twice (argv 3-4 and 5-6); now atime then mtime.
//   (b) utimens timestamps encode UTIME_OMIT / UTIME_NOW distinctly:
//         UTIME_OMIT -> high 0xFFFFFFFF, low 0   (JS: 0xFFFFFFFF * 2^32)
//         UTIME_NOW  -> high 0xFFFFFFFE, low 0   (JS: 0xFFFFFFFE * 2^32)
//       real times stay milliseconds since the epoch.
//   (c) sets fuse_operations.flag_utime_omit_ok so libfuse delivers UTIME_NOW /
//       UTIME_OMIT at all (otherwise touch -m / touch -a never reach utimens).
//   The addon gets rpath $ORIGIN (a libfuse.so.2 copy is placed beside it) and
//   the absolute lib dir of fuse-shared-library-linux, so no preload is needed.
// Must never fail `npm install`: any failure prints one warning line, exits 0
// and leaves the stock addon in place.

const fs = require('fs')
const path = require('path')
const crypto = require('crypto')
const { spawn } = require('child_process')

const MARKER_VERSION = 2
const started = Date.now()

function warn (msg) {
  const line = String(msg).split('\n').map(s => s.trim()).filter(Boolean).join(' | ')
  console.warn(`disktro: warning: fuse-native patch build skipped (${line.slice(0, 400)}); using stock addon`)
}

function elapsed () {
  return ((Date.now() - started) / 1000).toFixed(1) + 's'
}

function findNodeModules () {
  const local = path.join(__dirname, '..', 'node_modules')
  if (fs.existsSync(path.join(local, 'fuse-native', 'package.json'))) return local
  // fall back to wherever fuse-native resolves from
  const pkg = require.resolve('fuse-native/package.json', { paths: [path.join(__dirname, '..')] })
  return path.dirname(path.dirname(pkg))
}

function resolveDir (spec, from) {
  return path.dirname(require.resolve(spec, { paths: [from] }))
}

function replaceOnce (src, from, to, what) {
  const i = src.indexOf(from)
  if (i === -1) throw new Error(`patch target not found: ${what}`)
  if (src.indexOf(from, i + from.length) !== -1) throw new Error(`patch target ambiguous: ${what}`)
  return src.slice(0, i) + to + src.slice(i + from.length)
}

function patchSource (src) {
  // (b) helper that keeps UTIME_NOW / UTIME_OMIT distinguishable
  const tsFn = [
    'static uint64_t timespec_to_uint64 (const struct timespec* ts) {',
    '  uint64_t ms = (ts->tv_sec * 1000) + (ts->tv_nsec / 1000000);',
    '  return ms;',
    '}'
  ].join('\n')
  const helper = [
    '',
    '',
    '/* disktro patch: utimens encoding (see scripts/build-fuse.cjs) */',
    '#ifndef UTIME_NOW',
    '#define UTIME_NOW ((1l << 30) - 1l)',
    '#endif',
    '#ifndef UTIME_OMIT',
    '#define UTIME_OMIT ((1l << 30) - 2l)',
    '#endif',
    'static uint64_t disktro_utimens_to_uint64 (const struct timespec* ts) {',
    '  if (ts->tv_nsec == UTIME_OMIT) return ((uint64_t) 0xFFFFFFFFu) << 32;',
    '  if (ts->tv_nsec == UTIME_NOW) return ((uint64_t) 0xFFFFFFFEu) << 32;',
    '  return timespec_to_uint64(ts);',
    '}'
  ].join('\n')
  src = replaceOnce(src, tsFn, tsFn + helper, 'timespec_to_uint64 definition')

  src = replaceOnce(src,
    '  l->atime = timespec_to_uint64(&tv[0]);\n  l->mtime = timespec_to_uint64(&tv[1]);',
    '  l->atime = disktro_utimens_to_uint64(&tv[0]);\n  l->mtime = disktro_utimens_to_uint64(&tv[1]);',
    'utimens timespec conversion')

  // (a) mtime in argv 5-6
  src = replaceOnce(src,
    '  FUSE_UINT64_TO_INTS_ARGV(l->atime, 3)\n  FUSE_UINT64_TO_INTS_ARGV(l->atime, 5)',
    '  FUSE_UINT64_TO_INTS_ARGV(l->atime, 3)\n  FUSE_UINT64_TO_INTS_ARGV(l->mtime, 5)',
    'utimens argv 5')

  // (c) without flag_utime_omit_ok, libfuse 2.9 never passes UTIME_NOW/UTIME_OMIT:
  // it silently drops atime-only / mtime-only updates (touch -m, touch -a) and
  // turns "now" into a clock reading. Ask for the real thing.
  src = replaceOnce(src,
    '  if (implemented[op_utimens]) ops.utimens = fuse_native_utimens;',
    '  if (implemented[op_utimens]) { ops.utimens = fuse_native_utimens; ops.flag_utime_omit_ok = 1; }',
    'utimens registration')
  return src
}

function findNodeGyp () {
  const cands = []
  if (process.env.npm_config_node_gyp) cands.push(process.env.npm_config_node_gyp)
  cands.push(path.join(path.dirname(process.execPath), '..', 'lib', 'node_modules', 'npm', 'node_modules', 'node-gyp', 'bin', 'node-gyp.js'))
  try { cands.push(require.resolve('node-gyp/bin/node-gyp.js')) } catch {}
  for (const c of cands) if (c && fs.existsSync(c)) return c
  throw new Error('node-gyp not found')
}

// Offline header location: npm passes npm_config_nodedir when run via npm; when
// run by hand, fall back to the headers that ship with this node install.
function nodedirArgs () {
  if (process.env.npm_config_nodedir) return []
  const home = process.env.HOME || ''
  const cached = path.join(home, '.cache', 'node-gyp', process.versions.node, 'include', 'node', 'node_api.h')
  if (home && fs.existsSync(cached)) return []
  const prefix = path.resolve(path.dirname(process.execPath), '..')
  if (fs.existsSync(path.join(prefix, 'include', 'node', 'node_api.h'))) return ['--nodedir=' + prefix]
  return []
}

function run (cmd, args, cwd) {
  return new Promise((resolve, reject) => {
    const child = spawn(cmd, args, { cwd, env: process.env, stdio: ['ignore', 'pipe', 'pipe'] })
    let out = ''
    child.stdout.on('data', d => { out += d })
    child.stderr.on('data', d => { out += d })
    child.on('error', reject)
    child.on('close', code => {
      if (code === 0) return resolve(out)
      const lines = out.split('\n').map(l => l.trim()).filter(Boolean)
      const tail = lines.filter(l => /\berror\b/i.test(l) && !/^gyp ERR!/.test(l)).slice(0, 2)
        .concat(lines.filter(l => /^gyp ERR! stack Error:/.test(l)).slice(0, 1)).join(' | ')
      reject(new Error(`node-gyp exited ${code}${tail ? ': ' + tail : ''}`))
    })
  })
}

function copyIfDifferent (from, to) {
  try {
    if (fs.readFileSync(from).equals(fs.readFileSync(to))) return
  } catch {}
  const tmp = to + '.tmp-' + process.pid
  fs.copyFileSync(from, tmp)
  fs.renameSync(tmp, to) // atomic; never truncates a mapped .node in place
}

async function main () {
  if (process.platform !== 'linux') return console.log('disktro: fuse-native patch build: not linux, skipped')

  const nm = findNodeModules()
  const fnDir = path.join(nm, 'fuse-native')
  const libfuseDir = path.join(resolveDir('fuse-shared-library-linux/package.json', fnDir), 'libfuse')
  const libfuse = path.join(libfuseDir, 'lib', 'libfuse.so')
  const libfuseInclude = path.join(libfuseDir, 'include')
  const napiMacros = resolveDir('napi-macros/package.json', fnDir)
  for (const p of [libfuse, path.join(libfuseInclude, 'fuse.h'), path.join(napiMacros, 'napi-macros.h')]) {
    if (!fs.existsSync(p)) throw new Error(`missing ${p}`)
  }

  const cSrc = fs.readFileSync(path.join(fnDir, 'fuse-native.c'), 'utf8')
  const patched = patchSource(cSrc)
  const localHeaders = new Set(['semaphore.h'])
  for (const m of cSrc.matchAll(/^\s*#\s*include\s+"([^"]+)"/gm)) localHeaders.add(m[1])

  const libDir = path.dirname(libfuse)
  const gyp = {
    targets: [{
      target_name: 'fuse',
      include_dirs: [napiMacros, libfuseInclude],
      libraries: [libfuse],
      sources: ['fuse-native.c'],
      cflags: ['-g', '-O3', '-Wall'],
      ldflags: ['-Wl,-rpath,\\$$ORIGIN', '-Wl,-rpath,' + libDir]
    }]
  }
  const gypText = JSON.stringify(gyp, null, 2) + '\n'

  const releaseDir = path.join(fnDir, 'build', 'Release')
  const target = path.join(releaseDir, 'fuse.node')
  const markerPath = path.join(releaseDir, 'disktro-patched.json')

  const hash = crypto.createHash('sha256')
  hash.update(patched).update(gypText).update(process.version).update(process.arch)
  for (const h of localHeaders) {
    const p = path.join(fnDir, h)
    if (fs.existsSync(p)) hash.update(h).update(fs.readFileSync(p))
  }
  const sourceHash = hash.digest('hex')

  // idempotent fast path: already built from identical inputs
  try {
    const m = JSON.parse(fs.readFileSync(markerPath, 'utf8'))
    const nodeHash = crypto.createHash('sha256').update(fs.readFileSync(target)).digest('hex')
    if (m.utimens === MARKER_VERSION && m.sourceHash === sourceHash && m.addonHash === nodeHash &&
        fs.existsSync(path.join(releaseDir, 'libfuse.so.2'))) {
      console.log(`disktro: fuse-native already patched (utimens v${MARKER_VERSION}), ${elapsed()}`)
      return
    }
  } catch {}

  const buildDir = path.join(nm, '.disktro-fuse-build')
  fs.mkdirSync(buildDir, { recursive: true })
  const writeIfChanged = (file, text) => {
    try { if (fs.readFileSync(file, 'utf8') === text) return } catch {}
    fs.writeFileSync(file, text)
  }
  writeIfChanged(path.join(buildDir, 'fuse-native.c'), patched)
  for (const h of localHeaders) {
    const p = path.join(fnDir, h)
    if (fs.existsSync(p)) writeIfChanged(path.join(buildDir, h), fs.readFileSync(p, 'utf8'))
  }
  writeIfChanged(path.join(buildDir, 'binding.gyp'), gypText)
  writeIfChanged(path.join(buildDir, 'package.json'), JSON.stringify({ name: 'disktro-fuse-build', private: true, gypfile: true }) + '\n')

  const nodeGyp = findNodeGyp()
  await run(process.execPath, [nodeGyp, 'rebuild', ...nodedirArgs()], buildDir)

  const built = path.join(buildDir, 'build', 'Release', 'fuse.node')
  if (!fs.existsSync(built)) throw new Error('node-gyp produced no fuse.node')

  // libfuse.so's SONAME is libfuse.so.2, which is the name the loader looks for on
  // the rpath: provide it next to the addon ($ORIGIN) and, best effort, in
  // fuse-shared-library-linux's lib dir (for the absolute rpath entry).
  copyIfDifferent(libfuse, path.join(buildDir, 'build', 'Release', 'libfuse.so.2'))
  try {
    const link = path.join(libDir, 'libfuse.so.2')
    if (!fs.existsSync(link)) fs.symlinkSync('libfuse.so', link)
  } catch {}

  // sanity: the new addon must load without preloading and export utimens
  await run(process.execPath, ['-e', `const b=require(${JSON.stringify(built)});if(typeof b.op_utimens!=='number')process.exit(3)`], buildDir)
    .catch(() => { throw new Error('built addon failed to load') })

  fs.mkdirSync(releaseDir, { recursive: true })
  copyIfDifferent(libfuse, path.join(releaseDir, 'libfuse.so.2'))
  copyIfDifferent(built, target)
  const addonHash = crypto.createHash('sha256').update(fs.readFileSync(target)).digest('hex')
  fs.writeFileSync(markerPath, JSON.stringify({ utimens: MARKER_VERSION, sourceHash, addonHash, node: process.version }, null, 2) + '\n')
  console.log(`disktro: fuse-native rebuilt with utimens fixes in ${elapsed()}`)
}

process.on('uncaughtException', err => {
  warn(err && err.message ? err.message : err)
  process.exit(0)
})

main().catch(err => {
  warn(err && err.message ? err.message : err)
}).finally(() => {
  process.exitCode = 0
})
