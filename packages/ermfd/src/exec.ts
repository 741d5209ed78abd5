/**
 * `execStored` / `spawnStored`: run an executable stored in agentfs with
 * fexecve(3) on an exported memfd — no file is written anywhere.
 */
import fs from "node:fs";
import type { AgentFS, FsCore } from "@agentfs/core";
import * as native from "@agentfs/native";
import { exportMemfdStat } from "./export.js";

/** Options of {@link spawnStored} and {@link execStored}. */
export interface ExecOptions {
  /** argv[0] the program sees (default: the stored path). */
  argv0?: string;
  /** Environment as "NAME=value" strings (default: this process's). */
  env?: string[];
  /** The child's fds 0, 1, 2 (default this process's stdio; -1 leaves a slot as inherited). */
  stdio?: [number, number, number];
  /** Use execveat(fd, "", …, AT_EMPTY_PATH) instead of fexecve (default false). */
  execveat?: boolean;
}

/** A started child: its pid and whether the file was a `#!` script. */
export interface StoredChild {
  pid: number;
  script: boolean;
}

/**
 * Exports the file at `path` of `afs` as a sealed, read-only memfd and starts
 * it with fork + fexecve (see `@agentfs/native` spawnFexecve), argv =
 * [argv0, ...args]. Returns at once; reap the child with `waitForExit(pid)`
 * (from @agentfs/native). The parent's copy of the memfd is closed before
 * returning.
 *
 * ELF binaries run from the memfd directly. `#!` scripts: the kernel starts
 * the interpreter with `/dev/fd/N` as the script path, so the memfd must stay
 * open across the exec — it is marked inheritable in the child only (the
 * parent's fd stays close-on-exec) and the interpreter keeps it open while
 * it runs, as a side effect the script can see one extra open fd.
 *
 * Errors: FsError from the export (ENOENT, EISDIR, ELOOP, EACCES, EINVAL);
 * from the exec (Error with `code`): EACCES (no execute bit on the stored
 * file), ENOEXEC (not a recognised executable format), ENOENT (a script's
 * interpreter is missing), E2BIG, ENOMEM, EAGAIN, ENOSYS (not Linux).
 */
export function spawnStored(afs: AgentFS | FsCore, path: string, args: string[] = [], opts: ExecOptions = {}): StoredChild {
  const ex = exportMemfdStat(afs, path, { seal: true, name: `agentfs-exec:${path.split("/").pop() ?? ""}` });
  try {
    const head = Buffer.alloc(2);
    const script = ex.size >= 2 && fs.readSync(ex.fd, head, 0, 2, 0) === 2 && head[0] === 0x23 && head[1] === 0x21;
    const pid = native.spawnFexecve(ex.fd, [opts.argv0 ?? path, ...args], opts.env ?? null, {
      stdio: opts.stdio,
      inheritFds: script ? [ex.fd] : [],
      execveat: opts.execveat,
    });
    return { pid, script };
  } finally {
    fs.closeSync(ex.fd);
  }
}

/**
 * As {@link spawnStored}, then waits (without blocking the event loop) for
 * the child to end and resolves with its status: `exitCode` 0–255 when it
 * exited, `signal` when a signal killed it.
 */
export async function execStored(afs: AgentFS | FsCore, path: string, args: string[] = [], opts: ExecOptions = {}): Promise<native.WaitStatus> {
  const { pid } = spawnStored(afs, path, args, opts);
  return native.waitForExit(pid, 5);
}
