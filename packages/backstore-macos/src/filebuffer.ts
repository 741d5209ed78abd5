/**
 * `FileBuffer`: a `WorkingBuffer` over an open, unlinked regular file
 * (pread/pwrite/ftruncate through node:fs, so it works on every POSIX OS).
 */
import fs from "node:fs";
import type { WorkingBuffer } from "@agentfs/core";

/** Granularity of hole tracking: 64 KiB. */
const PAGE = 64 * 1024;

/** How a buffer's initial contents were made: `"clone"` (clonefile, blocks shared) or `"copy"`. */
export type CopyMethod = "clone" | "copy";

/**
 * A working buffer over fd `fd` (owned; closed by `dispose`) of size `size`.
 * Pages below `size` count as written; later writes are tracked per 64 KiB.
 */
export class FileBuffer implements WorkingBuffer {
  private _size: number;
  private readonly written = new Set<number>();
  private closed = false;
  /** Set for buffers made by `cloneFrom`. */
  method?: CopyMethod;

  constructor(readonly fd: number, size = 0) {
    this._size = size;
    for (let p = 0; p * PAGE < size; p++) this.written.add(p);
  }

  /** Size in bytes (as fstat st_size). */
  get size(): number {
    return this._size;
  }

  /** pread(2); returns bytes copied (0 at or past EOF). */
  read(dst: Uint8Array, dstOffset: number, length: number, position: number): number {
    const end = Math.min(this._size, position + length);
    let done = 0;
    while (position + done < end) {
      const n = fs.readSync(this.fd, dst, dstOffset + done, end - position - done, position + done);
      if (n === 0) {
        dst.fill(0, dstOffset + done, dstOffset + (end - position));
        done = end - position;
        break;
      }
      done += n;
    }
    return Math.max(0, done);
  }

  /** pwrite(2), growing the file. Errors: ENOSPC, EFBIG, EIO. */
  write(src: Uint8Array, srcOffset: number, length: number, position: number): void {
    let done = 0;
    while (done < length) done += fs.writeSync(this.fd, src, srcOffset + done, length - done, position + done);
    if (length > 0) for (let p = Math.floor(position / PAGE); p <= Math.floor((position + length - 1) / PAGE); p++) this.written.add(p);
    if (position + length > this._size) this._size = position + length;
  }

  /** ftruncate(2). Throws RangeError for a negative size. */
  truncate(size: number): void {
    if (size < 0 || !Number.isSafeInteger(size)) throw new RangeError(`bad size ${size}`);
    fs.ftruncateSync(this.fd, size);
    if (size < this._size) {
      const keep = Math.ceil(size / PAGE);
      for (const p of [...this.written]) if (p >= keep) this.written.delete(p);
    }
    this._size = size;
  }

  /** False only when nothing was ever written in `[position, position+length)`. */
  hasData(position: number, length: number): boolean {
    if (length <= 0) return false;
    const first = Math.floor(position / PAGE);
    const last = Math.floor((position + length - 1) / PAGE);
    if (last - first > this.written.size) {
      for (const p of this.written) if (p >= first && p <= last) return true;
      return false;
    }
    for (let p = first; p <= last; p++) if (this.written.has(p)) return true;
    return false;
  }

  /** Closes the fd (the unlinked file's blocks are freed). Idempotent. */
  dispose(): void {
    if (this.closed) return;
    this.closed = true;
    this.written.clear();
    this._size = 0;
    fs.closeSync(this.fd);
  }
}
