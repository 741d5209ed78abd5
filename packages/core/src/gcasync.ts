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
 * mark is redone (at most three times, then EAGAIN).
 */
import { StoreError } from "./errors.js";
import { CommitPool, COMMIT_SLICE_MS, nextTurn } from "./commitpipe.js";
import { afterLayerGc, deadLayers, dropLayer, finishMerge, gc, mergeRows, nextMerge, type GcReport, type LayerGcReport } from "./maintenance.js";
import type { Store } from "./store.js";
import type { PackLocation } from "./packs.js";

/** Options of `gcAsync`. */
export interface GcAsyncOptions {
  /** Hex hashes to spare (`FsCore.heldChunks`); called once before each slice of the sweep. */
  keep?: () => Set<string>;
  /** Worker pool for the mark (default: one worker of its own, so a long mark never queues commits behind it). */
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

/** Resolves on the next turn; then EIO when the store was closed meanwhile (a gc outliving its store). */
async function turnOf(store: Store): Promise<void> {
  await nextTurn();
  alive(store);
}

/** EIO when the store's database was closed (after an await in a run). */
function alive(store: Store): void {
  if (!store.manifest.db.open) throw new StoreError("EIO", `gc of ${store.manifest.file} stopped: the store was closed`);
}

/**
 * The marks' own worker: on a machine with two cores the shared commit pool
 * has one worker, and a mark of a large store there would hold every
 * asynchronous commit behind it. Started on first use; idle, it does not
 * keep the process alive.
 */
let markPool: CommitPool | null = null;

/** Stores whose `gcAsync` is running (one at a time per store). */
const running = new WeakSet<Store>();

/**
 * As `gc` (same result and report), with the mark in a worker and the sweep
 * in slices, so the event loop is never held for long (see the module
 * comment). A store without a database file of its own (in memory), or
 * with an object backend, is collected by `gc`. Errors: EBUSY when a
 * `gcAsync` of the same store is running; EAGAIN when another process
 * wrote during every mark; EIO (worker or SQLite failure, or the store was
 * closed meanwhile; what was deleted was garbage); the StoreErrors of `gc`.
 */
export async function gcAsync(store: Store, opts: GcAsyncOptions = {}): Promise<GcReport> {
  const keep = opts.keep ?? (() => new Set<string>());
  const m = store.manifest;
  // In memory there is no file for a worker to open; bodies in an object backend are freed by `gc` only
  // once their rows' deletion committed, which a sliced sweep cannot promise for a body stored again.
  if (m.db.memory || store.cas.backend) return gc(store, keep());
  if (running.has(store)) throw new StoreError("EBUSY", `gc of ${m.file} is already running`);
  running.add(store);
  try {
    const layers = await collectLayersSliced(store);
    const pool = opts.pool ?? (markPool ??= new CommitPool(1));
    for (let attempt = 0; attempt < (opts.attempts ?? 3); attempt++) {
      const objects = await markAndSweep(store, pool, keep).catch((e: unknown) => {
        if (e instanceof MarkStale) return null;
        throw e;
      });
      if (objects) return { ...layers, ...objects };
    }
    // Another process kept writing: collecting in one transaction would hold this caller (a server's
    // loop) for the whole run, so say so instead. What the tries removed was garbage either way.
    throw new StoreError("EAGAIN", `gc of ${m.file}: another process wrote to the store during each of ${opts.attempts ?? 3} marks; try again (or run gc where nothing else is being served)`);
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
    alive(store);
    const packed: PackLocation[] = [];
    let objectsRemoved = 0;
    let bytesFreed = 0;
    let i = 0;
    const n = mark.stored.length;
    try {
      while (i < n) {
        const spare = keep();
        const slice: PackLocation[] = [];
        m.write(() => {
          if (dataVersion() !== dv0) throw new MarkStale();
          const t0 = performance.now();
          const first = i;
          do {
            const hash = Buffer.from(mark.hashes.buffer, mark.hashes.byteOffset + i * 32, 32);
            const hex = hash.toString("hex");
            const r = used.has(hex) || spare.has(hex) ? null : store.cas.remove(hash);
            if (r?.removed) {
              if (r.loc) slice.push(r.loc);
              objectsRemoved++;
              bytesFreed += mark.stored[i]!;
            }
            i++;
          } while (i < n && i - first < SWEEP_SLICE_ROWS && performance.now() - t0 < COMMIT_SLICE_MS);
        });
        packed.push(...slice);
        if (i < n) await turnOf(store);
      }
    } finally {
      // Pack ranges of deleted objects are freed once their deletion is committed and durable (a stale mark
      // stops the sweep, but what earlier slices deleted stays deleted). If that fails, the ranges stay:
      // unreferenced bytes, nothing lost, and the sweep's own error is the one reported.
      if (packed.length && store.manifest.db.open) {
        let durable = false;
        try {
          m.settle();
          await m.syncFiles();
          durable = true;
        } catch {
          /* left in place */
        }
        if (durable) store.cas.packs?.punchFreed(packed);
      }
    }
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
  // Merges walk the layer's rows once, in key order from a cursor, so no slice scans rows an earlier one
  // decided: each row moves into the child, or goes when the child has its own (it shadows this one).
  const nextI = db.prepare(`SELECT rowid AS r, ino, EXISTS (SELECT 1 FROM inodes AS b WHERE b.ino = a.ino AND b.layer = @c) AS shadowed
    FROM inodes AS a WHERE a.layer = @l AND a.rowid > @after ORDER BY a.rowid LIMIT ${N}`);
  const moveI = db.prepare(`UPDATE inodes SET layer = ? WHERE rowid = ?`);
  const dropI = db.prepare(`DELETE FROM inodes WHERE rowid = ?`);
  const nextD = db.prepare(`SELECT parent, name, EXISTS (SELECT 1 FROM dentries AS b WHERE b.layer = @c AND b.parent = a.parent AND b.name = a.name) AS shadowed
    FROM dentries AS a WHERE a.layer = @l AND (a.parent, a.name) > (@p, @n) ORDER BY a.parent, a.name LIMIT ${N}`);
  const moveD = db.prepare(`UPDATE dentries SET layer = ? WHERE parent = ? AND name = ? AND layer = ?`);
  const dropD = db.prepare(`DELETE FROM dentries WHERE parent = ? AND name = ? AND layer = ?`);
  /** Runs `step` (rows changed, or -1 when done) in its own transaction until done, yielding between. */
  const drain = async (step: () => number): Promise<number> => {
    let total = 0;
    for (;;) {
      const n = m.write(step);
      if (n < 0) return total;
      total += n;
      afterLayerGc(store);
      await turnOf(store);
    }
  };
  const done = (changes: number) => (changes === 0 ? -1 : changes);
  for (const id of deadLayers(store)) {
    rep.inodeVersionsRemoved += await drain(() => done(delI.run(id).changes));
    rep.dentriesRemoved += await drain(() => done(delD.run(id).changes));
    m.write(() => dropLayer(store, id));
    afterLayerGc(store);
    rep.layersRemoved++;
  }
  for (let next = m.read(() => nextMerge(store)); next; next = m.read(() => nextMerge(store))) {
    const { layer: l, child: c } = next;
    let after = -1;
    rep.inodeVersionsRemoved += await drain(() => {
      const rows = nextI.all({ l, c, after }) as Array<{ r: number; shadowed: number }>;
      if (rows.length === 0) return -1;
      let dropped = 0;
      for (const row of rows) {
        if (row.shadowed) dropped += dropI.run(row.r).changes;
        else moveI.run(c, row.r);
      }
      after = rows[rows.length - 1]!.r;
      return dropped;
    });
    let p = -1;
    let n = "";
    rep.dentriesRemoved += await drain(() => {
      const rows = nextD.all({ l, c, p, n }) as Array<{ parent: number; name: string; shadowed: number }>;
      if (rows.length === 0) return -1;
      let dropped = 0;
      for (const row of rows) {
        if (row.shadowed) dropped += dropD.run(row.parent, row.name, l).changes;
        else moveD.run(c, row.parent, row.name, l);
      }
      ({ parent: p, name: n } = rows[rows.length - 1]!);
      return dropped;
    });
    // A gc in one transaction meanwhile (this process's `gc`) may have merged it already.
    const finished = m.write(() => {
      if (!db.prepare(`SELECT 1 FROM layers WHERE id = ? AND parent = ?`).get(c, l)) return false;
      // Rows in the layer now (none, unless a `gc` meanwhile merged its parent into it) move or go as above.
      const left = mergeRows(store, l, c);
      rep.inodeVersionsRemoved += left.inodeVersionsRemoved;
      rep.dentriesRemoved += left.dentriesRemoved;
      finishMerge(store, l, c);
      return true;
    });
    afterLayerGc(store);
    if (finished) rep.layersRemoved++;
  }
  return rep;
}
