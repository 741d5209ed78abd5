/**
 * How long committing a large file holds the event loop, synchronous path vs
 * the off-loop path (`FsCore.flushAsync`/`fsyncAsync`/`closeAsync`), as a
 * FUSE daemon serves it: sequential 128 KiB writes, each its own macrotask
 * (as FUSE requests arrive), a commit every 8 MiB (FUSE_AUTO_COMMIT_BYTES),
 * then fsync and close. Reports per op the longest time one call held the
 * loop, the longest loop stall of any kind (perf_hooks event-loop delay,
 * which also catches the background slices of an asynchronous commit), and
 * MB/s until close returned.
 *
 *   node packages/bench/dist/commitloop.js [--mib 256] [--dir /dev/shm/x] [--data text|random]
 */
import { FsCore, Store } from "@agentfs/core";
import { constants as C, mkdtempSync, rmSync } from "node:fs";
import { join } from "node:path";
import { monitorEventLoopDelay } from "node:perf_hooks";

function arg(name: string, def: string): string {
  const i = process.argv.indexOf(name);
  return i >= 0 ? process.argv[i + 1]! : def;
}

const MiB = 1 << 20;
const WRITE = 128 * 1024;
const EVERY = 8 * MiB;

/** `n` bytes of text-like (compressible) or random data. */
function payload(n: number, kind: string): Buffer {
  const b = Buffer.allocUnsafe(n);
  let s = 12345;
  for (let i = 0; i < n; i++) {
    s = (Math.imul(s, 1103515245) + 12345) >>> 0;
    b[i] = kind === "random" ? s >>> 24 : 97 + (s >>> 28);
  }
  return b;
}

interface Result {
  mode: string;
  mbps: number;
  holds: Record<string, number>;
  loopMaxMs: number;
}

async function runOne(mode: "sync" | "async", dir: string, mib: number, data: Buffer): Promise<Result> {
  const store = Store.open(join(dir, mode), { create: true });
  const core = new FsCore(store, { branch: "main" });
  const holds: Record<string, number> = {};
  const hold = <T>(op: string, fn: () => T): T => {
    const t0 = performance.now();
    try {
      return fn();
    } finally {
      const dt = performance.now() - t0;
      if (dt > (holds[op] ?? 0)) holds[op] = dt;
    }
  };
  const h = monitorEventLoopDelay({ resolution: 1 });
  const t0 = performance.now();
  h.enable();
  const fd = hold("create", () => core.openFile("/big", C.O_CREAT | C.O_RDWR));
  let pending = 0;
  for (let pos = 0; pos < mib * MiB; pos += WRITE) {
    await new Promise<void>((r) => setImmediate(r)); // one request per loop turn
    hold("write", () => {
      core.write(fd, data, pos % data.length, WRITE, pos);
      pending += WRITE;
      if (pending >= EVERY) {
        pending = 0;
        if (mode === "sync") core.flush(fd);
        else core.flushAsync(fd).catch(() => {});
      }
    });
  }
  if (mode === "sync") {
    hold("fsync", () => core.fsync(fd));
    hold("release", () => core.close(fd));
  } else {
    await hold("fsync", () => core.fsyncAsync(fd));
    await hold("release", () => core.closeAsync(fd));
  }
  const secs = (performance.now() - t0) / 1000;
  h.disable();
  store.close();
  return { mode, mbps: mib / secs, holds, loopMaxMs: h.max / 1e6 };
}

async function main(): Promise<void> {
  const mib = Number(arg("--mib", "256"));
  const base = arg("--dir", "/dev/shm");
  const kind = arg("--data", "text");
  const dir = mkdtempSync(join(base, "agentfs-commitloop-"));
  const data = payload(32 * MiB, kind);
  try {
    console.log(`${mib} MiB of ${kind} data in ${WRITE / 1024} KiB writes, a commit every ${EVERY / MiB} MiB, then fsync + close; store in ${base}`);
    console.log("| path | MB/s | max hold: write | fsync | release | longest loop stall |");
    console.log("| --- | ---: | ---: | ---: | ---: | ---: |");
    for (const mode of ["sync", "async"] as const) {
      const r = await runOne(mode, dir, mib, data);
      const f = (x: number | undefined) => `${(x ?? 0).toFixed(1)} ms`;
      console.log(`| ${mode} | ${r.mbps.toFixed(1)} | ${f(r.holds.write)} | ${f(r.holds.fsync)} | ${f(r.holds.release)} | ${f(r.loopMaxMs)} |`);
    }
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
  process.exit(0);
}

void main();
