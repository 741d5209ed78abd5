/**
 * Read-ahead off the event loop: a small pool of fetch workers
 * (`fetchworker.ts`) that select, decompress and SHA-256-verify CAS objects
 * on read-only connections of their own, so that a sequential reader (the
 * FUSE daemon serving `cat`, `cp`, fio) finds the next chunks already
 * verified in `ObjectStore`'s cache instead of fetching and hashing them on
 * the loop.
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

/**
 * The process-wide pool of fetch workers. Workers start on first use and are
 * `unref`'d while idle, so the pool never keeps a process alive. A worker
 * that dies answers its batches as not fetched.
 */
export class FetchPool {
  private static sharedPool: FetchPool | null = null;
  private readonly workers: Slot[] = [];
  private readonly waiting = new Map<number, { slot: Slot; n: number; done: (ok: Uint8Array, data: Uint8Array[]) => void }>();
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
    w.on("message", (m: FetchOut) => this.answer(m.id, m.ok, m.data));
    const dead = () => {
      const i = this.workers.indexOf(slot);
      if (i >= 0) this.workers.splice(i, 1);
      for (const [id, job] of [...this.waiting]) if (job.slot === slot) this.answer(id, new Uint8Array(job.n), []);
    };
    w.on("error", dead);
    w.on("exit", dead);
    w.unref(); // after the listeners, which ref the port again (see CommitPool.spawn)
    this.workers.push(slot);
    return slot;
  }

  private answer(id: number, ok: Uint8Array, data: Uint8Array[]): void {
    const job = this.waiting.get(id);
    if (!job) return;
    this.waiting.delete(id);
    job.slot.pending -= job.n;
    if (job.slot.pending === 0) job.slot.w.unref();
    job.done(ok, data);
  }

  /**
   * Fetches and verifies the objects `hashes` (32 bytes each) of SQLite
   * manifest `file` in the workers. `got(i, bytes)` is called with the
   * verified bytes of each `hashes[i]` fetched; `done()` once every hash was
   * answered (fetched or not). Never throws and never fails: an object not
   * fetched (missing, corrupt, a worker that died) is left for the caller's
   * own read, which reports the error.
   */
  fetch(file: string, hashes: Buffer[], got: (i: number, bytes: Buffer) => void, done: () => void): void {
    let left = Math.ceil(hashes.length / BATCH);
    if (left === 0) return done();
    for (let b = 0; b < hashes.length; b += BATCH) {
      const part = hashes.slice(b, b + BATCH);
      const slot = this.workers.length < this.size ? this.spawn() : this.workers.reduce((a, c) => (c.pending < a.pending ? c : a));
      const id = this.nextId++;
      if (slot.pending === 0) slot.w.ref();
      slot.pending += part.length;
      this.waiting.set(id, {
        slot,
        n: part.length,
        done: (ok, data) => {
          let k = 0;
          for (let i = 0; i < part.length; i++) if (ok[i]) got(b + i, Buffer.from(data[k].buffer, data[k].byteOffset, data[k++].byteLength));
          if (--left === 0) done();
        },
      });
      const packed = Buffer.concat(part);
      slot.w.postMessage({ t: "fetch", id, file, hashes: packed } satisfies FetchIn);
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
