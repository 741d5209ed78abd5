/**
 * `agentfs branch create NAME --lower DIR` and `agentfs commit-lower`: an
 * overlay branch reads a host directory, never writes it until commit-lower.
 */
import { spawnSync } from "node:child_process";
import { existsSync, lstatSync, mkdirSync, readFileSync, readdirSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { agentfs, agentfsJson, cleanup, initStore } from "./helpers.js";

describe("overlay branches in the CLI", () => {
  let dir: string;
  let lower: string;
  const run = (args: string[], input?: string) => agentfs(args, { cwd: dir, input });

  beforeAll(() => {
    dir = initStore();
    lower = join(dir, "host");
    mkdirSync(join(lower, "src"), { recursive: true });
    writeFileSync(join(lower, "src", "a.txt"), "alpha\n");
    writeFileSync(join(lower, "gone.txt"), "bye\n");
  });
  afterAll(() => cleanup(dir));

  it("branch create --lower reads the host dir; changes stay in the store until commit-lower", () => {
    const c = run(["branch", "create", "ov", "--lower", lower, "--checkout"]);
    expect(c.code, c.stderr).toBe(0);
    expect(c.stdout).toBe(`created branch ov from host directory ${lower} and checked it out\n`);
    expect(run(["cat", "/src/a.txt"]).stdout).toBe("alpha\n");
    expect(run(["write", "/src/a.txt"], "changed\n").code).toBe(0);
    expect(run(["write", "/new.txt"], "new\n").code).toBe(0);
    expect(run(["rm", "/gone.txt"]).code).toBe(0);
    expect(readFileSync(join(lower, "src", "a.txt"), "utf8")).toBe("alpha\n");
    const dry = agentfsJson(["commit-lower", "--dry-run", "--json"], { cwd: dir });
    expect(dry.changes.map((x: any) => [x.path, x.change])).toEqual([["/gone.txt", "deleted"], ["/new.txt", "added"], ["/src/a.txt", "modified"]]);
    expect(existsSync(join(lower, "gone.txt"))).toBe(true);
    const r = run(["commit-lower"]);
    expect(r.code, r.stderr).toBe(0);
    expect(r.stdout).toContain(`wrote 3 changes to ${lower}; branch reset onto it`);
    expect(readFileSync(join(lower, "src", "a.txt"), "utf8")).toBe("changed\n");
    expect(readFileSync(join(lower, "new.txt"), "utf8")).toBe("new\n");
    expect(existsSync(join(lower, "gone.txt"))).toBe(false);
    expect(agentfsJson(["commit-lower", "--dry-run", "--json"], { cwd: dir }).changes).toEqual([]);
    expect(run(["cat", "/new.txt"]).stdout).toBe("new\n");
  });

  it("commit-lower makes FIFOs and device nodes on the host (mknod in staging, renamed into place)", () => {
    const sp = join(dir, "specials");
    mkdirSync(sp);
    expect(spawnSync("mkfifo", ["-m", "620", join(sp, "p")]).status).toBe(0);
    const root = process.getuid?.() === 0;
    if (root) expect(spawnSync("mknod", ["-m", "600", join(sp, "n"), "c", "1", "3"]).status).toBe(0);
    expect(run(["import", sp, "/nodes"]).code).toBe(0);
    const r = agentfsJson(["commit-lower", "--json"], { cwd: dir });
    expect(r.skipped).toEqual([]);
    const p = lstatSync(join(lower, "nodes", "p"));
    expect(p.isFIFO()).toBe(true);
    expect(p.mode & 0o7777).toBe(0o620);
    if (root) {
      const n = lstatSync(join(lower, "nodes", "n"));
      expect(n.isCharacterDevice()).toBe(true);
      expect(n.rdev).toBe(lstatSync("/dev/null").rdev);
    }
    expect(readdirSync(lower).filter((x) => x.startsWith(".agentfs-stage"))).toEqual([]);
    expect(agentfsJson(["commit-lower", "--dry-run", "--json"], { cwd: dir }).changes).toEqual([]);
  });

  it("commit-lower on an ordinary branch is EINVAL", () => {
    const r = run(["commit-lower", "--branch", "main"]);
    expect(r.code).toBe(1);
    expect(r.stderr).toContain("EINVAL");
  });
});
