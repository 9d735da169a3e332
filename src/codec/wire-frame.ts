import { fail } from '../errors.js'
import { FRAME_HEADER_BYTES, MAX_FRAME_BYTES } from './wire.js'

// Cuts a byte stream into frames ([u32 LE length][body]). The length is
// checked against `maxFrame` before a byte of the body is buffered, so a
// peer cannot make us allocate more than the limit; the limit can be changed
// between frames (a connection accepts only a tiny HELLO until it trusts the
// peer). A frame is copied into its own buffer unless it arrived whole and
// makes up most of its input chunk, so decoded views never pin much more
// than themselves. The caller must not modify input chunks after pushing them.
export class FrameReader {
  private input: Buffer = Buffer.alloc(0)
  private offset = 0
  private readonly header = Buffer.alloc(FRAME_HEADER_BYTES)
  private headerFill = 0
  private frame: Buffer | null = null
  private frameFill = 0

  constructor (public maxFrame = MAX_FRAME_BYTES) {}

  // Call next() until it returns null before pushing again.
  push (data: Buffer): void {
    if (this.offset < this.input.length) throw fail('EINVAL', 'FrameReader input not drained')
    this.input = data
    this.offset = 0
  }

  next (): Buffer | null {
    const input = this.input
    while (this.offset < input.length) {
      if (this.frame === null) {
        const n = Math.min(FRAME_HEADER_BYTES - this.headerFill, input.length - this.offset)
        input.copy(this.header, this.headerFill, this.offset, this.offset + n)
        this.headerFill += n
        this.offset += n
        if (this.headerFill < FRAME_HEADER_BYTES) return null
        this.headerFill = 0
        const length = this.header.readUInt32LE(0)
        if (length > this.maxFrame) throw fail('BAD_MESSAGE', `frame of ${length} bytes exceeds the limit of ${this.maxFrame}`)
        if (length < 2) throw fail('BAD_MESSAGE', `frame of ${length} bytes is too short`)
        // A frame that arrives whole in one input, and is most of it, is
        // handed out as a view: no copy, and at most a small remainder of
        // the input is pinned by it. (A chunk frame is typically exactly one
        // secret-stream message.)
        if (input.length - this.offset >= length && length * 2 >= input.length) {
          const done = input.subarray(this.offset, this.offset + length)
          this.offset += length
          return done
        }
        this.frame = Buffer.allocUnsafe(length)
        this.frameFill = 0
      }
      const n = Math.min(this.frame.length - this.frameFill, input.length - this.offset)
      input.copy(this.frame, this.frameFill, this.offset, this.offset + n)
      this.frameFill += n
      this.offset += n
      if (this.frameFill === this.frame.length) {
        const done = this.frame
        this.frame = null
        return done
      }
    }
    // Drained: let go of the input, or the last message received (a 1 MiB
    // chunk, typically) would stay alive until the next one arrives, survive
    // young-generation GCs that way and pile up for full ones.
    this.input = EMPTY
    this.offset = 0
    return null
  }
}

const EMPTY = Buffer.alloc(0)
