// A least-recently-used map bounded by a total weight: the merged view's
// derived caches (directory listings weighed by their entries, nodes'
// merged attributes by one each) are kept for the directories in use, not
// for the whole volume (#26, docs/architecture.md "Memory"). What falls out
// is computed again from the tree when asked.
export class ViewCache<V> {
  private readonly map = new Map<string, { value: V, weight: number }>()
  private total = 0

  constructor (private readonly limit: () => number) {}

  get (key: string): V | undefined {
    const e = this.map.get(key)
    if (e === undefined) return undefined
    // Map keeps insertion order: re-inserting makes it the most recent.
    this.map.delete(key)
    this.map.set(key, e)
    return e.value
  }

  // The value just set is kept even when it alone weighs more than the
  // limit (a huge directory being listed); it goes at the next set.
  set (key: string, value: V, weight = 1): void {
    this.delete(key)
    this.map.set(key, { value, weight })
    this.total += weight
    const limit = this.limit()
    for (const [k, e] of this.map) {
      if (this.total <= limit || k === key) break
      this.map.delete(k)
      this.total -= e.weight
    }
  }

  // The value it held, if any.
  delete (key: string): V | undefined {
    const e = this.map.get(key)
    if (e === undefined) return undefined
    this.map.delete(key)
    this.total -= e.weight
    return e.value
  }

  clear (): void {
    this.map.clear()
    this.total = 0
  }

  get size (): number {
    return this.map.size
  }

  get weight (): number {
    return this.total
  }
}
