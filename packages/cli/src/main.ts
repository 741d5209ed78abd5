#!/usr/bin/env node
/**
 * The `agentfs` command. Exit status: 0 success; 1 an operation failed
 * (`agentfs: <CODE>: <message>` on stderr); 2 bad usage.
 */
import { Command, CommanderError } from "commander";
import { realpathSync } from "node:fs";
import { fileURLToPath } from "node:url";
import { CliError, ReportedFailure, UsageError, errorMessage } from "./context.js";
import { ChildExit, registerExecCommand } from "./commands/exec.js";
import { registerFileCommands } from "./commands/files.js";
import { registerMountCommands } from "./commands/mount.js";
import { registerRefCommands } from "./commands/refs.js";
import { registerStoreCommands } from "./commands/store.js";
import { registerTreeCommands } from "./commands/tree.js";

/** Package version printed by `--version`. */
export const VERSION = "0.1.0";

/** Exit status for a usage error. */
export const EXIT_USAGE = 2;
/** Exit status for a failed operation. */
export const EXIT_FAILURE = 1;

/**
 * Builds the `agentfs` program with every command registered. Commander
 * errors are thrown (exitOverride) rather than exiting, so `run` can map
 * them to exit status 2.
 */
export function buildProgram(): Command {
  const program = new Command("agentfs");
  program
    .description("agentfs: a content-addressed, copy-on-write virtual filesystem with snapshots and branches")
    .version(VERSION)
    .option("--store <path>", "store directory (or a directory holding .agentfs); default $AGENTFS_STORE, else the nearest .agentfs above the working directory")
    .option("--branch <name>", "read and write this branch instead of the checked-out one")
    .option("--snapshot <name>", "read this snapshot (read-only)")
    .showHelpAfterError("(run with --help for usage)")
    .exitOverride()
    .configureOutput({ outputError: (str, write) => write(`agentfs: ${str.replace(/^error: /, "")}`) });
  registerStoreCommands(program);
  registerTreeCommands(program);
  registerFileCommands(program);
  registerRefCommands(program);
  registerMountCommands(program);
  registerExecCommand(program);
  // Every subcommand (including nested ones) refuses unknown options and extra arguments.
  const strict = (c: Command) => {
    c.allowExcessArguments(false);
    for (const s of c.commands) strict(s);
  };
  strict(program);
  return program;
}

/**
 * Runs the CLI on `argv` (user arguments, without node and script) and
 * returns the exit status. Errors are printed to stderr as `agentfs: ...`.
 */
export async function run(argv: string[]): Promise<number> {
  const program = buildProgram();
  if (argv.length === 0) {
    process.stderr.write(program.helpInformation());
    return EXIT_USAGE;
  }
  try {
    await program.parseAsync(argv, { from: "user" });
    return 0;
  } catch (e) {
    if (e instanceof ChildExit) return e.status;
    if (e instanceof CommanderError) {
      if (e.code === "commander.helpDisplayed" || e.code === "commander.version") return 0;
      return EXIT_USAGE; // commander has printed the message
    }
    if (e instanceof UsageError) {
      process.stderr.write(`agentfs: ${e.message}\n`);
      return EXIT_USAGE;
    }
    if (e instanceof ReportedFailure || e instanceof CliError) {
      process.stderr.write(`agentfs: ${e.message}\n`);
      return EXIT_FAILURE;
    }
    process.stderr.write(`agentfs: ${errorMessage(e)}\n`);
    if (process.env.AGENTFS_DEBUG && e instanceof Error) process.stderr.write(`${e.stack}\n`);
    return EXIT_FAILURE;
  }
}

function isMain(): boolean {
  const entry = process.argv[1];
  if (!entry) return false;
  try {
    return realpathSync(entry) === realpathSync(fileURLToPath(import.meta.url));
  } catch {
    return false;
  }
}

if (isMain()) {
  // A closed pipe (e.g. `agentfs cat big | head`) is not an error.
  process.stdout.on("error", (e: NodeJS.ErrnoException) => {
    if (e.code === "EPIPE") process.exit(0);
    throw e;
  });
  run(process.argv.slice(2)).then((code) => {
    process.exitCode = code;
  });
}
