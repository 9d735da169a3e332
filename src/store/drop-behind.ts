import { createRequire } from 'node:module'
import { fileURLToPath } from 'node:url'

// Page-cache drop-behind for replicas (native/io.c, built at npm install by
// scripts/build-io.cjs). A member storing other members' chunks writes them
// once and rarely reads them again; once a sync has put them on disk, their
// clean pages are dropped from the page cache instead of pushing out pages
// this machine does use. (On this project's VMs it also keeps a replica
// stream fast: fresh page-cache pages cost the guest a host fault each, and
// dropped pages are reused at once. Replicating 1 GiB over loopback: 11.7 s
// of CPU instead of 13.0-13.6.) Null when the addon is not built: the store
// then works the same, without drop-behind.
export type DropCache = (fd: number, offset: number, length: number) => Promise<void>

export const ADDON_PATH = fileURLToPath(new URL('../../../native/build/Release/io.node', import.meta.url))

let loaded: DropCache | null | undefined

export function dropCacheFn (): DropCache | null {
  if (loaded !== undefined) return loaded
  try {
    const addon = createRequire(import.meta.url)(ADDON_PATH) as { dropCache?: DropCache }
    loaded = typeof addon.dropCache === 'function' ? addon.dropCache : null
  } catch {
    loaded = null
  }
  return loaded
}
