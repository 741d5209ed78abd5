/**
 * Child processes for the mount benchmark: every workload runs as its own
 * process (fio, python3, git, tar, make, sqlite3, rsync, rm), never inside
 * this Node process, and never inside the agentfs daemon.
 */
import { spawn, spawnSync } from "node:child_process";
import type { FuseRequestCounter } from "./fusetrace.js";

export interface ProcResult {
  code: number | null;
  signal: NodeJS.Signals | null;
  stdout: string;
  stderr: string;
  /** Wall time of the whole process, ms. */
  ms: number;
  timedOut: boolean;
  /** FUSE requests the kernel sent to the mount of `ProcOptions.fuse` while the process ran. */
  fuseRequests?: number;
}

/** Which FUSE mount's requests to count while a process runs: the counter, and a directory on that mount. */
export interface FuseCount {
  counter: FuseRequestCounter;
  dir: string;
}

export interface ProcOptions {
  cwd?: string;
  input?: string;
  env?: NodeJS.ProcessEnv;
  /** Kill the process group after this long (default 180 s). */
  timeoutMs?: number;
  /** Count the FUSE requests of this mount while the process runs (outside the timed span). */
  fuse?: FuseCount | null;
}

/** Runs `cmd args` in its own process group; resolves with output and wall time (never rejects). */
export function run(cmd: string, args: string[], opts: ProcOptions = {}): Promise<ProcResult> {
  return new Promise((resolve) => {
    // (Counting is best effort: a tracefs error leaves this command uncounted, never failed.)
    let counting = false;
    try {
      opts.fuse?.counter.start(opts.fuse.dir);
      counting = !!opts.fuse;
    } catch {
      /* uncounted */
    }
    const stop = (): number | undefined => {
      if (!counting) return undefined;
      counting = false;
      try {
        return opts.fuse!.counter.stop();
      } catch {
        return undefined;
      }
    };
    const t0 = performance.now();
    const child = spawn(cmd, args, { cwd: opts.cwd, env: opts.env ?? process.env, detached: true, stdio: ["pipe", "pipe", "pipe"] });
    let stdout = "";
    let stderr = "";
    let timedOut = false;
    child.stdout.on("data", (d: Buffer) => (stdout += d.toString()));
    child.stderr.on("data", (d: Buffer) => (stderr += d.toString()));
    const timer = setTimeout(() => {
      timedOut = true;
      try {
        process.kill(-child.pid!, "SIGKILL");
      } catch {
        /* already gone */
      }
    }, opts.timeoutMs ?? 180_000);
    child.on("error", (e) => {
      clearTimeout(timer);
      resolve({ code: 127, signal: null, stdout, stderr: stderr + String(e), ms: performance.now() - t0, timedOut, fuseRequests: stop() });
    });
    child.on("close", (code, signal) => {
      clearTimeout(timer);
      const ms = performance.now() - t0;
      resolve({ code, signal, stdout, stderr, ms, timedOut, fuseRequests: stop() });
    });
    child.stdin.on("error", () => undefined);
    child.stdin.end(opts.input ?? "");
  });
}

/** Thrown when a workload's output is wrong (or it failed): the table shows FAIL, not a time. */
export class WorkloadFail extends Error {}

/** Runs and throws WorkloadFail unless the exit status is 0. */
export async function must(cmd: string, args: string[], opts: ProcOptions = {}): Promise<ProcResult> {
  const r = await run(cmd, args, opts);
  if (r.timedOut) throw new WorkloadFail(`${cmd} timed out after ${((opts.timeoutMs ?? 180_000) / 1000).toFixed(0)} s`);
  if (r.code !== 0) throw new WorkloadFail(`${cmd} ${args.slice(0, 3).join(" ")} exited ${r.code ?? r.signal}: ${(r.stderr || r.stdout).trim().split("\n").slice(-3).join(" | ")}`);
  return r;
}

/** Synchronous variant for teardown paths (signal handlers). */
export function runSync(cmd: string, args: string[], env?: NodeJS.ProcessEnv, timeoutMs = 60_000): { code: number | null; out: string } {
  const r = spawnSync(cmd, args, { env: env ?? process.env, encoding: "utf8", timeout: timeoutMs });
  return { code: r.status, out: `${r.stdout ?? ""}${r.stderr ?? ""}` };
}
