import sodium from './sodium.js'

// The key hierarchy (docs/format.md). Every subkey is derived from the master
// key with crypto_kdf under its own id, so a role can be handed exactly the
// keys it needs: a storage-only peer gets `swarm` and nothing that reads data.
const CONTEXT = Buffer.from('disktro1') // crypto_kdf contexts are 8 bytes

export const SUBKEY = {
  data: 1, // AEAD of chunk contents
  chunkId: 2, // keyed hash naming chunks
  meta: 3, // AEAD of inodes, directory entries, block maps, change records
  name: 4, // keyed hash of directory entry names
  swarm: 5, // discovery topic and peer capability (peers issue)
  role: 6 // seed of the full-member role key pair: a full member signs its HELLO with it (net/capability.ts)
} as const

export type SubkeyName = keyof typeof SUBKEY

export interface VolumeKeys {
  data: Buffer
  chunkId: Buffer
  meta: Buffer
  name: Buffer
  swarm: Buffer
}

export function deriveSubkey (master: Buffer, name: SubkeyName): Buffer {
  const out = sodium.sodium_malloc(32) as unknown as Buffer
  sodium.crypto_kdf_derive_from_key(out, SUBKEY[name], CONTEXT, master)
  return out
}

export function deriveVolumeKeys (master: Buffer): VolumeKeys {
  return {
    data: deriveSubkey(master, 'data'),
    chunkId: deriveSubkey(master, 'chunkId'),
    meta: deriveSubkey(master, 'meta'),
    name: deriveSubkey(master, 'name'),
    swarm: deriveSubkey(master, 'swarm')
  }
}

// The key pair only full members hold (derived from the master key); its
// public half is all a storage-only member gets, to check a peer's claim to
// be a full member.
export interface RoleKey { publicKey: Buffer, secretKey: Buffer | null }

export function roleKeyOf (master: Buffer): RoleKey {
  const seed = deriveSubkey(master, 'role')
  const publicKey = Buffer.alloc(sodium.crypto_sign_PUBLICKEYBYTES)
  const secretKey = sodium.sodium_malloc(sodium.crypto_sign_SECRETKEYBYTES) as unknown as Buffer
  sodium.crypto_sign_seed_keypair(publicKey, secretKey, seed)
  return { publicKey, secretKey }
}

export function randomKey (): Buffer {
  const k = sodium.sodium_malloc(32) as unknown as Buffer
  sodium.randombytes_buf(k)
  return k
}

export function randomBytes (n: number): Buffer {
  const b = Buffer.allocUnsafe(n)
  sodium.randombytes_buf(b)
  return b
}
