// The default bound of each in-memory cache of the namespace (config
// metaCacheEntries; docs/architecture.md "Memory"): decoded inodes, lookups
// and block refs (sealed-tree.ts), the merged view's listings and attributes
// (merge/merge-tree.ts). Each entry is 100-300 bytes of heap. 200,000 is
// SealedTree's old bound and holds a 100,000-entry tree's whole view: a
// change in a directory whose listing was evicted costs a compare of the
// whole directory (incremental-reconcile.test: over its 50 ms with 50,000
// on a loaded machine), so a smaller bound trades that for memory.
// DISKTRO_META_CACHE_ENTRIES sets another default: the contract tests run
// with 1, so every read goes past the caches (docs/environment.md).
export const DEFAULT_META_CACHE_ENTRIES = fromEnv(process.env.DISKTRO_META_CACHE_ENTRIES) ?? 200_000

function fromEnv (v: string | undefined): number | undefined {
  const n = Number(v)
  return v !== undefined && Number.isSafeInteger(n) && n >= 1 ? n : undefined
}
