/**
 * The FUSE request handlers: the libfuse 3 low-level protocol (node ids,
 * explicit replies; `@agentfs/native` FuseSession) served from a `View`
 * (paths). Every handler runs synchronously on the event loop and answers
 * at once, except flush, fsync and release, which answer when the commit
 * they start (off the loop) is done. Errors reach the kernel as the errno of
 * the `FsError`; anything else is answered EIO and reported.
 */
import { FsError, type DeferredCompressionStats, type InodeStat, type TimeSpec } from "@agentfs/core";
import type { FuseBinding, FuseSession } from "@agentfs/native";
import { OpenReplyFlag } from "@agentfs/native";
import { toFsError, type View } from "@agentfs/view";
import { constants as C, readFileSync } from "node:fs";
import { NodeTable, ROOT_ID, type FuseNode } from "./nodes.js";
import { CachePrimer, type CachePrimeStats } from "./cacheprime.js";
import { Notifier } from "./notifier.js";

/** Counters a mount keeps for diagnostics and tests. */
export interface OpStats {
  /** Number of write requests served. */
  writes: number;
  /** Largest single write request seen, in bytes. */
  maxWrite: number;
  /** Write requests whose answer was held until their file's commit freed memory (`View.writeThrottle`). */
  throttled: number;
  /** Largest single read request seen, in bytes. */
  maxRead: number;
  /** Polls for a next request after a burst (`MountOptions.pollSpinUs`), and how many found one; filled at unmount. */
  spins: number;
  spinHits: number;
  /**
   * getxattr("security.capability") requests the binding answered (the
   * kernel's check before a write clears file capabilities), filled at
   * unmount; with FUSE_HANDLE_KILLPRIV_V2 about one per file written instead
   * of one per write(2).
   */
  capabilityProbes: number;
  /** Whether FUSE_HANDLE_KILLPRIV_V2 was negotiated (the daemon clears set-user-ID/set-group-ID); set at INIT. */
  killprivV2: boolean;
  /** Number of requests answered EIO because of an error that was not an FsError. */
  internalErrors: number;
  /**
   * Per FUSE operation: requests served, and the longest and total time (ms)
   * the handler held the event loop. Every other request waits that long, so
   * `maxMs` is what the 10 ms rule of DESIGN.md is about.
   */
  ops: Record<string, { count: number; maxMs: number; totalMs: number }>;
  /** Page-cache priming at close (cacheprime.ts). */
  cachePrime: CachePrimeStats;
  /** Deferred compression of small files' chunks (`Store.deferCompression`), filled at unmount; null when it was off. */
  deferredCompression: DeferredCompressionStats | null;
}

/** Fresh, zeroed counters. */
export function newOpStats(): OpStats {
  return { writes: 0, maxWrite: 0, throttled: 0, maxRead: 0, spins: 0, spinHits: 0, capabilityProbes: 0, killprivV2: false, internalErrors: 0, ops: {}, cachePrime: { stored: 0, refused: 0, dropped: 0, deferred: 0 }, deferredCompression: null };
}

/** Kernel cache lifetimes handed out with replies, in seconds. */
export interface CacheTimeouts {
  /** How long the kernel may keep attributes. */
  attr: number;
  /** How long it may keep a name → node binding. */
  entry: number;
  /** How long it may remember that a name does not exist (0: not at all). */
  negative: number;
}

/** Options for `Handlers`. */
export interface HandlerOptions {
  timeouts: CacheTimeouts;
  /** Whether `security.capability` may be set (false: setxattr of it is EOPNOTSUPP; the binding answers getxattr of it). */
  fileCapabilities: boolean;
  /** Page cache across opens: "auto" keeps it when the file's mtime and size are unchanged since the last open; "never" drops it at every open. */
  pageCache: "auto" | "never";
  /** Called with any non-FsError exception (it is answered EIO). */
  onInternalError: (op: string, e: unknown) => void;
  /** Called once when the kernel ends the session from outside (fusermount -u, umount). */
  onExit: () => void;
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

/** Prefix of the names libfuse 2 gave files unlinked while open (`FUSE_HIDDEN_NAME`). */
export const FUSE_HIDDEN_PREFIX = ".fuse_hidden";

/**
 * A name libfuse 2 gave a file unlinked while open, exactly: libfuse 2.9
 * `hidden_name()` formats `".fuse_hidden%08x%08x"` (16 lowercase hex digits).
 * agentfs served mounts with libfuse 2 until the low-level binding; a store
 * a daemon of that time served may still hold such files.
 */
export const FUSE_HIDDEN_NAME = /^\.fuse_hidden[0-9a-f]{16}$/;

/**
 * Unlinks every `.fuse_hidden…` file (exactly `FUSE_HIDDEN_NAME`) anywhere
 * in the view's main tree; returns how many. Each is a file an older
 * (libfuse 2) daemon hid because it was open when unlinked, and left behind
 * when it died. Only safe while no such daemon serves the tree. Returns 0 on
 * a read-only view. Errors: `View.removeNames`'s.
 */
export function removeFuseHiddenNames(view: View): number {
  if (view.readOnly) return 0;
  return view.removeNames(FUSE_HIDDEN_PREFIX, (name) => FUSE_HIDDEN_NAME.test(name));
}

const NS = 1_000_000_000n;
const S_IFMT = 0o170000;
const S_IFREG = 0o100000;
const S_IFDIR = 0o040000;
const ENOENT = 2;
const EIO = 5;
const EINVAL = 22;
const ERANGE = 34;
const ENOSYS = 38;
const ENODATA = 61;
const EEXIST = 17;
const RENAME_NOREPLACE = 1;
const RENAME_EXCHANGE = 2;
const SEEK_DATA = 3;
const SEEK_HOLE = 4;

/** A file's page-cache stamp, `mtimeNs:size`: an open that finds the node's stamp unchanged keeps the kernel's cached pages. */
function cacheStamp(st: InodeStat): string {
  return `${st.mtimeNs}:${st.size}`;
}

/** A directory handle: the listing taken at opendir (or at a rewind to offset 0). */
interface DirHandle {
  ino: number;
  /** The directory's stat at opendir: what fstat of the open directory shows once it is removed (nlink 0). */
  self: InodeStat;
  /** Made by opendir and not read yet: the first read at offset 0 uses it instead of listing again. */
  fresh: boolean;
  names: string[];
  inos: number[];
  types: number[];
}

/**
 * The handler set of one mount. `dispatch` is the function a FuseSession
 * calls; `nodes` is the node table (node id = view inode number).
 */
export class Handlers {
  readonly nodes = new NodeTable();
  /** Open file handles: fh (= view descriptor) → node id. */
  private readonly files = new Map<number, number>();
  /**
   * Node id → a read-only view descriptor that keeps a file alive after a
   * rename replaced its last name while the kernel still held its node: an
   * open(2) whose lookup found the file just before the rename must still
   * open it (as on a local filesystem). Closed when the kernel forgets the node.
   */
  private readonly pins = new Map<number, number>();
  /** fh of files whose first write went through the set-group-ID check (writes are hot). */
  private readonly sgidChecked = new Set<number>();
  /** fh of handles open for writing → the uid that opened them (who may write: see `mayKillEmpty`). */
  private readonly writerUid = new Map<number, number>();
  private readonly primer: CachePrimer;
  /** Every notification this mount sends on its own (unmount waits for them). */
  readonly notifier = new Notifier(() => this.session ?? null);
  private readonly opOpen: number;
  private readonly opSetattr: number;
  private readonly opFallocate: number;
  private readonly dirs = new Map<number, DirHandle>();
  private nextDir = 1;
  private session!: FuseSession;
  private readonly rec: Float64Array[] = [];
  private readBuf = Buffer.alloc(0);
  private readonly myUid = process.getuid?.() ?? 0;
  private readonly myGid = process.getgid?.() ?? 0;
  private readonly table: ((slot: number, ...a: any[]) => void)[];
  private exited = false;
  /** Capability bits the kernel agreed to at INIT (0 until then). */
  want = 0;
  /** Resolves when the kernel has sent INIT. */
  readonly initialized: Promise<void>;
  private resolveInit!: () => void;
  private rejectInit!: (e: Error) => void;

  constructor(
    readonly view: View,
    private readonly binding: FuseBinding,
    readonly stats: OpStats,
    private readonly opts: HandlerOptions,
  ) {
    this.primer = new CachePrimer(view, this.notifier);
    stats.cachePrime = this.primer.stats;
    this.opOpen = binding.opNames.indexOf("open");
    this.opSetattr = binding.opNames.indexOf("setattr");
    this.opFallocate = binding.opNames.indexOf("fallocate");
    this.initialized = new Promise((res, rej) => {
      this.resolveInit = res;
      this.rejectInit = rej;
    });
    const byName: Record<string, (slot: number, ...a: any[]) => void> = {
      init: (_s, _capable: number, want: number) => {
        this.want = want;
        this.resolveInit();
      },
      lookup: (s, parent: number, name: string) => this.lookup(s, parent, name),
      forget: (_s, ino: number, n: number) => this.forgetNode(ino, n),
      getattr: (s, ino: number, fh: number) => this.getattr(s, ino, fh),
      setattr: (s, ...a: number[]) => this.setattr(s, a),
      readlink: (s, ino: number) => this.session.replyReadlink(s, this.view.readlink(this.pathOf(ino))),
      mknod: (s, parent: number, name: string, mode: number, rdev: number) => this.mknod(s, parent, name, mode, rdev),
      mkdir: (s, parent: number, name: string, mode: number) => this.mkdir(s, parent, name, mode),
      unlink: (s, parent: number, name: string) => this.remove(s, parent, name, false),
      rmdir: (s, parent: number, name: string) => this.remove(s, parent, name, true),
      symlink: (s, target: string, parent: number, name: string) => this.symlink(s, target, parent, name),
      rename: (s, p: number, n: string, np: number, nn: string, flags: number) => this.rename(s, p, n, np, nn, flags),
      link: (s, ino: number, np: number, nn: string) => this.link(s, ino, np, nn),
      open: (s, ino: number, flags: number) => this.open(s, ino, flags),
      read: (s, _ino: number, fh: number, off: number, size: number) => this.read(s, fh, off, size),
      write: (s, _ino: number, fh: number, off: number, size: number, at: number, copy: Buffer | null, _wp: boolean, kill: boolean) =>
        this.write(s, fh, off, size, at, copy, kill),
      flush: (s, ino: number, fh: number) => this.later("flush", s, this.flush(ino, fh)),
      release: (s, ino: number, fh: number) => this.release(s, ino, fh),
      fsync: (s, _ino: number, fh: number) => this.later("fsync", s, this.view.fsyncAsync(fh)),
      opendir: (s, ino: number) => this.opendir(s, ino),
      readdir: (s, ino: number, fh: number, off: number, size: number) => this.readdir(s, ino, fh, off, size, false),
      readdirplus: (s, ino: number, fh: number, off: number, size: number) => this.readdir(s, ino, fh, off, size, true),
      releasedir: (s, _ino: number, fh: number) => {
        this.dirs.delete(fh);
        this.session.replyErr(s, 0);
      },
      fsyncdir: (s) => this.later("fsyncdir", s, this.view.syncAsync()),
      statfs: (s) => {
        const v = this.view.statfs();
        this.session.replyStatfs(s, [v.bsize, v.frsize, v.blocks, v.bfree, v.bavail, v.files, v.ffree, v.favail, v.fsid, v.flag, v.namemax]);
      },
      setxattr: (s, ino: number, name: string, value: Buffer, flags: number) => {
        if (name === "security.capability" && !this.opts.fileCapabilities) throw new FsError("ENOTSUP", "setxattr", undefined, undefined, "file capabilities are off on this mount");
        if (!this.view.setxattrOf(ino, name, value, flags)) this.view.setxattr(this.pathOf(ino), name, value, flags);
        this.session.replyErr(s, 0);
      },
      // xattrs by inode number where the view can (no path walk; also a file unlinked while open), else by a name.
      getxattr: (s, ino: number, name: string, size: number) => this.sized(s, size, this.view.getxattrOf(ino, name) ?? this.view.getxattr(this.pathOf(ino), name)),
      listxattr: (s, ino: number, size: number) =>
        this.sized(s, size, Buffer.from((this.view.listxattrOf(ino) ?? this.view.listxattr(this.pathOf(ino))).map((n) => n + "\0").join(""))),
      removexattr: (s, ino: number, name: string) => {
        if (!this.view.removexattrOf(ino, name)) this.view.removexattr(this.pathOf(ino), name);
        this.session.replyErr(s, 0);
      },
      access: (s, ino: number, mask: number) => {
        this.view.access(this.pathOf(ino), mask);
        this.session.replyErr(s, 0);
      },
      create: (s, parent: number, name: string, mode: number, flags: number) => this.create(s, parent, name, mode, flags),
      tmpfile: (s, parent: number, mode: number, flags: number) => this.tmpfile(s, parent, mode, flags),
      fallocate: (s, _ino: number, fh: number, mode: number, off: number, len: number) => this.fallocate(s, fh, mode, off, len),
      // Not implemented here: the kernel then serves SEEK_DATA/SEEK_HOLE itself (all data, hole at EOF).
      lseek: (s, _ino: number, fh: number, off: number, whence: number) => this.lseek(s, fh, off, whence),
      exit: () => {
        if (this.exited) return;
        this.exited = true;
        this.rejectInit(Object.assign(new Error("EIO: the kernel ended the FUSE session before INIT"), { code: "EIO", errno: -5 }));
        this.opts.onExit();
      },
    };
    this.table = binding.opNames.map((n) => byName[n] ?? ((s: number) => s >= 0 && this.session.replyErr(s, ENOSYS)));
  }

  /** Attaches the session the handlers answer through (before it is mounted). */
  attach(session: FuseSession): void {
    this.session = session;
    for (let i = 0; i < session.attrRecords; i++) this.rec.push(session.attr.subarray(i * session.attrFields, (i + 1) * session.attrFields));
  }

  /** The dispatch function for `new FuseSession(…)`: runs the op's handler, times it, and answers errors. */
  readonly dispatch = (op: number, slot: number, a?: any, b?: any, c?: any, d?: any, e?: any, f?: any, g?: any, h?: any, i?: any, j?: any, k?: any): void => {
    // An OPEN for writing, a SETATTR of the size and a FALLOCATE of an inode whose page cache is being
    // filled wait for that (cacheprime.ts); `a` is the inode, `b` the open flags or the setattr mask.
    if (this.changesData(op, b) && this.primer.after(a, () => this.dispatch(op, slot, a, b, c, d, e, f, g, h, i, j, k))) return;
    const t0 = performance.now();
    try {
      this.table[op]!(slot, a, b, c, d, e, f, g, h, i, j, k);
    } catch (err) {
      if (slot >= 0) this.session.replyErr(slot, this.errno(this.binding.opNames[op]!, err));
    }
    const dt = performance.now() - t0;
    const name = this.binding.opNames[op]!;
    const o = (this.stats.ops[name] ??= { count: 0, maxMs: 0, totalMs: 0 });
    o.count++;
    o.totalMs += dt;
    if (dt > o.maxMs) o.maxMs = dt;
  };

  /** True for an OPEN that may write (`arg`: its flags), a SETATTR that sets the size (`arg`: its mask) and a FALLOCATE. */
  private changesData(op: number, arg: number): boolean {
    if (op === this.opOpen) return (arg & 3) !== C.O_RDONLY || (arg & C.O_TRUNC) !== 0;
    if (op === this.opSetattr) return (arg & this.binding.setAttr.SIZE!) !== 0;
    return op === this.opFallocate;
  }

  /** Positive errno for `e`; reports what is not an FsError. */
  private errno(op: string, e: unknown): number {
    const fe = e instanceof FsError ? e : toFsError(e, op);
    if (!(e instanceof FsError) && fe.code === "EIO") {
      this.stats.internalErrors++;
      this.opts.onInternalError(op, e);
    }
    return -fe.errno || EIO;
  }

  /** Answers `slot` when `p` settles: 0, or the errno it rejects with. */
  private later(op: string, slot: number, p: Promise<void>): void {
    p.then(
      () => this.session.replyErr(slot, 0),
      (e) => this.session.replyErr(slot, this.errno(op, e)),
    );
  }

  // ---------------------------------------------------------------- helpers

  /** Path of node `ino`. Errors: ENOENT (ESTALE in spirit) when the kernel's node has no name left. */
  private pathOf(ino: number): string {
    const p = this.nodes.path(ino);
    if (p === null) throw new FsError("ENOENT", "lookup");
    return p;
  }

  private childOf(parent: number, name: string): string {
    const p = this.nodes.childPath(parent, name);
    if (p === null) throw new FsError("ENOENT", "lookup", name);
    return p;
  }

  /** An open handle of node `ino` (for nodes whose every name is gone), or undefined. */
  private handleOf(ino: number): number | undefined {
    return this.handlesOf(ino)[0];
  }

  /** Every open handle of node `ino`. */
  private handlesOf(ino: number): number[] {
    const out: number[] = [];
    for (const [fh, i] of this.files) if (i === ino) out.push(fh);
    return out;
  }

  /** Stat of node `ino`: by handle `fh` when given, else by path, else by any open handle. */
  private statOf(ino: number, fh = -1): InodeStat {
    if (fh >= 0 && this.files.has(fh)) return this.view.fstat(fh);
    // By inode number where the view can (no path to build and resolve); else by a name, then by a handle.
    try {
      const st = this.view.statInode(ino);
      if (st) return st;
    } catch (e) {
      if (!(e instanceof FsError && e.code === "ENOENT")) throw e;
    }
    const p = this.nodes.path(ino);
    if (p !== null) return this.view.stat(p, false);
    const h = this.pins.get(ino) ?? this.handleOf(ino);
    if (h !== undefined) return this.view.fstat(h);
    // A directory removed while a program holds it open: as on local filesystems, it still has a stat.
    for (const d of this.dirs.values()) if (d.ino === ino) return { ...d.self, nlink: 0 };
    throw new FsError("ENOENT", "getattr");
  }

  /** Writes `st` into attribute record `i` of the session. */
  private fill(i: number, st: InodeStat): void {
    const r = this.rec[i]!;
    r[0] = st.ino;
    r[1] = st.mode;
    r[2] = st.nlink;
    r[3] = st.uid;
    r[4] = st.gid;
    r[5] = st.rdev;
    r[6] = st.size;
    r[7] = st.blocks;
    r[8] = st.blksize;
    r[9] = Number(st.atimeNs / NS);
    r[10] = Number(st.atimeNs % NS);
    r[11] = Number(st.mtimeNs / NS);
    r[12] = Number(st.mtimeNs % NS);
    r[13] = Number(st.ctimeNs / NS);
    r[14] = Number(st.ctimeNs % NS);
  }

  /** Entry reply for `st` as `name` in `parent`: the kernel now holds one more reference. */
  private entry(slot: number, parent: number, name: string, st: InodeStat): void {
    this.nodes.looked(st.ino, parent, name, (st.mode & S_IFMT) === S_IFDIR);
    this.fill(0, st);
    // Not taken (the caller was interrupted): the kernel holds no reference to give back in a FORGET.
    if (!this.session.replyEntry(slot, this.opts.timeouts.entry, this.opts.timeouts.attr)) this.forgetNode(st.ino, 1);
  }

  /** Drops `n` lookup references of node `ino`; closes its pin when the node is forgotten. */
  private forgetNode(ino: number, n: number): void {
    this.nodes.forget(ino, n);
    if (!this.nodes.get(ino)) this.unpin(ino);
  }

  /** getxattr/listxattr answer: the size when `size` is 0, ERANGE when it does not fit, else the bytes. */
  private sized(slot: number, size: number, value: Buffer): void {
    if (size === 0) this.session.replyXattr(slot, value.length);
    else if (value.length > size) this.session.replyErr(slot, ERANGE);
    else this.session.replyBuf(slot, value, 0, value.length);
  }

  /**
   * Gives a new node the creating caller's uid, and its gid unless the
   * parent directory is set-group-ID (then it keeps the inherited group), as
   * the kernel does for local filesystems; set-user-ID/set-group-ID bits
   * stay as created. `made`: the node's stat when the caller has it (a
   * create's fstat; saves a path walk). Returns the node's stat afterwards.
   */
  private ownToCaller(path: string, parent: number, made?: InodeStat): InodeStat {
    return this.ownBy(made ?? this.view.stat(path, false), parent, {
      chown: (u, g) => this.view.chown(path, u, g, false),
      chmod: (m) => this.view.chmod(path, m, false),
      stat: () => this.view.stat(path, false),
    });
  }

  /** `ownToCaller` of the new node `st` (in directory node `parent`), changed and read back through `how`. */
  private ownBy(st: InodeStat, parent: number, how: { chown(uid: number, gid: number): void; chmod(mode: number): void; stat(): InodeStat }): InodeStat {
    const uid = this.session.ctx[0]!;
    const gid = this.session.ctx[1]!;
    if (uid === this.myUid && gid === this.myGid) return st;
    const sgid = (this.view.stat(this.pathOf(parent), false).mode & 0o2000) !== 0;
    const wantGid = sgid ? st.gid : gid;
    if (st.uid === uid && st.gid === wantGid) return st;
    how.chown(uid, wantGid);
    // chown clears set-user-ID/set-group-ID of regular files; a new file keeps what its creator asked for
    // (the kernel already dropped S_ISGID when the creator is not in the file's group).
    if (st.mode & 0o6000) how.chmod(st.mode & 0o7777);
    return how.stat();
  }

  /**
   * The half of write/truncate privilege clearing the kernel's FUSE client
   * leaves out: it clears S_ISUID, and S_ISGID only together with S_IXGRP
   * (fs/fuse/dir.c), while local filesystems also clear a group-exec-less
   * S_ISGID when the caller is not in the file's group
   * (setattr_should_drop_sgid). Clears it for such a caller (uid not 0;
   * groups read from /proc/<pid>/status only when the bit is set). True
   * when it changed the mode: a request whose reply carries no attributes
   * (write, fallocate) must then drop the kernel's cached ones
   * (`replyAfterAttrsDropped`), or stat(2) shows the old mode until the
   * attribute timeout. `anyType`: for a chown, which clears it on any
   * non-directory (against the group the file had).
   */
  private killSgid(st: Pick<InodeStat, "mode" | "gid">, chmod: (mode: number) => void, anyType = false): boolean {
    const [uid, gid, pid] = this.session.ctx as unknown as [number, number, number];
    if (uid === 0) return false;
    const type = st.mode & S_IFMT;
    if ((anyType ? type === S_IFDIR : type !== S_IFREG) || (st.mode & 0o2010) !== 0o2000 || st.gid === gid) return false;
    if (callerGroups(pid).includes(st.gid)) return false;
    chmod(st.mode & 0o5777);
    return true;
  }

  /**
   * With FUSE_HANDLE_KILLPRIV_V2 (`session.killprivV2()`) the kernel leaves
   * all of it to the daemon: clears S_ISUID, and S_ISGID together with
   * S_IXGRP, of a non-directory `st` (as the kernel's FUSE client did when
   * it sent the chmod itself); then, unless `chown`, what `killSgid` adds
   * for a caller outside the file's group. Called for a write or truncate
   * carrying KILL_SUIDGID (the caller lacks CAP_FSETID), for a chown of a
   * non-directory, and for a SETATTR with nothing to set (what the kernel
   * sends for chown(f, -1, -1) and, before a write or fallocate, when it
   * found privileges to clear). True when it changed the mode.
   */
  private killPrivs(st: InodeStat, chown: boolean, chmod: (mode: number) => void): boolean {
    if ((st.mode & S_IFMT) === S_IFDIR) return false;
    let mode = st.mode & 0o7777 & ~0o4000;
    if ((mode & 0o2010) === 0o2010) mode &= ~0o2000;
    const changed = mode !== (st.mode & 0o7777);
    if (changed) chmod(mode);
    return (!chown && this.killSgid({ mode: (st.mode & S_IFMT) | mode, gid: st.gid }, chmod)) || changed;
  }

  /**
   * Whether a SETATTR with nothing to set (KILLPRIV_V2) from the current
   * caller may clear the privileges of `st` (`killPrivs`); throws EPERM when
   * it may not and bits would change. The kernel sends one for
   * chown(f, -1, -1) and, before a write, fallocate or copy_file_range, when
   * it found privileges to clear (with ATTR_FORCE: no permission check);
   * nothing in the request tells them apart. Root and the owner may clear
   * either way; another caller holding the file open for writing is taken as
   * such a write (a chown(f, -1, -1) of theirs clears too, where a local
   * filesystem says EPERM); any other caller is a chown by a non-owner:
   * EPERM, as chown_common gives, and the mode stays.
   */
  private mayKillEmpty(ino: number, st: InodeStat): void {
    const uid = (this.session.ctx as unknown as number[])[0]!;
    if (uid === 0 || uid === st.uid) return;
    if (this.handlesOf(ino).some((fh) => this.writerUid.get(fh) === uid)) return;
    if (this.killPrivs(st, false, () => {})) throw new FsError("EPERM", "setattr");
  }

  /** `killSgid` of the file open as handle `fh` (`st` its current stat), changed through the handle. */
  private killSgidOf(fh: number, st: InodeStat): boolean {
    return this.killSgid(st, (m) => this.view.fchmod(fh, m));
  }

  /**
   * Calls `reply` once the kernel has dropped its cached attributes of node
   * `ino` (an attributes-only invalidation on a pool thread), so that no
   * stat(2) after the reply sees a mode the daemon changed on its own.
   * Calls it at once when the session no longer serves.
   */
  private replyAfterAttrsDropped(ino: number, reply: () => void): void {
    void this.notifier.drop([], [ino], true).then(reply);
  }

  // ---------------------------------------------------------------- namespace

  /** The entry `name` of directory node `parent`: from the directory itself, or by path for the control tree. */
  private statChild(parent: number, name: string): InodeStat {
    return this.view.statAt(parent, name) ?? this.view.stat(this.childOf(parent, name), false);
  }

  private lookup(slot: number, parent: number, name: string): void {
    let st: InodeStat | null;
    try {
      // Misses are routine (every create looks its name up first): lookupAt answers them without an exception.
      const at = this.view.lookupAt(parent, name);
      st = at === undefined ? this.statChild(parent, name) : at;
    } catch (e) {
      if (!(e instanceof FsError && e.code === "ENOENT")) throw e;
      st = null;
    }
    if (st) return this.entry(slot, parent, name, st);
    if (this.opts.timeouts.negative <= 0) throw new FsError("ENOENT", "lookup", name);
    // A negative entry: the kernel remembers the name is missing for the negative timeout.
    this.rec[0]!.fill(0);
    this.session.replyEntry(slot, this.opts.timeouts.negative, 0);
  }

  private getattr(slot: number, ino: number, fh: number): void {
    this.fill(0, this.statOf(ino, fh));
    this.session.replyAttr(slot, this.opts.timeouts.attr);
  }

  /**
   * setattr: a = [ino, toSet, fh, mode, uid, gid, size, atimeS, atimeNs, mtimeS, mtimeNs]; toSet may
   * carry `setAttr.KILL_SUIDGID` (KILLPRIV_V2: clear privileges, see `killPrivs`). A size
   * change by path (truncate(2), no handle) commits the file's pending writes off the loop and answers
   * when done; everything else is done and answered at once.
   */
  private setattr(slot: number, a: number[]): void {
    const [ino, toSet, fhArg, mode, uid, gid, size, aS, aNs, mS, mNs] = a as [number, number, number, number, number, number, number, number, number, number, number];
    const S = this.binding.setAttr;
    const path = this.nodes.path(ino);
    const fh = fhArg >= 0 && this.files.has(fhArg) ? fhArg : path === null ? this.handleOf(ino) ?? -1 : -1;
    if (path === null && fh < 0) throw new FsError("ENOENT", "setattr");
    const byFd = path === null || (fh >= 0 && fhArg === fh);
    const chmod = (m: number) => (byFd && fh >= 0 ? this.view.fchmod(fh, m) : this.view.chmod(path!, m, false));
    // Only a new size or new times move the stamp; the kernel truncates its own page cache on a new size.
    const node = toSet & (S.SIZE! | S.MTIME! | S.MTIME_NOW!) ? this.stampedNode(ino, fh) : undefined;
    // By path only where the view cannot go by inode (snapshot and control trees): a path walk per
    // chmod, chown and utimens was most of what tar x and git clone paid for them.
    if (toSet & S.MODE!) {
      if (byFd && fh >= 0) this.view.fchmod(fh, mode & 0o7777);
      else if (!this.view.chmodOf(ino, mode & 0o7777)) this.view.chmod(path!, mode & 0o7777, false);
    }
    if (toSet & (S.UID! | S.GID!)) {
      const u = toSet & S.UID! ? uid : -1;
      const g = toSet & S.GID! ? gid : -1;
      const oldGid = toSet & S.KILL_SUIDGID! ? this.statOf(ino, fh).gid : -1;
      if (byFd && fh >= 0) this.view.fchown(fh, u, g);
      else if (!this.view.chownOf(ino, u, g)) this.view.chown(path!, u, g, false);
      if (toSet & S.KILL_SUIDGID!) {
        const st = this.statOf(ino, fh);
        this.killPrivs(st, true, chmod);
        // chown_common's setattr_should_drop_sgid looks at the group the file had: a caller outside it
        // also loses a set-group-ID without group execute.
        this.killSgid({ mode: this.statOf(ino, fh).mode, gid: oldGid }, chmod, true);
      }
    }
    const rest = () => {
      if (toSet & S.SIZE!) {
        const st = this.statOf(ino, fh);
        if (toSet & S.KILL_SUIDGID!) this.killPrivs(st, false, chmod);
        else this.killSgid(st, chmod);
      }
      if (toSet & (S.ATIME! | S.MTIME! | S.ATIME_NOW! | S.MTIME_NOW!)) {
        const t = (set: number, now: number, s: number, ns: number): TimeSpec => (toSet & now ? "now" : toSet & set ? BigInt(s) * NS + BigInt(ns) : "omit");
        const at = t(S.ATIME!, S.ATIME_NOW!, aS, aNs);
        const mt = t(S.MTIME!, S.MTIME_NOW!, mS, mNs);
        if (byFd && fh >= 0) this.view.futimes(fh, at, mt);
        else if (!this.view.utimesOf(ino, at, mt)) this.view.utimes(path!, at, mt, false);
      }
      if ((toSet & ~S.CTIME!) === 0) {
        // chown(f, -1, -1): the kernel sends a SETATTR with nothing to set (ctime only with a writeback
        // cache). Only ctime changes, which the trees touch on a no-op chown. With KILLPRIV_V2 the same
        // request also announces a write's privilege clearing (mayKillEmpty).
        // (The no-op chown changes ctime only: `before` still holds the mode and group to clear from.)
        const before = this.session.killprivV2() ? this.statOf(ino, fh) : null;
        if (before) this.mayKillEmpty(ino, before);
        if (byFd && fh >= 0) this.view.fchown(fh, -1, -1);
        else this.view.chown(path!, -1, -1, false);
        if (before) this.killPrivs(before, false, chmod);
      }
      const st = this.statOf(ino, fh);
      this.keptThroughKernel(node, st);
      this.fill(0, st);
      this.session.replyAttr(slot, this.opts.timeouts.attr);
    };
    if (!(toSet & S.SIZE!)) return rest();
    if (fh >= 0) {
      this.view.ftruncate(fh, size);
      return rest();
    }
    // truncate(2): other descriptors of the file may hold megabytes of uncommitted writes.
    this.view.truncateAsync(path!, size).then(
      () => {
        try {
          rest();
        } catch (e) {
          this.session.replyErr(slot, this.errno("setattr", e));
        }
      },
      (e) => this.session.replyErr(slot, this.errno("setattr", e)),
    );
  }

  private mknod(slot: number, parent: number, name: string, mode: number, rdev: number): void {
    const path = this.childOf(parent, name);
    // The kernel asked CAP_MKNOD for devices already; FIFOs, sockets and devices are served by the kernel once made.
    this.view.mknod(path, mode, rdev);
    this.entry(slot, parent, name, this.ownToCaller(path, parent));
  }

  private mkdir(slot: number, parent: number, name: string, mode: number): void {
    const path = this.childOf(parent, name);
    this.view.mkdir(path, mode & 0o7777);
    this.entry(slot, parent, name, this.ownToCaller(path, parent));
  }

  private symlink(slot: number, target: string, parent: number, name: string): void {
    const path = this.childOf(parent, name);
    this.view.symlink(target, path);
    this.entry(slot, parent, name, this.ownToCaller(path, parent));
  }

  private link(slot: number, ino: number, newParent: number, newName: string): void {
    const path = this.childOf(newParent, newName);
    const from = this.nodes.path(ino);
    if (from !== null) {
      this.view.link(from, path);
      return this.entry(slot, newParent, newName, this.view.stat(path, false));
    }
    // No name: an O_TMPFILE file the kernel lets be linked (opened without O_EXCL, not linked yet; the
    // kernel refuses a file unlinked while open itself, and core would too). Named through one of its
    // handles; its bytes are committed before the answer, so what was written before linkat(2) is in the
    // store once it returns: off the loop through its writable handles, or in the link itself when none
    // is left (written, closed, and linked through a read-only reopen of /proc/PID/fd).
    const fhs = this.handlesOf(ino);
    if (!fhs.length) throw new FsError("ENOENT", "link");
    const writers = fhs.filter((fh) => this.writerUid.has(fh));
    this.view.flink(fhs[0]!, path, writers.length === 0);
    // The name exists from here on: the answer is its entry even if a commit fails (the bytes stay
    // pending, and the next flush, fsync or close of the writer reports the error, as after a write).
    const answer = () => {
      try {
        this.entry(slot, newParent, newName, this.statOf(ino));
      } catch (e) {
        this.session.replyErr(slot, this.errno("link", e));
      }
    };
    Promise.all(writers.map((fh) => this.view.flushAsync(fh))).then(answer, answer);
  }

  /** unlink (dir false) or rmdir (dir true) of `name` in `parent`. */
  private remove(slot: number, parent: number, name: string, dir: boolean): void {
    const path = this.childOf(parent, name);
    const ino = this.inoAt(parent, name, path);
    if (dir) this.view.rmdir(path);
    else this.view.unlink(path);
    if (ino !== undefined) this.nodes.unlinked(ino, parent, name);
    this.session.replyErr(slot, 0);
  }

  /**
   * Inode number of entry `name` of node `parent`, whose path is `path` (not
   * followed), or undefined when nothing is there. By inode where the view
   * answers that way: a missing name (a rename's new name, mostly) is then
   * no thrown ENOENT, whose stack trace cost more than the rename itself.
   */
  private inoAt(parent: number, name: string, path: string): number | undefined {
    try {
      const st = this.view.lookupAt(parent, name);
      if (st !== undefined) return st?.ino;
      return this.view.stat(path, false).ino;
    } catch {
      return undefined;
    }
  }

  private rename(slot: number, parent: number, name: string, newParent: number, newName: string, flags: number): void {
    const from = this.childOf(parent, name);
    const to = this.childOf(newParent, newName);
    if (flags === RENAME_EXCHANGE) {
      // Both names stay taken, so no node loses its last name (no pin); each node's link moves to the other name.
      const a = this.inoAt(parent, name, from);
      const b = this.inoAt(newParent, newName, to);
      this.view.exchange(from, to);
      if (a !== undefined && b !== undefined && a !== b) {
        this.nodes.renamed(a, parent, name, newParent, newName);
        this.nodes.renamed(b, newParent, newName, parent, name);
      }
      this.session.replyErr(slot, 0);
      return;
    }
    if (flags & ~RENAME_NOREPLACE) {
      // RENAME_WHITEOUT (overlayfs's) needs whiteouts the kernel can see; the kernel refuses EXCHANGE|NOREPLACE itself.
      this.session.replyErr(slot, EINVAL);
      return;
    }
    const src = this.inoAt(parent, name, from);
    const dst = this.inoAt(newParent, newName, to);
    if (flags & RENAME_NOREPLACE && dst !== undefined) {
      this.session.replyErr(slot, EEXIST);
      return;
    }
    const pinned = dst !== undefined && dst !== src && this.pin(dst, to);
    try {
      this.view.rename(from, to);
    } catch (e) {
      if (pinned) this.unpin(dst!);
      throw e;
    }
    if (src !== undefined && src !== dst) {
      if (dst !== undefined) this.nodes.unlinked(dst, newParent, newName);
      this.nodes.renamed(src, parent, name, newParent, newName);
    }
    this.session.replyErr(slot, 0);
  }

  /**
   * Opens a pin on node `ino` at `path` when the kernel holds the node and
   * it is a regular file with one link (open handles do not count: they
   * may be released before the racing open arrives). True when it did.
   */
  private pin(ino: number, path: string): boolean {
    if (!this.nodes.get(ino) || this.pins.has(ino)) return false;
    try {
      const st = this.view.stat(path, false);
      if ((st.mode & S_IFMT) !== S_IFREG || st.nlink !== 1) return false;
      this.pins.set(ino, this.view.open(path, C.O_RDONLY));
      return true;
    } catch {
      return false; // not pinned: an open racing the rename may fail with ENOENT
    }
  }

  private unpin(ino: number): void {
    const fh = this.pins.get(ino);
    if (fh === undefined) return;
    this.pins.delete(ino);
    this.view.closeAsync(fh).catch(() => {});
  }

  // ---------------------------------------------------------------- files

  /** Open-reply flags for a file just opened as `fh` on node `ino`: keep the page cache when unchanged since the last open. */
  private openFlags(ino: number, fh: number): number {
    const node = this.nodes.get(ino);
    if (!node) return 0;
    node.open++;
    if (this.opts.pageCache === "never") return 0;
    const stamp = cacheStamp(this.view.fstat(fh));
    const keep = node.cacheStamp === stamp;
    node.cacheStamp = stamp;
    return keep ? OpenReplyFlag.keepCache : 0;
  }

  /**
   * Before a write or setattr of node `ino` that arrives from the kernel:
   * the node when its cache stamp is still the file's (nothing but this
   * kernel changed the file since its last open), else undefined. The kernel
   * applies such a change to its own page cache as well (write-through, no
   * writeback cache), so `keptThroughKernel` may move the stamp on and the
   * next open keeps those pages, as a read after write on ext4 would.
   */
  private stampedNode(ino: number | undefined, fh: number): FuseNode | undefined {
    if (ino === undefined || this.opts.pageCache === "never") return undefined;
    const node = this.nodes.get(ino);
    if (node?.cacheStamp === undefined) return undefined;
    return node.cacheStamp === cacheStamp(this.statOf(ino, fh)) ? node : undefined;
  }

  /** After the change `stampedNode` was asked about succeeded: the stamp of its result `st`. */
  private keptThroughKernel(node: FuseNode | undefined, st: InodeStat): void {
    if (node) node.cacheStamp = cacheStamp(st);
  }

  private open(slot: number, ino: number, flags: number): void {
    // The kernel resolved O_CREAT/O_EXCL already (create is its own request); O_TRUNC comes as a setattr first.
    const f = flags & ~(C.O_CREAT | C.O_EXCL | C.O_NOCTTY | C.O_TRUNC);
    const path = this.nodes.path(ino);
    let fh: number;
    if (path !== null) fh = this.view.open(path, f);
    else {
      // No name left (unlinked or renamed over since the kernel looked it up, or opened through
      // /proc/PID/fd): open the same file through a handle that keeps it alive.
      const h = this.pins.get(ino) ?? this.handleOf(ino);
      if (h === undefined) throw new FsError("ENOENT", "open");
      fh = this.view.reopen(h, f);
    }
    this.files.set(fh, ino);
    if ((f & 3) !== C.O_RDONLY) this.writerUid.set(fh, this.session.ctx[0]!);
    // A read-only handle has nothing to commit at close: no FLUSH request for it (one round trip less per open).
    const noflush = (f & 3) === C.O_RDONLY ? OpenReplyFlag.noflush : 0;
    if (!this.session.replyOpen(slot, fh, this.openFlags(ino, fh) | noflush)) this.dropHandle(ino, fh, true);
  }

  private create(slot: number, parent: number, name: string, mode: number, flags: number): void {
    const path = this.childOf(parent, name);
    const fh = this.view.open(path, (flags & ~C.O_NOCTTY) | C.O_CREAT, mode & 0o7777);
    let st: InodeStat;
    try {
      st = this.ownToCaller(path, parent, this.view.fstat(fh));
    } catch (e) {
      this.view.close(fh);
      throw e;
    }
    this.answerCreate(slot, fh, st, this.nodes.looked(st.ino, parent, name, false), (flags & 3) !== C.O_RDONLY);
  }

  /**
   * Answers a create or tmpfile: node `node` (stat `st`, its lookup count
   * already raised) open as handle `fh` (for writing when `writable`). When
   * the kernel is gone, closes the handle and drops the count again.
   */
  private answerCreate(slot: number, fh: number, st: InodeStat, node: FuseNode, writable: boolean): void {
    this.files.set(fh, st.ino);
    if (writable) this.writerUid.set(fh, this.session.ctx[0]!);
    node.open++;
    node.cacheStamp = cacheStamp(st);
    this.fill(0, st);
    if (!this.session.replyCreate(slot, this.opts.timeouts.entry, this.opts.timeouts.attr, fh, 0)) {
      this.dropHandle(st.ino, fh, true);
      this.forgetNode(st.ino, 1);
    }
  }

  /**
   * open(O_TMPFILE) in directory node `parent` (FUSE_TMPFILE): a file with no
   * name (`View.openTmpfile`), owned by the caller as a create is, answered as
   * a create: an entry with nlink 0 and an open handle. linkat(2) names it
   * (`link`); without that it is gone at its last close.
   */
  private tmpfile(slot: number, parent: number, mode: number, flags: number): void {
    const fh = this.view.openTmpfile(this.pathOf(parent), flags & (3 | C.O_APPEND | C.O_EXCL), mode & 0o7777);
    let st: InodeStat;
    try {
      st = this.ownBy(this.view.fstat(fh), parent, {
        chown: (u, g) => this.view.fchown(fh, u, g),
        chmod: (m) => this.view.fchmod(fh, m),
        stat: () => this.view.fstat(fh),
      });
    } catch (e) {
      this.view.close(fh);
      throw e;
    }
    this.answerCreate(slot, fh, st, this.nodes.held(st.ino), true);
  }

  private read(slot: number, fh: number, off: number, size: number): void {
    if (size > this.stats.maxRead) this.stats.maxRead = size;
    if (this.readBuf.length < size) this.readBuf = Buffer.allocUnsafe(Math.max(size, 128 << 10));
    const n = this.view.read(fh, this.readBuf, 0, size, off);
    this.session.replyBuf(slot, this.readBuf, 0, n);
  }
  private write(slot: number, fh: number, off: number, size: number, at: number, copy: Buffer | null, kill: boolean): void {
    this.stats.writes++;
    if (size > this.stats.maxWrite) this.stats.maxWrite = size;
    let killed = false;
    if (kill && this.files.has(fh)) {
      // KILLPRIV_V2: the writer lacks CAP_FSETID; the check `killSgid` adds is part of killPrivs.
      killed = this.killPrivs(this.view.fstat(fh), false, (m) => this.view.fchmod(fh, m));
      this.sgidChecked.add(fh);
    } else if (!this.sgidChecked.has(fh) && this.files.has(fh)) {
      this.sgidChecked.add(fh);
      if (size > 0) killed = this.killSgidOf(fh, this.view.fstat(fh));
    }
    const data = copy ?? this.session.recv;
    const ino = this.files.get(fh);
    const node = this.stampedNode(ino, fh);
    const n = this.view.write(fh, data, copy ? 0 : at, size, off);
    if (this.opts.pageCache !== "never") this.primer.wrote(fh, ino);
    if (node) this.keptThroughKernel(node, this.view.fstat(fh));
    const reply = () => {
      if (killed && ino !== undefined) this.replyAfterAttrsDropped(ino, () => this.session.replyWrite(slot, n));
      else this.session.replyWrite(slot, n);
    };
    // A writer faster than its file's commits waits here (the loop goes on serving everyone else).
    let throttle: Promise<void> | null = null;
    try {
      throttle = this.view.writeThrottle(fh);
    } catch {
      /* the bytes are written: answer now */
    }
    if (throttle) {
      this.stats.throttled++;
      throttle.then(reply).catch(() => this.stats.internalErrors++);
    } else reply();
  }

  /**
   * FLUSH: commits handle `fh` off the loop, then starts filling the kernel's
   * page cache of a small file just written (cacheprime.ts; the store goes on
   * after the answer, and requests that would change the file wait for it).
   */
  private async flush(ino: number, fh: number): Promise<void> {
    await this.view.flushAsync(fh);
    // (A file with no name, O_TMPFILE or unlinked, is never opened again: its pages are not worth storing.)
    if (this.nodes.path(ino) !== null) this.primer.flushed(ino, fh, this.nodes.get(ino)?.open ?? 0);
  }

  private release(slot: number, ino: number, fh: number): void {
    this.dropHandle(ino, fh, false);
    this.later("release", slot, this.view.closeAsync(fh));
  }

  /** Forgets handle `fh` of node `ino`; closes it in the view too when `close`. */
  private dropHandle(ino: number, fh: number, close: boolean): void {
    this.files.delete(fh);
    this.sgidChecked.delete(fh);
    this.writerUid.delete(fh);
    this.primer.forget(fh);
    const node = this.nodes.get(ino);
    if (node && node.open > 0) node.open--;
    if (close) this.view.closeAsync(fh).catch(() => {});
  }

  /**
   * As fallocate(2) (`View.fallocate`: modes 0, KEEP_SIZE and
   * PUNCH_HOLE|KEEP_SIZE; the kernel refuses other modes before asking).
   * The kernel updates its page cache itself (it drops a punched range), so
   * the pages it holds stay valid: the cache stamp moves on as for a write.
   */
  private fallocate(slot: number, fh: number, mode: number, off: number, len: number): void {
    const ino = this.files.get(fh);
    const node = this.stampedNode(ino, fh);
    this.view.fallocate(fh, mode, off, len);
    const st = this.view.fstat(fh);
    // As a write: a caller outside the file's group clears a set-group-ID without group execute (tmpfs
    // does, through file_modified); set-user-ID was cleared before the request, by the kernel's chmod or,
    // with KILLPRIV_V2, by the SETATTR with nothing to set (mayKillEmpty). (A chmod moves ctime only, so
    // `st` still carries the stamp.)
    const killed = ino !== undefined && this.killSgidOf(fh, st);
    if (node) this.keptThroughKernel(node, st);
    if (killed) this.replyAfterAttrsDropped(ino!, () => this.session.replyErr(slot, 0));
    else this.session.replyErr(slot, 0);
  }

  /** lseek(2) SEEK_DATA/SEEK_HOLE (`View.seekData`); the kernel answers SEEK_SET, SEEK_CUR and SEEK_END itself. */
  private lseek(slot: number, fh: number, off: number, whence: number): void {
    if (whence !== SEEK_DATA && whence !== SEEK_HOLE) throw new FsError("EINVAL", "lseek");
    this.session.replyLseek(slot, this.view.seekData(fh, off, whence === SEEK_DATA));
  }

  // ---------------------------------------------------------------- directories

  private opendir(slot: number, ino: number): void {
    const fh = this.nextDir++;
    this.dirs.set(fh, this.listing(ino));
    if (!this.session.replyOpen(slot, fh, 0)) this.dirs.delete(fh);
  }

  /** ".", ".." and the entries of directory `ino`. */
  private listing(ino: number): DirHandle {
    const path = this.pathOf(ino);
    const self = this.view.stat(path, false);
    if ((self.mode & S_IFMT) !== S_IFDIR) throw new FsError("ENOTDIR", "opendir", path);
    const up = path === "/" ? self : this.view.stat(path.slice(0, path.lastIndexOf("/")) || "/", false);
    const d: DirHandle = { ino, self, fresh: true, names: [".", ".."], inos: [self.ino, up.ino], types: [S_IFDIR, S_IFDIR] };
    for (const e of this.view.readdir(path)) {
      d.names.push(e.name);
      d.inos.push(e.ino);
      d.types.push(e.type);
    }
    return d;
  }

  private readdir(slot: number, ino: number, fh: number, off: number, size: number, plus: boolean): void {
    let d = this.dirs.get(fh);
    if (!d) throw new FsError("EBADF", "readdir");
    if (off === 0 && !d.fresh) {
      // rewinddir(3): list again, as a local filesystem shows entries made since opendir.
      d = this.listing(ino);
      this.dirs.set(fh, d);
    }
    d.fresh = false;
    // A dirent takes at least 24 bytes (readdirplus: 152), so no more than this many can fit.
    const max = Math.min(d.names.length - off, Math.ceil(size / (plus ? 152 : 24)), plus ? this.rec.length : Infinity);
    const names = d.names.slice(off, off + max);
    if (!plus) {
      this.session.replyDir(slot, size, off, names, d.inos.slice(off, off + max), d.types.slice(off, off + max), false, 0, 0);
      return;
    }
    // One read of the store for the whole batch where the view can (entries removed since the listing: null, sent without attributes).
    let many: (InodeStat | null)[] | undefined;
    try {
      many = this.view.statManyAt(ino, names);
    } catch {
      many = names.map(() => null); // the directory was removed since opendir: entries without attributes
    }
    const stats: (InodeStat | null)[] = names.map((name, i) => {
      if (name === "." || name === "..") return null;
      if (many) return many[i]!;
      try {
        return this.statChild(ino, name);
      } catch {
        return null;
      }
    });
    stats.forEach((st, i) => (st ? this.fill(i, st) : this.rec[i]!.fill(0)));
    const n = this.session.replyDir(slot, size, off, names, d.inos.slice(off, off + max), d.types.slice(off, off + max), true, this.opts.timeouts.entry, this.opts.timeouts.attr);
    for (let i = 0; i < n; i++) if (stats[i]) this.nodes.looked(stats[i]!.ino, ino, names[i]!, (stats[i]!.mode & S_IFMT) === S_IFDIR);
  }

  /** Handles still open (files + directories). */
  openHandles(): number {
    return this.files.size + this.dirs.size;
  }
}

export { ROOT_ID, ENOENT, ENODATA };
