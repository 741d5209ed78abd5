/**
 * Counting the FUSE requests a command makes, from the kernel's side: the
 * tracepoint `fuse:fuse_request_send` (Linux 6.15 and later) recorded into a
 * private tracefs instance, so that fuse-overlayfs and agentfs are counted
 * the same way and the daemon under test does nothing extra. It fires for
 * every request with a reply; FORGET, BATCH_FORGET and INTERRUPT travel on
 * queues of their own and are not counted. Needs root and tracefs at
 * /sys/kernel/tracing; `FuseRequestCounter.open()` returns null where either
 * is missing, and the benchmark then reports no counts.
 */
import { existsSync, mkdirSync, readdirSync, readFileSync, rmdirSync, statSync, writeFileSync } from "node:fs";
import { join } from "node:path";

const TRACEFS = "/sys/kernel/tracing";

/** One tracefs instance with the FUSE request tracepoint; counts whatever is sent while started. */
export class FuseRequestCounter {
  private constructor(private readonly dir: string) {}

  /**
   * Makes the instance `name` (a directory under /sys/kernel/tracing/instances;
   * default `agentfs-bench-PID`) with a 16 MiB buffer per CPU, removed again
   * by `close` or at the latest when this process exits. Null when tracefs,
   * the instance directory or the fuse tracepoint is missing, or the caller
   * may not write there (EACCES).
   */
  static open(name = `agentfs-bench-${process.pid}`): FuseRequestCounter | null {
    const inst = join(TRACEFS, "instances", name);
    let made = false;
    try {
      if (!existsSync(join(TRACEFS, "events", "fuse", "fuse_request_send"))) return null;
      if (!existsSync(inst)) {
        mkdirSync(inst);
        made = true;
      }
      const c = new FuseRequestCounter(inst);
      writeFileSync(join(inst, "buffer_size_kb"), "16384");
      c.enable(false);
      process.once("exit", () => c.close());
      return c;
    } catch {
      if (made) {
        try {
          rmdirSync(inst);
        } catch {
          /* leave it */
        }
      }
      return null;
    }
  }

  /**
   * Empties the buffer and starts recording the requests of the FUSE mount
   * that holds `dir` only (its connection: the mount's anonymous device
   * number); ENOENT etc. from stat(2) when `dir` is missing.
   */
  start(dir: string): void {
    const dev = statSync(dir).dev;
    // The minor of st_dev (glibc's encoding, minors below 2^20): FUSE superblocks are anonymous devices
    // (major 0), whose kernel dev_t, the tracepoint's `connection`, is that minor.
    const minor = (dev & 0xff) | ((dev / 4096) & 0xfff00);
    writeFileSync(join(this.event(), "filter"), `connection == ${minor}`);
    writeFileSync(join(this.dir, "trace"), "");
    this.enable(true);
  }

  /** Stops recording; returns the requests sent since `start` (events kept plus events overwritten, summed over CPUs). */
  stop(): number {
    this.enable(false);
    let n = 0;
    const cpus = join(this.dir, "per_cpu");
    for (const cpu of readdirSync(cpus)) {
      const stats = readFileSync(join(cpus, cpu, "stats"), "utf8");
      for (const key of ["entries", "overrun"]) {
        const m = new RegExp(`^${key}: (\\d+)$`, "m").exec(stats);
        if (m) n += Number(m[1]);
      }
    }
    return n;
  }

  /** Stops recording and removes the instance (idempotent). */
  close(): void {
    try {
      this.enable(false);
      rmdirSync(this.dir);
    } catch {
      /* gone already */
    }
  }

  private event(): string {
    return join(this.dir, "events", "fuse", "fuse_request_send");
  }

  private enable(on: boolean): void {
    writeFileSync(join(this.event(), "enable"), on ? "1" : "0");
  }
}
