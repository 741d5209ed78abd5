/**
 * Shared helpers of the benchmark: timing, scratch directories on tmpfs,
 * deterministic data generators and number formatting.
 */
import { mkdirSync, readdirSync, rmSync, statSync, lstatSync } from "node:fs";
import { join } from "node:path";
import { randomBytes } from "node:crypto";

/** Root of all scratch directories: tmpfs, so no contender pays for a disk. */
export const SCRATCH_ROOT = process.env.AGENTFS_BENCH_DIR ?? "/dev/shm/agentfs-bench";

let scratchSeq = 0;

/** Creates a fresh empty directory under SCRATCH_ROOT named after `label`; returns its absolute path. */
export function scratchDir(label: string): string {
  const dir = join(SCRATCH_ROOT, `${process.pid}-${++scratchSeq}-${label}`);
  rmSync(dir, { recursive: true, force: true });
  mkdirSync(dir, { recursive: true });
  return dir;
}

/** Removes a scratch directory (ignores errors). */
export function removeDir(dir: string): void {
  rmSync(dir, { recursive: true, force: true });
}

/** Removes every scratch directory this process created. */
export function cleanupScratch(): void {
  try {
    for (const e of readdirSync(SCRATCH_ROOT)) if (e.startsWith(`${process.pid}-`)) rmSync(join(SCRATCH_ROOT, e), { recursive: true, force: true });
  } catch {
    /* nothing to clean */
  }
}

/** Current monotonic time in milliseconds. */
export function now(): number {
  return performance.now();
}

/** Runs `fn` once and returns its wall time in milliseconds (and its result). */
export async function timed<T>(fn: () => Promise<T> | T): Promise<{ ms: number; value: T }> {
  const t0 = performance.now();
  const value = await fn();
  return { ms: performance.now() - t0, value };
}

/** Median of a non-empty list of numbers. */
export function median(xs: number[]): number {
  const s = [...xs].sort((a, b) => a - b);
  const m = s.length >> 1;
  return s.length % 2 ? s[m] : (s[m - 1] + s[m]) / 2;
}

/** Asks V8 for a full collection when node runs with --expose-gc, so one contender's garbage is not billed to the next. */
export function collectGarbage(): void {
  const g = (globalThis as { gc?: () => void }).gc;
  if (g) g();
}

/** Deterministic PRNG (mulberry32): the same seed gives the same stream on every run. Returns floats in [0, 1). */
export function prng(seed: number): () => number {
  let a = seed >>> 0;
  return () => {
    a = (a + 0x6d2b79f5) >>> 0;
    let t = a;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}

const WORDS = (
  "the quick brown fox jumps over lazy dog agent file system snapshot branch chunk store manifest layer inode " +
  "directory entry commit write read stat open close buffer hash tree merkle content address copy on write " +
  "function return const let import export async await promise error value index table query result"
).split(" ");

/**
 * `bytes` bytes of text-like compressible data: lines of words drawn by a
 * seeded PRNG with a line counter, so it compresses (about 3-4x with gzip)
 * but never repeats exactly.
 */
export function textData(bytes: number, seed: number): Buffer {
  const rnd = prng(seed);
  const out = Buffer.allocUnsafe(bytes);
  let off = 0;
  let line = 0;
  while (off < bytes) {
    let s = `${seed}:${line++} `;
    const n = 6 + Math.floor(rnd() * 10);
    for (let i = 0; i < n; i++) s += WORDS[Math.floor(rnd() * WORDS.length)] + " ";
    s += "\n";
    off += out.write(s, off, "latin1");
  }
  return out;
}

/** `bytes` bytes of incompressible data (crypto random). */
export function randomData(bytes: number): Buffer {
  return randomBytes(bytes);
}

/** Walks a host directory: regular files (with sizes), directories and symlinks, as paths relative to `root`. */
export interface HostTree {
  dirs: string[];
  files: Array<{ rel: string; size: number }>;
  symlinks: string[];
  bytes: number;
}

/** Lists host directory `root` recursively without following symlinks. Unreadable entries are skipped. */
export function scanTree(root: string): HostTree {
  const t: HostTree = { dirs: [], files: [], symlinks: [], bytes: 0 };
  const walk = (rel: string) => {
    let names: string[];
    try {
      names = readdirSync(join(root, rel));
    } catch {
      return;
    }
    for (const n of names.sort()) {
      const r = rel ? `${rel}/${n}` : n;
      const st = lstatSync(join(root, r));
      if (st.isDirectory()) {
        t.dirs.push(r);
        walk(r);
      } else if (st.isSymbolicLink()) t.symlinks.push(r);
      else if (st.isFile()) {
        t.files.push({ rel: r, size: st.size });
        t.bytes += st.size;
      }
    }
  };
  walk("");
  return t;
}

/** Size in bytes of a host file, or 0 when it does not exist. */
export function fileSize(path: string): number {
  try {
    return statSync(path).size;
  } catch {
    return 0;
  }
}

/** Sum of the sizes of the regular files under host directory `dir` (bytes). */
export function dirBytes(dir: string): number {
  return scanTree(dir).bytes;
}

/** Formats milliseconds for a table cell ("812 ms", "3.41 s", "0.42 ms"). */
export function fmtMs(ms: number): string {
  if (ms >= 10_000) return `${(ms / 1000).toFixed(1)} s`;
  if (ms >= 1000) return `${(ms / 1000).toFixed(2)} s`;
  if (ms >= 100) return `${ms.toFixed(0)} ms`;
  if (ms >= 10) return `${ms.toFixed(1)} ms`;
  return `${ms.toFixed(2)} ms`;
}

/** Formats a byte count with binary units. */
export function fmtBytes(b: number): string {
  const u = ["B", "KiB", "MiB", "GiB"];
  let i = 0;
  let v = b;
  while (Math.abs(v) >= 1024 && i < u.length - 1) {
    v /= 1024;
    i++;
  }
  return `${v.toFixed(i === 0 ? 0 : 1)} ${u[i]}`;
}

/** Formats a rate with a unit suffix ("1.2k ops/s", "312 MB/s"). */
export function fmtRate(v: number, unit: string): string {
  if (v >= 1e6) return `${(v / 1e6).toFixed(2)}M ${unit}`;
  if (v >= 1e4) return `${(v / 1e3).toFixed(1)}k ${unit}`;
  if (v >= 100) return `${v.toFixed(0)} ${unit}`;
  return `${v.toFixed(1)} ${unit}`;
}

/** Writes a progress line to stderr (stdout carries only the results). */
export function log(msg: string): void {
  process.stderr.write(`[bench ${new Date().toISOString().slice(11, 19)}] ${msg}\n`);
}
