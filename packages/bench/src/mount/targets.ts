/**
 * The three directories every job runs in, side by side in one run:
 * plain tmpfs, an agentfs FUSE mount (daemon started by the built CLI) and
 * fuse-overlayfs over an empty lower dir with upper/work on tmpfs (a FUSE
 * passthrough baseline). Teardown is synchronous so it also works from a
 * signal handler; it always unmounts and never leaves a daemon behind.
 */
import { existsSync, mkdirSync, readdirSync, readFileSync } from "node:fs";
import { join, resolve } from "node:path";
import { must, runSync } from "./proc.js";

export type TargetId = "tmpfs" | "overlay" | "agentfs";
export const TARGET_IDS: TargetId[] = ["tmpfs", "overlay", "agentfs"];
export const TARGET_LABEL: Record<TargetId, string> = { tmpfs: "tmpfs", overlay: "fuse-overlayfs", agentfs: "agentfs mount" };

export interface Target {
  id: TargetId;
  /** Where jobs create their files. */
  dir: string;
  teardown(): void;
}

function isMounted(mnt: string): boolean {
  try {
    return readFileSync("/proc/self/mounts", "utf8")
      .split("\n")
      .some((l) => l.split(" ")[1] === mnt);
  } catch {
    return false;
  }
}

/** Whether `pid` runs (a zombie waiting for init to reap it counts as gone). */
function pidAlive(pid: number): boolean {
  try {
    const stat = readFileSync(`/proc/${pid}/stat`, "utf8");
    return stat.slice(stat.lastIndexOf(")") + 2)[0] !== "Z";
  } catch {
    return false;
  }
}

export function tmpfsTarget(root: string): Target {
  const dir = join(root, "tmpfs");
  mkdirSync(dir, { recursive: true });
  return { id: "tmpfs", dir, teardown: () => undefined };
}

export async function overlayTarget(root: string): Promise<Target> {
  const base = join(root, "overlay");
  const [lower, upper, work, mnt] = ["lower", "upper", "work", "mnt"].map((n) => join(base, n));
  for (const d of [lower, upper, work, mnt]) mkdirSync(d, { recursive: true });
  await must("fuse-overlayfs", ["-o", `lowerdir=${lower},upperdir=${upper},workdir=${work}`, mnt], { timeoutMs: 30_000 });
  return {
    id: "overlay",
    dir: mnt,
    teardown: () => {
      if (isMounted(mnt)) runSync("fusermount", ["-uz", mnt]);
    },
  };
}

export interface AgentfsTarget extends Target {
  /** The daemon's log (per-op stats are appended at unmount); read after teardown. */
  daemonLog(): string;
}

/**
 * `agentfs init STORE && agentfs mount STORE MNT` through the built CLI.
 * The daemon's log (its record's `log`, in the runtime directory) is kept
 * after `agentfs umount` and ends with the per-operation stats line; it is
 * read after teardown.
 */
export async function agentfsTarget(root: string, cli: string): Promise<AgentfsTarget> {
  const base = join(root, "agentfs");
  const store = join(base, "store");
  const mnt = join(base, "mnt");
  const runtime = join(base, "runtime");
  for (const d of [store, mnt, runtime]) mkdirSync(d, { recursive: true });
  const env = { ...process.env, AGENTFS_RUNTIME_DIR: runtime };
  await must(process.execPath, [cli, "init", store], { env, timeoutMs: 60_000 });
  let logText = "";
  let pid: number | undefined;
  let logPath: string | undefined;
  let torn = false;
  const teardown = () => {
    if (torn) return;
    torn = true;
    const r = runSync(process.execPath, [cli, "umount", mnt], env, 120_000);
    if (r.code !== 0) process.stderr.write(`agentfs umount: ${r.out.trim()}\n`);
    if (pid !== undefined && pidAlive(pid)) {
      process.stderr.write(`agentfs daemon ${pid} still alive after umount; SIGKILL\n`);
      try {
        process.kill(pid, "SIGKILL");
      } catch {
        /* gone */
      }
    }
    if (isMounted(mnt)) runSync("fusermount", ["-uz", mnt]);
    if (logPath && existsSync(logPath)) logText = readFileSync(logPath, "utf8");
  };
  try {
    await must(process.execPath, [cli, "mount", store, mnt], { env, timeoutMs: 60_000 });
  } catch (e) {
    teardown();
    throw e;
  }
  for (const n of readdirSync(runtime)) {
    if (!n.endsWith(".json")) continue;
    const rec = JSON.parse(readFileSync(join(runtime, n), "utf8")) as { pid: number; log: string; mountpoint: string };
    if (resolve(rec.mountpoint) === mnt) {
      pid = rec.pid;
      logPath = rec.log;
    }
  }
  return { id: "agentfs", dir: mnt, teardown, daemonLog: () => logText };
}

export interface OpStat {
  op: string;
  count: number;
  totalMs: number;
  maxMs: number;
}

/** Parses the `requests: {...}` line the daemon logs at unmount. */
export function parseDaemonStats(log: string): { ops: OpStat[]; writes?: number; maxWrite?: number; internalErrors?: number; outsideInvalidations?: number } | undefined {
  const line = log.split("\n").find((l) => l.includes("requests: {"));
  if (!line) return undefined;
  try {
    const j = JSON.parse(line.slice(line.indexOf("requests: ") + "requests: ".length)) as {
      ops: Record<string, { count: number; maxMs: number; totalMs: number }>;
      writes: number;
      maxWrite: number;
      internalErrors: number;
      outsideInvalidations?: number;
    };
    const ops = Object.entries(j.ops).map(([op, s]) => ({ op, ...s }));
    ops.sort((a, b) => b.totalMs - a.totalMs);
    return { ops, writes: j.writes, maxWrite: j.maxWrite, internalErrors: j.internalErrors, outsideInvalidations: j.outsideInvalidations };
  } catch {
    return undefined;
  }
}
