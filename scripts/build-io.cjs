#!/usr/bin/env node
'use strict'
// postinstall: builds disktro's small addons, each set into its own
// build/Release:
//   native/: io.node from io.c, page-cache drop-behind (src/store/drop-behind.ts),
//     and aead.node from aead.c, XChaCha20-Poly1305 by Node's OpenSSL
//     (src/crypto/native-aead.ts)
//   native/lz4/: lz4.node from lz4-block.c and the LZ4 sources lmdb-js
//     ships: LZ4 blocks (src/codec/lz4.ts)
// Must never fail `npm install`: without them disktro runs the same, only
// without drop-behind, with sodium for all encryption or with lz4-napi for
// all compression (slower); a failure prints one warning line and exits 0.
// The two sets build separately, so one's failure does not cost the other.

const fs = require('fs')
const path = require('path')
const { findNodeGyp, nodedirArgs, run } = require('./gyp.cjs')

const native = path.join(__dirname, '..', 'native')
// each set: its directory, its sources, each addon and a function it must export, and what runs without it
const SETS = [
  { dir: native, sources: ['io.c', 'aead.c', 'binding.gyp'], addons: { 'io.node': 'keepHeap', 'aead.node': 'verify' }, without: 'without page-cache drop-behind, and with sodium for all encryption' },
  { dir: path.join(native, 'lz4'), sources: ['lz4-block.c', 'binding.gyp'], addons: { 'lz4.node': 'decompress' }, without: 'with lz4-napi for all compression' }
]

async function build (set) {
  const started = Date.now()
  const release = path.join(set.dir, 'build', 'Release')
  const newest = Math.max(...set.sources.map(f => fs.statSync(path.join(set.dir, f)).mtimeMs))
  const check = Object.entries(set.addons).map(([file, fn]) => `if(typeof require(${JSON.stringify(path.join(release, file))}).${fn}!=='function')process.exit(3)`).join(';')
  const loads = () => run(process.execPath, ['-e', check], set.dir)
  const names = Object.keys(set.addons).join(', ')
  try {
    if (Object.keys(set.addons).every(file => fs.statSync(path.join(release, file)).mtimeMs >= newest)) {
      await loads()
      return console.log(`disktro: native addons ${names} already built`)
    }
  } catch {}
  await run(process.execPath, [findNodeGyp(), 'rebuild', ...nodedirArgs()], set.dir)
  await loads().catch(() => { throw new Error('built addons failed to load') })
  console.log(`disktro: native addons ${names} built in ${((Date.now() - started) / 1000).toFixed(1)}s`)
}

async function main () {
  if (process.platform !== 'linux') return console.log('disktro: native addons: not linux, skipped')
  for (const set of SETS) {
    await build(set).catch(err => {
      const line = String(err && err.message ? err.message : err).split('\n').map(s => s.trim()).filter(Boolean).join(' | ')
      console.warn(`disktro: warning: native addons ${Object.keys(set.addons).join(', ')} not built (${line.slice(0, 400)}); running ${set.without}`)
    })
  }
}

main().catch(err => {
  console.warn(`disktro: warning: native addons not built (${String(err && err.message ? err.message : err).slice(0, 400)})`)
}).finally(() => {
  process.exitCode = 0
})
