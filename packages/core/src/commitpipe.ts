/**
 * The off-loop commit path. `OpenContent.freeze` captures a file's changed
 * region cheaply (page-level copy-on-write); `commitFrozen` streams its pages
 * to a `CommitPool` worker, which chunks (FastCDC), hashes (SHA-256) and
 * decides gzip-or-raw, and stores the encoded chunks it sends back in short
 * SQLite transactions, yielding to the event loop between slices so that no
 * single step holds the loop for more than a few milliseconds. The caller
 * (`FsCore.flushAsync` and friends) then writes the inode in one small
 * transaction. `Manifest.syncFiles` makes committed transactions durable with
 * fsync(2) on the libuv thread pool instead of `synchronous=FULL` on the loop.
 */
import { Worker } from "node:worker_threads";
import { existsSync, statSync } from "node:fs";
import { availableParallelism } from "node:os";
import { fileURLToPath } from "node:url";
import { CONTENT_PAGE, pushExtent, type Extent, type FrozenCommit } from "./content.js";
import type { ChunkParams } from "./chunker.js";
import type { ObjectStore } from "./cas.js";
import type { PackLocation } from "./packs.js";
import type { Manifest } from "./manifest.js";
import { StoreError } from "./errors.js";
import { FreeList } from "./freelist.js";
import type { GcMark, WorkerIn, WorkerOut } from "./commitworker.js";

/** Longest slice (ms) of main-thread work an asynchronous commit does before yielding to the event loop. */
export const COMMIT_SLICE_MS = 3;
/** Bytes of frozen data sent to a worker and not yet consumed by it, at most (bounds memory): 16 MiB. */
const WINDOW = 16 << 20;
/** Bytes per data message to a worker: 1 MiB. */
const PIECE = 1 << 20;

/** Most spare data buffers kept (48 MiB). */
const SPARE_PIECES = 48;
/** `spares` is emptied after this long (ms) without one taken, so an idle process gives the memory back. */
const SPARES_IDLE_MS = 5000;
/**
 * 1 MiB ArrayBuffers the workers handed back (`spare`), filled again by the
 * next data messages: sending a large file then costs no fresh memory (page
 * faults, external-memory GC pressure) per MiB. At most SPARE_PIECES kept,
 * and none once idle for SPARES_IDLE_MS.
 */
const spares = new FreeList<ArrayBuffer>(SPARE_PIECES, SPARES_IDLE_MS);

/** Resolves on the next turn of the event loop (after pending I/O callbacks). */
export function nextTurn(): Promise<void> {
  return new Promise((r) => setImmediate(r));
}

function workerUrl(): URL {
  const here = new URL("./commitworker.js", import.meta.url);
  if (existsSync(fileURLToPath(here))) return here;
  // Running from TypeScript sources (tests): use the built worker.
  return new URL("../dist/commitworker.js", import.meta.url);
}

/**
 * The node options a commit worker is started with: the parent's
 * (`process.execArgv`) without those that belong to the main script alone
 * (`--input-type`, `-e`/`--eval`, `-p`/`--print` and the code after them).
 * Inherited as they are, `--input-type` makes the worker fail at start
 * ("--input-type can only be used with string input"), and every commit of
 * a program run with `node --input-type=module -e` ran on its loop.
 */
export function workerExecArgv(argv: readonly string[] = process.execArgv): string[] {
  const out: string[] = [];
  for (let i = 0; i < argv.length; i++) {
    const a = argv[i]!;
    if (a === "-e" || a === "--eval" || a === "-p" || a === "--print") i++;
    else if (!a.startsWith("--input-type") && !a.startsWith("--eval=") && !a.startsWith("--print=")) out.push(a);
  }
  return out;
}

type Listener = (m: WorkerOut) => void;

/** Why a one-shot worker request failed: the reply's error, or the worker's. */
function failure(m: WorkerOut): string {
  if (m.t === "error") return m.message;
  return "error" in m && m.error !== null ? m.error : `unexpected reply ${m.t}`;
}

/**
 * A commit worker failed or could not start (code EIO). Nothing was written
 * for the inode; the caller may commit synchronously instead.
 */
export class CommitWorkerError extends StoreError {
  constructor(detail: string) {
    super("EIO", `commit worker failed: ${detail}`);
  }
}

/**
 * A small pool of commit workers (`worker_threads`), shared by every store of
 * the process. Workers are started on first use and `unref`'d while they
 * have no job, so an idle pool never keeps the process alive (and one with a
 * job in flight does). Jobs go to the worker with the fewest
 * jobs; one worker interleaves its jobs message by message.
 */
export class CommitPool {
  private static sharedPool: CommitPool | null = null;
  private readonly workers: { w: Worker; jobs: number }[] = [];
  private readonly listeners = new Map<number, Listener>();
  private nextId = 1;

  /**
   * `size`: number of workers (default: cores − 1, at least 2, at most 4:
   * on two cores the event loop mostly waits while a large file commits,
   * so a second worker uses that core; workers run at lowered priority).
   */
  constructor(readonly size = Math.max(2, Math.min(4, availableParallelism() - 1))) {}

  /**
   * Starts every worker now instead of at the first job, for a process
   * about to serve writes (a mount daemon): starting two workers costs
   * ~40-55 ms and ~75-100 ms of CPU, which the first large commit would
   * otherwise pay while it is being waited for. Idempotent; idle workers
   * never keep the process alive.
   */
  prestart(): void {
    while (this.workers.length < this.size) this.spawn();
  }

  /** The process-wide pool. */
  static shared(): CommitPool {
    return (CommitPool.sharedPool ??= new CommitPool());
  }

  private spawn(): { w: Worker; jobs: number } {
    const w = new Worker(workerUrl(), { execArgv: workerExecArgv() });
    const slot = { w, jobs: 0 };
    w.on("message", (m: WorkerOut) => this.listeners.get(m.id)?.(m));
    // A dead worker fails its jobs; a new one is started for later jobs.
    const dead = (message: string) => {
      const i = this.workers.indexOf(slot);
      if (i >= 0) this.workers.splice(i, 1);
      for (const [id, l] of [...this.listeners]) if ((l as Listener & { worker?: Worker }).worker === w) l({ t: "error", id, message });
    };
    w.on("error", (e) => dead(e.message));
    w.on("exit", (code) => dead(`exited with code ${code}`));
    // Only after the listeners: adding a "message" listener refs the worker's port again, which kept
    // every process that had used the pool alive for good (a daemon for 30 s after SIGTERM, until killed).
    // `open` refs it while it has jobs.
    w.unref();
    this.workers.push(slot);
    return slot;
  }

  /**
   * Starts a job: `first` is its start message (its `id` is assigned here);
   * `listener` receives its messages until `end` is called. Returns the id
   * and `send`/`end` to talk to the worker.
   */
  open(first: Omit<Extract<WorkerIn, { t: "start" }>, "id">, listener: Listener): { id: number; send: (m: WorkerIn, transfer?: ArrayBuffer[]) => void; end: () => void } {
    let slot = this.workers.length < this.size ? this.spawn() : this.workers.reduce((a, b) => (b.jobs < a.jobs ? b : a));
    const id = this.nextId++;
    if (slot.jobs++ === 0) slot.w.ref(); // a job in flight keeps the process alive until it ends
    const l = Object.assign((m: WorkerOut) => listener(m), { worker: slot.w });
    this.listeners.set(id, l);
    slot.w.postMessage({ ...first, id } satisfies WorkerIn);
    let ended = false;
    return {
      id,
      send: (m, transfer) => slot.w.postMessage(m, transfer ?? []),
      end: () => {
        if (ended) return;
        ended = true;
        if (--slot.jobs === 0) slot.w.unref();
        this.listeners.delete(id);
        slot.w.postMessage({ t: "cancel", id } satisfies WorkerIn);
      },
    };
  }

  /**
   * Runs a PASSIVE WAL checkpoint of SQLite database `file` in a worker, on
   * a connection of its own, so the copy from WAL to database (and its
   * fsyncs) never holds the event loop. Errors: EIO with SQLite's message.
   */
  async checkpoint(file: string): Promise<void> {
    const m = await this.request({ t: "checkpoint", id: 0, file });
    if (m.t !== "checkpointed" || m.error !== null) throw new StoreError("EIO", `checkpoint of ${file} failed: ${failure(m)}`);
  }

  /**
   * The mark phase of gc (`gcAsync`) over SQLite database `file` in a worker,
   * on a read-only connection of its own, in one read transaction: the
   * objects no inode version references, in that one state. Errors: EIO with
   * SQLite's message.
   */
  async gcMark(file: string): Promise<GcMark> {
    const m = await this.request({ t: "gcmark", id: 0, file });
    if (m.t !== "gcmarked" || m.error !== null || !m.mark) throw new StoreError("EIO", `gc mark of ${file} failed: ${failure(m)}`);
    return m.mark;
  }

  /**
   * `encodeChunk` of each of `chunks` at gzip `level`, in a worker (deferred
   * compression): per chunk its codec and, for CODEC_GZIP, its body (empty
   * for a chunk that stays raw). The chunks are copied to the worker, not
   * moved. Errors: EIO when the worker fails.
   */
  async encode(chunks: Uint8Array[], level: number): Promise<{ codec: number; body: Uint8Array }[]> {
    const m = await this.request({ t: "encode", id: 0, chunks, level });
    if (m.t !== "encoded") throw new StoreError("EIO", `compression in a worker failed: ${failure(m)}`);
    return m.codecs.map((codec, i) => ({ codec, body: m.bodies[i]! }));
  }

  /** Sends the one-shot request `msg` (its id assigned here) to the least busy worker; resolves with the one reply. */
  private request(msg: Extract<WorkerIn, { t: "checkpoint" | "gcmark" | "encode" }>): Promise<WorkerOut> {
    const slot = this.workers.length < this.size ? this.spawn() : this.workers.reduce((a, b) => (b.jobs < a.jobs ? b : a));
    const id = this.nextId++;
    if (slot.jobs++ === 0) slot.w.ref();
    return new Promise<WorkerOut>((resolve) => {
      const l = Object.assign(
        (m: WorkerOut) => {
          this.listeners.delete(id);
          if (--slot.jobs === 0) slot.w.unref();
          resolve(m);
        },
        { worker: slot.w },
      );
      this.listeners.set(id, l);
      slot.w.postMessage({ ...msg, id } satisfies WorkerIn);
    });
  }

  /** Stops every worker (tests; a later job starts new ones). */
  async terminate(): Promise<void> {
    const ws = this.workers.splice(0);
    await Promise.all(ws.map((s) => s.w.terminate()));
  }
}

/** WAL size (bytes) above which `WalCheckpointer` asks for a checkpoint: 4 MiB (SQLite's default auto-checkpoint is 1000 pages). */
const CHECKPOINT_WAL_BYTES = 4 << 20;

/**
 * Moves SQLite's WAL checkpoints of one file-backed manifest off the event
 * loop: turns the connection's automatic checkpoint off (it ran inside the
 * COMMIT that crossed 1000 pages and could hold the loop 10–25 ms) and
 * instead, at most once per second and after each asynchronous commit,
 * asks a `CommitPool` worker for a PASSIVE checkpoint when the WAL is over
 * 4 MiB. After three failures in a row it gives the automatic checkpoint
 * back. One per manifest (`WalCheckpointer.for`); a no-op for in-memory
 * manifests.
 */
export class WalCheckpointer {
  private static readonly all = new WeakMap<Manifest, WalCheckpointer>();
  private running = false;
  private failures = 0;
  private timer: NodeJS.Timeout | null = null;

  private constructor(private readonly manifest: Manifest, private readonly pool: CommitPool) {
    manifest.db.pragma("wal_autocheckpoint = 0");
    this.timer = setInterval(() => this.poke(), 1000);
    this.timer.unref();
  }

  /** The checkpointer of `manifest`, started on first use; null for an in-memory or read-only manifest. */
  static for(manifest: Manifest, pool: CommitPool): WalCheckpointer | null {
    if (manifest.db.memory || manifest.db.readonly) return null;
    let c = WalCheckpointer.all.get(manifest);
    if (!c) {
      c = new WalCheckpointer(manifest, pool);
      WalCheckpointer.all.set(manifest, c);
    }
    return c;
  }

  /** Asks for a checkpoint when the WAL is over 4 MiB and none is running. Never throws. */
  poke(): void {
    if (this.running || !this.timer) return;
    if (!this.manifest.db.open) return this.stop(false);
    let size = 0;
    try {
      size = statSync(this.manifest.file + "-wal").size;
    } catch {
      return;
    }
    if (size < CHECKPOINT_WAL_BYTES) return;
    this.running = true;
    this.pool.checkpoint(this.manifest.file).then(
      () => {
        this.running = false;
        this.failures = 0;
      },
      () => {
        this.running = false;
        if (++this.failures >= 3) this.stop(true);
      },
    );
  }

  private stop(restore: boolean): void {
    if (this.timer) clearInterval(this.timer);
    this.timer = null;
    if (restore && this.manifest.db.open) this.manifest.db.pragma("wal_autocheckpoint = 1000");
  }
}

/** What `commitFrozen` produced. */
export interface FrozenResult {
  /** The file's whole new extent list (prefix + new chunks + old tail). */
  extents: Extent[];
  /** Hashes of the objects this commit inserted (new to the store). */
  inserted: Buffer[];
  /** Stored bytes of those objects. */
  newStoredBytes: number;
}

/** Where `commitFrozen` stores objects. */
export interface CommitTarget {
  /** The store's manifest: objects are inserted in its write transactions. */
  manifest: Manifest;
  /** The store's CAS (`putEncoded`, `has`). */
  cas: ObjectStore;
  /** Chunk size bounds in bytes (the store's chunker). */
  params: ChunkParams;
  /** gzip level (1 … 9). */
  level: number;
  /** Called with each hash (hex) the new extents reference, stored by this commit or found present, so gc can spare them until the inode references them. */
  onInserted?: (hex: string) => void;
  /** Where the worker appends large bodies (`ObjectStore.packTarget`); null or absent: every body comes back to be stored in its row. */
  pack?: { dir: string; sync: boolean } | null;
}

/** A chunk as a worker reported it, waiting to be stored. */
interface Item {
  off: number;
  len: number;
  hash: Buffer | null;
  codec: number;
  body: Uint8Array | null;
  crc: number;
  loc: PackLocation | null;
}

/** One worker job of a commit: file bytes `[start, end)`, chunked by one worker. */
interface Lane {
  start: number;
  end: number;
  h: ReturnType<CommitPool["open"]>;
  /** Reported and not yet stored, in file order. */
  items: Item[];
  /** Stored, in file order. */
  ext: Extent[];
  /** Offset up to which the worker no longer needs input. */
  consumed: number;
  /** End of the bytes sent so far. */
  sent: number;
  /** Set once every byte of the lane was sent. */
  closed: boolean;
  /** Where the worker's chunking ended (`done`), or -1. */
  stoppedAt: number;
}

/**
 * Bytes of file per lane when a commit is split across workers: 8 MiB.
 * A commit of at least two lanes is chunked by several workers at once,
 * each lane ending its last chunk at the lane's end (one forced cut per
 * 8 MiB, which costs deduplication nothing measurable); the last lane
 * holds every old chunk boundary where chunking may re-synchronise. On a
 * 2-core machine this lets a large file's commit use both cores (the event
 * loop mostly idles then).
 */
const LANE_BYTES = 8 << 20;

/** Most lanes of one commit: 64 (a huge sparse region gets longer lanes, not more of them). */
const MAX_LANES = 64;

/** Most bytes sent to workers and not yet chunked, over all lanes of a commit: 32 MiB. */
const IN_FLIGHT = 2 * WINDOW;

/**
 * Runs the CPU-heavy part of the asynchronous commit `job` in workers of
 * `pool` (several at once for a large commit of fresh data: see
 * LANE_BYTES) and stores the chunks in short write transactions (each at
 * most about COMMIT_SLICE_MS ms of work), yielding to the event loop in
 * between. Resolves with the new extents, or null when the job was
 * superseded meanwhile (see `OpenContent.abortAsync`; then nothing is to be
 * written). Objects stored before a crash or an abandoned job are
 * unreferenced and gc removes them; pack bytes of an abandoned job whose
 * rows were never written are freed here, those of a crash stay in their
 * pack (nothing references them; see packs.ts). Errors: EIO (worker
 * failure, SQLite errors as the manifest maps them).
 */
export async function commitFrozen(pool: CommitPool, target: CommitTarget, job: FrozenCommit): Promise<FrozenResult | null> {
  let failed: string | null = null;
  let wake: (() => void) | null = null;
  const poke = () => {
    const w = wake;
    wake = null;
    w?.();
  };
  // Lane boundaries: page-aligned steps of LANE_BYTES, the last lane at least half a lane long and holding
  // every old chunk boundary where chunking may re-synchronise (`stops`, all past the changed bytes): a
  // sequential write over a hole (fio preallocates) plans a stop just past it.
  const bounds = [job.start];
  if (pool.size > 1) {
    const limit = Math.min(job.end, ...job.stops.keys());
    // (On page boundaries: `FrozenCommit.take` hands out whole pages, and the zero-page map counts them.)
    const step = Math.max(LANE_BYTES, Math.ceil((limit - job.start) / MAX_LANES / CONTENT_PAGE) * CONTENT_PAGE);
    const base = job.start - (job.start % CONTENT_PAGE);
    for (let b = base + step; b <= limit - step / 2; b += step) if (b > job.start) bounds.push(b);
  }
  bounds.push(job.end);
  const lanes: Lane[] = [];
  const listen = (lane: Lane) => (m: WorkerOut) => {
    if (m.t === "error") failed = m.message;
    else if (m.t === "ask") {
      // Chunks the store holds already are neither compressed nor sent (a few µs per lookup).
      const n = m.hashes.length / 32;
      const present = new Uint8Array(n);
      try {
        for (let i = 0; i < n; i++) {
          const hash = m.hashes.subarray(i * 32, i * 32 + 32);
          if (!target.cas.has(hash)) continue;
          present[i] = 1;
          // Held from now: the extents will reference it, and a gc before they are written must spare it.
          target.onInserted?.(Buffer.from(hash).toString("hex"));
        }
      } catch {
        /* unknown: the worker sends every body, putEncoded skips those present */
      }
      lane.h.send({ t: "have", id: m.id, seq: m.seq, present }, [present.buffer]);
      return;
    } else if (m.t === "chunks") {
      let k = 0;
      let b = 0;
      for (let i = 0; i < m.offs.length; i++) {
        const c = m.codecs[i];
        if (c === -1) lane.items.push({ off: m.offs[i], len: m.lens[i], hash: null, codec: -1, body: null, crc: 0, loc: null });
        else {
          const hash = Buffer.from(m.hashes.buffer, m.hashes.byteOffset + k * 32, 32);
          k++;
          const sent = c !== -2;
          const loc = sent && m.packs[b] ? { pack: m.packs[b]!, off: m.poffs[b]!, len: m.plens[b]! } : null;
          lane.items.push({ off: m.offs[i], len: m.lens[i], hash, codec: c, body: sent ? m.bodies[b] : null, crc: sent ? m.crcs[b] : 0, loc });
          if (sent) b++;
        }
      }
      for (const b of m.spare) if (b.byteLength === PIECE) spares.put(b);
      lane.consumed = Math.max(lane.consumed, m.consumed);
      if (m.done) lane.stoppedAt = m.stoppedAt;
    }
    poke();
  };
  try {
    for (let i = 0; i + 1 < bounds.length; i++) {
      const [start, end] = [bounds[i]!, bounds[i + 1]!];
      const lane = { start, end, items: [], ext: [], consumed: start, sent: start, closed: false, stoppedAt: -1 } as Omit<Lane, "h"> as Lane;
      const stops = i + 2 === bounds.length ? [...job.stops.keys()] : [];
      // Each lane gets its own part of the zero-page map (a clone of the whole one per lane would be lanes × its size).
      const pageLo = Math.max(job.pageLo, Math.floor(start / CONTENT_PAGE));
      const zero = lanes.length === 0 && end === job.end ? job.zero : job.zero.slice(pageLo - job.pageLo, Math.ceil(end / CONTENT_PAGE) - job.pageLo);
      lane.h = pool.open({ t: "start", start, end, stops, zero, pageLo, params: target.params, level: target.level, pack: target.pack ?? null }, listen(lane));
      lanes.push(lane);
    }
  } catch (e) {
    for (const l of lanes) l.h.end();
    throw new CommitWorkerError(e instanceof Error ? e.message : String(e));
  }
  job.onAbort = poke;
  const checkpointer = WalCheckpointer.for(target.manifest, pool);
  const inserted: Buffer[] = [];
  const unused: PackLocation[] = [];
  let newStoredBytes = 0;
  let cur = 0; // the lane being fed
  const close = (l: Lane) => {
    if (l.closed) return;
    l.closed = true;
    l.h.send({ t: "data", id: l.h.id, pos: l.end, data: new Uint8Array(0), through: l.end });
  };
  const inFlight = () => lanes.reduce((n, l) => n + (l.sent - l.consumed), 0);
  const pending = () => lanes.some((l) => l.items.length > 0);
  const feedable = () => cur < lanes.length && lanes[cur]!.sent - lanes[cur]!.consumed < WINDOW && inFlight() < IN_FLIGHT;
  try {
    for (;;) {
      if (job.superseded) return null;
      if (failed !== null) throw new CommitWorkerError(failed);
      const t0 = performance.now();
      // Feed the workers in file order (bounded windows), then store what came back, within one slice.
      while (feedable() && performance.now() - t0 < COMMIT_SLICE_MS / 2) {
        const next = job.nextData();
        // Lanes before the next non-zero page have all their bytes sent.
        while (cur < lanes.length && (next === null || next >= lanes[cur]!.end)) close(lanes[cur++]!);
        if (cur >= lanes.length) break;
        const l = lanes[cur]!;
        if (l.sent - l.consumed >= WINDOW) break;
        const into = spares.take();
        const piece = job.take(Math.min(PIECE, l.end - next!), into)!;
        l.h.send({ t: "data", id: l.h.id, pos: piece.pos, data: piece.data, through: Math.min(piece.through, l.end) }, [piece.data.buffer as ArrayBuffer]);
        l.sent = piece.pos + piece.data.length;
      }
      if (pending()) {
        const batch: [Lane, Item][] = [];
        target.manifest.write(() => {
          for (const l of lanes) {
            while (l.items.length && performance.now() - t0 < COMMIT_SLICE_MS) {
              const it = l.items.shift()!;
              batch.push([l, it]);
              if (it.hash && it.body) {
                const put = target.cas.putEncoded(it.hash, it.len, it.codec, it.body, it.crc, it.loc);
                if (put.added) {
                  inserted.push(it.hash);
                  newStoredBytes += put.stored;
                } else if (it.loc) unused.push(it.loc); // stored meanwhile by another commit: no row points here
              }
            }
          }
        });
        for (const [l, it] of batch) {
          if (it.hash) target.onInserted?.(it.hash.toString("hex"));
          l.ext.push({ off: it.off, len: it.len, hash: it.hash });
        }
      }
      if (lanes.every((l) => l.stoppedAt >= 0 && l.items.length === 0)) break;
      if (pending() || feedable()) await nextTurn();
      else await new Promise<void>((r) => (wake = r));
    }
  } finally {
    for (const l of lanes) {
      l.h.end();
      // Bodies a worker appended whose rows were never written (superseded, failed): no row points there.
      for (const it of l.items) if (it.loc) unused.push(it.loc);
    }
    checkpointer?.poke();
    if (unused.length) target.cas.packs?.punchFreed(unused);
  }
  const newExt = lanes.flatMap((l) => l.ext);
  const stoppedAt = lanes[lanes.length - 1]!.stoppedAt;
  if (job.superseded) return null;
  // Assemble: old prefix, new chunks (holes merged with their neighbours), old tail after a re-synchronisation.
  const extents: Extent[] = job.prefix.slice();
  for (const e of newExt) pushExtent(extents, e);
  if (stoppedAt < job.size) {
    const i = job.stops.get(stoppedAt);
    if (i === undefined) throw new StoreError("EIO", `commit worker stopped at ${stoppedAt}, not at an old chunk boundary`);
    if (i < job.base.length) pushExtent(extents, job.base[i]!); // a hole split by the plan rejoins its other half
    for (let k = i + 1; k < job.base.length; k++) extents.push(job.base[k]!);
  }
  return { extents, inserted, newStoredBytes };
}

