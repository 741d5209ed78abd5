/**
 * A store: one manifest database (inodes, dentries, layers, branches,
 * snapshots, CAS objects) in a directory. `Store` owns branches and
 * snapshots; file operations go through an `FsCore` view of one branch or
 * snapshot.
 */
import { MemoryBackstore, type Backstore } from "./backstore.js";
import { ObjectStore, type ObjectBackend } from "./cas.js";
import { Chunker, DEFAULT_CHUNK_PARAMS, type ChunkParams } from "./chunker.js";
import { DeferredCompressor, type DeferredCompressionStats } from "./deferredgzip.js";
import { StoreError } from "./errors.js";
import { Manifest, ROOT_INO, makeChain, nowNs, type Chain } from "./manifest.js";
import { Lower, OVERLAY_SCHEMA, lowerMetaKey } from "./overlay.js";
import { dirname, join, resolve as resolvePath } from "node:path";
import { PACKS_DIR, PackFiles, type PunchHole } from "./packs.js";
import { statfsSync, type StatsFs } from "node:fs";
import { freemem, totalmem } from "node:os";

/** Options for opening a store. */
export interface StoreOptions {
  /** Create the store if `dir` has none (default false). */
  create?: boolean;
  /** Where working buffers of open files live (default: `MemoryBackstore`). */
  backstore?: Backstore;
  /** gzip level for chunks, 1 (fastest, default) to 9 (smallest). */
  compressionLevel?: number;
  /**
   * A RAM store: the manifest lives in memory only (`dir` is just a label;
   * nothing is created on disk) and the store vanishes when closed. Usually
   * combined with `objectBackend` so object bytes live outside the heap.
   */
  inMemory?: boolean;
  /** Where object bodies live (default: the manifest database). See `ObjectBackend`. */
  objectBackend?: ObjectBackend;
  /**
   * The platform's hole punch (fallocate(2) FALLOC_FL_PUNCH_HOLE; e.g.
   * `punchHoleFd` of @agentfs/backstore-linux). With it, commit workers put
   * large chunk bodies into pack files beside the manifest and gc frees
   * their ranges (packs.ts); without it, bodies stay in the database (packs
   * already there are read either way).
   */
  punchHole?: PunchHole;
}

/** `Manifest.markPackFormat`, reporting whether the store is now marked (false: it could not be written). */
function markedForPacks(manifest: Manifest): boolean {
  try {
    manifest.markPackFormat();
    return true;
  } catch {
    return false;
  }
}

/**
 * Before this process may append to packs (`PackFiles.claim`): when markers
 * of other writers are in the pack folder and no claim is held anywhere
 * (`PackFiles.alone`), they are left from processes that ended without
 * closing the store, so frees the pack bytes no row refers to
 * (`PackFiles.sweep`, after making the rows durable). Then claims. Returns
 * false when the claim cannot be made (EACCES, EROFS, a sweep elsewhere
 * outlasting the wait): the caller writes no packs. A failed sweep is left
 * for the next open.
 */
function claimedForPacks(manifest: Manifest, cas: ObjectStore, packs: PackFiles): boolean {
  const left = packs.claims();
  if (left.length) {
    try {
      packs.alone(() => {
        const ranges = manifest.read(() => cas.packedRanges());
        if (ranges === null) return; // (no pack columns: nothing could tell what is kept)
        manifest.syncFilesSync();
        packs.sweep(ranges, left);
      });
    } catch {
      /* the bytes stay until a later open */
    }
  }
  try {
    packs.claim();
    return true;
  } catch {
    return false;
  }
}

/** A snapshot as listed: name, the branch it was taken from, creation time (ns since epoch) and message. */
export interface SnapshotInfo {
  name: string;
  branch: string | null;
  created: bigint;
  message: string | null;
  layer: number;
}

/** A branch as listed: name, whether it is checked out, what it was created from, creation time (ns). */
export interface BranchInfo {
  name: string;
  current: boolean;
  origin: string | null;
  created: bigint;
  head: number;
}

/** What a view reads: the checked-out branch, a named branch, or a snapshot (read-only). */
export type Target = { branch: string } | { snapshot: string };

/**
 * Checks a branch or snapshot name. Errors: EINVAL for empty names, names
 * with "/", NUL, whitespace-only, a leading "-", or "." / ".."; ENAMETOOLONG
 * over 255 bytes.
 */
export function checkRefName(kind: string, name: string): void {
  if (typeof name !== "string" || name.trim() === "" || name === "." || name === ".." || /[\/\0]/.test(name) || name.startsWith("-")) {
    throw new StoreError("EINVAL", `invalid ${kind} name ${JSON.stringify(name)}`);
  }
  if (Buffer.byteLength(name) > 255) throw new StoreError("ENAMETOOLONG", `${kind} name is longer than 255 bytes`);
}

/** Capacity of the filesystem a store lives on, as statvfs(3) reports it: block counts in `bsize`-byte units, inode counts. */
export interface StoreCapacity {
  /** Block size in bytes. */
  bsize: number;
  blocks: number;
  bfree: number;
  /** Free blocks an unprivileged caller may use. */
  bavail: number;
  files: number;
  ffree: number;
}

/** An open store. Not safe to share across threads; any number of processes may open one store. */
export class Store {
  readonly dir: string;
  readonly manifest: Manifest;
  readonly cas: ObjectStore;
  readonly chunker: Chunker;
  readonly backstore: Backstore;
  /** Bumped whenever layers, branches or snapshots may have changed (by us or another process). */
  gen = 0;

  private constructor(dir: string, manifest: Manifest, opts: StoreOptions) {
    this.dir = dir;
    this.manifest = manifest;
    const level = opts.compressionLevel ?? Number(manifest.getMeta("compression_level") ?? 1);
    // A process packs only in a store marked with the format older versions refuse (Manifest.markPackFormat);
    // when that cannot be recorded, it writes no packs (it reads them, and gc leaves their ranges in place).
    const mayPack = !!opts.punchHole && !manifest.db.memory && !manifest.db.readonly && !opts.objectBackend && markedForPacks(manifest);
    const packs = manifest.db.memory ? null : new PackFiles(join(dirname(manifest.file), PACKS_DIR), mayPack ? opts.punchHole! : null);
    this.cas = new ObjectStore(manifest.db, level, opts.objectBackend, packs);
    const params = JSON.parse(String(manifest.getMeta("chunk_params") ?? "null")) as ChunkParams | null;
    this.chunker = new Chunker(params ?? DEFAULT_CHUNK_PARAMS);
    this.backstore = opts.backstore ?? new MemoryBackstore();
    // Held changes were rolled back after they were answered: views rebuild their chains and drop decoded
    // extents (gen), and host paths of overlay inodes persisted in that transaction are written again.
    manifest.onHeldRollback(() => {
      this.gen++;
      for (const l of this.lowers.values()) l?.resaveAll();
    });
    // Last (nothing after it may throw and leave the claim behind): markers of writers that ended without
    // closing the store free what their cut-short commits left in packs, if no claim is held; then this
    // process's own claim (it writes no packs without one).
    if (packs && mayPack && !claimedForPacks(manifest, this.cas, packs)) packs.disable();
  }

  /**
   * Opens the store in directory `dir` (creating it with `create`; with
   * `inMemory`, a new empty RAM store labelled `dir`). Errors:
   * ENOENT (no store), EIO (damaged or non-SQLite manifest), EINVAL (a SQLite
   * file of another format), EBUSY (locked too long by another process).
   */
  static open(dir: string, opts: StoreOptions = {}): Store {
    const m = Manifest.open(dir, { create: opts.create, memory: opts.inMemory });
    try {
      if (m.getMeta("chunk_params") == null) {
        m.write(() => {
          m.setMeta("chunk_params", JSON.stringify(DEFAULT_CHUNK_PARAMS));
          m.setMeta("compression_level", opts.compressionLevel ?? 1);
        });
      }
      return new Store(dir, m, opts);
    } catch (e) {
      m.close();
      throw e;
    }
  }

  /**
   * Capacity as statvfs(3) reports it for the store's own filesystem: for a
   * store on disk, that of the host filesystem holding its directory (as
   * overlayfs reports its upper layer's), so `df` on a mount shows the room
   * really left; for a RAM store (`inMemory`), the machine's memory — total,
   * and available as free — in 4 KiB blocks, with as many inodes as blocks.
   * Errors: those of statfs(2) as StoreError (EACCES, ENOENT, EIO).
   */
  capacity(): StoreCapacity {
    if (this.manifest.db.memory) {
      const bsize = 4096;
      const blocks = Math.floor(totalmem() / bsize);
      const bfree = Math.min(blocks, Math.floor(freemem() / bsize));
      return { bsize, blocks, bfree, bavail: bfree, files: blocks, ffree: bfree };
    }
    let s: StatsFs;
    try {
      s = statfsSync(this.dir);
    } catch (e) {
      const code = (e as NodeJS.ErrnoException).code;
      throw new StoreError(code === "EACCES" || code === "ENOENT" ? code : "EIO", `statfs of ${this.dir}: ${(e as Error).message}`);
    }
    return { bsize: s.bsize, blocks: s.blocks, bfree: s.bfree, bavail: s.bavail, files: s.files, ffree: s.ffree };
  }

  /** Closes the database (after stopping deferred compression, which compresses what is still queued). */
  close(): void {
    try {
      this.deferCompression(false);
    } finally {
      this.manifest.close();
      this.cas.packs?.close();
    }
  }

  /**
   * Turns deferred compression on or off (`DeferredCompressor`): while on,
   * chunks of synchronous commits are stored raw and compressed shortly
   * after in a worker, off the event loop. For long-running servers (the
   * FUSE daemon); a process that exits right after writing should leave it
   * off. Turning it off compresses what is still queued, synchronously.
   * Returns the compressor's counters (null when it was never on). Errors:
   * EIO when turning it off fails to write (the objects stay raw).
   */
  deferCompression(on: boolean): DeferredCompressionStats | null {
    if (on) this.deferral ??= new DeferredCompressor(this);
    else if (this.deferral) {
      const d = this.deferral;
      this.deferral = null;
      d.stop();
      return d.stats;
    }
    return this.deferral?.stats ?? null;
  }

  private deferral: DeferredCompressor | null = null;

  /** Notices changes committed by other processes; call at the start of every operation. */
  sync(): void {
    if (this.manifest.changedByOthers()) this.gen++;
  }

  /** Name of the checked-out branch (as `.git/HEAD`). */
  currentBranch(): string {
    return String(this.manifest.getMeta("head") ?? "main");
  }

  /** Checks out `name`: later commands without --branch use it. Errors: ENOENT. */
  checkout(name: string): void {
    this.manifest.write(() => {
      this.branchHead(name);
      this.manifest.setMeta("head", name);
    });
  }

  /** Head layer of branch `name`. Errors: ENOENT. */
  branchHead(name: string): number {
    const r = this.manifest.db.prepare(`SELECT head FROM branches WHERE name = ?`).pluck().get(name) as number | undefined;
    if (r === undefined) throw new StoreError("ENOENT", `no branch named '${name}'`);
    return r;
  }

  /** Layer of snapshot `name`. Errors: ENOENT. */
  snapshotLayer(name: string): number {
    const r = this.manifest.db.prepare(`SELECT layer FROM snapshots WHERE name = ?`).pluck().get(name) as number | undefined;
    if (r === undefined) throw new StoreError("ENOENT", `no snapshot named '${name}'`);
    return r;
  }

  /** The layer chain a target reads (head first), with its host directory when it is an overlay. Errors: ENOENT for an unknown branch or snapshot. */
  chainOf(target: Target): Chain {
    const layer = "snapshot" in target ? this.snapshotLayer(target.snapshot) : this.branchHead(target.branch);
    return this.chainOfLayer(layer);
  }

  private readonly lowers = new Map<number, Lower | null>();

  /** The chain of `layer` (head first), with its host directory when its bottom layer is an overlay root. */
  chainOfLayer(layer: number): Chain {
    const ids = this.manifest.chainOf(layer);
    return makeChain(ids, this.lowerOf(ids[ids.length - 1]) ?? undefined);
  }

  /** The host directory below bottom layer `rootLayer`, or null when it is not an overlay root. */
  lowerOf(rootLayer: number): Lower | null {
    let l = this.lowers.get(rootLayer);
    if (l === undefined) {
      const dir = this.manifest.getMeta(lowerMetaKey(rootLayer));
      l = typeof dir === "string" ? new Lower(dir, rootLayer, this.manifest.db, resolvePath(this.dir)) : null;
      this.lowers.set(rootLayer, l);
    }
    return l;
  }

  /** Drops the cached host directories of overlay roots (after `gc` removed layers). */
  forgetLowers(): void {
    this.lowers.clear();
  }

  /** The host directory (absolute path) branch or snapshot `target` sits over, or null for an ordinary one. Errors: ENOENT. */
  lowerDirOf(target: Target): string | null {
    return this.chainOf(target).lower?.root ?? null;
  }

  /** Branches, sorted by name. */
  listBranches(): BranchInfo[] {
    const cur = this.currentBranch();
    const rows = this.manifest.db.prepare(`SELECT name, head, created, origin FROM branches ORDER BY name`).safeIntegers(true).all() as any[];
    return rows.map((r) => ({ name: r.name, head: Number(r.head), created: BigInt(r.created), origin: r.origin, current: r.name === cur }));
  }

  /** Snapshots, oldest first. */
  listSnapshots(): SnapshotInfo[] {
    const rows = this.manifest.db.prepare(`SELECT name, layer, branch, created, message FROM snapshots ORDER BY created, name`).safeIntegers(true).all() as any[];
    return rows.map((r) => ({ name: r.name, layer: Number(r.layer), branch: r.branch, created: BigInt(r.created), message: r.message }));
  }

  /** True when a layer holds no rows (nothing changed in it). */
  private layerEmpty(layer: number): boolean {
    const db = this.manifest.db;
    return (
      db.prepare(`SELECT 1 FROM inodes WHERE layer = ? LIMIT 1`).get(layer) === undefined &&
      db.prepare(`SELECT 1 FROM dentries WHERE layer = ? LIMIT 1`).get(layer) === undefined
    );
  }

  /**
   * Freezes branch `branch`'s current state and returns the frozen layer; the
   * branch continues on a fresh empty head. O(1): when nothing changed since
   * the last freeze, the existing frozen parent is reused.
   */
  private freezeHead(branch: string): number {
    const m = this.manifest;
    const head = this.branchHead(branch);
    const parent = (m.db.prepare(`SELECT parent FROM layers WHERE id = ?`).pluck().get(head) as number | null) ?? null;
    if (parent !== null && this.layerEmpty(head)) return parent;
    m.freeze(head);
    const next = m.newLayer(head);
    m.db.prepare(`UPDATE branches SET head = ? WHERE name = ?`).run(next, branch);
    return head;
  }

  /**
   * Takes snapshot `name` of branch `branch` (default: the checked-out one),
   * in constant time. Errors: EEXIST (name taken), EINVAL (bad name), ENOENT
   * (no such branch).
   */
  createSnapshot(name: string, opts: { branch?: string; message?: string } = {}): SnapshotInfo {
    checkRefName("snapshot", name);
    const branch = opts.branch ?? this.currentBranch();
    const info = this.manifest.write(() => {
      if (this.manifest.db.prepare(`SELECT 1 FROM snapshots WHERE name = ?`).get(name)) throw new StoreError("EEXIST", `snapshot '${name}' already exists`);
      const layer = this.freezeHead(branch);
      const created = nowNs();
      this.manifest.db.prepare(`INSERT INTO snapshots(name, layer, branch, created, message) VALUES(?, ?, ?, ?, ?)`).run(name, layer, branch, created, opts.message ?? null);
      return { name, layer, branch, created, message: opts.message ?? null };
    });
    this.gen++;
    return info;
  }

  /** Deletes snapshot `name` (its data is reclaimed by `gc` once nothing else reaches it). Errors: ENOENT. */
  deleteSnapshot(name: string): void {
    this.manifest.write(() => {
      const r = this.manifest.db.prepare(`DELETE FROM snapshots WHERE name = ?`).run(name);
      if (r.changes === 0) throw new StoreError("ENOENT", `no snapshot named '${name}'`);
    });
    this.gen++;
  }

  /**
   * Creates branch `name` from a snapshot or from another branch's current
   * state, in constant time; it shares everything until written. With
   * `{ lower: HOSTDIR }`, an overlay branch copy-on-write over a host
   * directory (see `createOverlayBranch`). Errors: EEXIST, EINVAL, ENOENT
   * (source or host directory missing), ENOTDIR.
   */
  createBranch(name: string, from: { snapshot: string } | { branch: string } | { lower: string } = { branch: this.currentBranch() }): BranchInfo {
    checkRefName("branch", name);
    if ("lower" in from) return this.createOverlayBranch(name, from.lower);
    const info = this.manifest.write(() => {
      if (this.manifest.db.prepare(`SELECT 1 FROM branches WHERE name = ?`).get(name)) throw new StoreError("EEXIST", `branch '${name}' already exists`);
      const base = "snapshot" in from ? this.snapshotLayer(from.snapshot) : this.freezeHead(from.branch);
      const head = this.manifest.newLayer(base);
      const created = nowNs();
      const origin = "snapshot" in from ? `snapshot:${from.snapshot}` : `branch:${from.branch}`;
      this.manifest.db.prepare(`INSERT INTO branches(name, head, created, origin) VALUES(?, ?, ?, ?)`).run(name, head, created, origin);
      return { name, head, created, origin, current: false };
    });
    this.gen++;
    return info;
  }

  /**
   * Creates branch `name` copy-on-write over host directory `lowerDir` (the
   * overlay's lower layer): a new frozen bottom layer holding only the root
   * directory (the host root's metadata) and recording the host path, and
   * the branch's empty head over it. O(1): nothing of the host tree is read.
   * Branches and snapshots made from it later share the same host directory.
   * The host directory is never written. Errors: EEXIST, EINVAL (bad name),
   * ENOENT (no such host directory), ENOTDIR.
   */
  private createOverlayBranch(name: string, lowerDir: string, replacePristine = false): BranchInfo {
    const dir = resolvePath(lowerDir);
    const info = this.manifest.write(() => {
      const m = this.manifest;
      const exists = m.db.prepare(`SELECT 1 FROM branches WHERE name = ?`).get(name) !== undefined;
      if (exists && !(replacePristine && this.isPristine(name))) throw new StoreError("EEXIST", `branch '${name}' already exists`);
      if (exists) m.db.prepare(`DELETE FROM branches WHERE name = ?`).run(name);
      m.db.exec(OVERLAY_SCHEMA);
      const root = m.newLayer(null);
      m.setMeta(lowerMetaKey(root), dir);
      const lower = new Lower(dir, root, m.db);
      const row = lower.rootRow();
      m.putInode(root, { ...row, ino: ROOT_INO });
      m.freeze(root);
      const head = m.newLayer(root);
      const created = nowNs();
      const origin = `lower:${dir}`;
      m.db.prepare(`INSERT INTO branches(name, head, created, origin) VALUES(?, ?, ?, ?)`).run(name, head, created, origin);
      return { name, head, created, origin, current: false };
    });
    this.lowers.delete(info.head);
    this.gen++;
    return info;
  }

  /** True when branch `name` is a new store's untouched state: one layer holding only the root directory, no snapshot. */
  private isPristine(name: string): boolean {
    const db = this.manifest.db;
    const head = this.branchHead(name);
    if (this.manifest.chainOf(head).length !== 1 || this.lowerOf(head)) return false;
    if (db.prepare(`SELECT 1 FROM snapshots WHERE layer = ?`).get(head)) return false;
    if (db.prepare(`SELECT 1 FROM dentries WHERE layer = ? LIMIT 1`).get(head)) return false;
    return (db.prepare(`SELECT count(*) FROM inodes WHERE layer = ?`).pluck().get(head) as number) <= 1;
  }

  /**
   * Makes branch `name` an overlay over host directory `lowerDir` when it is
   * still a new store's untouched state (only the root directory, no
   * snapshot): for `AgentFS.open(dir, { create: true, lower })`, whose
   * `main` then sits over the host directory. Same as `createBranch(name,
   * { lower })` otherwise. Errors: EEXIST (the branch has content), ENOENT,
   * ENOTDIR.
   */
  overlayPristine(name: string, lowerDir: string): BranchInfo {
    return this.createOverlayBranch(name, lowerDir, true);
  }

  /**
   * Points overlay branch `name` at a new empty layer directly over its
   * overlay root, so it reads its host directory afresh (after
   * `applyToLower`): its own changes are dropped (reclaimed by `gc` unless a
   * snapshot holds them). O(1). Errors: ENOENT, EINVAL (not an overlay).
   */
  resetOverlay(name: string): void {
    this.manifest.write(() => {
      const lower = this.chainOf({ branch: name }).lower;
      if (!lower) throw new StoreError("EINVAL", `branch '${name}' is not an overlay`);
      const head = this.manifest.newLayer(lower.rootLayer);
      this.manifest.db.prepare(`UPDATE branches SET head = ? WHERE name = ?`).run(head, name);
    });
    this.manifest.clearCaches();
    this.gen++;
  }

  /** Deletes branch `name`. Errors: ENOENT; EBUSY when it is checked out or the last branch. */
  deleteBranch(name: string): void {
    this.manifest.write(() => {
      this.branchHead(name);
      if (this.currentBranch() === name) throw new StoreError("EBUSY", `branch '${name}' is checked out; check out another branch first`);
      this.manifest.db.prepare(`DELETE FROM branches WHERE name = ?`).run(name);
    });
    this.gen++;
  }

  /**
   * Resets branch `branch` to snapshot `snapshot` in constant time (its
   * unsnapshotted changes are discarded and reclaimed by `gc`). Errors: ENOENT.
   */
  restore(snapshot: string, branch = this.currentBranch()): void {
    this.manifest.write(() => {
      this.branchHead(branch);
      const layer = this.snapshotLayer(snapshot);
      const head = this.manifest.newLayer(layer);
      this.manifest.db.prepare(`UPDATE branches SET head = ? WHERE name = ?`).run(head, branch);
    });
    this.gen++;
  }
}
