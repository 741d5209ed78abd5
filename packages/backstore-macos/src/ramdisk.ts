/**
 * An ephemeral APFS RAM disk (macOS): `hdiutil attach -nomount ram://N`
 * makes a RAM-backed block device, `diskutil erasevolume APFS NAME DEV`
 * formats and mounts it at /Volumes/NAME; `hdiutil detach -force DEV`
 * destroys it (and frees the RAM). Detach is guaranteed by `close()`, at
 * process exit and on SIGINT/SIGTERM/SIGHUP.
 */
import { spawnSync } from "node:child_process";
import { ApfsCloneBackstore } from "./apfs.js";

/** Result of running one command. */
export interface CommandResult {
  status: number;
  stdout: string;
  stderr: string;
}

/**
 * Runs `cmd` with `args` synchronously. The default runs the real program;
 * tests may pass a **mock** runner to check the command sequence without
 * macOS (such a test never tests APFS).
 */
export type CommandRunner = (cmd: string, args: string[]) => CommandResult;

/** Runs the real command with child_process.spawnSync. */
export const systemRunner: CommandRunner = (cmd, args) => {
  const r = spawnSync(cmd, args, { encoding: "utf8" });
  return { status: r.status ?? (r.error ? 127 : 1), stdout: r.stdout ?? "", stderr: r.stderr || (r.error?.message ?? "") };
};

/** 512-byte sectors for a RAM disk of `bytes` bytes (rounded up), as `ram://` wants. Throws RangeError for a size ≤ 0. */
export function ramSectors(bytes: number): number {
  if (!Number.isSafeInteger(bytes) || bytes <= 0) throw new RangeError(`bad RAM disk size ${bytes}`);
  return Math.ceil(bytes / 512);
}

/** The device (e.g. "/dev/disk4") from `hdiutil attach -nomount ram://…` output. Throws Error EIO when absent. */
export function parseAttachOutput(stdout: string): string {
  const m = /(\/dev\/disk\d+)\b/.exec(stdout);
  if (!m) {
    const e = new Error(`EIO: hdiutil attach printed no device: ${JSON.stringify(stdout.trim())}`) as NodeJS.ErrnoException;
    e.code = "EIO";
    throw e;
  }
  return m[1]!;
}

/** Options of {@link ApfsRamDisk.create}. */
export interface RamDiskOptions {
  /** Size in bytes (default 512 MiB). */
  size?: number;
  /** Volume name; mounted at /Volumes/<name> (default `agentfs-ram-<pid>-<n>`). */
  name?: string;
  /** Command runner (default: the real commands). */
  runner?: CommandRunner;
}

const live = new Map<string, CommandRunner>();
let hooked = false;
let serial = 0;

function detach(device: string, runner: CommandRunner): boolean {
  return runner("hdiutil", ["detach", device, "-force"]).status === 0;
}

function hookExit(): void {
  if (hooked) return;
  hooked = true;
  const all = () => {
    for (const [dev, run] of live) detach(dev, run);
    live.clear();
  };
  process.on("exit", all);
  for (const sig of ["SIGINT", "SIGTERM", "SIGHUP"] as const) {
    process.once(sig, () => {
      all();
      if (process.listenerCount(sig) === 0) process.kill(process.pid, sig);
    });
  }
}

/** An attached, APFS-formatted, mounted RAM disk. */
export class ApfsRamDisk {
  private closed = false;

  private constructor(
    /** The RAM device, e.g. "/dev/disk4". */
    readonly device: string,
    /** Where the volume is mounted, e.g. "/Volumes/agentfs-ram-123-1". */
    readonly mountPoint: string,
    /** Size in bytes requested. */
    readonly size: number,
    private readonly runner: CommandRunner,
  ) {}

  /**
   * Attaches and formats a RAM disk. Errors (Error with `code`): EIO when
   * hdiutil or diskutil fail (the message has their output; a half-made
   * device is detached first), RangeError for a bad size.
   */
  static create(opts: RamDiskOptions = {}): ApfsRamDisk {
    const runner = opts.runner ?? systemRunner;
    const size = opts.size ?? 512 * 1024 * 1024;
    const name = opts.name ?? `agentfs-ram-${process.pid}-${++serial}`;
    const sectors = ramSectors(size);
    const att = runner("hdiutil", ["attach", "-nomount", `ram://${sectors}`]);
    if (att.status !== 0) {
      const e = new Error(`EIO: hdiutil attach failed: ${att.stderr.trim()}`) as NodeJS.ErrnoException;
      e.code = "EIO";
      throw e;
    }
    const device = parseAttachOutput(att.stdout);
    live.set(device, runner);
    hookExit();
    const er = runner("diskutil", ["erasevolume", "APFS", name, device]);
    if (er.status !== 0) {
      detach(device, runner);
      live.delete(device);
      const e = new Error(`EIO: diskutil erasevolume APFS failed: ${(er.stderr || er.stdout).trim()}`) as NodeJS.ErrnoException;
      e.code = "EIO";
      throw e;
    }
    return new ApfsRamDisk(device, `/Volumes/${name}`, size, runner);
  }

  /** A clonefile backstore whose buffers live on this RAM disk. */
  backstore(): ApfsCloneBackstore {
    return new ApfsCloneBackstore(this.mountPoint);
  }

  /** Detaches the RAM disk (`hdiutil detach -force`), freeing its memory. Idempotent; returns false if detach failed. */
  close(): boolean {
    if (this.closed) return true;
    this.closed = true;
    live.delete(this.device);
    return detach(this.device, this.runner);
  }
}
