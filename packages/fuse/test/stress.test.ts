/**
 * fsstress through a real FUSE mount: test/tools/fsstress.py runs 4 worker
 * processes at once doing seeded random create/write/mkdir/rename/link/
 * unlink/symlink/truncate/rmdir/readdir/stat in one shared tree of the
 * mounted store (names from a small pool, so they collide all the time).
 * Afterwards the tree must be consistent (fsstress.py check: every listed
 * name stats, no duplicate names, directory nlink = 2 + subdirectories, file
 * nlink = names found, every data block intact, each worker's own file
 * holds its last write), the only errors the workers saw are the errnos a
 * racing namespace gives, fsck is clean after unmount, a new mount shows the
 * same tree, and `rm -rf` empties it. The tools are checked on tmpfs first.
 */
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { canMount, ok, waitFor } from "./helpers.js";
import { CliMount, hasPython, runTool, TOOLS } from "./stress-helpers.js";

const FSSTRESS = join(TOOLS, "fsstress.py");
const SEEDS = [1, 2, 3, 4];
const PROCS = 4;
const OPS = 2500;

/** Result of fsstress.py check. */
interface Check {
  problems: string[];
  files: number;
  entries: number;
  listing: unknown[];
}

/** Runs fsstress.py on `root` and returns its JSON report (throws on a failed worker). */
function stress(root: string, seed: number, ops = OPS): { counts: Record<string, number>; failed_workers: number[]; workers: { unexpected: string[] }[] } {
  const r = runTool("python3", [FSSTRESS, "run", root, "--procs", String(PROCS), "--ops", String(ops), "--seed", String(seed)]);
  if (r.code !== 0) throw new Error(`fsstress exited ${r.code}: ${r.stderr}\n${r.stdout}`);
  writeFileSync(join(root, "..", `run-${seed}.json`), r.stdout);
  return JSON.parse(r.stdout);
}

/** Runs fsstress.py check on `root` (with the run's report for the own-file check). */
function check(root: string, seed: number): Check {
  const r = runTool("python3", [FSSTRESS, "check", root, "--expect", join(root, "..", `run-${seed}.json`)]);
  if (r.stderr) throw new Error(`fsstress check: ${r.stderr}`);
  return JSON.parse(r.stdout) as Check;
}

describe.skipIf(!canMount() || !hasPython)("fsstress: concurrent random namespace and data operations in one tree", () => {
  let m: CliMount;
  let shm: string;
  const listings = new Map<number, unknown[]>();

  beforeAll(() => {
    m = CliMount.create("agentfs-fsstress-");
    shm = mkdtempSync("/dev/shm/agentfs-fsstress-");
    m.mount();
  });

  afterAll(() => {
    m?.dispose();
    if (shm) rmSync(shm, { recursive: true, force: true });
  });

  it("the tools themselves: a run on tmpfs checks clean, and one corrupted byte is caught", () => {
    const root = join(shm, "w");
    const ran = stress(root, 99, 800);
    expect(ran.failed_workers).toEqual([]);
    expect(ran.workers.flatMap((w) => w.unexpected)).toEqual([]);
    const c = check(root, 99);
    expect(c.problems).toEqual([]);
    expect(c.files).toBeGreaterThan(0);
    // flip one byte in the middle of the largest file
    const big = ok("find t -type f -printf '%s %p\\n' | sort -n | tail -1", root).trim().split(" ")[1]!;
    const data = readFileSync(join(root, big));
    expect(data.length).toBeGreaterThan(64);
    data[Math.floor(data.length / 2)] ^= 0x5a;
    writeFileSync(join(root, big), data);
    expect(check(root, 99).problems.join("\n")).toMatch(/bad data block at offset/);
  });

  for (const seed of SEEDS) {
    it(`seed ${seed}: ${PROCS} processes x ${OPS} operations leave a consistent tree`, () => {
      const root = m.at(`s${seed}`);
      const ran = stress(root, seed);
      expect(ran.failed_workers).toEqual([]);
      expect(ran.workers.flatMap((w) => w.unexpected)).toEqual([]);
      expect(Object.values(ran.counts).reduce((a, b) => a + b, 0)).toBe(PROCS * OPS);
      // libfuse releases files asynchronously after close: let .fuse_hidden names of files
      // unlinked while open go before judging the tree
      let c = check(root, seed);
      waitFor(() => (c = check(root, seed)).problems.every((p) => !p.includes(".fuse_hidden")), 5000);
      expect(c.problems).toEqual([]);
      expect(c.files).toBeGreaterThan(10);
      listings.set(seed, c.listing);
    });
  }

  it("fsck is clean after unmount; a new mount shows the same trees; rm -rf empties them; fsck clean again", () => {
    m.umountCheckingFsck();
    for (const seed of SEEDS) {
      if (!listings.has(seed)) continue;
      const c = check(m.at(`s${seed}`), seed);
      expect(c.problems).toEqual([]);
      expect(c.listing).toEqual(listings.get(seed));
    }
    ok("rm -rf s* own* run-*.json", m.mnt);
    expect(ok("ls -A", m.mnt)).toBe(".agentfs\n");
    expect(ok("find . -path ./.agentfs -prune -o -print", m.mnt)).toBe(".\n");
    m.umountCheckingFsck(false);
  });
});
