/**
 * FUSE operation table over a `View`, in the callback shapes fuse-native
 * (libfuse 2.9 high-level API, path based) expects. Every handler is
 * synchronous work on the View followed by the callback; errors reach the
 * kernel as the negative errno of the `FsError` (`FsError.errno`), anything
 * else as EIO.
 */
import { FsError, type InodeStat } from "@agentfs/core";
import { decodeIno, toFsError, type View } from "@agentfs/view";
import { constants as C, readFileSync } from "node:fs";

/** Callback of a fuse-native operation: 0 or a negative errno, then the result. */
type Cb = (err: number, ...result: any[]) => void;

/** fuse-native stat object (times as Dates: fuse-native keeps milliseconds only). */
export interface FuseStat {
  mode: number;
  uid: number;
  gid: number;
  size: number;
  dev: number;
  nlink: number;
  ino: number;
  rdev: number;
  blksize: number;
  blocks: number;
  atime: Date;
  mtime: Date;
  ctime: Date;
}

/**
 * Folds a 53-bit view inode number (`slot * 2^32 + coreIno`) into the 32
 * bits fuse-native passes as st_ino: `(coreIno + slot * 2^24) mod 2^32`.
 * Within one tree (one slot) this is a bijection, so hard links and distinct
 * files stay distinct; across trees numbers differ unless core inode numbers
 * are 2^24 or more apart.
 */
export function foldIno(viewIno: number): number {
  const { slot, ino } = decodeIno(viewIno);
  return (ino + slot * 0x1000000) >>> 0;
}

const NS_PER_MS = 1_000_000n;

function toDate(ns: bigint): Date {
  return new Date(Number(ns / NS_PER_MS));
}

/** libfuse 2 passes UTIME_NOW and UTIME_OMIT as tv_sec 0 with a special tv_nsec; fuse-native turns both into this many ms. */
const UTIME_SPECIAL_MS = Math.floor(((1 << 30) - 1) / 1e6);

/**
 * The caller of the request being served and, during utimens, its raw
 * timespecs, as read from the agentfs patch of fuse-native
 * (patches/fuse-native@2.2.6.patch: `Fuse.agentfsContext()` returns
 * [uid, gid, pid, atime_sec, atime_nsec, mtime_sec, mtime_nsec]). Only valid
 * while a handler runs synchronously.
 */
export type ContextReader = () => number[];

const UTIME_NOW = (1 << 30) - 1;
const UTIME_OMIT = (1 << 30) - 2;

/** A utimens time from a raw timespec: "now" (UTIME_NOW), "omit" (UTIME_OMIT) or ns since the epoch. */
export function timespecToTime(sec: number, nsec: number): bigint | "now" | "omit" {
  if (nsec === UTIME_NOW) return "now";
  if (nsec === UTIME_OMIT) return "omit";
  return BigInt(sec) * 1_000_000_000n + BigInt(nsec);
}

/**
 * Supplementary group ids of process (or thread) `pid`, from the Groups:
 * line of /proc/<pid>/status; [] when it cannot be read (the process is gone).
 */
export function callerGroups(pid: number): number[] {
  try {
    const m = /^Groups:(.*)$/m.exec(readFileSync(`/proc/${pid}/status`, "utf8"));
    return m ? m[1]!.trim().split(/\s+/).filter(Boolean).map(Number) : [];
  } catch {
    return [];
  }
}

/** Counters a mount keeps for diagnostics and tests. */
export interface OpStats {
  /** Number of write calls served. */
  writes: number;
  /** Largest single write request seen, in bytes (4096 without big_writes). */
  maxWrite: number;
  /** Number of requests answered with an error that was not an FsError (reported as EIO). */
  internalErrors: number;
  /**
   * Per FUSE operation: requests served, and the longest and total time (ms)
   * the handler held the event loop. Every other request waits that long, so
   * `maxMs` is what the 10 ms rule of DESIGN.md is about.
   */
  ops: Record<string, { count: number; maxMs: number; totalMs: number }>;
}

/** Fresh, zeroed counters. */
export function newOpStats(): OpStats {
  return { writes: 0, maxWrite: 0, internalErrors: 0, ops: {} };
}

/** Options for `makeOps`. */
export interface OpsOptions {
  /**
   * Reads the current request's caller and raw times (the patched
   * fuse-native). Without it new files belong to the daemon's uid/gid and
   * utimens has millisecond precision with UTIME_NOW and UTIME_OMIT both
   * taken as "now".
   */
  context?: ContextReader;
  /**
   * Whether `security.capability` may be set (default true). The mount turns
   * it off when the addon answers getxattr of it itself
   * (`MountOptions.fileCapabilities`); setxattr of it is then ENOTSUP (EOPNOTSUPP).
   */
  fileCapabilities?: boolean;
  /** Called with any non-FsError exception (it is answered with EIO). Default: write to stderr. */
  onInternalError?: (op: string, e: unknown) => void;
  /**
   * Filled with the paths of files that libfuse has renamed to
   * `.fuse_hidden…` (a file unlinked while open, without hard_remove) and not
   * unlinked yet (it does so at release); kept up to date across renames of
   * their directories. `FuseMount.unmount` removes what is left, which
   * otherwise stays in the store for good.
   */
  hidden?: Set<string>;
}

/** Prefix of the names libfuse 2 gives files unlinked while open (`FUSE_HIDDEN_NAME`). */
export const FUSE_HIDDEN_PREFIX = ".fuse_hidden";

/**
 * A name libfuse 2 gives a file unlinked while open, exactly: libfuse 2.9
 * `hidden_name()` formats `".fuse_hidden%08x%08x"` (node id and a counter,
 * both unsigned int, so 8 lowercase hex digits each: 16 in all).
 */
export const FUSE_HIDDEN_NAME = /^\.fuse_hidden[0-9a-f]{16}$/;

/** Paths whose last component is a libfuse hidden name (`FUSE_HIDDEN_NAME`). */
const FUSE_HIDDEN = /\/\.fuse_hidden[0-9a-f]{16}$/;

/**
 * Unlinks every `.fuse_hidden…` file (exactly `FUSE_HIDDEN_NAME`) anywhere
 * in the view's main tree; returns how many. Only safe while no mount
 * serves the tree: each is a file that a FUSE client had open when it was
 * unlinked, and a daemon that died before the last release (SIGKILL) left
 * it behind for good; once no daemon serves the tree, nobody can hold it
 * open. Returns 0 on a read-only view. Errors: `View.removeNames`'s.
 */
export function removeFuseHiddenNames(view: View): number {
  if (view.readOnly) return 0;
  return view.removeNames(FUSE_HIDDEN_PREFIX, (name) => FUSE_HIDDEN_NAME.test(name));
}

/** Keeps `hidden` right after a successful rename of `from` to `to`. */
function trackHidden(hidden: Set<string> | undefined, from: string, to: string): void {
  if (!hidden) return;
  for (const h of [...hidden]) {
    if (h === from) hidden.delete(h);
    else if (h.startsWith(from + "/")) {
      hidden.delete(h);
      hidden.add(to + h.slice(from.length));
    }
  }
  if (FUSE_HIDDEN.test(to)) hidden.add(to);
}

/**
 * Builds the fuse-native operations object for `view`: getattr, readdir,
 * access, statfs, open, create, read, write, flush, fsync, release,
 * truncate, ftruncate, mkdir, rmdir, unlink, rename, link, symlink,
 * readlink, chmod, chown, utimens, setxattr, getxattr, listxattr,
 * removexattr, mknod (regular files only; others EPERM). `stats` is filled
 * as requests are served.
 */
export function makeOps(view: View, stats: OpStats, opts: OpsOptions = {}): Record<string, (...args: any[]) => void> {
  const report = opts.onInternalError ?? ((op, e) => process.stderr.write(`agentfs fuse: ${op}: ${e instanceof Error ? e.stack : String(e)}\n`));

  /** Runs `fn` and answers `cb`: the value `fn` returns as the result, or the error's negative errno. */
  function run(op: string, cb: Cb, fn: () => unknown, resultIsCode = false): void {
    let v: unknown;
    const t0 = performance.now();
    try {
      v = fn();
    } catch (e) {
      time(op, t0);
      const fe = e instanceof FsError ? e : toFsError(e, op);
      if (!(e instanceof FsError) && fe.code === "EIO") {
        stats.internalErrors++;
        report(op, e);
      }
      return cb(fe.errno);
    }
    time(op, t0);
    if (resultIsCode) return cb(v as number);
    if (v === undefined) return cb(0);
    return cb(0, v);
  }

  /**
   * As `run` for a handler that returns a promise: times only the part that
   * holds the event loop (up to the promise), and answers `cb` when it
   * settles — 0, or the error's negative errno. Other requests are served
   * meanwhile (libfuse's loop is multi-threaded).
   */
  function runAsync(op: string, cb: Cb, fn: () => Promise<void>): void {
    const t0 = performance.now();
    let p: Promise<void>;
    try {
      p = fn();
    } catch (e) {
      p = Promise.reject(e);
    }
    time(op, t0);
    p.then(
      () => cb(0),
      (e) => {
        const fe = e instanceof FsError ? e : toFsError(e, op);
        if (!(e instanceof FsError) && fe.code === "EIO") {
          stats.internalErrors++;
          report(op, e);
        }
        cb(fe.errno);
      },
    );
  }

  function time(op: string, t0: number): void {
    const dt = performance.now() - t0;
    const o = (stats.ops[op] ??= { count: 0, maxMs: 0, totalMs: 0 });
    o.count++;
    o.totalMs += dt;
    if (dt > o.maxMs) o.maxMs = dt;
  }

  function fuseStat(path: string): FuseStat {
    return toFuseStat(view.stat(path, false));
  }

  function toFuseStat(s: InodeStat): FuseStat {
    return {
      mode: s.mode, uid: s.uid, gid: s.gid, size: s.size, dev: s.dev, nlink: s.nlink, ino: foldIno(s.ino),
      rdev: s.rdev, blksize: s.blksize, blocks: s.blocks,
      atime: toDate(s.atimeNs), mtime: toDate(s.mtimeNs), ctime: toDate(s.ctimeNs),
    };
  }

  const u32ToId = (n: number) => (n === 0xffffffff || n === -1 ? -1 : n);
  const ctx = opts.context;
  const myUid = process.getuid?.() ?? 0;
  const myGid = process.getgid?.() ?? 0;

  /**
   * Gives a node the creating caller's uid, and its gid unless the parent
   * directory is set-group-ID (then the node keeps the inherited group), as
   * the kernel does for local filesystems; its set-user-ID/set-group-ID bits
   * stay as created. No-op when the caller is the daemon's own identity or
   * the context is unavailable.
   */
  function ownToCaller(path: string): void {
    if (!ctx) return;
    const [uid, gid] = ctx() as [number, number];
    if (uid === myUid && gid === myGid) return;
    const st = view.stat(path, false);
    const parent = path.slice(0, path.lastIndexOf("/")) || "/";
    const sgid = (view.stat(parent, false).mode & 0o2000) !== 0;
    const wantGid = sgid ? st.gid : gid;
    if (st.uid !== uid || st.gid !== wantGid) {
      view.chown(path, uid, wantGid, false);
      // chown clears set-user-ID/set-group-ID of regular files; a new file keeps what its creator asked for
      // (the kernel already dropped S_ISGID when the creator is not in the file's group).
      if (st.mode & 0o6000) view.chmod(path, st.mode & 0o7777, false);
    }
  }
  const msTime = (ms: number): bigint | "now" => (ms === UTIME_SPECIAL_MS ? "now" : BigInt(Math.round(ms)) * NS_PER_MS);

  /** Descriptors whose first write has been through `killSgid` (checked once per descriptor: writes are hot). */
  const sgidChecked = new Set<number>();

  /**
   * The half of write/truncate privilege clearing the kernel's FUSE client
   * leaves out: it clears S_ISUID, and S_ISGID only together with S_IXGRP
   * (fs/fuse/dir.c), while local filesystems also clear a group-exec-less
   * S_ISGID when the caller is not in the file's group
   * (setattr_should_drop_sgid). Clears it here for such a caller (uid not 0;
   * groups read from /proc/<pid>/status only when the bit is set).
   * `st` is the file's stat; `path` null when unknown (then nothing is done).
   */
  function killSgid(path: string | null, st: () => InodeStat): void {
    if (!ctx || path === null) return;
    const [uid, gid, pid] = ctx() as [number, number, number];
    if (uid === 0) return;
    const s = st();
    if ((s.mode & 0o170000) !== 0o100000 || (s.mode & 0o2010) !== 0o2000 || s.gid === gid) return;
    if (callerGroups(pid).includes(s.gid)) return;
    view.chmod(path, s.mode & 0o5777, false);
  }

  return {
    init(cb: Cb) {
      cb(0);
    },
    getattr(path: string, cb: Cb) {
      run("getattr", cb, () => fuseStat(path));
    },
    fgetattr(path: string | null, fd: number, cb: Cb) {
      // By descriptor: works for files unlinked while open (path is null then).
      run("fgetattr", cb, () => (fd ? toFuseStat(view.fstat(fd)) : fuseStat(path ?? "/")));
    },
    readdir(path: string, cb: Cb) {
      // Names plus minimal stats (type bits and folded ino): libfuse turns them into d_type/d_ino,
      // so find, git and ls -i need no lookup per entry to learn the type.
      let entries: { name: string; ino: number; type: number }[] = [];
      const t0 = performance.now();
      try {
        const self = view.stat(path, false);
        const up = path === "/" ? self : view.stat(path.slice(0, path.lastIndexOf("/")) || "/", false);
        // (a zero d_ino would make glibc skip the entry)
        entries = [{ name: ".", ino: self.ino, type: self.mode & 0o170000 }, { name: "..", ino: up.ino, type: 0o040000 }, ...view.readdir(path)];
      } catch (e) {
        time("readdir", t0);
        return cb((e instanceof FsError ? e : toFsError(e, "readdir")).errno);
      }
      time("readdir", t0);
      const epoch = new Date(0);
      cb(0, entries.map((e) => e.name), entries.map((e) => ({ mode: e.type, ino: foldIno(e.ino), atime: epoch, mtime: epoch, ctime: epoch })));
    },
    access(path: string, mode: number, cb: Cb) {
      run("access", cb, () => view.access(path, mode));
    },
    statfs(_path: string, cb: Cb) {
      run("statfs", cb, () => view.statfs());
    },
    open(path: string, flags: number, cb: Cb) {
      // The kernel has resolved O_CREAT/O_EXCL already (create is a separate op).
      run("open", cb, () => view.open(path, flags & ~(C.O_CREAT | C.O_EXCL | C.O_NOCTTY)));
    },
    create(path: string, mode: number, cb: Cb) {
      // fuse-native passes no flags: open read-write; the kernel enforces the caller's access mode.
      run("create", cb, () => {
        const fd = view.open(path, C.O_CREAT | C.O_RDWR, mode & 0o7777);
        try {
          ownToCaller(path);
        } catch (e) {
          view.close(fd);
          throw e;
        }
        return fd;
      });
    },
    mknod(path: string, mode: number, _dev: number, cb: Cb) {
      run("mknod", cb, () => {
        if ((mode & 0o170000) !== 0o100000 && (mode & 0o170000) !== 0) throw new FsError("EPERM", "mknod", path, undefined, "only regular files are supported");
        view.close(view.open(path, C.O_CREAT | C.O_EXCL | C.O_WRONLY, mode & 0o7777));
        ownToCaller(path);
      });
    },
    read(_path: string, fd: number, buf: Buffer, len: number, pos: number, cb: Cb) {
      run("read", cb, () => view.read(fd, buf, 0, len, pos), true);
    },
    write(path: string | null, fd: number, buf: Buffer, len: number, pos: number, cb: Cb) {
      stats.writes++;
      if (len > stats.maxWrite) stats.maxWrite = len;
      run("write", cb, () => {
        if (ctx && !sgidChecked.has(fd)) {
          sgidChecked.add(fd);
          if (len > 0) killSgid(path, () => view.fstat(fd));
        }
        return view.write(fd, buf, 0, len, pos);
      }, true);
    },
    flush(_path: string, fd: number, cb: Cb) {
      runAsync("flush", cb, () => view.flushAsync(fd));
    },
    fsync(_path: string, _datasync: number, fd: number, cb: Cb) {
      runAsync("fsync", cb, () => view.fsyncAsync(fd));
    },
    release(_path: string, fd: number, cb: Cb) {
      sgidChecked.delete(fd);
      runAsync("release", cb, () => view.closeAsync(fd));
    },
    truncate(path: string, size: number, cb: Cb) {
      run("truncate", cb, () => {
        view.truncate(path, size);
        killSgid(path, () => view.stat(path, false));
      });
    },
    ftruncate(path: string | null, fd: number, size: number, cb: Cb) {
      run("ftruncate", cb, () => {
        view.ftruncate(fd, size);
        killSgid(path, () => view.fstat(fd));
      });
    },
    mkdir(path: string, mode: number, cb: Cb) {
      run("mkdir", cb, () => {
        view.mkdir(path, mode & 0o7777);
        ownToCaller(path);
      });
    },
    rmdir(path: string, cb: Cb) {
      run("rmdir", cb, () => view.rmdir(path));
    },
    unlink(path: string, cb: Cb) {
      run("unlink", cb, () => {
        view.unlink(path);
        opts.hidden?.delete(path);
      });
    },
    rename(from: string, to: string, cb: Cb) {
      run("rename", cb, () => {
        view.rename(from, to);
        trackHidden(opts.hidden, from, to);
      });
    },
    link(existing: string, path: string, cb: Cb) {
      run("link", cb, () => view.link(existing, path));
    },
    symlink(target: string, path: string, cb: Cb) {
      run("symlink", cb, () => {
        view.symlink(target, path);
        ownToCaller(path);
      });
    },
    readlink(path: string, cb: Cb) {
      run("readlink", cb, () => view.readlink(path));
    },
    chmod(path: string, mode: number, cb: Cb) {
      run("chmod", cb, () => view.chmod(path, mode & 0o7777, false));
    },
    chown(path: string, uid: number, gid: number, cb: Cb) {
      run("chown", cb, () => view.chown(path, u32ToId(uid), u32ToId(gid), false));
    },
    utimens(path: string, atimeMs: number, mtimeMs: number, cb: Cb) {
      run("utimens", cb, () => {
        if (ctx) {
          const c = ctx();
          return view.utimes(path, timespecToTime(c[3]!, c[4]!), timespecToTime(c[5]!, c[6]!), false);
        }
        // Unpatched fuse-native 2.2.6 passes atime in both arguments, in ms (see README).
        view.utimes(path, msTime(atimeMs), msTime(mtimeMs), false);
      });
    },
    setxattr(path: string, name: string, value: Buffer, _position: number, flags: number, cb: Cb) {
      run("setxattr", cb, () => {
        if (name === "security.capability" && opts.fileCapabilities === false) throw new FsError("ENOTSUP", "setxattr", path, undefined, "file capabilities are off on this mount");
        view.setxattr(path, name, Buffer.from(value), flags);
      });
    },
    getxattr(path: string, name: string, _position: number, cb: Cb) {
      run("getxattr", cb, () => view.getxattr(path, name));
    },
    listxattr(path: string, cb: Cb) {
      run("listxattr", cb, () => view.listxattr(path));
    },
    removexattr(path: string, name: string, cb: Cb) {
      run("removexattr", cb, () => view.removexattr(path, name));
    },
  };
}
