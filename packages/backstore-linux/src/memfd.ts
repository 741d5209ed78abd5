/**
 * The memfd backstore (ERMFS): every working buffer is an anonymous
 * RAM-backed file from memfd_create(2) — no temp file, no path, nothing left
 * behind when the process dies. Buffers grow by pwrite/ftruncate and shrink
 * by ftruncate, which returns whole pages to the kernel, so the Node heap
 * never holds file bytes and does not fragment.
 */
import type { Backstore } from "@agentfs/core";
import * as native from "@agentfs/native";
import { PunchingFdBuffer } from "./fdbuffer.js";

/** Options of `MemfdBackstore`. */
export interface MemfdBackstoreOptions {
  /** Label shown as `/memfd:<name>` in /proc/<pid>/fd (default "agentfs-buffer"). */
  name?: string;
}

/** A working buffer held in a memfd; `fd` is the memfd (close-on-exec, sealable); punched holes free their pages. */
export class MemfdBuffer extends PunchingFdBuffer {}

/**
 * Backstore whose buffers are memfds (Linux only). `createBuffer` mirrors
 * memfd_create(name, MFD_CLOEXEC | MFD_ALLOW_SEALING). Errors (Error `code`):
 * EMFILE/ENFILE (out of descriptors), ENOMEM, ENOSYS (not Linux).
 */
export class MemfdBackstore implements Backstore {
  readonly kind = "memfd";
  private readonly name: string;

  constructor(opts: MemfdBackstoreOptions = {}) {
    this.name = opts.name ?? "agentfs-buffer";
    if (!native.hasMemfd) {
      const e = new Error("ENOSYS: memfd_create is not available on this platform") as NodeJS.ErrnoException;
      e.code = "ENOSYS";
      throw e;
    }
  }

  /** A new, empty memfd-backed buffer. */
  createBuffer(): MemfdBuffer {
    const fd = native.memfdCreate(this.name, native.MFD_CLOEXEC | native.MFD_ALLOW_SEALING);
    return new MemfdBuffer(fd, 0);
  }
}
