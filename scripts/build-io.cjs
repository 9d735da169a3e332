#!/usr/bin/env node
'use strict'
// postinstall: builds native/io.c (disktro's small addon: page-cache
// drop-behind, src/store/drop-behind.ts) into native/build/Release/io.node.
// Must never fail `npm install`: without the addon disktro runs the same,
// only without drop-behind; a failure prints one warning line and exits 0.

const fs = require('fs')
const path = require('path')
const { findNodeGyp, nodedirArgs, run } = require('./gyp.cjs')

const dir = path.join(__dirname, '..', 'native')
const built = path.join(dir, 'build', 'Release', 'io.node')
const started = Date.now()

async function main () {
  if (process.platform !== 'linux') return console.log('disktro: native io addon: not linux, skipped')
  const newest = Math.max(...['io.c', 'binding.gyp'].map(f => fs.statSync(path.join(dir, f)).mtimeMs))
  const loads = () => run(process.execPath, ['-e', `if(typeof require(${JSON.stringify(built)}).dropCache!=='function')process.exit(3)`], dir)
  try {
    if (fs.statSync(built).mtimeMs >= newest) {
      await loads()
      return console.log('disktro: native io addon already built')
    }
  } catch {}
  await run(process.execPath, [findNodeGyp(), 'rebuild', ...nodedirArgs()], dir)
  await loads().catch(() => { throw new Error('built addon failed to load') })
  console.log(`disktro: native io addon built in ${((Date.now() - started) / 1000).toFixed(1)}s`)
}

main().catch(err => {
  const line = String(err && err.message ? err.message : err).split('\n').map(s => s.trim()).filter(Boolean).join(' | ')
  console.warn(`disktro: warning: native io addon not built (${line.slice(0, 400)}); running without page-cache drop-behind`)
}).finally(() => {
  process.exitCode = 0
})
