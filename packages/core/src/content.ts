/**
 * File contents: the extent list a regular file's inode stores, reads from
 * extents, and the copy-on-write working state of a file open for writing
 * (`OpenContent`), whose `commit` chunks, hashes, compresses and stores the
 * changed region only.
 */
import type Database from "better-sqlite3";
import { heldPagesIn, type Backstore, type WorkingBuffer } from "./backstore.js";
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

/**
 * Walks an `encodeExtents` encoding without building extents: calls `fn(off, len,
 * hashAt)` for each extent, `hashAt` being where its 32-byte hash starts in
 * `buf`, or -1 for a hole. Errors: EIO when the encoding is damaged.
 */
function walkExtents(buf: Buffer, fn: (off: number, len: number, hashAt: number) => void): void {
  let p = 0;
  let off = 0;
  while (p < buf.length) {
    const kind = buf[p];
    if (p + 7 > buf.length || (kind !== KIND_DATA && kind !== KIND_HOLE)) throw new StoreError("EIO", "manifest damaged: bad extent list");
    const len = buf.readUIntLE(p + 1, 6);
    p += 7;
    let hashAt = -1;
    if (kind === KIND_DATA) {
      if (p + 32 > buf.length) throw new StoreError("EIO", "manifest damaged: truncated extent list");
      hashAt = p;
      p += 32;
    }
    fn(off, len, hashAt);
    off += len;
  }
}

/** Decodes `encodeExtents` output. Errors: EIO when the encoding is damaged. */
export function decodeExtents(buf: Buffer | null): Extent[] {
  const out: Extent[] = [];
  if (buf) walkExtents(buf, (off, len, h) => out.push({ off, len, hash: h < 0 ? null : buf.subarray(h, h + 32) }));
  return out;
}

/** Bytes covered by data (non-hole) extents. */
export function dataBytes(exts: Extent[]): number {
  let n = 0;
  for (const e of exts) if (e.hash) n += e.len;
  return n;
}

/**
 * `dataBytes(decodeExtents(buf))` without decoding: read from the encoding
 * itself, so a stat(2) of a regular file allocates no extent objects.
 * Errors: EIO when the encoding is damaged (as `decodeExtents`).
 */
export function encodedDataBytes(buf: Buffer | null): number {
  let n = 0;
  if (buf) walkExtents(buf, (_off, len, h) => {
    if (h >= 0) n += len;
  });
  return n;
}

/**
 * Adds to `into` (returned) the hex hash of every chunk that the encoded
 * extent lists `lists` reference (null: a list of none), read from the
 * encoding without decoding it. Errors: EIO when an encoding is damaged
 * (as `decodeExtents`).
 */
export function referencedChunks(lists: Iterable<Buffer | null>, into = new Set<string>()): Set<string> {
  for (const buf of lists) {
    if (buf) walkExtents(buf, (_off, _len, h) => {
      if (h >= 0) into.add(buf.toString("hex", h, h + 32));
    });
  }
  return into;
}

/**
 * The mark of gc over manifest database `db`, within the caller's
 * transaction (one consistent state): every CAS object that no inode version
 * of any layer references and whose hex hash is not in `keep`, with its
 * stored bytes, out of `examined` objects. Shared by `gc` and the commit
 * worker's mark for `gcAsync`. Errors: SQLite's; EIO for a damaged extent
 * list.
 */
export function unreferencedObjects(db: Database.Database, keep: Iterable<string> = []): { objects: { hash: Buffer; stored: number }[]; examined: number } {
  const live = referencedChunks(db.prepare(`SELECT extents FROM inodes WHERE extents IS NOT NULL`).pluck().iterate() as Iterable<Buffer>, new Set(keep));
  const objects: { hash: Buffer; stored: number }[] = [];
  let examined = 0;
  for (const o of db.prepare(`SELECT hash, stored FROM objects`).iterate() as Iterable<{ hash: Buffer; stored: number }>) {
    examined++;
    if (!live.has(o.hash.toString("hex"))) objects.push(o);
  }
  return { objects, examined };
}

/**
 * Appends extent `e` to `out`, merged into the last one when both are holes
 * and meet (as a new object: the last one may be shared with an older list).
 */
export function pushExtent(out: Extent[], e: Extent): void {
  const last = out[out.length - 1];
  if (!e.hash && last && !last.hash && last.off + last.len === e.off) out[out.length - 1] = { off: last.off, len: last.len + e.len, hash: null };
  else out.push(e);
}

/** The data (non-hole) extents of `exts` overlapping `[lo, hi)`, each clipped to it as `[a, b)`, in file order. */
function* dataSpans(exts: Extent[], lo: number, hi: number): Generator<[number, number]> {
  for (let i = lo < hi ? findExtent(exts, lo) : exts.length; i < exts.length && exts[i]!.off < hi; i++) {
    const e = exts[i]!;
    if (e.hash) yield [Math.max(e.off, lo), Math.min(e.off + e.len, hi)];
  }
}

/** True when `exts` leave a hole below `size`: a hole extent, or bytes past the last extent. */
function hasHole(exts: Extent[], size: number): boolean {
  let end = 0;
  for (const e of exts) {
    if (!e.hash && e.len > 0) return true;
    end = e.off + e.len;
  }
  return end < size;
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
 * As lseek(2) SEEK_DATA (`data` true) or SEEK_HOLE (`data` false) over the
 * committed extents of a file of `size` bytes, from byte `pos` (0 <= pos <
 * size): the first offset >= `pos` inside a data extent, or inside a hole
 * (a hole extent, bytes past the last extent, or the end of the file, since
 * every file ends in an implicit hole). Returns -1 when SEEK_DATA finds no
 * data at or after `pos` (the caller's ENXIO).
 */
export function seekExtents(exts: Extent[], size: number, pos: number, data: boolean): number {
  let p = pos;
  let i = findExtent(exts, p);
  while (p < size) {
    if (i >= exts.length) return data ? -1 : p;
    const e = exts[i];
    if ((e.hash !== null) === data) return p;
    p = e.off + e.len;
    i++;
  }
  return data ? -1 : size;
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
      const from = p - e.off;
      // A whole chunk is copied by the CAS itself: straight from its pack when it can (ObjectStore.copyInto).
      if (from === 0 && n === e.len) cas.copyInto(e.hash, n, dst, at);
      else dst.set(cas.get(e.hash).subarray(from, from + n), at);
    } else {
      dst.fill(0, at, at + n);
    }
    p += n;
    i++;
  }
  return end - pos;
}

/** Granularity (bytes) of lazy loading from the committed version, of the zero-page map and of what `FrozenCommit.take` hands out: 64 KiB. */
export const CONTENT_PAGE = 64 * 1024;
const PAGE = CONTENT_PAGE;
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
  /** The asynchronous commit in flight (frozen region), if any. */
  private job: FrozenCommit | null = null;
  /**
   * False while the file certainly has no hole: every byte below the size
   * was written or is committed data (a file written front to back), so
   * `dataBytes` is the size without a scan. Set by a hole in the base, a
   * write past the end, a truncate that grows, and `punch`.
   */
  private sparse: boolean;

  constructor(private readonly cas: ObjectStore, backstore: Backstore, base: Extent[], size: number) {
    this.base = base;
    this.baseVisible = size;
    this.sparse = hasHole(base, size);
    this.buf = backstore.createBuffer();
    this.buf.truncate(size);
  }

  /** Logical size in bytes. */
  get size(): number {
    return this.buf.size;
  }

  /** True when bytes changed since the last commit (an asynchronous commit still in flight counts as a change). */
  get dirty(): boolean {
    return this.dirtyHi >= 0 || this.job !== null;
  }

  /** Bytes the working buffer holds (`WorkingBuffer.heldBytes`; else 64 KiB per page loaded or written and not evicted). */
  get heldBytes(): number {
    return this.buf.heldBytes ?? this.loaded.size * PAGE;
  }

  /** The asynchronous commit in flight (see `freeze`), or null. */
  get inFlight(): FrozenCommit | null {
    return this.job;
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
    if (pos > this.size) this.sparse = true;
    this.job?.beforeModify(pos, end);
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
    } else this.sparse = true;
    if (this.job) {
      this.job.beforeModify(Math.min(size, old), Math.max(size, old));
      if (size < this.job.minTrunc) this.job.minTrunc = size;
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

  /**
   * As lseek(2) SEEK_DATA (`data` true) or SEEK_HOLE over the working state,
   * from byte `pos` (0 <= pos < size): holes are the runs `holeEnd` knows to
   * be zero (64 KiB pages never written and without committed data), so a
   * range of written zeros counts as data until it is committed. Returns -1
   * when SEEK_DATA finds no data at or after `pos` (the caller's ENXIO); the
   * end of the file is always a hole.
   */
  seek(pos: number, data: boolean): number {
    const size = this.size;
    let p = pos;
    while (p < size) {
      const z = this.zeroRunEnd(p, size);
      if (z > p) {
        if (!data) return p;
        p = z;
      } else {
        if (data) return p;
        p = (Math.floor(p / PAGE) + 1) * PAGE;
      }
    }
    return data ? -1 : size;
  }

  /**
   * Bytes of the file that may hold data (the size less the holes `seek`
   * sees): st_blocks × 512 of an open file, before rounding. Without a scan
   * while the file never had a hole.
   */
  dataBytes(): number {
    const size = this.size;
    if (!this.sparse) return size;
    let n = 0;
    for (let p = this.seek(0, true); p >= 0 && p < size; ) {
      const h = this.seek(p, false);
      n += h - p;
      p = h < size ? this.seek(h, true) : -1;
    }
    return n;
  }

  /**
   * Makes bytes `[pos, pos + len)` (clipped to the size) read as zero without
   * changing the size, as fallocate(2) with FALLOC_FL_PUNCH_HOLE |
   * FALLOC_FL_KEEP_SIZE: whole 64 KiB pages in the range become holes (their
   * committed bytes are no longer read and the working buffer frees them
   * where it can); the partial pages at either end are zero-filled. The
   * next commit stores the holes as hole extents. Costs in proportion to the
   * data in the range, not to its length.
   */
  punch(pos: number, len: number): void {
    const end = Math.min(this.size, pos + len);
    if (end <= pos) return;
    this.job?.beforeModify(pos, end);
    this.sparse = true;
    const fullLo = Math.ceil(pos / PAGE);
    const fullHi = Math.floor(end / PAGE); // pages [fullLo, fullHi) lie wholly inside
    if (fullLo >= fullHi) {
      // No whole page inside, but the range may still cross one page boundary: each partial page is
      // loaded before it is zeroed (zeroing a page never loaded let its committed bytes come back).
      const cut = Math.min(end, (Math.floor(pos / PAGE) + 1) * PAGE);
      this.zeroFill(pos, cut);
      if (end > cut) this.zeroFill(cut, end);
    } else {
      if (pos < fullLo * PAGE) this.zeroFill(pos, fullLo * PAGE);
      if (end > fullHi * PAGE) this.zeroFill(fullHi * PAGE, end);
      // Committed data under the whole pages must no longer be read: those pages count as loaded (the
      // buffer reads zero there). Pages over holes or past the committed end need nothing, so the work
      // is bounded by the committed data in the range, not by its length (a 2^47-byte punch is cheap).
      const lo = fullLo * PAGE;
      for (const [a, b] of dataSpans(this.base, lo, Math.min(fullHi * PAGE, this.baseVisible))) {
        for (let pi = Math.floor(a / PAGE); pi * PAGE < b; pi++) this.loaded.add(pi);
      }
      this.buf.punchHole(lo, (fullHi - fullLo) * PAGE);
    }
    if (pos < this.dirtyLo) this.dirtyLo = pos;
    if (end > this.dirtyHi) this.dirtyHi = end;
  }

  /** Writes zeros over `[lo, hi)`, which lies within one 64 KiB page (loaded first: the rest of the page keeps its bytes). */
  private zeroFill(lo: number, hi: number): void {
    const pi = Math.floor(lo / PAGE);
    this.loadPage(pi);
    this.buf.write(ZERO, 0, hi - lo, lo);
  }

  /**
   * End of the run of bytes from `pos` known to be zero without reading them
   * (`pos` itself when none): bytes the working buffer never got, over a hole
   * of the committed version, past its visible end, or in a page already
   * loaded. Jumps a whole hole extent at once when the buffer has nothing in
   * it, else goes page by page.
   */
  private zeroRunEnd(pos: number, size: number): number {
    let p = pos;
    while (p < size) {
      // [p, q): where the committed version reads as zero (q = -1: committed data at p).
      let q = -1;
      if (p >= this.baseVisible) q = size;
      else {
        const e = this.base[findExtent(this.base, p)];
        if (!e) q = this.baseVisible;
        else if (!e.hash) q = Math.min(e.off + e.len, this.baseVisible);
      }
      if (q > p) {
        const end = Math.min(q, size);
        // Data right at p (the common case in a commit of written bytes): one page lookup, no span scan.
        if (this.buf.hasData(p, Math.min(PAGE - (p % PAGE), end - p))) break;
        if (!this.buf.hasData(p, end - p)) {
          p = end;
          continue;
        }
        // The buffer holds data somewhere in [p, end): halve towards its first page, so a huge hole
        // with a little data beyond it costs a few hasData calls, not one per 64 KiB page.
        let hi = end;
        for (;;) {
          const mid = Math.floor((p + hi) / 2 / PAGE) * PAGE;
          if (mid <= p) break;
          if (this.buf.hasData(p, mid - p)) hi = mid;
          else p = mid;
        }
      }
      // A page at most, and never past the zero span (committed data may follow it within the page).
      const n = Math.min(PAGE - (p % PAGE), size - p, q > p ? q - p : Infinity);
      if (this.buf.hasData(p, n)) break;
      if (q < 0 && !this.loaded.has(Math.floor(p / PAGE))) break; // committed data not loaded yet
      p += n;
    }
    return p;
  }

  /**
   * Chunks, hashes and stores what changed since the last commit (the
   * `pendingSpan` bytes; old chunks before and after it are kept); returns
   * the new extent list (or null when nothing changed). Must run inside the
   * manifest's write transaction. Errors: EIO from the CAS.
   */
  commit(chunker: Chunker): CommitResult | null {
    // A synchronous commit supersedes an asynchronous one in flight: its range is committed here instead.
    if (this.job) this.abortAsync(this.job);
    if (!this.dirty) return null;
    const size = this.size;
    // Re-chunk [start, end) only: from the boundary of the base extent holding the first changed byte to
    // where the old chunks can be reused (an old boundary a cut lands on, `stops`), at the latest the old
    // boundary `end` (a forced cut, as at end of file) SYNC_RESYNC_SLACK past the last changed byte.
    const { i0, start, end, stops } = this.plan(SYNC_RESYNC_SLACK);
    const base = this.base; // after plan: it may split a hole extent
    const out: Extent[] = base.slice(0, i0);
    let pos = start;
    const max = chunker.params.max;
    const win = Buffer.allocUnsafe(Math.min(max, Math.max(0, end - pos)));
    let newChunks = 0;
    let newStoredBytes = 0;
    while (pos < end) {
      if (stops.has(pos)) break;
      const z = this.zeroRunEnd(pos, end);
      if (z - pos >= PAGE || (z === end && z > pos)) {
        pushExtent(out, { off: pos, len: z - pos, hash: null });
        pos = z;
        continue;
      }
      const n = Math.min(max, end - pos);
      this.read(win, 0, n, pos);
      const cut = chunker.cut(win, 0, n, pos + n === end);
      const chunk = win.subarray(0, cut);
      if (isZero(chunk)) {
        pushExtent(out, { off: pos, len: cut, hash: null });
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
    // The unchanged tail: base extents from the old boundary chunking stopped at.
    const r = stops.get(pos);
    if (r !== undefined && r < base.length) {
      pushExtent(out, base[r]!); // a hole split by `plan` rejoins its other half
      for (let i = r + 1; i < base.length; i++) out.push(base[i]);
    }
    this.base = out;
    this.baseVisible = size;
    if (hasHole(out, size)) this.sparse = true;
    this.dirtyLo = Infinity;
    this.dirtyHi = -1;
    return { extents: out, size, newChunks, newStoredBytes };
  }

  /**
   * Where the next commit starts and may end: `i0` = base extents kept in
   * front, `start` = first byte re-chunked, `end` = where chunking must end
   * (the size, or an old chunk boundary at least `slack` bytes past the last
   * changed byte), `stops` = old chunk boundaries in `[dirtyHi, end]` where
   * chunking may re-synchronise (offset → base extent index).
   */
  private plan(slack: number): { i0: number; start: number; end: number; stops: Map<number, number> } {
    const size = this.size;
    this.splitHoles(Math.min(this.dirtyLo, this.baseVisible), this.dirtyHi + slack);
    const base = this.base;
    const baseTotal = base.length ? base[base.length - 1].off + base[base.length - 1].len : 0;
    const startAt = Math.min(this.dirtyLo, this.baseVisible);
    let i0 = findExtent(base, startAt);
    if (i0 >= base.length) i0 = base.length;
    let start = i0 < base.length ? base[i0].off : Math.min(baseTotal, startAt);
    if (start > startAt) start = startAt;
    const stops = new Map<number, number>();
    let end = size;
    if (size === baseTotal && this.baseVisible === size) {
      const want = Math.min(size, this.dirtyHi + slack);
      for (let i = i0; i < base.length; i++) {
        const off = base[i].off;
        if (off < this.dirtyHi) continue;
        stops.set(off, i);
        if (off >= want) {
          end = off;
          break;
        }
      }
    }
    return { i0, start, end, stops };
  }

  /**
   * Splits a base hole extent that holds `lo` (or `hi`) more than a page
   * away from its edge at the 64 KiB page boundary just below `lo` (just
   * above `hi`): the file reads the same, and a change in the middle of a
   * huge hole (a sparse file truncated up, then written) re-chunks the pages
   * around it instead of the whole hole. Content-defined chunking loses
   * nothing by it: runs of zero pages are cut out as holes anyway.
   */
  private splitHoles(lo: number, hi: number): void {
    const split = (at: number) => {
      const i = findExtent(this.base, at);
      const e = this.base[i];
      if (!e || e.hash || at - e.off < PAGE || e.off + e.len - at < PAGE) return;
      this.base = [...this.base.slice(0, i), { off: e.off, len: at - e.off, hash: null }, { off: at, len: e.off + e.len - at, hash: null }, ...this.base.slice(i + 1)];
    };
    split(Math.floor(lo / PAGE) * PAGE);
    if (hi >= 0) split(Math.ceil(hi / PAGE) * PAGE);
  }

  /**
   * Bytes (0 when clean) that the next synchronous `commit` re-chunks at
   * most: from the start of the old chunk holding the first changed byte to
   * the first old chunk boundary at or after the last one (or to the end of
   * the file when it changed size). Lets a caller commit small changes
   * synchronously.
   */
  pendingSpan(): number {
    if (this.dirtyHi < 0) return 0;
    const p = this.plan(SYNC_RESYNC_SLACK);
    return p.end - p.start;
  }

  /**
   * Bytes (0 when clean) of data the next synchronous `commit` reads and
   * chunks, at most: `pendingSpan` less what is known to be hole there (the
   * buffer's pages that were never written or loaded, over holes or past the
   * committed end). A commit's holes cost a few lookups each, so this, not
   * the span, says how long a synchronous commit takes: a byte written into
   * a 64 TiB sparse file is little work in a huge span.
   */
  pendingWork(): number {
    if (this.dirtyHi < 0) return 0;
    const p = this.plan(SYNC_RESYNC_SLACK);
    const span = p.end - p.start;
    if (span <= 16 * PAGE) return span;
    let bytes = heldPagesIn(this.loaded, Math.floor(p.start / PAGE), Math.ceil(p.end / PAGE)).length * PAGE;
    for (const [a, b] of dataSpans(this.base, p.start, Math.min(p.end, this.baseVisible))) bytes += b - a;
    return Math.min(span, bytes);
  }

  /**
   * First step of an asynchronous commit (see `FsCore.flushAsync`): loads,
   * for at most about `budgetMs` ms, the committed pages the commit will
   * read ("more": call again, e.g. on the next event-loop turn; writes in
   * between are fine), then freezes the changed region: returns a
   * `FrozenCommit` whose bytes later writes and truncates no longer disturb
   * (pages not yet handed out are copied before they change), and this
   * buffer counts as clean from then on except for the commit in flight.
   * "clean" when nothing changed. At most one commit is in flight:
   * "busy" while one is.
   */
  freeze(budgetMs: number): FrozenCommit | "clean" | "more" | "busy" {
    if (this.job) return "busy";
    if (this.dirtyHi < 0) return "clean";
    const p = this.plan(RESYNC_SLACK);
    const t0 = performance.now();
    // Load the committed pages the region reads: those over data extents (holes read as zero from the
    // buffer as well), so a region that is mostly hole costs by its data, not its length.
    for (const [a, b] of dataSpans(this.base, p.start, Math.min(p.end, this.baseVisible))) {
      for (let pi = Math.floor(a / PAGE); pi * PAGE < b; pi++) {
        if (this.loaded.has(pi)) continue;
        if (performance.now() - t0 > budgetMs) return "more";
        this.loadPage(pi);
      }
    }
    const pageLo = Math.floor(p.start / PAGE);
    const pageHi = p.end > p.start ? Math.floor((p.end - 1) / PAGE) : pageLo - 1;
    const zero = new Uint8Array(Math.max(0, pageHi - pageLo + 1));
    for (let pi = pageLo; pi <= pageHi; pi++) {
      const lo = Math.max(pi * PAGE, p.start);
      const hi = Math.min((pi + 1) * PAGE, p.end);
      if (!this.buf.hasData(lo, hi - lo)) zero[pi - pageLo] = 1;
    }
    const job = new FrozenCommit(this.buf, {
      size: this.size, start: p.start, end: p.end, prefix: this.base.slice(0, p.i0), base: this.base, stops: p.stops,
      pageLo, zero, dirtyLo: this.dirtyLo, dirtyHi: this.dirtyHi,
    });
    this.job = job;
    this.dirtyLo = Infinity;
    this.dirtyHi = -1;
    return job;
  }

  /**
   * Last step of an asynchronous commit, after its extents (`extents`, the
   * whole file as it was at `freeze`) were stored: they become the base.
   * Ignored for a job that is no longer the one in flight.
   */
  finishAsync(job: FrozenCommit, extents: Extent[]): void {
    if (this.job !== job) return;
    this.job = null;
    this.base = extents;
    this.baseVisible = Math.min(job.size, job.minTrunc);
    if (hasHole(extents, job.size)) this.sparse = true;
    job.release();
    this.evictCommitted(job.start, Math.min(job.end, this.baseVisible));
  }

  /**
   * Once the buffer holds more than KEEP_LOADED_BYTES, frees its whole
   * pages in `[lo, hi)` that are committed and unchanged since (outside the
   * changed range): a later read or write loads them back from the store.
   * Writing a file larger than memory then needs no more than about that
   * much memory per file, and the freed pages are reused for the next
   * writes (a new page costs a page fault and zeroing, ~0.5 ms per MiB).
   */
  private evictCommitted(lo: number, hi: number): void {
    if (this.loaded.size * PAGE <= KEEP_LOADED_BYTES) return;
    const last = Math.floor(hi / PAGE); // exclusive: whole pages only
    for (let pi = Math.ceil(lo / PAGE); pi < last; pi++) {
      const a = pi * PAGE;
      if (a < this.dirtyHi && a + PAGE > this.dirtyLo) continue; // changed since the freeze
      if (!this.loaded.delete(pi)) continue;
      this.buf.punchHole(a, PAGE);
    }
  }

  /**
   * Abandons the asynchronous commit `job` (failed, or superseded by a
   * synchronous commit): its range counts as changed again, so the next
   * commit covers it. Marks the job `superseded`.
   */
  abortAsync(job: FrozenCommit): void {
    job.superseded = true;
    job.release();
    job.onAbort?.();
    if (this.job !== job) return;
    this.job = null;
    if (job.dirtyLo < this.dirtyLo) this.dirtyLo = job.dirtyLo;
    if (job.dirtyHi > this.dirtyHi) this.dirtyHi = job.dirtyHi;
  }

  /** Releases the working buffer (abandoning an asynchronous commit in flight). */
  dispose(): void {
    if (this.job) this.abortAsync(this.job);
    this.buf.dispose();
    this.loaded.clear();
  }
}

/** Bytes of pages an open file's buffer keeps before `finishAsync` frees committed, unchanged ones: 32 MiB. */
const KEEP_LOADED_BYTES = 32 << 20;

/** Bytes past the last changed byte that an asynchronous commit re-chunks at most before it ends on an old chunk boundary: 1 MiB. */
const RESYNC_SLACK = 1 << 20;

/**
 * As RESYNC_SLACK, for a synchronous commit: 0, so it ends at the first old
 * chunk boundary at or after the last changed byte. A small change in place
 * (a database page, a WAL frame) then re-chunks only the old chunks it
 * overlaps, and `pendingSpan` stays small enough for the asynchronous calls
 * to commit it at once instead of through the worker pool. (With 1 MiB, an
 * fsync of a 20 KiB sqlite3 WAL append planned ~1.1 MiB and went through
 * the worker: 2.5–4 ms instead of ~0.5 ms.)
 */
const SYNC_RESYNC_SLACK = 0;

/** What `OpenContent.freeze` captured: the region of the file an asynchronous commit re-chunks. */
export interface FrozenRegion {
  /** File size in bytes at the freeze. */
  size: number;
  /** First byte re-chunked (an old chunk boundary, or the old end of data). */
  start: number;
  /** Where chunking ends (the size, or an old chunk boundary). */
  end: number;
  /** Old extents kept in front of `start`. */
  prefix: Extent[];
  /** The whole old extent list (for the tail kept after a re-synchronisation). */
  base: Extent[];
  /** Old chunk boundaries where chunking may stop: offset → index into `base`. */
  stops: Map<number, number>;
  /** Index of the 64 KiB page holding `start`; `zero[pi - pageLo]` is 1 for pages known to be all zero. */
  pageLo: number;
  zero: Uint8Array;
  /** The changed byte range that was frozen (restored if the commit is abandoned). */
  dirtyLo: number;
  dirtyHi: number;
}

/**
 * An asynchronous commit in flight: the frozen bytes of one file's changed
 * region, handed out page by page (`take`) to a commit worker. Later writes
 * and truncates call `beforeModify` first, which copies pages not yet handed
 * out (page-level copy-on-write), so the commit sees exactly the bytes at
 * the freeze without copying the whole region up front.
 */
export class FrozenCommit implements FrozenRegion {
  size!: number;
  start!: number;
  end!: number;
  prefix!: Extent[];
  base!: Extent[];
  stops!: Map<number, number>;
  pageLo!: number;
  zero!: Uint8Array;
  dirtyLo!: number;
  dirtyHi!: number;
  /** Set when the commit was abandoned (superseded by a synchronous commit, disposed, or failed). */
  superseded = false;
  /** Called once when the commit is abandoned (lets a waiting pipeline notice at once). */
  onAbort: (() => void) | null = null;
  /** Smallest size the file was truncated to since the freeze (bytes; Infinity when none). */
  minTrunc = Infinity;
  /** Next page index not yet handed out. */
  private next: number;
  private readonly lastPage: number;
  private readonly saved = new Map<number, Uint8Array>();

  constructor(private buf: WorkingBuffer | null, r: FrozenRegion) {
    Object.assign(this, r);
    this.next = r.pageLo;
    this.lastPage = r.pageLo + r.zero.length - 1;
  }

  private isZero(pi: number): boolean {
    return this.zero[pi - this.pageLo] === 1;
  }

  /** Bytes `[lo, hi)` of the file are about to change: keeps a copy of the frozen pages among them not yet handed out. */
  beforeModify(lo: number, hi: number): void {
    if (!this.buf || hi <= lo) return;
    const first = Math.max(this.next, Math.floor(lo / PAGE));
    const last = Math.min(this.lastPage, Math.floor((hi - 1) / PAGE));
    for (let pi = first; pi <= last; pi++) {
      if (this.isZero(pi) || this.saved.has(pi)) continue;
      this.saved.set(pi, this.readPage(pi));
    }
  }

  private readPage(pi: number): Uint8Array {
    const lo = pi * PAGE;
    const hi = Math.min(lo + PAGE, this.end);
    const out = new Uint8Array(hi - lo);
    this.buf!.read(out, 0, hi - lo, lo);
    return out;
  }

  /** True when every page was handed out. */
  get drained(): boolean {
    return this.next > this.lastPage;
  }

  /** File offset of the next non-zero page `take` hands out (a page boundary), or null when all were (or the commit was abandoned). */
  nextData(): number | null {
    while (this.next <= this.lastPage && this.isZero(this.next)) this.next++;
    return this.next > this.lastPage || !this.buf ? null : this.next * PAGE;
  }

  /**
   * The next run of non-zero pages, at most `maxBytes` (at least one page):
   * bytes `[pos, pos + data.length)` in a fresh buffer the caller may
   * transfer (a view of `into` when given and large enough: a buffer to
   * fill again instead of fresh memory), and `through`: every non-zero page
   * below it has now been handed out. Null when all were.
   */
  take(maxBytes: number, into?: ArrayBuffer): { pos: number; data: Uint8Array; through: number } | null {
    if (this.nextData() === null) return null;
    let hi = this.next;
    while (hi + 1 <= this.lastPage && !this.isZero(hi + 1) && (hi + 2 - this.next) * PAGE <= maxBytes) hi++;
    const pos = this.next * PAGE;
    const endByte = Math.min((hi + 1) * PAGE, this.end);
    // Every byte is set below (a run read from the buffer, or a saved page), so no zero-fill first; an
    // ArrayBuffer of its own, as it is transferred to a worker.
    const data = into && into.byteLength >= endByte - pos ? Buffer.from(into, 0, endByte - pos) : Buffer.allocUnsafeSlow(endByte - pos);
    let runLo = -1;
    const flush = (upTo: number) => {
      if (runLo < 0) return;
      const a = runLo * PAGE;
      const b = Math.min(upTo * PAGE, this.end);
      const got = this.buf!.read(data, a - pos, b - a, a);
      // (Past the buffer's end, after a truncate since the freeze, the bytes read as zero.)
      if (got < b - a) data.fill(0, a - pos + Math.max(0, got), b - pos);
      runLo = -1;
    };
    for (let pi = this.next; pi <= hi; pi++) {
      const s = this.saved.get(pi);
      if (s) {
        flush(pi);
        data.set(s, pi * PAGE - pos);
        this.saved.delete(pi);
      } else if (runLo < 0) runLo = pi;
    }
    flush(hi + 1);
    this.next = hi + 1;
    while (this.next <= this.lastPage && this.isZero(this.next)) this.next++;
    const through = this.next > this.lastPage ? this.end : this.next * PAGE;
    return { pos, data, through };
  }

  /** Drops the copies and the buffer reference (after the commit ended either way). */
  release(): void {
    this.saved.clear();
    this.buf = null;
  }
}
