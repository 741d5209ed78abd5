/**
 * The content-addressed object store: immutable chunks named by the SHA-256
 * of their uncompressed bytes, listed in the manifest database's `objects`
 * table with their bytes in the row, or, for large bodies a commit worker
 * stored, in a pack file beside it (packs.ts; see the package README, "Where
 * chunk bodies live").
 * Chunks are gzip-compressed when that saves at least 1/16 of their size,
 * else stored raw. Every read is verified: against the CRC-32 of the
 * uncompressed bytes kept in `objects.crc` (as btrfs checks its blocks), or,
 * for rows from before that column, against the SHA-256 name itself. fsck
 * checks both.
 */
import { hash as oneShotHash } from "node:crypto";
import { crc32, gzipSync, gunzipSync, constants as zc } from "node:zlib";
import type Database from "better-sqlite3";
import { StoreError } from "./errors.js";
import { PackFiles, type PackLocation } from "./packs.js";

/** Object codec in `objects.codec`: bytes stored as they are. */
export const CODEC_RAW = 0;
/** Object codec in `objects.codec`: bytes stored gzip-compressed (node:zlib). */
export const CODEC_GZIP = 1;

/** SHA-256 of `data` (32 bytes). One-shot crypto.hash: no Hash object per chunk (about 1 µs less per call). */
export function sha256(data: Uint8Array): Buffer {
  return oneShotHash("sha256", data, "buffer");
}

/**
 * For chunks of 1 KiB or more: estimates the order-0 entropy of a sample of
 * up to 4 KiB from the middle and reports true above 7.5 bits per byte, so random
 * or already-compressed data skips the costly deflate (it would be stored raw
 * anyway). Text and code sit near 4–6 bits per byte. A misjudged chunk is only
 * stored raw; nothing is lost. Pure; exported for `encodeChunk`'s tests.
 */
export function looksIncompressible(data: Uint8Array): boolean {
  if (data.length < 1024) return false;
  const n = Math.min(4096, data.length);
  // A whole index: with an odd length the sample used to start at x.5, every read was undefined
  // (V8's slow path, ~100 ns each) and the estimate was 0 bits, so random data was deflated anyway.
  const from = (data.length - n) >> 1;
  const hist = new Uint32Array(256);
  for (let i = from; i < from + n; i++) hist[data[i]]++;
  let bits = 0;
  for (let b = 0; b < 256; b++) {
    const c = hist[b];
    if (c) bits -= c * Math.log2(c / n);
  }
  return bits / n > 7.5;
}

/** A chunk as the CAS stores it (`encodeChunk`). */
export interface EncodedChunk {
  /** CODEC_RAW or CODEC_GZIP. */
  codec: number;
  /** The stored bytes: the chunk itself (raw) or its gzip member. */
  body: Uint8Array;
  /** CRC-32 (zlib's polynomial, unsigned) of the uncompressed chunk: the check `ObjectStore.get` verifies reads with. */
  crc: number;
}

/**
 * CRC-32 of the chunk stored as `body` with `codec`, without decompressing:
 * a gzip member carries it in its trailer (bytes −8…−5, little-endian), which
 * inflate verifies against the data; raw bytes are summed (~0.2 ms/MiB).
 * Errors: EIO when a gzip body is too short to have a trailer.
 */
export function chunkCrc(codec: number, body: Uint8Array): number {
  if (codec !== CODEC_GZIP) return crc32(body);
  if (body.length < 18) throw new StoreError("EIO", `gzip object body of ${body.length} bytes has no trailer`);
  return Buffer.from(body.buffer, body.byteOffset, body.length).readUInt32LE(body.length - 8);
}

/**
 * How the CAS stores chunk `data` at gzip `level` (1 fastest … 9 smallest):
 * gzip-compressed (CODEC_GZIP) when that saves at least 1/16 of its size,
 * else raw (CODEC_RAW, `body` is `data` itself); with the CRC-32 of `data`.
 * Chunks under 64 bytes and ones that look incompressible (high byte
 * entropy) are not tried. Pure and thread-safe: commit workers call it off
 * the main thread.
 */
export function encodeChunk(data: Uint8Array, level: number): EncodedChunk {
  if (data.length >= GZIP_MIN && !looksIncompressible(data)) {
    const z = gzipSync(data, { level, strategy: zc.Z_DEFAULT_STRATEGY });
    if (z.length <= data.length - (data.length >> 4)) return { codec: CODEC_GZIP, body: z, crc: chunkCrc(CODEC_GZIP, z) };
  }
  return { codec: CODEC_RAW, body: data, crc: crc32(data) };
}

/** The column names of the `objects` table of `db` (stores made before `crc`, `pack` and `off` lack those). */
export function objectColumns(db: Database.Database): Set<string> {
  return new Set(db.prepare(`SELECT name FROM pragma_table_info('objects')`).pluck().all() as string[]);
}

/** An `objects` row as fsck and `ObjectStore.get` read it: `pack`/`off` are null unless the body lies in a pack. */
export interface ObjectRow {
  hash: Buffer;
  size: number;
  stored: number;
  codec: number;
  data: Buffer;
  crc: number | null;
  pack: number | null;
  off: number | null;
}

/** The columns of `ObjectRow` as a SELECT list for a table with `cols` (missing ones read as NULL). */
export function objectRowColumns(cols: Set<string>): string {
  const opt = (c: string) => (cols.has(c) ? c : `NULL AS ${c}`);
  return `hash, size, stored, codec, data, ${opt("crc")}, ${opt("pack")}, ${opt("off")}`;
}

/**
 * The chunk bytes of a stored `body` with `codec` (gunzip for CODEC_GZIP, which
 * checks the member's own CRC-32 and length). `key` names the object in
 * errors. Errors: EIO when a gzip body cannot be decompressed.
 */
export function decodeBody(key: string, codec: number, body: Buffer): Buffer {
  if (codec !== CODEC_GZIP) return body;
  try {
    return gunzipSync(body);
  } catch (e) {
    throw new StoreError("EIO", `object ${key} is corrupt: cannot decompress (${(e as Error).message})`);
  }
}

/** A small LRU of verified, decompressed chunks keyed by hex hash, bounded in bytes. */
class ChunkCache {
  private map = new Map<string, Buffer>();
  private bytes = 0;
  constructor(private readonly limit: number) {}
  get(key: string): Buffer | undefined {
    const v = this.map.get(key);
    if (v) {
      this.map.delete(key);
      this.map.set(key, v);
    }
    return v;
  }
  set(key: string, v: Buffer): void {
    if (v.length > this.limit / 4) return;
    const old = this.map.get(key);
    if (old) {
      // Same key, same bytes (content-addressed): refresh its place, count it once.
      this.map.delete(key);
      this.bytes -= old.length;
    }
    this.map.set(key, v);
    this.bytes += v.length;
    while (this.bytes > this.limit) {
      const [k, old] = this.map.entries().next().value as [string, Buffer];
      this.map.delete(k);
      this.bytes -= old.length;
    }
  }
  clear(): void {
    this.map.clear();
    this.bytes = 0;
  }
}

/**
 * Where CAS object bodies live when they are not kept in the manifest
 * database (the default keeps them in `objects.data`). With a backend, the
 * `objects` row still records hash, size, stored size and codec (its `data`
 * is an empty blob) and the backend holds the stored body — raw or gzip, as
 * the codec says. Used for RAM stores whose object bytes live in memfds.
 * Implementations need not be thread-safe; bodies are immutable once put.
 */
export interface ObjectBackend {
  /** Names the backend in errors and stats (e.g. "memfd"). */
  readonly kind: string;
  /** Stores `body` under `hash` (called once per new object, inside the manifest's write transaction). */
  put(hash: Buffer, body: Uint8Array): void;
  /** The body stored under `hash` (a copy the caller may keep), or undefined when absent. */
  get(hash: Buffer): Buffer | undefined;
  /** Frees the body of `hash`; a no-op when absent. */
  delete(hash: Buffer): void;
  /** Every hash the backend holds (used by gc to free bodies whose rows were rolled back). */
  keys(): Iterable<Buffer>;
}

const EMPTY = Buffer.alloc(0);

/** A copy of `data` in an ArrayBuffer of its own. */
function ownCopy(data: Uint8Array): Buffer {
  const b = Buffer.allocUnsafeSlow(data.length);
  b.set(data);
  return b;
}

/** Chunks under this size (bytes) are never compressed (`encodeChunk`). */
const GZIP_MIN = 64;

/**
 * Largest chunk (bytes) `put` stores raw and queues while compression is
 * deferred: 256 KiB, the most a synchronous commit re-chunks (larger
 * commits run in a worker, which compresses as it chunks).
 */
export const DEFER_MAX = 256 * 1024;

/** Most bytes of chunks queued for deferred compression: 64 MiB; past it `put` compresses at once again. */
const DEFER_QUEUE_BYTES = 64 << 20;

/** A chunk stored raw and queued for deferred compression: its hash and a copy of its bytes. */
export interface DeferredChunk {
  hash: Buffer;
  data: Buffer;
}

/** Chunks up to this size (bytes) that `put` stores are also kept in the verified-chunk cache: 16 KiB, the smallest chunk FastCDC cuts before a file's end. */
const CACHE_ON_WRITE_MAX = 16 * 1024;

/** Result of `ObjectStore.put`: whether the chunk was new, and bytes as stored. */
export interface PutResult {
  added: boolean;
  stored: number;
}

/** The CAS over the `objects` table of a manifest database. */
export class ObjectStore {
  private readonly stGet: Database.Statement;
  private readonly stHas: Database.Statement;
  private readonly stPut: Database.Statement;
  private readonly cache = new ChunkCache(32 * 1024 * 1024);
  /** Indices into `insert`'s value list of the columns `stPut` binds; null when the table has them all. */
  private readonly putIdx: number[] | null;
  private readonly withPack: boolean;
  private readonly uses = new Set<Set<string>>();
  private readonly stReplace: Database.Statement;
  private readonly stRanges: Database.Statement | null;
  private readonly stDel: Database.Statement;
  /** Chunks stored raw and awaiting compression, with copies of their bytes (`deferCompression`); null when not deferring. */
  private deferred: DeferredChunk[] | null = null;
  private deferredBytes = 0;
  private onDeferred: (() => void) | undefined;

  /**
   * `level` is the gzip level (1 fastest … 9 smallest). `backend`, when
   * given, holds the object bodies instead of the `objects.data` column.
   * `packs`: the store's pack files (packs.ts), which hold the bodies of
   * rows with a `pack`; null for a store in memory.
   */
  constructor(db: Database.Database, readonly level = 1, readonly backend?: ObjectBackend, readonly packs: PackFiles | null = null) {
    // A read-only look at a store from before `objects.crc`/`pack` (Manifest.open adds them when writable) lacks them.
    const cols = objectColumns(db);
    this.withPack = cols.has("pack") && cols.has("off");
    this.stGet = db.prepare(`SELECT ${objectRowColumns(cols)} FROM objects WHERE hash = ?`);
    this.stHas = db.prepare(`SELECT 1 FROM objects WHERE hash = ?`).pluck();
    // The columns this table has, bound positionally (`insert` picks their values from the full list).
    const all = ["hash", "size", "stored", "codec", "data", "crc", "pack", "off"];
    const put = all.filter((c, i) => i < 5 || cols.has(c));
    this.stPut = db.prepare(`INSERT OR IGNORE INTO objects(${put.join(", ")}) VALUES(${put.map(() => "?").join(", ")})`);
    this.putIdx = put.length === all.length ? null : put.map((c) => all.indexOf(c));
    this.stDel = db.prepare(`DELETE FROM objects WHERE hash = ? RETURNING ${this.withPack ? "pack, off" : "NULL AS pack, NULL AS off"}, stored`);
    this.stReplace = db.prepare(`UPDATE objects SET stored = ?, data = ?, codec = ${CODEC_GZIP} WHERE hash = ? AND codec = ${CODEC_RAW}${this.withPack ? " AND pack IS NULL" : ""}`);
    this.stRanges = this.withPack ? db.prepare(`SELECT pack, off, stored AS len FROM objects WHERE pack IS NOT NULL AND off IS NOT NULL`) : null;
  }

  /**
   * True when the object `hash` is stored. A found object is also recorded
   * in every set `trackUses` handed out: whoever asks is about to reference
   * it (deduplication), which `gcAsync` must see.
   */
  has(hash: Uint8Array): boolean {
    const found = this.stHas.get(hash) !== undefined;
    if (found && this.uses.size) this.used(hash);
    return found;
  }

  /**
   * Starts recording, into the returned set (hex hashes) until
   * `untrackUses`, every object a writer is about to reference: found by
   * `has` (so by `put`/`putEncoded` as well) or stored by `putEncoded`. An
   * object that was garbage when gc marked, or stored since and not yet
   * referenced, must then be spared.
   */
  trackUses(): Set<string> {
    const s = new Set<string>();
    this.uses.add(s);
    return s;
  }

  /** Stops recording into `s` (from `trackUses`). */
  untrackUses(s: Set<string>): void {
    this.uses.delete(s);
  }

  private used(hash: Uint8Array): void {
    const hex = Buffer.from(hash.buffer, hash.byteOffset, hash.byteLength).toString("hex");
    for (const s of this.uses) s.add(hex);
  }

  /**
   * Stores `data` under `hash` (its SHA-256, which the caller computed:
   * chunks up to 16 KiB are also cached as verified under it) unless
   * present. Must run inside the manifest's write transaction so the object
   * and the inode that references it commit together. While
   * `deferCompression` is on, a new chunk of at most `DEFER_MAX` bytes is
   * stored raw at once and queued (`takeDeferred`) instead of being
   * compressed here.
   */
  put(hash: Buffer, data: Uint8Array): PutResult {
    // Small chunks (whole small files, mostly) go into the cache of verified chunks as well: their bytes
    // are the ones just hashed, so a read soon after the write (a build reading what it wrote) need not
    // fetch, decompress and hash them again. Larger ones would only push read chunks out.
    // A copy with an ArrayBuffer of its own (not a slice of Buffer's shared pool): a deferred chunk is
    // sent to a worker, and cloning a pool slice would clone the whole 8 KiB pool with it.
    const copy = data.length <= CACHE_ON_WRITE_MAX ? ownCopy(data) : null;
    if (copy) this.cache.set(hash.toString("hex"), copy);
    if (this.has(hash)) return { added: false, stored: 0 };
    if (this.deferred && data.length >= GZIP_MIN && data.length <= DEFER_MAX && this.deferredBytes + data.length <= DEFER_QUEUE_BYTES) {
      this.insert(hash, data.length, CODEC_RAW, data, crc32(data));
      // (The caller's buffer is reused for the next chunk: the queue keeps a copy, shared with the cache.)
      this.deferred.push({ hash, data: copy ?? ownCopy(data) });
      this.deferredBytes += data.length;
      if (this.deferred.length === 1) this.onDeferred?.();
      return { added: true, stored: data.length };
    }
    const { codec, body, crc } = encodeChunk(data, this.level);
    this.insert(hash, data.length, codec, body, crc);
    return { added: true, stored: body.length };
  }

  /**
   * Stores an object already encoded by `encodeChunk` (e.g. in a commit
   * worker): `size` raw bytes whose SHA-256 is `hash` and CRC-32 `crc`, kept
   * as `body` with `codec` (CODEC_RAW or CODEC_GZIP), or, with `loc`, kept
   * in a pack at `loc` (`body` is then ignored; see `packTarget`). A no-op
   * returning `added: false` when the object is present. Must run inside
   * the manifest's write transaction. The caller vouches for hash, CRC and
   * encoding; reads verify the CRC anyway, fsck both (EIO).
   */
  putEncoded(hash: Buffer, size: number, codec: number, body: Uint8Array, crc: number, loc: PackLocation | null = null): PutResult {
    if (this.has(hash)) return { added: false, stored: 0 };
    this.insert(hash, size, codec, body, crc, loc);
    return { added: true, stored: loc ? loc.len : body.length };
  }

  /** Inserts the row (and backend body) of an object known to be absent; records it for `trackUses`. */
  private insert(hash: Buffer, size: number, codec: number, body: Uint8Array, crc: number, loc: PackLocation | null = null): void {
    if (loc && !this.withPack) throw new StoreError("EIO", "a packed object for a store without objects.pack");
    const data = this.backend || loc ? EMPTY : body;
    const stored = loc ? loc.len : body.length;
    const vals = [hash, size, stored, codec, data, crc, loc?.pack ?? null, loc?.off ?? null];
    this.stPut.run(this.putIdx ? this.putIdx.map((i) => vals[i]) : vals);
    if (!loc) this.backend?.put(hash, body);
    if (this.uses.size) this.used(hash);
  }

  /**
   * Where a commit worker may append new bodies (packs.ts): the pack folder
   * and whether appends need fdatasync(2) before their rows commit; null
   * when this store keeps every body in its rows (in memory, an object
   * backend, no hole punch to free pack ranges, or a store from before the
   * `pack` column opened read-only).
   */
  packTarget(): { dir: string; sync: boolean } | null {
    if (!this.packs?.writable || this.backend || !this.withPack) return null;
    return { dir: this.packs.dir, sync: this.packs.needsSync() };
  }

  /** Where every packed object's body lies (pack, offset, stored length in bytes), in no particular order; null for a store without `objects.pack`/`off` (read-only, from before packs). */
  packedRanges(): PackLocation[] | null {
    return this.stRanges ? (this.stRanges.all() as PackLocation[]) : null;
  }

  /**
   * Deletes the row of object `hash` (gc). Must run inside the manifest's
   * write transaction; returns whether a row was deleted and, for a packed
   * body, where it lies: the caller frees that range with `packs.punchFreed`
   * once the deletion has committed.
   */
  remove(hash: Buffer): { removed: boolean; loc: PackLocation | null } {
    const r = this.stDel.get(hash) as { pack: number | null; off: number | null; stored: number } | undefined;
    return { removed: r !== undefined, loc: r && r.pack !== null && r.off !== null ? { pack: r.pack, off: r.off, len: r.stored } : null };
  }

  /**
   * Turns deferred compression on or off (a long-running server: the FUSE
   * daemon). While on, `put` stores new chunks of at most `DEFER_MAX` bytes
   * raw and queues them with a copy of their bytes (up to 64 MiB queued),
   * and `onQueued` is called whenever the queue stops being empty: its
   * owner then takes them (`takeDeferred`), compresses them off the event
   * loop and swaps the bodies in (`replaceBody`). A store with an object
   * backend never defers. Turning it off returns what is still queued (the
   * caller compresses those itself or leaves them raw: a raw object is
   * valid, only larger).
   */
  deferCompression(on: boolean, onQueued?: () => void): DeferredChunk[] {
    const left = this.deferred ?? [];
    this.deferred = on && !this.backend ? [] : null;
    this.deferredBytes = 0;
    this.onDeferred = on ? onQueued : undefined;
    return left;
  }

  /** Chunks from the deferred-compression queue (oldest first, removed from it): at most `max` of them and `maxBytes` bytes, but at least one when any is queued. */
  takeDeferred(max: number, maxBytes: number): DeferredChunk[] {
    const q = this.deferred;
    if (!q) return [];
    let n = 0;
    let bytes = 0;
    while (n < q.length && n < max && (n === 0 || bytes + q[n]!.data.length <= maxBytes)) bytes += q[n++]!.data.length;
    this.deferredBytes -= bytes;
    return q.splice(0, n);
  }

  /**
   * Swaps the raw body of object `hash` for its gzip encoding `body` (from
   * `encodeChunk` of the chunk's own bytes, as queued: same chunk, so the
   * same CRC-32, which the row keeps). A no-op when the row is gone or no
   * longer raw. Must run inside the manifest's write transaction. Returns
   * whether the row changed.
   */
  replaceBody(hash: Buffer, body: Uint8Array): boolean {
    return this.stReplace.run(body.length, body, hash).changes > 0;
  }

  /**
   * Returns the verified bytes of object `hash`: checked against the CRC-32
   * in its row (a gzip body's trailer must carry the same value, and inflate
   * checks the data against it), or against `hash` itself (SHA-256) for a
   * row without one. Errors: EIO when the object is missing, cannot be
   * decompressed, or fails its check (the message names the object).
   */
  get(hash: Buffer): Buffer {
    const key = hash.toString("hex");
    return this.cache.get(key) ?? this.load(key, hash);
  }

  /** The row of object `hash` (`key` its hex name). Errors: EIO when there is none. */
  private row(key: string, hash: Buffer): ObjectRow {
    const row = this.stGet.get(hash) as ObjectRow | undefined;
    if (!row) throw new StoreError("EIO", `object ${key} is missing from the store`);
    return row;
  }

  /** Reads, decodes and verifies object `hash` (`key` its hex name; from `row` when given) and caches it. Errors: as `get`. */
  private load(key: string, hash: Buffer, row = this.row(key, hash)): Buffer {
    const body = this.bodyOf(row);
    const data = decodeBody(key, row.codec, body);
    if (data.length !== row.size) throw new StoreError("EIO", `object ${key} is corrupt: ${data.length} bytes where its row says ${row.size}`);
    if (row.crc === null) {
      if (!sha256(data).equals(hash)) throw new StoreError("EIO", `object ${key} failed its SHA-256 check: stored bytes are corrupt`);
    } else if (chunkCrc(row.codec, body) !== row.crc) {
      // (A gzip body's trailer CRC is the one inflate just checked the data against.)
      throw new StoreError("EIO", `object ${key} failed its CRC-32 check: stored bytes are corrupt`);
    }
    this.cache.set(key, data);
    return data;
  }

  /**
   * Copies the whole verified object `hash`, which must be `len` bytes,
   * into `dst[at, at + len)`. A raw body in a
   * pack that is not in the verified-chunk cache goes straight from the
   * pack into `dst`, as pread(2), checked against its CRC-32, and is not
   * cached: a large sequential read passes each chunk once, and an
   * intermediate buffer per chunk (fresh pages, a copy) cost about a third
   * of its time. Any other object is copied from `get`'s result. Errors: as
   * `get` (EIO; `dst` may then hold unverified bytes in that range); EIO
   * when the object is not `len` bytes (a damaged extent list; nothing
   * written); RangeError when `dst` is too short.
   */
  copyInto(hash: Buffer, len: number, dst: Uint8Array, at: number): void {
    const key = hash.toString("hex");
    if (at + len > dst.length) throw new RangeError(`${len} bytes do not fit at ${at} of ${dst.length}`);
    const hit = this.cache.get(key);
    const row = hit ? null : this.row(key, hash);
    const size = hit ? hit.length : row!.size;
    if (size !== len) throw new StoreError("EIO", `object ${key} is ${size} bytes where the file's extent says ${len}`);
    if (row && this.packs && row.pack !== null && row.off !== null && row.codec === CODEC_RAW && row.crc !== null && row.stored === row.size) {
      const out = this.packs.readInto(key, { pack: row.pack, off: row.off, len }, dst, at);
      if (crc32(out) !== row.crc) throw new StoreError("EIO", `object ${key} failed its CRC-32 check: stored bytes are corrupt`);
      return;
    }
    dst.set(hit ?? this.load(key, hash, row!), at);
  }

  /**
   * The stored body (raw or gzip, per the row's codec) of the object in
   * `row`: from its pack when it has one, from the backend when there is
   * one, else the row's `data` itself. Errors: EIO when the pack or the
   * backend lacks it (the message names the object).
   */
  bodyOf(row: ObjectRow): Buffer {
    const key = row.hash.toString("hex");
    if (row.pack !== null && row.off !== null) {
      if (!this.packs) throw new StoreError("EIO", `object ${key} lies in a pack, and this store has no pack folder`);
      return this.packs.read(key, { pack: row.pack, off: row.off, len: row.stored });
    }
    if (!this.backend) return row.data;
    const body = this.backend.get(row.hash);
    if (!body) throw new StoreError("EIO", `object ${key} is missing from the ${this.backend.kind} object backend`);
    return body;
  }

  /**
   * After gc committed the deletion of rows: frees the backend bodies of
   * `hashes`, then of any hash the backend holds without a row (left by a
   * rolled-back transaction). Returns bodies freed. A no-op without backend.
   */
  releaseBodies(hashes: Iterable<Buffer>): number {
    if (!this.backend) return 0;
    let n = 0;
    for (const h of hashes) {
      this.backend.delete(h);
      n++;
    }
    for (const h of [...this.backend.keys()]) {
      if (!this.has(h)) {
        this.backend.delete(h);
        n++;
      }
    }
    return n;
  }

  /** Drops cached chunks (after gc or when another process may have changed objects). */
  clearCache(): void {
    this.cache.clear();
  }
}
