import { readFile, writeFile, rename, mkdir } from 'node:fs/promises'
import { join } from 'node:path'
import { seal, open } from '../crypto/aead.js'
import { newPwhashParams, stretchPassword, type PwhashParams } from '../crypto/password.js'
import { randomKey, randomBytes } from '../crypto/volume-keys.js'
import { fail, isDisktroError } from '../errors.js'

export const VOLUME_FILE = 'volume.json'
export const VOLUME_FORMAT = 1

// What a data dir knows about its volume in the clear: ids, the chunk size,
// and the master key wrapped under the password (docs/format.md).
export interface VolumeFile {
  format: number
  volumeId: string
  nodeId: string
  chunkSize: number
  kdf: { alg: 'argon2id13', opslimit: number, memlimit: number, salt: string }
  wrappedKey: string
}

const AD = Buffer.from('disktro volume key v1')

export async function createVolumeFile (dataDir: string, password: string, chunkSize: number): Promise<{ file: VolumeFile, master: Buffer }> {
  await mkdir(dataDir, { recursive: true, mode: 0o700 })
  const path = join(dataDir, VOLUME_FILE)
  if (await readVolumeFile(dataDir).then(() => true, e => !isDisktroError(e, 'NO_VOLUME'))) {
    throw fail('VOLUME_EXISTS', `a volume already exists in ${dataDir}`)
  }
  const master = randomKey()
  const params = newPwhashParams()
  const kek = await stretchPassword(password, params)
  const file: VolumeFile = {
    format: VOLUME_FORMAT,
    volumeId: randomBytes(16).toString('hex'),
    nodeId: randomBytes(16).toString('hex'),
    chunkSize,
    kdf: { alg: params.alg, opslimit: params.opslimit, memlimit: params.memlimit, salt: params.salt.toString('base64') },
    wrappedKey: seal(kek, master, AD).toString('base64')
  }
  const tmp = path + '.tmp'
  await writeFile(tmp, JSON.stringify(file, null, 2) + '\n', { mode: 0o600 })
  await rename(tmp, path)
  return { file, master }
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
      typeof f.nodeId !== 'string' || typeof f.volumeId !== 'string' || f.kdf.alg !== 'argon2id13') {
    throw fail('VOLUME_DAMAGED', `${path} is damaged (missing fields)`)
  }
  return f
}

export async function unlockVolumeFile (f: VolumeFile, password: string): Promise<Buffer> {
  const params: PwhashParams = { alg: 'argon2id13', opslimit: f.kdf.opslimit, memlimit: f.kdf.memlimit, salt: Buffer.from(f.kdf.salt, 'base64') }
  const kek = await stretchPassword(password, params)
  try {
    return open(kek, Buffer.from(f.wrappedKey, 'base64'), AD)
  } catch {
    throw fail('BAD_PASSWORD', 'wrong password for this volume')
  }
}
