/**
 * Credentials and the permission rules `FsCore` applies, as the Linux
 * kernel does for a FUSE mount with default_permissions: the owner / group /
 * other mode bits (root bypasses all but execute on non-directories), the
 * sticky-directory rule, and who may change mode, owner and times.
 *
 * Pure functions of a caller's `Credentials` and an inode row: they throw
 * `StoreError`s (the errno name as `code`), which `FsCore` turns into
 * `FsError`s naming the system call.
 */
import { StoreError } from "./errors.js";
import type { InodeRow } from "./manifest.js";
import { S_IFDIR, S_IFMT, S_ISGID, S_ISVTX } from "./modes.js";

/** The caller's identity for permission checks (as the fsuid/fsgid of a process). */
export interface Credentials {
  /** User ID (as the fsuid); 0 is root, who passes every check but execute on files without an x bit. */
  uid: number;
  /** Primary group ID (as the fsgid); also the group of new files outside set-group-ID directories. */
  gid: number;
  /** Supplementary groups. */
  groups?: number[];
}

/** Access bits of `mayAccess`/`needAccess` (as access(2)'s R_OK, W_OK, X_OK; X_OK is search on a directory). */
export const R_OK = 4;
/** See `R_OK`. */
export const W_OK = 2;
/** See `R_OK`. */
export const X_OK = 1;

/** This process's identity: uid, gid and supplementary groups (getuid(2), getgid(2), getgroups(2); 0 where unsupported). */
export function processCredentials(): Credentials {
  return { uid: process.getuid?.() ?? 0, gid: process.getgid?.() ?? 0, groups: process.getgroups?.() ?? [] };
}

/** The process's file mode creation mask (permission bits), read without changing it (umask(2) twice). */
export function processUmask(): number {
  const u = process.umask(0);
  process.umask(u);
  return u;
}

/** True when `gid` is the caller's group or one of its supplementary groups. */
export function inGroup(cred: Credentials, gid: number): boolean {
  return cred.gid === gid || (cred.groups ?? []).includes(gid);
}

/**
 * Whether `cred` may access `row` for every bit of `want` (a mix of R_OK,
 * W_OK, X_OK), as the kernel's generic_permission: the owner's, group's or
 * others' bits of `row.mode`, whichever class the caller falls in first.
 * Root (uid 0) may do anything, except execute a non-directory that has no
 * execute bit at all.
 */
export function mayAccess(cred: Credentials, row: InodeRow, want: number): boolean {
  const { uid } = cred;
  if (uid === 0) {
    if (want & X_OK && (row.mode & S_IFMT) !== S_IFDIR) return (row.mode & 0o111) !== 0;
    return true;
  }
  let bits: number;
  if (uid === row.uid) bits = (row.mode >> 6) & 7;
  else if (inGroup(cred, row.gid)) bits = (row.mode >> 3) & 7;
  else bits = row.mode & 7;
  return (bits & want) === want;
}

/** As `mayAccess`, throwing when denied. Errors: EACCES. */
export function needAccess(cred: Credentials, row: InodeRow, want: number): void {
  if (!mayAccess(cred, row, want)) throw new StoreError("EACCES", "permission denied");
}

/**
 * The sticky-directory rule for removing or renaming `victim` out of `dir`
 * (unlink(2), rmdir(2), rename(2)): when `dir` has S_ISVTX, only root, the
 * directory's owner or the victim's owner may. Errors: EPERM.
 */
export function checkSticky(cred: Credentials, dir: InodeRow, victim: InodeRow): void {
  const { uid } = cred;
  if (uid !== 0 && dir.mode & S_ISVTX && uid !== dir.uid && uid !== victim.uid) throw new StoreError("EPERM", "sticky directory");
}

/**
 * The permission bits chmod(2) of `row` to `mode` sets for `cred`: `mode &
 * 0o7777`, without set-group-ID when a non-root caller is not in the file's
 * group (as Linux). Errors: EPERM when the caller is neither root nor the
 * owner.
 */
export function chmodBits(cred: Credentials, row: InodeRow, mode: number): number {
  if (cred.uid !== 0 && cred.uid !== row.uid) throw new StoreError("EPERM", "only the owner may chmod");
  let bits = mode & 0o7777;
  if (cred.uid !== 0 && !inGroup(cred, row.gid)) bits &= ~S_ISGID;
  return bits;
}

/**
 * Whether `cred` may chown(2) `row` to `uid`/`gid` (-1: unchanged). Only
 * root may change the owner; the owner may change the group to one of their
 * own groups. Errors: EPERM.
 */
export function checkChown(cred: Credentials, row: InodeRow, uid: number, gid: number): void {
  if (cred.uid === 0) return;
  if (uid !== -1 && uid !== row.uid) throw new StoreError("EPERM", "only root may change the owner");
  if (cred.uid !== row.uid && (gid !== -1 || uid !== -1)) throw new StoreError("EPERM", "only the owner may change the group");
  if (gid !== -1 && gid !== row.gid && !inGroup(cred, gid)) throw new StoreError("EPERM", "not a member of that group");
}

/**
 * Whether `cred` may set the times of `row` (utimensat(2)): root and the
 * owner may set any time; others only "now" (or omit), and need write
 * permission. `onlyNow`: both times are UTIME_NOW or UTIME_OMIT.
 * Errors: EPERM (explicit times, not the owner), EACCES.
 */
export function checkSetTimes(cred: Credentials, row: InodeRow, onlyNow: boolean): void {
  if (cred.uid === 0 || cred.uid === row.uid) return;
  if (!onlyNow) throw new StoreError("EPERM", "only the owner may set times");
  needAccess(cred, row, W_OK);
}
