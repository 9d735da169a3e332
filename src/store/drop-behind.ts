import { ioAddon } from './io-addon.js'

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

export { ADDON_PATH } from './io-addon.js'

export function dropCacheFn (): DropCache | null {
  const drop = ioAddon()?.dropCache
  return typeof drop === 'function' ? drop : null
}
