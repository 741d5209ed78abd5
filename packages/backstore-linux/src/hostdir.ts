/**
 * The host-directory backstore: working buffers are unnamed files in a host
 * directory (O_TMPFILE, or created and unlinked at once), and copy-up of a
 * host file into a buffer uses a FICLONE reflink where the filesystem
 * supports it (XFS with reflink=1, btrfs, bcachefs, …) — sharing the data
 * blocks copy-on-write, so a multi-GiB copy-up costs no data I/O and no
 * space — and falls back to a plain copy where it does not (ext4, tmpfs).
 */
import fs from "node:fs";
import path from "node:path";
import type { Backstore } from "@agentfs/core";
import * as native from "@agentfs/native";
import { PunchingFdBuffer } from "./fdbuffer.js";

/** How a copy was made: `"reflink"` (FICLONE, blocks shared) or `"copy"` (bytes copied). */
export type CopyMethod = "reflink" | "copy";

/** errno names that mean "this filesystem (or pair of files) cannot reflink": use a copy. */
export const NO_REFLINK_ERRNOS: readonly string[] = ["ENOTSUP", "EOPNOTSUPP", "EXDEV", "EINVAL", "ENOTTY", "ENOSYS"];

/** A working buffer in a host directory; `method` says how its initial contents were made (`cloneFrom`). */
export class HostFileBuffer extends PunchingFdBuffer {
  /** "reflink" or "copy" for a buffer made by `cloneFrom`; undefined for an empty one. */
  method?: CopyMethod;
}

/**
 * O_TMPFILE (Linux 3.11+): an unnamed file in a directory. Node does not
 * export it; its value is 0o20200000 (__O_TMPFILE | O_DIRECTORY) on the
 * architectures with the generic open flags (x86, arm, arm64, riscv).
 */
const O_TMPFILE: number =
  (fs.constants as Record<string, number>).O_TMPFILE ??
  (process.platform === "linux" && ["x64", "ia32", "arm", "arm64", "riscv64"].includes(process.arch) ? 0o20200000 : 0);
const ZERO = Buffer.alloc(1024 * 1024);
let serial = 0;

/**
 * Opens an unnamed O_RDWR file in `dir`: O_TMPFILE where the filesystem
 * supports it, else a fresh `.agentfs-buf-*` name that is unlinked at once.
 * Errors: ENOENT, EACCES, ENOSPC, EMFILE.
 */
export function openUnnamed(dir: string): number {
  if (O_TMPFILE) {
    try {
      return fs.openSync(dir, O_TMPFILE | fs.constants.O_RDWR, 0o600);
    } catch (e) {
      const code = (e as NodeJS.ErrnoException).code;
      // Filesystems without O_TMPFILE answer EOPNOTSUPP (or EISDIR/EINVAL on old kernels).
      if (code !== "EOPNOTSUPP" && code !== "ENOTSUP" && code !== "EISDIR" && code !== "EINVAL") throw e;
    }
  }
  const name = path.join(dir, `.agentfs-buf-${process.pid}-${++serial}-${Date.now()}`);
  const fd = fs.openSync(name, fs.constants.O_RDWR | fs.constants.O_CREAT | fs.constants.O_EXCL, 0o600);
  fs.unlinkSync(name);
  return fd;
}

/**
 * Makes the file open at `dstFd` a copy of the file open at `srcFd`: first
 * ioctl(FICLONE) (a reflink: shared blocks, no data copied), and when the
 * filesystem refuses (any of {@link NO_REFLINK_ERRNOS}) a pread/pwrite copy
 * in 1 MiB pieces that skips all-zero pieces (left as holes). Returns the
 * method used. Errors (other than no-reflink): EBADF, ENOSPC, EIO.
 */
export function cloneFd(srcFd: number, dstFd: number): CopyMethod {
  try {
    native.ficlone(srcFd, dstFd);
    return "reflink";
  } catch (e) {
    if (!NO_REFLINK_ERRNOS.includes((e as NodeJS.ErrnoException).code ?? "")) throw e;
  }
  const size = fs.fstatSync(srcFd).size;
  native.ftruncate(dstFd, 0);
  native.ftruncate(dstFd, size);
  const buf = Buffer.allocUnsafe(1024 * 1024);
  for (let pos = 0; pos < size; ) {
    const n = fs.readSync(srcFd, buf, 0, Math.min(buf.length, size - pos), pos);
    if (n === 0) break;
    const zero = buf.subarray(0, n).equals(ZERO.subarray(0, n));
    if (!zero) for (let done = 0; done < n; ) done += fs.writeSync(dstFd, buf, done, n - done, pos + done);
    pos += n;
  }
  return "copy";
}

/**
 * Copies host file `src` to new host file `dst` (which must not exist:
 * EEXIST), by reflink where possible, else by copying; keeps `src`'s
 * permission bits. Returns the method used. Errors: ENOENT, EEXIST, EACCES,
 * EISDIR, ENOSPC, EXDEV never (a cross-filesystem pair is copied).
 */
export function cloneFile(src: string, dst: string): CopyMethod {
  const s = fs.openSync(src, "r");
  try {
    const mode = fs.fstatSync(s).mode & 0o7777;
    const d = fs.openSync(dst, fs.constants.O_RDWR | fs.constants.O_CREAT | fs.constants.O_EXCL, mode);
    try {
      return cloneFd(s, d);
    } catch (e) {
      fs.rmSync(dst, { force: true });
      throw e;
    } finally {
      fs.closeSync(d);
    }
  } finally {
    fs.closeSync(s);
  }
}

/**
 * True when files in `dir` can be reflinked (FICLONE succeeds between two
 * scratch files there). The scratch files are unnamed and vanish on close.
 */
export function probeReflink(dir: string): boolean {
  const a = openUnnamed(dir);
  try {
    fs.writeSync(a, Buffer.alloc(4096, 1), 0, 4096, 0);
    const b = openUnnamed(dir);
    try {
      native.ficlone(a, b);
      return true;
    } catch {
      return false;
    } finally {
      fs.closeSync(b);
    }
  } finally {
    fs.closeSync(a);
  }
}

/**
 * Backstore whose buffers are unnamed files in host directory `dir` (on
 * disk, so open files may be larger than RAM). `kind` is `"reflink"` when
 * the directory's filesystem can reflink, else `"hostdir"`. Buffers are gone
 * when closed, or when the process dies (an O_TMPFILE / unlinked file).
 */
export class HostDirBackstore implements Backstore {
  readonly kind: "reflink" | "hostdir";
  /** Whether `cloneFrom` will reflink (probed once, at construction). */
  readonly reflink: boolean;

  /** Errors: ENOENT/ENOTDIR/EACCES when `dir` is not a writable directory. */
  constructor(readonly dir: string) {
    if (!fs.statSync(dir).isDirectory()) {
      const e = new Error(`ENOTDIR: not a directory, '${dir}'`) as NodeJS.ErrnoException;
      e.code = "ENOTDIR";
      throw e;
    }
    this.reflink = probeReflink(dir);
    this.kind = this.reflink ? "reflink" : "hostdir";
  }

  /** A new, empty buffer (an unnamed file in `dir`). Errors: ENOSPC, EMFILE, EACCES. */
  createBuffer(): HostFileBuffer {
    return new HostFileBuffer(openUnnamed(this.dir), 0);
  }

  /**
   * A buffer whose initial contents are host file `hostPath` (copy-up of an
   * overlay's lower file): a reflink when `hostPath` is on the same
   * reflink-capable filesystem as `dir`, else a copy; `buffer.method` says
   * which. Writes to the buffer never reach `hostPath`. Errors: ENOENT,
   * EACCES, EISDIR, ENOSPC.
   */
  cloneFrom(hostPath: string): HostFileBuffer {
    const src = fs.openSync(hostPath, "r");
    try {
      const st = fs.fstatSync(src);
      if (st.isDirectory()) {
        const e = new Error(`EISDIR: illegal operation on a directory, '${hostPath}'`) as NodeJS.ErrnoException;
        e.code = "EISDIR";
        throw e;
      }
      const fd = openUnnamed(this.dir);
      try {
        const method = cloneFd(src, fd);
        const b = new HostFileBuffer(fd, st.size);
        b.method = method;
        return b;
      } catch (e) {
        fs.closeSync(fd);
        throw e;
      }
    } finally {
      fs.closeSync(src);
    }
  }
}
