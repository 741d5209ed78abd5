/**
 * `FdBuffer`: a `WorkingBuffer` over any read/write file descriptor whose
 * file behaves like a regular file (a memfd, an unlinked file on tmpfs or on
 * a host filesystem). Reads and writes are pread(2)/pwrite(2), size changes
 * ftruncate(2); the bytes never pass through the JS heap except the caller's
 * own buffers, so growing and shrinking cannot fragment it.
 */
import fs from "node:fs";
import type { WorkingBuffer } from "@agentfs/core";
import * as native from "@agentfs/native";

/** Granularity of hole tracking: 64 KiB (as core's MemoryBuffer pages). */
export const TRACK_PAGE = 64 * 1024;

/**
 * A working buffer over an open fd (owned: closed by `dispose`). Tracks which
 * 64 KiB pages were ever written so `hasData` answers without a syscall
 * (SEEK_DATA is not wrapped by @agentfs/native and would cost one lseek per
 * query); a page counts as written from its first write until a truncate
 * cuts it off.
 */
export class FdBuffer implements WorkingBuffer {
  private _size: number;
  private readonly written = new Set<number>();
  private closed = false;

  /**
   * `fd`: open O_RDWR on a regular file (taken over; closed by `dispose`).
   * `size`: its current size in bytes (pages below it count as written,
   * since the file may already hold data, e.g. a reflinked copy).
   * `onDispose` runs after the fd is closed (e.g. to unlink a name).
   */
  constructor(readonly fd: number, size = 0, private readonly onDispose?: () => void) {
    this._size = size;
    for (let p = 0; p * TRACK_PAGE < size; p++) this.written.add(p);
  }

  /** Current logical size in bytes (as fstat(2) st_size). */
  get size(): number {
    return this._size;
  }

  /** pread(2) into `dst[dstOffset…]`; returns bytes copied (0 at or past EOF). Errors: EBADF, EIO. */
  read(dst: Uint8Array, dstOffset: number, length: number, position: number): number {
    const end = Math.min(this._size, position + length);
    let done = 0;
    while (position + done < end) {
      const n = fs.readSync(this.fd, dst, dstOffset + done, end - position - done, position + done);
      if (n === 0) {
        // Cannot happen for a file we alone size; zero-fill defensively.
        dst.fill(0, dstOffset + done, dstOffset + (end - position));
        done = end - position;
        break;
      }
      done += n;
    }
    return Math.max(0, done);
  }

  /** pwrite(2) of `src[srcOffset, srcOffset+length)` at `position`, growing the file. Errors: ENOSPC, EFBIG, EIO. */
  write(src: Uint8Array, srcOffset: number, length: number, position: number): void {
    let done = 0;
    while (done < length) done += fs.writeSync(this.fd, src, srcOffset + done, length - done, position + done);
    if (length > 0) {
      const last = Math.floor((position + length - 1) / TRACK_PAGE);
      for (let p = Math.floor(position / TRACK_PAGE); p <= last; p++) this.written.add(p);
    }
    if (position + length > this._size) this._size = position + length;
  }

  /** ftruncate(2): grows with zeros (a hole) or shrinks, releasing the pages. Throws RangeError for a negative size. */
  truncate(size: number): void {
    if (size < 0 || !Number.isSafeInteger(size)) throw new RangeError(`bad size ${size}`);
    native.ftruncate(this.fd, size);
    if (size < this._size) {
      const keep = Math.ceil(size / TRACK_PAGE);
      if (this.written.size > 0) for (const p of [...this.written]) if (p >= keep) this.written.delete(p);
    }
    this._size = size;
  }

  /** False only when no byte of `[position, position+length)` was ever written (a hole). */
  hasData(position: number, length: number): boolean {
    if (length <= 0) return false;
    const first = Math.floor(position / TRACK_PAGE);
    const last = Math.floor((position + length - 1) / TRACK_PAGE);
    if (last - first > this.written.size) {
      for (const p of this.written) if (p >= first && p <= last) return true;
      return false;
    }
    for (let p = first; p <= last; p++) if (this.written.has(p)) return true;
    return false;
  }

  /** Closes the fd (freeing a memfd's or unlinked file's pages) and runs `onDispose`. Idempotent. */
  dispose(): void {
    if (this.closed) return;
    this.closed = true;
    this.written.clear();
    this._size = 0;
    try {
      fs.closeSync(this.fd);
    } finally {
      this.onDispose?.();
    }
  }
}
