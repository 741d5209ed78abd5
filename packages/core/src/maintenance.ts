/**
 * Whole-store operations: diff of two tree states, garbage collection,
 * fsck and stats. Each works on the manifest directly and never changes
 * file contents.
 */
import { existsSync, readdirSync, statSync } from "node:fs";
import { join } from "node:path";
import type { PackLocation } from "./packs.js";
import { decodeBody, objectColumns, objectRowColumns, sha256, type ObjectRow } from "./cas.js";
import { decodeExtents, readExtents, unreferencedObjects } from "./content.js";
import { crc32 } from "node:zlib";
import { ROOT_INO, type Chain, type InodeRow } from "./manifest.js";
import { S_IFBLK, S_IFCHR, S_IFDIR, S_IFIFO, S_IFLNK, S_IFMT, S_IFREG, S_IFSOCK } from "./fscore.js";
import type { Store, Target } from "./store.js";
import { StoreError } from "./errors.js";
import { LOWER_DATA, lowerMetaKey, type Lower } from "./overlay.js";

/** Kinds of tree entries in reports ("fifo", "socket", "chardev", "blockdev": special files made by mknod). */
export type EntryKind = "file" | "dir" | "symlink" | "fifo" | "socket" | "chardev" | "blockdev" | "other";

const KINDS = new Map<number, EntryKind>([
  [S_IFREG, "file"], [S_IFDIR, "dir"], [S_IFLNK, "symlink"],
  [S_IFIFO, "fifo"], [S_IFSOCK, "socket"], [S_IFCHR, "chardev"], [S_IFBLK, "blockdev"],
]);

/** The kind name of st_mode `mode`'s file type bits, as reports (diff, `ls --json`) print it. */
export function kindOf(mode: number): EntryKind {
  return KINDS.get(mode & S_IFMT) ?? "other";
}

function childPath(dir: string, name: string): string {
  return dir === "/" ? `/${name}` : `${dir}/${name}`;
}

// ------------------------------------------------------------------ diff

/** One difference between two tree states. Sizes in bytes; `before`/`after` absent for added/deleted. */
export interface DiffEntry {
  path: string;
  change: "added" | "deleted" | "modified" | "type-changed";
  kind: EntryKind;
  /** Kind before a type change. */
  kindBefore?: EntryKind;
  sizeBefore?: number;
  sizeAfter?: number;
  /** For "modified": which aspects differ ("content", "mode", "owner", "target", "rdev" of a device node, "xattrs"). */
  what?: string[];
}

/**
 * Differences from tree state `a` to `b` (each a branch or snapshot), sorted
 * by path. Cost is proportional to what changed since their common ancestor
 * layer, not to the tree size: unchanged subtrees are skipped. Errors: ENOENT
 * for an unknown branch or snapshot; EIO when content must be compared and an
 * object is corrupt.
 */
export function diff(store: Store, a: Target, b: Target): DiffEntry[] {
  return store.manifest.read(() => diffChains(store, store.chainOf(a), store.chainOf(b)));
}

/**
 * What changed in overlay branch or snapshot `target` against its host
 * directory as it is now ("what changed against the host dir"), sorted by
 * path, in `diff`'s shape. Cost is proportional to the rows of the overlay's
 * layers (what was changed here), not to the host tree. A host file changed
 * underneath but untouched here is not a change (both sides read it live).
 * Errors: ENOENT (unknown target), EINVAL (not an overlay).
 */
export function diffLower(store: Store, target: Target): DiffEntry[] {
  const m = store.manifest;
  return m.read(() => {
    const B = store.chainOf(target);
    if (!B.lower) throw new StoreError("EINVAL", "not an overlay branch or snapshot (it has no lower directory)");
    return diffChains(store, store.chainOfLayer(B.lower.rootLayer), B);
  });
}

function diffChains(store: Store, A: Chain, B: Chain): DiffEntry[] {
  const m = store.manifest;
  {
    const common = A.ids.find((id) => B.set.has(id));
    const delta = [...A.ids.slice(0, A.ids.indexOf(common!)), ...B.ids.slice(0, B.ids.indexOf(common!))];
    const changedInos = new Set<number>();
    const dirtyDirs = new Set<number>();
    if (delta.length) {
      const ph = delta.map(() => "?").join(",");
      for (const r of m.db.prepare(`SELECT DISTINCT ino FROM inodes WHERE layer IN (${ph})`).pluck().iterate(...delta) as Iterable<number>) changedInos.add(r);
      for (const r of m.db.prepare(`SELECT DISTINCT parent FROM dentries WHERE layer IN (${ph})`).pluck().iterate(...delta) as Iterable<number>) dirtyDirs.add(r);
    }
    // Mark every inode on a path from the root to a changed inode or dentry, in both trees.
    const marked = new Set<number>();
    const markUp = (start: number, chain: Chain, seen: Set<number>) => {
      const todo = [start];
      while (todo.length) {
        const ino = todo.pop()!;
        if (seen.has(ino)) continue;
        seen.add(ino);
        marked.add(ino);
        if (ino !== ROOT_INO) todo.push(...containers(ino, chain));
      }
    };
    const containers = (ino: number, chain: Chain): number[] => {
      const out: number[] = [];
      for (const d of m.dentriesOf(ino)) {
        if (!chain.set.has(d.layer)) continue;
        const v = m.lookup(d.parent, d.name, chain);
        if (v && v.ino === ino && !out.includes(d.parent)) out.push(d.parent);
      }
      // A host (lower) inode also sits where the host directory has it, unless the layers hide or replace it there.
      const hp = chain.lower?.hostParent(ino);
      if (hp && !out.includes(hp.parent) && m.lookup(hp.parent, hp.name, chain)?.ino === ino) out.push(hp.parent);
      return out;
    };
    for (const chain of [A, B]) {
      const seen = new Set<number>();
      for (const ino of [...changedInos, ...dirtyDirs]) markUp(ino, chain, seen);
    }
    const out: DiffEntry[] = [];
    const rowA = (ino: number) => m.getInode(ino, A)?.row;
    const rowB = (ino: number) => m.getInode(ino, B)?.row;
    const listAll = (chain: Chain, ino: number, path: string, change: "added" | "deleted") => {
      for (const [name, e] of m.list(ino, chain)) {
        const row = m.getInode(e.ino, chain)?.row;
        if (!row) continue;
        const p = childPath(path, name);
        out.push(change === "added" ? { path: p, change, kind: kindOf(row.mode), sizeAfter: sizeOf(row) } : { path: p, change, kind: kindOf(row.mode), sizeBefore: sizeOf(row) });
        if ((row.mode & S_IFMT) === S_IFDIR) listAll(chain, e.ino, p, change);
      }
    };
    const walk = (ia: number, ib: number, path: string) => {
      if (ia === ib && !marked.has(ia) && !dirtyDirs.has(ia)) return;
      const la = m.list(ia, A);
      const lb = m.list(ib, B);
      const names = new Set([...la.keys(), ...lb.keys()]);
      for (const name of [...names].sort()) {
        const ea = la.get(name);
        const eb = lb.get(name);
        const p = childPath(path, name);
        if (ea && !eb) {
          const r = rowA(ea.ino);
          if (!r) continue;
          out.push({ path: p, change: "deleted", kind: kindOf(r.mode), sizeBefore: sizeOf(r) });
          if ((r.mode & S_IFMT) === S_IFDIR) listAll(A, ea.ino, p, "deleted");
          continue;
        }
        if (!ea && eb) {
          const r = rowB(eb.ino);
          if (!r) continue;
          out.push({ path: p, change: "added", kind: kindOf(r.mode), sizeAfter: sizeOf(r) });
          if ((r.mode & S_IFMT) === S_IFDIR) listAll(B, eb.ino, p, "added");
          continue;
        }
        if (ea!.ino === eb!.ino && !changedInos.has(ea!.ino) && !marked.has(ea!.ino)) continue;
        const ra = rowA(ea!.ino);
        const rb = rowB(eb!.ino);
        if (!ra || !rb) continue;
        if ((ra.mode & S_IFMT) !== (rb.mode & S_IFMT)) {
          out.push({ path: p, change: "type-changed", kind: kindOf(rb.mode), kindBefore: kindOf(ra.mode), sizeBefore: sizeOf(ra), sizeAfter: sizeOf(rb) });
          if ((ra.mode & S_IFMT) === S_IFDIR) listAll(A, ea!.ino, p, "deleted");
          if ((rb.mode & S_IFMT) === S_IFDIR) listAll(B, eb!.ino, p, "added");
          continue;
        }
        const what = compareRows(store, ra, rb, B.lower ?? A.lower);
        if (what.length) out.push({ path: p, change: "modified", kind: kindOf(rb.mode), sizeBefore: sizeOf(ra), sizeAfter: sizeOf(rb), what });
        if ((ra.mode & S_IFMT) === S_IFDIR) walk(ea!.ino, eb!.ino, p);
      }
    };
    walk(ROOT_INO, ROOT_INO, "/");
    out.sort((x, y) => (x.path < y.path ? -1 : x.path > y.path ? 1 : 0));
    return out;
  }
}

function sizeOf(r: InodeRow): number {
  return (r.mode & S_IFMT) === S_IFDIR ? 0 : r.size;
}

/** Which aspects of two versions of an entry differ (times are ignored). */
function compareRows(store: Store, a: InodeRow, b: InodeRow, lower?: Lower): string[] {
  const what: string[] = [];
  const type = a.mode & S_IFMT;
  if (type === S_IFREG && !sameContent(store, a, b, lower)) what.push("content");
  if ((a.mode & 0o7777) !== (b.mode & 0o7777)) what.push("mode");
  if (a.uid !== b.uid || a.gid !== b.gid) what.push("owner");
  if (type === S_IFLNK && a.target !== b.target) what.push("target");
  if ((type === S_IFCHR || type === S_IFBLK) && a.rdev !== b.rdev) what.push("rdev");
  if (!bufEq(a.xattrs, b.xattrs)) what.push("xattrs");
  return what;
}

function bufEq(a: Buffer | null, b: Buffer | null): boolean {
  if (!a || !b) return !a === !b && (!a || a.length === 0) === (!b || b.length === 0);
  return a.equals(b);
}

/** Equal contents: same extents, or (different chunking of) the same bytes. */
function sameContent(store: Store, a: InodeRow, b: InodeRow, lower?: Lower): boolean {
  if (a.size !== b.size) return false;
  const la = a.rdev === LOWER_DATA;
  const lb = b.rdev === LOWER_DATA;
  if (la && lb && a.ino === b.ino) return true; // the same host file, read live on both sides
  if (!la && !lb && bufEq(a.extents, b.extents)) return true;
  const ea = decodeExtents(a.extents);
  const eb = decodeExtents(b.extents);
  const rd = (r: InodeRow, e: typeof ea, buf: Buffer, pos: number) =>
    r.rdev === LOWER_DATA && lower ? lower.read(r.ino, r.size, buf, 0, buf.length, pos) : readExtents(store.cas, e, r.size, buf, 0, buf.length, pos);
  const step = 1 << 20;
  const ba = Buffer.allocUnsafe(step);
  const bb = Buffer.allocUnsafe(step);
  for (let pos = 0; pos < a.size; pos += step) {
    const n = rd(a, ea, ba, pos);
    rd(b, eb, bb, pos);
    if (!ba.subarray(0, n).equals(bb.subarray(0, n))) return false;
  }
  return true;
}

// ------------------------------------------------------------------ gc

/** What a gc run removed. Bytes are as stored (after compression). */
export interface GcReport {
  layersRemoved: number;
  inodeVersionsRemoved: number;
  dentriesRemoved: number;
  objectsRemoved: number;
  bytesFreed: number;
  objectsKept: number;
}

/** Layer ids reachable from any branch head or snapshot. */
export function liveLayers(store: Store): Set<number> {
  const m = store.manifest;
  const live = new Set<number>();
  const roots = [
    ...(m.db.prepare(`SELECT head FROM branches`).pluck().all() as number[]),
    ...(m.db.prepare(`SELECT layer FROM snapshots`).pluck().all() as number[]),
  ];
  for (const r of roots) for (const id of m.chainOf(r)) live.add(id);
  return live;
}

/** What `collectLayers` removed. */
export interface LayerGcReport {
  layersRemoved: number;
  inodeVersionsRemoved: number;
  dentriesRemoved: number;
}

/** Overlay roots: bottom layers over a host directory (meta `lower:<id>`). */
function overlayRootsOf(store: Store): Set<number> {
  return new Set((store.manifest.db.prepare(`SELECT key FROM meta WHERE key LIKE 'lower:%'`).pluck().all() as string[]).map((k) => Number(k.slice(6))));
}

/**
 * Layers no branch or snapshot reaches, children before parents (a child's
 * id is always larger), so that no delete leaves a dead layer whose parent
 * row is already gone (FOREIGN KEY). A dead layer never comes back to life:
 * branches and snapshots are only ever made from live ones.
 */
export function deadLayers(store: Store): number[] {
  const live = liveLayers(store);
  const all = store.manifest.db.prepare(`SELECT id FROM layers ORDER BY id DESC`).pluck().all() as number[];
  return all.filter((id) => !live.has(id));
}

/**
 * Removes the row of dead layer `id` (its inode and dentry rows already
 * gone), and when it was an overlay root its host directory and paths.
 * Inside a write transaction.
 */
export function dropLayer(store: Store, id: number): void {
  const m = store.manifest;
  if (overlayRootsOf(store).has(id)) {
    // A dead overlay root: forget its host directory and paths too (its id may be reused).
    m.db.prepare(`DELETE FROM meta WHERE key = ?`).run(lowerMetaKey(id));
    m.db.prepare(`DELETE FROM overlay_paths WHERE root = ?`).run(id);
  }
  m.db.prepare(`DELETE FROM layers WHERE id = ?`).run(id);
}

/**
 * The next layer compaction merges: a layer that no branch or snapshot names
 * itself (nor an overlay root, whose host directory is recorded against its
 * id) and that has exactly one child, which takes its rows (the child's win).
 * Its chain reads the same, but versions only it held (files changed or
 * deleted after a since-deleted snapshot) become unreferenced, so their data
 * goes. Highest id first; null when there is none.
 */
export function nextMerge(store: Store): { layer: number; child: number } | null {
  const m = store.manifest;
  const named = new Set<number>([
    ...(m.db.prepare(`SELECT head FROM branches`).pluck().all() as number[]),
    ...(m.db.prepare(`SELECT layer FROM snapshots`).pluck().all() as number[]),
    ...overlayRootsOf(store),
  ]);
  const children = m.db.prepare(`SELECT id FROM layers WHERE parent = ? LIMIT 2`).pluck();
  for (const l of m.db.prepare(`SELECT id FROM layers ORDER BY id DESC`).pluck().all() as number[]) {
    if (named.has(l)) continue;
    const kids = children.all(l) as number[];
    if (kids.length === 1) return { layer: l, child: kids[0]! };
  }
  return null;
}

/**
 * Moves every row of `layer` into `child` where the child has none of its
 * own, and deletes the rest (the child's shadow them); returns the rows
 * deleted. Inside a write transaction; one statement per table, so it
 * holds the caller in proportion to the layer's rows.
 */
export function mergeRows(store: Store, layer: number, child: number): Omit<LayerGcReport, "layersRemoved"> {
  const db = store.manifest.db;
  const a = { c: child, l: layer };
  db.prepare(`UPDATE inodes SET layer = @c WHERE layer = @l AND ino NOT IN (SELECT ino FROM inodes WHERE layer = @c)`).run(a);
  db.prepare(`UPDATE dentries SET layer = @c WHERE layer = @l
    AND NOT EXISTS (SELECT 1 FROM dentries AS d2 WHERE d2.layer = @c AND d2.parent = dentries.parent AND d2.name = dentries.name)`).run(a);
  return {
    inodeVersionsRemoved: db.prepare(`DELETE FROM inodes WHERE layer = ?`).run(layer).changes,
    dentriesRemoved: db.prepare(`DELETE FROM dentries WHERE layer = ?`).run(layer).changes,
  };
}

/** After the rows of `layer` moved into `child` (or were shadowed and deleted): `child` takes `layer`'s place. Inside a write transaction. */
export function finishMerge(store: Store, layer: number, child: number): void {
  const db = store.manifest.db;
  db.prepare(`UPDATE layers SET parent = (SELECT parent FROM layers WHERE id = ?) WHERE id = ?`).run(layer, child);
  db.prepare(`DELETE FROM layers WHERE id = ?`).run(layer);
}

/**
 * The layer half of gc: removes layers no branch or snapshot reaches (with
 * their rows) and merges each layer `nextMerge` names into its child. Must
 * run inside a write transaction of the store's manifest; call
 * `afterLayerGc` once it committed, if it removed anything.
 */
export function collectLayers(store: Store): LayerGcReport {
  const m = store.manifest;
  const dead = deadLayers(store);
  let inodeVersionsRemoved = 0;
  let dentriesRemoved = 0;
  const delI = m.db.prepare(`DELETE FROM inodes WHERE layer = ?`);
  const delD = m.db.prepare(`DELETE FROM dentries WHERE layer = ?`);
  for (const id of dead) {
    inodeVersionsRemoved += delI.run(id).changes;
    dentriesRemoved += delD.run(id).changes;
    dropLayer(store, id);
  }
  let merged = 0;
  for (let next = nextMerge(store); next; next = nextMerge(store)) {
    const { layer: l, child: c } = next;
    const r = mergeRows(store, l, c);
    inodeVersionsRemoved += r.inodeVersionsRemoved;
    dentriesRemoved += r.dentriesRemoved;
    finishMerge(store, l, c);
    merged++;
  }
  return { layersRemoved: dead.length + merged, inodeVersionsRemoved, dentriesRemoved };
}

/** After a committed gc that removed layers or rows: every cache of them in this process is dropped. */
export function afterLayerGc(store: Store): void {
  store.manifest.clearCaches();
  store.forgetLowers();
  store.gen++;
}

/**
 * Removes layers no branch or snapshot reaches, their rows, and every CAS
 * object no remaining inode version references; `keep` hashes (hex) are
 * spared (chunks of files open but unlinked in this process). One write
 * transaction: a crash leaves the store as before or after. It holds the
 * caller for its whole run; a server uses `gcAsync`.
 */
export function gc(store: Store, keep: Set<string> = new Set()): GcReport {
  const m = store.manifest;
  const removedHashes: Buffer[] = [];
  const packed: PackLocation[] = [];
  const rep = m.write(() => {
    const layers = collectLayers(store);
    const { objects, examined } = unreferencedObjects(m.db, keep);
    let bytesFreed = 0;
    for (const o of objects) {
      const { loc } = store.cas.remove(o.hash);
      if (loc) packed.push(loc);
      if (store.cas.backend) removedHashes.push(o.hash);
      bytesFreed += o.stored;
    }
    return { ...layers, objectsRemoved: objects.length, bytesFreed, objectsKept: examined - objects.length };
  });
  // Bodies in an object backend are freed only once the deletion committed; pack ranges only once it is
  // durable too (a hole punch can reach the disk before a commit made with synchronous=NORMAL: after a
  // power loss the rows would be back, pointing at zeros).
  m.settle();
  store.cas.releaseBodies(removedHashes);
  if (packed.length) {
    m.syncFilesSync();
    store.cas.packs?.punchFreed(packed);
  }
  store.cas.clearCache();
  afterLayerGc(store);
  try {
    m.db.pragma("wal_checkpoint(TRUNCATE)");
  } catch {
    /* another process holds the WAL; the checkpoint happens later */
  }
  return rep;
}

// ------------------------------------------------------------------ fsck

/** One problem fsck found: a stable `kind`, a precise message, and the objects/paths involved. */
export interface FsckProblem {
  kind: "sqlite" | "corrupt-object" | "missing-object" | "dangling-dentry" | "type-mismatch" | "nlink" | "orphan" | "size" | "cycle" | "damaged-row";
  message: string;
  view?: string;
  path?: string;
  ino?: number;
  object?: string;
}

/** The result of fsck: `ok` when no problem was found, plus counts of what was checked. */
export interface FsckReport {
  ok: boolean;
  problems: FsckProblem[];
  checked: { objects: number; inodeVersions: number; views: number; entries: number };
}

/**
 * Verifies the store: SQLite's integrity check; every object's hash; every
 * referenced object's presence; and, for every branch and snapshot, the tree
 * (dangling dentries, dentry/inode type agreement, nlink counts, directory
 * cycles, extent sizes, orphaned inode versions in the view's top layer).
 * Read-only: it reports, it never repairs.
 */
export function fsck(store: Store, opts: { onProgress?: (done: number, total: number, phase: string) => void } = {}): FsckReport {
  const m = store.manifest;
  const problems: FsckProblem[] = [];
  const checked = { objects: 0, inodeVersions: 0, views: 0, entries: 0 };
  try {
    const res = m.db.pragma("integrity_check") as Array<{ integrity_check: string }>;
    for (const r of res) if (r.integrity_check !== "ok") problems.push({ kind: "sqlite", message: `SQLite integrity_check: ${r.integrity_check}` });
  } catch (e) {
    problems.push({ kind: "sqlite", message: `SQLite integrity_check failed: ${(e as Error).message}` });
    return { ok: false, problems, checked };
  }
  m.read(() => {
    // Objects: verify every hash, and the CRC-32 that reads check.
    const total = m.db.prepare(`SELECT count(*) FROM objects`).pluck().get() as number;
    const present = new Set<string>();
    for (const o of m.db.prepare(`SELECT ${objectRowColumns(objectColumns(m.db))} FROM objects`).iterate() as Iterable<ObjectRow>) {
      const hex = o.hash.toString("hex");
      present.add(hex);
      checked.objects++;
      if (checked.objects % 1000 === 0) opts.onProgress?.(checked.objects, total, "objects");
      const bad = (why: string) => problems.push({ kind: "corrupt-object", object: hex, message: `object ${hex}: ${why}` });
      let data: Buffer;
      try {
        data = decodeBody(hex, o.codec, store.cas.bodyOf(o));
      } catch (e) {
        problems.push({ kind: "corrupt-object", object: hex, message: (e as Error).message });
        continue;
      }
      if (data.length !== o.size || !sha256(data).equals(o.hash)) bad("contents do not match its SHA-256 (stored bytes are corrupt)");
      else if (o.crc !== null && crc32(data) !== o.crc) bad("its CRC-32 column does not match its contents (reads of it fail)");
    }
    // Inode versions: extents decode, sizes agree, referenced objects exist.
    for (const r of m.db.prepare(`SELECT ino, layer, mode, size, nlink, extents FROM inodes`).iterate() as Iterable<any>) {
      checked.inodeVersions++;
      if ((r.mode & S_IFMT) !== S_IFREG || r.nlink === 0) continue;
      let exts;
      try {
        exts = decodeExtents(r.extents);
      } catch {
        problems.push({ kind: "damaged-row", ino: r.ino, message: `inode ${r.ino} (layer ${r.layer}): extent list is damaged` });
        continue;
      }
      let sum = 0;
      for (const e of exts) {
        sum += e.len;
        if (e.hash && !present.has(e.hash.toString("hex"))) {
          problems.push({ kind: "missing-object", ino: r.ino, object: e.hash.toString("hex"), message: `inode ${r.ino} (layer ${r.layer}) references missing object ${e.hash.toString("hex")}` });
        }
      }
      if (sum > r.size) problems.push({ kind: "size", ino: r.ino, message: `inode ${r.ino} (layer ${r.layer}): extents cover ${sum} bytes but size is ${r.size}` });
    }
    // Views: every branch and snapshot.
    const views: Array<{ label: string; layer: number; branch: boolean }> = [
      ...(m.db.prepare(`SELECT name, head FROM branches`).all() as any[]).map((b) => ({ label: `branch ${b.name}`, layer: b.head, branch: true })),
      ...(m.db.prepare(`SELECT name, layer FROM snapshots`).all() as any[]).map((s) => ({ label: `snapshot ${s.name}`, layer: s.layer, branch: false })),
    ];
    for (const v of views) {
      checked.views++;
      checkView(store, store.chainOfLayer(v.layer), v.label, problems, checked);
    }
  });
  const ok = problems.length === 0;
  return { ok, problems, checked };
}

function checkView(store: Store, chain: Chain, label: string, problems: FsckProblem[], checked: FsckReport["checked"]): void {
  const m = store.manifest;
  const links = new Map<number, number>();
  const rows = new Map<number, InodeRow>();
  const seenDirs = new Set<number>();
  const stack: Array<{ ino: number; path: string }> = [{ ino: ROOT_INO, path: "/" }];
  const root = m.getInode(ROOT_INO, chain)?.row;
  if (!root) {
    problems.push({ kind: "dangling-dentry", view: label, path: "/", message: `${label}: the root directory inode is missing` });
    return;
  }
  rows.set(ROOT_INO, root);
  seenDirs.add(ROOT_INO);
  while (stack.length) {
    const { ino, path } = stack.pop()!;
    let subdirs = 0;
    for (const [name, e] of m.list(ino, chain)) {
      checked.entries++;
      const p = childPath(path, name);
      const row = m.getInode(e.ino, chain)?.row;
      if (!row) {
        problems.push({ kind: "dangling-dentry", view: label, path: p, ino: e.ino, message: `${label}: ${p} points at inode ${e.ino}, which does not exist` });
        continue;
      }
      rows.set(e.ino, row);
      if ((row.mode & S_IFMT) !== e.type) {
        problems.push({ kind: "type-mismatch", view: label, path: p, ino: e.ino, message: `${label}: ${p} is listed as type ${e.type.toString(8)} but inode ${e.ino} has mode ${row.mode.toString(8)}` });
      }
      if ((row.mode & S_IFMT) === S_IFDIR) {
        subdirs++;
        if (seenDirs.has(e.ino)) {
          problems.push({ kind: "cycle", view: label, path: p, ino: e.ino, message: `${label}: directory inode ${e.ino} is reachable twice (at ${p})` });
          continue;
        }
        seenDirs.add(e.ino);
        stack.push({ ino: e.ino, path: p });
      } else {
        links.set(e.ino, (links.get(e.ino) ?? 0) + 1);
      }
    }
    const dir = rows.get(ino)!;
    if (dir.nlink !== 2 + subdirs) {
      problems.push({ kind: "nlink", view: label, path, ino, message: `${label}: directory ${path} has nlink ${dir.nlink}, expected ${2 + subdirs}` });
    }
  }
  for (const [ino, n] of links) {
    const row = rows.get(ino)!;
    if (row.nlink !== n) problems.push({ kind: "nlink", view: label, ino, message: `${label}: inode ${ino} has nlink ${row.nlink} but ${n} directory entr${n === 1 ? "y" : "ies"} point at it` });
  }
  // Orphans: live inode versions in the view's top layer that the tree does not reach.
  for (const ino of m.db.prepare(`SELECT ino FROM inodes WHERE layer = ? AND nlink > 0`).pluck().all(chain.head) as number[]) {
    if (!rows.has(ino)) problems.push({ kind: "orphan", view: label, ino, message: `${label}: inode ${ino} is stored but no directory entry reaches it (orphan; 'agentfs gc' does not remove it, fsck reports it)` });
  }
}

// ------------------------------------------------------------------ stats

/** Space and shape of a store and one tree. Bytes throughout; ratios are ≥ 1 when saving space. */
export interface StoreStats {
  tree: { files: number; dirs: number; symlinks: number; logicalBytes: number };
  store: {
    objects: number;
    /**
     * Data extents across the stored inode versions of all layers (chunk
     * references). A version shared by several snapshots is stored, and
     * counted, once.
     */
    chunkRefs: number;
    /** Bytes those references cover: what the stored versions would take without chunk dedup. */
    referencedBytes: number;
    /** Bytes of unique chunks before compression. */
    uniqueBytes: number;
    /** Bytes of unique chunks as stored. */
    storedBytes: number;
    /** referencedBytes / uniqueBytes. */
    dedupRatio: number;
    /** uniqueBytes / storedBytes. */
    compressionRatio: number;
    /** Manifest database and WAL on disk. */
    databaseBytes: number;
    /** Pack files (`packs/`): how many, and the bytes they take on disk (allocated blocks: ranges gc punched count nothing). */
    packFiles: number;
    packBytes: number;
    layers: number;
    branches: number;
    snapshots: number;
  };
}

/** Computes stats for the store and the tree of `target`. Errors: ENOENT for an unknown target. */
export function stats(store: Store, target: Target): StoreStats {
  const m = store.manifest;
  return m.read(() => {
    const chain = store.chainOf(target);
    const tree = { files: 0, dirs: 0, symlinks: 0, logicalBytes: 0 };
    const seen = new Set<number>();
    const stack = [ROOT_INO];
    while (stack.length) {
      const ino = stack.pop()!;
      for (const [, e] of m.list(ino, chain)) {
        if (e.type === S_IFDIR) {
          tree.dirs++;
          stack.push(e.ino);
        } else if (e.type === S_IFLNK) tree.symlinks++;
        else if (!seen.has(e.ino)) {
          seen.add(e.ino);
          tree.files++;
          tree.logicalBytes += m.getInode(e.ino, chain)?.row.size ?? 0;
        }
      }
    }
    const o = m.db.prepare(`SELECT count(*) AS n, coalesce(sum(size),0) AS raw, coalesce(sum(stored),0) AS stored FROM objects`).get() as { n: number; raw: number; stored: number };
    let chunkRefs = 0;
    let referencedBytes = 0;
    for (const ext of m.db.prepare(`SELECT extents FROM inodes WHERE extents IS NOT NULL AND nlink > 0`).pluck().iterate() as Iterable<Buffer>) {
      for (const e of decodeExtents(ext)) {
        if (e.hash) {
          chunkRefs++;
          referencedBytes += e.len;
        }
      }
    }
    let databaseBytes = 0;
    for (const f of [m.file, m.file + "-wal"]) {
      try {
        databaseBytes += statSync(f).size;
      } catch {
        /* no WAL */
      }
    }
    let packFiles = 0;
    let packBytes = 0;
    const packDir = store.cas.packs?.dir;
    if (packDir && existsSync(packDir)) {
      for (const f of readdirSync(packDir)) {
        if (!f.endsWith(".pack")) continue;
        try {
          packBytes += statSync(join(packDir, f)).blocks * 512;
          packFiles++;
        } catch {
          /* removed meanwhile */
        }
      }
    }
    const count = (t: string) => m.db.prepare(`SELECT count(*) FROM ${t}`).pluck().get() as number;
    return {
      tree,
      store: {
        objects: o.n,
        chunkRefs,
        referencedBytes,
        uniqueBytes: o.raw,
        storedBytes: o.stored,
        dedupRatio: o.raw ? referencedBytes / o.raw : 1,
        compressionRatio: o.stored ? o.raw / o.stored : 1,
        databaseBytes,
        packFiles,
        packBytes,
        layers: count("layers"),
        branches: count("branches"),
        snapshots: count("snapshots"),
      },
    };
  });
}
