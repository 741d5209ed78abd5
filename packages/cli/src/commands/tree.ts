/**
 * `import HOSTDIR [DEST]` and `export SRC HOSTDIR`: copy whole trees between
 * the host and a view, preserving modes, times, symlinks, hard links and
 * user xattrs (core's importTree/exportTree do the copying).
 */
import { exportTree, importTree, type TreeReport } from "@agentfs/core";
import { mknod } from "@agentfs/native";
import { resolve } from "node:path";
import type { Command } from "commander";
import { out, printJson, targetLabel, withFs } from "../context.js";
import { humanBytes, seconds } from "../format.js";
import { progressBar } from "../progress.js";

interface TreeCmdOptions {
  json?: boolean;
  progress?: boolean;
  overwrite?: boolean;
}

/** The JSON report of an import or export: the core TreeReport plus where, what view and how long (ms). */
export interface TreeCommandReport extends TreeReport {
  operation: "import" | "export";
  host: string;
  path: string;
  target: string;
  ms: number;
}

function summary(r: TreeCommandReport): string {
  const verb = r.operation === "import" ? `imported ${r.host} into ${r.target}:${r.path}` : `exported ${r.target}:${r.path} to ${r.host}`;
  const skipped = r.skipped.length ? `; skipped ${r.skipped.length} (device nodes without root, or unsupported xattrs)` : "";
  const specials = r.specials ? `, ${r.specials} FIFOs/sockets/devices` : "";
  return `${verb}: ${r.files} files, ${r.dirs} directories, ${r.symlinks} symlinks, ${r.hardlinks} hard links${specials}, ${humanBytes(r.bytes)} in ${seconds(r.ms)}${skipped}`;
}

/** Registers `import` and `export` on `program`. */
export function registerTreeCommands(program: Command): void {
  program
    .command("import")
    .description("copy host directory HOSTDIR into the branch at DEST (default /), preserving modes, times, symlinks, hard links and user xattrs")
    .argument("<hostdir>", "host directory to copy")
    .argument("[dest]", "destination directory in the store", "/")
    .option("--json", "print the import report as JSON")
    .option("--no-progress", "never draw a progress bar (it is drawn only when stderr is a terminal)")
    .action(async (hostdir: string, dest: string, opts: TreeCmdOptions, cmd: Command) => {
      await withFs(
        cmd,
        (afs) => {
          const host = resolve(hostdir);
          const bar = progressBar("import", opts.progress !== false);
          const t0 = Date.now();
          let rep: TreeReport;
          try {
            rep = importTree(afs.core, host, dest, { onProgress: (p) => bar.update(p) });
          } finally {
            bar.stop();
          }
          const r: TreeCommandReport = { operation: "import", host, path: dest, target: targetLabel(afs.target), ...rep, ms: Date.now() - t0 };
          if (opts.json) printJson(r);
          else out(summary(r));
        },
        { writable: true },
      );
    });

  program
    .command("export")
    .description("copy directory SRC of the branch or snapshot to host directory HOSTDIR (created; must be empty unless --overwrite)")
    .argument("<src>", "directory in the store (/ for everything)")
    .argument("<hostdir>", "host directory to write")
    .option("--overwrite", "write into a non-empty HOSTDIR, replacing files of the same name")
    .option("--json", "print the export report as JSON")
    .option("--no-progress", "never draw a progress bar (it is drawn only when stderr is a terminal)")
    .action(async (src: string, hostdir: string, opts: TreeCmdOptions, cmd: Command) => {
      await withFs(cmd, (afs) => {
        const host = resolve(hostdir);
        const bar = progressBar("export", opts.progress !== false);
        const t0 = Date.now();
        let rep: TreeReport;
        try {
          rep = exportTree(afs.core, src, host, { overwrite: opts.overwrite, mknod, onProgress: (p) => bar.update(p) });
        } finally {
          bar.stop();
        }
        const r: TreeCommandReport = { operation: "export", host, path: src, target: targetLabel(afs.target), ...rep, ms: Date.now() - t0 };
        if (opts.json) printJson(r);
        else out(summary(r));
      });
    });
}
