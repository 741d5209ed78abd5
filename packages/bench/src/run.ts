/**
 * Benchmark runner: runs every workload group for agentfs, node:fs on tmpfs
 * and Turso's agentfs-sdk side by side, checks the goals, prints a markdown
 * table to stdout and writes it to packages/bench/RESULTS.md (and JSON with
 * `--json FILE`, `-` for stdout).
 *
 * Usage: node --expose-gc packages/bench/dist/run.js [--quick] [--only small,large,import,dedup,snapshot]
 *        [--no-sdk] [--json FILE|-] [--out FILE.md] [--source DIR]
 */
import { execFileSync } from "node:child_process";
import { readFileSync, writeFileSync, existsSync } from "node:fs";
import { cpus, loadavg } from "node:os";
import { dirname, join, resolve } from "node:path";
import { createRequire } from "node:module";
import { fileURLToPath } from "node:url";
import { CONTENDERS, type ContenderId } from "./contenders.js";
import { benchDedup } from "./dedup.js";
import { benchImport } from "./importtree.js";
import { benchLargeFile } from "./largefile.js";
import { benchSmallFiles } from "./smallfiles.js";
import { benchSnapshots } from "./snapshots.js";
import { type Goal, type Report, type Row, ratio, renderJson, renderMarkdown } from "./report.js";
import { cleanupScratch, log, now, SCRATCH_ROOT } from "./util.js";

const PKG_DIR = resolve(dirname(fileURLToPath(import.meta.url)), "..");
const GROUPS = ["small", "large", "import", "dedup", "snapshot"] as const;
type Group = (typeof GROUPS)[number];

/** Parsed command line. */
export interface Args {
  quick: boolean;
  only: Group[];
  sdk: boolean;
  json?: string;
  out?: string;
  source: string;
}

/** Parses argv (without node and script). Errors: throws on an unknown flag or group. */
export function parseArgs(argv: string[]): Args {
  const a: Args = { quick: false, only: [...GROUPS], sdk: true, source: "/usr/share/doc" };
  for (let i = 0; i < argv.length; i++) {
    const f = argv[i];
    if (f === "--") continue;
    else if (f === "--quick") a.quick = true;
    else if (f === "--no-sdk") a.sdk = false;
    else if (f === "--only") {
      a.only = argv[++i].split(",").map((g) => g.trim()) as Group[];
      for (const g of a.only) if (!GROUPS.includes(g)) throw new Error(`unknown group ${g}; groups: ${GROUPS.join(", ")}`);
    } else if (f === "--json") a.json = argv[++i] ?? "-";
    else if (f === "--out") a.out = argv[++i];
    else if (f === "--source") a.source = argv[++i];
    else if (f === "-h" || f === "--help") {
      process.stdout.write("usage: run.js [--quick] [--only small,large,import,dedup,snapshot] [--no-sdk] [--json FILE|-] [--out FILE.md] [--source DIR]\n");
      process.exit(0);
    } else throw new Error(`unknown argument ${f}`);
  }
  return a;
}

function git(args: string[]): string {
  try {
    return execFileSync("git", args, { cwd: PKG_DIR, encoding: "utf8", stdio: ["ignore", "pipe", "ignore"] }).trim();
  } catch {
    return "";
  }
}

function sdkVersion(): string {
  try {
    const req = createRequire(import.meta.url);
    let d = dirname(req.resolve("agentfs-sdk"));
    while (!existsSync(join(d, "package.json"))) d = dirname(d);
    return JSON.parse(readFileSync(join(d, "package.json"), "utf8")).version;
  } catch {
    return "?";
  }
}

function meta(): Report["meta"] {
  const dirty = git(["status", "--porcelain", "--", "packages/core/src"]) !== "";
  return {
    date: new Date().toISOString().slice(0, 16).replace("T", " ") + " UTC",
    node: process.versions.node,
    cpu: cpus()[0]?.model ?? "?",
    cores: cpus().length,
    commit: (git(["rev-parse", "--short", "HEAD"]) || "?") + (dirty ? " (+ uncommitted core changes)" : ""),
    sdkVersion: sdkVersion(),
    scratch: SCRATCH_ROOT,
    gcExposed: typeof (globalThis as { gc?: unknown }).gc === "function",
    loadAtStart: loadavg()[0].toFixed(2),
  };
}

/** Evaluates the goals against the rows; a goal whose rows are missing is N/A. */
export function goals(rows: Row[]): Goal[] {
  const by = new Map(rows.map((r) => [r.id, r]));
  const out: Goal[] = [];
  const small = ["small.write", "small.read", "small.stat"].map((id) => by.get(id)).filter((r): r is Row => !!r);
  const smallR = small.map((r) => ({ r, x: ratio(r, "sdk", "agentfs") }));
  out.push({
    name: "small-file ops at least 3× agentfs-sdk (each phase)",
    pass: smallR.length && smallR.every((s) => s.x !== undefined) ? smallR.every((s) => s.x! >= 3) : null,
    detail: smallR.length ? smallR.map((s) => `${s.r.name.split(" (")[0]} ${s.x === undefined ? "n/a" : s.x.toFixed(2) + "×"}`).join(", ") : "not run",
  });
  const snaps = rows.filter((r) => /^snap\.\d+$/.test(r.id));
  const maxSnap = Math.max(...snaps.map((r) => r.values.agentfs ?? Infinity));
  out.push({
    name: "snapshot after 100 changes under 50 ms at any tree size",
    pass: snaps.length ? maxSnap < 50 : null,
    detail: snaps.length ? snaps.map((r) => `${r.id.split(".")[1]} files ${r.values.agentfs!.toFixed(2)} ms`).join(", ") : "not run",
  });
  const branches = rows.filter((r) => /^branch\.(snap|live)\.\d+$/.test(r.id));
  const maxBranch = Math.max(...branches.map((r) => r.values.agentfs ?? Infinity));
  out.push({
    name: "branch creation under 10 ms (from a snapshot and from the live branch, any tree size)",
    pass: branches.length ? maxBranch < 10 : null,
    detail: branches.length ? `max ${maxBranch.toFixed(2)} ms; ` + branches.map((r) => `${r.id.replace("branch.", "")} ${r.values.agentfs!.toFixed(2)} ms`).join(", ") : "not run",
  });
  const dd = by.get("dedup.extra.stored");
  const ddv = dd?.values.agentfs;
  out.push({
    name: "second version with 1% of files changed stores under 5% extra bytes",
    pass: ddv == null ? null : ddv < 5,
    detail: ddv == null ? "not run" : `${ddv.toFixed(2)} % extra stored content bytes (host bytes: ${by.get("dedup.extra.host")?.values.agentfs?.toFixed(2) ?? "?"} %)`,
  });
  return out;
}

async function main(): Promise<void> {
  const args = parseArgs(process.argv.slice(2));
  const contenders: ContenderId[] = CONTENDERS.filter((c) => c !== "sdk" || args.sdk);
  const q = args.quick;
  const rows: Row[] = [];
  const notes: string[] = [];
  const t0 = now();
  const m = meta();
  log(`agentfs bench${q ? " (quick)" : ""}: ${args.only.join(", ")}; contenders ${contenders.join(", ")}; gc exposed: ${m.gcExposed}`);

  const run = async (g: Group, f: (c: ContenderId[]) => Promise<Row[]>) => {
    if (!args.only.includes(g)) return;
    const tg = now();
    try {
      rows.push(...(await f(contenders)));
    } catch (e) {
      const msg = e instanceof Error ? e.message : String(e);
      log(`${g} failed: ${msg}`);
      if (!contenders.includes("sdk")) throw e;
      // Retry without agentfs-sdk, which then shows as n/a.
      notes.push(`${g}: agentfs-sdk run failed (${msg}); shown as n/a.`);
      const rs = await f(contenders.filter((c) => c !== "sdk"));
      for (const r of rs) r.values.sdk = null;
      rows.push(...rs);
    }
    log(`${g} done in ${((now() - tg) / 1000).toFixed(1)} s`);
  };

  try {
    await run("small", (c) => benchSmallFiles({ files: q ? 1000 : 10_000, fileBytes: 4096, dirs: 10, runs: q ? 1 : 5, contenders: c }));
    await run("large", (c) => benchLargeFile({ fileBytes: (q ? 16 : 256) * 2 ** 20, ioBytes: 2 ** 20, runs: q ? 1 : 3, sdkRuns: 1, contenders: c }));
    await run("import", (c) => benchImport({ source: args.source, runs: q ? 1 : 3, sdkRuns: 1, contenders: c }));
    await run("dedup", (c) => benchDedup({ files: 1000, changed: 10, contenders: c }));
    await run("snapshot", (c) =>
      benchSnapshots({ sizes: q ? [1000, 10_000] : [1000, 10_000, 100_000], changes: 100, runs: 3, tmpfsMaxFiles: 100_000, contenders: c }),
    );
  } finally {
    cleanupScratch();
  }

  notes.unshift(
    `Whole run took ${((now() - t0) / 1000).toFixed(0)} s.`,
    "Small-file and import timings include one async call per operation for every contender (agentfs's SDK is synchronous underneath; agentfs-sdk awaits its database).",
    "Large-file and import runs of agentfs-sdk are single runs (it is slow there); tmpfs and agentfs are medians.",
  );
  m.loadAtEnd = loadavg()[0].toFixed(2);
  notes.push(
    `1-minute load average ${m.loadAtStart} at start and ${m.loadAtEnd} at end on ${m.cores} cores: anything above about 1 means other work shared the machine and absolute times (and, less so, ratios) are noisier.`,
  );
  const rep: Report = { meta: m, rows, goals: goals(rows), notes };
  const md = renderMarkdown(rep);
  const json = renderJson(rep);
  if (args.json === "-") {
    process.stderr.write(md + "\n");
    process.stdout.write(json);
  } else {
    process.stdout.write(md + "\n");
    if (args.json) writeFileSync(args.json, json);
  }
  const out = args.out ?? (q || args.only.length < GROUPS.length ? undefined : join(PKG_DIR, "RESULTS.md"));
  if (out) {
    writeFileSync(out, md);
    log(`wrote ${out}`);
  }
}

main().catch((e) => {
  process.stderr.write(`bench failed: ${e instanceof Error ? (e.stack ?? e.message) : String(e)}\n`);
  cleanupScratch();
  process.exit(1);
});
