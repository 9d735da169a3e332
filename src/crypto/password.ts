import sodium from './sodium.js'

export interface PwhashParams {
  alg: 'argon2id13'
  opslimit: number
  memlimit: number
  salt: Buffer
}

// Argon2id at libsodium's "interactive" cost doubled in time: about 0.2 s
// here, paid once per mount. Params are stored so they can be raised later.
export function newPwhashParams (): PwhashParams {
  const salt = Buffer.allocUnsafe(sodium.crypto_pwhash_SALTBYTES)
  sodium.randombytes_buf(salt)
  return {
    alg: 'argon2id13',
    opslimit: sodium.crypto_pwhash_OPSLIMIT_INTERACTIVE + 1,
    memlimit: sodium.crypto_pwhash_MEMLIMIT_INTERACTIVE,
    salt
  }
}

export function stretchPassword (password: string, p: PwhashParams): Promise<Buffer> {
  const out = sodium.sodium_malloc(32) as unknown as Buffer
  return new Promise((resolve, reject) => {
    sodium.crypto_pwhash_async(out, Buffer.from(password, 'utf8'), p.salt, p.opslimit, p.memlimit,
      sodium.crypto_pwhash_ALG_ARGON2ID13, (err: Error | null) => err ? reject(err) : resolve(out))
  })
}
