/**
 * Helpers for the stress tests (fsx, fsstress, concurrency, crash): a store
 * served by the `agentfs mount` CLI daemon under a fresh temp directory (the
 * test process never serves the mount itself, so it may run synchronous
 * children against it), and the helper programs of test/tools/, compiled or
 * run at test time.
 */
import { spawnSync } from "node:child_process";
import { existsSync, mkdirSync, mkdtempSync, readdirSync, readFileSync, rmSync } from "node:fs";
import { dirname, join } from "node:path";
import { fileURLToPath } from "node:url";
import { expect } from "vitest";
import { agentfs, fuseMountsUnder, teardown, type Run } from "./helpers.js";

/** Directory holding the helper programs' sources. */
export const TOOLS = join(dirname(fileURLToPath(import.meta.url)), "tools");

/** True when gcc can compile the C helpers. */
export const hasGcc = spawnSync("gcc", ["--version"]).status === 0;

/** True when a python3 interpreter runs the Python helpers. */
export const hasPython = spawnSync("python3", ["-c", "import mmap, hashlib, multiprocessing"]).status === 0;

/**
 * Compiles test/tools/`source` with gcc into `outDir` and returns the
 * binary's path. Throws with gcc's output when compilation fails.
 */
export function compileTool(source: string, outDir: string): string {
  const out = join(outDir, source.replace(/\.c$/, ""));
  const r = spawnSync("gcc", ["-O2", "-Wall", "-Werror", "-o", out, join(TOOLS, source)], { encoding: "utf8" });
  if (r.status !== 0) throw new Error(`gcc ${source} failed: ${r.stderr}`);
  return out;
}

/** Runs `cmd args` synchronously (no shell) with a generous timeout and returns its exit code and output. */
export function runTool(cmd: string, args: string[], opts: { cwd?: string; timeoutMs?: number } = {}): Run {
  const r = spawnSync(cmd, args, { cwd: opts.cwd ?? "/", timeout: opts.timeoutMs ?? 100_000, maxBuffer: 64 << 20, encoding: "utf8" });
  if (r.error) throw r.error;
  return { code: r.status ?? -1, stdout: r.stdout, stderr: r.stderr };
}

/**
 * A store in a fresh directory under /tmp, served by the CLI daemon at
 * `mnt` (runtime directory private to this instance). `dispose` always
 * tears everything down: umount, then SIGKILL of every daemon seen and
 * `fusermount -uz` of any FUSE mount left under `root`.
 */
export class CliMount {
  /** Every daemon pid this instance has started (for teardown). */
  readonly pids: number[] = [];

  private constructor(
    /** The temp directory holding store, mountpoint and runtime directory. */
    readonly root: string,
    /** The store directory. */
    readonly store: string,
    /** The mountpoint. */
    readonly mnt: string,
    /** Environment for `agentfs` (AGENTFS_RUNTIME_DIR). */
    readonly env: Record<string, string>,
  ) {}

  /** Creates the temp directory (prefix under /tmp) and an empty store; does not mount. */
  static create(prefix: string): CliMount {
    const root = mkdtempSync(join("/tmp", prefix));
    const m = new CliMount(root, join(root, "store"), join(root, "mnt"), { AGENTFS_RUNTIME_DIR: join(root, "run") });
    mkdirSync(m.store);
    mkdirSync(m.mnt);
    const r = agentfs(["init", m.store], m.env);
    if (r.code !== 0) throw new Error(`agentfs init failed: ${r.stderr}`);
    return m;
  }

  /** Mounts the store (extra CLI options, e.g. --allow-other); throws with the CLI's output on failure. */
  mount(...extra: string[]): void {
    const r = agentfs(["mount", this.store, this.mnt, ...extra], this.env);
    if (r.code !== 0 || r.stderr !== "") throw new Error(`agentfs mount exited ${r.code}: ${r.stderr}`);
    const pid = this.daemonPid();
    if (pid && !this.pids.includes(pid)) this.pids.push(pid);
  }

  /** Unmounts with `agentfs umount` (the daemon commits and exits); throws unless it succeeds and nothing is left mounted. */
  umount(): void {
    const r = agentfs(["umount", this.mnt], this.env);
    if (r.code !== 0) throw new Error(`agentfs umount exited ${r.code}: ${r.stderr}`);
    if (fuseMountsUnder(this.mnt).length) throw new Error(`still mounted after umount: ${this.mnt}`);
  }

  /** Pid of the daemon recorded in the runtime directory for this mountpoint, or 0. */
  daemonPid(): number {
    const run = this.env.AGENTFS_RUNTIME_DIR!;
    if (!existsSync(run)) return 0;
    for (const n of readdirSync(run).filter((f) => f.endsWith(".json"))) {
      try {
        const rec = JSON.parse(readFileSync(join(run, n), "utf8")) as { pid: number; mountpoint: string };
        if (rec.mountpoint === this.mnt) return rec.pid;
      } catch {
        /* a record being written */
      }
    }
    return 0;
  }

  /** Path of the daemon log for this mountpoint (the `log` of its record; the runtime directory holds one per mountpoint). */
  log(): string {
    const run = this.env.AGENTFS_RUNTIME_DIR!;
    const logs = readdirSync(run).filter((f) => f.startsWith("mount-") && f.endsWith(".log"));
    if (logs.length !== 1) throw new Error(`expected one daemon log in ${run}, found ${logs.length}`);
    return join(run, logs[0]!);
  }

  /** Runs `agentfs fsck` on the store. */
  fsck(): Run {
    return agentfs(["--store", this.store, "fsck"], this.env);
  }

  /** Unmounts, requires a clean fsck of the store (exit 0, "no problems found"), and with `remount` mounts again. */
  umountCheckingFsck(remount = true): void {
    this.umount();
    const f = this.fsck();
    expect(f.stdout + f.stderr).toMatch(/no problems found/);
    expect(f.code).toBe(0);
    if (remount) this.mount();
  }

  /** Path of `rel` inside the mount. */
  at(rel: string): string {
    return join(this.mnt, rel);
  }

  /** Tears down every mount and daemon and removes the temp directory. Never throws. */
  dispose(): void {
    try {
      if (fuseMountsUnder(this.root).length) agentfs(["umount", this.mnt], this.env);
    } catch {
      /* fall through to the hard teardown */
    }
    // only daemons still alive and still ours (a pid may have been reused)
    const ours = this.pids.filter((pid) => {
      try {
        return readFileSync(`/proc/${pid}/cmdline`, "utf8").includes(this.mnt);
      } catch {
        return false;
      }
    });
    teardown(this.root, ours);
    if (!fuseMountsUnder(this.root).length) rmSync(this.root, { recursive: true, force: true });
  }
}
