/**
 * Commit worker (a `worker_threads` entry point, started by `CommitPool`):
 * the CPU-heavy half of committing a file's changed region — content-defined
 * chunking, SHA-256, the gzip-or-raw decision — off the main thread. It never
 * touches the manifest: the main thread streams the frozen bytes of the
 * region in (`WorkerIn`), the worker streams encoded chunks back
 * (`WorkerOut`) and the main thread stores them in short transactions.
 *
 * Several jobs may be interleaved (keyed by `id`); each is processed in file
 * order, as far as the bytes received so far allow.
 */
import { parentPort } from "node:worker_threads";
import { createRequire } from "node:module";
import { readlinkSync } from "node:fs";
import { setPriority } from "node:os";
import { CODEC_RAW, sha256, encodeChunk } from "./cas.js";
import { CONTENT_PAGE, unreferencedObjects } from "./content.js";
import { Chunker, type ChunkParams } from "./chunker.js";
import { PACK_MIN, PackWriter, type PackLocation } from "./packs.js";

/** Granularity (bytes) of the zero-page map and of the data the main thread sends: 64 KiB, as `OpenContent`. */
export const COMMIT_PAGE = CONTENT_PAGE;

/**
 * Messages to a commit worker.
 * - `start`: a job over file bytes `[start, end)`; `end` ends the last chunk
 *   (as end of file). `stops` are offsets where chunking may stop early
 *   because the old chunk list re-synchronises there. `zero[pi - pageLo]` is
 *   1 for each 64 KiB page (absolute index `pi`) known to be all zero, whose
 *   bytes are never sent. `level` is the gzip level. `pack`: where to append
 *   bodies of at least PACK_MIN bytes (packs.ts), and whether to fdatasync(2)
 *   them before reporting them; null: every body is sent back.
 * - `data`: bytes `[pos, pos + data.length)` (whole pages, the last one
 *   clipped to `end`); every non-zero page below `through` has been sent.
 * - `have`: the answer to the worker's `ask` number `seq`: `present[i]` is 1
 *   when the store already holds the i-th hash asked (it is not compressed
 *   nor sent back then).
 * - `cancel`: forget job `id` (later messages for it are ignored).
 * - `checkpoint`: run a PASSIVE WAL checkpoint of the SQLite database
 *   `file` on a connection of its own (opened and closed here), answered by
 *   `checkpointed`.
 * - `gcmark`: the mark phase of `gcAsync` on a read-only connection of its
 *   own to `file`, in one read transaction: answered by `gcmarked`.
 * - `encode`: `encodeChunk` of each of `chunks` at gzip `level` (deferred
 *   compression), answered by `encoded`.
 */
export type WorkerIn =
  | { t: "start"; id: number; start: number; end: number; stops: number[]; zero: Uint8Array; pageLo: number; params: ChunkParams; level: number; pack: { dir: string; sync: boolean } | null }
  | { t: "data"; id: number; pos: number; data: Uint8Array; through: number }
  | { t: "have"; id: number; seq: number; present: Uint8Array }
  | { t: "cancel"; id: number }
  | { t: "checkpoint"; id: number; file: string }
  | { t: "gcmark"; id: number; file: string }
  | { t: "encode"; id: number; chunks: Uint8Array[]; level: number };

/**
 * Messages from a commit worker. `ask`: which of these chunk hashes (32
 * bytes each, packed) does the store hold already? (answered by `have`, so
 * that chunks already stored are not compressed again). `chunks`: the next
 * extents in file order — per item `offs[i]`/`lens[i]` (bytes), `codecs[i]`
 * (-1 for a hole, -2 for a chunk the store holds, else the CAS codec of the
 * body), for non-hole items in order their 32-byte hashes packed in
 * `hashes`, and for encoded items in order their stored bodies in
 * `bodies` and the CRC-32s of their chunks in `crcs`, and where the worker put
 * the body in a pack (`packs[b]` the pack id, 0 when the body is in
 * `bodies`; then `poffs[b]` its offset and `plens[b]` its length in bytes;
 * `bodies[b]` is empty); `consumed` is the file offset up to which input is no longer
 * needed. `done` also says where chunking ended (`stoppedAt`: `end`, or an
 * offset from `stops`). `spare`: ArrayBuffers of `data` messages this job no longer reads, handed back
 * for the main thread to fill again (no fresh memory, page faults or garbage
 * per MiB sent). `error`: the job failed. `checkpointed`: the
 * checkpoint asked for is done (`error`: why it failed, else null).
 * `encoded`: per chunk of an `encode`, its codec and its gzip body (empty
 * when the chunk stays raw).
 */
export type WorkerOut =
  | { t: "ask"; id: number; seq: number; hashes: Uint8Array }
  | { t: "chunks"; id: number; offs: number[]; lens: number[]; codecs: number[]; hashes: Uint8Array; bodies: Uint8Array[]; crcs: number[]; packs: number[]; poffs: number[]; plens: number[]; consumed: number; done: boolean; stoppedAt: number; spare: ArrayBuffer[] }
  | { t: "error"; id: number; message: string }
  | { t: "checkpointed"; id: number; error: string | null }
  | { t: "gcmarked"; id: number; error: string | null; mark: GcMark | null }
  | { t: "encoded"; id: number; codecs: number[]; bodies: Uint8Array[] };

/**
 * What the mark phase of gc found in one consistent state of a store: the
 * objects no inode version references (`hashes`: 32 bytes each, packed;
 * `stored[i]`: the stored bytes of the i-th), out of `examined` objects.
 */
export interface GcMark {
  hashes: Uint8Array;
  stored: number[];
  examined: number;
}

/** A chunk cut and hashed, waiting for the main thread to say whether the store holds it. */
interface Cut {
  off: number;
  len: number;
  /** Null for a hole. */
  hash: Buffer | null;
  bytes: Uint8Array | null;
}

interface Job {
  id: number;
  pos: number;
  end: number;
  stops: Set<number>;
  zero: Uint8Array;
  pageLo: number;
  chunker: Chunker;
  level: number;
  /** Where bodies go (null: sent back), and whether to fdatasync them before they are reported. */
  pack: { w: PackWriter; sync: boolean } | null;
  avail: number;
  pages: Map<number, Uint8Array>;
  win: Buffer;
  /** Pages below this index were dropped from `pages` (the chunking passed them). */
  lowPage: number;
  /** Cuts not yet asked about, in file order. */
  cuts: Cut[];
  /** Asks not yet answered: seq → cuts (file order; answers arrive in order). */
  asks: Map<number, Cut[]>;
  nextSeq: number;
  /** Set when chunking reached its end: `stoppedAt`. */
  finishedAt: number;
  /** ArrayBuffers of received `data` messages, in file order, with the file offset each one's bytes end at. */
  inputs: { end: number; buf: ArrayBuffer }[];
}

const jobs = new Map<number, Job>();
const EMPTY = new Uint8Array(0);

/** This worker's pack writer per pack folder (one pack file open per store at a time). */
const writers = new Map<string, PackWriter>();

function writerFor(dir: string): PackWriter {
  let w = writers.get(dir);
  // A store removed and made again at the same path while this worker lived: its pack is not ours any more.
  if (w && !w.stillThere()) {
    try {
      w.close();
    } catch {
      /* already gone */
    }
    w = undefined;
  }
  if (!w) writers.set(dir, (w = new PackWriter(dir)));
  return w;
}

/** A writer with no append for this long (ms) closes its pack; the next append starts a new one. */
const WRITER_IDLE_MS = 5000;

/**
 * Closes packs idle for WRITER_IDLE_MS (and forgets their writers), so that
 * a store closed and removed while this worker lives keeps no descriptor
 * (and no disk space) behind. Never keeps the thread alive.
 */
const closeIdleWriters = setInterval(() => {
  const now = performance.now();
  for (const [dir, w] of writers) {
    if (now - w.lastAppend < WRITER_IDLE_MS || [...jobs.values()].some((j) => j.pack?.w === w)) continue;
    try {
      w.close();
    } catch {
      /* already gone */
    }
    writers.delete(dir);
  }
}, WRITER_IDLE_MS);
closeIdleWriters.unref();

/**
 * Appends `body` to job `j`'s pack; null when that fails (ENOSPC, EACCES…):
 * the body is then sent back and stored in its row, and this job packs no
 * more.
 */
function toPack(j: Job, body: Uint8Array): PackLocation | null {
  try {
    return j.pack!.w.append(body);
  } catch {
    j.pack = null;
    return null;
  }
}
const ZERO = Buffer.alloc(COMMIT_PAGE);

function isZeroPage(j: Job, pi: number): boolean {
  const k = pi - j.pageLo;
  return k >= 0 && k < j.zero.length && j.zero[k] === 1;
}

/** End of the run of known-zero pages from `pos` (`pos` itself when the page holds data). */
function zeroRunEnd(j: Job, pos: number): number {
  let p = pos;
  while (p < j.end) {
    const n = Math.min(COMMIT_PAGE - (p % COMMIT_PAGE), j.end - p);
    if (!isZeroPage(j, Math.floor(p / COMMIT_PAGE))) break;
    p += n;
  }
  return p;
}

/**
 * File bytes `[pos, pos + n)` as a view of the one `data` message that
 * holds them all, or null when they span messages or known-zero pages.
 */
function received(j: Job, pos: number, n: number): Uint8Array | null {
  const p0 = Math.floor(pos / COMMIT_PAGE);
  const p1 = Math.floor((pos + n - 1) / COMMIT_PAGE);
  const a = j.pages.get(p0);
  const b = j.pages.get(p1);
  if (!a || !b || a.buffer !== b.buffer || b.byteOffset - a.byteOffset !== (p1 - p0) * COMMIT_PAGE) return null;
  if (pos + n - p1 * COMMIT_PAGE > b.length) return null;
  // A Buffer like `win`, so the chunker's loop sees one kind of array (a second kind made it polymorphic).
  return Buffer.from(a.buffer, a.byteOffset + (pos - p0 * COMMIT_PAGE), n);
}

/** Drops the received pages that chunking has passed: walks the indices or the map, whichever is fewer (holes are skipped in one step). */
function dropPassed(j: Job): void {
  const below = Math.floor(j.pos / COMMIT_PAGE);
  if (below - j.lowPage > j.pages.size) {
    for (const pi of j.pages.keys()) if (pi < below) j.pages.delete(pi);
  } else for (let pi = j.lowPage; pi < below; pi++) j.pages.delete(pi);
  if (below > j.lowPage) j.lowPage = below;
}

/** Copies file bytes `[pos, pos + n)` into `j.win`. */
function fill(j: Job, pos: number, n: number): void {
  let p = pos;
  while (p < pos + n) {
    const pi = Math.floor(p / COMMIT_PAGE);
    const po = p - pi * COMMIT_PAGE;
    const k = Math.min(COMMIT_PAGE - po, pos + n - p);
    const page = isZeroPage(j, pi) ? undefined : j.pages.get(pi);
    if (page) {
      const have = Math.max(0, Math.min(k, page.length - po));
      if (have > 0) j.win.set(page.subarray(po, po + have), p - pos);
      if (have < k) j.win.fill(0, p - pos + have, p - pos + k);
    } else {
      if (!isZeroPage(j, pi)) throw new Error(`commit worker: page ${pi} of job ${j.id} was never sent`);
      j.win.fill(0, p - pos, p - pos + k);
    }
    p += k;
  }
}

/** `b` when it is the whole of its ArrayBuffer, else a copy that is (a transfer moves whole ArrayBuffers). */
function owned(b: Uint8Array): Uint8Array {
  return b.byteOffset === 0 && b.byteLength === b.buffer.byteLength ? b : new Uint8Array(b);
}

function isZero(b: Uint8Array): boolean {
  for (let p = 0; p < b.length; p += ZERO.length) {
    const n = Math.min(ZERO.length, b.length - p);
    if (!Buffer.from(b.buffer, b.byteOffset + p, n).equals(ZERO.subarray(0, n))) return false;
  }
  return true;
}

/**
 * Takes the received ArrayBuffers job `j` no longer reads: every cut ending
 * at or below `doneEnd` was answered, and chunking dropped their pages
 * (`dropPassed`); all of them once the job is `done`. A buffer that left
 * otherwise (transferred as a body: detached) is skipped.
 */
function spareInputs(j: Job, doneEnd: number, done: boolean): ArrayBuffer[] {
  const out: ArrayBuffer[] = [];
  while (j.inputs.length && (done || (j.inputs[0]!.end <= doneEnd && Math.ceil(j.inputs[0]!.end / COMMIT_PAGE) <= j.lowPage))) {
    const b = j.inputs.shift()!.buf;
    if (b.byteLength > 0) out.push(b);
  }
  return out;
}

/** Sends the pending cuts as one `ask` (holes need no answer but keep their place). */
function ask(j: Job): void {
  if (j.cuts.length === 0) return;
  const cuts = j.cuts;
  j.cuts = [];
  const withHash = cuts.filter((c) => c.hash);
  const packed = new Uint8Array(withHash.length * 32);
  withHash.forEach((c, i) => packed.set(c.hash!, i * 32));
  const seq = j.nextSeq++;
  j.asks.set(seq, cuts);
  const msg: WorkerOut = { t: "ask", id: j.id, seq, hashes: packed };
  parentPort!.postMessage(msg, [packed.buffer]);
}

/** Encodes the chunks of answered ask `seq` that the store lacks and posts them; posts `done` after the last answer. */
function answer(j: Job, seq: number, present: Uint8Array): void {
  const cuts = j.asks.get(seq);
  if (!cuts) return;
  j.asks.delete(seq);
  const offs: number[] = [];
  const lens: number[] = [];
  const codecs: number[] = [];
  const hashes: Buffer[] = [];
  const bodies: Uint8Array[] = [];
  const crcs: number[] = [];
  const packs: number[] = [];
  const poffs: number[] = [];
  const plens: number[] = [];
  // (Kept here: a failed append clears j.pack, and what was appended before it must still be synced.)
  const pack = j.pack;
  let k = 0;
  for (const c of cuts) {
    offs.push(c.off);
    lens.push(c.len);
    if (!c.hash) {
      codecs.push(-1);
      continue;
    }
    hashes.push(c.hash);
    if (present[k++] === 1) {
      codecs.push(-2);
      continue;
    }
    const enc = encodeChunk(c.bytes!, j.level);
    codecs.push(enc.codec);
    crcs.push(enc.crc);
    const loc = j.pack && enc.body.length >= PACK_MIN ? toPack(j, enc.body) : null;
    if (loc) {
      bodies.push(EMPTY);
      packs.push(loc.pack);
      poffs.push(loc.off);
      plens.push(loc.len);
      continue;
    }
    bodies.push(owned(enc.body)); // transferred, not cloned
    packs.push(0);
    poffs.push(0);
    plens.push(0);
  }
  // Durable before the rows that point at them can be (the main thread commits them next).
  if (pack?.sync && packs.some((p) => p !== 0)) pack.w.sync();
  const done = j.finishedAt >= 0 && j.asks.size === 0 && j.cuts.length === 0;
  const packed = new Uint8Array(hashes.length * 32);
  hashes.forEach((h, i) => packed.set(h, i * 32));
  const moved = bodies.filter((b) => b !== EMPTY).map((b) => b.buffer as ArrayBuffer);
  const last = cuts[cuts.length - 1];
  const spare = spareInputs(j, last ? last.off + last.len : -1, done).filter((b) => !moved.includes(b));
  const msg: WorkerOut = { t: "chunks", id: j.id, offs, lens, codecs, hashes: packed, bodies, crcs, packs, poffs, plens, consumed: j.pos, done, stoppedAt: done ? j.finishedAt : -1, spare };
  parentPort!.postMessage(msg, [packed.buffer, ...moved, ...spare]);
  if (done) jobs.delete(j.id);
}

/** Chunks and hashes as far as the received bytes allow, asking about every 64 chunks (and whenever it must wait). */
function advance(j: Job): void {
  const max = j.chunker.params.max;
  while (j.pos < j.end && j.finishedAt < 0) {
    if (j.stops.has(j.pos)) {
      j.finishedAt = j.pos;
      break;
    }
    const z = zeroRunEnd(j, j.pos);
    if (z - j.pos >= COMMIT_PAGE || (z === j.end && z > j.pos)) {
      j.cuts.push({ off: j.pos, len: z - j.pos, hash: null, bytes: null });
      j.pos = z;
      continue;
    }
    const n = Math.min(max, j.end - j.pos);
    if (j.pos + n > j.avail) break; // wait for more bytes
    // Cut on the received bytes themselves when they hold the whole window (mostly), else on a copy.
    const direct = received(j, j.pos, n);
    if (!direct) fill(j, j.pos, n);
    const win = direct ?? j.win;
    const cut = j.chunker.cut(win, 0, n, j.pos + n === j.end);
    const chunk = win.subarray(0, cut);
    if (isZero(chunk)) j.cuts.push({ off: j.pos, len: cut, hash: null, bytes: null });
    else j.cuts.push({ off: j.pos, len: cut, hash: sha256(chunk), bytes: direct ? chunk : new Uint8Array(chunk) });
    j.pos += cut;
    dropPassed(j);
    if (j.cuts.length >= 64) ask(j);
  }
  if (j.pos >= j.end && j.finishedAt < 0) j.finishedAt = j.end;
  if (j.cuts.length) ask(j);
  else if (j.finishedAt >= 0 && j.asks.size === 0) {
    // nothing left to ask or answer (e.g. stopped right at the start): say so
    const spare = spareInputs(j, j.pos, true);
    const msg: WorkerOut = { t: "chunks", id: j.id, offs: [], lens: [], codecs: [], hashes: new Uint8Array(0), bodies: [], crcs: [], packs: [], poffs: [], plens: [], consumed: j.pos, done: true, stoppedAt: j.finishedAt, spare };
    parentPort!.postMessage(msg, spare);
    jobs.delete(j.id);
  }
}

/** A PASSIVE checkpoint of `file` on a fresh connection (never waits for locks; copies what readers allow). */
function checkpoint(file: string): void {
  const Database = createRequire(import.meta.url)("better-sqlite3") as typeof import("better-sqlite3");
  const db = new Database(file, { fileMustExist: true });
  try {
    db.pragma("wal_checkpoint(PASSIVE)");
  } finally {
    db.close();
  }
}

/**
 * The mark phase of gc over `file`, on a read-only connection of its own and
 * in one read transaction (one consistent state): every object that no
 * inode version of any layer references.
 */
function gcMark(file: string): GcMark {
  const Database = createRequire(import.meta.url)("better-sqlite3") as typeof import("better-sqlite3");
  const db = new Database(file, { readonly: true, fileMustExist: true });
  try {
    db.pragma("busy_timeout = 15000");
    return db.transaction((): GcMark => {
      const { objects, examined } = unreferencedObjects(db);
      return { hashes: new Uint8Array(Buffer.concat(objects.map((o) => o.hash))), stored: objects.map((o) => o.stored), examined };
    })();
  } finally {
    db.close();
  }
}

/** Runs `fn` and posts its result, or its error's message, as `reply` builds them. */
function reply1<T>(fn: () => T, reply: (error: string | null, result: T | null) => WorkerOut, transfer: (r: T) => ArrayBuffer[] = () => []): void {
  let out: WorkerOut;
  let moved: ArrayBuffer[] = [];
  try {
    const r = fn();
    out = reply(null, r);
    moved = transfer(r);
  } catch (e) {
    out = reply(e instanceof Error ? e.message : String(e), null);
  }
  parentPort!.postMessage(out, moved);
}

function handle(m: WorkerIn): void {
  if (m.t === "checkpoint") {
    reply1(() => checkpoint(m.file), (error) => ({ t: "checkpointed", id: m.id, error }));
    return;
  }
  if (m.t === "gcmark") {
    reply1(() => gcMark(m.file), (error, mark) => ({ t: "gcmarked", id: m.id, error, mark }), (r) => [r.hashes.buffer as ArrayBuffer]);
    return;
  }
  if (m.t === "encode") {
    const codecs: number[] = [];
    const bodies: Uint8Array[] = [];
    for (const c of m.chunks) {
      const enc = encodeChunk(c, m.level);
      codecs.push(enc.codec);
      // A chunk that stays raw is not sent back (the caller has it; chunks may share one ArrayBuffer,
      // which a transfer list must not name twice); a gzip body gets an ArrayBuffer of its own.
      bodies.push(enc.codec === CODEC_RAW ? new Uint8Array(0) : owned(enc.body));
    }
    const out: WorkerOut = { t: "encoded", id: m.id, codecs, bodies };
    parentPort!.postMessage(out, bodies.map((b) => b.buffer as ArrayBuffer));
    return;
  }
  if (m.t === "start") {
    const chunker = new Chunker(m.params);
    const j: Job = {
      id: m.id, pos: m.start, end: m.end, stops: new Set(m.stops), zero: m.zero, pageLo: m.pageLo, chunker, level: m.level,
      pack: m.pack ? { w: writerFor(m.pack.dir), sync: m.pack.sync } : null,
      avail: m.start, pages: new Map(), lowPage: Math.floor(m.start / COMMIT_PAGE), win: Buffer.allocUnsafe(m.params.max), cuts: [], asks: new Map(), nextSeq: 0, finishedAt: -1, inputs: [],
    };
    jobs.set(m.id, j);
    return;
  }
  if (m.t === "cancel") {
    jobs.delete(m.id);
    return;
  }
  const j = jobs.get(m.id);
  if (!j) return;
  if (m.t === "have") {
    answer(j, m.seq, m.present);
    return;
  }
  const d = m.data;
  if (d.length > 0) j.inputs.push({ end: m.pos + d.length, buf: d.buffer as ArrayBuffer });
  for (let off = 0; off < d.length; off += COMMIT_PAGE) {
    const pi = Math.floor((m.pos + off) / COMMIT_PAGE);
    j.pages.set(pi, d.subarray(off, Math.min(d.length, off + COMMIT_PAGE)));
  }
  if (m.through > j.avail) j.avail = m.through;
  advance(j);
}

/**
 * Lowers this thread's scheduling priority (nice 10; Linux applies
 * setpriority to a thread id), so that on a machine with few cores the
 * event-loop thread, which answers requests, wins the CPU over the bulk
 * work. Silently does nothing where unsupported.
 */
function lowerPriority(): void {
  try {
    const tid = Number(readlinkSync("/proc/thread-self").split("/").pop());
    if (Number.isInteger(tid) && tid > 0 && tid !== process.pid) setPriority(tid, 10);
  } catch {
    /* not Linux, or not allowed: keep the default priority */
  }
}

if (parentPort) {
  lowerPriority();
  parentPort.on("message", (m: WorkerIn) => {
    try {
      handle(m);
    } catch (e) {
      jobs.delete(m.id);
      const out: WorkerOut = { t: "error", id: m.id, message: e instanceof Error ? e.message : String(e) };
      parentPort!.postMessage(out);
    }
  });
}
