/**
 * Snapshot and branch commands: `snapshot create|list|delete`,
 * `branch create|list|checkout|delete` (with `--lower DIR`: an overlay
 * branch over a host directory), `restore`, `diff`, `commit-lower`.
 */
import { applyToLower, diff, diffLower, type DiffEntry, type Store, type Target } from "@agentfs/core";
import type { Command } from "commander";
import { CliError, UsageError, globals, out, printJson, resolveRef, targetLabel, withStore } from "../context.js";
import { humanBytes, isoFromNs } from "../format.js";

/** The branch that --branch names or the checked-out one; --snapshot is a usage error for commands that write. */
function branchOf(store: Store, cmd: Command): string {
  const g = globals(cmd);
  if (g.snapshot !== undefined) throw new UsageError("--snapshot cannot be used with this command (it changes a branch)");
  return g.branch ?? store.currentBranch();
}

/** `diff --json` output: the two targets, the changes (core DiffEntry, sorted by path) and counts per change kind. */
export interface DiffJson {
  from: Target;
  to: Target;
  changes: DiffEntry[];
  summary: { added: number; deleted: number; modified: number; typeChanged: number };
}

/** Registers the snapshot, branch, restore and diff commands on `program`. */
export function registerRefCommands(program: Command): void {
  const snap = program.command("snapshot").description("create, list and delete snapshots (immutable, O(1) copies of a branch)");

  snap
    .command("create")
    .description("snapshot the checked-out branch (or --branch)")
    .argument("<name>", "snapshot name")
    .option("-m, --message <text>", "message stored with the snapshot")
    .option("--json", "print the new snapshot as JSON")
    .action(async (name: string, opts: { message?: string; json?: boolean }, cmd: Command) => {
      await withStore(cmd, (store) => {
        const branch = branchOf(store, cmd);
        const s = store.createSnapshot(name, { branch, message: opts.message });
        if (opts.json) printJson({ name: s.name, branch: s.branch, created: isoFromNs(s.created), createdNs: s.created, message: s.message });
        else out(`created snapshot ${s.name} of branch ${branch}`);
      });
    });

  snap
    .command("list")
    .description("list snapshots, oldest first")
    .option("--json", "print a JSON array of {name, branch, created, createdNs, message}")
    .action(async (opts: { json?: boolean }, cmd: Command) => {
      await withStore(cmd, (store) => {
        const list = store.listSnapshots().map((s) => ({ name: s.name, branch: s.branch, created: isoFromNs(s.created), createdNs: s.created, message: s.message }));
        if (opts.json) return printJson(list);
        for (const s of list) out(`${s.name}\t${s.created}\t${s.branch ?? "-"}${s.message ? `\t${s.message}` : ""}`);
      });
    });

  snap
    .command("delete")
    .description("delete snapshots (their data is reclaimed by gc once unreachable)")
    .argument("<names...>", "snapshot names")
    .action(async (names: string[], _opts: unknown, cmd: Command) => {
      await withStore(cmd, (store) => {
        for (const n of names) store.deleteSnapshot(n);
      });
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
      await withStore(cmd, (store) => {
        const g = globals(cmd);
        if (opts.lower !== undefined && from !== undefined) throw new UsageError("--lower and FROM exclude each other");
        const src: Target | { lower: string } =
          opts.lower !== undefined ? { lower: opts.lower } : from !== undefined ? resolveRef(store, from) : g.snapshot !== undefined ? { snapshot: g.snapshot } : { branch: g.branch ?? store.currentBranch() };
        const b = store.createBranch(name, src);
        if (opts.checkout) store.checkout(name);
        if (opts.json) printJson({ name: b.name, origin: b.origin, created: isoFromNs(b.created), createdNs: b.created, current: !!opts.checkout });
        else out(`created branch ${name} from ${"lower" in src ? `host directory ${store.lowerDirOf({ branch: name })}` : targetLabel(src)}${opts.checkout ? " and checked it out" : ""}`);
      });
    });

  br.command("list")
    .description("list branches; * marks the checked-out one")
    .option("--json", "print a JSON array of {name, current, origin, created, createdNs}")
    .action(async (opts: { json?: boolean }, cmd: Command) => {
      await withStore(cmd, (store) => {
        const list = store.listBranches().map((b) => ({ name: b.name, current: b.current, origin: b.origin, created: isoFromNs(b.created), createdNs: b.created }));
        if (opts.json) return printJson(list);
        for (const b of list) out(`${b.current ? "*" : " "} ${b.name}${b.origin ? `\t(from ${b.origin})` : ""}`);
      });
    });

  br.command("checkout")
    .description("make NAME the branch that commands use by default")
    .argument("<name>", "branch name")
    .action(async (name: string, _opts: unknown, cmd: Command) => {
      await withStore(cmd, (store) => {
        store.checkout(name);
        out(`checked out branch ${name}`);
      });
    });

  br.command("delete")
    .description("delete branches (not the checked-out one)")
    .argument("<names...>", "branch names")
    .action(async (names: string[], _opts: unknown, cmd: Command) => {
      await withStore(cmd, (store) => {
        for (const n of names) store.deleteBranch(n);
      });
    });

  program
    .command("restore")
    .description("reset the checked-out branch (or --branch) to SNAPSHOT; its unsnapshotted changes are discarded")
    .argument("<snapshot>", "snapshot name")
    .action(async (snapshot: string, _opts: unknown, cmd: Command) => {
      await withStore(cmd, (store) => {
        const branch = branchOf(store, cmd);
        store.restore(snapshot, branch);
        out(`restored branch ${branch} to snapshot ${snapshot}`);
      });
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
      await withStore(cmd, (store) => {
        const g = globals(cmd);
        const to: Target = toRef !== undefined ? resolveRef(store, toRef) : g.snapshot !== undefined ? { snapshot: g.snapshot } : { branch: g.branch ?? store.currentBranch() };
        let from: Target;
        if (fromRef !== undefined) from = resolveRef(store, fromRef);
        else {
          if (!("branch" in to)) throw new UsageError("diff of a snapshot needs FROM");
          const snaps = store.listSnapshots().filter((s) => s.branch === to.branch);
          const last = snaps[snaps.length - 1];
          if (!last) throw new CliError("ENOENT", `branch ${to.branch} has no snapshot to compare with; give FROM (and TO)`);
          from = { snapshot: last.name };
        }
        const changes = diff(store, from, to);
        const summary = { added: 0, deleted: 0, modified: 0, typeChanged: 0 };
        for (const c of changes) {
          if (c.change === "added") summary.added++;
          else if (c.change === "deleted") summary.deleted++;
          else if (c.change === "modified") summary.modified++;
          else summary.typeChanged++;
        }
        if (opts.json) return printJson({ from, to, changes, summary } satisfies DiffJson);
        out(`diff ${targetLabel(from)} -> ${targetLabel(to)}`);
        for (const c of changes) {
          const letter = c.change === "added" ? "A" : c.change === "deleted" ? "D" : c.change === "modified" ? "M" : "T";
          let detail = "";
          if (c.change === "modified") {
            detail = ` (${(c.what ?? []).join(", ")}`;
            if (c.sizeBefore !== c.sizeAfter) detail += `; ${humanBytes(c.sizeBefore ?? 0)} -> ${humanBytes(c.sizeAfter ?? 0)}`;
            detail += ")";
          } else if (c.change === "type-changed") detail = ` (${c.kindBefore} -> ${c.kind})`;
          out(`${letter} ${c.kind === "dir" ? c.path + "/" : c.path}${detail}`);
        }
        out(`${summary.added} added, ${summary.deleted} deleted, ${summary.modified} modified, ${summary.typeChanged} type-changed`);
      });
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
      await withStore(cmd, (store) => {
        const branch = branchOf(store, cmd);
        const lower = store.lowerDirOf({ branch });
        if (lower === null) throw new CliError("EINVAL", `branch ${branch} is not an overlay (create one with 'agentfs branch create NAME --lower DIR')`);
        const rep = opts.dryRun ? { applied: diffLower(store, { branch }), skipped: [], reset: false } : applyToLower(store, branch, { reset: opts.reset });
        if (opts.json) return printJson({ branch, lower, changes: rep.applied, skipped: rep.skipped, reset: rep.reset, dryRun: !!opts.dryRun });
        for (const c of rep.applied) {
          const letter = c.change === "added" ? "A" : c.change === "deleted" ? "D" : c.change === "modified" ? "M" : "T";
          out(`${letter} ${c.kind === "dir" ? c.path + "/" : c.path}`);
        }
        for (const k of rep.skipped) out(`skipped ${k.path}: ${k.reason}`);
        out(`${opts.dryRun ? "would write" : "wrote"} ${rep.applied.length} change${rep.applied.length === 1 ? "" : "s"} to ${lower}${rep.reset ? "; branch reset onto it" : ""}`);
      });
    });
}
