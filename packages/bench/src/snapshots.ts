/**
 * Snapshot and branch workload: how long agentfs takes to snapshot a tree
 * after 100 files changed, and to create a branch, at 1k, 10k and 100k
 * files. Both should stay flat as the tree grows.
 *
 * Neither node:fs nor agentfs-sdk has snapshots or branches; the tmpfs
 * column shows what keeping such a copy costs there (a recursive `fs.cp`
 * of the tree), and agentfs-sdk is n/a.
 */
import * as nfs from "node:fs/promises";
import { constants as C } from "node:fs";
import { join } from "node:path";
import { AgentFS } from "@agentfs/core";
import type { ContenderId } from "./contenders.js";
import type { Row } from "./report.js";
import { collectGarbage, log, median, now, prng, removeDir, scratchDir } from "./util.js";

/** Parameters of the snapshot/branch workload. */
export interface SnapshotOptions {
  /** Tree sizes in files (default 1000, 10 000, 100 000). */
  sizes: number[];
  /** Files changed before each timed snapshot (default 100). */
  changes: number;
  /** Timed snapshots and branches per size (median). */
  runs: number;
  /** Largest tree size for which the tmpfs copy baseline is measured. */
  tmpfsMaxFiles: number;
  contenders: ContenderId[];
}

const FILES_PER_DIR = 1000;

function fileBody(i: number, gen: number): Buffer {
  return Buffer.from(`file ${i} generation ${gen}\n`.repeat(8));
}

function pathOf(i: number): string {
  return `/d${Math.floor(i / FILES_PER_DIR)}/f${i}.txt`;
}

/** Builds an n-file tree in agentfs quickly: one write transaction per directory via core.batch + openFile/write/close. */
function buildAgentfsTree(a: AgentFS, n: number): void {
  const core = a.core;
  const flags = C.O_WRONLY | C.O_CREAT | C.O_TRUNC;
  for (let d = 0; d * FILES_PER_DIR < n; d++) {
    core.batch(() => {
      core.mkdir(`/d${d}`, 0o755);
      for (let i = d * FILES_PER_DIR; i < Math.min(n, (d + 1) * FILES_PER_DIR); i++) {
        const b = fileBody(i, 0);
        const fd = core.openFile(pathOf(i), flags, 0o644);
        core.write(fd, b, 0, b.length, 0);
        core.close(fd);
      }
    });
  }
}

interface SizeResult {
  firstSnapshot: number;
  snapshot: number;
  branchFromSnapshot: number;
  branchFromBranch: number;
  tmpfsCopy?: number;
}

async function measureAgentfs(n: number, o: SnapshotOptions): Promise<Omit<SizeResult, "tmpfsCopy">> {
  const dir = scratchDir(`snap-${n}`);
  try {
    const a = await AgentFS.open(dir, { create: true });
    try {
      let t0 = now();
      buildAgentfsTree(a, n);
      log(`snapshot: built ${n} files in agentfs in ${(now() - t0).toFixed(0)} ms`);
      t0 = now();
      a.store.createSnapshot("base");
      const firstSnapshot = now() - t0;
      const rnd = prng(n);
      const snaps: number[] = [];
      const fromSnap: number[] = [];
      const fromBranch: number[] = [];
      // Warm-up: one change + snapshot + branch, not timed.
      await a.fs.writeFile(pathOf(0), fileBody(0, 99));
      a.store.createSnapshot("warm");
      a.store.createBranch("warm-b", { snapshot: "warm" });
      for (let r = 0; r < o.runs; r++) {
        for (let k = 0; k < o.changes; k++) {
          const i = Math.floor(rnd() * n);
          await a.fs.writeFile(pathOf(i), fileBody(i, r + 1));
        }
        collectGarbage();
        t0 = now();
        a.store.createSnapshot(`s${r}`);
        snaps.push(now() - t0);
        t0 = now();
        a.store.createBranch(`b${r}`, { snapshot: `s${r}` });
        fromSnap.push(now() - t0);
        // A branch from the live branch must first freeze its head: change files again so there is something to freeze.
        for (let k = 0; k < o.changes; k++) {
          const i = Math.floor(rnd() * n);
          await a.fs.writeFile(pathOf(i), fileBody(i, 100 + r));
        }
        t0 = now();
        a.store.createBranch(`bb${r}`, { branch: "main" });
        fromBranch.push(now() - t0);
      }
      // The last branch must see the whole tree with the latest changes.
      const b = await AgentFS.open(dir, { branch: `bb${o.runs - 1}` });
      try {
        const names = (await b.fs.readdir(`/d${Math.floor((n - 1) / FILES_PER_DIR)}`)) as string[];
        const expect = n - Math.floor((n - 1) / FILES_PER_DIR) * FILES_PER_DIR;
        if (names.length !== expect) throw new Error(`branch bb${o.runs - 1} lists ${names.length} entries, expected ${expect}`);
      } finally {
        await b.close();
      }
      return { firstSnapshot, snapshot: median(snaps), branchFromSnapshot: median(fromSnap), branchFromBranch: median(fromBranch) };
    } finally {
      await a.close();
    }
  } finally {
    removeDir(dir);
  }
}

async function measureTmpfsCopy(n: number): Promise<number> {
  const dir = scratchDir(`snap-tmpfs-${n}`);
  try {
    for (let d = 0; d * FILES_PER_DIR < n; d++) await nfs.mkdir(join(dir, "tree", `d${d}`), { recursive: true });
    for (let i = 0; i < n; i++) await nfs.writeFile(join(dir, "tree", pathOf(i)), fileBody(i, 0));
    collectGarbage();
    const t0 = now();
    await nfs.cp(join(dir, "tree"), join(dir, "copy"), { recursive: true });
    return now() - t0;
  } finally {
    removeDir(dir);
  }
}

/**
 * Runs the snapshot/branch workload for each tree size. Rows per size (ms,
 * median of `runs`): snapshot after `changes` changed files, branch from a
 * snapshot, branch from the live branch; plus the first snapshot of the
 * freshly built tree. The tmpfs column is one recursive copy of the tree.
 */
export async function benchSnapshots(o: SnapshotOptions): Promise<Row[]> {
  const res = new Map<number, SizeResult>();
  for (const n of o.sizes) {
    const r: SizeResult = await measureAgentfs(n, o);
    if (o.contenders.includes("tmpfs") && n <= o.tmpfsMaxFiles) r.tmpfsCopy = await measureTmpfsCopy(n);
    res.set(n, r);
    log(`snapshot ${n} files: first ${r.firstSnapshot.toFixed(2)} ms, after ${o.changes} changes ${r.snapshot.toFixed(2)} ms, branch ${r.branchFromSnapshot.toFixed(2)} / ${r.branchFromBranch.toFixed(2)} ms, tmpfs copy ${r.tmpfsCopy?.toFixed(0) ?? "-"} ms`);
  }
  const rows: Row[] = [];
  const group = "Snapshots and branches (agentfs only; tmpfs column = full recursive copy of the tree)";
  // The tmpfs copy stands in for a snapshot and for a branch; other rows leave tmpfs blank.
  const values = (n: number, v: number, withCopy = true) => {
    const out: Partial<Record<ContenderId, number | null>> = { agentfs: v };
    if (o.contenders.includes("tmpfs") && withCopy) out.tmpfs = res.get(n)!.tmpfsCopy ?? null;
    if (o.contenders.includes("sdk")) out.sdk = null;
    return out;
  };
  const runs = (k: number) => Object.fromEntries(o.contenders.map((c) => [c, c === "agentfs" ? k : 1]));
  const label = (n: number) => `${n.toLocaleString("en")} files`;
  for (const n of o.sizes) {
    const r = res.get(n)!;
    rows.push({ id: `snap.${n}`, group, name: `snapshot after ${o.changes} changed files, ${label(n)}`, kind: "ms", values: values(n, r.snapshot), runs: runs(o.runs) });
  }
  for (const n of o.sizes) {
    const r = res.get(n)!;
    rows.push({ id: `branch.snap.${n}`, group, name: `branch from a snapshot, ${label(n)}`, kind: "ms", values: values(n, r.branchFromSnapshot), runs: runs(o.runs) });
  }
  for (const n of o.sizes) {
    const r = res.get(n)!;
    rows.push({ id: `branch.live.${n}`, group, name: `branch from the live branch after ${o.changes} changes, ${label(n)}`, kind: "ms", values: values(n, r.branchFromBranch, false), runs: runs(o.runs) });
  }
  for (const n of o.sizes) {
    const r = res.get(n)!;
    rows.push({ id: `snap.first.${n}`, group, name: `first snapshot of a freshly built tree, ${label(n)}`, kind: "ms", values: values(n, r.firstSnapshot, false), runs: runs(1) });
  }
  const missing = o.sizes.filter((n) => res.get(n)!.tmpfsCopy === undefined);
  if (missing.length && o.contenders.includes("tmpfs")) rows[0].note = `tmpfs copy not measured above ${o.tmpfsMaxFiles.toLocaleString("en")} files (n/a) to keep the run short.`;
  return rows;
}
