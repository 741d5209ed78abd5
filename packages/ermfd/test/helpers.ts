import fs from "node:fs";
import os from "node:os";
import path from "node:path";
import { AgentFS } from "@agentfs/core";
import { MemfdBackstore } from "@agentfs/backstore-linux";

export const isLinux = process.platform === "linux";
export const MiB = 1024 * 1024;

export function tmpDir(prefix: string, base = os.tmpdir()): string {
  return fs.mkdtempSync(path.join(base, prefix));
}

/** A fresh store in a temp dir with memfd working buffers. */
export async function freshStore(prefix = "agentfs-ermfd-"): Promise<{ afs: AgentFS; dir: string; cleanup: () => Promise<void> }> {
  const dir = tmpDir(prefix);
  const afs = await AgentFS.open(path.join(dir, "store"), { create: true, backstore: new MemfdBackstore(), umask: 0o022 });
  return {
    afs,
    dir,
    cleanup: async () => {
      try {
        afs.closeSync();
      } finally {
        fs.rmSync(dir, { recursive: true, force: true });
      }
    },
  };
}

/** Deterministic incompressible bytes (xorshift32). */
export function prng(n: number, seed = 1): Buffer {
  const b = Buffer.allocUnsafe(n);
  let s = seed >>> 0 || 1;
  let i = 0;
  for (; i + 4 <= n; i += 4) {
    s ^= s << 13; s >>>= 0;
    s ^= s >>> 17;
    s ^= s << 5; s >>>= 0;
    b.writeUInt32LE(s, i);
  }
  for (; i < n; i++) b[i] = i & 0xff;
  return b;
}

/** Compressible text-like bytes. */
export function text(n: number, seed = 0): Buffer {
  const line = Buffer.from(`agentfs line of compressible text, seed ${seed} ------------------------------\n`);
  const b = Buffer.allocUnsafe(n);
  for (let p = 0; p < n; p += line.length) line.copy(b, p, 0, Math.min(line.length, n - p));
  return b;
}

/** Reads all of `fd` from offset 0 with pread. */
export function preadAll(fd: number): Buffer {
  const size = fs.fstatSync(fd).size;
  const out = Buffer.alloc(size);
  let p = 0;
  while (p < size) {
    const n = fs.readSync(fd, out, p, size - p, p);
    if (n === 0) break;
    p += n;
  }
  return out;
}

/** The file offset of `fd` (lseek(fd, 0, SEEK_CUR)) from /proc/self/fdinfo. */
export function fdPos(fd: number): number {
  const m = /^pos:\s+(\d+)/m.exec(fs.readFileSync(`/proc/self/fdinfo/${fd}`, "utf8"));
  return Number(m![1]);
}

/** Number of open fds of this process. */
export function fdCount(): number {
  return fs.readdirSync("/proc/self/fd").length;
}

/** Errno name of what `fn` throws, or "none". */
export function codeOf(fn: () => unknown): string {
  try {
    fn();
  } catch (e) {
    return (e as NodeJS.ErrnoException).code ?? String(e);
  }
  return "none";
}
