import { execFileSync } from "node:child_process";
import { existsSync, mkdtempSync, readdirSync, rmSync, statSync } from "node:fs";
import { fileURLToPath } from "node:url";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { createHash } from "node:crypto";
import { constants as C } from "node:fs";
import { AgentFS, FsCore, Store } from "../src/index.js";

/** Fresh temp directory; removed by the returned cleanup. */
export function tempDir(prefix = "agentfs-test-", base = tmpdir()): { dir: string; cleanup: () => void } {
  const dir = mkdtempSync(join(base, prefix));
  return { dir, cleanup: () => rmSync(dir, { recursive: true, force: true }) };
}

/** Opens a fresh store in a temp dir. */
export async function freshStore(opts: { compressionLevel?: number; umask?: number } = {}): Promise<{ afs: AgentFS; dir: string; cleanup: () => Promise<void> }> {
  const t = tempDir();
  const afs = await AgentFS.open(join(t.dir, "store"), { create: true, umask: opts.umask ?? 0o022, ...opts });
  return {
    afs,
    dir: join(t.dir, "store"),
    cleanup: async () => {
      try {
        afs.closeSync();
      } catch {
        /* already closed */
      }
      t.cleanup();
    },
  };
}

/** Deterministic pseudo-random bytes (xorshift32), incompressible. */
export function prng(n: number, seed = 1): Buffer {
  const b = Buffer.allocUnsafe(n);
  let s = seed >>> 0 || 1;
  let i = 0;
  for (; i + 4 <= n; i += 4) {
    s ^= s << 13; s >>>= 0;
    s ^= s >>> 17;
    s ^= s << 5; s >>>= 0;
    b.writeUInt32LE(s, i);
  }
  for (; i < n; i++) {
    s ^= s << 13; s >>>= 0;
    s ^= s >>> 17;
    s ^= s << 5; s >>>= 0;
    b[i] = s & 0xff;
  }
  return b;
}

export function sha256hex(b: Uint8Array): string {
  return createHash("sha256").update(b).digest("hex");
}

/** Awaits `p` and returns the error it rejects with (fails when it resolves). */
export async function errOf(p: Promise<unknown> | (() => unknown)): Promise<any> {
  try {
    if (typeof p === "function") await p();
    else await p;
  } catch (e) {
    return e;
  }
  throw new Error("expected an error, but the call succeeded");
}

/** Runs `fn` and returns the errno name (`code`) it throws, or "ok" when it returns. */
export function codeOf(fn: () => unknown): string {
  try {
    fn();
  } catch (e) {
    return (e as NodeJS.ErrnoException).code ?? String(e);
  }
  return "ok";
}

/** Absolute path of packages/core. */
export const CORE_DIR = fileURLToPath(new URL("..", import.meta.url));

/**
 * Child-process fixtures import the built `dist/`: rebuild it with tsc when it
 * is missing or older than any source file, so a test never runs stale code.
 */
export function ensureDist(): void {
  const distIndex = join(CORE_DIR, "dist", "index.js");
  const srcDir = join(CORE_DIR, "src");
  const newestSrc = Math.max(...readdirSync(srcDir).map((f) => statSync(join(srcDir, f)).mtimeMs));
  if (existsSync(distIndex)) {
    const distDir = join(CORE_DIR, "dist");
    const oldestDist = Math.min(...readdirSync(distDir).filter((f) => f.endsWith(".js")).map((f) => statSync(join(distDir, f)).mtimeMs));
    if (oldestDist >= newestSrc) return;
  }
  const tsc = join(CORE_DIR, "..", "..", "node_modules", "typescript", "bin", "tsc");
  execFileSync(process.execPath, [tsc, "-p", CORE_DIR], { stdio: "inherit" });
}

/** A file store at `dir` (created with `create`) and a core over its main branch (umask 022). */
export function openAt(dir: string, create = false): { store: Store; core: FsCore } {
  const store = Store.open(dir, { create });
  return { store, core: new FsCore(store, { branch: "main" }, { umask: 0o022 }) };
}

/** Writes `data` as the whole of regular file `path` through `core` (created or truncated; committed by close). */
export function writeFile(core: FsCore, path: string, data: Buffer): void {
  const fd = core.openFile(path, C.O_CREAT | C.O_WRONLY | C.O_TRUNC, 0o644);
  core.write(fd, data, 0, data.length, 0);
  core.close(fd);
}

/** The whole of regular file `path`, read through `core`. */
export function readFile(core: FsCore, path: string): Buffer {
  const fd = core.openFile(path, C.O_RDONLY);
  try {
    const size = core.fstat(fd).size;
    const b = Buffer.alloc(size);
    core.read(fd, b, 0, size, 0);
    return b;
  } finally {
    core.close(fd);
  }
}

/** Runs `fn` on a new store (`dir`/s in a temporary directory), then closes and removes it. */
export async function withStore(fn: (x: { dir: string; store: Store; core: FsCore }) => Promise<void> | void): Promise<void> {
  const t = tempDir("agentfs-store-");
  const dir = join(t.dir, "s");
  const { store, core } = openAt(dir, true);
  try {
    await fn({ dir, store, core });
  } finally {
    store.close();
    t.cleanup();
  }
}
