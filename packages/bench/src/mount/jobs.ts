/**
 * The jobs of `pnpm bench:mount`. Each runs in a fresh subdirectory of one
 * target, as child processes, times only the workload itself, and then
 * verifies the result: a wrong result throws WorkloadFail (shown as FAIL).
 */
import { existsSync, mkdirSync, writeFileSync } from "node:fs";
import { dirname, join } from "node:path";
import { must, run, WorkloadFail, type FuseCount, type ProcResult } from "./proc.js";
import { cProject, ROUNDTRIP_PY, SMALLFILES_PY, sqliteScript, TREEHASH_PY } from "./scripts.js";

export interface Sizes {
  quick: boolean;
  /** fio file size (MiB) for all four fio jobs. */
  fioMiB: number;
  /** seconds of each time-bounded random fio job. */
  fioRuntime: number;
  smallFiles: number;
  sqliteRows: number;
  sqliteTxns: number;
  cFiles: number;
}

export const FULL: Sizes = { quick: false, fioMiB: 256, fioRuntime: 5, smallFiles: 10_000, sqliteRows: 50_000, sqliteTxns: 500, cFiles: 300 };
export const QUICK: Sizes = { quick: true, fioMiB: 32, fioRuntime: 1, smallFiles: 1_000, sqliteRows: 5_000, sqliteTxns: 50, cFiles: 30 };

/** Inputs prepared once on tmpfs before any job runs. */
export interface Ctx {
  sizes: Sizes;
  python: string;
  smallfilesPy: string;
  treehashPy: string;
  /** tar of /usr/share/doc, its extracted copy (rsync source) and the tree hash of that copy. */
  docTar: string;
  docSrc: string;
  docHash: string;
  docDesc: string;
  /** Generated C project and what its binary must print. */
  cSrc: string;
  cExpected: string;
  /** Copy of the Python standard library without __pycache__. */
  pyLib: string;
  pyLibDesc: string;
  gitSource: string;
  /** Set by the runner before each target: where to count FUSE requests of a timed command (null on tmpfs, or without tracefs). */
  fuse: FuseCount | null;
}

/** Calls of the round-trip job. */
export const ROUNDTRIP_CALLS = 20_000;

/** A timed command's values: its wall time (ms) and, when counted, the FUSE requests it made (`requests`). */
function timed(r: ProcResult): Record<string, number> {
  return r.fuseRequests === undefined ? { ms: r.ms } : { ms: r.ms, requests: r.fuseRequests };
}

export type Unit = "ms" | "MB/s" | "IOPS";
export interface MetricDef {
  key: string;
  label: string;
  unit: Unit;
}
export interface Job {
  id: string;
  group: string;
  /** Subdirectory of the target the job runs in (default: its id); removed after the last job that uses it. */
  dirName?: string;
  /** Real workloads carry the "within 2x of tmpfs" goal. */
  real?: boolean;
  metrics: MetricDef[];
  run(dir: string, ctx: Ctx): Promise<Record<string, number>>;
}

async function treeHash(ctx: Ctx, dir: string): Promise<string> {
  return (await must(ctx.python, [ctx.treehashPy, dir], { timeoutMs: 300_000 })).stdout.trim();
}

/** Prepares every shared input on tmpfs (untimed). */
export async function prepare(root: string, sizes: Sizes, gitSource: string): Promise<Ctx> {
  const inputs = join(root, "inputs");
  mkdirSync(inputs, { recursive: true });
  const python = (await must("python3", ["-c", "import sys; print(sys.executable)"])).stdout.trim();
  const smallfilesPy = join(inputs, "smallfiles.py");
  const treehashPy = join(inputs, "treehash.py");
  writeFileSync(smallfilesPy, SMALLFILES_PY);
  writeFileSync(treehashPy, TREEHASH_PY);
  const docTar = join(inputs, "doc.tar");
  await must("tar", ["cf", docTar, "-C", "/usr/share", "doc"], { timeoutMs: 300_000 });
  const docSrc = join(inputs, "src");
  mkdirSync(docSrc);
  await must("tar", ["xf", docTar, "-C", docSrc]);
  const count = (await must("find", [join(docSrc, "doc")])).stdout.trim().split("\n").length;
  const mb = Number((await must("du", ["-sm", join(docSrc, "doc")])).stdout.split("\t")[0]);
  const cSrc = join(inputs, "cproj");
  const proj = cProject(sizes.cFiles);
  for (const [rel, text] of Object.entries(proj.files)) {
    mkdirSync(dirname(join(cSrc, rel)), { recursive: true });
    writeFileSync(join(cSrc, rel), text);
  }
  const libSrc = (await must(python, ["-c", "import sysconfig; print(sysconfig.get_paths()['stdlib'])"])).stdout.trim();
  const pyLib = join(inputs, "pylib");
  await must("rsync", ["-a", "--exclude=__pycache__", "--exclude=site-packages", "--exclude=test/", "--exclude=tests/", "--exclude=idlelib/", "--exclude=lib2to3/", `${libSrc}/`, `${pyLib}/`], { timeoutMs: 300_000 });
  const pyCount = (await must("find", [pyLib, "-name", "*.py"])).stdout.trim().split("\n").length;
  const ctx: Ctx = {
    sizes,
    python,
    smallfilesPy,
    treehashPy,
    docTar,
    docSrc,
    docHash: "",
    docDesc: `/usr/share/doc: ${count} entries, ${mb} MB`,
    cSrc,
    cExpected: proj.expected,
    pyLib,
    pyLibDesc: `python3's standard library (no tests/site-packages): ${pyCount} .py files`,
    gitSource,
    fuse: null,
  };
  ctx.docHash = await treeHash(ctx, join(docSrc, "doc"));
  return ctx;
}

function fioArgs(file: string, rw: string, bs: string, ctx: Ctx, timeBased: boolean): string[] {
  const a = [`--name=${rw}`, `--filename=${file}`, `--rw=${rw}`, `--bs=${bs}`, `--size=${ctx.sizes.fioMiB}m`, "--ioengine=psync", "--direct=0", "--output-format=json"];
  if (timeBased) a.push(`--runtime=${ctx.sizes.fioRuntime}`, "--time_based");
  if (rw.includes("write")) a.push("--end_fsync=1");
  return a;
}

/**
 * Every fio run starts from the same memory state: dirty pages written back
 * and the page, dentry and inode caches dropped (`sync; echo 3 >
 * /proc/sys/vm/drop_caches`; needs root, else skipped). Without it each
 * target inherited what the targets before it left cached (their 256 MiB
 * files), and the last one measured, agentfs, wrote at 116–141 MB/s instead
 * of 188–205 in the same sitting. tmpfs files are not page cache and stay.
 */
async function dropCaches(): Promise<void> {
  const r = await run("sh", ["-c", "sync; echo 3 > /proc/sys/vm/drop_caches"], { timeoutMs: 60_000 });
  if (r.code !== 0 && !warnedDrop) {
    warnedDrop = true;
    process.stderr.write(`WARNING: could not drop the page cache before fio runs (${r.stderr.trim() || `exit ${r.code}`}): the fio rows are not what the report's heading says\n`);
  }
}
let warnedDrop = false;

async function fio(args: string[], dir: string): Promise<{ bw: number; iops: number }> {
  await dropCaches();
  const r = await must("fio", args, { cwd: dir, timeoutMs: 240_000 });
  const j = JSON.parse(r.stdout.slice(r.stdout.indexOf("{"))) as { jobs: { error: number; read: { bw_bytes: number; iops: number; io_bytes: number }; write: { bw_bytes: number; iops: number; io_bytes: number } }[] };
  const job = j.jobs[0];
  if (job.error) throw new WorkloadFail(`fio job error ${job.error}`);
  const side = job.write.io_bytes > 0 ? job.write : job.read;
  if (side.io_bytes <= 0) throw new WorkloadFail("fio moved no bytes");
  return { bw: side.bw_bytes / 1e6, iops: side.iops };
}

export function jobs(ctx: Ctx): Job[] {
  const s = ctx.sizes;
  const fioGroup = `fio, psync, buffered (--direct=0), one ${s.fioMiB} MiB file, caches dropped before each run; random jobs time-bounded to ${s.fioRuntime} s`;
  const mkFio = (id: string, rw: string, bs: string, timeBased: boolean, unit: Unit, label: string): Job => ({
    id,
    group: fioGroup,
    dirName: "fio",
    metrics: [{ key: "v", label, unit }],
    async run(dir) {
      // All four fio jobs share one file in the target's fio directory (seq write lays it out).
      const file = join(dir, "fio.dat");
      const r = await fio(fioArgs(file, rw, bs, ctx, timeBased), dir);
      if (rw === "write") {
        const size = Number((await must("stat", ["-c", "%s", file])).stdout.trim());
        if (size !== s.fioMiB * 1048576) throw new WorkloadFail(`fio file is ${size} bytes`);
      }
      return { v: unit === "IOPS" ? r.iops : r.bw };
    },
  });
  const smallGroup = `small files: ${s.smallFiles.toLocaleString("en-US")} × 1 KiB in 100 dirs (python3 in the directory)`;
  const phases = ["create", "stat", "readdir", "read", "rename", "unlink"];
  const realGroup = "real workloads (wall time of the command; result verified)";
  const one = (label: string) => [{ key: "ms", label, unit: "ms" as Unit }];
  return [
    mkFio("fio-seqwrite", "write", "1m", false, "MB/s", "sequential write, 1 MiB (+ fsync)"),
    mkFio("fio-seqread", "read", "1m", false, "MB/s", "sequential read, 1 MiB"),
    mkFio("fio-randread", "randread", "4k", true, "IOPS", "random read, 4 KiB"),
    mkFio("fio-randwrite", "randwrite", "4k", true, "IOPS", "random write, 4 KiB (+ fsync)"),
    {
      id: "roundtrip",
      group: `one request: ${ROUNDTRIP_CALLS.toLocaleString("en-US")} × open(O_CREAT|O_EXCL) of an existing file, each one LOOKUP answered EEXIST (timed inside python3)`,
      metrics: one(`all ${ROUNDTRIP_CALLS.toLocaleString("en-US")} calls`),
      async run(dir) {
        const r = await must(ctx.python, ["-c", ROUNDTRIP_PY, dir, String(ROUNDTRIP_CALLS)], { fuse: ctx.fuse });
        const ms = Number(r.stdout.trim());
        if (!(ms > 0)) throw new WorkloadFail(`round-trip script printed ${r.stdout.trim()}`);
        // (on FUSE: at least one request per call, or the job measures something else)
        if (r.fuseRequests !== undefined && r.fuseRequests < ROUNDTRIP_CALLS) throw new WorkloadFail(`${r.fuseRequests} FUSE requests for ${ROUNDTRIP_CALLS} calls`);
        return { ...timed(r), ms };
      },
    },
    {
      id: "smallfiles",
      group: smallGroup,
      metrics: [...phases.map((p) => ({ key: p, label: p, unit: "ms" as Unit })), { key: "total", label: "all six phases", unit: "ms" }],
      async run(dir) {
        const r = await run(ctx.python, [ctx.smallfilesPy, String(s.smallFiles), dir], { timeoutMs: 300_000 });
        if (r.code !== 0) throw new WorkloadFail(`smallfiles: ${r.timedOut ? "timed out" : (r.stderr || r.stdout).trim().split("\n").slice(-2).join(" | ")}`);
        const j = JSON.parse(r.stdout) as Record<string, number>;
        j.total = phases.reduce((a, p) => a + j[p], 0);
        return j;
      },
    },
    {
      id: "git-clone",
      group: realGroup,
      real: true,
      metrics: one(`git clone --no-hardlinks of this repository (+ checkout)`),
      async run(dir) {
        const r = await must("git", ["clone", "-q", "--no-hardlinks", ctx.gitSource, "repo"], { cwd: dir, fuse: ctx.fuse });
        const fsck = await run("git", ["-C", join(dir, "repo"), "fsck", "--full", "--no-progress"]);
        if (fsck.code !== 0) throw new WorkloadFail(`git fsck: ${fsck.stderr.trim().split("\n").slice(0, 2).join(" | ")}`);
        const st = await must("git", ["-C", join(dir, "repo"), "status", "--porcelain"]);
        if (st.stdout.trim()) throw new WorkloadFail(`clone not clean: ${st.stdout.trim().split("\n").slice(0, 3).join(" | ")}`);
        return timed(r);
      },
    },
    {
      id: "tar-x",
      group: realGroup,
      real: true,
      metrics: one(`tar x of ${ctx.docDesc}`),
      async run(dir) {
        const r = await must("tar", ["xf", ctx.docTar, "-C", dir], { timeoutMs: 300_000, fuse: ctx.fuse });
        const h = await treeHash(ctx, join(dir, "doc"));
        if (h !== ctx.docHash) throw new WorkloadFail(`extracted tree differs: ${h} vs ${ctx.docHash}`);
        return timed(r);
      },
    },
    {
      id: "make",
      group: realGroup,
      real: true,
      metrics: one(`make -j2 of ${s.cFiles} generated C files (gcc -O2)`),
      async run(dir) {
        await must("cp", ["-a", `${ctx.cSrc}/.`, dir]);
        const r = await must("make", ["-j2", "-s"], { cwd: dir, timeoutMs: 300_000, fuse: ctx.fuse });
        const out = (await must(join(dir, "prog"), [])).stdout.trim();
        if (out !== ctx.cExpected) throw new WorkloadFail(`binary printed ${out}, expected ${ctx.cExpected}`);
        return timed(r);
      },
    },
    {
      id: "compileall",
      group: realGroup,
      real: true,
      metrics: one(`python3 -m compileall -j2 of ${ctx.pyLibDesc}`),
      async run(dir) {
        await must("cp", ["-a", `${ctx.pyLib}/.`, dir], { timeoutMs: 300_000 });
        const r = await must(ctx.python, ["-m", "compileall", "-q", "-j", "2", dir], { timeoutMs: 300_000, fuse: ctx.fuse });
        const py = (await must("find", [dir, "-name", "*.py"])).stdout.trim().split("\n").length;
        const pyc = (await must("find", [dir, "-name", "*.pyc"])).stdout.trim().split("\n").length;
        if (py !== pyc) throw new WorkloadFail(`${pyc} .pyc for ${py} .py`);
        const imp = await run(ctx.python, ["-c", "import json, email.parser, http.client; print('ok')"], { cwd: dir, env: { ...process.env, PYTHONPATH: dir } });
        if (imp.stdout.trim() !== "ok") throw new WorkloadFail(`importing from the compiled tree: ${imp.stderr.trim().split("\n").pop()}`);
        return timed(r);
      },
    },
    {
      id: "sqlite",
      group: realGroup,
      real: true,
      metrics: one(`sqlite3 WAL: ${s.sqliteRows.toLocaleString("en-US")} rows in ${s.sqliteTxns} transactions, index, query`),
      async run(dir) {
        const r = await must("sqlite3", ["-batch", "-bail", join(dir, "db.sqlite")], { input: sqliteScript(s.sqliteRows, s.sqliteTxns), timeoutMs: 300_000, fuse: ctx.fuse });
        const lines = r.stdout.trim().split("\n");
        if (lines[0] !== "wal") throw new WorkloadFail(`journal_mode is ${lines[0]}`);
        if (lines.find((l) => l.startsWith("rows|")) !== `rows|${s.sqliteRows}`) throw new WorkloadFail(`row count: ${lines.join(" | ")}`);
        if (lines[lines.length - 1] !== "ok") throw new WorkloadFail(`integrity_check: ${lines[lines.length - 1]}`);
        const again = await must("sqlite3", [join(dir, "db.sqlite"), "PRAGMA integrity_check; SELECT count(*) FROM t;"]);
        if (again.stdout.trim() !== `ok\n${s.sqliteRows}`) throw new WorkloadFail(`reopened: ${again.stdout.trim()}`);
        return timed(r);
      },
    },
    {
      id: "rsync",
      group: realGroup,
      real: true,
      metrics: one(`rsync -a of ${ctx.docDesc}`),
      async run(dir) {
        const r = await must("rsync", ["-a", `${ctx.docSrc}/doc/`, join(dir, "doc/")], { timeoutMs: 300_000, fuse: ctx.fuse });
        const diff = await must("rsync", ["-a", "-c", "--dry-run", "--itemize-changes", `${ctx.docSrc}/doc/`, join(dir, "doc/")], { timeoutMs: 300_000 });
        if (diff.stdout.trim()) throw new WorkloadFail(`rsync -c sees differences: ${diff.stdout.trim().split("\n").slice(0, 3).join(" | ")}`);
        return timed(r);
      },
    },
    {
      id: "rm-rf",
      group: realGroup,
      real: true,
      metrics: one(`rm -rf of that tree`),
      async run(dir) {
        await must("rsync", ["-a", `${ctx.docSrc}/doc/`, join(dir, "doc/")], { timeoutMs: 300_000 });
        const r = await must("rm", ["-rf", join(dir, "doc")], { timeoutMs: 300_000, fuse: ctx.fuse });
        if (existsSync(join(dir, "doc"))) throw new WorkloadFail("tree still there");
        const left = (await must("ls", ["-A", dir])).stdout.trim();
        if (left) throw new WorkloadFail(`left behind: ${left}`);
        return timed(r);
      },
    },
  ];
}
