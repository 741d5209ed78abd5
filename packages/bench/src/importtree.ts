/**
 * Tree-import workload: copy a real host tree (default /usr/share/doc) into
 * each contender, twice over:
 *
 * - "native": each contender's own bulk tool — a recursive `fs.cp` for
 *   tmpfs, `importTree` for agentfs (one transaction per directory, keeps
 *   modes, times, xattrs, hard links); agentfs-sdk has none (n/a);
 * - "walk + writeFile": the same loop for everyone — mkdir each directory,
 *   read each host file and `writeFile` it, recreate each symlink.
 *
 * Host reads are part of every timing; the host tree is read once first so
 * all contenders start with it in the page cache.
 */
import * as nfs from "node:fs/promises";
import { readFileSync, readlinkSync } from "node:fs";
import { join } from "node:path";
import { importTree } from "@agentfs/core";
import { AgentFsFs, type BenchFs, type ContenderId, openContender, TmpfsFs } from "./contenders.js";
import type { Row } from "./report.js";
import { collectGarbage, log, median, now, scanTree, type HostTree } from "./util.js";

/** Parameters of the import workload. */
export interface ImportOptions {
  /** Host directory to import. */
  source: string;
  /** Timed runs for tmpfs and agentfs (median). */
  runs: number;
  /** Timed runs for agentfs-sdk. */
  sdkRuns: number;
  contenders: ContenderId[];
}

/** The same copy loop for every contender: mkdir, readFile(host) + writeFile, symlink. Returns file bytes written. */
async function walkCopy(fs: BenchFs, src: string, tree: HostTree): Promise<number> {
  await fs.mkdir("/doc");
  for (const d of tree.dirs) await fs.mkdir(`/doc/${d}`);
  let bytes = 0;
  for (const f of tree.files) {
    const data = await nfs.readFile(join(src, f.rel));
    await fs.writeFile(`/doc/${f.rel}`, data);
    bytes += data.length;
  }
  for (const l of tree.symlinks) await fs.symlink(readlinkSync(join(src, l)), `/doc/${l}`);
  return bytes;
}

/** Each contender's own bulk import; null when it has none. Returns file bytes copied. */
async function nativeCopy(fs: BenchFs, src: string): Promise<number | null> {
  if (fs instanceof TmpfsFs) {
    await nfs.cp(src, join(fs.dir, "doc"), { recursive: true, verbatimSymlinks: true, preserveTimestamps: true });
    return -1;
  }
  if (fs instanceof AgentFsFs) return importTree(fs.afs.core, src, "/doc").bytes;
  return null;
}

/**
 * Runs the import workload. Returns two rows (ms, median): native bulk
 * import and walk + writeFile, with throughput over the tree's file bytes.
 */
export async function benchImport(o: ImportOptions): Promise<Row[]> {
  const tree = scanTree(o.source);
  for (const f of tree.files) readFileSync(join(o.source, f.rel)); // warm the page cache
  log(`import source ${o.source}: ${tree.files.length} files, ${tree.dirs.length} dirs, ${tree.symlinks.length} symlinks, ${(tree.bytes / 1e6).toFixed(1)} MB`);
  const native = new Map<ContenderId, number[] | null>();
  const walk = new Map<ContenderId, number[]>();
  const runsOf = (id: ContenderId) => (id === "sdk" ? o.sdkRuns : o.runs);
  const maxRuns = Math.max(...o.contenders.map(runsOf));
  for (let run = 0; run < maxRuns; run++) {
    const order = o.contenders.map((_, i) => o.contenders[(i + run) % o.contenders.length]);
    for (const id of order) {
      if (run >= runsOf(id)) continue;
      for (const mode of ["native", "walk"] as const) {
        if (mode === "native" && native.get(id) === null) continue;
        collectGarbage();
        const fs = await openContender(id, `import-${mode}-${run}`);
        try {
          const t0 = now();
          const bytes = mode === "native" ? await nativeCopy(fs, o.source) : await walkCopy(fs, o.source, tree);
          const ms = now() - t0;
          if (bytes === null) {
            native.set(id, null);
            continue;
          }
          // Check the copy: every file is there with its size.
          let seen = 0;
          for (const f of tree.files) seen += await fs.stat(`/doc/${f.rel}`);
          if (seen !== tree.bytes || (bytes >= 0 && bytes !== tree.bytes)) throw new Error(`${id} ${mode}: copied ${bytes}/${seen} bytes of ${tree.bytes}`);
          const m = mode === "native" ? native : walk;
          ((m.get(id) as number[] | undefined) ?? (m.set(id, []).get(id) as number[])).push(ms);
          log(`import ${mode} run ${run + 1} ${id}: ${ms.toFixed(0)} ms`);
        } finally {
          await fs.dispose();
        }
      }
    }
  }
  const group = `Import ${o.source}: ${tree.files.length.toLocaleString("en")} files, ${(tree.bytes / 1e6).toFixed(0)} MB`;
  const runs = Object.fromEntries(o.contenders.map((c) => [c, runsOf(c)]));
  const w = { bytes: tree.bytes, ops: tree.files.length };
  return [
    {
      id: "import.native",
      group,
      name: "bulk import (fs.cp -r / importTree)",
      kind: "ms",
      values: Object.fromEntries(o.contenders.map((c) => [c, native.get(c) ? median(native.get(c)!) : null])),
      work: w,
      runs,
      note: "agentfs-sdk has no bulk import (n/a); agentfs importTree also copies modes, times, xattrs and hard links.",
    },
    {
      id: "import.walk",
      group,
      name: "walk + readFile/writeFile per file",
      kind: "ms",
      values: Object.fromEntries(o.contenders.map((c) => [c, median(walk.get(c)!)])),
      work: w,
      runs,
    },
  ];
}
