/**
 * The SDK entry point: `AgentFS.open(storePath, { branch })` returns an
 * object whose `fs` mirrors `node:fs/promises`, plus the store's snapshot,
 * branch, diff, gc, fsck and stats operations.
 */
import { join, resolve } from "node:path";
import { FsCore, type Credentials } from "./fscore.js";
import { isStoreDir } from "./manifest.js";
import { diff, diffLower, fsck, gc, stats, type DiffEntry, type FsckReport, type GcReport, type StoreStats } from "./maintenance.js";
import { AgentFsPromises } from "./promises.js";
import { Store, type BranchInfo, type SnapshotInfo, type StoreOptions, type Target } from "./store.js";
import type { Backstore } from "./backstore.js";
import { StoreError } from "./errors.js";
import { applyToLower, type ApplyReport } from "./lowerapply.js";
import type { ObjectBackend } from "./cas.js";
import type { PunchHole } from "./packs.js";

/** Name of the store directory that `init` creates and discovery looks for (as `.git`). */
export const STORE_DIR_NAME = ".agentfs";

/** Options of `AgentFS.open`. */
export interface AgentFSOptions {
  /** Branch to read and write (default: the store's checked-out branch). */
  branch?: string;
  /** Snapshot to read (read-only view; writes fail with EROFS). */
  snapshot?: string;
  /** Create the store when `storePath` has none. */
  create?: boolean;
  /** Working-buffer backstore (default: in-memory). */
  backstore?: Backstore;
  /** Mode creation mask for new files (default: the process umask). */
  umask?: number;
  /** Identity for permission checks and new files' owner (default: the process's). */
  cred?: Credentials;
  /** gzip level 1–9 for new chunks. */
  compressionLevel?: number;
  /** Open a new RAM store: manifest in memory, nothing on disk, gone on close (see `StoreOptions.inMemory`). */
  inMemory?: boolean;
  /** Where object bodies live (see `ObjectBackend`; default the manifest database). */
  objectBackend?: ObjectBackend;
  /** The platform's hole punch, which lets large bodies go to pack files (`StoreOptions.punchHole`). */
  punchHole?: PunchHole;
  /**
   * Host directory for an overlay branch. The branch (`branch`, default the
   * checked-out one) is created copy-on-write over this directory when it
   * does not exist (see `Store.createBranch(name, { lower })`); a new
   * store's untouched branch (only the root, no snapshot — so
   * `{ create: true, lower }` makes `main` the overlay) is turned into one;
   * an existing overlay branch must sit over this same directory. Else
   * EINVAL. The host directory is never written.
   */
  lower?: string;
}

/**
 * Resolves a store path: a directory holding the manifest, or a directory
 * whose `.agentfs` child holds it. Returns the directory to open, or
 * undefined when neither exists.
 */
export function locateStore(path: string): string | undefined {
  const p = resolve(path);
  if (isStoreDir(p)) return p;
  const inner = join(p, STORE_DIR_NAME);
  if (isStoreDir(inner)) return inner;
  return undefined;
}

/** Walks up from `start` to `/` looking for a `.agentfs` store, as git finds its repository. */
export function discoverStore(start: string): string | undefined {
  let dir = resolve(start);
  for (;;) {
    const inner = join(dir, STORE_DIR_NAME);
    if (isStoreDir(inner)) return inner;
    const up = resolve(dir, "..");
    if (up === dir) return undefined;
    dir = up;
  }
}

/** An open agentfs store with a `node:fs/promises`-style view of one branch or snapshot. */
export class AgentFS {
  /** The `node:fs/promises`-compatible API of the view. */
  readonly fs: AgentFsPromises;

  private constructor(readonly store: Store, readonly core: FsCore) {
    this.fs = new AgentFsPromises(core);
  }

  /**
   * Opens the store at `storePath` (a store directory, or a directory holding
   * `.agentfs`), viewing `branch` (default: checked out) or `snapshot`.
   * Errors (FsError/StoreError `code`): ENOENT (no store, branch or snapshot),
   * EIO (damaged manifest), EINVAL (not an agentfs database).
   */
  static async open(storePath: string, opts: AgentFSOptions = {}): Promise<AgentFS> {
    return AgentFS.openSync(storePath, opts);
  }

  /** Synchronous `open`. */
  static openSync(storePath: string, opts: AgentFSOptions = {}): AgentFS {
    const dir = opts.inMemory ? storePath : (locateStore(storePath) ?? resolve(storePath));
    const so: StoreOptions = {
      create: opts.create, backstore: opts.backstore, compressionLevel: opts.compressionLevel,
      inMemory: opts.inMemory, objectBackend: opts.objectBackend, punchHole: opts.punchHole,
    };
    const store = Store.open(dir, so);
    try {
      if (opts.lower !== undefined) {
        if (opts.snapshot !== undefined) throw new StoreError("EINVAL", "'lower' and 'snapshot' exclude each other");
        ensureOverlayBranch(store, opts.branch ?? store.currentBranch(), opts.lower);
      }
      const target: Target = opts.snapshot !== undefined ? { snapshot: opts.snapshot } : { branch: opts.branch ?? store.currentBranch() };
      const core = new FsCore(store, target, { umask: opts.umask, cred: opts.cred });
      return new AgentFS(store, core);
    } catch (e) {
      store.close();
      throw e;
    }
  }

  /** The view's target: `{ branch }` or `{ snapshot }`. */
  get target(): Target {
    return this.core.target;
  }

  /** Takes snapshot `name` of this view's branch (or `opts.branch`) in O(1). Errors: EEXIST, EINVAL, ENOENT. */
  async snapshot(name: string, opts: { branch?: string; message?: string } = {}): Promise<SnapshotInfo> {
    const branch = opts.branch ?? ("branch" in this.target ? this.target.branch : undefined);
    return this.store.createSnapshot(name, { branch, message: opts.message });
  }

  /** Snapshots, oldest first. */
  async snapshots(): Promise<SnapshotInfo[]> {
    return this.store.listSnapshots();
  }

  /** Creates a branch from a snapshot or a branch's current state, in O(1). Errors: EEXIST, EINVAL, ENOENT. */
  async branch(name: string, from?: { snapshot: string } | { branch: string }): Promise<BranchInfo> {
    return this.store.createBranch(name, from ?? ("branch" in this.target ? { branch: this.target.branch } : { snapshot: this.target.snapshot }));
  }

  /**
   * Creates branch `name` copy-on-write over host directory `lowerDir` (an
   * overlay; see `Store.createBranch`). Errors: EEXIST, EINVAL, ENOENT, ENOTDIR.
   */
  async overlayBranch(name: string, lowerDir: string): Promise<BranchInfo> {
    return this.store.createBranch(name, { lower: lowerDir });
  }

  /** What this overlay view (or `target`) changed against its host directory (see `diffLower`). Errors: EINVAL when not an overlay. */
  async diffLower(target: Target = this.target): Promise<DiffEntry[]> {
    return diffLower(this.store, target);
  }

  /**
   * Writes this overlay branch's changes (or `branch`'s) back onto its host
   * directory, atomically per file; with `reset`, the branch then reads the
   * updated host afresh (see `applyToLower`). Pending writes of this
   * view's open files are committed first (they stay open). Errors: EINVAL (not an
   * overlay branch, or a snapshot view), ENOENT, host errnos.
   */
  async applyToLower(opts: { branch?: string; reset?: boolean } = {}): Promise<ApplyReport> {
    const branch = opts.branch ?? ("branch" in this.target ? this.target.branch : undefined);
    if (branch === undefined) throw new StoreError("EINVAL", "a snapshot view cannot be applied; name a branch");
    for (const fd of this.core.openFds()) this.core.flush(fd); // pending writes of this view are part of the branch
    return applyToLower(this.store, branch, { reset: opts.reset });
  }

  /** Branches, sorted by name. */
  async branches(): Promise<BranchInfo[]> {
    return this.store.listBranches();
  }

  /** Resets this view's branch (or `branch`) to a snapshot. Errors: ENOENT. */
  async restore(snapshot: string, branch?: string): Promise<void> {
    this.store.restore(snapshot, branch ?? ("branch" in this.target ? this.target.branch : undefined));
  }

  /** Differences from `a` to `b` (default: to this view). */
  async diff(a: Target, b: Target = this.target): Promise<DiffEntry[]> {
    return diff(this.store, a, b);
  }

  /** Garbage-collects unreachable layers and objects (sparing chunks of this view's open-but-unlinked files). */
  async gc(): Promise<GcReport> {
    return gc(this.store, this.core.heldChunks());
  }

  /** Verifies every object and every tree. */
  async fsck(): Promise<FsckReport> {
    return fsck(this.store);
  }

  /** Space and shape statistics of the store and this view's tree. */
  async stats(): Promise<StoreStats> {
    return stats(this.store, this.target);
  }

  /** Commits open files, then closes the store. */
  async close(): Promise<void> {
    this.closeSync();
  }

  /** Synchronous `close`. */
  closeSync(): void {
    try {
      this.core.closeAll();
    } finally {
      this.store.close();
    }
  }
}

/**
 * Makes branch `name` of `store` an overlay over host directory `lowerDir`
 * (resolved against the working directory), as `AgentFS.open(dir, { branch,
 * lower })` does: a missing branch is created over it; a new store's
 * untouched branch (only the root directory, no snapshot) becomes the
 * overlay; an overlay already over the same directory is left as it is.
 * Errors: EINVAL when the branch sits over another directory, or is a plain
 * branch with content; ENOENT/ENOTDIR for the host directory; EINVAL for a
 * bad branch name.
 */
export function ensureOverlayBranch(store: Store, name: string, lowerDir: string): void {
  const want = resolve(lowerDir);
  if (!store.listBranches().some((b) => b.name === name)) {
    store.createBranch(name, { lower: want });
    return;
  }
  const have = store.lowerDirOf({ branch: name });
  if (have === null) {
    try {
      store.overlayPristine(name, want); // a new store's untouched branch (e.g. main) becomes the overlay
    } catch (e) {
      if (e instanceof StoreError && e.code === "EEXIST") throw new StoreError("EINVAL", `branch '${name}' is not an overlay and has content; name a new branch for 'lower'`);
      throw e;
    }
  } else if (have !== want) throw new StoreError("EINVAL", `branch '${name}' sits over ${have}, not ${want}`);
}
