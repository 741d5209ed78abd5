/**
 * `applyToLower`: writes an overlay branch's changes back onto its host
 * (lower) directory, on request only. Each regular file and symlink is
 * replaced atomically (written and fsync'd under a private staging
 * directory `.agentfs-stage-*` in the host root first, then renamed over the
 * old one), so a reader of the host directory sees either the old or the
 * new file, never a partial one; a replaced regular file gets its user.*
 * extended attributes in staging too, so they arrive with its bytes.
 * Staging everything before the first delete matters: the branch may still
 * read a renamed lower file from its old host place. The
 * operation as a whole is not atomic: an error stops it midway with the
 * entries before it applied (the report of a retry lists the rest).
 */
import { closeSync, chmodSync, ftruncateSync, chownSync, fsyncSync, lchownSync, lutimesSync, mkdirSync, openSync, renameSync, rmSync, symlinkSync, utimesSync, writeSync } from "node:fs";
import { join } from "node:path";
import { randomBytes } from "node:crypto";
import { constants as osConstants } from "node:os";
import { getAttributeSync, listAttributesSync, removeAttributeSync, setAttributeSync } from "@napi-rs/xattr";
import { StoreError, type ErrnoName } from "./errors.js";
import { FsCore, S_IFDIR, S_IFLNK, S_IFMT, S_IFREG, type InodeStat } from "./fscore.js";
import { diffLower, type DiffEntry } from "./maintenance.js";
import { hostTimeSec } from "./promises.js";
import type { Store } from "./store.js";
import type { HostMknod } from "./hosttree.js";

/** What `applyToLower` did. Paths are tree paths ("/a/b"); `skipped` says why an aspect was not applied. */
export interface ApplyReport {
  /** The changes that were applied, as `diffLower` listed them before. */
  applied: DiffEntry[];
  /**
   * Aspects that cannot be written to the host: "xattrs" for extended
   * attributes outside the user.* namespace (trusted.*, security.*), or
   * user.* ones on a host filesystem without support for them (ENOTSUP);
   * "owner" when not root; "other" for FIFOs, sockets and device nodes
   * when no `mknod` was given.
   */
  skipped: Array<{ path: string; reason: string }>;
  /** True when the branch was reset to read the host directory afresh (`reset` option). */
  reset: boolean;
}

/**
 * Applies overlay branch `branch`'s changes against its host directory (as
 * `diffLower` lists them) to the host directory: deletes what was deleted
 * (recursively), creates directories, replaces regular files and symlinks
 * atomically per file (temp + rename, fsync'd), sets permission bits, owner
 * (when running as root), times and user.* extended attributes (added,
 * changed and removed ones: on a replaced file they are set before the
 * rename; on an entry changed in place one by one, which needs write
 * permission on it when not root, else EACCES as setfattr(1) would get).
 * Hard links made in the branch become separate files on the host. With
 * `reset`, the branch is then pointed at a new empty layer over its overlay
 * root (O(1)), so it reads the updated host directory and its `diffLower`
 * is empty; snapshots keep their layers. FIFOs, sockets and device nodes
 * are made in staging with `opts.mknod` (`HostMknod`: Node has no
 * mknod(2)) and renamed into place like files; without it they are
 * reported as skipped ("other").
 *
 * Mirrors nothing in POSIX; host syscalls used: unlink/rmdir (rm -r),
 * mkdir, open(O_CREAT|O_EXCL)/write/fsync/rename, symlink, chmod, chown,
 * utimensat, llistxattr/lgetxattr/lsetxattr/lremovexattr. Errors: ENOENT
 * (no such branch), EINVAL (not an overlay branch), and any host errno
 * (EACCES, ENOSPC, …) as a StoreError-like Node error from the host
 * operation that failed (a StoreError with the errno name for the xattr
 * calls).
 */
export function applyToLower(store: Store, branch: string, opts: { reset?: boolean; mknod?: HostMknod } = {}): ApplyReport {
  const lower = store.chainOf({ branch }).lower;
  if (!lower) throw new StoreError("EINVAL", `branch '${branch}' is not an overlay (it has no lower directory)`);
  const changes = diffLower(store, { branch });
  const core = new FsCore(store, { branch }, { cred: { uid: 0, gid: 0, groups: [] }, umask: 0 });
  const root = lower.root;
  const host = (p: string) => (p === "/" ? root : join(root, p));
  const isRoot = (process.getuid?.() ?? -1) === 0;
  const skipped: ApplyReport["skipped"] = [];
  const dirTimes: Array<{ path: string; st: InodeStat }> = [];
  const applied: DiffEntry[] = [];

  /** Owner (as root), mode and times of tree entry `p` onto host path `to` (default its own place; a staged copy in phase 1); a directory's times are set last. */
  const setMeta = (p: string, st: InodeStat, to = host(p)) => {
    const type = st.mode & S_IFMT;
    // chown before chmod: chown clears set-user-ID/set-group-ID bits.
    if (isRoot) (type === S_IFLNK ? lchownSync : chownSync)(to, st.uid, st.gid);
    if (type !== S_IFLNK) chmodSync(to, st.mode & 0o7777);
    if (type === S_IFDIR) dirTimes.push({ path: p, st });
    else (type === S_IFLNK ? lutimesSync : utimesSync)(to, hostTimeSec(st.atimeNs), hostTimeSec(st.mtimeNs));
  };

  /** The branch's xattrs of each entry to write, read in phase 1 (as `stats`): user.* name → value, and whether it has others. */
  const xattrs = new Map<string, { user: Map<string, Buffer>; others: boolean }>();
  const readXattrs = (p: string): void => {
    const user = new Map<string, Buffer>();
    let others = false;
    for (const name of core.listxattr(p, false)) {
      if (name.startsWith("user.")) user.set(name, core.getxattr(p, name, false));
      else others = true;
    }
    xattrs.set(p, { user, others });
  };
  /**
   * Makes the user.* xattrs of host path `abs` those the branch has on `p`
   * (as `readXattrs` read them); `fresh`: `abs` was just created here (it
   * has none yet). Reports attributes that cannot be written as skipped
   * "xattrs".
   */
  const writeXattrs = (p: string, abs: string, fresh: boolean): void => {
    const { user: want, others } = xattrs.get(p)!;
    let unsupported = false;
    if (want.size || !fresh) {
      try {
        syncUserXattrs(abs, want, fresh);
      } catch (e) {
        if (!(e instanceof StoreError && e.code === "ENOTSUP")) throw e;
        unsupported = true;
      }
    }
    if (others || unsupported) skipped.push({ path: p, reason: "xattrs" });
  };

  // Phase 1: stage every new file and symlink in a private directory of the host root while the
  // host tree is still intact (the branch may read moved lower files from their old host places).
  const stage = join(root, `.agentfs-stage-${randomBytes(6).toString("hex")}`);
  mkdirSync(stage, { mode: 0o700 });
  const staged = new Map<string, string>();
  let n = 0;
  const stageEntry = (p: string): void => {
    const st = core.stat(p, false);
    const type = st.mode & S_IFMT;
    const tmp = join(stage, String(n++));
    if (type === S_IFREG) {
      const fd = openSync(tmp, "wx", 0o600);
      try {
        core.readImage(p, (data, pos) => {
          let off = 0;
          while (off < data.length) off += writeSync(fd, data, off, data.length - off, pos + off);
        }, { follow: false });
        ftruncateSync(fd, st.size); // trailing holes, without writing zeros
        writeXattrs(p, tmp, true); // before the fsync, which makes them durable with the bytes
        fsyncSync(fd);
      } finally {
        closeSync(fd);
      }
    } else if (type === S_IFLNK) {
      symlinkSync(core.readlink(p), tmp);
      writeXattrs(p, tmp, true); // (reports attributes a symlink cannot have on the host)
    } else if (type !== S_IFDIR && opts.mknod) {
      // A FIFO, socket or device node, made in staging like a file and renamed into place.
      opts.mknod(tmp, type | 0o600, st.rdev);
    } else return;
    setMeta(p, st, tmp);
    staged.set(p, tmp);
  };
  const stats = new Map<string, InodeStat>();
  try {
    for (const e of changes) {
      if (e.change === "deleted") continue;
      const st = core.stat(e.path, false);
      stats.set(e.path, st);
      readXattrs(e.path);
      const type = st.mode & S_IFMT;
      const what = e.what ?? [];
      if (e.change !== "modified" || (type === S_IFREG && what.includes("content")) || (type === S_IFLNK && what.includes("target"))) stageEntry(e.path);
    }

    // Phase 2: in path order (parents first), delete, create directories, and rename staged files into place.
    const gone: string[] = []; // paths removed from the host in this pass: their listed descendants went with them
    for (const e of changes) {
      if (e.change === "deleted" && gone.some((g) => e.path.startsWith(g + "/"))) {
        applied.push(e);
        continue;
      }
      if (e.change === "deleted" || e.change === "type-changed") {
        rmSync(host(e.path), { recursive: true, force: true });
        gone.push(e.path);
      }
      if (e.change === "deleted") {
        applied.push(e);
        continue;
      }
      const st = stats.get(e.path)!;
      const type = st.mode & S_IFMT;
      const tmp = staged.get(e.path);
      if (tmp) renameSync(tmp, host(e.path)); // atomic replacement of the host file
      else if (e.change !== "modified" && type === S_IFDIR) {
        mkdirSync(host(e.path), { mode: 0o700 });
        writeXattrs(e.path, host(e.path), true);
        setMeta(e.path, st);
      } else if (e.change === "modified") {
        if ((e.what ?? []).includes("xattrs")) writeXattrs(e.path, host(e.path), false);
        setMeta(e.path, st);
      } else skipped.push({ path: e.path, reason: "other" });
      const what = e.what ?? [];
      if (what.includes("owner") && !isRoot) skipped.push({ path: e.path, reason: "owner" });
      applied.push(e);
    }
  } finally {
    rmSync(stage, { recursive: true, force: true });
  }
  // Directory times last, deepest first: creating their children changed them.
  for (const d of dirTimes.reverse()) utimesSync(host(d.path), hostTimeSec(d.st.atimeNs), hostTimeSec(d.st.mtimeNs));
  core.closeAll();
  if (opts.reset) store.resetOverlay(branch);
  return { applied, skipped, reset: !!opts.reset };
}

/**
 * Sets and removes user.* extended attributes of the host file or directory
 * `abs` (not following a final symlink, as lsetxattr(2)) so that they are
 * exactly `want` (name → value bytes); attributes of other namespaces are
 * left alone. `fresh`: `abs` is known to have none, so nothing is listed or
 * compared. Values already equal are not rewritten. Errors: StoreError with
 * the host errno name (ENOTSUP where the host filesystem has no user.*
 * xattrs, EACCES, EPERM, ENOSPC, E2BIG, ERANGE, …; EIO for others).
 */
function syncUserXattrs(abs: string, want: Map<string, Buffer>, fresh: boolean): void {
  let have: string[] = [];
  if (!fresh) {
    try {
      have = listAttributesSync(abs).filter((n) => n.startsWith("user."));
    } catch (e) {
      const err = hostXattrError(e, "llistxattr", abs);
      if (err.code !== "ENOTSUP") throw err; // no xattr support: the host has none to remove
    }
  }
  for (const name of have) {
    if (want.has(name)) continue;
    try {
      removeAttributeSync(abs, name);
    } catch (e) {
      throw hostXattrError(e, "lremovexattr", abs);
    }
  }
  for (const [name, value] of want) {
    try {
      if (have.includes(name) && getAttributeSync(abs, name)?.equals(value)) continue;
      setAttributeSync(abs, name, value);
    } catch (e) {
      throw hostXattrError(e, "lsetxattr", abs);
    }
  }
}

/** Host errno names a host xattr call may fail with, by number (EOPNOTSUPP is ENOTSUP on Linux). */
const XATTR_ERRNOS: ErrnoName[] = ["ENOTSUP", "EACCES", "EPERM", "ENOENT", "ENOTDIR", "ENOSPC", "E2BIG", "ERANGE", "ENODATA", "EROFS", "ELOOP", "ENAMETOOLONG", "EIO"];

/**
 * An error of @napi-rs/xattr (a plain Error whose message ends in "(os error
 * N)") as a StoreError with the errno name, naming the call and path; EIO
 * when the number is not one of XATTR_ERRNOS.
 */
function hostXattrError(e: unknown, syscall: string, abs: string): StoreError {
  const msg = e instanceof Error ? e.message : String(e);
  const n = Number(/\(os error (\d+)\)/.exec(msg)?.[1]);
  const errnos = osConstants.errno as Record<string, number>;
  const code = XATTR_ERRNOS.find((c) => errnos[c] === n) ?? "EIO";
  return new StoreError(code, `${syscall} ${abs}: ${msg}`);
}
