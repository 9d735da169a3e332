import t from 'tap'
import { seal, open, sealedLength } from '../../src/crypto/aead.js'
import { keyedHash } from '../../src/crypto/keyed-hash.js'
import { deriveVolumeKeys, randomKey } from '../../src/crypto/volume-keys.js'
import { newPwhashParams, stretchPassword } from '../../src/crypto/password.js'

t.test('aead round-trips and binds associated data', async t => {
  const key = randomKey()
  const msg = Buffer.from('the quick brown fox')
  const ad = Buffer.from('ad')
  const sealed = seal(key, msg, ad)
  t.equal(sealed.length, sealedLength(msg.length))
  t.same(open(key, sealed, ad), msg)
  t.not(sealed.subarray(24).indexOf(msg), 0, 'ciphertext is not the plaintext')
  t.throws(() => open(key, sealed, Buffer.from('other')), { code: 'CORRUPT_RECORD' })
  t.throws(() => open(randomKey(), sealed, ad), { code: 'CORRUPT_RECORD' })
  const flipped = Buffer.from(sealed)
  flipped[30] ^= 1
  t.throws(() => open(key, flipped, ad), { code: 'CORRUPT_RECORD' })
  t.throws(() => open(key, Buffer.alloc(5), ad), { code: 'CORRUPT_RECORD' })
  t.not(seal(key, msg, ad).toString('hex'), sealed.toString('hex'), 'random nonces: same input seals differently')
})

t.test('subkeys are distinct and deterministic', async t => {
  const master = randomKey()
  const a = deriveVolumeKeys(master)
  const b = deriveVolumeKeys(Buffer.from(master))
  const names = ['data', 'chunkId', 'meta', 'name', 'swarm'] as const
  const hexes = new Set(names.map(n => a[n].toString('hex')))
  t.equal(hexes.size, names.length, 'all subkeys differ')
  for (const n of names) t.equal(a[n].toString('hex'), b[n].toString('hex'), `${n} is derived deterministically`)
  t.not(a.data.toString('hex'), master.toString('hex'))
})

t.test('keyed hash depends on the key', async t => {
  const data = Buffer.from('block')
  const k1 = randomKey(); const k2 = randomKey()
  t.equal(keyedHash(k1, data).length, 32)
  t.same(keyedHash(k1, data), keyedHash(k1, data))
  t.not(keyedHash(k1, data).toString('hex'), keyedHash(k2, data).toString('hex'))
})

t.test('argon2id stretching is deterministic per salt and differs per password', async t => {
  const p = newPwhashParams()
  const a = await stretchPassword('pw one', p)
  const b = await stretchPassword('pw one', p)
  const c = await stretchPassword('pw two', p)
  t.same(a, b)
  t.not(a.toString('hex'), c.toString('hex'))
  const other = await stretchPassword('pw one', newPwhashParams())
  t.not(a.toString('hex'), other.toString('hex'), 'a new salt gives a new key')
})
