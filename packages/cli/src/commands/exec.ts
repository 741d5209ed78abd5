/**
 * `agentfs exec PATH [ARGS…]`: runs an executable or `#!` script stored in
 * agentfs with fexecve(3) on an exported memfd (@agentfs/ermfd) — no file is
 * written to disk — and exits with the program's status.
 */
import type { Command } from "commander";
import { spawnStored } from "@agentfs/ermfd";
import { waitForExit } from "@agentfs/native";
import { withFs } from "../context.js";

/**
 * Thrown by `exec` once the program has ended, carrying the exit status
 * `agentfs` should exit with: the program's exit code, or 128 + signal
 * number when a signal killed it (as a shell reports it).
 */
export class ChildExit extends Error {
  constructor(readonly status: number) {
    super(`program exited with status ${status}`);
    this.name = "ChildExit";
  }
}

/** Registers `exec` on `program`. */
export function registerExecCommand(program: Command): void {
  program
    .command("exec")
    .description("run a program or #! script stored in agentfs via fexecve of a memfd (nothing written to disk); exits with its status")
    .argument("<path>", "store path of the program")
    .argument("[args...]", "arguments for the program (after --, if they start with -)")
    .allowUnknownOption()
    .action(async (path: string, args: string[], _opts: unknown, cmd: Command) => {
      // The store is closed before waiting: the child runs from its own memfd.
      const pid = await withFs(cmd, (afs) => spawnStored(afs, path, args).pid);
      const st = await waitForExit(pid);
      const status = st.exitCode ?? 128 + (st.signal ?? 0);
      if (status !== 0) throw new ChildExit(status);
    });
}
