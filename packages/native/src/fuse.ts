/**
 * The libfuse 3 low-level binding (`build/Release/agentfs_fuse.node`, Linux
 * only): a FUSE session served on the Node event loop, without threads.
 *
 * Requests arrive through one `dispatch(op, slot, ...args)` function, called
 * synchronously on the loop thread; `op` indexes `opNames`. A request with
 * `slot >= 0` must be answered exactly once, now or later, by one of the
 * `reply*` methods with that slot (slot -1: no answer is expected — `init`,
 * `forget`, `exit`). Replies to a slot already answered, or after `unmount`,
 * are ignored. Attributes travel through `session.attr` (ATTR_FIELDS doubles
 * per record, see `AttrField`), the caller of the request being dispatched
 * is in `session.ctx` ([uid, gid, pid, umask]), and write payloads are
 * slices of `session.recv` (valid only during the dispatch call).
 *
 * Arguments per op (after `op` and `slot`; inode numbers are FUSE node ids,
 * `fh` a handle number or -1, times in s + ns):
 * - init: capable, want, maxWrite (bytes), maxReadahead (bytes), protoMinor
 * - lookup: parent, name · forget: ino, nlookup · getattr: ino, fh
 * - setattr: ino, toSet (`setAttr` bits), fh, mode, uid, gid, size, atimeS, atimeNs, mtimeS, mtimeNs
 * - readlink: ino · mknod: parent, name, mode, rdev · mkdir: parent, name, mode
 * - unlink / rmdir: parent, name · symlink: target, parent, name
 * - rename: parent, name, newParent, newName, flags (RENAME_NOREPLACE 1, RENAME_EXCHANGE 2)
 * - link: ino, newParent, newName · open / opendir: ino, flags
 * - read: ino, fh, offset, size · write: ino, fh, offset, size, recvOffset, copy (Buffer when recvOffset is -1), writepage,
 *   killSuidgid (the kernel's FUSE_WRITE_KILL_SUIDGID: the writer lacks CAP_FSETID; only with `killprivV2()`)
 * - flush / release / releasedir: ino, fh · fsync / fsyncdir: ino, fh, datasync
 * - readdir / readdirplus: ino, fh, offset, size · statfs: ino
 * - setxattr: ino, name, value (Buffer), flags · getxattr: ino, name, size · listxattr: ino, size
 * - removexattr: ino, name · access: ino, mask · create: parent, name, mode, flags
 * - tmpfile: parent, mode, flags — open(O_TMPFILE) in directory `parent` (FUSE_TMPFILE, which libfuse
 *   3.14 does not know; the binding passes it through libfuse as a create): answer with `replyCreate`
 * - fallocate: ino, fh, mode, offset, length · lseek: ino, fh, offset, whence
 * - exit: (none) — the kernel ended the session (unmounted from outside); call `unmount` to free it.
 */
import { createRequire } from "node:module";
import { fileURLToPath } from "node:url";
import path from "node:path";

const require = createRequire(import.meta.url);
const pkgRoot = path.resolve(path.dirname(fileURLToPath(import.meta.url)), "..");

/** Field indices of one attribute record in `FuseSession.attr` (times in s + ns, size in bytes, blocks in 512-byte units). */
export const AttrField = {
  ino: 0, mode: 1, nlink: 2, uid: 3, gid: 4, rdev: 5, size: 6, blocks: 7, blksize: 8,
  atime: 9, atimeNs: 10, mtime: 11, mtimeNs: 12, ctime: 13, ctimeNs: 14,
} as const;

/** Open-reply flags for `replyOpen`/`replyCreate` (fuse_file_info bits; noflush: close(2) sends no FLUSH for this handle). */
export const OpenReplyFlag = { directIo: 1, keepCache: 2, nonseekable: 4, cacheReaddir: 8, noflush: 16 } as const;

/** Dispatch function of a session: `op` indexes `FuseBinding.opNames`. Must not throw (an exception answers EIO and is rethrown as uncaught). */
export type FuseDispatch = (op: number, slot: number, ...args: any[]) => void;

/** Configuration of a session's INIT answer. */
export interface FuseSessionConfig {
  /** Largest write request in bytes (capped by libfuse to 1 MiB). */
  maxWrite?: number;
  /** Largest read-ahead in bytes (capped by the kernel's offer). */
  maxReadahead?: number;
  /** FUSE_CAP_* bits to ask for when the kernel offers them. */
  wantSet?: number;
  /** FUSE_CAP_* bits to turn off (splice is always off). */
  wantClear?: number;
  /** Timestamp granularity in ns (default 1). */
  timeGran?: number;
  /** Kernel's max_background (pending async requests); 0 keeps libfuse's default. */
  maxBackground?: number;
  /** Kernel's congestion_threshold; 0 keeps libfuse's default. */
  congestionThreshold?: number;
  /** When false (default), getxattr of `security.capability` is answered ENODATA inside the binding, without a dispatch. */
  fileCapabilities?: boolean;
  /**
   * After serving a burst, keep reading /dev/fuse for up to this many µs
   * (outside JS, after promise jobs ran) before sleeping in epoll; adaptive:
   * mostly empty polls pause it for the next 32 bursts. 0 (default): never.
   */
  spinUs?: number;
  /**
   * Ask for FUSE_HANDLE_KILLPRIV_V2 (libfuse 3.14 cannot: the binding sets
   * it in the INIT reply when the kernel offers it). Then the daemon clears
   * set-user-ID/set-group-ID itself on write, truncate and chown (the
   * KILL_SUIDGID flags), and the kernel stops asking getxattr of
   * `security.capability` before every write(2). Default false.
   */
  killprivV2?: boolean;
}

/** A libfuse 3 low-level session (`new FuseSession(args, dispatch, config)`; args as libfuse's argv: ["agentfs", "-o", "opt,opt"]). */
export interface FuseSession {
  /** Receive buffer: write payloads are `recv.subarray(recvOffset, recvOffset + size)` during the dispatch. */
  readonly recv: Buffer;
  /** Shared attribute records, `attrRecords` × `attrFields` doubles. */
  readonly attr: Float64Array;
  /** Caller of the request being dispatched: [uid, gid, pid, umask]. */
  readonly ctx: Int32Array;
  readonly attrFields: number;
  readonly attrRecords: number;
  /** Mounts on `mountpoint` (as fuse_session_mount) and starts serving on the event loop. Errors: ENOENT, ENOTDIR, EIO (the kernel or fusermount3 refused; libfuse printed why). */
  mount(mountpoint: string): void;
  /**
   * Stops serving, answers pending requests with EIO, unmounts (lazily as root) and frees the session. While a
   * notifyAsync/notifyStoreAsync batch still runs, the unmount and free wait for its end: wait for their
   * callbacks first for the mount to be gone on return. Safe to call twice.
   */
  unmount(): void;
  replyErr(slot: number, errno: number): void;
  replyNone(slot: number): void;
  /** Entry from attr record 0 (ino 0: negative entry cached `entryTimeout` s). Timeouts in seconds. False when the kernel did not take it (the caller was interrupted: no lookup reference). */
  replyEntry(slot: number, entryTimeout: number, attrTimeout: number): boolean;
  replyAttr(slot: number, attrTimeout: number): void;
  /** Returns false when the opener was interrupted (the kernel will never release `fh`). */
  replyCreate(slot: number, entryTimeout: number, attrTimeout: number, fh: number, flags: number): boolean;
  /** Returns false when the opener was interrupted (the kernel will never release `fh`). */
  replyOpen(slot: number, fh: number, flags: number): boolean;
  replyWrite(slot: number, written: number): void;
  replyBuf(slot: number, buf: Uint8Array, offset: number, length: number): void;
  replyReadlink(slot: number, target: string): void;
  /** [bsize, frsize, blocks, bfree, bavail, files, ffree, favail, fsid, flag, namemax] */
  replyStatfs(slot: number, v: number[]): void;
  replyXattr(slot: number, size: number): void;
  replyLseek(slot: number, offset: number): void;
  /**
   * Directory entries; entry i gets offset `firstOffset + i + 1`. Plain: `inos` and `types` (S_IFMT bits).
   * Plus: attr record i per entry; a record with ino 0 sends no attributes and takes no lookup reference
   * (the dirent then carries `inos[i]` and `types[i]`). Returns how many entries fit in `size` bytes.
   */
  replyDir(slot: number, size: number, firstOffset: number, names: string[], inos: number[], types: number[] | null, plus: boolean, entryTimeout: number, attrTimeout: number): number;
  /**
   * Drops the kernel's dentries (`entries`: [parent, name]) and the
   * attributes and cached data of `inodes` (with `attrsOnly`, only their
   * attributes: the page cache stays), on a libuv pool thread (a
   * notification waits for kernel locks that a process may hold while it
   * waits for a reply from the loop, so it must never run on the loop).
   * Calls `done` with the number of notifications the kernel took (a name
   * or inode it did not cache counts as taken). Returns false, and never
   * calls `done`, when the session is not serving.
   */
  notifyAsync(entries: [number, string][], inodes: number[], done: (taken: number) => void, attrsOnly?: boolean): boolean;
  /**
   * FUSE_NOTIFY_STORE, written on a libuv pool thread (it locks the pages
   * it fills, which a process may hold while it waits for a reply from the
   * loop): puts a copy of `data` into the kernel's page cache of inode
   * `ino` at byte `offset`; the pages it covers whole, or up to the end of
   * the file, become up to date, so reads of them need no READ request.
   * It extends the kernel's file size when it reaches past it. Calls `done`
   * with 0 or a negative errno (-ENOENT: the kernel has no such inode).
   * Returns false, and never calls `done`, when the session is not serving.
   */
  notifyStoreAsync(ino: number, offset: number, data: Buffer, done: (result: number) => void): boolean;
  /** Requests dispatched and not answered yet. */
  pending(): number;
  /** [polls after a burst, polls that found a request] (`spinUs`). */
  spinStats(): [number, number];
  /** Whether FUSE_HANDLE_KILLPRIV_V2 was negotiated (see `killprivV2` in the config); false before INIT was answered. */
  killprivV2(): boolean;
  /** getxattr("security.capability") requests answered inside the binding (`fileCapabilities` false). */
  capabilityProbes(): number;
}

/** The loaded binding. */
export interface FuseBinding {
  FuseSession: new (args: string[], dispatch: FuseDispatch, config: FuseSessionConfig) => FuseSession;
  /** Op names by op code ("init", "lookup", …). */
  opNames: string[];
  /** FUSE_CAP_* bits by name without the prefix (ASYNC_READ, WRITEBACK_CACHE, …). */
  caps: Record<string, number>;
  /**
   * FUSE_SET_ATTR_* bits by name without the prefix (MODE, UID, GID, SIZE,
   * ATIME, MTIME, ATIME_NOW, MTIME_NOW, CTIME), and KILL_SUIDGID: the
   * kernel's FATTR_KILL_SUIDGID (a truncate by a caller without CAP_FSETID,
   * or a chown of a non-directory; only with `killprivV2()`).
   */
  setAttr: Record<string, number>;
  /** Version of the libfuse the binding runs against ("3.14.0"). */
  libfuseVersion: string;
}

let binding: FuseBinding | undefined;

/**
 * Loads the libfuse 3 binding. Errors: ENOSYS off Linux; the loader's error
 * when it was not built (`pnpm --filter @agentfs/native build:addon`; needs
 * libfuse3-dev) or libfuse3.so.3 is missing.
 */
export function loadFuseBinding(): FuseBinding {
  if (binding) return binding;
  if (process.platform !== "linux") {
    throw Object.assign(new Error("ENOSYS: the FUSE binding is built on Linux only"), { code: "ENOSYS", errno: -38, syscall: "fuse" });
  }
  binding = require(path.join(pkgRoot, "build", "Release", "agentfs_fuse.node")) as FuseBinding;
  return binding;
}
