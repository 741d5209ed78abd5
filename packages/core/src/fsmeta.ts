/**
 * Metadata operations of `FsCore`: stat, access, readdir, readlink,
 * realpath, chmod, chown, utimes and extended attributes, by path, by
 * descriptor and by inode number.
 */
import { StoreError } from "./errors.js";
import { ROOT_INO, type InodeRow } from "./manifest.js";
import { checkName, joinParts } from "./paths.js";
import { checkXattrName } from "./xattr.js";
import { checkXattrValue, xattrNames, xattrValue, xattrsWithRemoved, xattrsWithSet } from "./xattrops.js";
import { S_IFDIR, S_IFLNK, S_IFMT, S_IFREG, S_ISGID, S_ISUID } from "./modes.js";
import { checkChown, checkSetTimes, chmodBits } from "./access.js";
import type { DirEntry, InodeStat, TimeSpec } from "./fstypes.js";
import { FsBase } from "./fsbase.js";

/** Metadata operations over an `FsBase` (see the module comment). */
export abstract class FsMeta extends FsBase {
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

}
