/**
 * `View`: the one namespace that every agentfs front end serves (FUSE now,
 * the LD_PRELOAD interposer later). A view is the `FsCore` of one branch (or
 * snapshot) plus virtual providers mounted into it. The first provider is the
 * control tree:
 *
 * ```
 * /.agentfs/                      virtual, read-only
 * /.agentfs/snapshots/            one directory per snapshot, listed live
 * /.agentfs/snapshots/<name>/...  the snapshot's tree, read-only (EROFS)
 * ```
 *
 * Everything else is the main tree. Paths are absolute ("/a/b"). Every
 * method is synchronous, mirrors one system call and throws `FsError`
 * (`code` = errno name, `errno` = negative errno number).
 *
 * Inode numbers: each backing tree gets a *slot*; a view inode number is
 * `slot * 2^32 + coreIno` (see `encodeIno`), so the branch, the control
 * nodes and every snapshot never share a number even though a snapshot and
 * its branch share core inode numbers. Slot 0 is the main tree, slot 1 the
 * virtual control nodes, slots 2.. snapshots (assigned on first use, stable
 * for the life of the View, never reused).
 */
import {
  FsCore, FsError, Store, StoreError, S_IFDIR, S_IFMT, parsePath,
  type Credentials, type DeferredCompressionStats, type DirEntry, type ErrnoName, type InodeStat, type Target, type TimeSpec,
} from "@agentfs/core";
import { constants as C } from "node:fs";

/** Name of the control directory at the root of every view. */
export const CONTROL_DIR = ".agentfs";
/** Slot of the main tree (branch or snapshot the view was opened on). */
export const SLOT_MAIN = 0;
/** Slot of the virtual control nodes (`/.agentfs`, `/.agentfs/snapshots`). */
export const SLOT_CONTROL = 1;
/** First slot handed to a snapshot tree under `/.agentfs/snapshots/`. */
export const SLOT_FIRST_SNAPSHOT = 2;
const SLOT_BASE = 2 ** 32;
/** Core inode number of a tree's root directory. */
const ROOT_CORE_INO = 1;

/** View inode number of core inode `ino` in tree `slot`: `slot * 2^32 + ino` (a safe integer for slots < 2^21). */
export function encodeIno(slot: number, ino: number): number {
  return slot * SLOT_BASE + ino;
}

/** Inverse of `encodeIno`: the slot and core inode number of a view inode number. */
export function decodeIno(viewIno: number): { slot: number; ino: number } {
  const slot = Math.floor(viewIno / SLOT_BASE);
  return { slot, ino: viewIno - slot * SLOT_BASE };
}

/** Options for `View.open`. */
export interface ViewOptions {
  /** Tree to serve (default: the store's checked-out branch). A snapshot target is read-only. */
  target?: Target;
  /** Refuse every change with EROFS even on a branch. */
  readOnly?: boolean;
  /**
   * Mode creation mask applied by `FsCore` to new files and directories
   * (default 0: front ends such as FUSE receive modes the kernel already
   * masked with the caller's umask).
   */
  umask?: number;
  /** Identity for core permission checks and new files' owner (default: this process's). */
  cred?: Credentials;
  /**
   * Start a background commit of a descriptor's writes (`FsCore.commitBehind`)
   * once this many bytes were written *sequentially* since the last one
   * started and none is in flight (default 0: only on flush/fsync/close);
   * bytes written while one runs go into the next. A front end whose loop
   * serves everyone (FUSE) sets it so that writing a large file costs many
   * bounded pauses instead of one pause as long as the whole commit at
   * close. A non-sequential write turns it off for that descriptor (a
   * commit re-chunks from the first changed byte, so random writes would
   * pay for the whole dirty span each time).
   */
  autoCommitBytes?: number;
  /**
   * Whole paths of this many bytes or more fail with ENAMETOOLONG. Default
   * `Infinity`: a front end passes paths built from the root of the view
   * (FUSE) or from the caller's working directory, and the kernel (or the
   * shim) already applied PATH_MAX to what the program passed, so a file in
   * a deep tree must stay reachable. Names are always limited to 255 bytes.
   */
  pathMax?: number;
  /**
   * False: errno answers other than EIO that the trees raise (ENOENT,
   * ENODATA, ...) carry no stack trace (`FsCoreOptions.errorStacks`), which
   * is most of the cost of a negative answer. For front ends that pass only
   * the errno on (FUSE). Default true.
   */
  errorStacks?: boolean;
}

/** statvfs(3) fields as `View.statfs` returns them (block counts in `frsize` units). */
export interface ViewStatfs {
  bsize: number;
  frsize: number;
  blocks: number;
  bfree: number;
  bavail: number;
  files: number;
  ffree: number;
  favail: number;
  fsid: number;
  flag: number;
  namemax: number;
}

/** Where a path leads: a core tree (with the path inside it) or a virtual control node. */
type Route =
  | { kind: "core"; core: FsCore; path: string; slot: number; readOnly: boolean }
  | { kind: "control"; node: "root" | "snapshots" };

interface SnapTree {
  layer: number;
  slot: number;
  core: FsCore;
}

/** A view-level open file: which core owns it and the core's descriptor, or a virtual directory. */
type OpenFile = { core: FsCore; fd: number; slot: number; seqEnd?: number; pending?: number } | { virtual: "root" | "snapshots" };

let nextViewFd = 1;

/**
 * One served namespace: the main tree plus `/.agentfs/`. Not thread-safe;
 * a front end calls it from one thread (the Node event loop).
 */
export class View {
  readonly store: Store;
  /** The tree served at "/". */
  readonly main: FsCore;
  /** True when every change fails with EROFS (snapshot target or `readOnly`). */
  readonly readOnly: boolean;
  private readonly opts: ViewOptions;
  private readonly snaps = new Map<string, SnapTree>();
  private nextSlot = SLOT_FIRST_SNAPSHOT;
  private readonly files = new Map<number, OpenFile>();
  private readonly started = BigInt(Date.now()) * 1_000_000n;
  private readonly pathMax: number;

  private constructor(store: Store, opts: ViewOptions) {
    this.store = store;
    this.opts = opts;
    const target = opts.target ?? { branch: store.currentBranch() };
    this.pathMax = opts.pathMax ?? Infinity;
    this.main = new FsCore(store, target, { umask: opts.umask ?? 0, cred: opts.cred, pathMax: this.pathMax, errorStacks: opts.errorStacks });
    this.readOnly = this.main.readOnly || !!opts.readOnly;
  }

  /** Opens a view of `target` in `store`. Errors: ENOENT when the branch or snapshot does not exist. */
  static open(store: Store, opts: ViewOptions = {}): View {
    return new View(store, opts);
  }

  /** The target served at "/". */
  get target(): Target {
    return this.main.target;
  }

  // ------------------------------------------------------------ routing

  /**
   * Resolves `path` to the tree that owns it. Checks the 4096-byte path and
   * 255-byte name limits on the full path. Errors: ENAMETOOLONG, EINVAL,
   * ENOENT (an unknown control entry or snapshot).
   */
  private route(path: string, syscall: string, creating = false): Route {
    let parts: string[];
    try {
      parts = parsePath(path, this.pathMax).parts;
    } catch (e) {
      throw toFsError(e, syscall, path);
    }
    if (parts[0] !== CONTROL_DIR) return { kind: "core", core: this.main, path, slot: SLOT_MAIN, readOnly: this.readOnly };
    if (parts.length === 1) return { kind: "control", node: "root" };
    // A new name directly inside a control directory: the control tree is read-only.
    if (parts[1] !== "snapshots") throw new FsError(creating && parts.length === 2 ? "EROFS" : "ENOENT", syscall, path);
    if (parts.length === 2) return { kind: "control", node: "snapshots" };
    if (creating && parts.length === 3 && !this.snapshotNames().includes(parts[2]!)) throw new FsError("EROFS", syscall, path);
    const t = this.snapTree(parts[2]!, syscall, path);
    return { kind: "core", core: t.core, path: "/" + parts.slice(3).join("/"), slot: t.slot, readOnly: true };
  }

  /** The FsCore of snapshot `name`, opened on first use and re-opened if the name now names another layer. */
  private snapTree(name: string, syscall: string, path: string): SnapTree {
    this.store.sync();
    let layer: number;
    try {
      layer = this.store.snapshotLayer(name);
    } catch (e) {
      const old = this.snaps.get(name);
      if (old && old.core.openFds().length === 0) this.snaps.delete(name);
      throw new FsError("ENOENT", syscall, path);
    }
    const have = this.snaps.get(name);
    if (have && have.layer === layer) return have;
    const t: SnapTree = { layer, slot: this.nextSlot++, core: new FsCore(this.store, { snapshot: name }, { umask: 0, cred: this.opts.cred, pathMax: this.pathMax }) };
    this.snaps.set(name, t);
    return t;
  }

  /** Snapshot names as `/.agentfs/snapshots/` lists them (sorted), read fresh from the store. */
  snapshotNames(): string[] {
    this.store.sync();
    return this.store.listSnapshots().map((s) => s.name).sort();
  }

  private coreRoute(path: string, syscall: string, write: boolean, creating = false): Extract<Route, { kind: "core" }> {
    const r = this.route(path, syscall, creating);
    if (r.kind === "control") throw new FsError(write ? "EROFS" : "EISDIR", syscall, path);
    if (write && r.readOnly) throw new FsError("EROFS", syscall, path);
    return r;
  }

  /**
   * The core route of a call that makes a new node at `path` (mkdir, mknod).
   * Errors: EEXIST (the control tree, or the control directory's own name in
   * the main tree), EROFS (a read-only tree).
   */
  private newNodeRoute(path: string, syscall: string): Extract<Route, { kind: "core" }> {
    const r = this.route(path, syscall, true);
    if (r.kind === "control") throw new FsError("EEXIST", syscall, path);
    if (r.readOnly) throw new FsError("EROFS", syscall, path);
    if (r.slot === SLOT_MAIN && isControlName(r.path)) throw new FsError("EEXIST", syscall, path);
    return r;
  }

  /** Runs a core call, turning stray StoreErrors into FsErrors. */
  private call<T>(syscall: string, path: string | undefined, fn: () => T): T {
    try {
      return fn();
    } catch (e) {
      throw toFsError(e, syscall, path);
    }
  }

  private controlStat(node: "root" | "snapshots"): InodeStat {
    let mtime = this.started;
    if (node === "snapshots") {
      this.store.sync();
      for (const s of this.store.listSnapshots()) if (s.created > mtime) mtime = s.created;
    }
    const nlink = node === "root" ? 3 : 2 + this.snapshotNames().length;
    return {
      dev: this.main.dev, ino: encodeIno(SLOT_CONTROL, node === "root" ? 1 : 2), mode: S_IFDIR | 0o555, nlink,
      uid: 0, gid: 0, rdev: 0, size: 0, blksize: 4096, blocks: 0,
      atimeNs: mtime, mtimeNs: mtime, ctimeNs: mtime, birthtimeNs: this.started,
    };
  }

  /** `st` (a fresh object from a tree's FsCore) with its view inode number and device, changed in place: no copy, and a lazily counted st_blocks stays lazy. */
  private withSlot(st: InodeStat, slot: number): InodeStat {
    st.ino = encodeIno(slot, st.ino);
    st.dev = this.main.dev;
    return st;
  }

  // ------------------------------------------------------------ metadata

  /** As stat(2) (`follow`) or lstat(2) (default: lstat, as FUSE getattr). `ino` is a view inode number. Errors: ENOENT, ENOTDIR, ELOOP, EACCES, ENAMETOOLONG. */
  stat(path: string, follow = false): InodeStat {
    const r = this.route(path, follow ? "stat" : "lstat");
    if (r.kind === "control") return this.controlStat(r.node);
    return this.withSlot(this.call("stat", path, () => r.core.stat(r.path, follow)), r.slot);
  }

  /**
   * The entry `name` of the directory whose view inode number is `dir`, as
   * fstatat(dirfd, name, AT_SYMLINK_NOFOLLOW) (`FsCore.statAt`): found from
   * the directory itself, not by walking a path. Returns undefined where
   * `stat(path)` must be used instead: the control tree (`/.agentfs` in the
   * root included), snapshot trees, and an overlay's lower directories.
   * Errors: ENOENT, ENOTDIR, ENAMETOOLONG, EINVAL.
   */
  statAt(dir: number, name: string): InodeStat | undefined {
    if (!this.byInode(dir, [name])) return undefined;
    return this.withSlot(this.call("lstat", name, () => this.main.statAt(dir, name)), SLOT_MAIN);
  }

  /**
   * Whether entries `names` of the directory with view inode number `dir`
   * can be found from the directory itself (the main tree's `FsCore.*At`).
   * Only directories of the main tree with an inode number below 2^32
   * (slot 0) can: an overlay's lower (host) directories have numbers from
   * 2^48 (core LOWER_INO_BASE), which this encoding cannot tell from
   * snapshot slots, snapshot trees are found by path, and `/.agentfs` in the
   * root is the control tree. Those take `stat(path)`.
   */
  private byInode(dir: number, names: readonly string[]): boolean {
    return dir < SLOT_BASE && !(dir === ROOT_CORE_INO && names.includes(CONTROL_DIR));
  }

  /**
   * As `statAt`, with null instead of ENOENT when the entry is missing
   * (`FsCore.lookupAt`); undefined where `statAt` is. Errors: as `statAt`.
   */
  lookupAt(dir: number, name: string): InodeStat | null | undefined {
    if (!this.byInode(dir, [name])) return undefined;
    const st = this.call("lstat", name, () => this.main.lookupAt(dir, name));
    return st && this.withSlot(st, SLOT_MAIN);
  }

  /**
   * As fstat(2) by view inode number, for inodes of the main tree below
   * 2^32 (`FsCore.statInode`: linked, or open after unlink); undefined for
   * the others (control tree, snapshot trees, an overlay's lower inodes),
   * which are found by path. Errors: ENOENT.
   */
  statInode(ino: number): InodeStat | undefined {
    if (ino >= SLOT_BASE) return undefined;
    return this.withSlot(this.call("fstat", undefined, () => this.main.statInode(ino)), SLOT_MAIN);
  }

  /**
   * `statAt` for many names of directory `dir` at once (`FsCore.statManyAt`):
   * entry i is the stat of `names[i]` or null when it is missing; undefined
   * (look each up by path instead) where `statAt` would be. Errors: ENOENT,
   * ENOTDIR.
   */
  statManyAt(dir: number, names: readonly string[]): (InodeStat | null)[] | undefined {
    if (!this.byInode(dir, names)) return undefined;
    return this.call("lstat", undefined, () => this.main.statManyAt(dir, names)).map((st) => (st ? this.withSlot(st, SLOT_MAIN) : null));
  }

  /**
   * The view inode numbers entries `names` of directory `dir` lead to, null
   * for a missing one (`FsCore.inosAt`: one read, no stats built); undefined
   * where `statAt` would be. Errors: ENOENT, ENOTDIR.
   */
  inosAt(dir: number, names: readonly string[]): (number | null)[] | undefined {
    if (!this.byInode(dir, names)) return undefined;
    return this.call("lookup", undefined, () => this.main.inosAt(dir, names)).map((ino) => (ino === null ? null : encodeIno(SLOT_MAIN, ino)));
  }

  /** As fstat(2) on a view descriptor. Errors: EBADF. */
  fstat(fd: number): InodeStat {
    const f = this.file(fd, "fstat");
    if ("virtual" in f) return this.controlStat(f.virtual);
    return this.withSlot(this.call("fstat", undefined, () => f.core.fstat(f.fd)), f.slot);
  }

  /**
   * As readdir(3) without "." and "..": entries sorted by name, `ino` as
   * view inode numbers. The root lists `.agentfs` too (shadowing a real entry
   * of that name). Errors: ENOENT, ENOTDIR, EACCES.
   */
  readdir(path: string): DirEntry[] {
    const r = this.route(path, "scandir");
    if (r.kind === "control") {
      if (r.node === "root") return [{ name: "snapshots", ino: encodeIno(SLOT_CONTROL, 2), type: S_IFDIR }];
      return this.snapshotNames().map((name) => {
        let slot: number;
        try {
          slot = this.snapTree(name, "scandir", path).slot;
        } catch {
          slot = SLOT_CONTROL;
        }
        return { name, ino: encodeIno(slot, 1), type: S_IFDIR };
      });
    }
    const list = this.call("scandir", path, () => r.core.readdir(r.path)).map((e) => ({ ...e, ino: encodeIno(r.slot, e.ino) }));
    if (r.slot === SLOT_MAIN && isRoot(r.path)) {
      const i = list.findIndex((e) => e.name === CONTROL_DIR);
      const ctl = { name: CONTROL_DIR, ino: encodeIno(SLOT_CONTROL, 1), type: S_IFDIR };
      if (i >= 0) list[i] = ctl;
      else {
        list.push(ctl);
        list.sort((a, b) => (a.name < b.name ? -1 : a.name > b.name ? 1 : 0));
      }
    }
    return list;
  }

  /** As access(2); `mode` is F_OK or R_OK|W_OK|X_OK. Errors: ENOENT, EACCES, EROFS (W_OK on a read-only tree). */
  access(path: string, mode = 0): void {
    const r = this.route(path, "access");
    if (r.kind === "control") {
      if (mode & C.W_OK) throw new FsError("EROFS", "access", path);
      return;
    }
    if (mode & C.W_OK && r.readOnly) throw new FsError("EROFS", "access", path);
    this.call("access", path, () => r.core.access(r.path, mode));
  }

  /** As readlink(2). Errors: EINVAL (not a symlink), ENOENT. */
  readlink(path: string): string {
    const r = this.route(path, "readlink");
    if (r.kind === "control") throw new FsError("EINVAL", "readlink", path);
    return this.call("readlink", path, () => r.core.readlink(r.path));
  }

  /**
   * As statvfs(3) for the whole view: the capacity of the filesystem the
   * store lives on (`Store.capacity`: the host filesystem of a disk store,
   * memory for a RAM store), NAME_MAX 255, ST_RDONLY (1) in `flag` when
   * read-only. Errors: EACCES, ENOENT, EIO (statfs(2) of the store's
   * directory failed).
   */
  statfs(): ViewStatfs {
    const c = this.call("statfs", undefined, () => this.store.capacity());
    return {
      bsize: c.bsize, frsize: c.bsize, blocks: c.blocks, bfree: c.bfree, bavail: c.bavail,
      files: c.files, ffree: c.ffree, favail: c.ffree, fsid: this.main.dev, flag: this.readOnly ? 1 : 0, namemax: 255,
    };
  }

  // ------------------------------------------------------------ namespace changes

  /** As mkdir(2). Errors: EEXIST, ENOENT, ENOTDIR, EROFS, ENAMETOOLONG. */
  mkdir(path: string, mode = 0o777): void {
    const r = this.newNodeRoute(path, "mkdir");
    this.call("mkdir", path, () => r.core.mkdir(r.path, mode));
  }

  /** As rmdir(2). Errors: ENOENT, ENOTDIR, ENOTEMPTY, EROFS (control tree or read-only tree). */
  rmdir(path: string): void {
    const r = this.coreRoute(path, "rmdir", true);
    this.call("rmdir", path, () => r.core.rmdir(r.path));
  }

  /** As unlink(2). Descriptors open on the file stay readable (core keeps the orphan). Errors: ENOENT, EISDIR, EROFS. */
  unlink(path: string): void {
    const r = this.coreRoute(path, "unlink", true);
    this.call("unlink", path, () => r.core.unlink(r.path));
  }

  /** As rename(2) within one tree. Errors: EXDEV (across trees), EROFS, ENOENT, EEXIST, ENOTEMPTY, EISDIR, ENOTDIR, EINVAL. */
  rename(from: string, to: string): void {
    const a = this.coreRoute(from, "rename", true);
    const b = this.coreRoute(to, "rename", true, true);
    if (a.core !== b.core) throw new FsError("EXDEV", "rename", from, to);
    if (isControlName(b.path) && b.slot === SLOT_MAIN) throw new FsError("EROFS", "rename", from, to);
    this.call("rename", from, () => a.core.rename(a.path, b.path));
  }

  /** As renameat2(2) with RENAME_EXCHANGE within one tree (`FsCore.exchange`). Errors: EXDEV, EROFS, ENOENT, EINVAL, ENOTDIR, EACCES, EPERM. */
  exchange(a: string, b: string): void {
    const x = this.coreRoute(a, "rename", true);
    const y = this.coreRoute(b, "rename", true);
    if (x.core !== y.core) throw new FsError("EXDEV", "rename", a, b);
    this.call("rename", a, () => x.core.exchange(x.path, y.path));
  }

  /** As link(2) within one tree. Errors: EXDEV, EROFS, EEXIST, ENOENT, EPERM (directory). */
  link(existing: string, path: string): void {
    const a = this.coreRoute(existing, "link", true);
    const b = this.coreRoute(path, "link", true, true);
    if (a.core !== b.core) throw new FsError("EXDEV", "link", existing, path);
    this.call("link", existing, () => a.core.link(a.path, b.path));
  }

  /**
   * As linkat(2) with AT_EMPTY_PATH: a new name `path` for the file open as
   * view descriptor `fd`, also the first name of an O_TMPFILE file
   * (`FsCore.flink`; `commit` false leaves its bytes to the next commit).
   * Errors: EBADF, EXDEV (another tree), EROFS, EEXIST, ENOENT (unlinked
   * while open, or O_TMPFILE with O_EXCL), EPERM (a directory), EMLINK,
   * EACCES.
   */
  flink(fd: number, path: string, commit = true): void {
    const f = this.coreFile(fd, "link");
    const b = this.coreRoute(path, "link", true, true);
    if (f.core !== b.core) throw new FsError("EXDEV", "link", undefined, path);
    this.call("link", path, () => f.core.flink(f.fd, b.path, commit));
  }

  /** As symlink(2): creates `path` pointing at `target` (stored verbatim). Errors: EEXIST, ENOENT, EROFS, ENAMETOOLONG. */
  symlink(target: string, path: string): void {
    const r = this.route(path, "symlink", true);
    if (r.kind === "control") throw new FsError("EEXIST", "symlink", path);
    if (r.readOnly) throw new FsError("EROFS", "symlink", path);
    this.call("symlink", path, () => r.core.symlink(target, r.path));
  }

  /**
   * As mknod(2): a FIFO, socket or device node (or an empty regular file) at
   * `path`; see `FsCore.mknod`. Errors: EEXIST, EPERM, EINVAL, ENOENT,
   * ENOTDIR, EACCES, EROFS, ENAMETOOLONG.
   */
  mknod(path: string, mode: number, rdev = 0): void {
    const r = this.newNodeRoute(path, "mknod");
    this.call("mknod", path, () => r.core.mknod(r.path, mode, rdev));
  }

  /** As lchmod/chmod(2) (`follow`). Errors: ENOENT, EPERM, EROFS. */
  chmod(path: string, mode: number, follow = true): void {
    const r = this.coreRoute(path, "chmod", true);
    this.call("chmod", path, () => r.core.chmod(r.path, mode, follow));
  }

  /** As lchown/chown(2) (`follow`); -1 leaves an id unchanged. Errors: ENOENT, EPERM, EROFS. */
  chown(path: string, uid: number, gid: number, follow = true): void {
    const r = this.coreRoute(path, "chown", true);
    this.call("chown", path, () => r.core.chown(r.path, uid, gid, follow));
  }

  /** As utimensat(2): times in ns since the epoch, "now" or "omit". Errors: ENOENT, EPERM, EROFS. */
  utimes(path: string, atime: TimeSpec, mtime: TimeSpec, follow = true): void {
    const r = this.coreRoute(path, "utimes", true);
    this.call("utimes", path, () => r.core.utimes(r.path, atime, mtime, follow));
  }

  /** As truncate(2); `len` in bytes. Errors: ENOENT, EISDIR, EROFS, EINVAL, EFBIG. */
  truncate(path: string, len: number): void {
    const r = this.coreRoute(path, "truncate", true);
    this.call("truncate", path, () => r.core.truncate(r.path, len));
  }

  /**
   * `truncate` whose commit does not hold the event loop
   * (`FsCore.truncateAsync`): the size changes at once; resolves when
   * committed. Rejects with FsError: ENOENT, EISDIR, EROFS, EINVAL, EFBIG, EIO.
   */
  truncateAsync(path: string, len: number): Promise<void> {
    let r;
    try {
      r = this.coreRoute(path, "truncate", true);
    } catch (e) {
      return Promise.reject(e);
    }
    const c = r.core;
    return c.truncateAsync(r.path, len).catch((e) => {
      throw toFsError(e, "truncate", path);
    });
  }

  // ------------------------------------------------------------ xattrs

  /**
   * As fgetxattr(2) by view inode number, for inodes of the main tree below
   * 2^32 (`FsCore.getxattrOf`: linked, or open after unlink); undefined for
   * the others, which are found by path. Errors: ENODATA, ENOENT, ENOTSUP.
   */
  getxattrOf(ino: number, name: string): Buffer | undefined {
    if (ino >= SLOT_BASE) return undefined;
    return this.call("getxattr", undefined, () => this.main.getxattrOf(ino, name));
  }

  /** As flistxattr(2) by view inode number (see `getxattrOf`); undefined where a path is needed. Errors: ENOENT. */
  listxattrOf(ino: number): string[] | undefined {
    if (ino >= SLOT_BASE) return undefined;
    return this.call("listxattr", undefined, () => this.main.listxattrOf(ino));
  }

  /** As lgetxattr(2) (no follow, as FUSE). Errors: ENODATA, ENOENT, ENOTSUP. */
  getxattr(path: string, name: string): Buffer {
    const r = this.route(path, "getxattr");
    if (r.kind === "control") throw new FsError("ENODATA", "getxattr", path);
    return this.call("getxattr", path, () => r.core.getxattr(r.path, name, false));
  }

  /** As llistxattr(2): attribute names. Errors: ENOENT. */
  listxattr(path: string): string[] {
    const r = this.route(path, "listxattr");
    if (r.kind === "control") return [];
    return this.call("listxattr", path, () => r.core.listxattr(r.path, false));
  }

  /**
   * As fchmod(2) by view inode number (see `getxattrOf`): no path walk;
   * false where a path is needed (nothing done). Errors: as `chmod`, ENOENT.
   */
  chmodOf(ino: number, mode: number): boolean {
    return this.changeByInode(ino, "chmod", () => this.main.chmodOf(ino, mode));
  }

  /** As fchown(2) by view inode number (see `chmodOf`); false where a path is needed. Errors: as `chown`, ENOENT. */
  chownOf(ino: number, uid: number, gid: number): boolean {
    return this.changeByInode(ino, "chown", () => this.main.chownOf(ino, uid, gid));
  }

  /** As futimens(3) by view inode number (see `chmodOf`); false where a path is needed. Errors: as `utimes`, ENOENT. */
  utimesOf(ino: number, atime: TimeSpec, mtime: TimeSpec): boolean {
    return this.changeByInode(ino, "utime", () => this.main.utimesOf(ino, atime, mtime));
  }

  /**
   * As fsetxattr(2) by view inode number (see `getxattrOf`); false where a
   * path is needed (nothing done). Errors: as `setxattr`, ENOENT.
   */
  setxattrOf(ino: number, name: string, value: Uint8Array, flags = 0): boolean {
    return this.changeByInode(ino, "setxattr", () => this.main.setxattrOf(ino, name, value, flags));
  }

  /** As fremovexattr(2) by view inode number (see `getxattrOf`); false where a path is needed (nothing done). Errors: ENODATA, ENOENT, EPERM, EROFS. */
  removexattrOf(ino: number, name: string): boolean {
    return this.changeByInode(ino, "removexattr", () => this.main.removexattrOf(ino, name));
  }

  /** Runs `change` (a by-inode change of the main tree, as `syscall`) when view inode `ino` is the main tree's; false (nothing done) where a path is needed. */
  private changeByInode(ino: number, syscall: string, change: () => void): boolean {
    if (ino >= SLOT_BASE) return false;
    this.call(syscall, undefined, change);
    return true;
  }

  /** As lsetxattr(2); `flags` XATTR_CREATE (1) / XATTR_REPLACE (2). Errors: EEXIST, ENODATA, ENOTSUP, E2BIG, ERANGE, EROFS. */
  setxattr(path: string, name: string, value: Uint8Array, flags = 0): void {
    const r = this.coreRoute(path, "setxattr", true);
    this.call("setxattr", path, () => r.core.setxattr(r.path, name, value, flags, false));
  }

  /** As lremovexattr(2). Errors: ENODATA, ENOENT, EROFS. */
  removexattr(path: string, name: string): void {
    const r = this.coreRoute(path, "removexattr", true);
    this.call("removexattr", path, () => r.core.removexattr(r.path, name, false));
  }

  // ------------------------------------------------------------ file descriptors

  private file(fd: number, syscall: string): OpenFile {
    const f = this.files.get(fd);
    if (!f) throw new FsError("EBADF", syscall);
    return f;
  }

  private coreFile(fd: number, syscall: string): { core: FsCore; fd: number; slot: number; seqEnd?: number; pending?: number } {
    const f = this.file(fd, syscall);
    if ("virtual" in f) throw new FsError("EISDIR", syscall);
    return f;
  }

  /** Registers open file `f` under a new view descriptor (a small positive integer), which it returns. */
  private addFile(f: OpenFile): number {
    const vfd = nextViewFd++;
    this.files.set(vfd, f);
    return vfd;
  }

  /**
   * As open(2) with fs.constants flags; returns a view descriptor (a small
   * positive integer private to this view). Control directories open
   * read-only. Errors: ENOENT, EEXIST, EISDIR, ENOTDIR, ELOOP, EACCES,
   * ENAMETOOLONG, EROFS.
   */
  open(path: string, flags: number, mode = 0o666): number {
    const writes = (flags & 3) !== C.O_RDONLY || (flags & (C.O_CREAT | C.O_TRUNC)) !== 0;
    const r = this.route(path, "open", (flags & C.O_CREAT) !== 0);
    if (r.kind === "control") {
      if (flags & C.O_CREAT && flags & C.O_EXCL) throw new FsError("EEXIST", "open", path);
      if (writes) throw new FsError("EISDIR", "open", path);
      return this.addFile({ virtual: r.node });
    }
    if (writes && r.readOnly) {
      // A missing file under O_CREAT on a read-only tree: EROFS; an existing one opened for writing: EROFS too.
      throw new FsError("EROFS", "open", path);
    }
    if (r.slot === SLOT_MAIN && isControlName(r.path)) throw new FsError("EISDIR", "open", path);
    const fd = this.call("open", path, () => r.core.openFile(r.path, flags, mode));
    return this.addFile({ core: r.core, fd, slot: r.slot });
  }

  /**
   * As open(2) with O_TMPFILE: a new file with no name in directory `dir`
   * (`FsCore.openTmpfile`; `flink` names it); returns a view descriptor.
   * Errors: EINVAL (read-only access mode), ENOENT, ENOTDIR, EACCES, EROFS
   * (also in the control tree).
   */
  openTmpfile(dir: string, flags: number, mode = 0o600): number {
    const r = this.route(dir, "open", false);
    if (r.kind === "control" || r.readOnly) throw new FsError("EROFS", "open", dir);
    const fd = this.call("open", dir, () => r.core.openTmpfile(r.path, flags, mode));
    return this.addFile({ core: r.core, fd, slot: r.slot });
  }

  /**
   * A new view descriptor on the file `fd` is open on (as open(2) of
   * /proc/self/fd/N; `FsCore.reopenFile`): access mode and O_APPEND from
   * `flags`; works after the file was unlinked or renamed over. No
   * permission check. Errors: EBADF, EISDIR, EROFS.
   */
  reopen(fd: number, flags: number): number {
    const f = this.file(fd, "open");
    if ("virtual" in f) {
      if ((flags & 3) !== C.O_RDONLY) throw new FsError("EISDIR", "open");
      return this.addFile({ virtual: f.virtual });
    }
    if ((flags & 3) !== C.O_RDONLY && (this.readOnly || f.slot !== SLOT_MAIN)) throw new FsError("EROFS", "open");
    const nfd = this.call("open", undefined, () => f.core.reopenFile(f.fd, flags));
    return this.addFile({ core: f.core, fd: nfd, slot: f.slot });
  }

  /** As pread(2) (`position` in bytes) into `buf[offset..offset+length)`; returns bytes read (0 at EOF). Errors: EBADF, EISDIR, EIO. */
  read(fd: number, buf: Uint8Array, offset: number, length: number, position: number | null): number {
    const f = this.coreFile(fd, "read");
    return this.call("read", undefined, () => f.core.read(f.fd, buf, offset, length, position));
  }

  /**
   * As pread(2) on any descriptor of a regular file, open for reading or
   * not (`FsCore.readForCache`): for a front end that fills a cache of its
   * own with what a file holds. Errors: EBADF, EISDIR, EIO.
   */
  readForCache(fd: number, buf: Uint8Array, offset: number, length: number, position: number): number {
    const f = this.coreFile(fd, "read");
    return this.call("read", undefined, () => f.core.readForCache(f.fd, buf, offset, length, position));
  }

  /** As pwrite(2) (appends when opened O_APPEND); returns bytes written. Errors: EBADF, EFBIG, EIO. */
  write(fd: number, buf: Uint8Array, offset: number, length: number, position: number | null): number {
    const f = this.coreFile(fd, "write");
    const n = this.call("write", undefined, () => f.core.write(f.fd, buf, offset, length, position));
    const every = this.opts.autoCommitBytes ?? 0;
    if (every > 0 && f.pending !== -1) {
      if (position !== null && f.seqEnd !== undefined && position !== f.seqEnd) f.pending = -1; // not sequential: stop
      else {
        f.seqEnd = (position ?? 0) + n;
        f.pending = (f.pending ?? 0) + n;
        // Off the loop: the commit runs in workers and short transactions. While one is in flight the
        // count keeps growing, so the next commit takes the whole backlog (and is split across workers).
        if (f.pending >= every && f.core.commitBehind(f.fd)) f.pending = 0;
      }
    }
    return n;
  }

  /** `FsCore.writeThrottle` for view descriptor `fd`: a promise to hold a writer's answer on, or null. Errors: EBADF. */
  writeThrottle(fd: number): Promise<void> | null {
    const f = this.coreFile(fd, "write");
    return this.call("write", undefined, () => f.core.writeThrottle(f.fd));
  }

  /** As fchmod(2) on a view descriptor (works after the file was unlinked). Errors: EBADF, EPERM, EROFS. */
  fchmod(fd: number, mode: number): void {
    const f = this.coreFile(fd, "fchmod");
    this.call("fchmod", undefined, () => f.core.fchmod(f.fd, mode));
  }

  /** As fchown(2) on a view descriptor; -1 leaves an id unchanged. Errors: EBADF, EPERM, EROFS. */
  fchown(fd: number, uid: number, gid: number): void {
    const f = this.coreFile(fd, "fchown");
    this.call("fchown", undefined, () => f.core.fchown(f.fd, uid, gid));
  }

  /** As futimens(3) on a view descriptor: times in ns since the epoch, "now" or "omit". Errors: EBADF, EPERM, EROFS. */
  futimes(fd: number, atime: TimeSpec, mtime: TimeSpec): void {
    const f = this.coreFile(fd, "futimes");
    this.call("futimes", undefined, () => f.core.futimes(f.fd, atime, mtime));
  }

  /** As ftruncate(2). Errors: EBADF, EINVAL, EFBIG. */
  ftruncate(fd: number, len: number): void {
    const f = this.coreFile(fd, "ftruncate");
    this.call("ftruncate", undefined, () => f.core.ftruncate(f.fd, len));
  }

  /** As fallocate(2) on a view descriptor (see `FsCore.fallocate`: modes 0, KEEP_SIZE and PUNCH_HOLE|KEEP_SIZE). Errors: EBADF, EINVAL, ENOTSUP, EISDIR, EFBIG, EROFS. */
  fallocate(fd: number, mode: number, off: number, len: number): void {
    const f = this.coreFile(fd, "fallocate");
    this.call("fallocate", undefined, () => f.core.fallocate(f.fd, mode, off, len));
  }

  /** As lseek(2) with SEEK_DATA (`data` true) or SEEK_HOLE on a view descriptor (see `FsCore.seekData`). Errors: EBADF, EINVAL, ENXIO. */
  seekData(fd: number, pos: number, data: boolean): number {
    const f = this.coreFile(fd, "lseek");
    return this.call("lseek", undefined, () => f.core.seekData(f.fd, pos, data));
  }

  /** Commits pending writes of `fd` (what close makes visible) without releasing it; FUSE `flush`. Errors: EBADF, EIO. */
  flush(fd: number): void {
    const f = this.file(fd, "flush");
    if ("virtual" in f) return;
    this.call("flush", undefined, () => f.core.flush(f.fd));
  }

  /** As fsync(2): commits durably. Errors: EBADF, EIO. */
  fsync(fd: number): void {
    const f = this.file(fd, "fsync");
    if ("virtual" in f) return;
    this.call("fsync", undefined, () => f.core.fsync(f.fd));
  }

  /**
   * `flush` without holding the event loop: a large commit's chunking,
   * hashing and compression run in a worker (`FsCore.flushAsync`).
   * Resolves when the writes made before the call are committed. Rejects
   * with FsError: EBADF, EIO.
   */
  async flushAsync(fd: number): Promise<void> {
    const f = this.file(fd, "flush");
    if ("virtual" in f) return;
    await f.core.flushAsync(f.fd);
  }

  /** `fsync` without holding the event loop (`FsCore.fsyncAsync`): resolves when the data is durable. Rejects with FsError: EBADF, EIO. */
  async fsyncAsync(fd: number): Promise<void> {
    const f = this.file(fd, "fsync");
    if ("virtual" in f) return;
    await f.core.fsyncAsync(f.fd);
  }

  /**
   * A count that grows whenever what a client may have cached of this
   * view can be wrong: another connection (an SDK or CLI process opening
   * the store directly) committed, or a held transaction was rolled back
   * after its operations were answered (`FsCore.cacheEpoch`, which looks
   * for other connections' commits first). A front end that lets the
   * kernel cache names and attributes compares it with the last value it
   * saw, and drops those caches when it grew. Errors: EIO.
   */
  cacheEpoch(): number {
    return this.main.cacheEpoch();
  }

  /** The host directory under the served overlay branch, or null (`FsCore.lowerRoot`). */
  get lowerRoot(): string | null {
    return this.main.lowerRoot;
  }

  /**
   * Lets consecutive operations of this view's store share one SQLite
   * transaction for up to `ms` ms (`Manifest.holdTransactions`; 0 turns it
   * off and commits what is held). For servers answering many small
   * requests (the FUSE daemon). Errors: as `Manifest.settle` when turning
   * it off.
   */
  holdTransactions(ms: number): void {
    this.main.store.manifest.holdTransactions(ms);
  }

  /**
   * Turns deferred compression of this view's store on or off
   * (`Store.deferCompression`): small files' chunks are stored raw at close
   * and compressed shortly after in a worker. For servers (the FUSE daemon).
   * Returns the counters so far (null when never on). Errors: EIO when
   * turning it off fails to write (those objects stay raw).
   */
  deferCompression(on: boolean): DeferredCompressionStats | null {
    return this.main.store.deferCompression(on);
  }

  /** As syncfs(2) or fsync(2) of a directory (`FsCore.syncAsync`): resolves when the store's committed state is durable. Rejects with FsError: EIO. */
  async syncAsync(): Promise<void> {
    await this.main.syncAsync();
  }

  /**
   * `close` without holding the event loop (`FsCore.closeAsync`): the view
   * descriptor is gone at once; resolves when the pending writes are
   * committed. Rejects with FsError: EBADF, EIO (released either way).
   */
  async closeAsync(fd: number): Promise<void> {
    const f = this.file(fd, "close");
    this.files.delete(fd);
    if ("virtual" in f) return;
    await f.core.closeAsync(f.fd);
  }

  /** As close(2): commits pending writes and releases the descriptor (released even on error). Errors: EBADF, EIO. */
  close(fd: number): void {
    const f = this.file(fd, "close");
    this.files.delete(fd);
    if ("virtual" in f) return;
    this.call("close", undefined, () => f.core.close(f.fd));
  }

  /**
   * Commits the pending writes of every open file of the main tree without
   * closing any descriptor (as a FUSE flush of each would), so that a
   * snapshot, diff or restore that runs next, in the same event-loop turn,
   * sees what programs have written so far. Every file is tried; the first
   * failure is thrown afterwards. Errors: EIO.
   */
  flushAll(): void {
    let first: unknown;
    for (const f of this.files.values()) {
      if ("virtual" in f || f.core !== this.main) continue;
      try {
        f.core.flush(f.fd);
      } catch (e) {
        first ??= e;
      }
    }
    if (first !== undefined) throw toFsError(first, "flush");
  }

  /**
   * Call after the served branch was moved underneath the view (restore to a
   * snapshot, overlay reset): open files drop their clean working buffers
   * (`FsCore.dropCleanBuffers`) and read the new state from then on; the
   * namespace itself is re-read on the next request anyway. Commit first
   * (`flushAll`) so that no dirty buffer survives to overwrite the new state.
   */
  reloadOpenFiles(): void {
    this.main.dropCleanBuffers();
  }

  /**
   * Unlinks every file (any non-directory) of the main tree whose name
   * starts with `prefix` and satisfies `match`, wherever it is in the tree;
   * returns how many were removed (`FsCore.removeNames`: one manifest query
   * by name prefix, no tree walk, no permission checks). For a front end
   * cleaning up its own leftover names before it serves the tree; snapshots
   * under `/.agentfs/` are never touched. Errors: EROFS on a read-only view.
   */
  removeNames(prefix: string, match: (name: string) => boolean): number {
    if (this.readOnly) throw new FsError("EROFS", "unlink");
    try {
      return this.main.removeNames(prefix, match);
    } catch (e) {
      throw toFsError(e, "unlink");
    }
  }

  /** Number of open view descriptors. */
  openCount(): number {
    return this.files.size;
  }

  /** Commits every open file and releases every descriptor (as process exit would); used before unmounting. */
  closeAll(): void {
    for (const fd of [...this.files.keys()]) {
      try {
        this.close(fd);
      } catch {
        /* best effort: the descriptor is released anyway */
      }
    }
    this.main.closeAll();
    for (const t of this.snaps.values()) t.core.closeAll();
  }
}

function isRoot(path: string): boolean {
  return parsePath(path, Infinity).parts.length === 0;
}

/** True when a main-tree path names `/.agentfs` itself (which the control tree shadows). */
function isControlName(path: string): boolean {
  const p = parsePath(path, Infinity).parts;
  return p.length === 1 && p[0] === CONTROL_DIR;
}

/** Any error as an FsError: FsErrors pass through, StoreErrors keep their code, anything else is EIO. */
export function toFsError(e: unknown, syscall: string, path?: string): FsError {
  if (e instanceof FsError) return e;
  if (e instanceof StoreError) return new FsError(e.code, syscall, path, undefined, e.message.replace(/^[A-Z0-9]+: /, ""));
  const code = (e as { code?: unknown })?.code;
  if (typeof code === "string" && /^E[A-Z0-9]+$/.test(code)) return new FsError(code as ErrnoName, syscall, path);
  return new FsError("EIO", syscall, path, undefined, e instanceof Error ? e.message : String(e));
}

/** Mode type bits helper for callers: true when `mode` is a directory. */
export function isDirMode(mode: number): boolean {
  return (mode & S_IFMT) === S_IFDIR;
}
