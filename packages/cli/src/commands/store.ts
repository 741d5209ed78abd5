/**
 * Whole-store commands: `init`, `gc`, `fsck`, `stats`.
 */
import { AgentFS, STORE_DIR_NAME, isStoreDir, type FsckReport, type GcReport } from "@agentfs/core";
import { join, resolve } from "node:path";
import type { Command } from "commander";
import { CliError, ReportedFailure, globals, out, printJson, targetLabel } from "../context.js";
import { runStoreOp } from "../control.js";
import { humanBytes, ratio } from "../format.js";
import type { StatsJson } from "../storeops.js";

/**
 * Registers `init`, `gc`, `fsck` and `stats` on `program`. `gc`, `fsck` and
 * `stats` go through a live mount daemon's control socket when one serves
 * the store (see control.ts), else open the store directly.
 */
export function registerStoreCommands(program: Command): void {
  program
    .command("init")
    .description("create an empty store in PATH/.agentfs (PATH defaults to the working directory)")
    .argument("[path]", "directory to hold the .agentfs store")
    .option("--json", "print {store, branch} as JSON")
    .action(async (path: string | undefined, opts: { json?: boolean }) => {
      const dir = join(resolve(path ?? "."), STORE_DIR_NAME);
      if (isStoreDir(dir)) throw new CliError("EEXIST", `an agentfs store already exists at ${dir}`);
      const afs = AgentFS.openSync(dir, { create: true });
      const branch = afs.store.currentBranch();
      afs.closeSync();
      if (opts.json) printJson({ store: dir, branch });
      else out(`Initialized empty agentfs store in ${dir} (branch ${branch})`);
    });

  program
    .command("gc")
    .description("remove layers and objects no branch or snapshot reaches")
    .option("--json", "print the gc report as JSON")
    .action(async (opts: { json?: boolean }, cmd: Command) => {
      const r = await runStoreOp<GcReport>(cmd, "gc");
      if (opts.json) return printJson(r);
      out(`gc: removed ${r.layersRemoved} layers, ${r.inodeVersionsRemoved} inode versions, ${r.dentriesRemoved} directory entries, ${r.objectsRemoved} objects (${humanBytes(r.bytesFreed)} freed); ${r.objectsKept} objects kept`);
    });

  program
    .command("fsck")
    .description("verify every object and every branch and snapshot tree; exits 1 when problems are found")
    .option("--json", "print the fsck report as JSON")
    .action(async (opts: { json?: boolean }, cmd: Command) => {
      const r = await runStoreOp<FsckReport>(cmd, "fsck");
      if (opts.json) printJson(r);
      else {
        for (const p of r.problems) out(`${p.kind}: ${p.message}`);
        const c = r.checked;
        out(`fsck: checked ${c.objects} objects, ${c.inodeVersions} inode versions, ${c.views} views, ${c.entries} entries: ${r.ok ? "no problems found" : `${r.problems.length} problem${r.problems.length === 1 ? "" : "s"}`}`);
      }
      if (!r.ok) throw new ReportedFailure(`fsck found ${r.problems.length} problem${r.problems.length === 1 ? "" : "s"}`);
    });

  program
    .command("stats")
    .description("space and shape of the store and of the selected branch or snapshot tree")
    .option("--json", "print the statistics as JSON (bytes as numbers)")
    .action(async (opts: { json?: boolean }, cmd: Command) => {
      const g = globals(cmd);
      const r = await runStoreOp<StatsJson>(cmd, "stats", { branch: g.branch, snapshot: g.snapshot });
      if (opts.json) return printJson(r);
      const { target: t, overallRatio: overall, ...s } = r;
      const rows: Array<[string, string]> = [
        [`tree (${targetLabel(t)})`, ""],
        ["  files", String(s.tree.files)],
        ["  directories", String(s.tree.dirs)],
        ["  symlinks", String(s.tree.symlinks)],
        ["  logical size", `${humanBytes(s.tree.logicalBytes)} (${s.tree.logicalBytes} bytes)`],
        ["store", ""],
        ["  objects (chunks)", String(s.store.objects)],
        ["  chunk references", String(s.store.chunkRefs)],
        ["  referenced bytes", `${humanBytes(s.store.referencedBytes)} (${s.store.referencedBytes} bytes)`],
        ["  unique bytes", `${humanBytes(s.store.uniqueBytes)} (${s.store.uniqueBytes} bytes)`],
        ["  stored bytes", `${humanBytes(s.store.storedBytes)} (${s.store.storedBytes} bytes)`],
        ["  dedup ratio", ratio(s.store.dedupRatio)],
        ["  compression ratio", ratio(s.store.compressionRatio)],
        ["  overall ratio", ratio(overall)],
        ["  database on disk", humanBytes(s.store.databaseBytes)],
        ["  pack files on disk", `${humanBytes(s.store.packBytes)} in ${s.store.packFiles} file${s.store.packFiles === 1 ? "" : "s"}`],
        ["  layers", String(s.store.layers)],
        ["  branches", String(s.store.branches)],
        ["  snapshots", String(s.store.snapshots)],
      ];
      const w = Math.max(...rows.map((r) => r[0].length));
      for (const [k, v] of rows) out(v ? `${k.padEnd(w)}  ${v}` : k);
    });
}
