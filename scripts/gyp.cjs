'use strict'
// Helpers shared by the postinstall builds (build-fuse.cjs, build-io.cjs):
// node-gyp found and run offline, results copied into place atomically.

const fs = require('fs')
const path = require('path')
const { spawn } = require('child_process')

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

module.exports = { findNodeGyp, nodedirArgs, run, copyIfDifferent }
