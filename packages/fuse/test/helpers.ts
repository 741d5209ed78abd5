/**
 * Test helpers for real FUSE mounts: run the built `agentfs` CLI and shell
 * tools as child processes (the test process never serves the mount, so
 * synchronous children are safe), run node:fs calls in a child and collect
 * their errno codes, and tear every mount down no matter what.
 */
import { Store } from "@agentfs/core";
import { spawnSync, type SpawnSyncReturns } from "node:child_process";
import { existsSync, mkdtempSync, readFileSync, rmSync } from "node:fs";
import { dirname, join } from "node:path";
import { fileURLToPath } from "node:url";
import { afterAll, beforeAll } from "vitest";

/** Absolute path of the built CLI entry point. */
export const MAIN = join(dirname(fileURLToPath(import.meta.url)), "..", "..", "cli", "dist", "main.js");

/**
 * True when this machine can run the real-mount tests: Linux with a FUSE
 * device, as root. The libfuse 3 binding and the built CLI are not
 * conditions: where they are missing the tests fail rather than skip.
 */
export function canMount(): boolean {
  return process.platform === "linux" && existsSync("/dev/fuse") && process.getuid?.() === 0;
}

/** Result of a child run. */
export interface Run {
  code: number;
  stdout: string;
  stderr: string;
}

function result(r: SpawnSyncReturns<Buffer>): Run {
  if (r.error) throw r.error;
  return { code: r.status ?? -1, stdout: r.stdout.toString(), stderr: r.stderr.toString() };
}

/** Runs `agentfs ...args` with `env` added (e.g. AGENTFS_RUNTIME_DIR). */
export function agentfs(args: string[], env: Record<string, string>, cwd = "/"): Run {
  return result(spawnSync(process.execPath, [MAIN, ...args], { cwd, env: { ...process.env, ...env }, timeout: 90_000 }));
}

/** Runs `bash -c script` in `cwd`. */
export function sh(script: string, cwd: string, input?: string | Buffer): Run {
  return result(spawnSync("bash", ["-c", script], { cwd, input: input ?? "", timeout: 90_000, maxBuffer: 64 << 20 }));
}

/** Runs `sh` and fails the test with its output unless it exits 0; returns stdout. */
export function ok(script: string, cwd: string, input?: string | Buffer): string {
  const r = sh(script, cwd, input);
  if (r.code !== 0) throw new Error(`'${script}' exited ${r.code}\nstdout: ${r.stdout}\nstderr: ${r.stderr}`);
  return r.stdout;
}

/**
 * Runs each JavaScript statement (with `fs` = node:fs, in `cwd`) in one child
 * process and returns, per statement, "OK" or the thrown error's `code`.
 */
export function fsCodes(cwd: string, statements: string[]): string[] {
  const body = `const fs = require("node:fs"); const out = [];
for (const s of JSON.parse(process.argv[1])) { try { eval(s); out.push("OK"); } catch (e) { out.push(e.code || String(e)); } }
process.stdout.write(JSON.stringify(out));`;
  const r = result(spawnSync(process.execPath, ["-e", body, JSON.stringify(statements)], { cwd, timeout: 90_000 }));
  if (r.code !== 0) throw new Error(`fs child failed: ${r.stderr}`);
  return JSON.parse(r.stdout) as string[];
}

/** FUSE mount points currently listed in /proc/self/mountinfo under `prefix`. */
export function fuseMountsUnder(prefix: string): string[] {
  const out: string[] = [];
  for (const line of readFileSync("/proc/self/mountinfo", "utf8").split("\n")) {
    const f = line.split(" ");
    const sep = f.indexOf("-");
    if (sep < 0 || !f[sep + 1]?.startsWith("fuse")) continue;
    const mp = f[4]!.replace(/\\([0-7]{3})/g, (_, o) => String.fromCharCode(parseInt(o, 8)));
    if (mp.startsWith(prefix)) out.push(mp);
  }
  return out;
}

/** Best-effort teardown: kill daemons by pid, then lazily unmount every FUSE mount under `prefix`. Never throws. */
export function teardown(prefix: string, pids: number[] = []): void {
  for (const pid of pids) {
    try {
      process.kill(pid, "SIGKILL");
    } catch {
      /* already gone */
    }
  }
  for (const mp of fuseMountsUnder(prefix)) spawnSync("fusermount", ["-uz", mp]);
}

/**
 * For a describe block of in-process mounts: registers hooks that make a
 * temporary directory `/tmp/<prefix>XXXXXX` holding a store (`root`,
 * `store`: set once beforeAll ran), and afterwards unmount whatever is
 * still mounted below it, close the store and remove the directory.
 */
export function storeFixture(prefix: string): { readonly root: string; readonly store: Store } {
  const fx = { root: "", store: undefined as unknown as Store };
  beforeAll(() => {
    fx.root = mkdtempSync(`/tmp/${prefix}`);
    fx.store = Store.open(join(fx.root, "store"), { create: true });
  });
  afterAll(() => {
    try {
      teardown(fx.root);
    } finally {
      fx.store?.close();
      rmSync(fx.root, { recursive: true, force: true });
    }
  });
  return fx;
}

/** Polls `check` every 100 ms until it returns true or `ms` pass; returns the last result. */
export function waitFor(check: () => boolean, ms = 10_000): boolean {
  const end = Date.now() + ms;
  for (;;) {
    if (check()) return true;
    if (Date.now() > end) return false;
    spawnSync("sleep", ["0.1"]);
  }
}
