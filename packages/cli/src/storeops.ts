/**
 * Store-level operations of the CLI (snapshots, branches, restore, diff,
 * stats, gc, fsck, commit-lower) as one table of functions over an open
 * `Store`. The same function runs whether the CLI opened the store itself or
 * a mount daemon answers over its control socket (`control.ts`), so the
 * result, and therefore every printed line, `--json` document and exit
 * status, is the same either way.
 *
 * Each operation takes JSON arguments and returns a JSON-plain result
 * (`plainResult`: bigints become decimal strings, as `--json` prints them).
 * Storage logic stays in core: these are thin calls into `Store`, `diff`,
 * `stats`, `gc`, `fsck` and `applyToLower`, plus the hooks a daemon gives
 * (`ServedTree`) to keep the tree it serves consistent.
 */
import { applyToLower, diff, diffLower, fsck, gc, stats, type DiffEntry, type FsckReport, type GcReport, type StoreStats, type Store, type Target } from "@agentfs/core";
import { mknod } from "@agentfs/native";
import { CliError, UsageError, resolveRef } from "./context.js";
import { isoFromNs, toJson } from "./format.js";

/**
 * What a mount daemon lets operations do to the tree it serves. Absent when
 * the CLI opened the store itself (nothing else has buffers to commit).
 */
export interface ServedTree {
  /** Absolute mount point (for messages). */
  mountpoint: string;
  /** The branch the daemon serves writable, or null (a snapshot, or --read-only: nothing buffered). */
  branch: string | null;
  /** Commits the dirty data of every open file of the served branch, without closing any (`View.flushAll`). Errors: EIO. */
  flush(): void;
  /** Tells the daemon its branch was moved underneath it (restore, overlay reset): open files re-read (`View.reloadOpenFiles`). */
  moved(): void;
  /** Hex hashes of chunks only the daemon's open-but-unlinked files still use (`FsCore.heldChunks`), for gc to keep. */
  held(): Set<string>;
  /** Tells the daemon snapshots `names` were created or deleted (the mount drops the kernel's cached names under `/.agentfs/snapshots/`). */
  snapshotsChanged(names: string[]): void;
}

/** Snapshot as `snapshot create --json` and `snapshot list --json` print it. */
export interface SnapshotJson {
  name: string;
  branch: string | null;
  /** ISO-8601 UTC, ms precision. */
  created: string;
  /** Nanoseconds since the epoch, as a decimal string. */
  createdNs: string;
  message: string | null;
}

/** Branch as `branch list --json` prints it. */
export interface BranchJson {
  name: string;
  current: boolean;
  origin: string | null;
  /** ISO-8601 UTC, ms precision. */
  created: string;
  /** Nanoseconds since the epoch, as a decimal string. */
  createdNs: string;
}

/** `diff --json` output: the two targets, the changes (core DiffEntry, sorted by path) and counts per change kind. */
export interface DiffJson {
  from: Target;
  to: Target;
  changes: DiffEntry[];
  summary: { added: number; deleted: number; modified: number; typeChanged: number };
}

/** `stats --json` output: the target, core's StoreStats and referenced/stored bytes overall. */
export type StatsJson = { target: Target; overallRatio: number } & StoreStats;

/** `commit-lower --json` output. */
export interface CommitLowerJson {
  branch: string;
  lower: string;
  changes: DiffEntry[];
  skipped: Array<{ path: string; reason: string }>;
  reset: boolean;
  dryRun: boolean;
}

/** A value as JSON carries it: bigints turned into decimal strings (as `printJson` prints them), undefined fields dropped. */
export function plainResult<T>(value: T): T {
  return value === undefined ? value : (JSON.parse(toJson(value)) as T);
}

/** `args[key]` as a string (or undefined when `optional` and absent). Errors: EINVAL for another type. */
function str(args: Record<string, unknown>, key: string, optional: true): string | undefined;
function str(args: Record<string, unknown>, key: string, optional?: false): string;
function str(args: Record<string, unknown>, key: string, optional = false): string | undefined {
  const v = args[key];
  if (v === undefined || v === null) {
    if (optional) return undefined;
    throw new CliError("EINVAL", `bad request: '${key}' is required`);
  }
  if (typeof v !== "string") throw new CliError("EINVAL", `bad request: '${key}' must be a string`);
  return v;
}

/** `args[key]` as a list of strings. Errors: EINVAL. */
function strs(args: Record<string, unknown>, key: string): string[] {
  const v = args[key];
  if (!Array.isArray(v) || v.some((x) => typeof x !== "string")) throw new CliError("EINVAL", `bad request: '${key}' must be a list of strings`);
  return v as string[];
}

/** The branch named, else the checked-out one. */
function branchArg(store: Store, args: Record<string, unknown>): string {
  return str(args, "branch", true) ?? store.currentBranch();
}

/** True when the daemon serves `branch` writable (its open files may hold unflushed data). */
function serves(served: ServedTree | undefined, branch: string): served is ServedTree {
  return served !== undefined && served.branch === branch;
}

function snapshotJson(s: { name: string; branch: string | null; created: bigint; message: string | null }): SnapshotJson {
  return { name: s.name, branch: s.branch, created: isoFromNs(s.created), createdNs: s.created.toString(), message: s.message };
}

/**
 * One operation: `(store, args, served)` → JSON-plain result. Throws
 * StoreError/FsError/CliError (errno-coded) or UsageError (exit status 2).
 */
export type StoreOp = (store: Store, args: Record<string, unknown>, served?: ServedTree) => unknown;

/**
 * Every operation, by the name the control protocol uses. Arguments (all
 * optional unless marked) and results:
 *
 * - `snapshot.create` {name*, branch, message} → SnapshotJson. Commits the
 *   served branch's open files first, so the snapshot holds their bytes.
 * - `snapshot.list` {} → SnapshotJson[] (oldest first).
 * - `snapshot.delete` {names*} → null.
 * - `branch.create` {name*, from, lower (absolute host dir), branch,
 *   snapshot, checkout} → {name, origin, created, createdNs, current, source}
 *   (`source`: human description of where it came from). From the served
 *   branch: its open files are committed first.
 * - `branch.list` {} → BranchJson[].
 * - `branch.checkout` {name*} → null.
 * - `branch.delete` {names*} → null; EBUSY for the branch a daemon serves.
 * - `restore` {snapshot*, branch} → {branch, snapshot}; the served branch's
 *   open files are committed, the branch reset, and the daemon's open files
 *   re-read the restored state.
 * - `diff` {from, to, branch, snapshot} → DiffJson (UsageError when TO is a
 *   snapshot and FROM is missing; ENOENT when there is no snapshot to compare with).
 * - `stats` {branch, snapshot} → StatsJson.
 * - `gc` {} → GcReport (a daemon keeps the chunks its open unlinked files use).
 * - `fsck` {} → FsckReport.
 * - `commit-lower` {branch, dryRun, reset} → CommitLowerJson (EINVAL: not an overlay).
 */
export const STORE_OPS: Record<string, StoreOp> = {
  "snapshot.create": (store, args, served): SnapshotJson => {
    const branch = branchArg(store, args);
    if (serves(served, branch)) served.flush();
    const snap = snapshotJson(store.createSnapshot(str(args, "name"), { branch, message: str(args, "message", true) }));
    served?.snapshotsChanged([snap.name]);
    return snap;
  },

  "snapshot.list": (store): SnapshotJson[] => store.listSnapshots().map(snapshotJson),

  "snapshot.delete": (store, args, served) => {
    const names = strs(args, "names");
    try {
      for (const n of names) store.deleteSnapshot(n);
    } finally {
      served?.snapshotsChanged(names);
    }
    return null;
  },

  "branch.create": (store, args, served) => {
    const name = str(args, "name");
    const from = str(args, "from", true);
    const lower = str(args, "lower", true);
    const snapshot = str(args, "snapshot", true);
    if (lower !== undefined && from !== undefined) throw new UsageError("--lower and FROM exclude each other");
    const src: Target | { lower: string } =
      lower !== undefined ? { lower } : from !== undefined ? resolveRef(store, from) : snapshot !== undefined ? { snapshot } : { branch: branchArg(store, args) };
    if ("branch" in src && serves(served, src.branch)) served.flush();
    const b = store.createBranch(name, src);
    if (args.checkout === true) store.checkout(name);
    const source = "lower" in src ? `host directory ${store.lowerDirOf({ branch: name })}` : "snapshot" in src ? `snapshot ${src.snapshot}` : `branch ${src.branch}`;
    return { name: b.name, origin: b.origin, created: isoFromNs(b.created), createdNs: b.created.toString(), current: args.checkout === true, source };
  },

  "branch.list": (store): BranchJson[] =>
    store.listBranches().map((b) => ({ name: b.name, current: b.current, origin: b.origin, created: isoFromNs(b.created), createdNs: b.created.toString() })),

  "branch.checkout": (store, args) => {
    store.checkout(str(args, "name"));
    return null;
  },

  "branch.delete": (store, args, served) => {
    const names = strs(args, "names");
    for (const n of names) {
      if (serves(served, n)) throw new CliError("EBUSY", `branch ${n} is mounted on ${served.mountpoint}; unmount it first`);
    }
    for (const n of names) store.deleteBranch(n);
    return null;
  },

  restore: (store, args, served) => {
    const branch = branchArg(store, args);
    const snapshot = str(args, "snapshot");
    const live = serves(served, branch);
    if (live) served.flush();
    store.restore(snapshot, branch);
    if (live) served.moved();
    return { branch, snapshot };
  },

  diff: (store, args, served): DiffJson => {
    const fromRef = str(args, "from", true);
    const toRef = str(args, "to", true);
    const snapshot = str(args, "snapshot", true);
    const to: Target = toRef !== undefined ? resolveRef(store, toRef) : snapshot !== undefined ? { snapshot } : { branch: branchArg(store, args) };
    let from: Target;
    if (fromRef !== undefined) from = resolveRef(store, fromRef);
    else {
      if (!("branch" in to)) throw new UsageError("diff of a snapshot needs FROM");
      const snaps = store.listSnapshots().filter((s) => s.branch === to.branch);
      const last = snaps[snaps.length - 1];
      if (!last) throw new CliError("ENOENT", `branch ${to.branch} has no snapshot to compare with; give FROM (and TO)`);
      from = { snapshot: last.name };
    }
    for (const t of [from, to]) if ("branch" in t && serves(served, t.branch)) served.flush();
    const changes = diff(store, from, to);
    const summary = { added: 0, deleted: 0, modified: 0, typeChanged: 0 };
    for (const c of changes) {
      if (c.change === "added") summary.added++;
      else if (c.change === "deleted") summary.deleted++;
      else if (c.change === "modified") summary.modified++;
      else summary.typeChanged++;
    }
    return { from, to, changes, summary };
  },

  stats: (store, args, served): StatsJson => {
    const snapshot = str(args, "snapshot", true);
    const t: Target = snapshot !== undefined ? { snapshot } : { branch: branchArg(store, args) };
    if ("branch" in t && serves(served, t.branch)) served.flush();
    const s = stats(store, t);
    const overallRatio = s.store.storedBytes ? s.store.referencedBytes / s.store.storedBytes : 1;
    return { target: t, ...s, overallRatio };
  },

  gc: (store, _args, served): GcReport => gc(store, served?.held() ?? new Set()),

  fsck: (store): FsckReport => fsck(store),

  "commit-lower": (store, args, served): CommitLowerJson => {
    const branch = branchArg(store, args);
    const lower = store.lowerDirOf({ branch });
    if (lower === null) throw new CliError("EINVAL", `branch ${branch} is not an overlay (create one with 'agentfs branch create NAME --lower DIR')`);
    const dryRun = args.dryRun === true;
    const live = serves(served, branch);
    if (live) served.flush();
    const rep = dryRun ? { applied: diffLower(store, { branch }), skipped: [], reset: false } : applyToLower(store, branch, { reset: args.reset !== false, mknod });
    if (live && rep.reset) served.moved();
    return { branch, lower, changes: rep.applied, skipped: rep.skipped, reset: rep.reset, dryRun };
  },
};
