import { readFile, writeFile, rename } from 'node:fs/promises'
import { privateDataDir } from './private-dir.js'
import { join } from 'node:path'
import { seal, open } from '../crypto/aead.js'
import { newPwhashParams, stretchPassword, type PwhashParams } from '../crypto/password.js'
import { randomKey, randomBytes } from '../crypto/volume-keys.js'
import sodium from '../crypto/sodium.js'
import { fail, isDisktroError } from '../errors.js'
import { newVolumeChunkIdHash, isChunkIdHash, type ChunkIdHash } from '../crypto/chunk-id.js'

export const VOLUME_FILE = 'volume.json'
export const VOLUME_FORMAT = 1

export type Role = 'full' | 'storage'

// What a data dir knows about its volume in the clear: ids, role, the chunk
// size, and under the password: the volume key (the master key for a full
// member, only the swarm key for a storage-only one) and this node's secret
// seed, whose public key is the node id (docs/format.md).
export interface VolumeFile {
  format: number
  volumeId: string
  nodeId: string
  role: Role
  chunkSize: number
  chunkIdHash?: ChunkIdHash // absent: 'hmac-sha256' (volumes made before BLAKE3)
  kdf: { alg: 'argon2id13', opslimit: number, memlimit: number, salt: string }
  wrappedKey: string
  wrappedSeed: string
  fullRoleKey?: string // storage-only members: the public key that proves a peer a full member (hex; absent from old join codes)
  memberCert?: string // this node's member certificate from its join code (hex; codec/member-record.ts; absent before join code version 4)
}

export interface VolumeSecrets {
  key: Buffer // master key (full) or swarm key (storage)
  seed: Buffer // node keypair seed
}

export interface NewVolume {
  volumeId?: string // joining an existing volume
  role?: Role
  key?: Buffer // from an invite; a new random master key otherwise
  chunkIdHash?: ChunkIdHash // from an invite; this machine's choice otherwise
  fullRoleKey?: Buffer // from a storage-only invite
  seed?: Buffer // the node identity a version 4 join code carries (its certificate names it)
  memberCert?: Buffer // that identity's member certificate
}

// The function naming the volume's chunks (crypto/chunk-id.ts).
export function chunkIdHashOf (f: VolumeFile): ChunkIdHash {
  return f.chunkIdHash ?? 'hmac-sha256'
}

export function nodeIdOfSeed (seed: Buffer): string {
  const pk = Buffer.alloc(sodium.crypto_sign_PUBLICKEYBYTES)
  const sk = sodium.sodium_malloc(sodium.crypto_sign_SECRETKEYBYTES) as unknown as Buffer
  sodium.crypto_sign_seed_keypair(pk, sk, seed)
  return pk.toString('hex')
}

const AD = Buffer.from('disktro volume key v1')
const SEED_AD = Buffer.from('disktro node seed v1')

export async function createVolumeFile (dataDir: string, password: string, chunkSize: number, joining: NewVolume = {}): Promise<VolumeFile> {
  await privateDataDir(dataDir, { create: true })
  const path = join(dataDir, VOLUME_FILE)
  if (await readVolumeFile(dataDir).then(() => true, e => !isDisktroError(e, 'NO_VOLUME'))) {
    throw fail('VOLUME_EXISTS', `a volume already exists in ${dataDir}`)
  }
  const key = joining.key ?? randomKey()
  const seed = joining.seed ?? randomKey()
  const params = newPwhashParams()
  const kek = await stretchPassword(password, params)
  const file: VolumeFile = {
    format: VOLUME_FORMAT,
    volumeId: joining.volumeId ?? randomBytes(16).toString('hex'),
    nodeId: nodeIdOfSeed(seed),
    role: joining.role ?? 'full',
    chunkSize,
    chunkIdHash: joining.chunkIdHash ?? newVolumeChunkIdHash(),
    kdf: { alg: params.alg, opslimit: params.opslimit, memlimit: params.memlimit, salt: params.salt.toString('base64') },
    wrappedKey: seal(kek, key, AD).toString('base64'),
    wrappedSeed: seal(kek, seed, SEED_AD).toString('base64'),
    ...(joining.fullRoleKey ? { fullRoleKey: joining.fullRoleKey.toString('hex') } : {}),
    ...(joining.memberCert ? { memberCert: joining.memberCert.toString('hex') } : {})
  }
  const tmp = path + '.tmp'
  await writeFile(tmp, JSON.stringify(file, null, 2) + '\n', { mode: 0o600 })
  await rename(tmp, path)
  return file
}

export async function readVolumeFile (dataDir: string): Promise<VolumeFile> {
  const path = join(dataDir, VOLUME_FILE)
  let text: string
  try {
    text = await readFile(path, 'utf8')
  } catch (e) {
    if ((e as NodeJS.ErrnoException).code === 'ENOENT') throw fail('NO_VOLUME', `no volume in ${dataDir} (run \`disktro init\`)`)
    throw fail('VOLUME_DAMAGED', `cannot read ${path}: ${(e as Error).message}`)
  }
  let f: VolumeFile
  try {
    f = JSON.parse(text)
  } catch {
    throw fail('VOLUME_DAMAGED', `${path} is damaged (not JSON)`)
  }
  if (typeof f !== 'object' || f === null || typeof f.format !== 'number') throw fail('VOLUME_DAMAGED', `${path} is damaged`)
  if (f.format !== VOLUME_FORMAT) throw fail('UNSUPPORTED_VERSION', `${path} has format ${f.format}; this disktro reads format ${VOLUME_FORMAT}`)
  if (typeof f.wrappedKey !== 'string' || typeof f.kdf?.salt !== 'string' || typeof f.chunkSize !== 'number' ||
      typeof f.nodeId !== 'string' || typeof f.volumeId !== 'string' || f.kdf.alg !== 'argon2id13' ||
      typeof f.wrappedSeed !== 'string' || (f.role !== 'full' && f.role !== 'storage') ||
      (f.chunkIdHash !== undefined && !isChunkIdHash(f.chunkIdHash)) ||
      (f.fullRoleKey !== undefined && !/^[0-9a-f]{64}$/.test(f.fullRoleKey)) ||
      (f.memberCert !== undefined && !/^[0-9a-f]+$/.test(f.memberCert))) {
    throw fail('VOLUME_DAMAGED', `${path} is damaged (missing fields)`)
  }
  return f
}

export async function unlockVolumeFile (f: VolumeFile, password: string): Promise<VolumeSecrets> {
  const params: PwhashParams = { alg: 'argon2id13', opslimit: f.kdf.opslimit, memlimit: f.kdf.memlimit, salt: Buffer.from(f.kdf.salt, 'base64') }
  const kek = await stretchPassword(password, params)
  try {
    return { key: open(kek, Buffer.from(f.wrappedKey, 'base64'), AD), seed: open(kek, Buffer.from(f.wrappedSeed, 'base64'), SEED_AD) }
  } catch {
    throw fail('BAD_PASSWORD', 'wrong password for this volume')
  }
}

// The upgrade path of a storage-only member that joined with a code older
// than version 3: it has no public role key, so it takes a peer's claim of
// the full role on trust (docs/security.md). A new storage-only code of the
// same volume carries the key; it is written into volume.json, keeping the
// member's identity and store. The code must open with this volume's
// swarm key (the password unlocks it), so a code of another volume, or one
// carrying someone else's role key under this volume's id, is refused.
export async function upgradeRoleKey (dataDir: string, code: { volumeId: string, role: Role, key: Buffer, fullRoleKey?: Buffer }, password: string): Promise<VolumeFile> {
  const f = await readVolumeFile(dataDir)
  if (f.role !== 'storage') throw fail('EINVAL', 'only a storage-only member takes the role key from a code (a full member derives it)')
  if (code.role !== 'storage' || code.fullRoleKey === undefined) throw fail('EINVAL', 'the code must be a storage-only join code of version 3 or later (`disktro invite --storage-only` on a full member)')
  if (code.volumeId !== f.volumeId) throw fail('EINVAL', `the code is for volume ${code.volumeId}, this member is of ${f.volumeId}`)
  const secrets = await unlockVolumeFile(f, password)
  if (secrets.key.length !== code.key.length || !sodium.sodium_memcmp(secrets.key, code.key)) throw fail('EINVAL', 'the code does not carry this volume\'s swarm key')
  if (f.fullRoleKey !== undefined && f.fullRoleKey !== code.fullRoleKey.toString('hex')) throw fail('EINVAL', 'this member already has another role key')
  const next: VolumeFile = { ...f, fullRoleKey: code.fullRoleKey.toString('hex') }
  const path = join(dataDir, VOLUME_FILE)
  await writeFile(path + '.tmp', JSON.stringify(next, null, 2) + '\n', { mode: 0o600 })
  await rename(path + '.tmp', path)
  return next
}
