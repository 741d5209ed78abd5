/**
 * A progress bar for import and export, drawn with `cli-progress` on
 * stderr only when stderr is a terminal (never in pipes, logs or --json runs).
 */
import cliProgress from "cli-progress";
import type { TreeProgress } from "@agentfs/core";
import { humanBytes } from "./format.js";

/** A progress sink: `update` per progress report, `stop` once at the end (idempotent). */
export interface ProgressSink {
  update(p: TreeProgress): void;
  stop(): void;
}

const NOOP: ProgressSink = { update() {}, stop() {} };

/**
 * Returns a bar labelled `label` that tracks bytes copied (entries shown
 * alongside), or a no-op sink when `enabled` is false or stderr is not a
 * TTY. The bar is synchronous-safe: importTree/exportTree report from
 * synchronous loops and cli-progress redraws on `update`.
 */
export function progressBar(label: string, enabled: boolean): ProgressSink {
  if (!enabled || !process.stderr.isTTY) return NOOP;
  const bar = new cliProgress.SingleBar(
    {
      stream: process.stderr,
      format: `${label} |{bar}| {percentage}% | {entries}/{totalEntries} entries | {done}/{all} | ETA {eta_formatted}`,
      hideCursor: true,
      clearOnComplete: true,
      fps: 10,
    },
    cliProgress.Presets.shades_classic,
  );
  let started = false;
  let stopped = false;
  return {
    update(p) {
      if (stopped) return;
      const payload = { entries: p.entries, totalEntries: p.totalEntries, done: humanBytes(p.bytes), all: humanBytes(p.totalBytes) };
      const total = Math.max(p.totalBytes, 1);
      if (!started) {
        bar.start(total, p.bytes, payload);
        started = true;
      } else {
        bar.setTotal(total);
        bar.update(p.bytes, payload);
      }
    },
    stop() {
      if (stopped) return;
      stopped = true;
      if (started) bar.stop();
    },
  };
}
