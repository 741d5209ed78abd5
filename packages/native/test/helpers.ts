import fs from "node:fs";
import os from "node:os";
import path from "node:path";

/** Asserts `fn` throws an errno-coded error with one of `codes`; returns it. */
export function expectErrno(fn: () => unknown, codes: string | string[], syscall?: string): NodeJS.ErrnoException {
  const want = Array.isArray(codes) ? codes : [codes];
  try {
    fn();
  } catch (e) {
    const err = e as NodeJS.ErrnoException;
    if (!want.includes(err.code ?? "")) {
      throw new Error(`expected ${want.join("|")}, got ${err.code}: ${err.message}`);
    }
    if (typeof err.errno !== "number" || err.errno >= 0) throw new Error(`errno should be negative, got ${err.errno}`);
    if (syscall !== undefined && err.syscall !== syscall) {
      throw new Error(`expected syscall ${syscall}, got ${err.syscall}`);
    }
    return err;
  }
  throw new Error(`expected ${want.join("|")}, but nothing was thrown`);
}

/** Reads `fd` until EOF (blocking reads; the writer must be closed). */
export function readAll(fd: number): Buffer {
  const chunks: Buffer[] = [];
  const buf = Buffer.alloc(65536);
  for (;;) {
    const n = fs.readSync(fd, buf, 0, buf.length, null);
    if (n === 0) break;
    chunks.push(Buffer.from(buf.subarray(0, n)));
  }
  return Buffer.concat(chunks);
}

export function tmpDir(prefix: string): string {
  return fs.mkdtempSync(path.join(os.tmpdir(), prefix));
}

export const isLinux = process.platform === "linux";
