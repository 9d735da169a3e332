import { createRequire } from 'node:module'
import { fileURLToPath } from 'node:url'

// disktro's small native addon io.node (native/io.c, built at npm install by
// scripts/build-io.cjs), loaded once. Null when it is not built: each of its
// users then works the same without it (drop-behind.ts, heap.ts).
export interface IoAddon {
  dropCache?: (fd: number, offset: number, length: number) => Promise<void>
  keepHeap?: (topPad: number, mmapThreshold: number) => boolean
  hugePages?: (view: Uint8Array) => number
  hugeMapping?: (start: number, length: number) => number
}

export const ADDON_PATH = fileURLToPath(new URL('../../../native/build/Release/io.node', import.meta.url))

let loaded: IoAddon | null | undefined

export function ioAddon (): IoAddon | null {
  if (loaded !== undefined) return loaded
  try {
    loaded = createRequire(import.meta.url)(ADDON_PATH) as IoAddon
  } catch {
    loaded = null
  }
  return loaded
}
