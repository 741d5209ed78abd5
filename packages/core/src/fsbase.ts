/**
 * The state and plumbing under `FsCore` (fscore.ts): the view's store,
 * target, layer chain, open inodes and descriptors; transactions that turn
 * StoreErrors into FsErrors; inode rows, directory entries and link counts
 * in the head layer; working buffers of open files and their commit.
 * Nothing here is a system call of its own: fsmeta.ts, fsnames.ts and
 * fscore.ts build the POSIX operations on it, one layer of the class each.
 */
import { constants as C } from "node:fs";
import { StoreError, rewrappingStoreErrors } from "./errors.js";
import { fsErrorOf } from "./errwrap.js";
import { decodeExtents, encodeExtents, encodedDataBytes, OpenContent } from "./content.js";
import { nowNs, type Chain, type InodeRow } from "./manifest.js";
import { PATH_MAX } from "./paths.js";
import type { Store, Target } from "./store.js";
import { LOWER_DATA } from "./overlay.js";
import { AsyncCommitter } from "./asynccommit.js";
import { newOpenInode, type Handle, type OpenInode } from "./openfile.js";
import { S_IFDIR, S_IFMT, S_IFREG, S_ISGID } from "./modes.js";
import { needAccess, processCredentials, processUmask, type Credentials } from "./access.js";
import { PathResolver } from "./resolve.js";
import type { FsCoreOptions, InodeStat } from "./fstypes.js";

let nextFd = 3;

/** The state and shared steps of an `FsCore` view (see the module comment). Errors of the constructor: ENOENT when the branch or snapshot does not exist. */
export abstract class FsBase {
  /** The store this view reads and writes. */
  readonly store: Store;
  /** The branch (read-write) or snapshot (read-only) it shows. */
  readonly target: Target;
  /** True for a snapshot: every change fails with EROFS. */
  readonly readOnly: boolean;
  /** Identity for permission checks and the owner of new files (`FsCoreOptions.cred`). */
  readonly cred: Credentials;
  /** File mode creation mask applied to new files and directories (permission bits). */
  readonly umask: number;
  protected chain!: Chain;
  protected chainGen = -1;
  /** Bumped on every commit by this view and on changes by others: invalidates cached extents. */
  protected gen = 0;
  protected readonly open = new Map<number, OpenInode>();
  protected readonly handles = new Map<number, Handle>();
  /** Stable st_dev for this store. */
  readonly dev: number;
  /** Whole-path length limit in bytes (`FsCoreOptions.pathMax`). */
  protected readonly pathMax: number;
  /** `FsCoreOptions.errorStacks`. */
  protected readonly errorStacks: boolean;
  /** Path resolution over this view's current chain (resolve.ts). */
  protected readonly paths: PathResolver;
  /** Asynchronous commits of open files (asynccommit.ts). */
  protected readonly commits: AsyncCommitter;

  /**
   * Looks whether another connection committed to the store, and returns
   * `Manifest.cacheEpoch`: a count that grows whenever cached names,
   * attributes or data of this store may be wrong (another connection
   * committed; a held transaction was rolled back after its operations
   * were answered). Errors: EIO (damaged manifest).
   */
  cacheEpoch(): number {
    this.rd("sync", undefined, () => {});
    return this.store.manifest.cacheEpoch;
  }

  /** The host directory under an overlay branch (its lower layer), or null for a plain branch or a snapshot. */
  get lowerRoot(): string | null {
    this.rd("lower", undefined, () => {});
    return this.chain.lower?.root ?? null;
  }

  /** Errors: ENOENT when the branch or snapshot does not exist. */
  constructor(store: Store, target: Target, opts: FsCoreOptions = {}) {
    this.store = store;
    this.target = target;
    this.readOnly = "snapshot" in target;
    this.cred = opts.cred ?? processCredentials();
    this.umask = opts.umask ?? processUmask();
    this.pathMax = opts.pathMax ?? PATH_MAX;
    this.errorStacks = opts.errorStacks ?? true;
    this.paths = new PathResolver({
      cred: this.cred,
      pathMax: this.pathMax,
      node: (ino) => this.node(ino),
      lookup: (dir, name) => this.store.manifest.lookup(dir, name, this.chain),
    });
    this.commits = new AsyncCommitter({
      store,
      wrap: (syscall, fn) => this.wrap(syscall, undefined, fn),
      write: (syscall, fn) => this.wrNow(syscall, fn),
      visible: (ino) => this.store.manifest.getInode(ino, this.chain) !== undefined,
      commitContent: (o) => this.commitContent(o),
      update: (ino, change) => this.update(ino, change),
    });
    let h = 0;
    for (const c of store.dir) h = (Math.imul(h, 31) + c.charCodeAt(0)) >>> 0;
    this.dev = h & 0xfffff;
    this.refresh(); // StoreError ENOENT names the missing branch or snapshot as it is

  }

  // ---------------------------------------------------------------- plumbing

  /** Re-reads the layer chain when branches/snapshots changed (here or in another process). */
  protected refresh(): void {
    this.store.sync();
    if (this.chainGen !== this.store.gen) {
      this.chain = this.store.chainOf(this.target);
      this.chainGen = this.store.gen;
      this.gen++;
    }
  }

  /** Runs `fn`, converting StoreErrors into FsErrors naming `syscall` and `path`. */
  protected wrap<T>(syscall: string, path: string | undefined, fn: () => T, dest?: string): T {
    try {
      return rewrappingStoreErrors(fn);
    } catch (e) {
      if (e instanceof StoreError) throw fsErrorOf(e, syscall, path, dest, this.errorStacks);
      throw e;
    }
  }

  /** Read operation: a consistent read transaction over a fresh chain (the held one, when the store holds transactions). */
  protected rd<T>(syscall: string, path: string | undefined, fn: () => T): T {
    return this.wrap(syscall, path, () => this.store.manifest.heldRead(() => {
      this.refresh();
      return fn();
    }));
  }

  /**
   * Write operation: one IMMEDIATE transaction, or a savepoint of the held
   * one when the store holds transactions (`Manifest.holdTransactions`);
   * EROFS on a snapshot.
   */
  protected wr<T>(syscall: string, path: string | undefined, fn: () => T, dest?: string): T {
    return this.writeTx(syscall, path, fn, dest, true);
  }

  /** As `wr`, but committed before it returns even when the store holds transactions (close, flush, fsync). */
  protected wrNow<T>(syscall: string, fn: () => T): T {
    return this.writeTx(syscall, undefined, fn, undefined, false);
  }

  protected writeTx<T>(syscall: string, path: string | undefined, fn: () => T, dest: string | undefined, hold: boolean): T {
    return this.wrap(syscall, path, () => {
      if (this.readOnly) throw new StoreError("EROFS", "snapshots are read-only");
      let saved: Map<number, string> | undefined;
      const m = this.store.manifest;
      const body = (): T => {
        this.refresh();
        this.gen++;
        const out = fn();
        // Host paths of lower inodes seen so far: persisted with the rows that may reference them.
        saved = this.chain.lower?.flush();
        return out;
      };
      try {
        return hold ? m.heldWrite(body) : m.write(body);
      } catch (e) {
        if (saved) this.chain.lower?.requeue(saved);
        throw e;
      }
    }, dest);
  }

  protected get head(): number {
    return this.chain.head;
  }

  /** Visible row of `ino`; ESTALE-like ENOENT when it vanished. */
  protected node(ino: number): InodeRow {
    const o = this.open.get(ino);
    const r = this.store.manifest.getInode(ino, this.chain);
    if (r) return r.row;
    if (o?.orphan) return o.orphan;
    throw new StoreError("ENOENT", `inode ${ino} no longer exists`);
  }

  /** Copies the visible version of `ino` into the head layer with `change` applied; returns the new row. */
  protected update(ino: number, change: (r: InodeRow) => void): InodeRow {
    const m = this.store.manifest;
    const row = { ...this.node(ino) };
    change(row);
    const o = this.open.get(ino);
    if (o?.orphan) {
      o.orphan = row;
      if (!m.getInode(ino, this.chain)) return row;
    }
    m.putInode(this.head, row);
    return row;
  }

  protected now(): bigint {
    return nowNs();
  }

  /** `needAccess` for this view's credentials. Errors: EACCES. */
  protected need(row: InodeRow, want: number): void {
    needAccess(this.cred, row, want);
  }

  /** stat fields of a row, with pending in-memory size/mtime of open writers applied. */
  protected statOf(row: InodeRow): InodeStat {
    const o = this.open.get(row.ino);
    let size = row.size;
    let mtime = row.mtime;
    let ctime = row.ctime;
    let blocks: number;
    if (o?.content) {
      size = o.content.size;
      if (o.mtime !== null) {
        mtime = o.mtime;
        ctime = o.mtime > ctime ? o.mtime : ctime;
      }
      blocks = -1; // counted on first read below: a sparse file's count scans its pages
    } else if (row.rdev === LOWER_DATA) {
      blocks = Math.ceil(row.size / 4096) * 8;
    } else if ((row.mode & S_IFMT) === S_IFREG) {
      blocks = Math.ceil(encodedDataBytes(row.extents) / 4096) * 8;
    } else {
      blocks = (row.mode & S_IFMT) === S_IFDIR ? 8 : 0;
    }
    const st: InodeStat = {
      dev: this.dev,
      ino: row.ino,
      mode: row.mode,
      nlink: row.nlink,
      uid: row.uid,
      gid: row.gid,
      rdev: row.rdev === LOWER_DATA ? 0 : row.rdev,
      size,
      blksize: 4096,
      blocks,
      atimeNs: row.atime,
      mtimeNs: mtime,
      ctimeNs: ctime,
      birthtimeNs: row.btime,
    };
    if (blocks < 0) {
      // Open and written: st_blocks of the working state, computed only if asked for (a caller that
      // wants size and times, such as the FUSE write path's cache stamp, does not pay for the scan).
      const c = o!.content!;
      let n = -1;
      Object.defineProperty(st, "blocks", { enumerable: true, get: () => (n >= 0 ? n : (n = Math.ceil(c.dataBytes() / 4096) * 8)) });
    }
    return st;
  }

  protected newRow(ino: number, mode: number, dir: InodeRow): InodeRow {
    const t = this.now();
    let gid = this.cred.gid;
    if (dir.mode & S_ISGID) {
      gid = dir.gid;
      if ((mode & S_IFMT) === S_IFDIR) mode |= S_ISGID;
    }
    return {
      ino, mode, uid: this.cred.uid, gid, nlink: 1, size: 0, rdev: 0,
      atime: t, mtime: t, ctime: t, btime: t, target: null, extents: null, xattrs: null,
    };
  }

  /** Adds entry `name` → `ino` to directory `dir` in the head layer, touching the directory. */
  protected addEntry(dir: number, name: string, ino: number, type: number, dirNlinkDelta = 0): void {
    this.store.manifest.putDentry(this.head, dir, name, ino, type);
    this.touchDir(dir, dirNlinkDelta);
  }

  /** A directory's entries changed: its mtime and ctime become `t`, its nlink grows by `nlinkDelta` (subdirectories' ".." links). */
  protected touchDir(dir: number, nlinkDelta: number, t = this.now()): void {
    this.update(dir, (r) => {
      r.mtime = t;
      r.ctime = t;
      r.nlink += nlinkDelta;
    });
  }

  /** Removes entry `name` from `dir`: a whiteout when a lower layer still shows it. */
  protected removeEntry(dir: number, name: string, dirNlinkDelta = 0): void {
    const m = this.store.manifest;
    m.deleteDentryRow(this.head, dir, name);
    if (m.lookup(dir, name, this.chain, true)) m.putDentry(this.head, dir, name, 0, 0);
    this.touchDir(dir, dirNlinkDelta);
  }

  /** Drops one link of `ino`; deletes its head version when no links and no open fds remain. */
  protected dropLink(ino: number): void {
    const t = this.now();
    const row = this.update(ino, (r) => {
      r.nlink -= (r.mode & S_IFMT) === S_IFDIR ? r.nlink : 1;
      r.ctime = t;
    });
    if (row.nlink <= 0) {
      const m = this.store.manifest;
      const o = this.open.get(ino);
      if (o) o.orphan = { ...row, nlink: 0 };
      m.deleteInode(ino, this.head);
      // A version below the head would show through: cover it with a tombstone.
      if (m.getInode(ino, this.chain)) m.putInode(this.head, { ...row, nlink: 0, extents: null, xattrs: null, target: null });
    }
  }

  protected openInode(ino: number): OpenInode {
    let o = this.open.get(ino);
    if (!o) {
      o = newOpenInode(ino);
      this.open.set(ino, o);
    }
    return o;
  }

  /** The working buffer of `ino`, created over its committed extents on first write. */
  protected contentOf(o: OpenInode, discard = false): OpenContent {
    if (!o.content) {
      const row = this.node(o.ino);
      if (row.rdev === LOWER_DATA) {
        // Copy-up: the first data change imports the host file's bytes (none when it truncates to 0).
        // (Discarding: the caller truncates to 0 next, which marks the buffer dirty so the commit replaces the host bytes.)
        o.content = discard ? new OpenContent(this.store.cas, this.store.backstore, [], row.size) : this.lowerContent(row);
      } else o.content = new OpenContent(this.store.cas, this.store.backstore, decodeExtents(row.extents), row.size);
    }
    return o.content;
  }

  /** A working buffer holding the bytes of the lower (host) file of `row` (dirty: the next commit stores them). */
  protected lowerContent(row: InodeRow): OpenContent {
    const lower = this.chain.lower;
    if (!lower) throw new StoreError("EIO", `inode ${row.ino} refers to a host file but the tree has no lower directory`);
    const c = new OpenContent(this.store.cas, this.store.backstore, [], 0);
    try {
      const piece = Buffer.allocUnsafe(Math.min(1024 * 1024, Math.max(1, row.size)));
      for (let pos = 0; pos < row.size; ) {
        const n = lower.read(row.ino, row.size, piece, 0, piece.length, pos);
        if (n <= 0) break;
        c.write(piece, 0, n, pos);
        pos += n;
      }
      if (c.size < row.size) c.truncate(row.size);
    } catch (e) {
      c.dispose();
      throw e;
    }
    return c;
  }

  /** Stores the bytes of the lower file of `row` in the CAS; returns its encoded extents (null when empty). */
  protected importLower(row: InodeRow): Buffer | null {
    const c = this.lowerContent(row);
    try {
      const res = c.commit(this.store.chunker);
      const ext = res ? encodeExtents(res.extents) : Buffer.alloc(0);
      return ext.length ? ext : null;
    } finally {
      c.dispose();
    }
  }

  /** Commits an inode's working buffer in the current write transaction. */
  protected commitContent(o: OpenInode): void {
    if (!o.content || !o.content.dirty) {
      if (o.mtime !== null && o.content) this.flushTimes(o);
      return;
    }
    const res = o.content.commit(this.store.chunker)!;
    // Writes and truncates set o.mtime; null while dirty means utimes/futimens came after the
    // last write (tar: write, futimens, close): the explicit time stays.
    const t = o.mtime;
    const ext = encodeExtents(res.extents);
    this.update(o.ino, (r) => {
      r.extents = ext.length ? ext : null;
      r.size = res.size;
      if (r.rdev === LOWER_DATA) r.rdev = 0; // copied up: the bytes are in the CAS now
      if (t !== null) {
        r.mtime = t;
        r.ctime = t > r.ctime ? t : r.ctime;
      }
    });
    o.mtime = null;
    o.ext = null;
  }

  protected flushTimes(o: OpenInode): void {
    const t = o.mtime!;
    this.update(o.ino, (r) => {
      r.mtime = t;
      r.ctime = t > r.ctime ? t : r.ctime;
    });
    o.mtime = null;
  }

  protected handle(fd: number): Handle {
    const h = this.handles.get(fd);
    if (!h) throw new StoreError("EBADF", `bad file descriptor ${fd}`);
    return h;
  }

  /** `fd`'s handle and open inode, for an operation named `syscall`. Errors (as FsError naming it): EBADF. */
  protected opened(syscall: string, fd: number): { h: Handle; o: OpenInode } {
    return this.wrap(syscall, undefined, () => {
      const h = this.handle(fd);
      return { h, o: this.openOf(h) };
    });
  }

  /** The open inode a handle refers to (every handle keeps its inode open until it is closed). Errors: EBADF if it is not open (a bug: reported, never dereferenced). */
  protected openOf(h: Handle): OpenInode {
    const o = this.open.get(h.ino);
    if (!o) throw new StoreError("EBADF", `file descriptor of inode ${h.ino} has no open inode`);
    return o;
  }

  /** Whether open inode `o` has no name in this tree (unlinked while open, or O_TMPFILE not linked yet): nothing to commit to. */
  protected nameless(o: OpenInode): boolean {
    return o.orphan !== null && !this.store.manifest.getInode(o.ino, this.chain);
  }

  /** A new descriptor on inode `ino` (opened as `path`): access mode and O_APPEND from `flags`, position 0. */
  protected newHandle(ino: number, path: string, flags: number, isDir: boolean): number {
    const acc = flags & 3;
    const fd = nextFd++;
    this.handles.set(fd, {
      fd, ino, path, readable: acc !== C.O_WRONLY, writable: acc !== C.O_RDONLY, append: (flags & C.O_APPEND) !== 0, pos: 0, isDir,
    });
    return fd;
  }

}
