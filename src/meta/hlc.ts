// Hybrid logical clock: 48 bits of wall-clock milliseconds and a 16-bit
// counter, so stamps stay close to real time yet always increase, even when
// the clock steps back or many changes land in the same millisecond.
export class HybridClock {
  private last: bigint

  constructor (last = 0n, private readonly now: () => number = Date.now) {
    this.last = last
  }

  tick (): bigint {
    const wall = BigInt(this.now()) << 16n
    this.last = wall > this.last ? wall : this.last + 1n
    return this.last
  }

  // Merge a stamp seen from elsewhere (a peer's change).
  observe (remote: bigint): void {
    if (remote > this.last) this.last = remote
  }

  get current (): bigint {
    return this.last
  }

  static millis (stamp: bigint): number {
    return Number(stamp >> 16n)
  }
}
