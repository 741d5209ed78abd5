/**
 * `exportMemfd`: a stored file as a real kernel file descriptor — a memfd
 * holding the file's bytes as of the call, usable with read/pread, lseek,
 * fstat, mmap, fexecve and fd passing.
 */
import fs from "node:fs";
import type { AgentFS, FsCore } from "@agentfs/core";
import * as native from "@agentfs/native";

/** Options of {@link exportMemfd}. */
export interface ExportOptions {
  /**
   * Seal the memfd read-only: F_SEAL_WRITE | F_SEAL_GROW | F_SEAL_SHRINK,
   * plus F_SEAL_SEAL so no one can add or change seals afterwards. Writes
   * then fail with EPERM, ftruncate with EPERM, and a MAP_SHARED +
   * PROT_WRITE mmap with EPERM — in every process the fd reaches.
   * Default false: the fd is a private, writable copy.
   */
  seal?: boolean;
  /**
   * Make the fd close-on-exec (MFD_CLOEXEC). Default true. Pass false only
   * when a program started by exec must inherit it (see `execStored`, which
   * does not need this: it clears the flag in the child only).
   */
  cloexec?: boolean;
  /** Follow a final symlink (default true); false gives ELOOP on a symlink, as O_NOFOLLOW. */
  follow?: boolean;
  /** memfd label, shown as `/memfd:<name>` in /proc/<pid>/fd (default `agentfs:<basename>`, cut to 249 bytes). */
  name?: string;
}

/** What {@link exportMemfdStat} returns: the fd and the stored file's stat as exported. */
export interface ExportedFile {
  /** The memfd, positioned at offset 0. The caller owns it and must close it (fs.closeSync). */
  fd: number;
  /** File size in bytes (equals fstat(fd).size). */
  size: number;
  /** The stored file's st_mode (S_IFREG | permission bits); the memfd's permission bits are set to match. */
  mode: number;
  /** Bytes actually written into the memfd (the rest are holes). */
  dataBytes: number;
}

function coreOf(afs: AgentFS | FsCore): FsCore {
  return "core" in afs ? afs.core : afs;
}

function labelFor(path: string): string {
  const base = path.split("/").filter(Boolean).pop() ?? "root";
  let name = `agentfs:${base}`;
  while (Buffer.byteLength(name) > 249) name = name.slice(0, -1);
  return name;
}

/**
 * Exports the regular file at `path` (in the view `afs`: an `AgentFS` or an
 * `FsCore`) as a new memfd (memfd_create(2) with MFD_ALLOW_SEALING, plus
 * MFD_CLOEXEC unless `cloexec: false`) and returns the fd, positioned at 0.
 *
 * Snapshot semantics: the memfd holds the file's bytes as of the call and
 * never changes afterwards with the store (nor the store with it). Which
 * bytes: if this process's view has the file open for writing, its
 * **in-progress** bytes — exactly what a read through that open fd returns
 * now, unflushed writes included; otherwise the **committed** bytes. (Other
 * processes' unflushed writes are never visible, as with any store read.)
 *
 * How: `ftruncate` to the file size, then each stored chunk is decompressed
 * on its own (at most 256 KiB with the default chunker) and written with
 * pwrite(2) at its offset, so the file is never copied whole into the heap
 * and holes stay holes (st_blocks of the memfd counts only data). The memfd's
 * permission bits are set to the stored file's (fchmod), so fstat shows its
 * mode and an executable stays executable.
 *
 * Errors: `FsError` from core with `code` ENOENT, ENOTDIR, EISDIR (a
 * directory), ELOOP (a symlink loop; or a symlink with `follow: false`),
 * EACCES, EINVAL (not a regular file), ENAMETOOLONG, EIO (corrupt object);
 * from the kernel (Error with `code`): EMFILE/ENFILE, ENOMEM, ENOSPC, ENOSYS
 * (no memfd: not Linux). No fd is left open when it throws.
 */
export function exportMemfd(afs: AgentFS | FsCore, path: string, opts: ExportOptions = {}): number {
  return exportMemfdStat(afs, path, opts).fd;
}

/** As {@link exportMemfd}, also returning the exported size, mode and data byte count. */
export function exportMemfdStat(afs: AgentFS | FsCore, path: string, opts: ExportOptions = {}): ExportedFile {
  const core = coreOf(afs);
  let flags = native.MFD_ALLOW_SEALING;
  if (opts.cloexec ?? true) flags |= native.MFD_CLOEXEC;
  const fd = native.memfdCreate(opts.name ?? labelFor(path), flags);
  try {
    let dataBytes = 0;
    const st = core.readImage(
      path,
      (data, pos) => {
        let done = 0;
        while (done < data.length) done += fs.writeSync(fd, data, done, data.length - done, pos + done);
        dataBytes += data.length;
      },
      { follow: opts.follow },
    );
    // Size last: trailing holes, and exact size when the last piece ended early.
    native.ftruncate(fd, st.size);
    fs.fchmodSync(fd, st.mode & 0o7777);
    if (opts.seal) native.addSeals(fd, native.F_SEAL_WRITE | native.F_SEAL_GROW | native.F_SEAL_SHRINK | native.F_SEAL_SEAL);
    return { fd, size: st.size, mode: st.mode, dataBytes };
  } catch (e) {
    fs.closeSync(fd);
    throw e;
  }
}

/** Seals that {@link exportMemfd} with `seal: true` sets. */
export const READ_ONLY_SEALS: number = native.F_SEAL_WRITE | native.F_SEAL_GROW | native.F_SEAL_SHRINK | native.F_SEAL_SEAL;
