/**
 * Test helpers: run the real built `agentfs` (packages/cli/dist/main.js) as a
 * child process, and make/remove temporary directories.
 */
import { spawnSync } from "node:child_process";
import { existsSync, mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { dirname, join } from "node:path";
import { fileURLToPath } from "node:url";

/** Absolute path of the built CLI entry point. */
export const MAIN = join(dirname(fileURLToPath(import.meta.url)), "..", "dist", "main.js");

if (!existsSync(MAIN)) {
  throw new Error(`${MAIN} is missing: build first (pnpm exec turbo run build, or npx tsc -p packages/cli)`);
}

/** Result of one CLI run. */
export interface Run {
  code: number;
  stdout: string;
  stderr: string;
  raw: Buffer;
}

/**
 * Runs `agentfs ...args` in `cwd` with `input` on stdin. The environment is
 * the test's minus AGENTFS_STORE unless `env` sets it.
 */
export function agentfs(args: string[], opts: { cwd: string; input?: string | Buffer; env?: Record<string, string> }): Run {
  const env: NodeJS.ProcessEnv = { ...process.env };
  delete env.AGENTFS_STORE;
  Object.assign(env, opts.env ?? {});
  const r = spawnSync(process.execPath, [MAIN, ...args], { cwd: opts.cwd, input: opts.input ?? "", env, maxBuffer: 64 << 20 });
  if (r.error) throw r.error;
  return { code: r.status ?? -1, stdout: r.stdout.toString(), stderr: r.stderr.toString(), raw: r.stdout };
}

/** Runs agentfs and parses stdout as JSON, failing with the run's output when the exit status is not 0. */
export function agentfsJson<T = any>(args: string[], opts: { cwd: string; input?: string | Buffer; env?: Record<string, string> }): T {
  const r = agentfs(args, opts);
  if (r.code !== 0) throw new Error(`agentfs ${args.join(" ")} exited ${r.code}: ${r.stderr}`);
  return JSON.parse(r.stdout) as T;
}

/** A fresh temporary directory; remove it with `cleanup`. */
export function tmp(prefix = "agentfs-cli-test-"): string {
  return mkdtempSync(join(tmpdir(), prefix));
}

/** Removes a directory made by `tmp`. */
export function cleanup(dir: string): void {
  rmSync(dir, { recursive: true, force: true });
}

/** Makes a temp dir holding an initialised store; returns the directory (commands run there find the store). */
export function initStore(): string {
  const dir = tmp();
  const r = agentfs(["init"], { cwd: dir });
  if (r.code !== 0) throw new Error(`init failed: ${r.stderr}`);
  return dir;
}
