/**
 * `pnpm bench:mount`: the same jobs, side by side in one run, on tmpfs, on
 * fuse-overlayfs (FUSE passthrough over tmpfs) and on an agentfs mount
 * (daemon started by the built CLI), reported as ratios to both.
 * Writes packages/bench/MOUNT-RESULTS.md (not with --quick) and prints it.
 *
 *   node packages/bench/dist/mount.js [--quick] [--only fio,smallfiles,git-clone,...] [--out FILE] [--json FILE]
 */
import { mkdirSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { cpus, release } from "node:os";
import { dirname, join, resolve } from "node:path";
import { fileURLToPath } from "node:url";
import { parseArgs } from "node:util";
import { FuseRequestCounter } from "./mount/fusetrace.js";
import { FULL, jobs as allJobs, prepare, QUICK, ROUNDTRIP_CALLS, type Job, type Unit } from "./mount/jobs.js";
import { run, runSync, WorkloadFail } from "./mount/proc.js";
import { agentfsTarget, overlayTarget, parseDaemonStats, TARGET_IDS, TARGET_LABEL, tmpfsTarget, type AgentfsTarget, type OpStat, type Target, type TargetId } from "./mount/targets.js";

const here = dirname(fileURLToPath(import.meta.url));
const repo = resolve(here, "../../..");
const cli = join(repo, "packages/cli/dist/main.js");

type Cell = { values: Record<string, number> } | { fail: string };

const USAGE = `usage: node packages/bench/dist/mount.js [--quick] [--only JOB,...] [--out FILE] [--json FILE]

Runs the mount benchmark on tmpfs, fuse-overlayfs and an agentfs mount, side by side.
  --quick        small sizes; writes no MOUNT-RESULTS.md unless --out says so
  --only JOB,... run only these jobs (a prefix matches: fio = all four fio jobs):
                 fio-seqwrite fio-seqread fio-randread fio-randwrite roundtrip
                 smallfiles git-clone tar-x make compileall sqlite rsync rm-rf
  --out FILE     markdown report (default packages/bench/MOUNT-RESULTS.md without --quick)
  --json FILE    also write the raw results as JSON
  -h, --help     this text

As root on Linux 6.15 or later, each timed command's FUSE requests are also
counted (tracepoint fuse:fuse_request_send in a tracefs instance of its own).
`;

/** Parses argv strictly (node:util parseArgs): an unknown flag prints the usage and exits 2; --help prints it and exits 0. */
function parseCli(): { quick: boolean; only?: string[]; out?: string; json?: string } {
  let v;
  try {
    ({ values: v } = parseArgs({
      args: process.argv.slice(2).filter((a) => a !== "--"),
      options: { quick: { type: "boolean" }, only: { type: "string" }, out: { type: "string" }, json: { type: "string" }, help: { type: "boolean", short: "h" } },
      strict: true,
    }));
  } catch (e) {
    process.stderr.write(`${(e as Error).message}\n${USAGE}`);
    process.exit(2);
  }
  if (v.help) {
    process.stdout.write(USAGE);
    process.exit(0);
  }
  return { quick: !!v.quick, only: v.only?.split(","), out: v.out, json: v.json };
}

const log = (s: string) => process.stderr.write(s + "\n");

function fmt(v: number, unit: Unit): string {
  if (unit === "ms") return v >= 1000 ? `${(v / 1000).toFixed(2)} s` : v >= 100 ? `${v.toFixed(0)} ms` : `${v.toFixed(1)} ms`;
  if (unit === "MB/s") return `${v >= 100 ? v.toFixed(0) : v.toFixed(1)} MB/s`;
  return v >= 10000 ? `${(v / 1000).toFixed(1)}k IOPS` : `${v.toFixed(0)} IOPS`;
}

/** How many times slower agentfs is than `base` (time ratio; rates inverted). */
function slowdown(a: number, base: number, unit: Unit): number {
  return unit === "ms" ? a / base : base / a;
}

function fmtRatio(r: number): string {
  if (!Number.isFinite(r)) return "–";
  return r >= 10 ? `${r.toFixed(1)}×` : `${r.toFixed(2)}×`;
}

async function main(): Promise<void> {
  const args = parseCli();
  const quick = args.quick;
  const sizes = quick ? QUICK : FULL;
  const only = args.only;
  const outFile = args.out ?? (quick ? undefined : join(repo, "packages/bench/MOUNT-RESULTS.md"));
  const jsonFile = args.json;
  const root = join(process.env.AGENTFS_BENCH_DIR ?? "/dev/shm/agentfs-bench", `mount-${process.pid}`);
  const t0 = performance.now();
  const targets: Target[] = [];
  let agentfs: AgentfsTarget | undefined;
  let tornDown = false;
  const counter = FuseRequestCounter.open();
  const teardown = () => {
    if (tornDown) return;
    tornDown = true;
    counter?.close();
    for (const t of [...targets].reverse()) {
      try {
        t.teardown();
      } catch (e) {
        log(`teardown ${t.id}: ${(e as Error).message}`);
      }
    }
    rmSync(root, { recursive: true, force: true });
  };
  for (const sig of ["SIGINT", "SIGTERM", "SIGHUP"] as const)
    process.once(sig, () => {
      log(`\n${sig}: unmounting and cleaning up`);
      teardown();
      process.exit(130);
    });

  const results: Record<string, Partial<Record<TargetId, Cell>>> = {};
  let jobList: Job[] = [];
  let ctxDesc = "";
  try {
    mkdirSync(root, { recursive: true });
    log(`preparing inputs in ${root} ...`);
    const ctx = await prepare(root, sizes, repo);
    ctxDesc = `${ctx.docDesc}; ${ctx.pyLibDesc}`;
    targets.push(tmpfsTarget(root));
    targets.push(await overlayTarget(root));
    agentfs = await agentfsTarget(root, cli);
    targets.push(agentfs);
    log(`mounted: ${targets.map((t) => `${t.id}=${t.dir}`).join(" ")}`);
    jobList = allJobs(ctx).filter((j) => !only || only.some((o) => j.id === o || j.id.startsWith(o)));
    for (let i = 0; i < jobList.length; i++) {
      const job = jobList[i];
      const dirName = job.dirName ?? job.id;
      const lastUse = jobList[i + 1]?.dirName !== dirName || jobList[i + 1] === undefined;
      results[job.id] = {};
      if (job.real) {
        // Untimed warm-up on tmpfs: the first target measured would otherwise pay for cold tool binaries and caches.
        const warm = join(root, "warmup", job.id);
        mkdirSync(warm, { recursive: true });
        try {
          ctx.fuse = null;
          await job.run(warm, ctx);
        } catch (e) {
          log(`warm-up of ${job.id}: ${(e as Error).message}`);
        }
        await run("rm", ["-rf", warm], { timeoutMs: 300_000 });
      }
      for (const t of targets) {
        const dir = join(t.dir, dirName);
        mkdirSync(dir, { recursive: true });
        let cell: Cell;
        try {
          ctx.fuse = counter && t.id !== "tmpfs" ? { counter, dir } : null;
          cell = { values: await job.run(dir, ctx) };
        } catch (e) {
          cell = { fail: e instanceof WorkloadFail ? e.message : `error: ${(e as Error).message}` };
        }
        results[job.id][t.id] = cell;
        const shown = "fail" in cell ? `FAIL ${cell.fail}` : job.metrics.map((m) => `${m.key}=${fmt(cell.values[m.key], m.unit)}`).join(" ");
        log(`[${((performance.now() - t0) / 1000).toFixed(0)}s] ${job.id} on ${t.id}: ${shown}`);
        if (lastUse) {
          const rm = await run("rm", ["-rf", dir], { timeoutMs: 300_000 });
          if (rm.code !== 0) log(`cleanup of ${dir}: ${rm.stderr.trim()}`);
        }
      }
    }
  } finally {
    log("unmounting ...");
    teardown();
  }
  const fuseLeft = runSync("sh", ["-c", "mount | grep -F " + JSON.stringify(root) + " || true"]).out.trim();
  if (fuseLeft) log(`WARNING: mounts left behind: ${fuseLeft}`);
  const stats = agentfs ? parseDaemonStats(agentfs.daemonLog()) : undefined;
  const md = render(jobList, results, stats, { sizesNote: sizes.quick ? "--quick sizes" : "", ctxDesc, seconds: (performance.now() - t0) / 1000 });
  process.stdout.write(md);
  if (outFile) {
    writeFileSync(outFile, md);
    log(`wrote ${outFile}`);
  }
  if (jsonFile) writeFileSync(jsonFile, JSON.stringify({ results, daemonStats: stats }, null, 2) + "\n");
}

function render(
  jobList: Job[],
  results: Record<string, Partial<Record<TargetId, Cell>>>,
  stats: ReturnType<typeof parseDaemonStats>,
  info: { sizesNote: string; ctxDesc: string; seconds: number },
): string {
  const commit = runSync("git", ["-C", repo, "rev-parse", "--short", "HEAD"]).out.trim();
  const L: string[] = [];
  L.push("# agentfs mount benchmark results", "");
  L.push(
    `Run ${new Date().toISOString().slice(0, 16).replace("T", " ")} UTC on ${cpus()[0]?.model.trim()} (${cpus().length} cores), kernel ${release()}, Node ${process.version}, agentfs commit ${commit}; whole run ${info.seconds.toFixed(0)} s${info.sizesNote ? ` (${info.sizesNote})` : ""}.`,
    "Every job runs as separate processes, one target after the other, in one run: tmpfs (/dev/shm), fuse-overlayfs (empty lowerdir, upper/work on tmpfs: a FUSE passthrough baseline) and an agentfs mount (`agentfs init` + `agentfs mount`, store on /dev/shm, daemon from the built CLI).",
    `Inputs: ${info.ctxDesc}. Sizes are the brief's except the random fio jobs, which run 5 s each instead of 10 s to keep the whole run near 10 minutes. Each real workload runs once untimed on tmpfs first (warm tool caches); then one measured run per target.`,
    "",
  );
  L.push(`| workload | ${TARGET_IDS.map((t) => TARGET_LABEL[t]).join(" | ")} | agentfs ÷ tmpfs | agentfs ÷ fuse-overlayfs |`);
  L.push(`| --- | ${TARGET_IDS.map(() => "---:").join(" | ")} | ---: | ---: |`);
  const notes: string[] = [];
  let group = "";
  const value = (jobId: string, t: TargetId, key: string): number | undefined => {
    const c = results[jobId]?.[t];
    return c && "values" in c ? c.values[key] : undefined;
  };
  for (const job of jobList) {
    if (job.group !== group) {
      group = job.group;
      L.push(`| **${group}** | | | | | |`);
    }
    for (const m of job.metrics) {
      const cells = TARGET_IDS.map((t) => {
        const c = results[job.id]?.[t];
        if (!c) return "–";
        if ("fail" in c) {
          // One note per failed job, on its first metric's row.
          if (m !== job.metrics[0]) return "**FAIL**";
          notes.push(`${job.id} on ${TARGET_LABEL[t]}: ${c.fail}`);
          return `**FAIL** [${notes.length}]`;
        }
        return fmt(c.values[m.key], m.unit);
      });
      const a = value(job.id, "agentfs", m.key);
      const tm = value(job.id, "tmpfs", m.key);
      const ov = value(job.id, "overlay", m.key);
      const r1 = a !== undefined && tm !== undefined ? fmtRatio(slowdown(a, tm, m.unit)) : "–";
      const r2 = a !== undefined && ov !== undefined ? fmtRatio(slowdown(a, ov, m.unit)) : "–";
      L.push(`| ${m.label} | ${cells.join(" | ")} | ${r1} | ${r2} |`);
    }
  }
  L.push("");
  L.push("Ratios are slowdowns: how many times longer agentfs takes than the other target (for MB/s and IOPS, the other's rate ÷ agentfs's); above 1 means agentfs is slower.");
  if (notes.length) {
    L.push("", "Failures (the output was wrong or the command failed, so no time is reported):", "");
    notes.forEach((n, i) => L.push(`${i + 1}. ${n}`));
  }

  // Goals.
  L.push("", "## Goals", "");
  const goal = (ok: boolean | undefined, text: string) => L.push(`- ${ok === undefined ? "N/A " : ok ? "PASS" : "FAIL"} ${text}`);
  for (const job of jobList.filter((j) => j.real)) {
    const a = value(job.id, "agentfs", "ms");
    const tm = value(job.id, "tmpfs", "ms");
    const c = results[job.id]?.agentfs;
    if (c && "fail" in c) goal(false, `${job.id} within 2× of tmpfs: agentfs output wrong or command failed`);
    else if (a === undefined || tm === undefined) goal(undefined, `${job.id} within 2× of tmpfs: not measured`);
    else goal(a <= 2 * tm, `${job.id} within 2× of tmpfs: ${fmtRatio(a / tm)} (${fmt(a, "ms")} vs ${fmt(tm, "ms")})`);
  }
  const sw = value("fio-seqwrite", "agentfs", "v");
  const sr = value("fio-seqread", "agentfs", "v");
  if (jobList.some((j) => j.id === "fio-seqwrite")) goal(sw === undefined ? false : sw >= 300, `sequential write ≥ 300 MB/s on agentfs: ${sw === undefined ? "FAIL/not measured" : fmt(sw, "MB/s")}`);
  if (jobList.some((j) => j.id === "fio-seqread")) goal(sr === undefined ? false : sr >= 800, `sequential read ≥ 800 MB/s on agentfs: ${sr === undefined ? "FAIL/not measured" : fmt(sr, "MB/s")}`);
  if (jobList.some((j) => j.id === "smallfiles")) {
    const a = value("smallfiles", "agentfs", "total");
    const ov = value("smallfiles", "overlay", "total");
    const phases = ["create", "stat", "readdir", "read", "rename", "unlink"]
      .map((p) => {
        const x = value("smallfiles", "agentfs", p);
        const y = value("smallfiles", "overlay", p);
        return x !== undefined && y !== undefined ? `${p} ${fmtRatio(x / y)}` : `${p} –`;
      })
      .join(", ");
    goal(a === undefined || ov === undefined ? false : a <= ov, `small-file metadata at least as fast as fuse-overlayfs: all six phases ${a !== undefined && ov !== undefined ? fmtRatio(a / ov) : "not measured"} (per phase: ${phases})`);
  }

  requestsSection(L, jobList, value);

  // Daemon stats.
  L.push("", "## agentfs daemon: per-operation stats (whole run, from the daemon's log at unmount)", "");
  if (!stats) L.push("No stats line found in the daemon's log.");
  else {
    L.push(
      `FUSE writes served: ${stats.writes}, largest write request: ${stats.maxWrite} bytes, internal errors (EIO): ${stats.internalErrors}, ` +
        `kernel caches dropped for commits by other processes: ${stats.outsideInvalidations ?? "n/a"}.`,
      "",
    );
    L.push("Sorted by total time the handler held the daemon's event loop (every other request waits meanwhile):", "");
    L.push("| op | requests | total | mean | max |", "| --- | ---: | ---: | ---: | ---: |");
    for (const o of stats.ops.slice(0, 15) as OpStat[])
      L.push(`| ${o.op} | ${o.count.toLocaleString("en-US")} | ${fmt(o.totalMs, "ms")} | ${(o.totalMs / o.count).toFixed(3)} ms | ${o.maxMs.toFixed(1)} ms |`);
    const byMax = [...stats.ops].sort((a, b) => b.maxMs - a.maxMs).slice(0, 5);
    L.push("", `Longest single requests: ${byMax.map((o) => `${o.op} ${o.maxMs.toFixed(1)} ms`).join(", ")} (the 10 ms law of DESIGN.md).`);
  }
  L.push("");
  return L.join("\n");
}

/**
 * The FUSE requests of each real workload's timed command (when counted)
 * against what finishing within 2x of tmpfs would leave for each, and the
 * measured time of one request (the round-trip job).
 */
function requestsSection(L: string[], jobList: Job[], value: (jobId: string, t: TargetId, key: string) => number | undefined): void {
  const real = jobList.filter((j) => j.real && value(j.id, "agentfs", "requests") !== undefined);
  const perCall = (t: TargetId) => {
    const ms = value("roundtrip", t, "ms");
    return ms === undefined ? undefined : (ms * 1000) / ROUNDTRIP_CALLS;
  };
  if (!real.length && perCall("agentfs") === undefined) return;
  const us = (v: number | undefined) => (v === undefined ? "–" : `${v >= 100 ? v.toFixed(0) : v.toFixed(1)} µs`);
  const n = (v: number | undefined) => (v === undefined ? "–" : v.toLocaleString("en-US"));
  L.push("", "## FUSE requests", "");
  L.push(
    "Requests the kernel sent to each mount during the timed command (tracepoint fuse:fuse_request_send, counted per connection; FORGET and INTERRUPT, which travel on queues of their own, are not counted). " +
      "A request costs a round trip between the calling process and the daemon however little the daemon does; " +
      "the budget column is what each request may cost, round trip included, for the workload to finish within 2× of tmpfs.",
    "",
  );
  if (perCall("agentfs") !== undefined)
    L.push(`One request (roundtrip job, per call): tmpfs ${us(perCall("tmpfs"))} (the system call alone), fuse-overlayfs ${us(perCall("overlay"))}, agentfs ${us(perCall("agentfs"))}.`, "");
  if (!real.length) return;
  L.push("| workload | tmpfs | fuse-overlayfs requests | agentfs requests | budget per request for 2× tmpfs | fuse-overlayfs time per request | agentfs time per request |");
  L.push("| --- | ---: | ---: | ---: | ---: | ---: | ---: |");
  for (const j of real) {
    const tm = value(j.id, "tmpfs", "ms");
    const ra = value(j.id, "agentfs", "requests");
    const ro = value(j.id, "overlay", "requests");
    const per = (t: TargetId, r: number | undefined) => {
      const ms = value(j.id, t, "ms");
      return ms === undefined || !r ? undefined : (ms * 1000) / r;
    };
    const budget = tm === undefined || !ra ? undefined : (2 * tm * 1000) / ra;
    L.push(`| ${j.id} | ${tm === undefined ? "–" : fmt(tm, "ms")} | ${n(ro)} | ${n(ra)} | ${us(budget)} | ${us(per("overlay", ro))} | ${us(per("agentfs", ra))} |`);
  }
}

main().catch((e) => {
  log(`bench:mount failed: ${(e as Error).stack ?? e}`);
  process.exitCode = 1;
});
