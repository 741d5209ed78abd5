/**
 * APFS clonefile backstore and APFS detection (macOS).
 */
import fs from "node:fs";
import path from "node:path";
import type { Backstore } from "@agentfs/core";
import * as native from "@agentfs/native";
import { FileBuffer, type CopyMethod } from "./filebuffer.js";

/**
 * True when `dir` is on an APFS volume: statfs(2)'s `f_fstypename` is
 * "apfs". Always false off macOS (Linux has no APFS driver in the kernel).
 * Errors: ENOENT, EACCES (from statfs).
 */
export function isApfs(dir: string): boolean {
  if (native.platform !== "darwin") return false;
  return native.statfs(dir).typeName === "apfs";
}

let serial = 0;
function scratchName(dir: string): string {
  return path.join(dir, `.agentfs-buf-${process.pid}-${++serial}-${Date.now()}`);
}

/** errno names clonefile(2) gives when it cannot clone here (other volume, other filesystem): fall back to a copy. */
export const NO_CLONE_ERRNOS: readonly string[] = ["ENOTSUP", "EXDEV", "ENOSYS", "EINVAL"];

/**
 * Copies host file `src` to new path `dst` with clonefile(2) (APFS: shares
 * all blocks copy-on-write, costs no space) and, where that is refused
 * ({@link NO_CLONE_ERRNOS}), with fs.copyFileSync. Returns the method used.
 * Errors: ENOENT, EEXIST (dst exists), EACCES.
 */
export function cloneFile(src: string, dst: string): CopyMethod {
  try {
    native.clonefile(src, dst, native.CLONE_NOFOLLOW);
    return "clone";
  } catch (e) {
    if (!NO_CLONE_ERRNOS.includes((e as NodeJS.ErrnoException).code ?? "")) throw e;
  }
  fs.copyFileSync(src, dst, fs.constants.COPYFILE_EXCL);
  return "copy";
}

/**
 * Backstore whose buffers are unlinked files in directory `dir`. On APFS
 * (`kind` "apfs-clone") `cloneFrom(hostFile)` makes the buffer with
 * clonefile(2), so copy-up of a large host file costs no data I/O or space;
 * elsewhere (`kind` "hostdir") it copies.
 */
export class ApfsCloneBackstore implements Backstore {
  readonly kind: "apfs-clone" | "hostdir";

  /** Errors: ENOENT/ENOTDIR when `dir` is not a directory. */
  constructor(readonly dir: string) {
    if (!fs.statSync(dir).isDirectory()) {
      const e = new Error(`ENOTDIR: not a directory, '${dir}'`) as NodeJS.ErrnoException;
      e.code = "ENOTDIR";
      throw e;
    }
    this.kind = isApfs(dir) ? "apfs-clone" : "hostdir";
  }

  /** A new, empty buffer: a file created in `dir` and unlinked at once. Errors: ENOSPC, EMFILE, EACCES. */
  createBuffer(): FileBuffer {
    const name = scratchName(this.dir);
    const fd = fs.openSync(name, fs.constants.O_RDWR | fs.constants.O_CREAT | fs.constants.O_EXCL, 0o600);
    fs.unlinkSync(name);
    return new FileBuffer(fd, 0);
  }

  /**
   * A buffer whose initial contents are host file `hostPath`: cloned
   * (clonefile) when on the same APFS volume, else copied; `buffer.method`
   * says which. Writes to the buffer never reach `hostPath`. Errors: ENOENT,
   * EACCES, EISDIR, ENOSPC.
   */
  cloneFrom(hostPath: string): FileBuffer {
    if (fs.statSync(hostPath).isDirectory()) {
      const e = new Error(`EISDIR: illegal operation on a directory, '${hostPath}'`) as NodeJS.ErrnoException;
      e.code = "EISDIR";
      throw e;
    }
    const name = scratchName(this.dir);
    const method = cloneFile(hostPath, name);
    try {
      const fd = fs.openSync(name, fs.constants.O_RDWR);
      const b = new FileBuffer(fd, fs.fstatSync(fd).size);
      b.method = method;
      return b;
    } finally {
      fs.rmSync(name, { force: true });
    }
  }
}
