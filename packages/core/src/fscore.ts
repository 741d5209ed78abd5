/**
 * `FsCore`: POSIX file operations on one branch (read-write) or snapshot
 * (read-only) of a store. Synchronous: every call is one or a few SQLite
 * transactions. Paths are absolute within the tree ("/a/b"; relative paths
 * resolve from "/", and ".." at the root stays at the root). Errors are
 * `FsError`s whose `code` is the errno name and `syscall` the operation.
 *
 * The class is built in layers, one file each: fsbase.ts (state,
 * transactions, rows and entries, working buffers), fsmeta.ts (stat,
 * permissions, times, xattrs), fsnames.ts (the namespace), and this file
 * (open files: open, read, write, truncate, fallocate, flush, fsync, close,
 * their asynchronous forms, and what a front end needs around them).
 * Types and constants of the API are in fstypes.ts.
 */
import { constants as C } from "node:fs";
import { FsError, StoreError } from "./errors.js";
import { asFsError } from "./errwrap.js";
import { decodeExtents, readExtents, referencedChunks, seekExtents, type Extent } from "./content.js";
import type { InodeRow } from "./manifest.js";
import { LOWER_DATA } from "./overlay.js";
import type { OpenInode } from "./openfile.js";
import { S_IFDIR, S_IFLNK, S_IFMT, S_IFREG, isSpecial } from "./modes.js";
import { FALLOC_FL_KEEP_SIZE, FALLOC_FL_PUNCH_HOLE, MAX_FILE_SIZE, O_TMPFILE, WRITE_THROTTLE_BYTES, type InodeStat } from "./fstypes.js";
import { FsNames } from "./fsnames.js";

export * from "./fstypes.js";

/**
 * POSIX operations over one branch or snapshot of a `Store`. Each method
 * mirrors a system call and throws `FsError` with the errno name as `code`.
 * `new FsCore(store, target, opts?)`: errors ENOENT when the branch or
 * snapshot does not exist.
 */
export class FsCore extends FsNames {
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
   * Runs `fn` in one write transaction: the many small transactions of the
   * calls inside it become savepoints, so a bulk import commits once per
   * batch. An error rolls back the whole batch. Errors: EROFS on a snapshot.
   */
  batch<T>(fn: () => T): T {
    if (this.readOnly) return fn();
    return this.wrap("batch", undefined, () => this.store.manifest.write(fn));
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
