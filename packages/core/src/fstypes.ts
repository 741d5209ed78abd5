/**
 * Types and constants of the `FsCore` API (re-exported by fscore.ts):
 * stat fields, directory entries, time values, options, file size and
 * write-throttle limits, fallocate(2) mode bits, O_TMPFILE.
 */
import { constants as C } from "node:fs";
import type { Credentials } from "./access.js";

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
