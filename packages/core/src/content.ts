/**
 * File contents: the extent list a regular file's inode stores, reads from
 * extents, and the copy-on-write working state of a file open for writing
 * (`OpenContent`), whose `commit` chunks, hashes, compresses and stores the
 * changed region only.
 */
import type { Backstore, WorkingBuffer } from "./backstore.js";
import { ObjectStore, sha256 } from "./cas.js";
import { Chunker } from "./chunker.js";
import { StoreError } from "./errors.js";

/** One extent: `len` bytes at file offset `off`, backed by CAS object `hash`, or a hole when `hash` is null. */
export interface Extent {
  off: number;
  len: number;
  hash: Buffer | null;
}

const KIND_HOLE = 0;
const KIND_DATA = 1;

/** Encodes extents: per extent 1 kind byte, 6-byte LE length, then the 32-byte hash for data. */
export function encodeExtents(exts: Extent[]): Buffer {
  let n = 0;
  for (const e of exts) n += e.hash ? 39 : 7;
  const out = Buffer.allocUnsafe(n);
  let p = 0;
  for (const e of exts) {
    out[p] = e.hash ? KIND_DATA : KIND_HOLE;
    out.writeUIntLE(e.len, p + 1, 6);
    p += 7;
    if (e.hash) {
      e.hash.copy(out, p);
      p += 32;
    }
  }
  return out;
}

/** Decodes `encodeExtents` output. Errors: EIO when the encoding is damaged. */
export function decodeExtents(buf: Buffer | null): Extent[] {
  const out: Extent[] = [];
  if (!buf) return out;
  let p = 0;
  let off = 0;
  while (p < buf.length) {
    const kind = buf[p];
    if (p + 7 > buf.length || (kind !== KIND_DATA && kind !== KIND_HOLE)) throw new StoreError("EIO", "manifest damaged: bad extent list");
    const len = buf.readUIntLE(p + 1, 6);
    p += 7;
    let hash: Buffer | null = null;
    if (kind === KIND_DATA) {
      if (p + 32 > buf.length) throw new StoreError("EIO", "manifest damaged: truncated extent list");
      hash = buf.subarray(p, p + 32);
      p += 32;
    }
    out.push({ off, len, hash });
    off += len;
  }
  return out;
}

/** Bytes covered by data (non-hole) extents. */
export function dataBytes(exts: Extent[]): number {
  let n = 0;
  for (const e of exts) if (e.hash) n += e.len;
  return n;
}

/** Index of the extent containing `pos`, or exts.length when pos is past the last one. */
function findExtent(exts: Extent[], pos: number): number {
  let lo = 0;
  let hi = exts.length - 1;
  while (lo <= hi) {
    const mid = (lo + hi) >> 1;
    const e = exts[mid];
    if (pos < e.off) hi = mid - 1;
    else if (pos >= e.off + e.len) lo = mid + 1;
    else return mid;
  }
  return exts.length;
}

/**
 * Copies file bytes `[pos, pos+len)` (clipped to `size`) from committed
 * extents into `dst[dstOff…]`; holes and bytes past the extents read as zero.
 * Returns bytes copied. Errors: EIO from the CAS.
 */
export function readExtents(cas: ObjectStore, exts: Extent[], size: number, dst: Uint8Array, dstOff: number, len: number, pos: number): number {
  const end = Math.min(size, pos + len);
  if (end <= pos) return 0;
  let p = pos;
  let i = findExtent(exts, p);
  while (p < end) {
    const at = dstOff + (p - pos);
    if (i >= exts.length) {
      dst.fill(0, at, at + (end - p));
      break;
    }
    const e = exts[i];
    const n = Math.min(e.off + e.len, end) - p;
    if (e.hash) {
      const data = cas.get(e.hash);
      const from = p - e.off;
      dst.set(data.subarray(from, from + n), at);
    } else {
      dst.fill(0, at, at + n);
    }
    p += n;
    i++;
  }
  return end - pos;
}

/** Granularity of lazy loading from the committed version: 64 KiB. */
const PAGE = 64 * 1024;
const ZERO = Buffer.alloc(1024 * 1024);

function isZero(b: Uint8Array): boolean {
  for (let p = 0; p < b.length; p += ZERO.length) {
    const n = Math.min(ZERO.length, b.length - p);
    if (!Buffer.from(b.buffer, b.byteOffset + p, n).equals(ZERO.subarray(0, n))) return false;
  }
  return true;
}

/** What a commit produced: the new extents and how many chunk bytes were new to the CAS. */
export interface CommitResult {
  extents: Extent[];
  size: number;
  newChunks: number;
  newStoredBytes: number;
}

/**
 * The working state of one inode open for writing in this process: a
 * backstore buffer over the committed extents (the *base*), loaded lazily
 * page by page, with the dirty byte range tracked so a commit re-chunks only
 * from the chunk boundary before the first changed byte until the chunking
 * re-synchronises with the base after the last changed byte.
 */
export class OpenContent {
  private base: Extent[];
  /** Base bytes at offsets below this are still valid (truncation lowers it). */
  private baseVisible: number;
  private readonly buf: WorkingBuffer;
  private readonly loaded = new Set<number>();
  private dirtyLo = Infinity;
  private dirtyHi = -1;

  constructor(private readonly cas: ObjectStore, backstore: Backstore, base: Extent[], size: number) {
    this.base = base;
    this.baseVisible = size;
    this.buf = backstore.createBuffer();
    this.buf.truncate(size);
  }

  /** Logical size in bytes. */
  get size(): number {
    return this.buf.size;
  }

  /** True when bytes changed since the last commit. */
  get dirty(): boolean {
    return this.dirtyHi >= 0;
  }

  /** The committed extents this buffer sits on. */
  get baseExtents(): Extent[] {
    return this.base;
  }

  private loadPage(pi: number): void {
    if (this.loaded.has(pi)) return;
    this.loaded.add(pi);
    const start = pi * PAGE;
    const end = Math.min(start + PAGE, this.baseVisible);
    if (start >= end) return;
    let i = findExtent(this.base, start);
    let p = start;
    while (p < end && i < this.base.length) {
      const e = this.base[i];
      const n = Math.min(e.off + e.len, end) - p;
      if (e.hash) {
        const data = this.cas.get(e.hash);
        this.buf.write(data, p - e.off, n, p);
      }
      p += n;
      i++;
    }
  }

  private ensureLoaded(lo: number, hi: number): void {
    if (hi <= lo) return;
    const last = Math.floor((Math.min(hi, this.baseVisible) - 1) / PAGE);
    for (let pi = Math.floor(lo / PAGE); pi <= last; pi++) this.loadPage(pi);
  }

  /** As pread(2): copies up to `len` bytes at `pos` into `dst[dstOff…]`; returns bytes read. */
  read(dst: Uint8Array, dstOff: number, len: number, pos: number): number {
    const end = Math.min(this.size, pos + len);
    if (end <= pos) return 0;
    this.ensureLoaded(pos, end);
    return this.buf.read(dst, dstOff, end - pos, pos);
  }

  /** As pwrite(2): writes `src[srcOff, srcOff+len)` at `pos`, growing the file. */
  write(src: Uint8Array, srcOff: number, len: number, pos: number): void {
    if (len <= 0) return;
    const end = pos + len;
    // Pages fully overwritten need no load; partial edge pages do.
    const firstPage = Math.floor(pos / PAGE);
    const lastPage = Math.floor((end - 1) / PAGE);
    if (pos % PAGE !== 0) this.loadPage(firstPage);
    if (end % PAGE !== 0 && end < this.baseVisible) this.loadPage(lastPage);
    for (let pi = firstPage; pi <= lastPage; pi++) this.loaded.add(pi);
    this.buf.write(src, srcOff, len, pos);
    if (pos < this.dirtyLo) this.dirtyLo = pos;
    if (end > this.dirtyHi) this.dirtyHi = end;
  }

  /** As ftruncate(2): sets the size, zero-filling on growth. */
  truncate(size: number): void {
    const old = this.size;
    if (size === old) return;
    if (size < old) {
      if (size % PAGE !== 0) this.loadPage(Math.floor(size / PAGE));
      if (size < this.baseVisible) this.baseVisible = size;
    }
    this.buf.truncate(size);
    const lo = Math.min(size, old);
    const hi = Math.max(size, old);
    if (lo < this.dirtyLo) this.dirtyLo = lo;
    if (hi > this.dirtyHi) this.dirtyHi = hi;
  }

  /**
   * End of the run of bytes from `pos` that are known to be zero without
   * reading them (holes in both the working buffer and the base), clipped to
   * the size; `pos` itself when the byte at `pos` may hold data. Lets a reader
   * of the in-progress image skip holes (e.g. to keep an exported copy sparse).
   */
  holeEnd(pos: number): number {
    return this.zeroRunEnd(pos, this.size);
  }

  /** End of the run of bytes from `pos` known to be zero without reading them (`pos` itself when none). */
  private zeroRunEnd(pos: number, size: number): number {
    let p = pos;
    while (p < size) {
      const n = Math.min(PAGE - (p % PAGE), size - p);
      if (this.buf.hasData(p, n)) break;
      const pi = Math.floor(p / PAGE);
      if (!this.loaded.has(pi) && p < this.baseVisible) {
        // Unloaded base bytes: zero only if the base has a hole over the whole page.
        const i = findExtent(this.base, p);
        const e = this.base[i];
        if (!e || e.hash || e.off + e.len < Math.min(p + n, this.baseVisible)) break;
      }
      p += n;
    }
    return p;
  }

  /**
   * Chunks, hashes and stores what changed since the last commit; returns the
   * new extent list (or null when nothing changed). Must run inside the
   * manifest's write transaction. Errors: EIO from the CAS.
   */
  commit(chunker: Chunker): CommitResult | null {
    if (!this.dirty) return null;
    const size = this.size;
    const base = this.base;
    const baseTotal = base.length ? base[base.length - 1].off + base[base.length - 1].len : 0;
    const out: Extent[] = [];
    // Start at the boundary of the base extent holding the first changed byte.
    const startAt = Math.min(this.dirtyLo, this.baseVisible);
    let i0 = findExtent(base, startAt);
    if (i0 >= base.length) i0 = base.length;
    for (let i = 0; i < i0; i++) out.push(base[i]);
    let pos = i0 < base.length ? base[i0].off : Math.min(baseTotal, startAt);
    if (pos > startAt) pos = startAt;
    // Re-sync points: base extent starts after the dirty range, valid only if the tail is unchanged.
    const resync = new Map<number, number>();
    if (size === baseTotal && this.baseVisible === size) {
      for (let i = i0; i < base.length; i++) if (base[i].off >= this.dirtyHi) resync.set(base[i].off, i);
    }
    const max = chunker.params.max;
    const win = Buffer.allocUnsafe(Math.min(max, Math.max(0, size - pos)));
    let newChunks = 0;
    let newStoredBytes = 0;
    const pushHole = (off: number, len: number) => {
      const last = out[out.length - 1];
      if (last && !last.hash && last.off + last.len === off) last.len += len;
      else out.push({ off, len, hash: null });
    };
    while (pos < size) {
      const r = resync.get(pos);
      if (r !== undefined) {
        for (let i = r; i < base.length; i++) out.push(base[i]);
        pos = size;
        break;
      }
      const z = this.zeroRunEnd(pos, size);
      if (z - pos >= PAGE || (z === size && z > pos)) {
        pushHole(pos, z - pos);
        pos = z;
        continue;
      }
      const n = Math.min(max, size - pos);
      this.read(win, 0, n, pos);
      const cut = chunker.cut(win, 0, n, pos + n === size);
      const chunk = win.subarray(0, cut);
      if (isZero(chunk)) {
        pushHole(pos, cut);
      } else {
        const hash = sha256(chunk);
        const put = this.cas.put(hash, chunk);
        if (put.added) {
          newChunks++;
          newStoredBytes += put.stored;
        }
        out.push({ off: pos, len: cut, hash });
      }
      pos += cut;
    }
    // Normalise: re-number offsets (reused base extents keep theirs; they are consistent by construction).
    this.base = out;
    this.baseVisible = size;
    this.dirtyLo = Infinity;
    this.dirtyHi = -1;
    return { extents: out, size, newChunks, newStoredBytes };
  }

  /** Releases the working buffer. */
  dispose(): void {
    this.buf.dispose();
    this.loaded.clear();
  }
}
