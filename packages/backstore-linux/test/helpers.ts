import fs from "node:fs";
import os from "node:os";
import path from "node:path";

/** Resident set size of this process in bytes, from /proc/self/statm (pages × page size). */
export function rssBytes(): number {
  const f = fs.readFileSync("/proc/self/statm", "utf8").split(" ");
  return Number(f[1]) * 4096;
}

/** Targets of this process's open fds (e.g. "/memfd:agentfs-buffer (deleted)"). */
export function fdTargets(): string[] {
  const out: string[] = [];
  for (const n of fs.readdirSync("/proc/self/fd")) {
    try {
      out.push(fs.readlinkSync(`/proc/self/fd/${n}`));
    } catch {
      /* closed meanwhile */
    }
  }
  return out;
}

export function tmpDir(prefix: string, base = os.tmpdir()): string {
  return fs.mkdtempSync(path.join(base, prefix));
}

/** Deterministic pseudo-random bytes (xorshift32). */
export function prng(n: number, seed = 1): Buffer {
  const b = Buffer.allocUnsafe(n);
  let s = seed >>> 0 || 1;
  for (let i = 0; i < n; i++) {
    s ^= s << 13; s >>>= 0;
    s ^= s >>> 17;
    s ^= s << 5; s >>>= 0;
    b[i] = s & 0xff;
  }
  return b;
}

export const isLinux = process.platform === "linux";
