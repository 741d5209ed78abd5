/**
 * `pnpm bench:ermfd`: side-by-side measurements of the export layer.
 *
 * 1. Export throughput: `exportMemfd` of a stored file vs reading the same
 *    file through the SDK (FsCore.read in 1 MiB pieces into one reused
 *    buffer), for compressible and incompressible data. GB/s = 1e9 bytes/s.
 * 2. Exec start latency: `spawnStored` (export to a sealed memfd + fexecve)
 *    of a stored copy of /bin/true, vs fexecve of the same binary opened from
 *    tmpfs (/dev/shm), vs child_process.spawnSync of that tmpfs path. Each
 *    sample is start → child reaped (blocking waitpid), in ms.
 *
 * Environment: ERMFD_BENCH_MB (file size, default 256), ERMFD_BENCH_EXECS
 * (exec samples per contender, default 200).
 */
import { spawnSync } from "node:child_process";
import fs from "node:fs";
import os from "node:os";
import path from "node:path";
import { constants as C } from "node:fs";
import { AgentFS } from "@agentfs/core";
import { MemfdBackstore } from "@agentfs/backstore-linux";
import * as native from "@agentfs/native";
import { exportMemfd, spawnStored } from "../src/index.js";

const MiB = 1024 * 1024;
const SIZE_MB = Number(process.env.ERMFD_BENCH_MB ?? 256);
const EXECS = Number(process.env.ERMFD_BENCH_EXECS ?? 200);
const REPS = 3;

function median(xs: number[]): number {
  const s = [...xs].sort((a, b) => a - b);
  return s[Math.floor(s.length / 2)]!;
}
function pct(xs: number[], p: number): number {
  const s = [...xs].sort((a, b) => a - b);
  return s[Math.min(s.length - 1, Math.floor(s.length * p))]!;
}
function time(fn: () => void): number {
  const t0 = process.hrtime.bigint();
  fn();
  return Number(process.hrtime.bigint() - t0) / 1e9;
}

function fillCompressible(b: Buffer, seed: number): void {
  for (let i = 0; i < b.length; i += 64) b.write(`${(seed + i).toString(16).padStart(12, "0")} agentfs bench line of text ......\n`.slice(0, 64), i);
}
function fillRandom(b: Buffer, seed: number): void {
  let s = seed >>> 0 || 1;
  for (let i = 0; i + 4 <= b.length; i += 4) {
    s ^= s << 13; s >>>= 0;
    s ^= s >>> 17;
    s ^= s << 5; s >>>= 0;
    b.writeUInt32LE(s, i);
  }
}

async function main(): Promise<void> {
  if (process.platform !== "linux") {
    console.log("bench:ermfd needs Linux (memfd, fexecve); skipped");
    return;
  }
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), "agentfs-bench-ermfd-"));
  const shm = fs.mkdtempSync(path.join("/dev/shm", "agentfs-bench-"));
  const afs = await AgentFS.open(path.join(dir, "store"), { create: true, backstore: new MemfdBackstore() });
  const rows: string[][] = [];
  try {
    // ---------------------------------------------------------------- throughput
    const bytes = SIZE_MB * MiB;
    const block = Buffer.alloc(4 * MiB);
    for (const [label, fill] of [["compressible", fillCompressible], ["incompressible", fillRandom]] as const) {
      const p = `/${label}.bin`;
      const fh = await afs.fs.open(p, "w");
      for (let pos = 0; pos < bytes; pos += block.length) {
        fill(block, pos + 1);
        await fh.write(block, 0, block.length, pos);
      }
      await fh.close();
      const exp: number[] = [];
      const sdk: number[] = [];
      const piece = Buffer.allocUnsafe(MiB);
      for (let r = 0; r < REPS; r++) {
        afs.store.cas.clearCache();
        let fd = -1;
        exp.push(time(() => { fd = exportMemfd(afs, p, { seal: true }); }));
        fs.closeSync(fd);
        afs.store.cas.clearCache();
        sdk.push(time(() => {
          const f = afs.core.openFile(p, C.O_RDONLY);
          try {
            for (let pos = 0; ; ) {
              const n = afs.core.read(f, piece, 0, MiB, pos);
              if (n === 0) break;
              pos += n;
            }
          } finally {
            afs.core.close(f);
          }
        }));
      }
      const ge = bytes / median(exp) / 1e9;
      const gs = bytes / median(sdk) / 1e9;
      rows.push([`export ${label} ${SIZE_MB} MiB`, `${ge.toFixed(2)} GB/s`, `SDK read ${gs.toFixed(2)} GB/s`, `export/SDK ${(ge / gs).toFixed(2)}x`]);
    }

    // ---------------------------------------------------------------- exec latency
    const trueBin = fs.existsSync("/bin/true") ? "/bin/true" : "/usr/bin/true";
    await afs.fs.writeFile("/true", fs.readFileSync(trueBin), { mode: 0o755 });
    const tmpfsTrue = path.join(shm, "true");
    fs.copyFileSync(trueBin, tmpfsTrue);
    fs.chmodSync(tmpfsTrue, 0o755);
    const quiet: [number, number, number] = [-1, -1, -1];
    const stored: number[] = [];
    const fexecTmpfs: number[] = [];
    const spawnTmpfs: number[] = [];
    for (let i = 0; i < EXECS; i++) {
      stored.push(time(() => {
        const { pid } = spawnStored(afs, "/true", [], { stdio: quiet });
        native.waitpid(pid, 0);
      }) * 1000);
      fexecTmpfs.push(time(() => {
        const fd = fs.openSync(tmpfsTrue, "r");
        try {
          const pid = native.spawnFexecve(fd, ["true"], null, { stdio: quiet });
          native.waitpid(pid, 0);
        } finally {
          fs.closeSync(fd);
        }
      }) * 1000);
      spawnTmpfs.push(time(() => { spawnSync(tmpfsTrue, [], { stdio: "ignore" }); }) * 1000);
    }
    const ms = (xs: number[]) => `${median(xs).toFixed(2)} ms (p90 ${pct(xs, 0.9).toFixed(2)})`;
    rows.push(["exec stored /bin/true (export+fexecve)", ms(stored), `fexecve from tmpfs ${ms(fexecTmpfs)}`, `ratio ${(median(stored) / median(fexecTmpfs)).toFixed(2)}x`]);
    rows.push(["", "", `spawnSync from tmpfs ${ms(spawnTmpfs)}`, `ratio ${(median(stored) / median(spawnTmpfs)).toFixed(2)}x`]);
  } finally {
    await afs.close();
    fs.rmSync(dir, { recursive: true, force: true });
    fs.rmSync(shm, { recursive: true, force: true });
  }
  const widths = [0, 1, 2, 3].map((c) => Math.max(...rows.map((r) => r[c]!.length)));
  console.log(`ermfd bench (Node ${process.version}, ${os.cpus()[0]?.model ?? "cpu"}, ${REPS} reps median, ${EXECS} exec samples)`);
  for (const r of rows) console.log(r.map((x, i) => x.padEnd(widths[i]!)).join("  |  "));
}

main().catch((e) => {
  console.error(e);
  process.exitCode = 1;
});
