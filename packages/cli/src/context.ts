/**
 * What every command shares: the global options, finding the store
 * (--store, $AGENTFS_STORE, or the nearest `.agentfs` above the working
 * directory), opening a view of a branch or snapshot, resolving ref names,
 * and the error classes that decide the exit code.
 */
import { AgentFS, FsError, Store, StoreError, discoverStore, locateStore, type PunchHole, type Target } from "@agentfs/core";
import { resolve } from "node:path";
import type { Command } from "commander";
import { toJson } from "./format.js";

/** Options that every command accepts (declared on the root program). */
export interface GlobalOptions {
  /** Store directory, or a directory holding `.agentfs`. */
  store?: string;
  /** Branch to read and write instead of the checked-out one. */
  branch?: string;
  /** Snapshot to read (read-only). */
  snapshot?: string;
}

/**
 * A usage error: bad arguments or options. `main` prints
 * `agentfs: <message>` and exits with status 2.
 */
export class UsageError extends Error {
  constructor(message: string) {
    super(message);
    this.name = "UsageError";
  }
}

/**
 * An operation error raised by the CLI itself (not by core), carrying an
 * errno name as `code`; `main` prints `agentfs: <code>: <message>` and exits
 * with status 1.
 */
export class CliError extends Error {
  constructor(readonly code: string, message: string) {
    super(`${code}: ${message}`);
    this.name = "CliError";
  }
}

/**
 * A failure that has already been reported on stdout/stderr (for example
 * fsck problems): `main` prints `agentfs: <message>` and exits with status 1.
 */
export class ReportedFailure extends Error {
  constructor(message: string) {
    super(message);
    this.name = "ReportedFailure";
  }
}

/** The merged global options of the command being run (global options may be given before or after the subcommand). */
export function globals(cmd: Command): GlobalOptions {
  const o = cmd.optsWithGlobals() as GlobalOptions;
  if (o.branch !== undefined && o.snapshot !== undefined) throw new UsageError("--branch and --snapshot cannot be used together");
  return o;
}

/**
 * The store directory to use: `--store PATH` (a store directory or one that
 * holds `.agentfs`), else `$AGENTFS_STORE`, else the nearest `.agentfs`
 * above the working directory. Throws CliError ENOENT when none is found.
 */
export function findStore(g: GlobalOptions, cwd = process.cwd()): string {
  const explicit = g.store ?? (process.env.AGENTFS_STORE || undefined);
  if (explicit !== undefined) {
    const dir = locateStore(resolve(cwd, explicit));
    if (!dir) throw new CliError("ENOENT", `no agentfs store at '${explicit}'${g.store === undefined ? " (from $AGENTFS_STORE)" : ""}`);
    return dir;
  }
  const found = discoverStore(cwd);
  if (!found) throw new CliError("ENOENT", "not inside an agentfs store (no .agentfs here or in any parent directory); run 'agentfs init' or pass --store PATH");
  return found;
}

let punch: Promise<PunchHole | undefined> | undefined;

/**
 * The store options this platform adds to every store the CLI opens: on
 * Linux the hole punch (`punchHoleFd` of @agentfs/backstore-linux, loaded
 * on first use), which lets commit workers keep large bodies in pack files
 * and gc free them. Elsewhere, or when the addon cannot load, none: bodies
 * stay in the database.
 */
export async function platformStoreOptions(): Promise<{ punchHole?: PunchHole }> {
  punch ??= process.platform !== "linux"
    ? Promise.resolve(undefined)
    : import("@agentfs/backstore-linux").then(
        (m) => m.punchHoleFd,
        () => undefined,
      );
  const punchHole = await punch;
  return punchHole ? { punchHole } : {};
}

/**
 * Opens the store and a view of `--branch`, `--snapshot` or the checked-out
 * branch, runs `fn`, and closes everything (committing open files) even
 * when `fn` throws. With `writable`, a `--snapshot` view is refused with
 * EROFS before anything is done.
 */
export async function withFs<T>(cmd: Command, fn: (afs: AgentFS, g: GlobalOptions) => T | Promise<T>, opts: { writable?: boolean } = {}): Promise<T> {
  const g = globals(cmd);
  if (opts.writable && g.snapshot !== undefined) throw new CliError("EROFS", `snapshot '${g.snapshot}' is read-only; use --branch or a branch created from it`);
  const afs = AgentFS.openSync(findStore(g), { branch: g.branch, snapshot: g.snapshot, ...(await platformStoreOptions()) });
  try {
    return await fn(afs, g);
  } finally {
    afs.closeSync();
  }
}

/** Opens just the store (no view), runs `fn`, and closes it. */
export async function withStore<T>(cmd: Command, fn: (store: Store, g: GlobalOptions) => T | Promise<T>): Promise<T> {
  const g = globals(cmd);
  const store = Store.open(findStore(g), await platformStoreOptions());
  try {
    return await fn(store, g);
  } finally {
    store.close();
  }
}

/** The view target the global options select: `{snapshot}`, `{branch}` or the checked-out branch. */
export function targetOf(store: Store, g: GlobalOptions): Target {
  if (g.snapshot !== undefined) return { snapshot: g.snapshot };
  return { branch: g.branch ?? store.currentBranch() };
}

/** Human label of a target: `branch main` or `snapshot v1`. */
export function targetLabel(t: Target): string {
  return "snapshot" in t ? `snapshot ${t.snapshot}` : `branch ${t.branch}`;
}

/**
 * Resolves a ref given on the command line to a target. Accepted forms:
 * `snapshot:NAME` (or `s:NAME`), `branch:NAME` (or `b:NAME`), and a bare
 * NAME, which must name exactly one snapshot or branch. Errors: CliError
 * ENOENT when nothing has that name, EINVAL when a bare name is both.
 */
export function resolveRef(store: Store, ref: string): Target {
  const m = /^(snapshot|s|branch|b):(.*)$/.exec(ref);
  const hasSnap = (n: string) => store.listSnapshots().some((s) => s.name === n);
  const hasBranch = (n: string) => store.listBranches().some((b) => b.name === n);
  if (m) {
    const name = m[2]!;
    if (m[1]!.startsWith("s")) {
      if (!hasSnap(name)) throw new CliError("ENOENT", `no snapshot named '${name}'`);
      return { snapshot: name };
    }
    if (!hasBranch(name)) throw new CliError("ENOENT", `no branch named '${name}'`);
    return { branch: name };
  }
  const s = hasSnap(ref);
  const b = hasBranch(ref);
  if (s && b) throw new CliError("EINVAL", `'${ref}' names both a snapshot and a branch; write snapshot:${ref} or branch:${ref}`);
  if (s) return { snapshot: ref };
  if (b) return { branch: ref };
  throw new CliError("ENOENT", `no snapshot or branch named '${ref}'`);
}

/** Writes `value` as pretty JSON (bigints as strings) plus a newline to stdout. */
export function printJson(value: unknown): void {
  process.stdout.write(toJson(value) + "\n");
}

/** Writes a line to stdout. */
export function out(line = ""): void {
  process.stdout.write(line + "\n");
}

/**
 * The message `main` prints for an error (without the `agentfs: ` prefix),
 * always including the errno name when the error has one.
 */
export function errorMessage(e: unknown): string {
  if (e instanceof FsError || e instanceof StoreError || e instanceof CliError) return e.message;
  const err = e as { code?: unknown; message?: unknown };
  const msg = typeof err?.message === "string" ? err.message : String(e);
  if (typeof err?.code === "string" && !msg.includes(err.code)) return `${err.code}: ${msg}`;
  return msg;
}
