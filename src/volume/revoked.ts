import { readFile, writeFile, rename } from 'node:fs/promises'
import { join } from 'node:path'
import { fail } from '../errors.js'

const FILE = 'revoked.json'

// Members this node refuses to talk to: node ids (hex public keys), kept in
// the data dir so a revocation survives restarts.
export async function readRevoked (dataDir: string): Promise<string[]> {
  try {
    const list = JSON.parse(await readFile(join(dataDir, FILE), 'utf8'))
    return Array.isArray(list) ? list.filter((x): x is string => typeof x === 'string' && /^[0-9a-f]{64}$/.test(x)) : []
  } catch {
    return []
  }
}

export async function addRevoked (dataDir: string, id: string): Promise<string> {
  const norm = id.trim().toLowerCase()
  if (!/^[0-9a-f]{64}$/.test(norm)) throw fail('EINVAL', 'a node id is 64 hex characters (see `disktro status`)')
  const list = await readRevoked(dataDir)
  if (!list.includes(norm)) list.push(norm)
  const path = join(dataDir, FILE)
  await writeFile(path + '.tmp', JSON.stringify(list, null, 2) + '\n', { mode: 0o600 })
  await rename(path + '.tmp', path)
  return norm
}
