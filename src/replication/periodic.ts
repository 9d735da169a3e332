// A background job that runs every `everyMs` and on demand, one run at a
// time; a run that throws is logged, never thrown. Trimmer, evictor
// and garbage collector are all built on it.
export class Periodic {
  private timer: NodeJS.Timeout | null = null
  private running = false
  closed = false

  constructor (private readonly what: string, private readonly everyMs: number, private readonly fn: () => Promise<void>, private readonly log: (line: string) => void) {}

  start (): void {
    this.timer = setInterval(() => { void this.run() }, this.everyMs)
    this.timer.unref()
  }

  close (): void {
    this.closed = true
    if (this.timer) clearInterval(this.timer)
  }

  async run (): Promise<void> {
    if (this.running || this.closed) return
    this.running = true
    try {
      await this.fn()
    } catch (e) {
      this.log(`${this.what}: ${(e as Error).message}`)
    } finally {
      this.running = false
    }
  }
}
