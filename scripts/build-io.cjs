#!/usr/bin/env node
'use strict'
// postinstall: builds disktro's two small addons into native/build/Release:
//   io.node from native/io.c: page-cache drop-behind (src/store/drop-behind.ts)
//   aead.node from native/aead.c: XChaCha20-Poly1305 by Node's OpenSSL
//     (src/crypto/native-aead.ts)
// Must never fail `npm install`: without them disktro runs the same, only
// without drop-behind and with sodium for all encryption (slower); a failure
// prints one warning line and exits 0.

const fs = require('fs')
const path = require('path')
const { findNodeGyp, nodedirArgs, run } = require('./gyp.cjs')

const dir = path.join(__dirname, '..', 'native')
const release = path.join(dir, 'build', 'Release')
// each addon and a function it must export
const ADDONS = { 'io.node': 'dropCache', 'aead.node': 'verify' }
const started = Date.now()

async function main () {
  if (process.platform !== 'linux') return console.log('disktro: native addons: not linux, skipped')
  const newest = Math.max(...['io.c', 'aead.c', 'binding.gyp'].map(f => fs.statSync(path.join(dir, f)).mtimeMs))
  const check = Object.entries(ADDONS).map(([file, fn]) => `if(typeof require(${JSON.stringify(path.join(release, file))}).${fn}!=='function')process.exit(3)`).join(';')
  const loads = () => run(process.execPath, ['-e', check], dir)
  try {
    if (Object.keys(ADDONS).every(file => fs.statSync(path.join(release, file)).mtimeMs >= newest)) {
      await loads()
      return console.log('disktro: native addons already built')
    }
  } catch {}
  await run(process.execPath, [findNodeGyp(), 'rebuild', ...nodedirArgs()], dir)
  await loads().catch(() => { throw new Error('built addons failed to load') })
  console.log(`disktro: native addons built in ${((Date.now() - started) / 1000).toFixed(1)}s`)
}

main().catch(err => {
  const line = String(err && err.message ? err.message : err).split('\n').map(s => s.trim()).filter(Boolean).join(' | ')
  console.warn(`disktro: warning: native addons not built (${line.slice(0, 400)}); running without page-cache drop-behind, and with sodium for all encryption`)
}).finally(() => {
  process.exitCode = 0
})
