/**
 * Differential-testing model: the same operation applied to agentfs (a path
 * "/x/y" in the store) and to a real tmpfs directory (`${root}/x/y` via
 * node:fs/promises), with results and error codes normalised for comparison.
 */
import * as nfs from "node:fs/promises";
import { join } from "node:path";
import fc from "fast-check";
import { createHash } from "node:crypto";
import type { AgentFsPromises } from "../src/index.js";
import { prng } from "./helpers.js";

export const PATHS = ["/a", "/b", "/c", "/d1", "/d2", "/d1/a", "/d1/b", "/d1/d2", "/d2/a", "/d2/c", "/d1/d2/a"];
/** Symlink targets: relative and absolute (absolute ones are mapped into the tmpfs root); none escapes the root. */
export const TARGETS = ["a", "b", "d1", "d1/a", "d2/c", "nonexist", ".", "/a", "/d1", "/d1/a", "/d2", "/nonexist/x"];
export const MODES = [0o600, 0o644, 0o755, 0o700, 0o777, 0o4755];

export type Op =
  | { op: "writeFile"; p: string; len: number; seed: number }
  | { op: "appendFile"; p: string; len: number; seed: number }
  | { op: "pwrite"; p: string; off: number; len: number; seed: number }
  | { op: "truncate"; p: string; len: number }
  | { op: "mkdir"; p: string }
  | { op: "rmdir"; p: string }
  | { op: "unlink"; p: string }
  | { op: "rename"; p: string; q: string }
  | { op: "link"; p: string; q: string }
  | { op: "symlink"; t: string; p: string }
  | { op: "chmod"; p: string; mode: number }
  | { op: "readFile"; p: string }
  | { op: "copyFile"; p: string; q: string; excl: boolean }
  | { op: "createExcl"; p: string; len: number; seed: number }
  | { op: "readlink"; p: string }
  | { op: "realpath"; p: string }
  | { op: "readdir"; p: string }
  | { op: "stat"; p: string }
  | { op: "lstat"; p: string };

const path = fc.constantFrom(...PATHS);
const dirPath = fc.constantFrom("/", ...PATHS);
const len = fc.oneof({ weight: 6, arbitrary: fc.integer({ min: 0, max: 200 }) }, { weight: 2, arbitrary: fc.integer({ min: 0, max: 5000 }) }, { weight: 1, arbitrary: fc.constantFrom(70_000, 300_000) });
const seed = fc.integer({ min: 1, max: 1_000_000 });

export const fsOp: fc.Arbitrary<Op> = fc.oneof(
  { weight: 4, arbitrary: fc.record({ op: fc.constant("writeFile" as const), p: path, len, seed }) },
  { weight: 2, arbitrary: fc.record({ op: fc.constant("appendFile" as const), p: path, len, seed }) },
  { weight: 2, arbitrary: fc.record({ op: fc.constant("pwrite" as const), p: path, off: fc.oneof(fc.integer({ min: 0, max: 300 }), fc.constantFrom(65_530, 100_000)), len, seed }) },
  { weight: 2, arbitrary: fc.record({ op: fc.constant("truncate" as const), p: path, len: fc.oneof(fc.integer({ min: 0, max: 300 }), fc.constant(70_000)) }) },
  { weight: 4, arbitrary: fc.record({ op: fc.constant("mkdir" as const), p: path }) },
  { weight: 2, arbitrary: fc.record({ op: fc.constant("rmdir" as const), p: path }) },
  { weight: 2, arbitrary: fc.record({ op: fc.constant("unlink" as const), p: path }) },
  { weight: 3, arbitrary: fc.record({ op: fc.constant("rename" as const), p: path, q: path }) },
  { weight: 2, arbitrary: fc.record({ op: fc.constant("link" as const), p: path, q: path }) },
  { weight: 2, arbitrary: fc.record({ op: fc.constant("symlink" as const), t: fc.constantFrom(...TARGETS), p: path }) },
  { weight: 1, arbitrary: fc.record({ op: fc.constant("chmod" as const), p: path, mode: fc.constantFrom(...MODES) }) },
  { weight: 2, arbitrary: fc.record({ op: fc.constant("readFile" as const), p: path }) },
  { weight: 1, arbitrary: fc.record({ op: fc.constant("copyFile" as const), p: path, q: path, excl: fc.boolean() }) },
  { weight: 1, arbitrary: fc.record({ op: fc.constant("createExcl" as const), p: path, len, seed }) },
  { weight: 1, arbitrary: fc.record({ op: fc.constant("readlink" as const), p: path }) },
  { weight: 1, arbitrary: fc.record({ op: fc.constant("realpath" as const), p: dirPath }) },
  { weight: 1, arbitrary: fc.record({ op: fc.constant("readdir" as const), p: dirPath }) },
  { weight: 1, arbitrary: fc.record({ op: fc.constant("stat" as const), p: dirPath }) },
  { weight: 1, arbitrary: fc.record({ op: fc.constant("lstat" as const), p: path }) },
);

/** The two sides an op runs on: an agentfs fs, or node:fs/promises rooted at `root`. */
export type Side = { kind: "agentfs"; fs: AgentFsPromises } | { kind: "host"; root: string; linkRoot?: string };

function mapPath(side: Side, p: string): string {
  return side.kind === "agentfs" ? p : p === "/" ? side.root : join(side.root, p);
}

/** Host paths inside the root back to store paths. */
function unmap(side: Side, p: string): string {
  if (side.kind !== "host") return p;
  const lr = side.linkRoot ?? side.root;
  return p === lr ? "/" : p.startsWith(lr + "/") ? p.slice(lr.length) : p;
}

function mapTarget(side: Side, t: string): string {
  return side.kind === "host" && t.startsWith("/") ? join(side.root, t) : t;
}

type StatLike = { mode: number | bigint; nlink: number | bigint; size: number | bigint; isFile(): boolean; isDirectory(): boolean; isSymbolicLink(): boolean };

function statSummary(s: StatLike): unknown {
  const mode = Number(s.mode);
  const type = s.isFile() ? "file" : s.isDirectory() ? "dir" : s.isSymbolicLink() ? "symlink" : "other";
  // Directory sizes and st_blocks differ by design; atime is not compared.
  // Symlink sizes are compared through their targets in the final tree (absolute targets are mapped on the host).
  return { type, perm: mode & 0o7777, nlink: Number(s.nlink), size: type === "file" ? Number(s.size) : undefined };
}

/** Runs `o` on `side`; returns a comparable outcome: `{ ok: value }` or `{ err: code }`. */
export async function apply(side: Side, o: Op): Promise<unknown> {
  const f: any = side.kind === "agentfs" ? side.fs : nfs;
  const P = (p: string) => mapPath(side, p);
  try {
    switch (o.op) {
      case "writeFile":
        await f.writeFile(P(o.p), prng(o.len, o.seed));
        return { ok: null };
      case "appendFile":
        await f.appendFile(P(o.p), prng(o.len, o.seed));
        return { ok: null };
      case "pwrite": {
        const h = await f.open(P(o.p), "r+");
        try {
          const data = prng(o.len, o.seed);
          await h.write(data, 0, data.length, o.off);
        } finally {
          await h.close();
        }
        return { ok: null };
      }
      case "truncate":
        await f.truncate(P(o.p), o.len);
        return { ok: null };
      case "mkdir":
        await f.mkdir(P(o.p));
        return { ok: null };
      case "rmdir":
        await f.rmdir(P(o.p));
        return { ok: null };
      case "unlink":
        await f.unlink(P(o.p));
        return { ok: null };
      case "rename":
        await f.rename(P(o.p), P(o.q));
        return { ok: null };
      case "link":
        await f.link(P(o.p), P(o.q));
        return { ok: null };
      case "symlink":
        await f.symlink(mapTarget(side, o.t), P(o.p));
        return { ok: null };
      case "chmod":
        await f.chmod(P(o.p), o.mode);
        return { ok: null };
      case "readFile": {
        const b: Buffer = await f.readFile(P(o.p));
        return { ok: { len: b.length, hex: b.length <= 64 ? b.toString("hex") : require_sha(b) } };
      }
      case "copyFile":
        // Deliberate divergence: libuv copies a directory source by creating the destination, failing
        // with EISDIR and then unlinking the destination, even one that existed before. agentfs
        // refuses a directory source up front with EISDIR and leaves the destination alone.
        if (side.kind === "host") {
          const st = await nfs.stat(P(o.p)).catch(() => undefined);
          if (st?.isDirectory()) return { err: "EISDIR" };
        }
        await f.copyFile(P(o.p), P(o.q), o.excl ? 1 /* COPYFILE_EXCL */ : 0);
        return { ok: null };
      case "createExcl":
        await f.writeFile(P(o.p), prng(o.len, o.seed), { flag: "wx" });
        return { ok: null };
      case "readlink":
        return { ok: unmap(side, await f.readlink(P(o.p))) };
      case "realpath":
        return { ok: unmap(side, await f.realpath(P(o.p))) };
      case "readdir":
        return { ok: ((await f.readdir(P(o.p))) as string[]).slice().sort() };
      case "stat":
        return { ok: statSummary(await f.stat(P(o.p))) };
      case "lstat":
        return { ok: statSummary(await f.lstat(P(o.p))) };
    }
  } catch (e) {
    const code = (e as { code?: string }).code;
    if (!code) throw e;
    return { err: code };
  }
}

function require_sha(b: Buffer): string {
  return createHash("sha256").update(b).digest("hex");
}

/** A whole tree, path → description (type, permission bits, content hash, symlink target, nlink for files). */
export async function snapshotTree(side: Side): Promise<Record<string, unknown>> {
  const out: Record<string, unknown> = {};
  const f: any = side.kind === "agentfs" ? side.fs : nfs;
  const walk = async (p: string) => {
    const names = ((await f.readdir(mapPath(side, p))) as string[]).slice().sort();
    for (const n of names) {
      const cp = p === "/" ? `/${n}` : `${p}/${n}`;
      const st = await f.lstat(mapPath(side, cp));
      const perm = Number(st.mode) & 0o7777;
      if (st.isSymbolicLink()) {
        let t: string = await f.readlink(mapPath(side, cp));
        const lr = side.kind === "host" ? side.linkRoot ?? side.root : "";
        if (side.kind === "host" && (t === lr || t.startsWith(lr + "/"))) t = t.slice(lr.length) || "/";
        out[cp] = { type: "symlink", target: t };
      } else if (st.isDirectory()) {
        out[cp] = { type: "dir", perm, nlink: Number(st.nlink) };
        await walk(cp);
      } else {
        const b: Buffer = await f.readFile(mapPath(side, cp));
        out[cp] = { type: "file", perm, nlink: Number(st.nlink), size: b.length, sha: require_sha(b) };
      }
    }
  };
  await walk("/");
  return out;
}
