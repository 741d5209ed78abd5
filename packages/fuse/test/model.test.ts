/**
 * Differential property tests of a real agentfs FUSE mount against tmpfs.
 *
 * Random operation sequences (core's model, packages/core/test/model.ts) run
 * on a fresh directory inside one `agentfs mount` (served by the CLI daemon,
 * a separate process, so this process may use plain node:fs on it) and on a
 * fresh directory under /dev/shm; every op must give the same result or
 * errno code on both, and the final trees must be equal. Core's model test
 * checks the store against tmpfs; this one checks what the kernel and the
 * daemon add on top: name, attribute and page caches, O_TRUNC arriving as a
 * setattr, copyFile, realpath and absolute symlinks through the mount.
 * The final files are also read with O_DIRECT, which a FUSE mount answers
 * from the daemon: pages a write left in the kernel's cache would otherwise
 * hide a store that holds something else.
 *
 * The second property aims at the page cache: file handles kept open across
 * other ops (pwrite, whole-file and ranged reads, ftruncate, fstat through
 * them, also after their name was unlinked or renamed over), interleaved
 * with writes, truncates, renames, links and unlinks by path, reopen-and-read
 * and O_DIRECT reads. Every read must match tmpfs byte for byte.
 *
 * The last test unmounts, requires a clean fsck, remounts and checks that a
 * sample of the trees the properties left survived unchanged.
 *
 * Sequences use fast-check's size "max": at the default size an array of at
 * most 40 ops is rarely longer than 12. AGENTFS_PROP_RUNS sets the number of
 * runs of both properties (as in core's model test).
 */
import { chmodSync, existsSync, mkdirSync, mkdtempSync, rmSync } from "node:fs";
import * as nfs from "node:fs/promises";
import { createHash } from "node:crypto";
import { join } from "node:path";
import fc from "fast-check";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { apply, fsOp, snapshotTree, type Op, type Side } from "../../core/test/model.js";
import { prng } from "../../core/test/helpers.js";
import { canMount } from "./helpers.js";
import { CliMount } from "./stress-helpers.js";

const SHM = "/dev/shm";
const RUNS = Number(process.env.AGENTFS_PROP_RUNS ?? 300);
const CACHE_RUNS = Number(process.env.AGENTFS_PROP_RUNS ?? 400);
/** How many passing runs per property keep their trees for the check after a remount. */
const KEEP = 6;

/** Op on a file handle kept open in slot `h` across other ops (the page-cache property). */
type HandleOp =
  | { op: "hopen"; h: number; p: string; flags: "r" | "r+" | "a+" | "w+" }
  | { op: "hpwrite"; h: number; off: number; len: number; seed: number }
  | { op: "hread"; h: number }
  | { op: "hreadAt"; h: number; off: number; len: number }
  | { op: "htruncate"; h: number; len: number }
  | { op: "hstat"; h: number }
  | { op: "hclose"; h: number };

/** An op of the page-cache property: core's, a kept-handle op, or a read of `p` past the page cache. */
type CacheOp = Op | HandleOp | { op: "readDirect"; p: string };

const HANDLE_OPS = new Set(["hopen", "hpwrite", "hread", "hreadAt", "htruncate", "hstat", "hclose"]);

/** Open handles of one side, by slot. */
type Handles = (nfs.FileHandle | undefined)[];

const SLOTS = 2;
const FILES = ["/a", "/b", "/c"];
const file = fc.constantFrom(...FILES);
const slot = fc.integer({ min: 0, max: SLOTS - 1 });
const seed = fc.integer({ min: 1, max: 1_000_000 });
/** Offsets near the start, around page boundaries and around a 64 KiB boundary. */
const off = fc.oneof({ weight: 3, arbitrary: fc.integer({ min: 0, max: 300 }) }, { weight: 2, arbitrary: fc.constantFrom(4095, 4096, 4097, 8191, 12_000, 65_535, 65_536, 131_071) });
const len = fc.oneof({ weight: 4, arbitrary: fc.integer({ min: 0, max: 200 }) }, { weight: 2, arbitrary: fc.integer({ min: 0, max: 9000 }) }, { weight: 1, arbitrary: fc.constant(70_000) });
const tlen = fc.oneof({ weight: 3, arbitrary: fc.integer({ min: 0, max: 300 }) }, { weight: 1, arbitrary: fc.constantFrom(4095, 4096, 5000, 70_000) });

/** Ops of the page-cache property: kept handles plus core's data ops by path on three names. */
const cacheOp: fc.Arbitrary<CacheOp> = fc.oneof(
  { weight: 6, arbitrary: fc.record({ op: fc.constant("hopen" as const), h: slot, p: file, flags: fc.constantFrom("r" as const, "r+" as const, "a+" as const, "w+" as const) }) },
  { weight: 4, arbitrary: fc.record({ op: fc.constant("hpwrite" as const), h: slot, off, len, seed }) },
  { weight: 4, arbitrary: fc.record({ op: fc.constant("hread" as const), h: slot }) },
  { weight: 2, arbitrary: fc.record({ op: fc.constant("hreadAt" as const), h: slot, off, len }) },
  { weight: 2, arbitrary: fc.record({ op: fc.constant("htruncate" as const), h: slot, len: tlen }) },
  { weight: 2, arbitrary: fc.record({ op: fc.constant("hstat" as const), h: slot }) },
  { weight: 1, arbitrary: fc.record({ op: fc.constant("hclose" as const), h: slot }) },
  { weight: 3, arbitrary: fc.record({ op: fc.constant("writeFile" as const), p: file, len, seed }) },
  { weight: 1, arbitrary: fc.record({ op: fc.constant("appendFile" as const), p: file, len, seed }) },
  { weight: 3, arbitrary: fc.record({ op: fc.constant("pwrite" as const), p: file, off, len, seed }) },
  { weight: 2, arbitrary: fc.record({ op: fc.constant("truncate" as const), p: file, len: tlen }) },
  { weight: 3, arbitrary: fc.record({ op: fc.constant("readFile" as const), p: file }) },
  { weight: 2, arbitrary: fc.record({ op: fc.constant("readDirect" as const), p: file }) },
  { weight: 1, arbitrary: fc.record({ op: fc.constant("stat" as const), p: file }) },
  { weight: 1, arbitrary: fc.record({ op: fc.constant("rename" as const), p: file, q: file }) },
  { weight: 1, arbitrary: fc.record({ op: fc.constant("unlink" as const), p: file }) },
  { weight: 1, arbitrary: fc.record({ op: fc.constant("link" as const), p: file, q: file }) },
);

/** Comparable summary of bytes: the hex itself when short, else length and sha256. */
function bytes(b: Buffer): { len: number; hex: string } {
  return { len: b.length, hex: b.length <= 64 ? b.toString("hex") : createHash("sha256").update(b).digest("hex") };
}

/** Reads from offset 0 to end of file with positional reads (the handle's own position is not used). */
async function readWhole(h: nfs.FileHandle): Promise<Buffer> {
  const parts: Buffer[] = [];
  let pos = 0;
  for (;;) {
    const buf = Buffer.alloc(65_536);
    const { bytesRead } = await h.read(buf, 0, buf.length, pos);
    if (bytesRead === 0) break;
    parts.push(buf.subarray(0, bytesRead));
    pos += bytesRead;
    if (pos > 8 << 20) throw new Error("read past 8 MiB: the file never ends");
  }
  return Buffer.concat(parts);
}

/**
 * Reads the whole file at `path` through a fresh descriptor; with `direct`, opened O_DIRECT so
 * that a FUSE mount answers from the daemon and not from the kernel's page cache.
 */
async function readFresh(path: string, direct: boolean): Promise<Buffer> {
  const h = await nfs.open(path, direct ? nfs.constants.O_RDONLY | nfs.constants.O_DIRECT : nfs.constants.O_RDONLY);
  try {
    return await readWhole(h);
  } finally {
    await h.close();
  }
}

/**
 * Runs a core op (`apply`) or a kept-handle op on `side`; returns `{ ok }`, `{ err: code }` or
 * `{ skip }` (no handle in the slot). `direct` makes `readDirect` bypass the page cache (the
 * mount side); tmpfs reads the same pages either way, so it reads without O_DIRECT there.
 */
async function applyCache(side: Side & { kind: "host" }, handles: Handles, o: CacheOp, direct: boolean): Promise<unknown> {
  if (o.op === "readDirect") {
    try {
      return { ok: bytes(await readFresh(join(side.root, o.p), direct)) };
    } catch (e) {
      return errCode(e);
    }
  }
  if (!HANDLE_OPS.has(o.op)) return apply(side, o as Op);
  const ho = o as HandleOp;
  if (ho.op === "hopen") {
    await handles[ho.h]?.close();
    handles[ho.h] = undefined;
    try {
      handles[ho.h] = await nfs.open(join(side.root, ho.p), ho.flags);
      return { ok: null };
    } catch (e) {
      return errCode(e);
    }
  }
  const h = handles[ho.h];
  if (!h) return { skip: "no handle" };
  try {
    switch (ho.op) {
      case "hpwrite": {
        const data = prng(ho.len, ho.seed);
        const { bytesWritten } = await h.write(data, 0, data.length, ho.off);
        return { ok: bytesWritten };
      }
      case "hread":
        return { ok: bytes(await readWhole(h)) };
      case "hreadAt": {
        const buf = Buffer.alloc(ho.len);
        const { bytesRead } = await h.read(buf, 0, ho.len, ho.off);
        return { ok: bytes(buf.subarray(0, bytesRead)) };
      }
      case "htruncate":
        await h.truncate(ho.len);
        return { ok: null };
      case "hstat": {
        const st = await h.stat();
        return { ok: { size: st.size, nlink: st.nlink, perm: st.mode & 0o7777, file: st.isFile() } };
      }
      case "hclose":
        handles[ho.h] = undefined;
        await h.close();
        return { ok: null };
    }
  } catch (e) {
    return errCode(e);
  }
}

/**
 * The files of `tree` (a `snapshotTree` result) as `snapshotTree` describes them, but with size and
 * sha256 of what an O_DIRECT read under `root` returns (on a FUSE mount: the daemon, not the page cache).
 */
async function directFiles(root: string, tree: Record<string, unknown>): Promise<Record<string, unknown>> {
  const out: Record<string, unknown> = {};
  for (const [p, d] of Object.entries(tree)) {
    if ((d as { type: string }).type !== "file") continue;
    const b = await readFresh(join(root, p), true);
    out[p] = { ...(d as object), size: b.length, sha: createHash("sha256").update(b).digest("hex") };
  }
  return out;
}

/** Only the regular files of a `snapshotTree` result. */
function filesOf(tree: Record<string, unknown>): Record<string, unknown> {
  return Object.fromEntries(Object.entries(tree).filter(([, d]) => (d as { type: string }).type === "file"));
}

/** `{ err: code }` for an errno error; rethrows anything else. */
function errCode(e: unknown): { err: string } {
  const code = (e as { code?: string }).code;
  if (!code) throw e;
  return { err: code };
}

/** Closes every handle in `handles` (best effort: a close error is not what these tests compare). */
async function closeAll(handles: Handles): Promise<void> {
  for (let i = 0; i < handles.length; i++) {
    await handles[i]?.close().catch(() => undefined);
    handles[i] = undefined;
  }
}

describe.skipIf(!canMount() || !existsSync(SHM))("a directory of an agentfs FUSE mount behaves like tmpfs", () => {
  let m: CliMount;
  let oldUmask = 0;
  let n = 0;
  /** Trees of passing runs (mount side, tmpfs side) checked again after a remount. */
  const kept: { mnt: string; shm: string; log: string }[] = [];

  beforeAll(() => {
    oldUmask = process.umask(0o022);
    m = CliMount.create("agentfs-model-");
    m.mount();
  });

  afterAll(() => {
    process.umask(oldUmask);
    m?.dispose();
    for (const k of kept) rmSync(k.shm, { recursive: true, force: true });
  });

  /** A fresh directory (mode 0755) in the mount and one under /dev/shm, as two host sides. */
  function freshPair(): { M: Side & { kind: "host" }; H: Side & { kind: "host" } } {
    const mroot = m.at(`run-${n++}`);
    mkdirSync(mroot);
    const hroot = mkdtempSync(join(SHM, "agentfs-model-"));
    chmodSync(hroot, 0o755); // mkdtemp makes 0700; the mkdir above (umask 022) made 0755
    return { M: { kind: "host", root: mroot }, H: { kind: "host", root: hroot } };
  }

  /** Removes both directories of a failed run; best effort, so that the assertion that failed is what fast-check reports. */
  function dropFailed(M: Side & { kind: "host" }, H: Side & { kind: "host" }): void {
    for (const d of [M.root, H.root]) {
      try {
        rmSync(d, { recursive: true, force: true });
      } catch {
        /* reported by the failing assertion already */
      }
    }
  }

  /** Keeps the pair for the remount check while fewer than KEEP of this property are kept, else removes both. */
  function keepOrDrop(M: Side & { kind: "host" }, H: Side & { kind: "host" }, log: string[], property: string): void {
    if (kept.filter((k) => k.log.startsWith(property)).length < KEEP) {
      kept.push({ mnt: M.root, shm: H.root, log: `${property}:\n${log.join("\n")}` });
      return;
    }
    rmSync(M.root, { recursive: true, force: true });
    rmSync(H.root, { recursive: true, force: true });
  }

  it("random operation sequences give the same results, errors and final tree", async () => {
    await fc.assert(
      fc.asyncProperty(fc.array(fsOp, { minLength: 1, maxLength: 40, size: "max" }), async (ops) => {
        const { M, H } = freshPair();
        const log: string[] = [];
        let passed = false;
        try {
          for (const o of ops) {
            const rm = await apply(M, o);
            const rh = await apply(H, o);
            log.push(`${JSON.stringify(o)} -> ${JSON.stringify(rh)}`);
            expect(rm, `op ${log.length} differs (mount vs tmpfs); ops so far:\n${log.join("\n")}`).toEqual(rh);
          }
          const want = await snapshotTree(H);
          expect(await snapshotTree(M), `final tree differs after:\n${log.join("\n")}`).toEqual(want);
          expect(await directFiles(M.root, want), `O_DIRECT reads of the final files differ after:\n${log.join("\n")}`).toEqual(filesOf(want));
          passed = true;
        } finally {
          if (passed) keepOrDrop(M, H, log, "ops");
          else dropFailed(M, H);
        }
      }),
      { numRuns: RUNS },
    );
  });

  it("page cache: reads through kept handles, reopens, writes, truncates and stats match tmpfs byte for byte", async () => {
    await fc.assert(
      fc.asyncProperty(fc.array(cacheOp, { minLength: 1, maxLength: 60, size: "max" }), async (ops) => {
        const { M, H } = freshPair();
        const hm: Handles = new Array(SLOTS).fill(undefined);
        const hh: Handles = new Array(SLOTS).fill(undefined);
        const log: string[] = [];
        let passed = false;
        try {
          for (const o of ops) {
            const rm = await applyCache(M, hm, o, true);
            const rh = await applyCache(H, hh, o, false);
            log.push(`${JSON.stringify(o)} -> ${JSON.stringify(rh)}`);
            expect(rm, `op ${log.length} differs (mount vs tmpfs); ops so far:\n${log.join("\n")}`).toEqual(rh);
          }
          // what a fresh open reads while the handles are still open, through the page cache and past it
          for (const p of FILES) {
            const want = await apply(H, { op: "readFile", p });
            expect(await apply(M, { op: "readFile", p }), `reopen of ${p} with handles open differs after:\n${log.join("\n")}`).toEqual(want);
            expect(await applyCache(M, hm, { op: "readDirect", p }, true), `O_DIRECT read of ${p} differs after:\n${log.join("\n")}`).toEqual(want);
          }
          await closeAll(hm);
          await closeAll(hh);
          expect(await snapshotTree(M), `final tree differs after:\n${log.join("\n")}`).toEqual(await snapshotTree(H));
          passed = true;
        } finally {
          await closeAll(hm);
          await closeAll(hh);
          if (passed) keepOrDrop(M, H, log, "cache");
          else dropFailed(M, H);
        }
      }),
      { numRuns: CACHE_RUNS },
    );
  });

  it("after unmount the store is consistent (fsck), and the trees the properties left survive a remount", async () => {
    expect(kept.length, "the properties above kept no trees to check").toBeGreaterThan(0);
    m.umountCheckingFsck(true);
    for (const k of kept) {
      const M: Side = { kind: "host", root: k.mnt };
      const H: Side = { kind: "host", root: k.shm };
      expect(await snapshotTree(M), `tree differs after remount; it was made by ${k.log}`).toEqual(await snapshotTree(H));
    }
  });
});
