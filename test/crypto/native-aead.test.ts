// The OpenSSL addon (native/aead.c) against sodium's XChaCha20-Poly1305: each
// opens what the other sealed, for every size class, so records written with
// either stay readable with either.
import t from 'tap'
import { randomBytes } from 'node:crypto'
import sodium from 'sodium-native'
import { nativeAead, AEAD_ADDON_PATH } from '../../src/crypto/native-aead.js'
import { seal, open, authentic } from '../../src/crypto/aead.js'

const native = nativeAead()
// Under CI the addon must have been built by npm install (scripts/build-io.cjs).
if (process.env.CI === 'true') t.ok(native, `the native aead addon loads from ${AEAD_ADDON_PATH}`)

function sodiumSeal (key: Buffer, plain: Buffer, ad: Buffer | null): Buffer {
  const sealed = Buffer.alloc(24 + plain.length + 16)
  sodium.randombytes_buf(sealed.subarray(0, 24))
  sodium.crypto_aead_xchacha20poly1305_ietf_encrypt(sealed.subarray(24), plain, ad, null, sealed.subarray(0, 24), key)
  return sealed
}

function sodiumOpen (key: Buffer, sealed: Buffer, ad: Buffer | null): Buffer {
  const plain = Buffer.alloc(sealed.length - 40)
  sodium.crypto_aead_xchacha20poly1305_ietf_decrypt(plain, null, sealed.subarray(24), ad, sealed.subarray(0, 24), key)
  return plain
}

const SIZES = [0, 1, 63, 64, 1000, 65536, 1024 * 1024 + 7]

t.test('native and sodium open each other\'s records, with and without associated data', { skip: !native && 'native aead addon not built' }, async t => {
  const n = native!
  for (const size of SIZES) {
    for (const ad of [null, randomBytes(41)]) {
      const key = randomBytes(32)
      const plain = randomBytes(size)
      const mine = Buffer.alloc(size + 40)
      randomBytes(24).copy(mine)
      n.seal(mine, plain, ad, key)
      t.ok(sodiumOpen(key, mine, ad).equals(plain), `sodium opens native, ${size} bytes, ad ${ad ? 'yes' : 'no'}`)
      const theirs = sodiumSeal(key, plain, ad)
      const out = Buffer.alloc(size)
      t.ok(n.open(out, theirs, ad, key) && out.equals(plain), `native opens sodium, ${size} bytes`)
      t.ok(n.verify(theirs, ad, key), 'and verifies it')
    }
  }
})

t.test('native rejects a forgery and zeroes what it decrypted', { skip: !native && 'native aead addon not built' }, async t => {
  const n = native!
  const key = randomBytes(32)
  const plain = randomBytes(200_000)
  const ad = randomBytes(40)
  const sealed = sodiumSeal(key, plain, ad)
  for (const at of [0, 30, 100_000, sealed.length - 1]) { // nonce, ciphertext, tag
    const forged = Buffer.from(sealed)
    forged[at] ^= 1
    const out = Buffer.alloc(plain.length, 0xee)
    t.equal(n.open(out, forged, ad, key), false, `byte ${at} flipped: refused`)
    t.ok(out.every(b => b === 0), 'and the output holds zeros only')
    t.equal(n.verify(forged, ad, key), false, 'verify refuses it too')
  }
  t.equal(n.open(Buffer.alloc(plain.length), sealed, randomBytes(40), key), false, 'other associated data')
  t.equal(n.open(Buffer.alloc(plain.length), sealed, ad, randomBytes(32)), false, 'other key')
  t.equal(n.verify(Buffer.alloc(39), null, key), false, 'too short to hold a nonce and a tag')
})

t.test('native checks its arguments, and works on SharedArrayBuffer views', { skip: !native && 'native aead addon not built' }, async t => {
  const n = native!
  const key = randomBytes(32)
  t.throws(() => n.seal(Buffer.alloc(50), Buffer.alloc(11), null, key), /40 bytes/, 'wrong sealed length')
  t.throws(() => n.open(Buffer.alloc(11), Buffer.alloc(50), null, key), /40 bytes/, 'wrong plain length')
  t.throws(() => n.seal(Buffer.alloc(50), Buffer.alloc(10), null, randomBytes(16)), /32 bytes/, 'short key')
  t.throws(() => n.seal(Buffer.alloc(50), 'text' as unknown as Buffer, null, key), /Uint8Array/, 'not bytes')
  const shared = Buffer.from(new SharedArrayBuffer(4096), 100, 3000)
  randomBytes(3000).copy(shared)
  const sealed = Buffer.alloc(3040)
  randomBytes(24).copy(sealed)
  n.seal(sealed, shared, null, key)
  t.ok(sodiumOpen(key, sealed, null).equals(shared), 'a view into shared memory at an offset')
})

// aead.ts picks the addon when it loads: its records stay sodium-compatible.
t.test('aead.ts seals what sodium opens and opens what sodium sealed', async t => {
  const key = randomBytes(32)
  const ad = randomBytes(33)
  for (const size of SIZES) {
    const plain = randomBytes(size)
    t.ok(sodiumOpen(key, seal(key, plain, ad), ad).equals(plain), `seal, ${size} bytes`)
    const theirs = sodiumSeal(key, plain, ad)
    t.ok(open(key, theirs, ad).equals(plain), `open, ${size} bytes`)
    t.ok(authentic(key, theirs, ad), 'authentic')
    theirs[theirs.length - 1] ^= 1
    t.equal(authentic(key, theirs, ad), false, 'a flipped tag is not authentic')
    t.throws(() => open(key, theirs, ad), { code: 'CORRUPT_RECORD' })
  }
})
