/**
 * `agentfs mount STORE MOUNTPOINT`, `agentfs umount MOUNTPOINT` and
 * `agentfs status`: serving a branch or snapshot through FUSE.
 *
 * A mount is one daemon process (`mount --foreground`, started detached by a
 * plain `mount`). While it runs it keeps a record, one JSON file per mount,
 * in the runtime directory (`runtimeDir()`): `{ pid, mountpoint, store,
 * target, readOnly, allowOther, lower, started, log, control }`, and listens
 * on its control socket (`control`; protocol in ../control.ts) so that the
 * other commands act on the store through it. `status` reads those records
 * and checks that each pid is alive and the mount answers; `umount` signals
 * the daemon (SIGTERM: commit open files, unmount, exit) and falls back to
 * `fusermount -uz` when the daemon is gone. The daemon's log
 * (`mount-<id>.log` next to the record) is kept after `umount`: it ends
 * with the per-operation request stats; the next mount on the same mount
 * point starts it afresh.
 */
import { CommitPool, Store, ensureOverlayBranch, gcAsync, locateStore, type Target } from "@agentfs/core";
import { fsckInWorker } from "../fsckworker.js";
import { FuseMount, isFuseMounted, isStaleMount, lazyUnmount, recoverStaleMount, DEFAULT_MAX_WRITE, DEFAULT_POLL_SPIN_US, DEFAULT_HOLD_MS, DEFAULT_CACHE_TIMEOUT, DEFAULT_OUTSIDE_CHECK_MS, FUSE_AUTO_COMMIT_BYTES } from "@agentfs/fuse";
import { View } from "@agentfs/view";
import { spawn } from "node:child_process";
import { createHash } from "node:crypto";
import { closeSync, existsSync, mkdirSync, openSync, readFileSync, readdirSync, renameSync, rmSync, statSync, writeFileSync } from "node:fs";
import { join, resolve } from "node:path";
import { fileURLToPath } from "node:url";
import type { Command } from "commander";
import { CliError, UsageError, globals, out, platformStoreOptions, printJson, targetLabel } from "../context.js";
import { CONTROL_PROTOCOL, ControlServer } from "../control.js";
import { STORE_OPS, type ServedTree } from "../storeops.js";

/** What a running mount daemon records about itself (one JSON file per mount in `runtimeDir()`). */
export interface MountRecord {
  /** Daemon process id. */
  pid: number;
  /** Absolute mount point. */
  mountpoint: string;
  /** Absolute store directory. */
  store: string;
  /** Branch or snapshot served at the root. */
  target: Target;
  /** True when mounted read-only (--read-only or a snapshot). */
  readOnly: boolean;
  /** True when mounted with FUSE allow_other (other users may use the mount). */
  allowOther?: boolean;
  /** Host directory of the overlay branch served (--lower), else null. */
  lower?: string | null;
  /** ISO time the mount became ready. */
  started: string;
  /** Daemon log file (stdout/stderr of a background daemon); kept after umount. */
  log: string;
  /** Control socket (unix, mode 0600; protocol in control.ts), or null when the daemon could not listen (see its log). */
  control?: string | null;
}

/** A record as `status` reports it: plus whether the daemon lives and the mount answers. */
export interface MountStatus extends MountRecord {
  /** "ok": daemon alive and mounted; "stale": mounted but the daemon is gone (ENOTCONN); "gone": neither. */
  state: "ok" | "stale" | "gone";
}

/**
 * Directory of mount records: $AGENTFS_RUNTIME_DIR, else
 * $XDG_RUNTIME_DIR/agentfs, else /run/agentfs for root, else
 * /tmp/agentfs-<uid>. Created (mode 0700) on demand by writers.
 */
export function runtimeDir(): string {
  if (process.env.AGENTFS_RUNTIME_DIR) return resolve(process.env.AGENTFS_RUNTIME_DIR);
  if (process.env.XDG_RUNTIME_DIR) return join(process.env.XDG_RUNTIME_DIR, "agentfs");
  const uid = process.getuid?.() ?? 0;
  return uid === 0 ? "/run/agentfs" : `/tmp/agentfs-${uid}`;
}

/** Record file path for `mountpoint` (a hash of the absolute path, so any path fits). */
export function recordPath(mountpoint: string): string {
  const id = createHash("sha256").update(resolve(mountpoint)).digest("hex").slice(0, 16);
  return join(runtimeDir(), `mount-${id}.json`);
}

/** Control socket path of the daemon serving `mountpoint`: the record path with `.sock`. */
export function socketPath(mountpoint: string): string {
  return recordPath(mountpoint).replace(/\.json$/, ".sock");
}

/**
 * Whether mounts get FUSE `allow_other` when neither --allow-other nor
 * --no-allow-other is given: yes for root, and for other users when
 * /etc/fuse.conf has an uncommented `user_allow_other` line (fusermount
 * refuses the option otherwise).
 */
export function defaultAllowOther(): boolean {
  if ((process.getuid?.() ?? 0) === 0) return true;
  try {
    return /^\s*user_allow_other\s*$/m.test(readFileSync("/etc/fuse.conf", "utf8"));
  } catch {
    return false;
  }
}

/** The record for `mountpoint`, or undefined when none (or unreadable). */
export function readRecord(mountpoint: string): MountRecord | undefined {
  try {
    return JSON.parse(readFileSync(recordPath(mountpoint), "utf8")) as MountRecord;
  } catch {
    return undefined;
  }
}

/** Every readable mount record in `runtimeDir()`. */
export function listRecords(): MountRecord[] {
  const dir = runtimeDir();
  let names: string[] = [];
  try {
    names = readdirSync(dir).filter((n) => n.startsWith("mount-") && n.endsWith(".json"));
  } catch {
    return [];
  }
  const out: MountRecord[] = [];
  for (const n of names) {
    try {
      out.push(JSON.parse(readFileSync(join(dir, n), "utf8")) as MountRecord);
    } catch {
      /* half-written or foreign file: skip */
    }
  }
  return out.sort((a, b) => (a.mountpoint < b.mountpoint ? -1 : 1));
}

/**
 * True when process `pid` exists and is not a zombie (signal 0 succeeds or is
 * refused with EPERM; on Linux /proc/PID/stat state is not Z). A detached
 * daemon's parent has exited, so after it dies it may stay a zombie until
 * init or a subreaper collects it.
 */
export function pidAlive(pid: number): boolean {
  try {
    process.kill(pid, 0);
  } catch (e) {
    if ((e as NodeJS.ErrnoException).code !== "EPERM") return false;
  }
  try {
    const stat = readFileSync(`/proc/${pid}/stat`, "utf8");
    return stat.slice(stat.lastIndexOf(")") + 2, stat.lastIndexOf(")") + 3) !== "Z";
  } catch {
    return true; // no procfs: trust kill(pid, 0)
  }
}

function stateOf(r: MountRecord): MountStatus["state"] {
  const mounted = isFuseMounted(r.mountpoint);
  if (mounted && isStaleMount(r.mountpoint)) return "stale";
  if (pidAlive(r.pid) && mounted) return "ok";
  return mounted ? "stale" : "gone";
}

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

/** Prefix of the `store` field of a RAM mount's record: "ram:<name>". */
export const RAM_PREFIX = "ram:";

/**
 * Opens the store a daemon serves: the on-disk store in `storeDir`, or for
 * "ram:<name>" a new RAM store (`openRamStore` from backstore-linux: the
 * manifest in memory, object bodies and working buffers in memfds, no file
 * anywhere). `close` releases it; a RAM store's contents are gone after.
 * Errors: those of Store.open; ENOSYS for a RAM store off Linux.
 */
async function openServedStore(storeDir: string): Promise<{ store: Store; close: () => Promise<void> }> {
  if (!storeDir.startsWith(RAM_PREFIX)) {
    const store = Store.open(storeDir, await platformStoreOptions());
    return { store, close: async () => store.close() };
  }
  // Loaded only for --ram, so other commands never load the memfd addon.
  const { openRamStore } = await import("@agentfs/backstore-linux");
  const ram = openRamStore(storeDir);
  return { store: ram.afs.store, close: () => ram.close() };
}

/**
 * Option `flag`'s value `raw` as a whole number from 0 to `max` (no upper
 * bound without it), in `unit`. Errors: UsageError naming the flag.
 */
function wholeNumber(flag: string, raw: string | undefined, unit: string, max?: number): number {
  const n = Number(raw);
  if (!Number.isInteger(n) || n < 0 || (max !== undefined && n > max)) {
    throw new UsageError(`${flag} must be a whole number of ${unit}${max === undefined ? "" : ` from 0 to ${max}`}, got '${raw}'`);
  }
  return n;
}

interface MountCliOptions {
  ram?: boolean;
  lower?: string;
  readOnly?: boolean;
  foreground?: boolean;
  allowOther?: boolean;
  defaultPermissions?: boolean;
  maxWrite?: string;
  pollSpinUs?: string;
  holdMs?: string;
  cacheTimeout?: string;
  outsideCheckMs?: string;
  timeout?: string;
}

/** Registers `mount`, `umount` and `status` on `program`. */
export function registerMountCommands(program: Command): void {
  program
    .command("mount")
    .description("serve a branch (default: the checked-out one) or snapshot through FUSE at MOUNTPOINT; returns once the mount answers")
    .argument("<store>", "store directory (or a directory holding .agentfs); with --ram, a name for the new RAM store")
    .argument("<mountpoint>", "an existing empty directory")
    .option("--ram", "serve a new RAM store: manifest in memory, file and object bytes in memfds, nothing on disk; its contents vanish at unmount")
    .option(
      "--lower <dir>",
      "serve an overlay branch copy-on-write over host directory DIR (never written): the --branch (default: the checked-out one) is created over DIR when missing, " +
        "a new store's untouched branch becomes it, an overlay over DIR is reused; EINVAL for a branch over another directory or a plain branch with content",
    )
    .option("--read-only", "refuse every change with EROFS")
    .option("--foreground", "serve in this process until SIGTERM/SIGINT instead of starting a daemon")
    .option("--allow-other", "let other users use the mount (FUSE allow_other; the default for root, or when /etc/fuse.conf has user_allow_other)")
    .option("--no-allow-other", "only the mounting user may use the mount")
    .option("--no-default-permissions", "do not let the kernel check mode bits (every caller gets the daemon's rights)")
    .option("--poll-spin-us <us>", "after serving requests, poll this long for the next one before sleeping (adaptive; 0 never)", String(DEFAULT_POLL_SPIN_US))
    .option(
      "--hold-ms <ms>",
      "let consecutive requests share one store transaction for up to this many ms (0: one per request); close, fsync and fsync of a directory still commit before they answer",
      String(DEFAULT_HOLD_MS),
    )
    .option("--cache-timeout <s>", `seconds the kernel may cache names and attributes (default ${DEFAULT_CACHE_TIMEOUT}, 1 over an overlay; 0 asks the daemon every time)`)
    .option(
      "--outside-check-ms <ms>",
      "how often the daemon looks for commits by other processes to the store, and then drops the kernel's caches (0: never; they show when the cache timeout runs out)",
      String(DEFAULT_OUTSIDE_CHECK_MS),
    )
    .option("--max-write <bytes>", `largest write request the kernel sends, in bytes (at most 1 MiB); 0 for 4096`, String(DEFAULT_MAX_WRITE))
    .option("--timeout <seconds>", "how long to wait for the background daemon's mount to answer", "30")
    .action(async (storeArg: string, mpArg: string, opts: MountCliOptions, cmd: Command) => {
      const g = globals(cmd);
      if (opts.ram && g.snapshot !== undefined) throw new UsageError("--ram starts an empty store: it has no snapshots to serve");
      if (opts.lower !== undefined && g.snapshot !== undefined) throw new UsageError("--lower serves a writable overlay branch; it cannot be used with --snapshot");
      if (opts.lower !== undefined) {
        opts.lower = resolve(opts.lower);
        let lst;
        try {
          lst = statSync(opts.lower);
        } catch {
          throw new CliError("ENOENT", `host directory '${opts.lower}' does not exist`);
        }
        if (!lst.isDirectory()) throw new CliError("ENOTDIR", `host directory '${opts.lower}' is not a directory`);
      }
      opts.allowOther ??= defaultAllowOther();
      const storeDir = opts.ram ? `${RAM_PREFIX}${storeArg}` : locateStore(resolve(storeArg));
      if (!storeDir) throw new CliError("ENOENT", `no agentfs store at '${storeArg}'`);
      const mnt = resolve(mpArg);
      await recoverStaleMount(mnt);
      let st;
      try {
        st = statSync(mnt);
      } catch {
        throw new CliError("ENOENT", `mount point '${mpArg}' does not exist`);
      }
      if (!st.isDirectory()) throw new CliError("ENOTDIR", `mount point '${mpArg}' is not a directory`);
      if (isFuseMounted(mnt)) throw new CliError("EBUSY", `'${mnt}' is already mounted`);
      const maxWrite = wholeNumber("--max-write", opts.maxWrite, "bytes");
      wholeNumber("--poll-spin-us", opts.pollSpinUs, "µs", 1000);
      if (opts.cacheTimeout !== undefined && !(Number(opts.cacheTimeout) >= 0 && Number(opts.cacheTimeout) <= 86400)) throw new UsageError(`--cache-timeout must be a number of seconds from 0 to 86400, got '${opts.cacheTimeout}'`);
      wholeNumber("--outside-check-ms", opts.outsideCheckMs, "ms", 3_600_000);
      wholeNumber("--hold-ms", opts.holdMs, "ms", 1000);
      if (opts.foreground) {
        await serve(storeDir, mnt, g.snapshot !== undefined ? { snapshot: g.snapshot } : g.branch !== undefined ? { branch: g.branch } : undefined, opts, maxWrite);
        return;
      }
      await startDaemon(storeDir, mnt, cmd, opts);
    });

  program
    .command("umount")
    .alias("unmount")
    .description("unmount MOUNTPOINT: the daemon commits open files and exits (a dead daemon's mount is lazily unmounted)")
    .argument("<mountpoint>", "mount point")
    .option("--timeout <seconds>", "how long to wait for the daemon to finish", "30")
    .action(async (mpArg: string, opts: { timeout: string }) => {
      const mnt = resolve(mpArg);
      const rec = readRecord(mnt);
      const mounted = isFuseMounted(mnt);
      if (!rec && !mounted) throw new CliError("EINVAL", `'${mnt}' is not an agentfs mount`);
      if (rec && pidAlive(rec.pid)) {
        process.kill(rec.pid, "SIGTERM");
        const deadline = Date.now() + Number(opts.timeout) * 1000;
        while (pidAlive(rec.pid) && Date.now() < deadline) await sleep(50);
        if (pidAlive(rec.pid)) {
          process.kill(rec.pid, "SIGKILL");
          await sleep(100);
        }
      }
      if (isFuseMounted(mnt) && !(await lazyUnmount(mnt))) throw new CliError("EBUSY", `could not unmount '${mnt}'`);
      // The log stays (its last line holds the daemon's request stats); a killed daemon's socket goes.
      rmSync(recordPath(mnt), { force: true });
      rmSync(socketPath(mnt), { force: true });
    });

  program
    .command("status")
    .description("list live mounts (from the runtime directory), checking that each daemon is alive")
    .option("--json", "print a JSON array of mount records with state ok|stale|gone")
    .action(async (opts: { json?: boolean }) => {
      const list: MountStatus[] = listRecords().map((r) => ({ ...r, state: stateOf(r) }));
      // Records of daemons that are gone and left nothing mounted are pruned.
      for (const r of list) {
        if (r.state !== "gone") continue;
        rmSync(recordPath(r.mountpoint), { force: true });
        rmSync(socketPath(r.mountpoint), { force: true });
      }
      if (opts.json) return printJson(list);
      if (list.length === 0) return out("no agentfs mounts");
      for (const r of list) out(`${r.mountpoint}\t${r.store}\t${targetLabel(r.target)}${r.readOnly ? " (read-only)" : ""}\tpid ${r.pid}\t${r.state}`);
    });
}

/**
 * Starts `agentfs mount --foreground` detached, with its output in a log
 * file, and waits until the mount answers (a FUSE mount on MOUNTPOINT whose
 * root shows `.agentfs`) or the daemon exits (its log becomes the error).
 */
async function startDaemon(storeDir: string, mnt: string, cmd: Command, opts: MountCliOptions): Promise<void> {
  const g = globals(cmd);
  const dir = runtimeDir();
  mkdirSync(dir, { recursive: true, mode: 0o700 });
  const log = recordPath(mnt).replace(/\.json$/, ".log");
  const fd = openSync(log, "w");
  const main = fileURLToPath(new URL("../main.js", import.meta.url));
  const ram = storeDir.startsWith(RAM_PREFIX);
  const args = [main, "mount", ram ? storeDir.slice(RAM_PREFIX.length) : storeDir, mnt, "--foreground", "--max-write", String(opts.maxWrite ?? DEFAULT_MAX_WRITE), "--poll-spin-us", String(opts.pollSpinUs ?? DEFAULT_POLL_SPIN_US), "--hold-ms", String(opts.holdMs ?? DEFAULT_HOLD_MS), "--outside-check-ms", String(opts.outsideCheckMs ?? DEFAULT_OUTSIDE_CHECK_MS)];
  if (opts.cacheTimeout !== undefined) args.push("--cache-timeout", opts.cacheTimeout);
  if (ram) args.push("--ram");
  if (g.branch !== undefined) args.push("--branch", g.branch);
  if (g.snapshot !== undefined) args.push("--snapshot", g.snapshot);
  if (opts.readOnly) args.push("--read-only");
  args.push(opts.allowOther ? "--allow-other" : "--no-allow-other");
  if (opts.lower !== undefined) args.push("--lower", opts.lower);
  if (opts.defaultPermissions === false) args.push("--no-default-permissions");
  const child = spawn(process.execPath, args, { detached: true, stdio: ["ignore", fd, fd], env: { ...process.env, AGENTFS_MOUNT_LOG: log } });
  closeSync(fd);
  let exited: number | null = null;
  child.on("exit", (code, sig) => (exited = code ?? (sig ? 128 : 1)));
  const deadline = Date.now() + Number(opts.timeout ?? 30) * 1000;
  while (Date.now() < deadline) {
    if (exited !== null) {
      const text = readFileSync(log, "utf8").trim().replace(/^agentfs: /, "");
      throw new CliError("EIO", `mount daemon exited (status ${exited}): ${text || "no output"}`);
    }
    // Ready when the mount answers and the daemon has recorded itself (it does so once its control
    // socket listens): a command run right after `mount` returns must reach this daemon.
    const rec = readRecord(mnt);
    if (rec && rec.pid === child.pid && isFuseMounted(mnt) && existsSync(join(mnt, ".agentfs"))) {
      child.unref();
      out(`mounted ${storeDir} (${targetLabel(rec.target)}) on ${mnt} (pid ${child.pid})`);
      return;
    }
    await sleep(50);
  }
  child.kill("SIGTERM");
  throw new CliError("ETIMEDOUT", `mount on '${mnt}' did not answer within ${opts.timeout ?? 30}s (log: ${log})`);
}

/**
 * The daemon: opens the store (with --lower, makes the served branch an
 * overlay over the host directory: `ensureOverlayBranch`) and a View, mounts
 * it, listens on its control socket, records itself, and serves until
 * SIGTERM/SIGINT (or until the mount is removed from outside), then closes
 * the socket, commits open files, unmounts and exits 0.
 */
async function serve(storeDir: string, mnt: string, target: Target | undefined, opts: MountCliOptions, maxWrite: number): Promise<void> {
  const { store, close: closeStore } = await openServedStore(storeDir);
  let view: View;
  try {
    if (opts.lower !== undefined) {
      const branch = target && "branch" in target ? target.branch : store.currentBranch();
      ensureOverlayBranch(store, branch, opts.lower);
      target = { branch };
    }
    view = View.open(store, { target, readOnly: !!opts.readOnly, autoCommitBytes: FUSE_AUTO_COMMIT_BYTES, errorStacks: false });
  } catch (e) {
    await closeStore();
    throw e;
  }
  // .fuse_hidden files left by a killed daemon of an older agentfs (libfuse 2 front end) are removed
  // before serving, unless another live daemon serves the same branch: if it is such an older one,
  // its open-but-unlinked files still need their hidden names.
  const served0 = view.target;
  const other = "branch" in served0
    ? listRecords().find((r) => r.pid !== process.pid && r.store === storeDir && "branch" in r.target && r.target.branch === served0.branch && pidAlive(r.pid))
    : undefined;
  const m = await FuseMount.mount(view, mnt, {
    removeHidden: !other,
    allowOther: opts.allowOther ?? defaultAllowOther(),
    defaultPermissions: opts.defaultPermissions !== false,
    maxWrite,
    pollSpinUs: Number(opts.pollSpinUs ?? DEFAULT_POLL_SPIN_US),
    holdTransactionsMs: Number(opts.holdMs ?? DEFAULT_HOLD_MS),
    outsideCheckMs: Number(opts.outsideCheckMs ?? DEFAULT_OUTSIDE_CHECK_MS),
    ...(opts.cacheTimeout !== undefined ? { attrTimeout: Number(opts.cacheTimeout), entryTimeout: Number(opts.cacheTimeout) } : {}),
    fsname: `agentfs:${storeDir}`,
  });
  if (other) out(`.fuse_hidden files: not looked for (pid ${other.pid} serves the same branch on ${other.mountpoint})`);
  else if (!view.readOnly) out(`.fuse_hidden files left by an earlier daemon: ${m.removedHidden} removed`);
  const target0 = view.target;
  const served: ServedTree = {
    mountpoint: mnt,
    branch: "branch" in target0 ? target0.branch : null,
    flush: () => view.flushAll(),
    moved: () => {
      view.reloadOpenFiles();
      void m.invalidateTree();
    },
    snapshotsChanged: (names) => void m.invalidateSnapshots(names),
    held: () => view.main.heldChunks(),
  };
  // Store operations from other `agentfs` commands run here, between FUSE requests (see control.ts).
  const handle = (op: string, args: Record<string, unknown>): unknown => {
    if (op === "hello") return { protocol: CONTROL_PROTOCOL, pid: process.pid, mountpoint: mnt, store: storeDir, target: view.target, readOnly: view.readOnly };
    // fsck hashes every object: on a disk store it runs in a worker on its own connection, off this loop.
    if (op === "fsck" && !storeDir.startsWith(RAM_PREFIX)) {
      out("fsck: checking the store in a worker thread");
      return fsckInWorker(storeDir);
    }
    // gc: the mark runs in a worker on its own connection, the sweep in short slices between requests.
    if (op === "gc") return gcAsync(store, { keep: served.held }).then((r) => m.settled().then(() => r));
    const fn = STORE_OPS[op];
    if (!fn) throw new CliError("ENOSYS", `unknown control operation '${op}'`);
    const result = fn(store, args, served);
    // Answer once the kernel has dropped what the operation made stale (restore, snapshots), so that
    // the caller's next look at the mount sees the change.
    return m.settled().then(() => result);
  };
  let control: ControlServer | null = null;
  try {
    control = await ControlServer.listen(socketPath(mnt), handle, { log: (line) => out(line) });
  } catch (e) {
    process.stderr.write(`agentfs: warning: no control socket (${(e as Error).message}); other commands will open the store directly\n`);
  }
  const rec: MountRecord = {
    pid: process.pid, mountpoint: mnt, store: storeDir, target: view.target, readOnly: view.readOnly,
    allowOther: m.options.includes("allow_other"), lower: store.lowerDirOf(view.target),
    started: new Date().toISOString(), log: process.env.AGENTFS_MOUNT_LOG ?? "", control: control ? control.path : null,
  };
  mkdirSync(runtimeDir(), { recursive: true, mode: 0o700 });
  const file = recordPath(mnt);
  writeFileSync(file + ".tmp", JSON.stringify(rec, null, 2) + "\n");
  renameSync(file + ".tmp", file);
  if (!view.readOnly) CommitPool.shared().prestart(); // its workers start while the mount is idle, not in the first commit
  out(`serving ${storeDir} (${targetLabel(view.target)}${view.readOnly ? ", read-only" : ""}${rec.lower ? ` over ${rec.lower}` : ""}) on ${mnt} (pid ${process.pid}${control ? `, control socket ${control.path}` : ""})`);

  await new Promise<void>((done) => {
    let stopping = false;
    const stop = async (why: string) => {
      if (stopping) return;
      stopping = true;
      process.off("SIGTERM", onSignal);
      process.off("SIGINT", onSignal);
      await control?.close();
      try {
        await m.unmount();
      } catch (e) {
        process.stderr.write(`agentfs: unmount after ${why}: ${(e as Error).message}\n`);
        await lazyUnmount(mnt);
      }
      // Per-operation counts and loop-hold times (ms) go to the daemon's log.
      out(`unmounted after ${why}; requests: ${JSON.stringify({ ...m.stats, outsideInvalidations: m.outsideInvalidations })}`);
      try {
        const cur = readRecord(mnt);
        if (cur?.pid === process.pid) rmSync(file, { force: true });
      } finally {
        await closeStore();
        done();
      }
    };
    const onSignal = (sig: NodeJS.Signals) => void stop(sig);
    process.once("SIGTERM", onSignal);
    process.once("SIGINT", onSignal);
    // Unmounted from outside (fusermount -u): the session ends, the mount commits; close up and leave.
    void m.done.then(() => {
      if (m.endedOutside) void stop("external unmount");
    });
  });
}
