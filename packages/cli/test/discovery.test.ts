import { existsSync, mkdirSync, realpathSync } from "node:fs";
import { join } from "node:path";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { agentfs, cleanup, tmp } from "./helpers.js";

describe("init and store discovery", () => {
  let root: string;
  beforeAll(() => {
    root = realpathSync(tmp());
  });
  afterAll(() => cleanup(root));

  it("init [PATH] creates PATH/.agentfs; a second init fails with EEXIST", () => {
    const p = join(root, "proj");
    mkdirSync(p);
    const r = agentfs(["init", "proj"], { cwd: root });
    expect(r.code).toBe(0);
    expect(r.stdout).toBe(`Initialized empty agentfs store in ${join(p, ".agentfs")} (branch main)\n`);
    expect(existsSync(join(p, ".agentfs", "manifest.db"))).toBe(true);
    const again = agentfs(["init"], { cwd: p });
    expect(again.code).toBe(1);
    expect(again.stderr).toMatch(/^agentfs: EEXIST: an agentfs store already exists at /);
    const j = agentfs(["init", "--json", join(root, "other")], { cwd: root });
    expect(j.code).toBe(0);
    expect(JSON.parse(j.stdout)).toEqual({ store: join(root, "other", ".agentfs"), branch: "main" });
  });

  it("finds the nearest .agentfs above the working directory", () => {
    const p = join(root, "proj");
    const deep = join(p, "a", "b", "c");
    mkdirSync(deep, { recursive: true });
    expect(agentfs(["write", "/from-deep"], { cwd: deep, input: "deep" }).code).toBe(0);
    expect(agentfs(["cat", "/from-deep"], { cwd: p }).stdout).toBe("deep");
    // a nested store wins over the outer one
    const inner = join(p, "a");
    expect(agentfs(["init"], { cwd: inner }).code).toBe(0);
    expect(agentfs(["cat", "/from-deep"], { cwd: deep }).code).toBe(1);
    expect(agentfs(["cat", "/from-deep"], { cwd: p }).stdout).toBe("deep");
  });

  it("$AGENTFS_STORE and --store override discovery (--store wins)", () => {
    const p = join(root, "proj");
    const other = join(root, "other");
    const outside = join(root, "outside");
    mkdirSync(outside, { recursive: true });
    expect(agentfs(["write", "/which"], { cwd: other, input: "other" }).code).toBe(0);
    expect(agentfs(["write", "/which"], { cwd: p, input: "proj" }).code).toBe(0);
    expect(agentfs(["cat", "/which"], { cwd: outside, env: { AGENTFS_STORE: p } }).stdout).toBe("proj");
    expect(agentfs(["cat", "/which"], { cwd: p, env: { AGENTFS_STORE: join(other, ".agentfs") } }).stdout).toBe("other");
    expect(agentfs(["--store", other, "cat", "/which"], { cwd: outside, env: { AGENTFS_STORE: p } }).stdout).toBe("other");
    expect(agentfs(["cat", "/which", "--store", "../proj"], { cwd: outside }).stdout).toBe("proj");
  });

  it("no store found: exit 1 with ENOENT and a hint", () => {
    const lonely = tmp("agentfs-cli-nostore-");
    try {
      const r = agentfs(["ls"], { cwd: lonely });
      expect(r.code).toBe(1);
      expect(r.stderr).toMatch(/^agentfs: ENOENT: not inside an agentfs store.*agentfs init/);
      const s = agentfs(["--store", join(lonely, "nope"), "ls"], { cwd: lonely });
      expect(s.code).toBe(1);
      expect(s.stderr).toMatch(/^agentfs: ENOENT: no agentfs store at /);
      const e = agentfs(["ls"], { cwd: lonely, env: { AGENTFS_STORE: join(lonely, "nope") } });
      expect(e.code).toBe(1);
      expect(e.stderr).toContain("$AGENTFS_STORE");
    } finally {
      cleanup(lonely);
    }
  });
});
