/**
 * The tmpfs RAM-disk backstore: working buffers are unnamed files
 * (O_TMPFILE) on a tmpfs — either a private tmpfs this process mounts with a
 * size cap (root only), unmounted on `close()` and, failing that, when the
 * process exits or is stopped by SIGINT/SIGTERM/SIGHUP; or an existing
 * tmpfs such as /dev/shm. Bytes live in the page cache (RAM/swap), never on a
 * disk, and a full RAM disk answers ENOSPC instead of eating all memory.
 */
import { spawnSync } from "node:child_process";
import fs from "node:fs";
import os from "node:os";
import path from "node:path";
import type { Backstore } from "@agentfs/core";
import * as native from "@agentfs/native";
import { FdBuffer, PunchingFdBuffer } from "./fdbuffer.js";
import { openUnnamed } from "./hostdir.js";

/** Options of {@link TmpfsBackstore.mount} and {@link TmpfsBackstore.create}. */
export interface TmpfsOptions {
  /** Size cap of a private RAM disk in bytes (rounded up to pages by the kernel). Default 1 GiB. */
  size?: number;
  /** Parent directory of the mount point (default os.tmpdir()). */
  parent?: string;
}

function errnoError(code: string, message: string): NodeJS.ErrnoException {
  const e = new Error(`${code}: ${message}`) as NodeJS.ErrnoException;
  e.code = code;
  return e;
}

// ---- unmount-on-exit registry (one set of handlers per process)
const live = new Set<string>();
let hooked = false;

function unmountNow(dir: string): void {
  if (spawnSync("umount", [dir]).status !== 0) spawnSync("umount", ["-l", dir]);
  try {
    fs.rmdirSync(dir);
  } catch {
    /* still busy or already gone */
  }
}

function hookExit(): void {
  if (hooked) return;
  hooked = true;
  process.on("exit", () => {
    for (const d of live) unmountNow(d);
    live.clear();
  });
  for (const sig of ["SIGINT", "SIGTERM", "SIGHUP"] as const) {
    const onSig = () => {
      for (const d of live) unmountNow(d);
      live.clear();
      // Re-raise with the default action only if nobody else handles it.
      if (process.listenerCount(sig) === 0) process.kill(process.pid, sig);
    };
    process.once(sig, onSig);
  }
}

/** True when `dir` is on tmpfs or ramfs (statfs f_type). */
export function isRamFs(dir: string): boolean {
  const t = native.statfsTypeName(dir);
  return t === "tmpfs" || t === "ramfs";
}

/**
 * Backstore on a tmpfs RAM disk; `kind` is "tmpfs". Make one with
 * {@link TmpfsBackstore.mount} (private, size-capped, root only),
 * {@link TmpfsBackstore.at} (an existing tmpfs) or
 * {@link TmpfsBackstore.create} (private if possible, else /dev/shm).
 */
export class TmpfsBackstore implements Backstore {
  readonly kind = "tmpfs";
  private closed = false;

  private constructor(
    /** The tmpfs directory buffers are created in. */
    readonly dir: string,
    /** True when this backstore mounted `dir` itself (and unmounts it on close/exit). */
    readonly owned: boolean,
  ) {}

  /**
   * Mounts a private tmpfs (`mount -t tmpfs -o size=N,mode=0700`) on a new
   * directory under `opts.parent` and returns a backstore on it. It is
   * unmounted by `close()`, or at process exit / SIGINT / SIGTERM / SIGHUP
   * (not after SIGKILL: then `umount` the `agentfs-ram-*` directory by hand).
   * Errors: EPERM (not root, or mounting not allowed here), EINVAL (bad size).
   */
  static mount(opts: TmpfsOptions = {}): TmpfsBackstore {
    const size = opts.size ?? 1024 * 1024 * 1024;
    if (!Number.isSafeInteger(size) || size <= 0) throw errnoError("EINVAL", `bad RAM disk size ${size}`);
    const dir = fs.mkdtempSync(path.join(opts.parent ?? os.tmpdir(), "agentfs-ram-"));
    const r = spawnSync("mount", ["-t", "tmpfs", "-o", `size=${size},mode=0700`, "agentfs-ram", dir], { encoding: "utf8" });
    if (r.status !== 0) {
      fs.rmdirSync(dir);
      throw errnoError("EPERM", `cannot mount a tmpfs RAM disk at ${dir}: ${(r.stderr || r.error?.message || "").trim()}`);
    }
    live.add(dir);
    hookExit();
    return new TmpfsBackstore(dir, true);
  }

  /** A backstore on existing tmpfs directory `dir` (e.g. /dev/shm). Errors: EINVAL when `dir` is not on tmpfs/ramfs; ENOENT. */
  static at(dir: string): TmpfsBackstore {
    if (!fs.statSync(dir).isDirectory()) throw errnoError("ENOTDIR", `not a directory, '${dir}'`);
    if (!isRamFs(dir)) throw errnoError("EINVAL", `'${dir}' is not on tmpfs (it is ${native.statfsTypeName(dir) ?? "unknown"})`);
    return new TmpfsBackstore(dir, false);
  }

  /** {@link TmpfsBackstore.mount} when it works (root), else {@link TmpfsBackstore.at}("/dev/shm"). */
  static create(opts: TmpfsOptions = {}): TmpfsBackstore {
    try {
      return TmpfsBackstore.mount(opts);
    } catch {
      return TmpfsBackstore.at("/dev/shm");
    }
  }

  /** A new, empty buffer: an unnamed file on the RAM disk. Errors: ENOSPC (RAM disk full, on write), EMFILE. */
  createBuffer(): FdBuffer {
    if (this.closed) throw errnoError("EBADF", "the tmpfs backstore is closed");
    return new PunchingFdBuffer(openUnnamed(this.dir), 0);
  }

  /** Bytes used and total on the RAM disk (statfs). */
  usage(): { used: number; total: number } {
    const s = native.statfs(this.dir);
    return { used: (s.blocks - s.bfree) * s.bsize, total: s.blocks * s.bsize };
  }

  /**
   * Unmounts a RAM disk this backstore mounted (lazily if buffers are still
   * open: their memory is freed when they are closed) and removes its
   * directory. A no-op for `at()` backstores. Idempotent.
   */
  close(): void {
    if (this.closed) return;
    this.closed = true;
    if (this.owned) {
      unmountNow(this.dir);
      live.delete(this.dir);
    }
  }
}
