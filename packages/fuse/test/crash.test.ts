/**
 * Crash consistency through a real FUSE mount: the CLI daemon is killed
 * with SIGKILL in the middle of a write-heavy workload
 * (test/tools/crashwriters.py: 3 writer processes write files, fsync half of
 * them, close them, rename and unlink some, and log each path + sha256 on
 * the host only after close returned, or after rename/unlink and an fsync
 * of the directory returned: namespace changes are durable once the
 * directory is fsynced, as POSIX has it). After each kill the
 * mount is stale (ENOTCONN), fsck of the store is clean, the next
 * `agentfs mount` recovers the stale mount, and every file logged before the
 * kill — in this round and in earlier ones — is intact (sha256), every
 * logged unlink or rename-away stays done. Three rounds, seeds 1-3.
 *
 * The same for a namespace workload: fsstress.py (4 processes) killed
 * mid-run must leave a store that fsck passes and a tree that its
 * consistency check passes.
 *
 * Also: files unlinked while open (kept by libfuse under .fuse_hidden names)
 * must not outlive the mount.
 */
import { spawn, type ChildProcess } from "node:child_process";
import { readFileSync, statfsSync } from "node:fs";
import { join } from "node:path";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { canMount, ok } from "./helpers.js";
import { CliMount, hasPython, runTool, TOOLS } from "./stress-helpers.js";

const CRASH = join(TOOLS, "crashwriters.py");
/** Files a round's writers must have logged as closed before the daemon is killed. */
const FILES_BEFORE_KILL = 120;

/** Lines of `log` that record a closed file ("F ..."), 0 while it does not exist. */
function closedFiles(log: string): number {
  try {
    return readFileSync(log, "utf8").split("\n").filter((l) => l.startsWith("F ")).length;
  } catch {
    return 0;
  }
}

/** Resolves after `ms` milliseconds (for polling a condition; nothing is timed). */
const sleep = (ms: number) => new Promise((res) => setTimeout(res, ms));

/** statfs(2) of `path`: "OK" or the error code (stat may be answered from the kernel's attribute cache; statfs reaches the daemon). */
function statfsCode(path: string): string {
  try {
    statfsSync(path);
    return "OK";
  } catch (e) {
    return (e as NodeJS.ErrnoException).code ?? String(e);
  }
}

describe.skipIf(!canMount() || !hasPython)("crash: SIGKILL of the daemon during a write-heavy workload", () => {
  let m: CliMount;
  const logs: string[] = [];

  beforeAll(() => {
    m = CliMount.create("agentfs-crash-");
    m.mount();
  });

  afterAll(() => {
    m?.dispose();
  });

  for (const seed of [1, 2, 3]) {
    it(`round ${seed}: killed while writing; stale mount recovered; fsck clean; every file logged as closed is intact`, async () => {
      const log = join(m.root, `log${seed}`);
      logs.push(log);
      const writers = spawn("python3", [CRASH, "run", m.mnt, log, "--procs", "3", "--seed", String(seed), "--tag", `r${seed}`], { stdio: ["ignore", "pipe", "pipe"] });
      let out = "";
      let err = "";
      writers.stdout.on("data", (b) => (out += b));
      writers.stderr.on("data", (b) => (err += b));
      const exited = new Promise<number>((res) => writers.on("close", (code) => res(code ?? -1)));
      let ended = false;
      void exited.then(() => (ended = true));
      // the workload runs until the daemon dies: wait for enough closed files, then kill it
      while (!ended && closedFiles(log) < FILES_BEFORE_KILL) await sleep(50);
      expect(ended, `writers ended before the kill: ${out} ${err}`).toBe(false);
      const pid = m.daemonPid();
      expect(pid).toBeGreaterThan(0);
      process.kill(pid, "SIGKILL");
      expect(await exited).toBe(0);
      expect(err).toBe("");
      const ran = JSON.parse(out) as { files: number; errors: string[] };
      expect(ran.files).toBeGreaterThanOrEqual(FILES_BEFORE_KILL);
      // every writer was stopped by the dead connection, not by anything else
      for (const e of ran.errors) expect(["ENOTCONN", "ECONNABORTED"]).toContain(e);
      expect(statfsCode(m.mnt)).toBe("ENOTCONN");

      const f = m.fsck();
      expect(f.stdout + f.stderr).toMatch(/no problems found/);
      expect(f.code).toBe(0);

      m.mount(); // must recover the stale mount left by the killed daemon
      expect(statfsCode(m.mnt)).toBe("OK");
      const v = runTool("python3", [CRASH, "verify", m.mnt, ...logs]);
      const res = JSON.parse(v.stdout) as { checked: number; gone: number; problems: string[] };
      expect(res.problems).toEqual([]);
      expect(v.code).toBe(0);
      expect(res.checked).toBeGreaterThanOrEqual(FILES_BEFORE_KILL * seed * 0.5);
    });
  }

  it("fsstress killed mid-run (4 processes, seed 7): fsck clean, and after the next mount the tree is consistent and rm -rf empties it", async () => {
    const progress = join(m.root, "fsstress-progress");
    const root = m.at("fss");
    const p = spawn("python3", [join(TOOLS, "fsstress.py"), "run", root, "--procs", "4", "--ops", "1000000", "--seed", "7", "--progress", progress], { stdio: ["ignore", "pipe", "pipe"] });
    let err = "";
    p.stderr.on("data", (b) => (err += b));
    p.stdout.resume();
    const exited = new Promise<number>((res) => p.on("close", (code) => res(code ?? -1)));
    let ended = false;
    void exited.then(() => (ended = true));
    const done = () => {
      try {
        return readFileSync(progress).length * 50;
      } catch {
        return 0;
      }
    };
    while (!ended && done() < 3000) await sleep(50);
    expect(ended, `fsstress ended before the kill: ${err}`).toBe(false);
    process.kill(m.daemonPid(), "SIGKILL");
    await exited;
    expect(err).toBe("");
    const f = m.fsck();
    expect(f.stdout + f.stderr).toMatch(/no problems found/);
    expect(f.code).toBe(0);
    m.mount();
    const c = runTool("python3", [join(TOOLS, "fsstress.py"), "check", root]);
    const res = JSON.parse(c.stdout) as { problems: string[]; entries: number };
    // a file some worker had open and another had unlinked at the kill was left as .fuse_hidden…; the mount removed it
    expect(res.problems).toEqual([]);
    expect(res.entries).toBeGreaterThan(10);
    ok("rm -rf fss", m.mnt);
    expect(ok("ls -A", m.mnt)).not.toMatch(/^fss$/m);
  });

  it("a mount right after SIGKILL, while the kernel may still answer stat of the root from its cache, recovers the stale mount", () => {
    ok("echo alive > alive.txt && stat . > /dev/null", m.mnt);
    process.kill(m.daemonPid(), "SIGKILL");
    m.mount();
    expect(ok("cat alive.txt", m.mnt)).toBe("alive\n");
    ok("rm alive.txt", m.mnt);
  });

  /** Starts a process in `dir` that opens held.txt, writes to it, unlinks it and keeps it open; resolves once it has. */
  async function holdUnlinked(dir: string): Promise<ChildProcess> {
    const p = spawn("bash", ["-c", "exec 3>held.txt; echo data >&3; rm held.txt; echo ready; exec sleep 120"], { cwd: dir, stdio: ["ignore", "pipe", "ignore"] });
    await new Promise<void>((res) => p.stdout!.once("data", () => res()));
    return p;
  }

  it("files unlinked while open get no hidden name: the listing is empty at once, the holder still reads them, and umount leaves nothing behind", async () => {
    ok("mkdir -p hide/a hide/b", m.mnt);
    const holders = [await holdUnlinked(m.at("hide/a")), await holdUnlinked(m.at("hide/b"))];
    try {
      ok("mv hide/b hide/c", m.mnt);
      expect(ok("ls -A hide/a hide/c", m.mnt)).toBe("hide/a:\n\nhide/c:\n");
      // the unlinked file is still readable through the holder's descriptor
      for (const h of holders) expect(readFileSync(`/proc/${h.pid}/fd/3`, "utf8")).toBe("data\n");
      m.umount();
    } finally {
      for (const h of holders) h.kill("SIGKILL");
    }
    m.mount();
    expect(ok("ls -A hide/a hide/c", m.mnt)).toBe("hide/a:\n\nhide/c:\n");
    ok("rmdir hide/a hide/c hide", m.mnt);
  });

  // Daemons of agentfs before the libfuse 3 binding (libfuse 2's high-level API) renamed a file
  // unlinked while open to .fuse_hidden<16 hex digits> and, when SIGKILLed, left that name in the
  // store. A mount removes such names before it serves (FuseMount.mount, removeFuseHiddenNames: one
  // manifest query by name prefix), and only names exactly as libfuse 2 made them.
  it("after SIGKILL of the daemon, the next mount removes names libfuse 2 left (.fuse_hidden + 16 hex digits) and keeps look-alike names", async () => {
    ok("mkdir -p orphan keep", m.mnt);
    const alike = [".fuse_hidden", ".fuse_hidden0123456789abcde", ".fuse_hidden0123456789abcdef0", ".fuse_hidden0123456789ABCDEF", ".fuse_hiddenx123456789abcdef", ".fuse_hidden0123456789abcdef.txt"];
    ok(alike.map((n) => `echo x > keep/${n}`).join(" && "), m.mnt);
    ok("echo left > orphan/.fuse_hidden00000007000000a1", m.mnt);
    const holder = await holdUnlinked(m.at("orphan"));
    // The unlink is durable once the directory is fsynced (the daemon holds namespace changes for up to --hold-ms).
    ok(`python3 -c "import os; fd = os.open('orphan', os.O_RDONLY); os.fsync(fd)"`, m.mnt);
    try {
      process.kill(m.daemonPid(), "SIGKILL");
    } finally {
      holder.kill("SIGKILL");
    }
    m.mount();
    expect(ok("ls -A orphan", m.mnt)).toBe("");
    expect(readFileSync(m.log(), "utf8")).toMatch(/\.fuse_hidden files left by an earlier daemon: 1 removed/);
    ok("rmdir orphan", m.mnt);
    expect(ok("ls -A keep", m.mnt).split("\n").filter(Boolean).sort()).toEqual([...alike].sort());
    ok("rm -r keep", m.mnt);
  });

  it("a clean unmount afterwards: fsck clean, and the files are still intact after a last mount", () => {
    m.umountCheckingFsck();
    const v = runTool("python3", [CRASH, "verify", m.mnt, ...logs]);
    expect(JSON.parse(v.stdout).problems).toEqual([]);
    expect(v.code).toBe(0);
  });
});
