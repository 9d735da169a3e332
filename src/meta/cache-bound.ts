// The default bound of each in-memory cache of the namespace (config
// metaCacheEntries; docs/architecture.md "Memory"): decoded inodes, lookups
// and block refs (sealed-tree.ts), the merged view's listings and attributes
// (merge/merge-tree.ts). Each entry is 100-300 bytes of heap.
// DISKTRO_META_CACHE_ENTRIES sets another default: the contract tests run
// with 1, so every read goes past the caches (docs/environment.md).
export const DEFAULT_META_CACHE_ENTRIES = fromEnv(process.env.DISKTRO_META_CACHE_ENTRIES) ?? 50_000

function fromEnv (v: string | undefined): number | undefined {
  const n = Number(v)
  return v !== undefined && Number.isSafeInteger(n) && n >= 1 ? n : undefined
}
