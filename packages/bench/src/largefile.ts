/**
 * Large-file workload: one file of 256 MiB written in 1 MiB writes through
 * one open handle, then read back in 1 MiB reads, for compressible text and
 * for incompressible random bytes. Also reports the bytes each contender
 * occupies on the host afterwards.
 */
import { type ContenderId, openContender } from "./contenders.js";
import type { Row } from "./report.js";
import { collectGarbage, log, median, now, randomData, textData } from "./util.js";

/** Parameters of the large-file workload. */
export interface LargeFileOptions {
  /** File size in bytes (default 256 MiB). */
  fileBytes: number;
  /** Bytes per write/read call (default 1 MiB). */
  ioBytes: number;
  /** Timed runs for tmpfs and agentfs (median). */
  runs: number;
  /** Timed runs for agentfs-sdk (it is slow here; default 1). */
  sdkRuns: number;
  contenders: ContenderId[];
}

/**
 * Runs the large-file workload for "text" (compressible) and "random"
 * (incompressible) data. Returns per data kind: write time (ms), read time
 * (ms), and host bytes after close.
 */
export async function benchLargeFile(o: LargeFileOptions): Promise<Row[]> {
  const rows: Row[] = [];
  const mib = o.fileBytes / 2 ** 20;
  for (const kind of ["text", "random"] as const) {
    const chunks: Buffer[] = [];
    const all = kind === "text" ? textData(o.fileBytes, 7) : randomData(o.fileBytes);
    for (let off = 0; off < o.fileBytes; off += o.ioBytes) chunks.push(all.subarray(off, Math.min(o.fileBytes, off + o.ioBytes)));
    const w = new Map<ContenderId, number[]>();
    const r = new Map<ContenderId, number[]>();
    const stored = new Map<ContenderId, number>();
    const runsOf = (id: ContenderId) => (id === "sdk" ? o.sdkRuns : o.runs);
    const maxRuns = Math.max(...o.contenders.map(runsOf));
    for (let run = 0; run < maxRuns; run++) {
      const order = o.contenders.map((_, i) => o.contenders[(i + run) % o.contenders.length]);
      for (const id of order) {
        if (run >= runsOf(id)) continue;
        collectGarbage();
        const fs = await openContender(id, `large-${kind}-${run}`);
        try {
          let t0 = now();
          await fs.writeSequential("/big.bin", chunks);
          const wt = now() - t0;
          t0 = now();
          const n = await fs.readSequential("/big.bin", o.ioBytes);
          const rt = now() - t0;
          if (n !== o.fileBytes) throw new Error(`${id}: read ${n} bytes of ${o.fileBytes}`);
          await fs.close();
          stored.set(id, fs.hostBytes());
          (w.get(id) ?? w.set(id, []).get(id)!).push(wt);
          (r.get(id) ?? r.set(id, []).get(id)!).push(rt);
          log(`large ${kind} run ${run + 1} ${id}: write ${wt.toFixed(0)} ms, read ${rt.toFixed(0)} ms, host ${(stored.get(id)! / 2 ** 20).toFixed(1)} MiB`);
        } finally {
          await fs.dispose();
        }
      }
    }
    const group = `One ${mib} MiB file, ${o.ioBytes / 2 ** 20} MiB per call`;
    const label = kind === "text" ? "compressible text" : "random bytes";
    const runs = Object.fromEntries(o.contenders.map((c) => [c, runsOf(c)]));
    const vals = (m: Map<ContenderId, number[]>) => Object.fromEntries(o.contenders.map((c) => [c, median(m.get(c)!)]));
    rows.push(
      { id: `large.${kind}.write`, group, name: `write, ${label}`, kind: "ms", values: vals(w), work: { bytes: o.fileBytes }, runs },
      { id: `large.${kind}.read`, group, name: `read, ${label}`, kind: "ms", values: vals(r), work: { bytes: o.fileBytes }, runs },
      {
        id: `large.${kind}.stored`,
        group,
        name: `bytes on host after close, ${label}`,
        kind: "bytes",
        values: Object.fromEntries(o.contenders.map((c) => [c, stored.get(c)!])),
        runs: Object.fromEntries(o.contenders.map((c) => [c, 1])),
      },
    );
  }
  return rows;
}
