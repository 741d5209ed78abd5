/**
 * Namespace operations of `FsCore`: mkdir, rmdir, unlink, rename,
 * exchange, link, linkat of a descriptor, symlink, mknod, copy-on-write
 * copyFile and the bulk removal of names by prefix.
 */
import { StoreError } from "./errors.js";
import type { InodeRow } from "./manifest.js";
import { LOWER_DATA } from "./overlay.js";
import { S_IFBLK, S_IFCHR, S_IFDIR, S_IFLNK, S_IFMT, S_IFREG, isSpecial } from "./modes.js";
import { checkSticky } from "./access.js";
import { isWithin } from "./resolve.js";
import { FsMeta } from "./fsmeta.js";

/** Namespace operations over `FsMeta` (see the module comment). */
export abstract class FsNames extends FsMeta {
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

}
