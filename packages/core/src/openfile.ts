/**
 * The in-process state of files open in an `FsCore` view: one `OpenInode`
 * per inode with open descriptors (its working buffer of uncommitted
 * writes, pending times, cached extents, asynchronous-commit bookkeeping)
 * and one `Handle` per descriptor.
 */
import type { Extent, OpenContent } from "./content.js";
import type { InodeRow } from "./manifest.js";

/** In-process state of an inode that has open file descriptors. */
export interface OpenInode {
  /** Inode number. */
  ino: number;
  /** Descriptors (and in-progress truncates) holding it; released at 0. */
  refs: number;
  /** Working buffer over the committed extents, created on the first write; null while only read. */
  content: OpenContent | null;
  /** Pending mtime/ctime of uncommitted writes (ns). */
  mtime: bigint | null;
  /** Last-known row, used after the inode is unlinked while open. */
  orphan: InodeRow | null;
  /** An O_TMPFILE inode opened without O_EXCL and not linked yet: `flink` may name it (Linux's I_LINKABLE). */
  linkable: boolean;
  /** Cached decoded extents of the committed version, valid for `extGen`. */
  ext: Extent[] | null;
  /** The view generation `ext` was decoded in. */
  extGen: number;
  /** Not read anywhere at present. */
  extSize: number;
  /** Settles when every asynchronous commit queued so far for this inode is done (never rejects). */
  tail: Promise<void> | null;
  /** Bumped by utimes/futimens: an asynchronous commit keeps an explicit time set while it ran. */
  timesSeq: number;
  /** Hex hashes of objects an asynchronous commit in flight has stored but no inode references yet (spared by gc). */
  held: Set<string> | null;
  /** A write-behind commit (`FsCore.commitBehind`) of it failed: no more of them while it is open (flush, fsync and close still commit, and report). */
  behindFailed: boolean;
}

/** A fresh `OpenInode` for `ino`: no references, buffer, pending time or cache yet. */
export function newOpenInode(ino: number): OpenInode {
  return { ino, refs: 0, content: null, mtime: null, orphan: null, linkable: false, ext: null, extGen: -1, extSize: 0, tail: null, timesSeq: 0, held: null, behindFailed: false };
}

/** An open file description (as the kernel's struct file): what open(2) returned a descriptor for. */
export interface Handle {
  /** Descriptor number, private to the view. */
  fd: number;
  /** Inode number. */
  ino: number;
  /** Path it was opened with. */
  path: string;
  /** Opened O_RDONLY or O_RDWR. */
  readable: boolean;
  /** Opened O_WRONLY or O_RDWR. */
  writable: boolean;
  /** O_APPEND: every write goes to the end. */
  append: boolean;
  /** File position in bytes (read(2)/write(2) without an offset). */
  pos: number;
  /** A directory (opened O_RDONLY, e.g. with O_DIRECTORY): read(2) fails with EISDIR. */
  isDir: boolean;
}
