/**
 * `FsCore`: POSIX file operations on one branch (read-write) or snapshot
 * (read-only) of a store. Synchronous: every call is one or a few SQLite
 * transactions. Paths are absolute within the tree ("/a/b"; relative paths
 * resolve from "/", and ".." at the root stays at the root). Errors are
 * `FsError`s whose `code` is the errno name and `syscall` the operation.
 */
import { constants as C } from "node:fs";
import { FsError, StoreError, rewrappingStoreErrors } from "./errors.js";
import { asFsError, fsErrorOf } from "./errwrap.js";
import { decodeExtents, encodeExtents, readExtents, encodedDataBytes, referencedChunks, seekExtents, OpenContent, type Extent } from "./content.js";
import { ROOT_INO, nowNs, type Chain, type InodeRow } from "./manifest.js";
import { PATH_MAX, checkName, joinParts } from "./paths.js";
import type { Store, Target } from "./store.js";
import { LOWER_DATA } from "./overlay.js";
import { AsyncCommitter } from "./asynccommit.js";
import { newOpenInode, type Handle, type OpenInode } from "./openfile.js";
import { checkXattrName } from "./xattr.js";
import { checkXattrValue, xattrNames, xattrValue, xattrsWithRemoved, xattrsWithSet } from "./xattrops.js";
import { S_IFBLK, S_IFCHR, S_IFDIR, S_IFLNK, S_IFMT, S_IFREG, S_ISGID, S_ISUID, isSpecial } from "./modes.js";
import { checkChown, checkSetTimes, checkSticky, chmodBits, needAccess, processCredentials, processUmask, type Credentials } from "./access.js";
import { PathResolver, isWithin } from "./resolve.js";

/** Linux's O_TMPFILE (__O_TMPFILE | O_DIRECTORY), which node:fs does not export; 0 elsewhere. */
export const O_TMPFILE = process.platform === "linux" ? 0o20000000 | C.O_DIRECTORY : 0;

export { S_IFMT, S_IFREG, S_IFDIR, S_IFLNK, S_IFIFO, S_IFCHR, S_IFBLK, S_IFSOCK, isSpecial } from "./modes.js";
export type { Credentials } from "./access.js";

/** Largest file size in bytes (2^47), as a cap against runaway writes. */
export const MAX_FILE_SIZE = 2 ** 47;

/** fallocate(2) mode bit: do not change the file size (linux/falloc.h). */
export const FALLOC_FL_KEEP_SIZE = 0x01;
/** fallocate(2) mode bit: deallocate the range, which then reads as zero (with FALLOC_FL_KEEP_SIZE only). */
export const FALLOC_FL_PUNCH_HOLE = 0x02;

/** Memory (bytes) an open file may hold in pages before `FsCore.writeThrottle` holds its writer: 64 MiB. */
export const WRITE_THROTTLE_BYTES = 64 << 20;

/** Options for an `FsCore` view. */
export interface FsCoreOptions {
  /** File mode creation mask (default: the process umask). */
  umask?: number;
  /** Identity used for permission checks and new files' owner (default: the process's). */
  cred?: Credentials;
  /**
   * Paths of this many bytes or more fail with ENAMETOOLONG (default
   * PATH_MAX, 4096). `Infinity` for front ends that pass whole paths built
   * from the root (FUSE): the kernel already limited what the caller passed,
   * and a deep tree may hold files whose full path is longer.
   */
  pathMax?: number;
  /**
   * False: errno answers other than EIO (ENOENT, ENODATA, ...) are FsErrors
   * without a stack trace (`FsError.withoutStack`), for front ends that only
   * pass the errno on (FUSE). Default true: errors carry a stack, like Node's.
   */
  errorStacks?: boolean;
}

/** stat(2) fields of one inode. Times are ns since the epoch; sizes in bytes; blocks in 512-byte units. */
export interface InodeStat {
  dev: number;
  ino: number;
  mode: number;
  nlink: number;
  uid: number;
  gid: number;
  rdev: number;
  size: number;
  blksize: number;
  blocks: number;
  atimeNs: bigint;
  mtimeNs: bigint;
  ctimeNs: bigint;
  birthtimeNs: bigint;
}

/** A directory entry as returned by `readdir`: name, inode number, file type bits (S_IFMT part). */
export interface DirEntry {
  name: string;
  ino: number;
  type: number;
}

/** `utimes` time value: ns since the epoch, "now" (UTIME_NOW) or "omit" (UTIME_OMIT). */
export type TimeSpec = bigint | "now" | "omit";

let nextFd = 3;

/**
 * POSIX operations over one branch or snapshot of a `Store`. Each method
 * mirrors a system call and throws `FsError` with the errno name as `code`.
 */
export class FsCore {
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
  private chain!: Chain;
  private chainGen = -1;
  /** Bumped on every commit by this view and on changes by others: invalidates cached extents. */
  private gen = 0;
  private readonly open = new Map<number, OpenInode>();
  private readonly handles = new Map<number, Handle>();
  /** Stable st_dev for this store. */
  readonly dev: number;
  /** Whole-path length limit in bytes (`FsCoreOptions.pathMax`). */
  private readonly pathMax: number;
  /** `FsCoreOptions.errorStacks`. */
  private readonly errorStacks: boolean;
  /** Path resolution over this view's current chain (resolve.ts). */
  private readonly paths: PathResolver;
  /** Asynchronous commits of open files (asynccommit.ts). */
  private readonly commits: AsyncCommitter;

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
  private refresh(): void {
    this.store.sync();
    if (this.chainGen !== this.store.gen) {
      this.chain = this.store.chainOf(this.target);
      this.chainGen = this.store.gen;
      this.gen++;
    }
  }

  /** Runs `fn`, converting StoreErrors into FsErrors naming `syscall` and `path`. */
  private wrap<T>(syscall: string, path: string | undefined, fn: () => T, dest?: string): T {
    try {
      return rewrappingStoreErrors(fn);
    } catch (e) {
      if (e instanceof StoreError) throw fsErrorOf(e, syscall, path, dest, this.errorStacks);
      throw e;
    }
  }

  /** Read operation: a consistent read transaction over a fresh chain (the held one, when the store holds transactions). */
  private rd<T>(syscall: string, path: string | undefined, fn: () => T): T {
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
  private wr<T>(syscall: string, path: string | undefined, fn: () => T, dest?: string): T {
    return this.writeTx(syscall, path, fn, dest, true);
  }

  /** As `wr`, but committed before it returns even when the store holds transactions (close, flush, fsync). */
  private wrNow<T>(syscall: string, fn: () => T): T {
    return this.writeTx(syscall, undefined, fn, undefined, false);
  }

  private writeTx<T>(syscall: string, path: string | undefined, fn: () => T, dest: string | undefined, hold: boolean): T {
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

  private get head(): number {
    return this.chain.head;
  }

  /** Visible row of `ino`; ESTALE-like ENOENT when it vanished. */
  private node(ino: number): InodeRow {
    const o = this.open.get(ino);
    const r = this.store.manifest.getInode(ino, this.chain);
    if (r) return r.row;
    if (o?.orphan) return o.orphan;
    throw new StoreError("ENOENT", `inode ${ino} no longer exists`);
  }

  /** Copies the visible version of `ino` into the head layer with `change` applied; returns the new row. */
  private update(ino: number, change: (r: InodeRow) => void): InodeRow {
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

  private now(): bigint {
    return nowNs();
  }

  /** `needAccess` for this view's credentials. Errors: EACCES. */
  private need(row: InodeRow, want: number): void {
    needAccess(this.cred, row, want);
  }

  /** stat fields of a row, with pending in-memory size/mtime of open writers applied. */
  private statOf(row: InodeRow): InodeStat {
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

  private newRow(ino: number, mode: number, dir: InodeRow): InodeRow {
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
  private addEntry(dir: number, name: string, ino: number, type: number, dirNlinkDelta = 0): void {
    this.store.manifest.putDentry(this.head, dir, name, ino, type);
    this.touchDir(dir, dirNlinkDelta);
  }

  /** A directory's entries changed: its mtime and ctime become `t`, its nlink grows by `nlinkDelta` (subdirectories' ".." links). */
  private touchDir(dir: number, nlinkDelta: number, t = this.now()): void {
    this.update(dir, (r) => {
      r.mtime = t;
      r.ctime = t;
      r.nlink += nlinkDelta;
    });
  }

  /** Removes entry `name` from `dir`: a whiteout when a lower layer still shows it. */
  private removeEntry(dir: number, name: string, dirNlinkDelta = 0): void {
    const m = this.store.manifest;
    m.deleteDentryRow(this.head, dir, name);
    if (m.lookup(dir, name, this.chain, true)) m.putDentry(this.head, dir, name, 0, 0);
    this.touchDir(dir, dirNlinkDelta);
  }

  /** Drops one link of `ino`; deletes its head version when no links and no open fds remain. */
  private dropLink(ino: number): void {
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

  private openInode(ino: number): OpenInode {
    let o = this.open.get(ino);
    if (!o) {
      o = newOpenInode(ino);
      this.open.set(ino, o);
    }
    return o;
  }

  /** The working buffer of `ino`, created over its committed extents on first write. */
  private contentOf(o: OpenInode, discard = false): OpenContent {
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
  private lowerContent(row: InodeRow): OpenContent {
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
  private importLower(row: InodeRow): Buffer | null {
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
  private commitContent(o: OpenInode): void {
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

  private flushTimes(o: OpenInode): void {
    const t = o.mtime!;
    this.update(o.ino, (r) => {
      r.mtime = t;
      r.ctime = t > r.ctime ? t : r.ctime;
    });
    o.mtime = null;
  }

  private handle(fd: number): Handle {
    const h = this.handles.get(fd);
    if (!h) throw new StoreError("EBADF", `bad file descriptor ${fd}`);
    return h;
  }

  /** `fd`'s handle and open inode, for an operation named `syscall`. Errors (as FsError naming it): EBADF. */
  private opened(syscall: string, fd: number): { h: Handle; o: OpenInode } {
    return this.wrap(syscall, undefined, () => {
      const h = this.handle(fd);
      return { h, o: this.openOf(h) };
    });
  }

  /** The open inode a handle refers to (every handle keeps its inode open until it is closed). Errors: EBADF if it is not open (a bug: reported, never dereferenced). */
  private openOf(h: Handle): OpenInode {
    const o = this.open.get(h.ino);
    if (!o) throw new StoreError("EBADF", `file descriptor of inode ${h.ino} has no open inode`);
    return o;
  }

  /** Whether open inode `o` has no name in this tree (unlinked while open, or O_TMPFILE not linked yet): nothing to commit to. */
  private nameless(o: OpenInode): boolean {
    return o.orphan !== null && !this.store.manifest.getInode(o.ino, this.chain);
  }

  /** A new descriptor on inode `ino` (opened as `path`): access mode and O_APPEND from `flags`, position 0. */
  private newHandle(ino: number, path: string, flags: number, isDir: boolean): number {
    const acc = flags & 3;
    const fd = nextFd++;
    this.handles.set(fd, {
      fd, ino, path, readable: acc !== C.O_WRONLY, writable: acc !== C.O_RDONLY, append: (flags & C.O_APPEND) !== 0, pos: 0, isDir,
    });
    return fd;
  }

  // ---------------------------------------------------------------- metadata

  /** As stat(2) (`follow`) or lstat(2). Errors: ENOENT, ENOTDIR, ELOOP, EACCES, ENAMETOOLONG. */
  stat(path: string, follow = true): InodeStat {
    return this.rd(follow ? "stat" : "lstat", path, () => this.statOf(this.paths.resolve(path, follow).row));
  }

  /**
   * As fstatat(dirfd, name, AT_SYMLINK_NOFOLLOW) with `dirfd` naming
   * directory inode `dir` of this tree: the entry `name` of that directory,
   * found without walking a path from the root. For front ends that hold
   * directories by inode (FUSE lookup and readdirplus); no search-permission
   * check on `dir` (the kernel made it). Errors: ENOENT (no such entry, or
   * `dir` is gone), ENOTDIR (`dir` is not a directory), ENAMETOOLONG (name
   * over 255 bytes), EINVAL (empty, ".", "..", or with "/" or NUL).
   */
  statAt(dir: number, name: string): InodeStat {
    return this.rd("lstat", name, () => {
      const st = this.entryAt(dir, name);
      if (!st) throw new StoreError("ENOENT", "no such file or directory");
      return st;
    });
  }

  /**
   * As `statAt`, with null instead of ENOENT for a missing entry (a FUSE
   * lookup that misses is routine: no exception on that path). Errors:
   * ENOENT (no inode `dir`), ENOTDIR, ENAMETOOLONG, EINVAL.
   */
  lookupAt(dir: number, name: string): InodeStat | null {
    return this.rd("lstat", name, () => this.entryAt(dir, name));
  }

  /**
   * As fstat(2) by inode number: the inode `ino` of this view, linked or
   * open (unlinked while open). Errors: ENOENT when the view has no such
   * inode.
   */
  statInode(ino: number): InodeStat {
    return this.rd("fstat", undefined, () => this.statOf(this.node(ino)));
  }

  /** Entry `name` of directory `dir` (inside a read): its stat, or null when missing. */
  private entryAt(dir: number, name: string): InodeStat | null {
    checkName(name);
    this.needDir(dir);
    const e = this.store.manifest.lookup(dir, name, this.chain);
    return e ? this.statOf(this.node(e.ino)) : null;
  }

  /** Errors: ENOENT (no inode `dir`), ENOTDIR (not a directory). Inside a transaction. */
  private needDir(dir: number): void {
    if ((this.node(dir).mode & S_IFMT) !== S_IFDIR) throw new StoreError("ENOTDIR", "not a directory");
  }

  /** The inodes entries `names` of directory `dir` lead to (inside a read): null for a missing or impossible name. Errors: ENOENT, ENOTDIR. */
  private inosOf(dir: number, names: readonly string[]): (number | null)[] {
    this.needDir(dir);
    return names.map((name) => {
      try {
        checkName(name);
      } catch {
        return null; // ".", "..", or a name no entry can have
      }
      const e = this.store.manifest.lookup(dir, name, this.chain);
      return e ? e.ino : null;
    });
  }

  /**
   * `statAt` for many names of one directory in one read transaction (a
   * listing with attributes: FUSE readdirplus): entry i is the lstat of
   * `names[i]` in directory inode `dir`, or null when that name is missing
   * or invalid. Errors: ENOENT (no inode `dir`), ENOTDIR.
   */
  statManyAt(dir: number, names: readonly string[]): (InodeStat | null)[] {
    return this.rd("lstat", undefined, () => this.inosOf(dir, names).map((ino) => (ino === null ? null : this.statOf(this.node(ino)))));
  }

  /**
   * The inode numbers entries `names` of directory inode `dir` lead to, in
   * one read transaction (null for a missing or impossible name): what
   * `statManyAt` finds, without building stats. Errors: ENOENT (no inode
   * `dir`), ENOTDIR.
   */
  inosAt(dir: number, names: readonly string[]): (number | null)[] {
    return this.rd("lookup", undefined, () => this.inosOf(dir, names));
  }

  /** As fstat(2). Errors: EBADF. */
  fstat(fd: number): InodeStat {
    return this.rd("fstat", undefined, () => this.statOf(this.node(this.handle(fd).ino)));
  }

  /** As access(2): `mode` is F_OK or a mix of R_OK/W_OK/X_OK. Errors: ENOENT, EACCES, EROFS (W_OK on a snapshot). */
  access(path: string, mode = 0): void {
    this.rd("access", path, () => {
      const r = this.paths.resolve(path, true);
      if (mode & 2 && this.readOnly) throw new StoreError("EROFS", "snapshots are read-only");
      const want = ((mode & 4) ? 4 : 0) | ((mode & 2) ? 2 : 0) | ((mode & 1) ? 1 : 0);
      if (want) this.need(r.row, want);
    });
  }

  /** As readdir(3) over getdents: entries sorted by name, without "." and "..". Errors: ENOENT, ENOTDIR, EACCES. */
  readdir(path: string): DirEntry[] {
    return this.rd("scandir", path, () => {
      const r = this.paths.resolve(path, true);
      if ((r.row.mode & S_IFMT) !== S_IFDIR) throw new StoreError("ENOTDIR", "not a directory");
      this.need(r.row, 4);
      return this.listDir(r.ino);
    });
  }

  private listDir(ino: number): DirEntry[] {
    const out: DirEntry[] = [];
    for (const [name, e] of this.store.manifest.list(ino, this.chain)) out.push({ name, ino: e.ino, type: e.type });
    out.sort((a, b) => (a.name < b.name ? -1 : a.name > b.name ? 1 : 0));
    return out;
  }

  /** As readlink(2). Errors: EINVAL when not a symlink, ENOENT. */
  readlink(path: string): string {
    return this.rd("readlink", path, () => {
      const r = this.paths.resolve(path, false);
      if ((r.row.mode & S_IFMT) !== S_IFLNK) throw new StoreError("EINVAL", "not a symbolic link");
      return r.row.target ?? "";
    });
  }

  /** As realpath(3): the canonical absolute path with symlinks and ".." resolved. Errors: ENOENT, ELOOP, ENOTDIR. */
  realpath(path: string): string {
    return this.rd("realpath", path, () => {
      const r = this.paths.resolve(path, true);
      if (r.ino === ROOT_INO) return "/";
      return joinParts([...r.names, r.name]);
    });
  }

  /** As chmod(2)/lchmod: sets the permission bits (mode & 0o7777). Errors: EPERM (not owner), ENOENT, EROFS. */
  chmod(path: string, mode: number, follow = true): void {
    this.wr("chmod", path, () => this.chmodIno(this.paths.resolve(path, follow), mode));
  }

  /** As fchmod(2): `chmod` of the descriptor's file. Errors: EBADF, EPERM (not owner), EROFS. */
  fchmod(fd: number, mode: number): void {
    this.wr("fchmod", undefined, () => {
      const ino = this.handle(fd).ino;
      this.chmodIno({ ino, row: this.node(ino) }, mode);
    });
  }

  /** As `fchmod` by inode number (`getxattrOf`): no path walk; works on a file unlinked while open. Errors: as `chmod`, ENOENT (no inode `ino`). */
  chmodOf(ino: number, mode: number): void {
    this.wr("chmod", undefined, () => this.chmodIno({ ino, row: this.node(ino) }, mode));
  }

  private chmodIno(r: { ino: number; row: InodeRow }, mode: number): void {
    const bits = chmodBits(this.cred, r.row, mode);
    const t = this.now();
    this.update(r.ino, (x) => {
      x.mode = (x.mode & S_IFMT) | bits;
      x.ctime = t;
    });
  }

  /**
   * As chown(2)/lchown(2): -1 leaves a field unchanged. Only root may change
   * the owner; the owner may change the group to one of their groups.
   * Clears set-user-ID/set-group-ID on regular files. Errors: EPERM, ENOENT, EROFS.
   */
  chown(path: string, uid: number, gid: number, follow = true): void {
    this.wr(follow ? "chown" : "lchown", path, () => this.chownIno(this.paths.resolve(path, follow), uid, gid));
  }

  /** As fchown(2): `chown` of the descriptor's file. Errors: EBADF, EPERM, EROFS. */
  fchown(fd: number, uid: number, gid: number): void {
    this.wr("fchown", undefined, () => {
      const ino = this.handle(fd).ino;
      this.chownIno({ ino, row: this.node(ino) }, uid, gid);
    });
  }

  /** As `fchown` by inode number (`getxattrOf`). Errors: as `chown`, ENOENT (no inode `ino`). */
  chownOf(ino: number, uid: number, gid: number): void {
    this.wr("chown", undefined, () => this.chownIno({ ino, row: this.node(ino) }, uid, gid));
  }

  private chownIno(r: { ino: number; row: InodeRow }, uid: number, gid: number): void {
    checkChown(this.cred, r.row, uid, gid);
    const t = this.now();
    this.update(r.ino, (x) => {
      if (uid !== -1) x.uid = uid;
      if (gid !== -1) x.gid = gid;
      if ((x.mode & S_IFMT) === S_IFREG && (uid !== -1 || gid !== -1)) {
        x.mode &= ~S_ISUID;
        if (x.mode & 0o010) x.mode &= ~S_ISGID;
      }
      x.ctime = t;
    });
  }

  /** As utimensat(2): sets atime/mtime (ns, "now" or "omit"); ctime becomes now. Errors: EPERM/EACCES, ENOENT, EROFS. */
  utimes(path: string, atime: TimeSpec, mtime: TimeSpec, follow = true): void {
    this.wr(follow ? "utime" : "lutime", path, () => this.utimesIno(this.paths.resolve(path, follow), atime, mtime));
  }

  /** As futimens(3): `utimes` of the descriptor's file. Errors: EBADF, EPERM/EACCES, EROFS. */
  futimes(fd: number, atime: TimeSpec, mtime: TimeSpec): void {
    this.wr("futime", undefined, () => {
      const ino = this.handle(fd).ino;
      this.utimesIno({ ino, row: this.node(ino) }, atime, mtime);
    });
  }

  /** As `futimes` by inode number (`getxattrOf`). Errors: as `utimes`, ENOENT (no inode `ino`). */
  utimesOf(ino: number, atime: TimeSpec, mtime: TimeSpec): void {
    this.wr("utime", undefined, () => this.utimesIno({ ino, row: this.node(ino) }, atime, mtime));
  }

  private utimesIno(r: { ino: number; row: InodeRow }, atime: TimeSpec, mtime: TimeSpec): void {
    checkSetTimes(this.cred, r.row, (atime === "now" || atime === "omit") && (mtime === "now" || mtime === "omit"));
    const t = this.now();
    const o = this.open.get(r.ino);
    if (o && o.mtime !== null) o.mtime = null; // explicit times win over pending write times
    if (o) o.timesSeq++;
    this.update(r.ino, (x) => {
      if (atime !== "omit") x.atime = atime === "now" ? t : atime;
      if (mtime !== "omit") x.mtime = mtime === "now" ? t : mtime;
      x.ctime = t;
    });
  }

  // ---------------------------------------------------------------- namespace

  /** As mkdir(2); returns the new inode number. Errors: EEXIST, ENOENT, ENOTDIR, EACCES, ENAMETOOLONG, EROFS. */
  mkdir(path: string, mode = 0o777): number {
    return this.wr("mkdir", path, () => {
      const p = this.paths.resolveParent(path, "mkdir");
      if (this.store.manifest.lookup(p.dir, p.name, this.chain)) throw new StoreError("EEXIST", "file exists");
      this.need(p.dirRow, 3);
      const ino = this.store.manifest.allocIno();
      const row = this.newRow(ino, S_IFDIR | (mode & 0o7777 & ~this.umask), p.dirRow);
      row.nlink = 2;
      row.size = 4096;
      this.store.manifest.putInode(this.head, row);
      this.addEntry(p.dir, p.name, ino, S_IFDIR, 1);
      return ino;
    });
  }

  /** As rmdir(2). Errors: ENOTEMPTY, ENOTDIR, ENOENT, EBUSY (root), EINVAL (final "."), EACCES, EPERM (sticky), EROFS. */
  rmdir(path: string): void {
    this.wr("rmdir", path, () => {
      if (/(^|\/)\.\/*$/.test(path)) throw new StoreError("EINVAL", "cannot remove '.'");
      const p = this.paths.resolveParent(path, "rmdir");
      const d = this.store.manifest.lookup(p.dir, p.name, this.chain);
      if (!d) throw new StoreError("ENOENT", "no such file or directory");
      const row = this.node(d.ino);
      if ((row.mode & S_IFMT) !== S_IFDIR) throw new StoreError("ENOTDIR", "not a directory");
      this.need(p.dirRow, 3);
      checkSticky(this.cred, p.dirRow, row);
      if (this.store.manifest.list(d.ino, this.chain).size > 0) throw new StoreError("ENOTEMPTY", "directory not empty");
      this.removeEntry(p.dir, p.name, -1);
      this.dropLink(d.ino);
    });
  }

  /** As unlink(2); an open file stays readable through its fds until the last close. Errors: EISDIR, ENOENT, ENOTDIR, EACCES, EPERM, EROFS. */
  unlink(path: string): void {
    this.wr("unlink", path, () => {
      const p = this.paths.resolveParent(path, "unlink");
      const d = this.store.manifest.lookup(p.dir, p.name, this.chain);
      if (!d) throw new StoreError("ENOENT", "no such file or directory");
      const row = this.node(d.ino);
      if ((row.mode & S_IFMT) === S_IFDIR) throw new StoreError("EISDIR", "is a directory");
      if (p.trailingSlash) throw new StoreError("ENOTDIR", "not a directory");
      this.need(p.dirRow, 3);
      checkSticky(this.cred, p.dirRow, row);
      this.removeEntry(p.dir, p.name);
      this.dropLink(d.ino);
    });
  }

  /**
   * As rename(2): atomically replaces an existing destination (a file by a
   * file, an empty directory by a directory). Errors: ENOENT, ENOTDIR, EISDIR,
   * ENOTEMPTY, EINVAL (into its own subtree, or "." / ".."), EBUSY (root),
   * EACCES, EPERM (sticky), EROFS.
   */
  rename(from: string, to: string): void {
    this.wr("rename", from, () => {
      const m = this.store.manifest;
      // As Linux: both parent directories are looked up before the source entry.
      const sp = this.paths.resolveParent(from, "rename");
      const tp = this.paths.resolveParent(to, "rename");
      const s = m.lookup(sp.dir, sp.name, this.chain);
      if (!s) throw new StoreError("ENOENT", "no such file or directory");
      const srow = this.node(s.ino);
      const sIsDir = (srow.mode & S_IFMT) === S_IFDIR;
      if (!sIsDir && (sp.trailingSlash || tp.trailingSlash)) throw new StoreError("ENOTDIR", "not a directory");
      const t = m.lookup(tp.dir, tp.name, this.chain);
      this.need(sp.dirRow, 3);
      this.need(tp.dirRow, 3);
      checkSticky(this.cred, sp.dirRow, srow);
      if (t && t.ino === s.ino) return; // same file: POSIX says do nothing
      if (sIsDir && isWithin(tp, s.ino)) throw new StoreError("EINVAL", "cannot move a directory into itself");
      // As Linux: a target that is an ancestor of the source fails before any type check.
      if (t && sp.ancestors.includes(t.ino)) throw new StoreError("ENOTEMPTY", "directory not empty");
      const trow = t ? this.node(t.ino) : undefined;
      const tIsDir = trow ? (trow.mode & S_IFMT) === S_IFDIR : false;
      if (trow) {
        if (sIsDir && !tIsDir) throw new StoreError("ENOTDIR", "not a directory");
        if (!sIsDir && tIsDir) throw new StoreError("EISDIR", "is a directory");
        if (tIsDir && m.list(t!.ino, this.chain).size > 0) throw new StoreError("ENOTEMPTY", "directory not empty");
        checkSticky(this.cred, tp.dirRow, trow);
      }
      const sameDir = sp.dir === tp.dir;
      // Remove the source entry, then place it (replacing any target).
      this.removeEntry(sp.dir, sp.name, sIsDir && !sameDir ? -1 : 0);
      if (trow) this.dropLink(t!.ino);
      m.putDentry(this.head, tp.dir, tp.name, s.ino, srow.mode & S_IFMT);
      const now = this.now();
      this.touchDir(tp.dir, (sIsDir && !sameDir ? 1 : 0) - (tIsDir ? 1 : 0), now);
      this.update(s.ino, (r) => {
        r.ctime = now;
      });
    }, to);
  }

  /**
   * As renameat2(2) with RENAME_EXCHANGE: atomically swaps the entries `a`
   * and `b` (both must exist; any types, within or across directories). Two
   * names of one inode: nothing changes. Errors: ENOENT (either missing),
   * EINVAL (a directory and its own descendant), ENOTDIR (a trailing slash on
   * a non-directory), EACCES, EPERM (sticky directory), EROFS.
   */
  exchange(a: string, b: string): void {
    this.wr("rename", a, () => {
      const m = this.store.manifest;
      const ap = this.paths.resolveParent(a, "rename");
      const bp = this.paths.resolveParent(b, "rename");
      const x = m.lookup(ap.dir, ap.name, this.chain);
      const y = m.lookup(bp.dir, bp.name, this.chain);
      if (!x || !y) throw new StoreError("ENOENT", "no such file or directory");
      const xrow = this.node(x.ino);
      const yrow = this.node(y.ino);
      const xIsDir = (xrow.mode & S_IFMT) === S_IFDIR;
      const yIsDir = (yrow.mode & S_IFMT) === S_IFDIR;
      if ((!xIsDir && ap.trailingSlash) || (!yIsDir && bp.trailingSlash)) throw new StoreError("ENOTDIR", "not a directory");
      this.need(ap.dirRow, 3);
      this.need(bp.dirRow, 3);
      checkSticky(this.cred, ap.dirRow, xrow);
      checkSticky(this.cred, bp.dirRow, yrow);
      if (x.ino === y.ino) return; // two names of one file: as Linux, nothing to do
      // As Linux (do_renameat2): either one inside the other is EINVAL for an exchange.
      if ((xIsDir && isWithin(bp, x.ino)) || (yIsDir && isWithin(ap, y.ino))) throw new StoreError("EINVAL", "cannot exchange a directory with its own descendant");
      m.putDentry(this.head, ap.dir, ap.name, y.ino, yrow.mode & S_IFMT);
      m.putDentry(this.head, bp.dir, bp.name, x.ino, xrow.mode & S_IFMT);
      const now = this.now();
      // A directory moving to another parent takes its ".." link along.
      const delta = ap.dir === bp.dir ? 0 : (yIsDir ? 1 : 0) - (xIsDir ? 1 : 0);
      this.touchDir(ap.dir, delta, now);
      if (bp.dir !== ap.dir) this.touchDir(bp.dir, -delta, now);
      for (const ino of [x.ino, y.ino]) {
        this.update(ino, (r) => {
          r.ctime = now;
        });
      }
    }, b);
  }

  /** As link(2). Errors: EEXIST, EPERM (directory), ENOENT, EMLINK, EACCES, EROFS. */
  link(existing: string, path: string): void {
    this.wr("link", existing, () => {
      const s = this.paths.resolve(existing, false);
      this.linkAs(s.ino, s.row, path);
    }, path);
  }

  /**
   * As linkat(2) with AT_EMPTY_PATH (or linkat of /proc/self/fd/N): a new
   * name `path` for the file open as `fd`. A file made by `openTmpfile`
   * without O_EXCL and not linked yet gets its first name (nlink 1); with
   * `commit` (default) what was written through its descriptors is stored
   * in the same transaction, else by the next commit of a descriptor open
   * for writing (flush, fsync, close; none may be left to do it). A
   * file unlinked while open cannot be named again (ENOENT, as Linux without
   * I_LINKABLE). Errors: EBADF, ENOENT, EEXIST, EPERM (a directory), EMLINK,
   * EACCES, ENAMETOOLONG, EROFS.
   */
  flink(fd: number, path: string, commit = true): void {
    this.wr("link", path, () => {
      const h = this.handle(fd);
      const o = this.openOf(h);
      if (!this.nameless(o)) return this.linkAs(h.ino, this.node(h.ino), path);
      if (!o.linkable) throw new StoreError("ENOENT", "the file has no name and may not get one (unlinked, or O_TMPFILE with O_EXCL)");
      const row = o.orphan!;
      const p = this.linkTarget(path, row);
      this.store.manifest.putInode(this.head, { ...row, nlink: 1, ctime: this.now() });
      this.addEntry(p.dir, p.name, h.ino, row.mode & S_IFMT);
      if (commit) this.commitContent(o);
      // (only now: a failure above rolls the link back, and the file must still be a nameless one)
      o.orphan = null;
      o.linkable = false;
    }, path);
  }

  /** The new name of a link(2) to `row`, checked: EEXIST, ENOENT (trailing slash), EPERM (a directory), EACCES. */
  private linkTarget(path: string, row: InodeRow): { dir: number; name: string } {
    const p = this.paths.resolveParent(path, "link");
    if (this.store.manifest.lookup(p.dir, p.name, this.chain)) throw new StoreError("EEXIST", "file exists");
    if (p.trailingSlash) throw new StoreError("ENOENT", "no such file or directory");
    // As Linux: the new name is checked (EEXIST) before the directory rule (EPERM).
    if ((row.mode & S_IFMT) === S_IFDIR) throw new StoreError("EPERM", "hard links to directories are not allowed");
    this.need(p.dirRow, 3);
    return p;
  }

  /** One more name, `path`, for the linked inode `ino` (its row `row`). */
  private linkAs(ino: number, row: InodeRow, path: string): void {
    const p = this.linkTarget(path, row);
    if (row.nlink >= 65000) throw new StoreError("EMLINK", "too many links");
    const t = this.now();
    this.update(ino, (r) => {
      r.nlink += 1;
      r.ctime = t;
    });
    this.addEntry(p.dir, p.name, ino, row.mode & S_IFMT);
  }

  /** As symlink(2): creates `path` pointing at `target` (not resolved). Errors: EEXIST, ENOENT (empty target), ENAMETOOLONG, EACCES, EROFS. */
  symlink(target: string, path: string): void {
    this.wr("symlink", target, () => {
      if (target === "") throw new StoreError("ENOENT", "empty symlink target");
      if (target.includes("\0")) throw new StoreError("EINVAL", "symlink target contains a NUL byte");
      if (Buffer.byteLength(target) >= 4096) throw new StoreError("ENAMETOOLONG", "symlink target too long");
      const p = this.paths.resolveParent(path, "symlink");
      if (this.store.manifest.lookup(p.dir, p.name, this.chain)) throw new StoreError("EEXIST", "file exists");
      this.need(p.dirRow, 3);
      const ino = this.store.manifest.allocIno();
      const row = this.newRow(ino, S_IFLNK | 0o777, p.dirRow);
      row.target = target;
      row.size = Buffer.byteLength(target);
      this.store.manifest.putInode(this.head, row);
      this.addEntry(p.dir, p.name, ino, S_IFLNK);
    }, path);
  }

  /**
   * As mknod(2): creates a special file at `path` — a FIFO (S_IFIFO), a
   * socket (S_IFSOCK), or a character or block device (S_IFCHR, S_IFBLK;
   * `rdev` its device number, as makedev(3)) — with the permission bits of
   * `mode` less the umask; S_IFREG or no type bits creates an empty regular
   * file. Special files hold no data: the store keeps their type, owner,
   * times, xattrs and `rdev`, and a kernel front end (FUSE) serves their I/O
   * itself; `openFile` on one answers ENXIO. Returns the inode number.
   * Errors: EEXIST (anything at `path`, a dangling symlink too), EPERM
   * (S_IFDIR, or a device by a caller other than root), EINVAL (unknown type
   * bits), ENOENT, ENOTDIR, EACCES, ENAMETOOLONG, EROFS.
   */
  mknod(path: string, mode: number, rdev = 0): number {
    return this.wr("mknod", path, () => {
      let type = mode & S_IFMT;
      if (type === 0) type = S_IFREG;
      if (type === S_IFDIR) throw new StoreError("EPERM", "mknod cannot make directories (use mkdir)");
      if (type !== S_IFREG && !isSpecial(type)) throw new StoreError("EINVAL", `unknown file type 0${(type >>> 12).toString(8)} in mode`);
      if ((type === S_IFCHR || type === S_IFBLK) && this.cred.uid !== 0) throw new StoreError("EPERM", "only root may make device nodes");
      const p = this.paths.resolveParent(path, "mknod");
      if (this.store.manifest.lookup(p.dir, p.name, this.chain)) throw new StoreError("EEXIST", "file exists");
      if (p.trailingSlash) throw new StoreError("ENOENT", "a trailing slash names a directory");
      this.need(p.dirRow, 3);
      const ino = this.store.manifest.allocIno();
      const row = this.newRow(ino, type | (mode & 0o7777 & ~this.umask), p.dirRow);
      if (type === S_IFCHR || type === S_IFBLK) row.rdev = rdev;
      this.store.manifest.putInode(this.head, row);
      this.addEntry(p.dir, p.name, ino, type);
      return ino;
    }, path);
  }

  // ---------------------------------------------------------------- files

  /**
   * As open(2) with `flags` from fs.constants (O_RDONLY, O_WRONLY, O_RDWR,
   * O_CREAT, O_EXCL, O_TRUNC, O_APPEND, O_DIRECTORY, O_NOFOLLOW), or with
   * `O_TMPFILE` (Linux's value, which node:fs does not export) for
   * `openTmpfile(path, ...)`; returns a descriptor number private to this
   * view. Errors: ENOENT, EEXIST, EISDIR, ENOTDIR, ELOOP, EACCES,
   * ENAMETOOLONG, EROFS; EINVAL (O_TMPFILE read-only).
   */
  openFile(path: string, flags: number, mode = 0o666): number {
    if (O_TMPFILE !== 0 && (flags & O_TMPFILE) === O_TMPFILE) return this.openTmpfile(path, flags, mode);
    const acc = flags & 3;
    const writes = acc !== C.O_RDONLY || (flags & (C.O_CREAT | C.O_TRUNC)) !== 0;
    const op = () => {
      let r: { ino: number; row: InodeRow; path: string };
      let created = false;
      if (flags & C.O_CREAT) {
        // A dangling symlink: O_CREAT creates the file it points at (as Linux does).
        const { parent: p, entry: d, path: cur } = this.paths.resolveCreate(path, "open", !(flags & C.O_NOFOLLOW), (flags & C.O_EXCL) !== 0);
        if (d) {
          const x = this.paths.resolve(cur, !(flags & C.O_NOFOLLOW));
          r = { ino: x.ino, row: x.row, path };
          if ((x.row.mode & S_IFMT) === S_IFLNK) throw new StoreError("ELOOP", "is a symbolic link (O_NOFOLLOW)");
        } else {
          if (p.trailingSlash) throw new StoreError("EISDIR", "is a directory");
          if (this.readOnly) throw new StoreError("EROFS", "snapshots are read-only");
          this.need(p.dirRow, 3);
          const ino = this.store.manifest.allocIno();
          const row = this.newRow(ino, S_IFREG | (mode & 0o7777 & ~this.umask), p.dirRow);
          this.store.manifest.putInode(this.head, row);
          this.addEntry(p.dir, p.name, ino, S_IFREG);
          r = { ino, row, path };
          created = true;
        }
      } else {
        const x = this.paths.resolve(path, !(flags & C.O_NOFOLLOW));
        if ((x.row.mode & S_IFMT) === S_IFLNK) throw new StoreError("ELOOP", "is a symbolic link (O_NOFOLLOW)");
        r = { ino: x.ino, row: x.row, path };
      }
      const type = r.row.mode & S_IFMT;
      const isDir = type === S_IFDIR;
      if (flags & C.O_DIRECTORY && !isDir) throw new StoreError("ENOTDIR", "not a directory");
      if (isSpecial(type)) throw new StoreError("ENXIO", "a special file (FIFO, socket or device): open it through a mount, whose kernel serves it");
      if (isDir && (acc !== C.O_RDONLY || flags & C.O_TRUNC)) throw new StoreError("EISDIR", "is a directory");
      if (!created) {
        const want = (acc === C.O_RDONLY ? 4 : acc === C.O_WRONLY ? 2 : 6) | (flags & C.O_TRUNC ? 2 : 0);
        this.need(r.row, want);
        if (want & 2 && this.readOnly) throw new StoreError("EROFS", "snapshots are read-only");
      }
      const o = this.openInode(r.ino);
      o.refs++;
      if (flags & C.O_TRUNC && acc !== C.O_RDONLY && !created && type === S_IFREG) {
        this.truncateOpen(o, 0);
        this.commitContent(o);
      }
      return this.newHandle(r.ino, r.path, flags, isDir);
    };
    return writes && !this.readOnly ? this.wr("open", path, op) : this.rd("open", path, op);
  }

  /**
   * As open(2) with O_TMPFILE: a new regular file in directory `dir` with no
   * name (nlink 0). Its mode is `mode` less the umask, its owner the view's
   * credentials, its group the directory's when that is set-group-ID (as for
   * a create); the directory itself does not change. Its bytes live as long
   * as a descriptor is open, unless `flink` names it first. `flags`: the
   * access mode (O_WRONLY or O_RDWR), O_APPEND, and O_EXCL (then it can
   * never be named). Returns a descriptor.
   * Errors: EINVAL (O_RDONLY), ENOENT, ENOTDIR, EACCES (no write and search
   * permission on `dir`), ELOOP, ENAMETOOLONG, EROFS.
   */
  openTmpfile(dir: string, flags: number, mode = 0o600): number {
    const acc = flags & 3;
    if (acc === C.O_RDONLY) throw new FsError("EINVAL", "open", dir, undefined, "O_TMPFILE needs O_WRONLY or O_RDWR");
    return this.wr("open", dir, () => {
      const d = this.paths.resolve(dir, true);
      if ((d.row.mode & S_IFMT) !== S_IFDIR) throw new StoreError("ENOTDIR", "not a directory");
      this.need(d.row, 3);
      const ino = this.store.manifest.allocIno();
      const o = this.openInode(ino);
      o.orphan = { ...this.newRow(ino, S_IFREG | (mode & 0o7777 & ~this.umask), d.row), nlink: 0 };
      o.linkable = (flags & C.O_EXCL) === 0;
      o.refs++;
      return this.newHandle(ino, dir, flags, false);
    });
  }

  /**
   * A new descriptor on the file `fd` is open on, as open(2) of
   * /proc/self/fd/N: access mode and O_APPEND from `flags` (other flags are
   * ignored), position 0. Works after the file was unlinked. No permission
   * check: for front ends whose kernel checked already (FUSE with
   * default_permissions). Errors: EBADF, EISDIR (a directory for writing),
   * EROFS (writing on a read-only tree).
   */
  reopenFile(fd: number, flags: number): number {
    const h = this.handles.get(fd);
    if (!h) throw new FsError("EBADF", "open");
    const acc = flags & 3;
    if (h.isDir && acc !== C.O_RDONLY) throw new FsError("EISDIR", "open", h.path);
    if (acc !== C.O_RDONLY && this.readOnly) throw new FsError("EROFS", "open", h.path);
    this.openInode(h.ino).refs++;
    return this.newHandle(h.ino, h.path, flags, h.isDir);
  }

  private truncateOpen(o: OpenInode, len: number): void {
    const c = this.contentOf(o, len === 0);
    c.truncate(len);
    o.mtime = this.now();
  }

  /** Committed extents of `ino`, decoded once per generation. */
  private extentsOf(o: OpenInode | undefined, row: InodeRow): Extent[] {
    if (!o) return decodeExtents(row.extents);
    if (o.ext && o.extGen === this.gen) return o.ext;
    o.ext = decodeExtents(row.extents);
    o.extGen = this.gen;
    return o.ext;
  }

  /**
   * As pread(2) (`position` given) or read(2) (`position` null: uses and
   * advances the file position): `length` bytes into `buf` at `offset`.
   * Returns bytes read (0 at end of file). Errors: EBADF, EISDIR, EINVAL
   * (negative position), EIO.
   */
  read(fd: number, buf: Uint8Array, offset: number, length: number, position: number | null): number {
    return this.readVia(fd, buf, offset, length, position, true);
  }

  /**
   * As pread(2), on any descriptor of a regular file, open for reading or
   * not: a front end's copy of the file's current bytes for a cache of its
   * own (the FUSE daemon fills the kernel's page cache of a file it just
   * committed). Never moves the file position. Errors: EBADF, EISDIR,
   * EINVAL, EIO.
   */
  readForCache(fd: number, buf: Uint8Array, offset: number, length: number, position: number): number {
    return this.readVia(fd, buf, offset, length, position, false);
  }

  private readVia(fd: number, buf: Uint8Array, offset: number, length: number, position: number | null, asRead: boolean): number {
    return this.wrap("read", undefined, () => {
      const h = this.handle(fd);
      if (asRead && !h.readable) throw new StoreError("EBADF", "file not open for reading");
      if (h.isDir) throw new StoreError("EISDIR", "is a directory");
      const pos = position ?? h.pos;
      if (pos < 0) throw new StoreError("EINVAL", "negative position");
      const o = this.openOf(h);
      let n: number;
      if (o.content) n = o.content.read(buf, offset, length, pos);
      else {
        n = this.store.manifest.heldRead(() => {
          this.refresh();
          const row = this.node(h.ino);
          if (row.rdev === LOWER_DATA && this.chain.lower) return this.chain.lower.read(row.ino, row.size, buf, offset, length, pos);
          return readExtents(this.store.cas, this.extentsOf(o, row), row.size, buf, offset, length, pos);
        });
      }
      if (position === null) h.pos = pos + n;
      return n;
    });
  }

  /**
   * As pwrite(2) / write(2); with O_APPEND always writes at the end. Data is
   * buffered in the backstore and committed on close or fsync. Returns bytes
   * written. Errors: EBADF, EINVAL (negative position), EFBIG, EROFS.
   */
  write(fd: number, buf: Uint8Array, offset: number, length: number, position: number | null): number {
    return this.wrap("write", undefined, () => {
      const h = this.handle(fd);
      if (!h.writable) throw new StoreError("EBADF", "file not open for writing");
      const o = this.openOf(h);
      const c = this.store.manifest.read(() => {
        this.refresh();
        return this.contentOf(o);
      });
      const pos = h.append ? c.size : position ?? h.pos;
      if (pos < 0) throw new StoreError("EINVAL", "negative position");
      if (pos + length > MAX_FILE_SIZE) throw new StoreError("EFBIG", "file too large");
      c.write(buf, offset, length, pos);
      o.mtime = this.now();
      if (position === null || h.append) h.pos = pos + length;
      return length;
    });
  }

  /** As ftruncate(2): `len` in bytes; committed on close or fsync. Errors: EBADF, EINVAL (not open for writing, or negative length), EISDIR, EFBIG (over MAX_FILE_SIZE). */
  ftruncate(fd: number, len: number): void {
    this.wrap("ftruncate", undefined, () => {
      const h = this.handle(fd);
      if (!h.writable) throw new StoreError("EINVAL", "file not open for writing");
      if (len < 0) throw new StoreError("EINVAL", "negative length");
      if (len > MAX_FILE_SIZE) throw new StoreError("EFBIG", "file too large");
      const o = this.openOf(h);
      this.store.manifest.read(() => {
        this.refresh();
        this.truncateOpen(o, len);
      });
    });
  }

  /**
   * As fallocate(2) on descriptor `fd`, for `len` bytes at `off` (bytes).
   * `mode` 0 grows the file to `off + len` when it is shorter (a store
   * reserves no space ahead, so a later write can still fail with ENOSPC);
   * FALLOC_FL_KEEP_SIZE alone changes no bytes; FALLOC_FL_PUNCH_HOLE |
   * FALLOC_FL_KEEP_SIZE makes the range read as zero and stores it as a hole
   * at the next commit. Every success sets mtime and ctime, as on tmpfs.
   * Committed on close or fsync. Errors: EINVAL (`off` < 0 or `len` <= 0),
   * ENOTSUP (any other mode: zero, collapse or insert range, or punching
   * without FALLOC_FL_KEEP_SIZE, as tmpfs), EBADF (not open for writing),
   * EISDIR, EFBIG (`off + len` over MAX_FILE_SIZE).
   */
  fallocate(fd: number, mode: number, off: number, len: number): void {
    this.wrap("fallocate", undefined, () => {
      if (off < 0 || len <= 0) throw new StoreError("EINVAL", "negative offset or length not above zero");
      const punch = mode === (FALLOC_FL_PUNCH_HOLE | FALLOC_FL_KEEP_SIZE);
      if (mode !== 0 && mode !== FALLOC_FL_KEEP_SIZE && !punch) throw new StoreError("ENOTSUP", `fallocate mode ${mode} is not supported`);
      const h = this.handle(fd);
      if (!h.writable) throw new StoreError("EBADF", "file not open for writing");
      if (h.isDir) throw new StoreError("EISDIR", "is a directory");
      if (off + len > MAX_FILE_SIZE) throw new StoreError("EFBIG", "file too large");
      const o = this.openOf(h);
      this.store.manifest.read(() => {
        this.refresh();
        const c = this.contentOf(o);
        if (punch) c.punch(off, len);
        else if (mode === 0 && off + len > c.size) c.truncate(off + len);
        o.mtime = this.now();
      });
    });
  }

  /**
   * As lseek(2) with SEEK_DATA (`data` true) or SEEK_HOLE on descriptor
   * `fd`: the first offset >= `pos` (bytes) that holds data, or that lies in
   * a hole (the end of the file always counts as one). Holes are known per
   * 64 KiB page in a file being written (zeros written count as data until
   * committed) and per chunk once committed; a file of an overlay's lower
   * layer that was not copied up is all data. Errors: EBADF, EINVAL (a
   * directory), ENXIO (`pos` negative or not below the size, or, for
   * SEEK_DATA, no data at or after it).
   */
  seekData(fd: number, pos: number, data: boolean): number {
    return this.wrap("lseek", undefined, () => {
      const h = this.handle(fd);
      if (h.isDir) throw new StoreError("EINVAL", "SEEK_DATA/SEEK_HOLE on a directory");
      const o = this.openOf(h);
      const r = this.store.manifest.heldRead(() => {
        this.refresh();
        if (o.content) {
          if (pos < 0 || pos >= o.content.size) return -1;
          return o.content.seek(pos, data);
        }
        const row = this.node(h.ino);
        if (pos < 0 || pos >= row.size) return -1;
        if (row.rdev === LOWER_DATA) return data ? pos : row.size;
        return seekExtents(this.extentsOf(o, row), row.size, pos, data);
      });
      if (r < 0) throw new StoreError("ENXIO", "no data at or after the offset, or offset past the end of the file");
      return r;
    });
  }

  /** As truncate(2): committed at once. Errors: ENOENT, EISDIR, EACCES, EINVAL, EFBIG (over MAX_FILE_SIZE), EROFS. */
  truncate(path: string, len: number): void {
    this.wr("truncate", path, () => {
      const o = this.truncateHeld(path, len);
      try {
        this.commitContent(o);
      } finally {
        this.release(o);
      }
    });
  }

  /**
   * `truncate` without holding the event loop for the commit: the size
   * changes at once (every descriptor of the file sees it), and the file's
   * pending writes are committed together with it as `flushAsync` does
   * (chunking off the loop when there is much to commit). Resolves when
   * committed. Rejects with FsError: ENOENT, EISDIR, EACCES, EINVAL, EFBIG,
   * EROFS, EIO.
   */
  truncateAsync(path: string, len: number): Promise<void> {
    let o: OpenInode;
    try {
      o = this.wr("truncate", path, () => this.truncateHeld(path, len));
    } catch (e) {
      return Promise.reject(e);
    }
    return this.commits.commit(o, "truncate").finally(() => this.release(o));
  }

  /**
   * The shared first half of `truncate` and `truncateAsync`, inside their
   * write transaction: checks, then sets the size of the file at `path` in
   * its open state, which it returns with one more reference (the caller
   * commits and releases it). StoreErrors: EINVAL, EFBIG, EISDIR, EACCES,
   * ENOENT.
   */
  private truncateHeld(path: string, len: number): OpenInode {
    if (len < 0) throw new StoreError("EINVAL", "negative length");
    if (len > MAX_FILE_SIZE) throw new StoreError("EFBIG", "file too large");
    const r = this.paths.resolve(path, true);
    if ((r.row.mode & S_IFMT) === S_IFDIR) throw new StoreError("EISDIR", "is a directory");
    if ((r.row.mode & S_IFMT) !== S_IFREG) throw new StoreError("EINVAL", "not a regular file"); // as vfs_truncate: before the permission check
    this.need(r.row, 2);
    const o = this.openInode(r.ino);
    o.refs++;
    try {
      this.truncateOpen(o, len);
    } catch (e) {
      this.release(o);
      throw e;
    }
    return o;
  }

  /**
   * As fsync(2): commits this file's pending writes durably (synchronous=FULL
   * for this commit). Errors: EBADF, EIO.
   */
  fsync(fd: number): void {
    const { o } = this.opened("fsync", fd);
    if (this.readOnly || !o.content) return;
    if (this.nameless(o)) return; // as flush, close and fsyncAsync
    const db = this.store.manifest.db;
    this.wrap("fsync", undefined, () => this.store.manifest.settle());
    db.pragma("synchronous = FULL");
    try {
      this.wrNow("fsync", () => this.commitContent(o));
    } finally {
      db.pragma("synchronous = NORMAL");
    }
  }

  /**
   * Commits this descriptor's pending writes without releasing it and without
   * the durable (synchronous=FULL) sync of `fsync`: what close(2) makes
   * visible, for front ends whose close arrives as a separate step (FUSE
   * `flush` on every close(2) of a duplicated descriptor). No-op on a
   * snapshot, for a read-only descriptor, or when nothing is pending.
   * Errors: EBADF, EIO.
   */
  flush(fd: number): void {
    const { h, o } = this.opened("flush", fd);
    if (this.readOnly || !h.writable || !o.content || !(o.content.dirty || o.mtime !== null)) return;
    if (this.nameless(o)) return;
    this.wrNow("flush", () => this.commitContent(o));
  }

  /** As close(2): commits pending writes, then releases the descriptor. Errors: EBADF, EIO (the fd is released either way). */
  close(fd: number): void {
    const { h, o } = this.opened("close", fd);
    try {
      if (h.writable && o.content && (o.content.dirty || o.mtime !== null)) {
        if (!this.nameless(o)) this.wrNow("close", () => this.commitContent(o));
      }
    } finally {
      this.handles.delete(fd);
      this.release(o);
    }
  }

  // ------------------------------------------------------- asynchronous commits

  /**
   * As `flush`, but the CPU-heavy work of a large commit (chunking, SHA-256,
   * compression) runs in a worker thread (`CommitPool`) and the objects are
   * stored in short transactions, so the event loop is never held for more
   * than a few ms (see asynccommit.ts, commitpipe.ts). Resolves once the
   * writes made before the call are committed (visible to other
   * connections, as after close).
   * Writes, reads, truncates, unlink and rename of the file may go on
   * meanwhile: reads see the latest bytes, later writes are left for the
   * next commit. Commits of one file run in call order; a synchronous
   * commit (flush, close, fsync, truncate…) meanwhile supersedes the one in
   * flight. Small changes (up to 256 KiB to re-chunk) are committed at once.
   * Rejects with FsError: EBADF, EIO.
   */
  async flushAsync(fd: number): Promise<void> {
    const { h, o } = this.opened("flush", fd);
    if (this.readOnly || !h.writable) return;
    await this.commits.commit(o, "flush");
  }

  /**
   * Write-behind: starts committing the file open as `fd` as `flushAsync`
   * does, with nobody waiting, unless a commit of it is already in flight
   * or queued (then returns false: the bytes written meanwhile go into the
   * next one, so commits grow with the backlog instead of queueing up).
   * A failed background commit changes nothing stored: the bytes stay
   * pending, no further write-behind runs for the file while it is open
   * (a full disk would fail each one again), and the next flush, fsync or
   * close commits them and reports the error. Durability is unchanged
   * (only fsync makes data survive a crash). Returns true when a commit
   * was started. Errors: EBADF.
   */
  commitBehind(fd: number): boolean {
    const { h, o } = this.opened("flush", fd);
    if (this.readOnly || !h.writable || o.tail || o.behindFailed || o.content?.inFlight) return false;
    this.commits.commit(o, "flush").catch(() => {
      o.behindFailed = true;
    });
    return true;
  }

  /**
   * Dirty throttling (as the kernel's balance_dirty_pages): when the file
   * open as `fd` holds more than WRITE_THROTTLE_BYTES (64 MiB) in its
   * working buffer (`WorkingBuffer.heldBytes`: pages punched or truncated
   * away do not count) and a commit of it is in flight or queued, a promise that
   * settles (never rejects) once those commits are done and have freed
   * what they stored; else null. A front end holds a writer's answer on it,
   * so a writer faster than the commits cannot grow memory without bound.
   * Errors: EBADF.
   */
  writeThrottle(fd: number): Promise<void> | null {
    const { o } = this.opened("write", fd);
    if (!o.tail || !o.content || o.content.heldBytes <= WRITE_THROTTLE_BYTES) return null;
    return o.tail;
  }

  /**
   * As `fsync`, asynchronously: commits as `flushAsync` does, then makes the
   * store durable with fsync(2) of the database and its WAL on the libuv
   * thread pool (instead of `synchronous=FULL` on the loop). Once it has
   * resolved, the file's data survives a crash or power loss. Rejects with
   * FsError: EBADF, EIO.
   */
  async fsyncAsync(fd: number): Promise<void> {
    const { o } = this.opened("fsync", fd);
    if (this.readOnly) return;
    if (o.content) await this.commits.commit(o, "fsync");
    await this.syncAsync();
  }

  /**
   * As syncfs(2), or fsync(2) on a directory: commits what the store holds
   * (`Manifest.holdTransactions`), then makes it durable with fsync(2) of
   * the database and its WAL on the libuv thread pool. Open files' pending
   * writes are not committed (their own fsync does that). Rejects with
   * FsError: EIO.
   */
  async syncAsync(): Promise<void> {
    try {
      this.store.manifest.settle();
      await this.store.manifest.syncFiles();
    } catch (e) {
      throw asFsError(e, "fsync");
    }
  }

  /**
   * As `close`, asynchronously: commits pending writes as `flushAsync` does,
   * then releases the descriptor (released even when the commit fails).
   * Resolves when the data is committed (as close(2) returning). Rejects
   * with FsError: EBADF, EIO.
   */
  async closeAsync(fd: number): Promise<void> {
    const { h, o } = this.opened("close", fd);
    try {
      if (h.writable && !this.readOnly) await this.commits.commit(o, "close");
    } finally {
      // (closeAll may have released it meanwhile)
      if (this.handles.delete(fd)) this.release(o);
    }
  }

  private release(o: OpenInode): void {
    if (--o.refs <= 0) {
      o.content?.dispose();
      this.open.delete(o.ino);
    }
  }

  /**
   * Streams a consistent image of the regular file at `path` to `sink`, in
   * ascending file offsets, and returns its stat (taken in the same read
   * transaction). `sink(data, pos)` receives the bytes at
   * `[pos, pos + data.length)`; ranges never passed to it are holes (zeros)
   * up to `stat.size`, so a consumer that first sizes its target (e.g.
   * ftruncate) and then writes each piece reproduces the file and keeps it
   * sparse. `data` is only valid during the call and must not be modified
   * (it may be the CAS's cached, verified chunk). Pieces are at most one
   * chunk (256 KiB with the default chunker) or 1 MiB, so the image is never
   * held in memory as a whole.
   *
   * Which bytes: when this view has the file open for writing, its
   * in-progress bytes (what a read through its fd returns now, unflushed
   * writes included); otherwise the committed bytes. Other processes'
   * unflushed writes are never visible. The whole image comes from one
   * SQLite read transaction, so a concurrent commit by another process is
   * either entirely in it or not at all.
   *
   * `follow` (default true) follows a final symlink; with false a symlink
   * gives ELOOP (as open(2) with O_NOFOLLOW). Errors (FsError, syscall
   * "open"): ENOENT, ENOTDIR, ELOOP, EACCES (no read permission), EISDIR
   * (a directory), EINVAL (not a regular file), ENAMETOOLONG, EIO (a corrupt
   * or missing object). An error thrown by `sink` propagates unchanged.
   */
  readImage(path: string, sink: (data: Uint8Array, pos: number) => void, opts: { follow?: boolean } = {}): InodeStat {
    return this.rd("open", path, () => {
      const r = this.paths.resolve(path, opts.follow ?? true);
      const type = r.row.mode & S_IFMT;
      if (type === S_IFLNK) throw new StoreError("ELOOP", "is a symbolic link (O_NOFOLLOW)");
      if (type === S_IFDIR) throw new StoreError("EISDIR", "is a directory");
      if (type !== S_IFREG) throw new StoreError("EINVAL", "not a regular file");
      this.need(r.row, 4);
      const st = this.statOf(r.row);
      const o = this.open.get(r.ino);
      if (o?.content) {
        const c = o.content;
        const size = c.size;
        const piece = Buffer.allocUnsafe(Math.min(1024 * 1024, Math.max(1, size)));
        let pos = 0;
        while (pos < size) {
          const z = c.holeEnd(pos);
          if (z > pos) {
            pos = z;
            continue;
          }
          const n = c.read(piece, 0, Math.min(piece.length, size - pos), pos);
          if (n <= 0) break;
          sink(piece.subarray(0, n), pos);
          pos += n;
        }
      } else if (r.row.rdev === LOWER_DATA && this.chain.lower) {
        const size = r.row.size;
        const piece = Buffer.allocUnsafe(Math.min(1024 * 1024, Math.max(1, size)));
        for (let pos = 0; pos < size; ) {
          const n = this.chain.lower.read(r.ino, size, piece, 0, piece.length, pos);
          if (n <= 0) break;
          sink(piece.subarray(0, n), pos);
          pos += n;
        }
      } else {
        const size = r.row.size;
        for (const e of decodeExtents(r.row.extents)) {
          if (!e.hash || e.off >= size) continue;
          const data = this.store.cas.get(e.hash);
          const n = Math.min(e.len, size - e.off, data.length);
          if (n > 0) sink(data.subarray(0, n), e.off);
        }
      }
      return st;
    });
  }

  /** Path the descriptor was opened with. Errors: EBADF. */
  fdPath(fd: number): string {
    return this.wrap("fstat", undefined, () => this.handle(fd).path);
  }

  /** Current file position of a descriptor in bytes (as lseek(fd, 0, SEEK_CUR)). Errors: EBADF. */
  tell(fd: number): number {
    return this.wrap("lseek", undefined, () => this.handle(fd).pos);
  }

  /** Descriptor numbers open in this view, in opening order. Never throws. */
  openFds(): number[] {
    return [...this.handles.keys()];
  }

  /**
   * As fs.copyFile (uv_fs_copyfile): `dest` gets `src`'s bytes and permission
   * bits. The copy shares `src`'s chunks (a copy-on-write clone), so it
   * stores no data. Errors: ENOENT, EEXIST (`excl` and dest exists), EISDIR,
   * EACCES, EROFS.
   */
  copyFile(src: string, dest: string, excl: boolean): void {
    this.wr("copyfile", src, () => {
      const m = this.store.manifest;
      const s = this.paths.resolve(src, true);
      if ((s.row.mode & S_IFMT) === S_IFDIR) throw new StoreError("EISDIR", "is a directory");
      if ((s.row.mode & S_IFMT) !== S_IFREG) throw new StoreError("EINVAL", "not a regular file");
      this.need(s.row, 4);
      const so = this.open.get(s.ino);
      if (so) this.commitContent(so);
      let srow = this.node(s.ino);
      // A lower (host) source: its bytes are imported into the CAS for the copy.
      if (srow.rdev === LOWER_DATA) srow = { ...srow, extents: this.importLower(srow), rdev: 0 };
      // A dangling symlink as destination: the copy creates the file it points at (as open(O_CREAT) does).
      const { parent: p, entry: d, path: cur } = this.paths.resolveCreate(dest, "copyfile", true, excl);
      let dino: number;
      if (d) {
        const x = this.paths.resolve(cur, true);
        if ((x.row.mode & S_IFMT) === S_IFDIR) throw new StoreError("EISDIR", "is a directory");
        this.need(x.row, 2);
        dino = x.ino;
      } else {
        if (p.trailingSlash) throw new StoreError("EISDIR", "is a directory");
        this.need(p.dirRow, 3);
        dino = m.allocIno();
        m.putInode(this.head, this.newRow(dino, S_IFREG | (srow.mode & 0o7777), p.dirRow));
        this.addEntry(p.dir, p.name, dino, S_IFREG);
      }
      if (dino === s.ino) return;
      const t = this.now();
      this.update(dino, (r) => {
        r.extents = srow.extents;
        r.size = srow.size;
        if (r.rdev === LOWER_DATA) r.rdev = 0;
        r.mode = (r.mode & S_IFMT) | (srow.mode & 0o7777);
        r.mtime = t;
        r.ctime = t;
      });
      const dopen = this.open.get(dino);
      if (dopen?.content) {
        dopen.content.dispose();
        dopen.content = null;
        dopen.mtime = null;
        dopen.ext = null;
      }
    }, dest);
  }

  // ---------------------------------------------------------------- xattrs

  /** As getxattr(2)/lgetxattr(2): the value's bytes. Errors: ENODATA, ENOENT, ENOTSUP, ERANGE (name). */
  getxattr(path: string, name: string, follow = true): Buffer {
    return this.rd("getxattr", path, () => {
      checkXattrName(name);
      return xattrValue(this.cred, this.paths.resolve(path, follow).row, name);
    });
  }

  /** As listxattr(2)/llistxattr(2): names, sorted. Errors: ENOENT. */
  listxattr(path: string, follow = true): string[] {
    return this.rd("listxattr", path, () => xattrNames(this.cred, this.paths.resolve(path, follow).row));
  }

  /**
   * As fgetxattr(2) by inode number: the value of extended attribute `name`
   * of inode `ino`, linked or open after unlink. Errors: ENODATA, ENOENT (no
   * such inode), ENOTSUP, ERANGE (name).
   */
  getxattrOf(ino: number, name: string): Buffer {
    return this.rd("getxattr", undefined, () => {
      checkXattrName(name);
      return xattrValue(this.cred, this.node(ino), name);
    });
  }

  /** As flistxattr(2) by inode number (`getxattrOf`): names, sorted. Errors: ENOENT. */
  listxattrOf(ino: number): string[] {
    return this.rd("listxattr", undefined, () => xattrNames(this.cred, this.node(ino)));
  }

  /**
   * As setxattr(2)/lsetxattr(2); `flags` 0, XATTR_CREATE (1) or XATTR_REPLACE (2).
   * Errors: EEXIST, ENODATA, E2BIG (value over 64 KiB), ERANGE, ENOTSUP, EPERM, EROFS.
   */
  setxattr(path: string, name: string, value: Uint8Array, flags = 0, follow = true): void {
    this.wr("setxattr", path, () => {
      checkXattrName(name);
      checkXattrValue(value);
      const r = this.paths.resolve(path, follow);
      this.putXattrs(r.ino, xattrsWithSet(this.cred, r.row, name, value, flags));
    });
  }

  /** As removexattr(2)/lremovexattr(2). Errors: ENODATA, ENOENT, EPERM, EROFS. */
  removexattr(path: string, name: string, follow = true): void {
    this.wr("removexattr", path, () => {
      checkXattrName(name);
      const r = this.paths.resolve(path, follow);
      this.putXattrs(r.ino, xattrsWithRemoved(this.cred, r.row, name));
    });
  }

  /**
   * As fsetxattr(2) by inode number (`getxattrOf`): works on a file unlinked
   * while open. Errors: as `setxattr`, and ENOENT when the view has no inode
   * `ino`.
   */
  setxattrOf(ino: number, name: string, value: Uint8Array, flags = 0): void {
    this.wr("setxattr", undefined, () => {
      checkXattrName(name);
      checkXattrValue(value);
      this.putXattrs(ino, xattrsWithSet(this.cred, this.node(ino), name, value, flags));
    });
  }

  /** As fremovexattr(2) by inode number (`getxattrOf`). Errors: as `removexattr`, ENOENT (no inode `ino`). */
  removexattrOf(ino: number, name: string): void {
    this.wr("removexattr", undefined, () => {
      checkXattrName(name);
      this.putXattrs(ino, xattrsWithRemoved(this.cred, this.node(ino), name));
    });
  }

  /** Stores `ino`'s encoded attribute map (null: none) in the head layer; ctime becomes now. */
  private putXattrs(ino: number, enc: Buffer | null): void {
    const t = this.now();
    this.update(ino, (x) => {
      x.xattrs = enc;
      x.ctime = t;
    });
  }

  /**
   * Runs `fn` in one write transaction: the many small transactions of the
   * calls inside it become savepoints, so a bulk import commits once per
   * batch. An error rolls back the whole batch. Errors: EROFS on a snapshot.
   */
  batch<T>(fn: () => T): T {
    if (this.readOnly) return fn();
    return this.wrap("batch", undefined, () => this.store.manifest.write(fn));
  }

  /**
   * Unlinks every visible non-directory entry of this tree whose name starts
   * with `prefix` and for which `match(name)` is true, in one transaction;
   * returns how many were removed. Found with one query over the manifest's
   * dentry rows by name prefix (`Manifest.dentriesByPrefix`), not by walking
   * the tree, so entries of directories that exist only in an overlay's host
   * directory are not seen. Meant for maintenance by the process that owns
   * the tree (e.g. a front end removing its own leftover temporary names at
   * start): no permission or sticky-bit checks. Files open here stay
   * readable through their fds, as after unlink(2). Errors: EROFS on a
   * snapshot.
   */
  removeNames(prefix: string, match: (name: string) => boolean): number {
    return this.wr("unlink", undefined, () => {
      const m = this.store.manifest;
      let n = 0;
      for (const { parent, name } of m.dentriesByPrefix(prefix, this.chain)) {
        if (!match(name)) continue;
        const d = m.lookup(parent, name, this.chain);
        if (!d || (d.type & S_IFMT) === S_IFDIR) continue;
        this.removeEntry(parent, name);
        this.dropLink(d.ino);
        n++;
      }
      return n;
    });
  }

  /** Hex hashes of chunks that only open-but-unlinked files still use (for `gc` to spare). */
  heldChunks(): Set<string> {
    const out = new Set<string>();
    for (const o of this.open.values()) {
      for (const h of o.held ?? []) out.add(h);
      if (!o.orphan) continue;
      referencedChunks([o.orphan.extents], out);
      for (const e of o.content?.baseExtents ?? []) if (e.hash) out.add(e.hash.toString("hex"));
    }
    return out;
  }

  /** Runs `fn` in one read transaction, so several reads see one consistent state. */
  readBatch<T>(fn: () => T): T {
    return this.wrap("read", undefined, () => this.store.manifest.read(fn));
  }

  /**
   * Disposes the working buffers of open files that hold no uncommitted
   * change (nothing dirty, no pending mtime) and forgets their cached
   * extents, so the next read or write of each descriptor starts from the
   * version the branch holds now. For a front end whose branch was moved
   * underneath it (`Store.restore`, an overlay reset): without this, a
   * descriptor that had written keeps reading its pre-restore bytes. Buffers
   * with uncommitted changes are kept (commit them first, e.g. `flush`).
   * Descriptors stay valid; one whose inode the new state lacks gets ENOENT
   * from then on, as after the file vanished. Never throws.
   */
  dropCleanBuffers(): void {
    for (const o of this.open.values()) {
      o.ext = null;
      if (o.content && !o.content.dirty && o.mtime === null) {
        o.content.dispose();
        o.content = null;
      }
    }
    this.gen++;
  }

  /** Commits every open dirty file and drops all descriptors (as process exit would). */
  closeAll(): void {
    for (const fd of [...this.handles.keys()]) {
      try {
        this.close(fd);
      } catch {
        /* best effort: remaining fds are still released */
      }
    }
  }
}
