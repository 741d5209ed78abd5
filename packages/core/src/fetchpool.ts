/**
 * Read-ahead off the event loop: a small pool of fetch workers
 * (`fetchworker.ts`) that select, decompress and SHA-256-verify CAS objects
 * on read-only connections of their own, so that a sequential reader (the
 * FUSE daemon serving `cat`, `cp`, fio) finds its next chunks verified in
 * memory (`ReadAheadCache`) instead of fetching and hashing them on the
 * loop. Buffers travel to the workers and back (transferred, never copied)
 * and are reused, so reading ahead makes no garbage on the main thread.
 */
import { Worker } from "node:worker_threads";
import { availableParallelism } from "node:os";
import { workerUrl } from "./workerurl.js";
import type { FetchIn, FetchOut } from "./fetchworker.js";

interface Slot {
  w: Worker;
  /** Objects asked of this worker and not answered yet. */
  pending: number;
}

/** Objects per message to one worker: small batches spread one reader's window over every worker. */
const BATCH = 4;

/** One object to fetch: its hash, its size (bytes) and a buffer of at least that size to put it in. */
export interface FetchItem {
  hash: Buffer;
  len: number;
  buf: ArrayBuffer;
}

/**
 * The process-wide pool of fetch workers. Workers start on first use and are
 * `unref`'d while idle, so the pool never keeps a process alive. A worker
 * that dies answers its batches as not fetched.
 */
export class FetchPool {
  private static sharedPool: FetchPool | null = null;
  private readonly workers: Slot[] = [];
  private readonly waiting = new Map<number, { slot: Slot; n: number; done: (ok: Uint8Array, bufs: ArrayBuffer[] | null) => void }>();
  private nextId = 1;

  /** `size`: number of workers (default: the number of cores, at most 4). */
  constructor(readonly size = Math.max(1, Math.min(4, availableParallelism()))) {}

  /** The process-wide pool. */
  static shared(): FetchPool {
    return (FetchPool.sharedPool ??= new FetchPool());
  }

  private spawn(): Slot {
    const w = new Worker(workerUrl("fetchworker.js"));
    const slot: Slot = { w, pending: 0 };
    w.on("message", (m: FetchOut) => this.answer(m.id, m.ok, m.bufs));
    const dead = () => {
      const i = this.workers.indexOf(slot);
      if (i >= 0) this.workers.splice(i, 1);
      for (const [id, job] of [...this.waiting]) if (job.slot === slot) this.answer(id, new Uint8Array(job.n), null);
    };
    w.on("error", dead);
    w.on("exit", dead);
    w.unref(); // after the listeners, which ref the port again (see CommitPool.spawn)
    this.workers.push(slot);
    return slot;
  }

  private answer(id: number, ok: Uint8Array, bufs: ArrayBuffer[] | null): void {
    const job = this.waiting.get(id);
    if (!job) return;
    this.waiting.delete(id);
    job.slot.pending -= job.n;
    if (job.slot.pending === 0) job.slot.w.unref();
    job.done(ok, bufs);
  }

  /**
   * Fetches and verifies `items` of SQLite manifest `file` in the workers,
   * each into the start of its buffer (transferred: `items[i].buf` is
   * detached here until it comes back). `answer(i, buf, ok)` is called once
   * per item: `ok` when `buf` (its buffer, given back) holds the verified
   * bytes; `buf` is null when a worker died with it. `done()` after the
   * last answer. Never throws and never fails: an object not fetched
   * (missing, corrupt, a dead worker) is left for the caller's own read,
   * which reports the error.
   */
  fetch(file: string, items: FetchItem[], answer: (i: number, buf: ArrayBuffer | null, ok: boolean) => void, done: () => void): void {
    let left = Math.ceil(items.length / BATCH);
    if (left === 0) return done();
    for (let b = 0; b < items.length; b += BATCH) {
      const part = items.slice(b, b + BATCH);
      const slot = this.workers.length < this.size ? this.spawn() : this.workers.reduce((a, c) => (c.pending < a.pending ? c : a));
      const id = this.nextId++;
      if (slot.pending === 0) slot.w.ref();
      slot.pending += part.length;
      this.waiting.set(id, {
        slot,
        n: part.length,
        done: (ok, bufs) => {
          for (let i = 0; i < part.length; i++) answer(b + i, bufs ? bufs[i] : null, ok[i] === 1);
          if (--left === 0) done();
        },
      });
      const bufs = part.map((p) => p.buf);
      const msg: FetchIn = { t: "fetch", id, file, hashes: Buffer.concat(part.map((p) => p.hash)), lens: part.map((p) => p.len), bufs };
      slot.w.postMessage(msg, bufs);
    }
  }

  /** Closes the workers' connections to `file` (its store is being closed). */
  forget(file: string): void {
    for (const s of this.workers) s.w.postMessage({ t: "forget", file } satisfies FetchIn);
  }

  /** Stops every worker (tests; a later fetch starts new ones). */
  async terminate(): Promise<void> {
    const ws = this.workers.splice(0);
    await Promise.all(ws.map((s) => s.w.terminate()));
  }
}

/** Smallest buffer capacity (bytes) the cache lends: 16 KiB; others are powers of two up to the object size. */
const MIN_CAP = 16 * 1024;

/**
 * Verified objects that fetch workers read ahead, least recently used
 * first out, at most `limit` bytes. Its buffers are reused: `lend` gives a
 * free one (a power of two of at least the size asked; allocated only when
 * none is free), `keep` takes it back filled, and an evicted or cleared
 * entry's buffer becomes free again. `get` returns a view into a buffer
 * that may be lent out (and detached) later: copy from it at once.
 */
export class ReadAheadCache {
  private readonly found = new Map<string, Buffer>();
  private bytes = 0;
  /** Free buffers by capacity, at most `limit` bytes in all (more are left to the GC). */
  private readonly free = new Map<number, ArrayBuffer[]>();
  private freeBytes = 0;

  constructor(readonly limit: number) {}

  /** True when object `key` (hex hash) is here. */
  has(key: string): boolean {
    return this.found.has(key);
  }

  /** The bytes of object `key`, as a view to copy from at once; undefined when absent. Counts as a use. */
  get(key: string): Buffer | undefined {
    const v = this.found.get(key);
    if (v) {
      this.found.delete(key);
      this.found.set(key, v);
    }
    return v;
  }

  /** A buffer of at least `len` bytes to lend a worker. */
  lend(len: number): ArrayBuffer {
    let cap = MIN_CAP;
    while (cap < len) cap *= 2;
    const list = this.free.get(cap);
    const ab = list?.pop();
    if (ab) {
      this.freeBytes -= cap;
      return ab;
    }
    return new ArrayBuffer(cap);
  }

  /** `buf` came back holding the `len` bytes of object `key`: cache them (evicting the least recently used). */
  keep(key: string, buf: ArrayBuffer, len: number): void {
    const old = this.found.get(key);
    if (old) {
      this.release(buf);
      return;
    }
    this.found.set(key, Buffer.from(buf, 0, len));
    this.bytes += buf.byteLength;
    while (this.bytes > this.limit) {
      const [k, v] = this.found.entries().next().value as [string, Buffer];
      this.found.delete(k);
      this.bytes -= v.buffer.byteLength;
      this.release(v.buffer as ArrayBuffer);
    }
  }

  /** `buf` came back unused: it is free again. */
  release(buf: ArrayBuffer): void {
    if (buf.byteLength === 0 || this.freeBytes + buf.byteLength > this.limit) return; // detached, or enough spare
    const list = this.free.get(buf.byteLength) ?? [];
    list.push(buf);
    this.free.set(buf.byteLength, list);
    this.freeBytes += buf.byteLength;
  }

  /** Forgets every object (their buffers become free). */
  clear(): void {
    for (const v of this.found.values()) this.release(v.buffer as ArrayBuffer);
    this.found.clear();
    this.bytes = 0;
  }
}
