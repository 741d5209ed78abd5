/**
 * The main-job demo (`pnpm demo`): drives the real `agentfs` command, as
 * child processes, through a realistic job on a tree of thousands of real
 * files (default /usr/share/doc; override with AGENTFS_DEMO_TREE):
 * init, import, snapshot v1, edit/delete/add/rename/chmod/link, snapshot v2,
 * branch from v1, diff v1→v2 (checked against the changes made), export both
 * snapshots and verify them byte for byte against the original tree and
 * against a host copy with the same changes applied, fsck, stats. Ends with
 * `VERDICT: PASS` (exit 0) or `VERDICT: FAIL: <reasons>` (exit 1).
 */
import { spawn } from "node:child_process";
import { createHash, randomBytes } from "node:crypto";
import * as fs from "node:fs";
import { tmpdir } from "node:os";
import { dirname, join, posix } from "node:path";
import { fileURLToPath } from "node:url";
import { hostTimeSec } from "@agentfs/core";
import { humanBytes } from "./format.js";

const MAIN = join(dirname(fileURLToPath(import.meta.url)), "main.js");
const T0 = Date.now();
const failures: string[] = [];

/** Result of one `agentfs` run: exit status and captured output. */
export interface CliRun {
  code: number;
  stdout: Buffer;
  stderr: string;
}

/**
 * Runs `node main.js ...args` in `cwd` with optional stdin `input`; resolves
 * with status and output (never rejects on a non-zero status).
 */
export function runCli(args: string[], cwd: string, input?: Buffer, env: NodeJS.ProcessEnv = process.env): Promise<CliRun> {
  return new Promise((resolvePromise, reject) => {
    const child = spawn(process.execPath, [MAIN, ...args], { cwd, env, stdio: ["pipe", "pipe", "pipe"] });
    const out: Buffer[] = [];
    const err: Buffer[] = [];
    child.stdout.on("data", (b: Buffer) => out.push(b));
    child.stderr.on("data", (b: Buffer) => err.push(b));
    child.on("error", reject);
    child.on("close", (code) => resolvePromise({ code: code ?? 1, stdout: Buffer.concat(out), stderr: Buffer.concat(err).toString() }));
    child.stdin.on("error", () => {});
    child.stdin.end(input ?? Buffer.alloc(0));
  });
}

function stamp(): string {
  return `[${((Date.now() - T0) / 1000).toFixed(2).padStart(7)}s]`;
}

function log(msg: string): void {
  process.stdout.write(`${stamp()} ${msg}\n`);
}

function check(ok: boolean, what: string): boolean {
  if (!ok) {
    failures.push(what);
    log(`  CHECK FAILED: ${what}`);
  }
  return ok;
}

class Fatal extends Error {}

let storeDir = "";

/** Runs agentfs, logs the command line, and throws Fatal on a non-zero exit. */
async function agentfs(args: string[], opts: { input?: Buffer; quiet?: boolean } = {}): Promise<CliRun> {
  if (!opts.quiet) log(`  $ agentfs ${args.map((a) => (/^[\w./:=@+-]+$/.test(a) ? a : JSON.stringify(a))).join(" ")}`);
  const r = await runCli(args, storeDir, opts.input);
  if (r.code !== 0) throw new Fatal(`'agentfs ${args.join(" ")}' exited ${r.code}: ${r.stderr.trim()}`);
  return r;
}

async function agentfsJson<T>(args: string[]): Promise<T> {
  const r = await agentfs([...args, "--json"]);
  return JSON.parse(r.stdout.toString()) as T;
}

async function step<T>(title: string, fn: () => Promise<T>): Promise<T> {
  log(title);
  const t = Date.now();
  const v = await fn();
  log(`  done in ${((Date.now() - t) / 1000).toFixed(2)} s`);
  return v;
}

// ---------------------------------------------------------------- host trees

/** One entry of a host tree as the comparison sees it. */
interface HostEntry {
  type: "file" | "dir" | "symlink" | "other";
  mode: number;
  size: number;
  mtimeNs: bigint;
  uid: number;
  gid: number;
  ino: bigint;
  nlink: number;
  target?: string;
}

function scanTree(root: string): Map<string, HostEntry> {
  const out = new Map<string, HostEntry>();
  const walk = (rel: string) => {
    for (const name of fs.readdirSync(join(root, rel)).sort()) {
      const r = rel ? `${rel}/${name}` : name;
      const st = fs.lstatSync(join(root, r), { bigint: true });
      const type = st.isFile() ? "file" : st.isDirectory() ? "dir" : st.isSymbolicLink() ? "symlink" : "other";
      const e: HostEntry = { type, mode: Number(st.mode) & 0o7777, size: Number(st.size), mtimeNs: st.mtimeNs, uid: Number(st.uid), gid: Number(st.gid), ino: st.ino, nlink: Number(st.nlink) };
      if (type === "symlink") e.target = fs.readlinkSync(join(root, r));
      out.set(r, e);
      if (type === "dir") walk(r);
    }
  };
  walk("");
  return out;
}

function sameBytes(a: string, b: string): boolean {
  const fa = fs.openSync(a, "r");
  const fb = fs.openSync(b, "r");
  try {
    const ba = Buffer.allocUnsafe(1 << 20);
    const bb = Buffer.allocUnsafe(1 << 20);
    for (let pos = 0; ; ) {
      const na = fs.readSync(fa, ba, 0, ba.length, pos);
      const nb = fs.readSync(fb, bb, 0, bb.length, pos);
      if (na !== nb || !ba.subarray(0, na).equals(bb.subarray(0, nb))) return false;
      if (na === 0) return true;
      pos += na;
    }
  } finally {
    fs.closeSync(fa);
    fs.closeSync(fb);
  }
}

/**
 * Compares host tree `actual` with `expected`: the same paths, types,
 * permission bits, symlink targets, file bytes, hard-link groups, owners
 * (when root), and mtimes (within 10 µs) except for paths in `skipTimes`.
 * Returns a list of differences (at most `limit`).
 */
function compareTrees(expected: string, actual: string, skipTimes: Set<string>, limit = 20): { problems: string[]; files: number; bytes: number } {
  const E = scanTree(expected);
  const A = scanTree(actual);
  const problems: string[] = [];
  const add = (p: string) => {
    if (problems.length < limit) problems.push(p);
  };
  let files = 0;
  let bytes = 0;
  for (const p of E.keys()) if (!A.has(p)) add(`missing in export: ${p}`);
  for (const p of A.keys()) if (!E.has(p)) add(`unexpected in export: ${p}`);
  const isRoot = process.getuid?.() === 0;
  for (const [p, e] of E) {
    const a = A.get(p);
    if (!a) continue;
    if (a.type !== e.type) {
      add(`${p}: type ${a.type}, expected ${e.type}`);
      continue;
    }
    if (e.type !== "symlink" && a.mode !== e.mode) add(`${p}: mode ${a.mode.toString(8)}, expected ${e.mode.toString(8)}`);
    if (e.type === "symlink" && a.target !== e.target) add(`${p}: symlink -> ${a.target}, expected -> ${e.target}`);
    if (isRoot && (a.uid !== e.uid || a.gid !== e.gid)) add(`${p}: owner ${a.uid}:${a.gid}, expected ${e.uid}:${e.gid}`);
    if (!skipTimes.has(p)) {
      const d = a.mtimeNs > e.mtimeNs ? a.mtimeNs - e.mtimeNs : e.mtimeNs - a.mtimeNs;
      if (d > 10_000n) add(`${p}: mtime differs by ${d} ns`);
    }
    if (e.type === "file") {
      files++;
      bytes += e.size;
      if (a.size !== e.size) add(`${p}: size ${a.size}, expected ${e.size}`);
      else if (!sameBytes(join(expected, p), join(actual, p))) add(`${p}: contents differ`);
    }
  }
  // Hard-link groups must match exactly.
  const groups = (M: Map<string, HostEntry>) => {
    const g = new Map<bigint, string[]>();
    for (const [p, e] of M) if (e.type === "file" && e.nlink > 1) g.set(e.ino, [...(g.get(e.ino) ?? []), p]);
    return new Set([...g.values()].filter((v) => v.length > 1).map((v) => v.sort().join(" = ")));
  };
  const ge = groups(E);
  const ga = groups(A);
  for (const g of ge) if (!ga.has(g)) add(`hard-link group not preserved: ${g}`);
  for (const g of ga) if (!ge.has(g)) add(`unexpected hard-link group: ${g}`);
  return { problems, files, bytes };
}

/** Copies a host tree preserving modes, symlinks, hard links and mtimes (set the way exportTree sets them). */
function copyTree(src: string, dst: string): void {
  const links = new Map<string, string>();
  const dirs: Array<[string, fs.BigIntStats]> = [];
  const walk = (s: string, d: string) => {
    fs.mkdirSync(d, { recursive: true });
    for (const name of fs.readdirSync(s)) {
      const sp = join(s, name);
      const dp = join(d, name);
      const st = fs.lstatSync(sp, { bigint: true });
      if (st.isDirectory()) {
        walk(sp, dp);
        dirs.push([dp, st]);
      } else if (st.isSymbolicLink()) {
        fs.symlinkSync(fs.readlinkSync(sp), dp);
        fs.lutimesSync(dp, hostTimeSec(st.atimeNs), hostTimeSec(st.mtimeNs));
      } else if (st.isFile()) {
        const key = `${st.dev}:${st.ino}`;
        const first = st.nlink > 1n ? links.get(key) : undefined;
        if (first) {
          fs.linkSync(first, dp);
          continue;
        }
        if (st.nlink > 1n) links.set(key, dp);
        fs.copyFileSync(sp, dp);
        fs.chmodSync(dp, Number(st.mode) & 0o7777);
        fs.utimesSync(dp, hostTimeSec(st.atimeNs), hostTimeSec(st.mtimeNs));
      }
    }
  };
  walk(src, dst);
  for (const [dp, st] of dirs) {
    fs.chmodSync(dp, Number(st.mode) & 0o7777);
    fs.utimesSync(dp, hostTimeSec(st.atimeNs), hostTimeSec(st.mtimeNs));
  }
}

// ---------------------------------------------------------------- the job

function pickTree(): string {
  const candidates = [process.env.AGENTFS_DEMO_TREE, "/usr/share/doc", join(dirname(fileURLToPath(import.meta.url)), "../../../node_modules/.pnpm"), "/usr/share/man", "/usr/share"];
  for (const c of candidates) {
    if (!c || !fs.existsSync(c)) continue;
    let n = 0;
    const count = (d: string) => {
      for (const e of fs.readdirSync(d, { withFileTypes: true })) {
        if (n >= 1000) return;
        if (e.isDirectory()) count(join(d, e.name));
        else n++;
      }
    };
    try {
      count(c);
    } catch {
      continue;
    }
    if (n >= 1000 || c === process.env.AGENTFS_DEMO_TREE) return c;
  }
  throw new Fatal("no tree with at least 1000 files found (set AGENTFS_DEMO_TREE)");
}

interface DiffEntryJson {
  path: string;
  change: string;
  kind: string;
  what?: string[];
}

const SAFE = /^[A-Za-z0-9_][A-Za-z0-9_.+@,=-]*$/;

async function main(): Promise<void> {
  const tree = pickTree();
  const work = fs.mkdtempSync(join(tmpdir(), "agentfs-demo-"));
  storeDir = join(work, "project");
  fs.mkdirSync(storeDir);
  const keep = !!process.env.AGENTFS_DEMO_KEEP;
  try {
    const src = scanTree(tree);
    const srcFiles = [...src].filter(([, e]) => e.type === "file");
    const nSym = [...src.values()].filter((e) => e.type === "symlink").length;
    const nDir = [...src.values()].filter((e) => e.type === "dir").length;
    const nOther = [...src.values()].filter((e) => e.type === "other").length;
    const srcBytes = srcFiles.reduce((s, [, e]) => s + e.size, 0);
    log(`agentfs demo: tree ${tree}: ${srcFiles.length} files, ${nDir} directories, ${nSym} symlinks, ${humanBytes(srcBytes)}; work dir ${work}`);

    await step("1. init a fresh store (commands below find it from the working directory)", async () => {
      await agentfs(["init"]);
    });

    const imp = await step(`2. import ${tree}`, async () => agentfsJson<{ files: number; dirs: number; symlinks: number; hardlinks: number; bytes: number; skipped: string[] }>(["import", tree, "/"]));
    log(`  imported ${imp.files} files, ${imp.dirs} dirs, ${imp.symlinks} symlinks, ${imp.hardlinks} hard links, ${humanBytes(imp.bytes)}`);
    check(imp.files + imp.hardlinks === srcFiles.length, `import counted ${imp.files + imp.hardlinks} files, tree has ${srcFiles.length}`);
    check(imp.symlinks === nSym && imp.dirs === nDir, `import counted ${imp.dirs} dirs/${imp.symlinks} symlinks, tree has ${nDir}/${nSym}`);
    check(imp.skipped.length === nOther, `import skipped ${imp.skipped.length} entries, tree has ${nOther} special files`);

    const st1 = await step("3. snapshot v1", async () => {
      await agentfs(["snapshot", "create", "v1", "-m", "imported tree"]);
      return agentfsJson<{ store: { objects: number } }>(["stats"]);
    });

    // ---- choose the changes (deterministic: sorted paths)
    const safeFiles = srcFiles.filter(([p]) => p.split("/").every((s) => SAFE.test(s))).map(([p, e]) => ({ p, e }));
    if (safeFiles.length < 20) throw new Fatal("tree has too few plainly named files to change");
    const used = new Set<string>();
    const inside = (p: string, dir: string) => p.startsWith(dir + "/");
    const big = [...safeFiles].sort((a, b) => b.e.size - a.e.size || (a.p < b.p ? -1 : 1))[0]!;
    used.add(big.p);
    // a directory with 3..30 entries below it, none of them chosen, not the root
    const dirsSorted = [...src].filter(([p, e]) => e.type === "dir" && p.split("/").every((s) => SAFE.test(s))).map(([p]) => p);
    const delDir = dirsSorted.find((d) => {
      const n = [...src.keys()].filter((p) => inside(p, d)).length;
      return n >= 3 && n <= 30 && !inside(big.p, d);
    });
    if (!delDir) throw new Fatal("no directory with 3..30 entries to delete");
    const pool = safeFiles.filter((f) => !used.has(f.p) && !inside(f.p, delDir) && f.e.nlink === 1);
    const pick = (frac: number) => {
      let i = Math.floor(pool.length * frac);
      while (used.has(pool[i % pool.length]!.p)) i++;
      const f = pool[i % pool.length]!;
      used.add(f.p);
      return f;
    };
    const deleted = [pick(0.2), pick(0.4), pick(0.6)].map((f) => f.p);
    const chmodded = pick(0.7);
    const renamed = pick(0.8);
    const linkSrc = pick(0.9);
    const dupSrc = pick(0.1);
    const newMode = chmodded.e.mode === 0o600 ? 0o640 : 0o600;
    const renamedTo = `${renamed.p}.renamed`;
    const newFiles: Array<[string, Buffer]> = [
      ["agentfs-demo/notes.txt", Buffer.from("written by the agentfs demo through `agentfs write`\n")],
      ["agentfs-demo/new/random.bin", randomBytes(300_000)],
      ["agentfs-demo/new/copy-of-existing", fs.readFileSync(join(tree, dupSrc.p))],
    ];
    const symlinkPath = "agentfs-demo/link-to-renamed";
    const symlinkTarget = `../${renamedTo}`;
    const hardPath = "agentfs-demo/hard-link";

    // The edit: insert bytes in the middle of the largest file (fetched and rewritten through the CLI).
    const editMarker = Buffer.from("\n<<< agentfs demo: inserted in the middle of the largest file >>>\n");

    const expectedEdit = await step(`4. change the branch: edit ${big.p} (${humanBytes(big.e.size)}) in the middle; delete 3 files and ${delDir}/; add files, a symlink and a hard link; rename; chmod`, async () => {
      const cur = (await agentfs(["cat", `/${big.p}`])).stdout;
      check(cur.equals(fs.readFileSync(join(tree, big.p))), `agentfs cat /${big.p} returned the imported bytes`);
      const mid = Math.floor(cur.length / 2);
      const edited = Buffer.concat([cur.subarray(0, mid), editMarker, cur.subarray(mid)]);
      await agentfs(["write", `/${big.p}`], { input: edited });
      await agentfs(["rm", ...deleted.map((p) => `/${p}`)]);
      await agentfs(["rm", "-r", `/${delDir}`]);
      await agentfs(["mkdir", "-p", "/agentfs-demo/new"]);
      for (const [p, data] of newFiles) await agentfs(["write", "-m", "0644", `/${p}`], { input: data });
      await agentfs(["mv", `/${renamed.p}`, `/${renamedTo}`]);
      await agentfs(["ln", "-s", symlinkTarget, `/${symlinkPath}`]);
      await agentfs(["ln", `/${linkSrc.p}`, `/${hardPath}`]);
      await agentfs(["chmod", newMode.toString(8), `/${chmodded.p}`]);
      return edited;
    });

    const st2 = await step("5. snapshot v2", async () => {
      await agentfs(["snapshot", "create", "v2", "-m", "after the changes"]);
      return agentfsJson<{ tree: { files: number; symlinks: number; dirs: number; logicalBytes: number }; store: { objects: number; storedBytes: number; dedupRatio: number } }>(["stats"]);
    });
    const newObjects = st2.store.objects - st1.store.objects;
    log(`  the changes added ${newObjects} objects to the store (v1 had ${st1.store.objects})`);
    check(newObjects <= newFiles.length + 12, `editing the middle of a ${humanBytes(big.e.size)} file and adding ${newFiles.length} files should store only a few new chunks, got ${newObjects}`);

    await step("6. branch 'experiment' from v1; write on it; v1 and v2 are untouched", async () => {
      await agentfs(["branch", "create", "experiment", "v1"]);
      const l = await agentfsJson<Array<{ name: string }>>(["--branch", "experiment", "ls", `/${posix.dirname(deleted[0]!)}`]);
      check(l.some((e) => e.name === posix.basename(deleted[0]!)), `branch experiment (from v1) still has ${deleted[0]}`);
      await agentfs(["--branch", "experiment", "write", "/experiment.txt"], { input: Buffer.from("only on the experiment branch\n") });
      const d = await agentfsJson<{ changes: DiffEntryJson[] }>(["diff", "v1", "experiment"]);
      check(d.changes.length === 1 && d.changes[0]!.path === "/experiment.txt" && d.changes[0]!.change === "added", `diff v1 experiment lists exactly /experiment.txt added (got ${JSON.stringify(d.changes.map((c) => c.path))})`);
      const b = await agentfsJson<Array<{ name: string; current: boolean }>>(["branch", "list"]);
      check(b.map((x) => `${x.current ? "*" : ""}${x.name}`).join(",") === "experiment,*main", `branch list is experiment, *main (got ${b.map((x) => x.name).join(",")})`);
    });

    await step("7. diff v1 -> v2", async () => {
      const human = (await agentfs(["diff", "v1", "v2"])).stdout.toString();
      for (const line of human.trimEnd().split("\n")) log(`  | ${line}`);
      const d = await agentfsJson<{ changes: DiffEntryJson[] }>(["diff", "v1", "v2"]);
      const expected: DiffEntryJson[] = [
        { path: `/${big.p}`, change: "modified", kind: "file", what: ["content"] },
        ...deleted.map((p) => ({ path: `/${p}`, change: "deleted", kind: "file" })),
        ...[delDir, ...[...src.keys()].filter((p) => inside(p, delDir))].map((p) => ({ path: `/${p}`, change: "deleted", kind: src.get(p)!.type })),
        { path: "/agentfs-demo", change: "added", kind: "dir" },
        { path: "/agentfs-demo/new", change: "added", kind: "dir" },
        ...newFiles.map(([p]) => ({ path: `/${p}`, change: "added", kind: "file" })),
        { path: `/${symlinkPath}`, change: "added", kind: "symlink" },
        { path: `/${hardPath}`, change: "added", kind: "file" },
        { path: `/${renamed.p}`, change: "deleted", kind: "file" },
        { path: `/${renamedTo}`, change: "added", kind: "file" },
        { path: `/${chmodded.p}`, change: "modified", kind: "file", what: ["mode"] },
      ];
      const key = (e: DiffEntryJson) => `${e.change} ${e.kind} ${e.path}${e.what ? ` [${e.what.join(",")}]` : ""}`;
      const want = new Set(expected.map(key));
      const got = new Set(d.changes.map(key));
      const missing = [...want].filter((k) => !got.has(k));
      const extra = [...got].filter((k) => !want.has(k));
      check(missing.length === 0 && extra.length === 0, `diff v1 v2 lists exactly the ${want.size} changes made (missing: ${JSON.stringify(missing)}; unexpected: ${JSON.stringify(extra)})`);
      if (!missing.length && !extra.length) log(`  diff lists exactly the ${want.size} changes made`);
    });

    const out1 = join(work, "export-v1");
    const out2 = join(work, "export-v2");
    await step("8. export snapshots v1 and v2 to host directories", async () => {
      const e1 = await agentfsJson<{ files: number; bytes: number }>(["--snapshot", "v1", "export", "/", out1]);
      log(`  v1: ${e1.files} files, ${humanBytes(e1.bytes)}`);
      const e2 = await agentfsJson<{ files: number; bytes: number }>(["--snapshot", "v2", "export", "/", out2]);
      log(`  v2: ${e2.files} files, ${humanBytes(e2.bytes)}`);
    });

    await step(`9. verify export of v1 against ${tree} (bytes, modes, symlink targets, types, hard links, mtimes)`, async () => {
      const r = compareTrees(tree, out1, new Set());
      log(`  compared ${r.files} files, ${humanBytes(r.bytes)}: ${r.problems.length ? `${r.problems.length} differences` : "identical"}`);
      for (const p of r.problems) log(`  ! ${p}`);
      check(r.problems.length === 0, `export of v1 differs from ${tree}: ${r.problems.slice(0, 3).join("; ")}`);
    });

    await step("10. build the expected v2 on the host (copy of the tree + the same changes) and verify the export of v2 against it", async () => {
      const exp = join(work, "expected-v2");
      copyTree(tree, exp);
      const touched = new Set<string>();
      const touch = (p: string) => {
        touched.add(p);
        for (let d = posix.dirname(p); d !== "."; d = posix.dirname(d)) {
          touched.add(d);
          break;
        }
      };
      fs.writeFileSync(join(exp, big.p), expectedEdit);
      touch(big.p);
      for (const p of deleted) {
        fs.rmSync(join(exp, p));
        touch(p);
      }
      fs.rmSync(join(exp, delDir), { recursive: true });
      touch(delDir);
      fs.mkdirSync(join(exp, "agentfs-demo/new"), { recursive: true });
      for (const [p, data] of newFiles) {
        fs.writeFileSync(join(exp, p), data, { mode: 0o644 });
        fs.chmodSync(join(exp, p), 0o644);
        touch(p);
      }
      fs.renameSync(join(exp, renamed.p), join(exp, renamedTo));
      touch(renamed.p);
      touch(renamedTo);
      touched.delete(renamedTo); // rename keeps the file's mtime
      fs.symlinkSync(symlinkTarget, join(exp, symlinkPath));
      touch(symlinkPath);
      fs.linkSync(join(exp, linkSrc.p), join(exp, hardPath));
      touch(hardPath);
      touched.delete(linkSrc.p);
      fs.chmodSync(join(exp, chmodded.p), newMode);
      for (const d of ["agentfs-demo", "agentfs-demo/new"]) {
        fs.chmodSync(join(exp, d), 0o777 & ~process.umask());
        touched.add(d);
      }
      const r = compareTrees(exp, out2, touched);
      log(`  compared ${r.files} files, ${humanBytes(r.bytes)}: ${r.problems.length ? `${r.problems.length} differences` : "identical"}`);
      for (const p of r.problems) log(`  ! ${p}`);
      check(r.problems.length === 0, `export of v2 differs from the expected state: ${r.problems.slice(0, 3).join("; ")}`);
      check(createHash("sha256").update(fs.readFileSync(join(out2, big.p))).digest("hex") === createHash("sha256").update(expectedEdit).digest("hex"), "edited file in v2 export has the edited bytes");
    });

    await step("11. fsck", async () => {
      const r = await runCli(["fsck"], storeDir);
      log(`  | ${r.stdout.toString().trim().split("\n").join("\n  | ")}`);
      check(r.code === 0, `fsck exited ${r.code}: ${r.stderr.trim()}`);
    });

    await step("12. stats of v2", async () => {
      const human = (await agentfs(["--snapshot", "v2", "stats"])).stdout.toString();
      for (const line of human.trimEnd().split("\n")) log(`  | ${line}`);
      const s = await agentfsJson<{ tree: { files: number; symlinks: number; dirs: number; logicalBytes: number }; store: { storedBytes: number; dedupRatio: number } }>(["--snapshot", "v2", "stats"]);
      const expFiles = scanTree(out2);
      const files = [...expFiles.values()].filter((e) => e.type === "file");
      const uniqueIno = new Set(files.map((e) => e.ino));
      check(s.tree.files === uniqueIno.size, `stats counts ${s.tree.files} files in v2, export has ${uniqueIno.size} distinct files`);
      check(s.tree.symlinks === [...expFiles.values()].filter((e) => e.type === "symlink").length, "stats symlink count matches the v2 export");
      check(s.store.dedupRatio >= 1, `dedup ratio ${s.store.dedupRatio.toFixed(2)} >= 1`);
      // v1 and v2 share every unchanged chunk: both snapshots together must take little more than one tree.
      const bothLogical = srcBytes + s.tree.logicalBytes;
      log(`  v1 + v2 hold ${humanBytes(bothLogical)} of file data; the store keeps them in ${humanBytes(s.store.storedBytes)} (${(bothLogical / s.store.storedBytes).toFixed(2)}x)`);
      check(s.store.storedBytes < srcBytes * 1.2, `store holds both snapshots in ${humanBytes(s.store.storedBytes)} (< 1.2 x one tree, ${humanBytes(srcBytes)})`);
    });
  } finally {
    if (keep || failures.length) log(`work dir kept: ${work}`);
    else fs.rmSync(work, { recursive: true, force: true });
  }
}

main()
  .catch((e) => {
    failures.push(e instanceof Fatal ? e.message : `demo crashed: ${(e as Error).stack ?? e}`);
  })
  .finally(() => {
    log(`total ${((Date.now() - T0) / 1000).toFixed(2)} s`);
    if (failures.length === 0) {
      process.stdout.write("VERDICT: PASS\n");
      process.exitCode = 0;
    } else {
      process.stdout.write(`VERDICT: FAIL: ${failures.join("; ")}\n`);
      process.exitCode = 1;
    }
  });
