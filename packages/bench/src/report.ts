/**
 * Result rows, goals and their rendering: a markdown table (stdout and
 * RESULTS.md) and a JSON document (`--json`).
 */
import { CONTENDERS, CONTENDER_NAMES, type ContenderId } from "./contenders.js";
import { fmtBytes, fmtMs, fmtRate } from "./util.js";

/** What a row's values measure. */
export type RowKind =
  /** wall time in milliseconds (lower is better) */
  | "ms"
  /** a percentage (lower is better) */
  | "percent"
  /** a size in bytes (lower is better) */
  | "bytes";

/** One measured line of the results table. */
export interface Row {
  /** Stable key, used by goals and in JSON ("small.write", "snap.100000"). */
  id: string;
  /** Section heading the row belongs to. */
  group: string;
  /** What was measured. */
  name: string;
  kind: RowKind;
  /** One value per contender in the unit of `kind`; null = the contender cannot do it ("n/a"); absent = not run. */
  values: Partial<Record<ContenderId, number | null>>;
  /** Work done by one run, for throughput: operations and/or bytes. */
  work?: { ops?: number; bytes?: number };
  /** Runs each value is the median of, per contender. */
  runs?: Partial<Record<ContenderId, number>>;
  /** Extra remark shown under the table. */
  note?: string;
}

/** A goal checked against the rows. `pass` null means it could not be evaluated. */
export interface Goal {
  name: string;
  pass: boolean | null;
  detail: string;
}

/** Everything one benchmark run produced. */
export interface Report {
  meta: Record<string, string | number | boolean>;
  rows: Row[];
  goals: Goal[];
  notes: string[];
}

/** value(a) / value(b), or undefined when either is missing, n/a or zero. */
export function ratio(row: Row, a: ContenderId, b: ContenderId): number | undefined {
  const x = row.values[a];
  const y = row.values[b];
  if (x == null || y == null || y === 0 || x === 0) return undefined;
  return x / y;
}

function cell(row: Row, id: ContenderId): string {
  if (!(id in row.values)) return "–";
  const v = row.values[id];
  if (v === null || v === undefined) return "n/a";
  if (row.kind === "percent") return `${v.toFixed(v < 10 ? 2 : 1)} %`;
  if (row.kind === "bytes") return fmtBytes(v);
  let s = fmtMs(v);
  const rates: string[] = [];
  if (row.work?.bytes && v > 0) rates.push(fmtRate(row.work.bytes / 1e6 / (v / 1000), "MB/s"));
  else if (row.work?.ops && v > 0) rates.push(fmtRate(row.work.ops / (v / 1000), "ops/s"));
  if (rates.length) s += ` (${rates.join(", ")})`;
  return s;
}

function fmtRatio(r: number | undefined): string {
  if (r === undefined) return "–";
  if (r < 0.001) return "<1/1000×";
  if (r < 0.01) return `1/${(1 / r).toFixed(0)}×`;
  if (r >= 100) return `${r.toFixed(0)}×`;
  if (r >= 10) return `${r.toFixed(1)}×`;
  return `${r.toFixed(2)}×`;
}

/**
 * Renders the report as markdown: a header with the machine, one table
 * (rows grouped by section), the goals as PASS/FAIL lines and the notes.
 */
export function renderMarkdown(rep: Report): string {
  const out: string[] = [];
  out.push("# agentfs benchmark results", "");
  const m = rep.meta;
  out.push(
    `Run ${m.date} on ${m.cpu} (${m.cores} cores), Node ${m.node}, agentfs commit ${m.commit}, agentfs-sdk ${m.sdkVersion}. ` +
      `All data lives on tmpfs (${m.scratch}). Times are medians of the runs shown; ratios compare contenders within the same run, ` +
      `so they drift less than absolute times on shared machines.`,
    "",
  );
  out.push(
    `| workload | ${CONTENDERS.map((c) => CONTENDER_NAMES[c]).join(" | ")} | agentfs ÷ tmpfs | agentfs-sdk ÷ agentfs | runs |`,
    `| --- | ${CONTENDERS.map(() => "---:").join(" | ")} | ---: | ---: | :---: |`,
  );
  let group = "";
  for (const r of rep.rows) {
    if (r.group !== group) {
      group = r.group;
      out.push(`| **${group}** | ${CONTENDERS.map(() => "").join(" | ")} | | | |`);
    }
    // Runs per contender that has a value, "3" when all agree, else "tmpfs/agentfs/sdk" order ("3/3/1").
    const runs = r.runs ? CONTENDERS.filter((c) => r.runs![c] !== undefined && r.values[c] != null).map((c) => r.runs![c]!) : [];
    const runStr = runs.length ? (new Set(runs).size === 1 ? String(runs[0]) : runs.join("/")) : "1";
    out.push(
      `| ${r.name} | ${CONTENDERS.map((c) => cell(r, c)).join(" | ")} | ${fmtRatio(ratio(r, "agentfs", "tmpfs"))} | ${fmtRatio(ratio(r, "sdk", "agentfs"))} | ${runStr} |`,
    );
  }
  out.push("");
  out.push("agentfs ÷ tmpfs: how many times longer (or larger) agentfs is than plain node:fs on tmpfs (lower is better). ");
  out.push("agentfs-sdk ÷ agentfs: how many times longer (or larger) Turso's agentfs-sdk is than agentfs (above 1 means agentfs wins).");
  out.push("");
  out.push("## Goals", "");
  for (const g of rep.goals) out.push(`- ${g.pass === null ? "N/A " : g.pass ? "PASS" : "FAIL"} ${g.name}: ${g.detail}`);
  out.push("");
  const notes = [...rep.notes, ...rep.rows.filter((r) => r.note).map((r) => `${r.group} — ${r.name}: ${r.note}`)];
  if (notes.length) {
    out.push("## Notes", "");
    for (const n of notes) out.push(`- ${n}`);
    out.push("");
  }
  return out.join("\n");
}

/** The report as pretty-printed JSON. */
export function renderJson(rep: Report): string {
  return JSON.stringify(rep, null, 2) + "\n";
}
