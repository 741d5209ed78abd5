/**
 * Garbage collection for a server that must keep answering while it runs
 * (the FUSE daemon: no request may wait more than 10 ms). `gc` does all of
 * its work in one write transaction on the caller's thread; `gcAsync` splits
 * it:
 *
 * 1. the layer half (`collectLayers`: dead layers, compaction) in one write
 *    transaction on the caller's thread, as `gc` (usually a few queries);
 * 2. the mark: a `CommitPool` worker reads every inode version's extents and
 *    every object on a read-only connection of its own, in one read
 *    transaction (state S), and sends back the objects nothing references;
 * 3. the sweep: those objects are deleted in short write transactions
 *    (`COMMIT_SLICE_MS` of work each), yielding to the event loop between.
 *
 * Writes go on meanwhile. An object that was garbage in S can only be
 * referenced again by a write that looks it up first (deduplication:
 * `ObjectStore.has`, also behind `put`), and an object stored before S may
 * be referenced by rows written after it: every such lookup and store from
 * before the mark started until the sweep ends is recorded
 * (`ObjectStore.trackUses`) and spared; so are the `keep` chunks (files open but unlinked, and the chunks
 * commits in flight found or stored, which they looked up before the
 * watch): taken once when the watch starts and again before every slice. Objects stored after S are
 * not in the mark at all. Another process's writes cannot be watched: when
 * the store's `data_version` moves during the run, the sweep stops and the
 * mark is redone (at most three times, then `gc` runs as one transaction).
 */
import { StoreError } from "./errors.js";
import { CommitPool, COMMIT_SLICE_MS, nextTurn } from "./commitpipe.js";
import { afterLayerGc, collectLayers, gc, type GcReport } from "./maintenance.js";
import type { Store } from "./store.js";

/** Options of `gcAsync`. */
export interface GcAsyncOptions {
  /** Hex hashes to spare (`FsCore.heldChunks`); called once before each slice of the sweep. */
  keep?: () => Set<string>;
  /** Worker pool for the mark (default: the process-wide `CommitPool.shared()`). */
  pool?: Pick<CommitPool, "gcMark">;
  /** Marks tried before falling back to `gc` (default 3): each is redone when another process wrote meanwhile. */
  attempts?: number;
}

/**
 * Objects deleted per sweep transaction, at most: deletes scatter over the
 * hash index, so the COMMIT writes about a page per delete to the WAL
 * (measured: 1,000 deletes took 4–5 ms with their commit, 256 about 1.5).
 */
const SWEEP_SLICE_ROWS = 256;

/** Another connection committed during the run: the mark no longer describes the store. */
class MarkStale extends Error {}

/** Stores whose `gcAsync` is running (one at a time per store). */
const running = new WeakSet<Store>();

/**
 * As `gc` (same result and report), with the mark in a worker and the sweep
 * in slices, so the event loop is never held for long (see the module
 * comment). A store without a database file of its own (in memory) is
 * collected by `gc`. Errors: EBUSY when a `gcAsync` of the same store is
 * running; EIO (worker or SQLite failure; nothing deleted is lost, a
 * partial sweep only removed garbage); the StoreErrors of `gc`.
 */
export async function gcAsync(store: Store, opts: GcAsyncOptions = {}): Promise<GcReport> {
  const keep = opts.keep ?? (() => new Set<string>());
  const m = store.manifest;
  if (m.db.memory) return gc(store, keep());
  if (running.has(store)) throw new StoreError("EBUSY", `gc of ${m.file} is already running`);
  running.add(store);
  try {
    const layers = m.write(() => collectLayers(store));
    if (layers.layersRemoved || layers.inodeVersionsRemoved || layers.dentriesRemoved) afterLayerGc(store);
    const pool = opts.pool ?? CommitPool.shared();
    for (let attempt = 0; attempt < (opts.attempts ?? 3); attempt++) {
      const objects = await markAndSweep(store, pool, keep).catch((e: unknown) => {
        if (e instanceof MarkStale) return null;
        throw e;
      });
      if (objects) return { ...layers, ...objects };
    }
    // The store kept changing under the mark: collect it in one transaction.
    const rest = gc(store, keep());
    return {
      layersRemoved: layers.layersRemoved + rest.layersRemoved,
      inodeVersionsRemoved: layers.inodeVersionsRemoved + rest.inodeVersionsRemoved,
      dentriesRemoved: layers.dentriesRemoved + rest.dentriesRemoved,
      objectsRemoved: rest.objectsRemoved,
      bytesFreed: rest.bytesFreed,
      objectsKept: rest.objectsKept,
    };
  } finally {
    running.delete(store);
  }
}

/** One mark in `pool` and the sliced sweep of what it found. Throws MarkStale when another connection wrote meanwhile. */
async function markAndSweep(store: Store, pool: Pick<CommitPool, "gcMark">, keep: () => Set<string>): Promise<{ objectsRemoved: number; bytesFreed: number; objectsKept: number }> {
  const m = store.manifest;
  const dataVersion = () => m.db.pragma("data_version", { simple: true }) as number;
  // Both before the worker's read transaction starts: every revival after S is seen, and every commit of another connection.
  m.settle();
  const used = store.cas.trackUses();
  // Chunks found or stored by commits still in flight were looked up before the watch: spared for the whole run.
  for (const h of keep()) used.add(h);
  const dv0 = dataVersion();
  try {
    const mark = await pool.gcMark(m.file);
    const del = m.db.prepare(`DELETE FROM objects WHERE hash = ?`);
    const removed: Buffer[] = [];
    let objectsRemoved = 0;
    let bytesFreed = 0;
    let i = 0;
    const n = mark.stored.length;
    while (i < n) {
      const spare = keep();
      m.write(() => {
        if (dataVersion() !== dv0) throw new MarkStale();
        const t0 = performance.now();
        const first = i;
        do {
          const hash = Buffer.from(mark.hashes.buffer, mark.hashes.byteOffset + i * 32, 32);
          const hex = hash.toString("hex");
          if (!used.has(hex) && !spare.has(hex) && del.run(hash).changes > 0) {
            objectsRemoved++;
            bytesFreed += mark.stored[i]!;
            if (store.cas.backend) removed.push(hash);
          }
          i++;
        } while (i < n && i - first < SWEEP_SLICE_ROWS && performance.now() - t0 < COMMIT_SLICE_MS);
      });
      if (i < n) await nextTurn();
    }
    store.cas.releaseBodies(removed);
    store.cas.clearCache();
    return { objectsRemoved, bytesFreed, objectsKept: mark.examined - objectsRemoved };
  } finally {
    store.cas.untrackUses(used);
  }
}
