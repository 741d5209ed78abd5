/**
 * Garbage collection for a server that must keep answering while it runs
 * (the FUSE daemon: no request may wait more than 10 ms). `gc` does all of
 * its work in one write transaction on the caller's thread; `gcAsync` splits
 * it:
 *
 * 1. the layer half (dead layers, compaction: as `collectLayers`) in short
 *    write transactions of at most `SWEEP_SLICE_ROWS` rows each, yielding
 *    between them; every step leaves the same tree visible (a row moves
 *    from a layer into its only child, or a row nothing reads goes), and
 *    the row caches are dropped after each (`afterLayerGc`);
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
import { afterLayerGc, deadLayers, dropLayer, finishMerge, gc, nextMerge, type GcReport, type LayerGcReport } from "./maintenance.js";
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
    const layers = await collectLayersSliced(store);
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

/**
 * `collectLayers` in slices: each transaction moves or deletes at most
 * SWEEP_SLICE_ROWS inode and dentry rows, then yields to the event loop.
 * Dead layers lose their rows (nothing reads them), then their layer row. A
 * merge moves the rows of the layer into its only child where the child has
 * none of its own, deletes the rest (shadowed by the child's), and finally
 * gives the child the layer's parent. Between slices the chain still holds
 * both layers, so every read sees the tree as before; writes land in heads,
 * and a row a write puts into the child meanwhile simply shadows the
 * layer's. Caches of rows are dropped after every slice that changed any.
 */
async function collectLayersSliced(store: Store): Promise<LayerGcReport> {
  const m = store.manifest;
  const db = m.db;
  const rep: LayerGcReport = { layersRemoved: 0, inodeVersionsRemoved: 0, dentriesRemoved: 0 };
  const N = SWEEP_SLICE_ROWS;
  const delI = db.prepare(`DELETE FROM inodes WHERE rowid IN (SELECT rowid FROM inodes WHERE layer = ? LIMIT ${N})`);
  const delD = db.prepare(`DELETE FROM dentries WHERE (parent, name, layer) IN (SELECT parent, name, layer FROM dentries WHERE layer = ? LIMIT ${N})`);
  const moveI = db.prepare(`UPDATE inodes SET layer = @c WHERE rowid IN
    (SELECT rowid FROM inodes AS a WHERE a.layer = @l AND NOT EXISTS (SELECT 1 FROM inodes AS b WHERE b.ino = a.ino AND b.layer = @c) LIMIT ${N})`);
  const moveD = db.prepare(`UPDATE dentries SET layer = @c WHERE (parent, name, layer) IN
    (SELECT parent, name, layer FROM dentries AS a WHERE a.layer = @l
      AND NOT EXISTS (SELECT 1 FROM dentries AS b WHERE b.layer = @c AND b.parent = a.parent AND b.name = a.name) LIMIT ${N})`);
  /** Runs `step` (rows changed) in its own transaction until it changes nothing, yielding between. */
  const drain = async (step: () => number): Promise<number> => {
    let total = 0;
    for (;;) {
      const n = m.write(step);
      if (n === 0) return total;
      total += n;
      afterLayerGc(store);
      await nextTurn();
    }
  };
  for (const id of deadLayers(store)) {
    rep.inodeVersionsRemoved += await drain(() => delI.run(id).changes);
    rep.dentriesRemoved += await drain(() => delD.run(id).changes);
    m.write(() => dropLayer(store, id));
    afterLayerGc(store);
    rep.layersRemoved++;
  }
  for (let next = m.read(() => nextMerge(store)); next; next = m.read(() => nextMerge(store))) {
    const { layer: l, child: c } = next;
    await drain(() => moveI.run({ l, c }).changes);
    await drain(() => moveD.run({ l, c }).changes);
    rep.inodeVersionsRemoved += await drain(() => delI.run(l).changes);
    rep.dentriesRemoved += await drain(() => delD.run(l).changes);
    // A gc in one transaction meanwhile (this process's `gc`) may have merged it already.
    const finished = m.write(() => {
      if (!db.prepare(`SELECT 1 FROM layers WHERE id = ? AND parent = ?`).get(c, l)) return false;
      finishMerge(store, l, c);
      return true;
    });
    afterLayerGc(store);
    if (finished) rep.layersRemoved++;
  }
  return rep;
}
