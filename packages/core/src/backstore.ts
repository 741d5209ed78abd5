/**
 * The `Backstore` interface: where a file's working bytes live while it is
 * open for writing. Core ships `MemoryBackstore` (a paged, sparse, growable
 * heap buffer) that works on every OS; platform packages add memfd, tmpfs and
 * reflink backstores behind the same interface.
 */
import fs from "node:fs";
import { FreeList } from "./freelist.js";

/**
 * A random-access, growable byte buffer holding one open file's working
 * contents, with the semantics of an unlinked regular file (or a memfd):
 * bytes never written read as zero, `truncate` grows with zeros or shrinks.
 * Offsets and lengths are in bytes. Implementations need not be thread-safe.
 */
export interface WorkingBuffer {
  /** Current logical size in bytes (as fstat(2) st_size). */
  readonly size: number;
  /**
   * Bytes of memory (or of backing file) the buffer holds, roughly: whole
   * pages written and not since punched or truncated away. Optional; used
   * to throttle writers (`FsCore.writeThrottle`).
   */
  readonly heldBytes?: number;
  /** Copies up to `length` bytes at `position` into `dst[dstOffset…]`; returns bytes copied (0 at or past EOF), as pread(2). */
  read(dst: Uint8Array, dstOffset: number, length: number, position: number): number;
  /** Writes `src[srcOffset, srcOffset+length)` at `position`, growing the buffer if needed, as pwrite(2). */
  write(src: Uint8Array, srcOffset: number, length: number, position: number): void;
  /** Sets the size to `size` bytes, zero-filling on growth, as ftruncate(2). Throws RangeError for a negative size. */
  truncate(size: number): void;
  /**
   * False only when `[position, position+length)` is certainly all zero because
   * nothing was ever written there (a hole, as SEEK_DATA would report). True is
   * always a safe answer.
   */
  hasData(position: number, length: number): boolean;
  /**
   * Makes `[position, position+length)` (clipped to the size) read as zero,
   * freeing the memory of whole pages where it can, so that `hasData`
   * reports those pages as a hole again, as fallocate(2)
   * FALLOC_FL_PUNCH_HOLE | FALLOC_FL_KEEP_SIZE. Errors: EIO.
   */
  punchHole(position: number, length: number): void;
  /** Releases the memory or descriptor behind the buffer; later calls are invalid. */
  dispose(): void;
}

/**
 * A backstore creates working buffers. `kind` names it in `agentfs stats` and
 * errors (e.g. "memory", "memfd", "tmpfs", "reflink").
 */
export interface Backstore {
  readonly kind: string;
  /** Returns a new, empty working buffer. Throws an Error with `code` ENOSPC/EMFILE when the platform refuses. */
  createBuffer(): WorkingBuffer;
}

/**
 * The members of `held` (page indices: a Set, or a Map's keys) in
 * `[first, end)`, in no particular order: walks the range or the members,
 * whichever is fewer, so a huge range costs no more than the pages held.
 */
export function heldPagesIn(held: { has(p: number): boolean; keys(): Iterable<number>; readonly size: number }, first: number, end: number): number[] {
  const out: number[] = [];
  if (end - first <= held.size) {
    for (let p = first; p < end; p++) if (held.has(p)) out.push(p);
  } else for (const p of held.keys()) if (p >= first && p < end) out.push(p);
  return out;
}

/** Page size of `MemoryBuffer`: 64 KiB. Unwritten pages are not allocated. */
export const MEMORY_PAGE_SIZE = 64 * 1024;

/** The free list is emptied after this long (ms) without a page taken from it, so an idle process gives the memory back. */
export const FREE_PAGES_IDLE_MS = 5000;

/**
 * Whole pages that MemoryBuffers let go of (punched, truncated away,
 * disposed), handed to the next page any MemoryBuffer allocates: reused
 * memory costs no page faults, no zeroing by the kernel and no garbage for
 * V8 to collect (writing a large file through a mount frees and allocates a
 * page per 64 KiB). At most 1024 (64 MiB) are kept. A page's old
 * bytes never show: `write` sets or zero-fills every byte of a page it
 * takes.
 */
const freePages = new FreeList<Buffer>(1024, FREE_PAGES_IDLE_MS);

function recycle(page: Buffer): void {
  if (page.length === MEMORY_PAGE_SIZE) freePages.put(page);
}

/** Pages on the free list (tests). */
export function freePageCount(): number {
  return freePages.size;
}

/**
 * A sparse heap buffer made of fixed 64 KiB pages kept in a Map: holes cost
 * nothing, growing never copies existing bytes, and shrinking frees whole
 * pages, so long-lived buffers do not fragment the heap with large reallocs.
 */
export class MemoryBuffer implements WorkingBuffer {
  private pages = new Map<number, Buffer>();
  private _size = 0;

  get size(): number {
    return this._size;
  }

  /** Bytes of pages held (each counted as a whole 64 KiB page). */
  get heldBytes(): number {
    return this.pages.size * MEMORY_PAGE_SIZE;
  }

  read(dst: Uint8Array, dstOffset: number, length: number, position: number): number {
    const end = Math.min(this._size, position + length);
    let pos = position;
    while (pos < end) {
      const pi = Math.floor(pos / MEMORY_PAGE_SIZE);
      const po = pos - pi * MEMORY_PAGE_SIZE;
      const n = Math.min(MEMORY_PAGE_SIZE - po, end - pos);
      const page = this.pages.get(pi);
      const at = dstOffset + (pos - position);
      const have = page ? Math.max(0, Math.min(n, page.length - po)) : 0;
      if (have > 0) dst.set(page!.subarray(po, po + have), at);
      if (have < n) dst.fill(0, at + have, at + n);
      pos += n;
    }
    return Math.max(0, end - position);
  }

  write(src: Uint8Array, srcOffset: number, length: number, position: number): void {
    let pos = position;
    const end = position + length;
    while (pos < end) {
      const pi = Math.floor(pos / MEMORY_PAGE_SIZE);
      const po = pos - pi * MEMORY_PAGE_SIZE;
      const n = Math.min(MEMORY_PAGE_SIZE - po, end - pos);
      let page = this.pages.get(pi);
      if (!page || page.length < po + n) {
        // Pages start small (4 KiB multiples) and grow by doubling up to 64 KiB,
        // so small files do not pay for a whole page.
        let len = page ? page.length : 4096;
        while (len < po + n) len *= 2;
        // Not zero-filled twice: the old bytes are copied in, the bytes this write covers are set below,
        // and only the rest is zeroed.
        const grown = (len >= MEMORY_PAGE_SIZE ? freePages.take() : undefined) ?? Buffer.allocUnsafeSlow(Math.min(len, MEMORY_PAGE_SIZE));
        const kept = page ? page.copy(grown) : 0;
        if (po > kept) grown.fill(0, kept, po);
        grown.fill(0, Math.max(kept, po + n));
        page = grown;
        this.pages.set(pi, page);
      }
      const from = srcOffset + (pos - position);
      const part = src.subarray(from, from + n);
      page.set(part, po);
      if (part.length < n) page.fill(0, po + part.length, po + n); // a short source: the rest reads as zero
      pos += n;
    }
    if (end > this._size) this._size = end;
  }

  truncate(size: number): void {
    if (size < 0 || !Number.isSafeInteger(size)) throw new RangeError(`bad size ${size}`);
    if (size < this._size) {
      const keep = Math.ceil(size / MEMORY_PAGE_SIZE);
      for (const [pi, page] of [...this.pages]) {
        if (pi < keep) continue;
        this.pages.delete(pi);
        recycle(page);
      }
      const tail = size % MEMORY_PAGE_SIZE;
      const last = this.pages.get(keep - 1);
      if (last && tail && tail < last.length) last.fill(0, tail);
    }
    this._size = size;
  }

  hasData(position: number, length: number): boolean {
    const first = Math.floor(position / MEMORY_PAGE_SIZE);
    const last = Math.floor((position + length - 1) / MEMORY_PAGE_SIZE);
    if (last - first > this.pages.size) {
      for (const pi of this.pages.keys()) if (pi >= first && pi <= last) return true;
      return false;
    }
    for (let pi = first; pi <= last; pi++) if (this.pages.has(pi)) return true;
    return false;
  }

  /**
   * Frees the pages wholly inside `[position, position+length)` and
   * zero-fills the partial ones at its ends; visits only pages that exist,
   * so a huge range costs no more than the pages held.
   */
  punchHole(position: number, length: number): void {
    const end = Math.min(this._size, position + length);
    if (end <= position) return;
    for (const p of heldPagesIn(this.pages, Math.floor(position / MEMORY_PAGE_SIZE), Math.floor((end - 1) / MEMORY_PAGE_SIZE) + 1)) {
      const page = this.pages.get(p)!;
      const lo = Math.max(position, p * MEMORY_PAGE_SIZE) - p * MEMORY_PAGE_SIZE;
      const hi = Math.min(end, (p + 1) * MEMORY_PAGE_SIZE) - p * MEMORY_PAGE_SIZE;
      if (lo === 0 && hi === MEMORY_PAGE_SIZE) {
        this.pages.delete(p);
        recycle(page);
      } else page.fill(0, Math.min(lo, page.length), Math.min(hi, page.length));
    }
  }

  dispose(): void {
    for (const page of this.pages.values()) recycle(page);
    this.pages.clear();
    this._size = 0;
  }
}

/** The portable default backstore: `MemoryBuffer`s on the JS heap. */
export class MemoryBackstore implements Backstore {
  readonly kind = "memory";
  createBuffer(): WorkingBuffer {
    return new MemoryBuffer();
  }
}

/** Granularity of `FdBuffer` hole tracking: 64 KiB (as `MemoryBuffer` pages). */
export const TRACK_PAGE = 64 * 1024;
const TRACK_ZERO = new Uint8Array(TRACK_PAGE);

/**
 * A working buffer over an open file descriptor whose file behaves like a
 * regular file (a memfd, an unlinked file on tmpfs, APFS or any host
 * filesystem): reads and writes are pread(2)/pwrite(2) through node:fs, size
 * changes ftruncate(2), so the bytes never live on the JS heap and growing or
 * shrinking cannot fragment it. The fd is owned (closed by `dispose`). Which
 * 64 KiB pages were ever written is tracked so `hasData` answers without a
 * syscall (Node has no SEEK_DATA); a page counts as written from its first
 * write until a truncate cuts it off. Platform backstores create the fd.
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

  /** Bytes of 64 KiB pages written and not since punched or truncated away. */
  get heldBytes(): number {
    return this.written.size * TRACK_PAGE;
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
    fs.ftruncateSync(this.fd, size);
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

  /**
   * Makes `[position, position+length)` (clipped to the size) read as zeros
   * (`zeroRange`) and forgets the 64 KiB pages wholly inside, which `hasData`
   * then reports as a hole. Errors: EIO; a subclass's `zeroRange` may add
   * its own (fallocate(2)'s EPERM under a seal).
   */
  punchHole(position: number, length: number): void {
    const end = Math.min(this._size, position + length);
    if (end <= position) return;
    this.zeroRange(position, end);
    // Pages [ceil(position), floor(end)) lie wholly inside.
    for (const p of heldPagesIn(this.written, Math.ceil(position / TRACK_PAGE), Math.floor(end / TRACK_PAGE))) this.written.delete(p);
  }

  /**
   * Makes bytes `[lo, hi)` of the file read as zeros: here by writing zeros
   * over the written pages of the range (never-written ones read as zero
   * already; Node has no fallocate(2), so the file keeps the space). A
   * platform backstore overrides it with FALLOC_FL_PUNCH_HOLE, which frees
   * the space. Errors: EIO.
   */
  protected zeroRange(lo: number, hi: number): void {
    for (const p of heldPagesIn(this.written, Math.floor(lo / TRACK_PAGE), Math.ceil(hi / TRACK_PAGE))) {
      const a = Math.max(lo, p * TRACK_PAGE);
      const b = Math.min(hi, (p + 1) * TRACK_PAGE);
      let done = 0;
      while (done < b - a) done += fs.writeSync(this.fd, TRACK_ZERO, 0, b - a - done, a + done);
    }
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
