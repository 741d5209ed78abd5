/**
 * Snapshot and branch commands: `snapshot create|list|delete`,
 * `branch create|list|checkout|delete` (with `--lower DIR`: an overlay
 * branch over a host directory), `restore`, `diff`, `commit-lower`.
 */
import { resolve } from "node:path";
import type { Command } from "commander";
import { UsageError, globals, out, printJson, targetLabel } from "../context.js";
import { runStoreOp } from "../control.js";
import { humanBytes } from "../format.js";
import type { BranchJson, CommitLowerJson, DiffJson, SnapshotJson } from "../storeops.js";

export type { DiffJson } from "../storeops.js";

/**
 * The `branch` argument of an operation that changes a branch: --branch, or
 * undefined for the checked-out one. Errors: UsageError for --snapshot.
 */
function branchArg(cmd: Command): string | undefined {
  const g = globals(cmd);
  if (g.snapshot !== undefined) throw new UsageError("--snapshot cannot be used with this command (it changes a branch)");
  return g.branch;
}

/** One-letter code of a change kind, as `diff` and `commit-lower` print it. */
function changeLetter(change: string): string {
  return change === "added" ? "A" : change === "deleted" ? "D" : change === "modified" ? "M" : "T";
}

/**
 * Registers the snapshot, branch, restore, diff and commit-lower commands on
 * `program`. Each runs its operation (`STORE_OPS`) through the control socket
 * of a mount daemon serving the store when one is live, else on the store
 * opened directly; the output is the same either way.
 */
export function registerRefCommands(program: Command): void {
  const snap = program.command("snapshot").description("create, list and delete snapshots (immutable, O(1) copies of a branch)");

  snap
    .command("create")
    .description("snapshot the checked-out branch (or --branch); when mounted, includes what open files hold so far")
    .argument("<name>", "snapshot name")
    .option("-m, --message <text>", "message stored with the snapshot")
    .option("--json", "print the new snapshot as JSON")
    .action(async (name: string, opts: { message?: string; json?: boolean }, cmd: Command) => {
      const s = await runStoreOp<SnapshotJson>(cmd, "snapshot.create", { name, branch: branchArg(cmd), message: opts.message });
      if (opts.json) printJson(s);
      else out(`created snapshot ${s.name} of branch ${s.branch}`);
    });

  snap
    .command("list")
    .description("list snapshots, oldest first")
    .option("--json", "print a JSON array of {name, branch, created, createdNs, message}")
    .action(async (opts: { json?: boolean }, cmd: Command) => {
      const list = await runStoreOp<SnapshotJson[]>(cmd, "snapshot.list");
      if (opts.json) return printJson(list);
      for (const s of list) out(`${s.name}\t${s.created}\t${s.branch ?? "-"}${s.message ? `\t${s.message}` : ""}`);
    });

  snap
    .command("delete")
    .description("delete snapshots (their data is reclaimed by gc once unreachable)")
    .argument("<names...>", "snapshot names")
    .action(async (names: string[], _opts: unknown, cmd: Command) => {
      await runStoreOp(cmd, "snapshot.delete", { names });
    });

  const br = program.command("branch").description("create, list, check out and delete branches");

  br.command("create")
    .description("create a branch (O(1)) from a snapshot or branch; default: the current branch's present state")
    .argument("<name>", "branch name")
    .argument("[from]", "source: snapshot:NAME, branch:NAME, or a NAME that is one of the two")
    .option("-c, --checkout", "check the new branch out")
    .option("--lower <dir>", "create an overlay branch copy-on-write over host directory DIR (never written; see commit-lower)")
    .option("--json", "print the new branch as JSON")
    .action(async (name: string, from: string | undefined, opts: { checkout?: boolean; json?: boolean; lower?: string }, cmd: Command) => {
      const g = globals(cmd);
      if (opts.lower !== undefined && from !== undefined) throw new UsageError("--lower and FROM exclude each other");
      const b = await runStoreOp<BranchJson & { source: string }>(cmd, "branch.create", {
        name, from, lower: opts.lower !== undefined ? resolve(opts.lower) : undefined, branch: g.branch, snapshot: g.snapshot, checkout: !!opts.checkout,
      });
      if (opts.json) printJson({ name: b.name, origin: b.origin, created: b.created, createdNs: b.createdNs, current: b.current });
      else out(`created branch ${name} from ${b.source}${opts.checkout ? " and checked it out" : ""}`);
    });

  br.command("list")
    .description("list branches; * marks the checked-out one")
    .option("--json", "print a JSON array of {name, current, origin, created, createdNs}")
    .action(async (opts: { json?: boolean }, cmd: Command) => {
      const list = await runStoreOp<BranchJson[]>(cmd, "branch.list");
      if (opts.json) return printJson(list);
      for (const b of list) out(`${b.current ? "*" : " "} ${b.name}${b.origin ? `\t(from ${b.origin})` : ""}`);
    });

  br.command("checkout")
    .description("make NAME the branch that commands use by default")
    .argument("<name>", "branch name")
    .action(async (name: string, _opts: unknown, cmd: Command) => {
      await runStoreOp(cmd, "branch.checkout", { name });
      out(`checked out branch ${name}`);
    });

  br.command("delete")
    .description("delete branches (not the checked-out one, nor one a mount serves: EBUSY)")
    .argument("<names...>", "branch names")
    .action(async (names: string[], _opts: unknown, cmd: Command) => {
      await runStoreOp(cmd, "branch.delete", { names });
    });

  program
    .command("restore")
    .description("reset the checked-out branch (or --branch) to SNAPSHOT; its unsnapshotted changes are discarded (a mount of it then serves the restored tree)")
    .argument("<snapshot>", "snapshot name")
    .action(async (snapshot: string, _opts: unknown, cmd: Command) => {
      const r = await runStoreOp<{ branch: string; snapshot: string }>(cmd, "restore", { snapshot, branch: branchArg(cmd) });
      out(`restored branch ${r.branch} to snapshot ${r.snapshot}`);
    });

  program
    .command("diff")
    .description(
      "show what changed from FROM to TO (each snapshot:NAME, branch:NAME or a bare name). " +
        "TO defaults to the current branch (or --branch/--snapshot); with no FROM, the latest snapshot taken from that branch",
    )
    .argument("[from]", "older state")
    .argument("[to]", "newer state")
    .option("--json", "print {from, to, changes: [{path, change, kind, sizeBefore, sizeAfter, what}], summary} as JSON")
    .action(async (fromRef: string | undefined, toRef: string | undefined, opts: { json?: boolean }, cmd: Command) => {
      const g = globals(cmd);
      const d = await runStoreOp<DiffJson>(cmd, "diff", { from: fromRef, to: toRef, branch: g.branch, snapshot: g.snapshot });
      if (opts.json) return printJson(d);
      const { from, to, changes, summary } = d;
      out(`diff ${targetLabel(from)} -> ${targetLabel(to)}`);
      for (const c of changes) {
        let detail = "";
        if (c.change === "modified") {
          detail = ` (${(c.what ?? []).join(", ")}`;
          if (c.sizeBefore !== c.sizeAfter) detail += `; ${humanBytes(c.sizeBefore ?? 0)} -> ${humanBytes(c.sizeAfter ?? 0)}`;
          detail += ")";
        } else if (c.change === "type-changed") detail = ` (${c.kindBefore} -> ${c.kind})`;
        out(`${changeLetter(c.change)} ${c.kind === "dir" ? c.path + "/" : c.path}${detail}`);
      }
      out(`${summary.added} added, ${summary.deleted} deleted, ${summary.modified} modified, ${summary.typeChanged} type-changed`);
    });

  program
    .command("commit-lower")
    .description(
      "write the changes of the checked-out overlay branch (or --branch) to its host directory, atomically per file; " +
        "then the branch reads the updated host afresh (unless --no-reset)",
    )
    .option("-n, --dry-run", "only list what would be written (the branch's diff against its host directory)")
    .option("--no-reset", "keep the branch's own layers after writing")
    .option("--json", "print {branch, lower, changes, skipped, reset} as JSON")
    .action(async (opts: { dryRun?: boolean; reset: boolean; json?: boolean }, cmd: Command) => {
      const rep = await runStoreOp<CommitLowerJson>(cmd, "commit-lower", { branch: branchArg(cmd), dryRun: !!opts.dryRun, reset: opts.reset });
      if (opts.json) return printJson(rep);
      for (const c of rep.changes) out(`${changeLetter(c.change)} ${c.kind === "dir" ? c.path + "/" : c.path}`);
      for (const k of rep.skipped) out(`skipped ${k.path}: ${k.reason}`);
      out(`${rep.dryRun ? "would write" : "wrote"} ${rep.changes.length} change${rep.changes.length === 1 ? "" : "s"} to ${rep.lower}${rep.reset ? "; branch reset onto it" : ""}`);
    });
}
