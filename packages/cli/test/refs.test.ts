import { Store } from "@agentfs/core";
import { join } from "node:path";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { agentfs, agentfsJson, cleanup, initStore } from "./helpers.js";

describe("snapshots, branches, restore, diff", () => {
  let dir: string;
  const run = (args: string[], input?: string) => agentfs(args, { cwd: dir, input });
  const json = (args: string[], input?: string) => agentfsJson(args, { cwd: dir, input });

  beforeAll(() => {
    dir = initStore();
    run(["mkdir", "-p", "/src/lib"]);
    run(["write", "/src/a.txt"], "alpha\n");
    run(["write", "/src/lib/b.txt"], "beta\n");
    run(["write", "/gone.txt"], "bye\n");
  });
  afterAll(() => cleanup(dir));

  it("snapshot create/list/delete", () => {
    const s = json(["snapshot", "create", "v1", "-m", "first", "--json"]);
    expect(s).toMatchObject({ name: "v1", branch: "main", message: "first" });
    expect(typeof s.createdNs).toBe("string");
    expect(run(["snapshot", "create", "tmp"]).stdout).toBe("created snapshot tmp of branch main\n");
    const list = json(["snapshot", "list", "--json"]);
    expect(list.map((x: any) => x.name)).toEqual(["v1", "tmp"]);
    expect(list[0]).toMatchObject({ name: "v1", branch: "main", message: "first" });
    expect(Number.isNaN(Date.parse(list[0].created))).toBe(false);
    expect(run(["snapshot", "list"]).stdout).toMatch(/^v1\t\S+\tmain\tfirst\ntmp\t/);
    const dup = run(["snapshot", "create", "v1"]);
    expect(dup.code).toBe(1);
    expect(dup.stderr).toMatch(/^agentfs: EEXIST: snapshot 'v1' already exists/);
    const badName = run(["snapshot", "create", "a/b"]);
    expect(badName.code).toBe(1);
    expect(badName.stderr).toContain("EINVAL");
    expect(run(["snapshot", "delete", "tmp"]).code).toBe(0);
    expect(json(["snapshot", "list", "--json"]).map((x: any) => x.name)).toEqual(["v1"]);
    const missing = run(["snapshot", "delete", "tmp"]);
    expect(missing.code).toBe(1);
    expect(missing.stderr).toContain("ENOENT");
  });

  it("snapshots are read-only views; --snapshot reads them", () => {
    run(["write", "/src/a.txt"], "ALPHA changed\n");
    expect(run(["cat", "/src/a.txt"]).stdout).toBe("ALPHA changed\n");
    expect(run(["--snapshot", "v1", "cat", "/src/a.txt"]).stdout).toBe("alpha\n");
    expect(run(["cat", "--snapshot", "v1", "/src/a.txt"]).stdout).toBe("alpha\n"); // global option after the command
    const w = run(["--snapshot", "v1", "write", "/x"], "x");
    expect(w.code).toBe(1);
    expect(w.stderr).toMatch(/^agentfs: EROFS/);
    const rm = run(["--snapshot", "v1", "rm", "/gone.txt"]);
    expect(rm.code).toBe(1);
    expect(rm.stderr).toContain("EROFS");
    const nosnap = run(["--snapshot", "nope", "ls"]);
    expect(nosnap.code).toBe(1);
    expect(nosnap.stderr).toContain("ENOENT");
  });

  it("diff: default is latest snapshot of the branch -> branch; JSON shape; explicit refs", () => {
    run(["rm", "/gone.txt"]);
    run(["write", "/src/lib/new.txt"], "new\n");
    run(["chmod", "600", "/src/lib/b.txt"]);
    const d = json(["diff", "--json"]);
    expect(d.from).toEqual({ snapshot: "v1" });
    expect(d.to).toEqual({ branch: "main" });
    expect(d.changes.map((c: any) => [c.path, c.change, c.kind, c.what ?? null])).toEqual([
      ["/gone.txt", "deleted", "file", null],
      ["/src/a.txt", "modified", "file", ["content"]],
      ["/src/lib/b.txt", "modified", "file", ["mode"]],
      ["/src/lib/new.txt", "added", "file", null],
    ]);
    expect(d.changes[1]).toMatchObject({ sizeBefore: 6, sizeAfter: 14 });
    expect(d.summary).toEqual({ added: 1, deleted: 1, modified: 2, typeChanged: 0 });
    const human = run(["diff"]).stdout;
    expect(human).toBe(
      "diff snapshot v1 -> branch main\n" +
        "D /gone.txt\n" +
        "M /src/a.txt (content; 6 B -> 14 B)\n" +
        "M /src/lib/b.txt (mode)\n" +
        "A /src/lib/new.txt\n" +
        "1 added, 1 deleted, 2 modified, 0 type-changed\n",
    );
    expect(run(["snapshot", "create", "v2"]).code).toBe(0);
    expect(json(["diff", "v1", "v2", "--json"]).changes).toHaveLength(4);
    expect(json(["diff", "snapshot:v2", "branch:main", "--json"]).changes).toEqual([]);
    expect(json(["diff", "v2", "v1", "--json"]).summary).toEqual({ added: 1, deleted: 1, modified: 2, typeChanged: 0 });
    const bad = run(["diff", "nope"]);
    expect(bad.code).toBe(1);
    expect(bad.stderr).toMatch(/^agentfs: ENOENT: no snapshot or branch named 'nope'/);
  });

  it("branch create/list/checkout/delete; branches are isolated", () => {
    const b = json(["branch", "create", "exp", "v1", "--json"]);
    expect(b).toMatchObject({ name: "exp", origin: "snapshot:v1", current: false });
    expect(run(["--branch", "exp", "cat", "/gone.txt"]).stdout).toBe("bye\n");
    expect(run(["--branch", "exp", "write", "/only-exp"], "e").code).toBe(0);
    expect(run(["cat", "/only-exp"]).code).toBe(1); // main does not see it
    expect(json(["diff", "v1", "exp", "--json"]).changes.map((c: any) => c.path)).toEqual(["/only-exp"]);

    expect(run(["branch", "checkout", "exp"]).stdout).toBe("checked out branch exp\n");
    expect(run(["cat", "/only-exp"]).stdout).toBe("e");
    const list = json(["branch", "list", "--json"]);
    expect(list.map((x: any) => [x.name, x.current, x.origin])).toEqual([
      ["exp", true, "snapshot:v1"],
      ["main", false, null],
    ]);
    expect(run(["branch", "list"]).stdout).toBe("* exp\t(from snapshot:v1)\n  main\n");
    const busy = run(["branch", "delete", "exp"]);
    expect(busy.code).toBe(1);
    expect(busy.stderr).toContain("EBUSY");
    expect(run(["branch", "checkout", "main"]).code).toBe(0);
    expect(run(["branch", "create", "fromMain", "-c"]).stdout).toBe("created branch fromMain from branch main and checked it out\n");
    expect(run(["cat", "/src/lib/new.txt"]).stdout).toBe("new\n");
    run(["branch", "checkout", "main"]);
    expect(run(["branch", "delete", "exp", "fromMain"]).code).toBe(0);
    expect(json(["branch", "list", "--json"]).map((x: any) => x.name)).toEqual(["main"]);
    const nob = run(["branch", "checkout", "nope"]);
    expect(nob.code).toBe(1);
    expect(nob.stderr).toContain("ENOENT");
  });

  it("restore resets the branch to a snapshot", () => {
    run(["write", "/after.txt"], "later");
    expect(run(["restore", "v1"]).stdout).toBe("restored branch main to snapshot v1\n");
    expect(run(["cat", "/src/a.txt"]).stdout).toBe("alpha\n");
    expect(run(["cat", "/gone.txt"]).stdout).toBe("bye\n");
    expect(run(["cat", "/after.txt"]).code).toBe(1);
    expect(json(["diff", "v1", "main", "--json"]).changes).toEqual([]);
    expect(run(["restore", "nope"]).code).toBe(1);
  });

  it("gc, stats and fsck report as text and JSON", () => {
    expect(run(["snapshot", "delete", "v2"]).code).toBe(0);
    const g = json(["gc", "--json"]);
    for (const k of ["layersRemoved", "inodeVersionsRemoved", "dentriesRemoved", "objectsRemoved", "bytesFreed", "objectsKept"]) expect(typeof g[k]).toBe("number");
    expect(run(["gc"]).stdout).toMatch(/^gc: removed \d+ layers, .* objects kept\n$/);

    const s = json(["stats", "--json"]);
    expect(s.target).toEqual({ branch: "main" });
    expect(s.tree).toEqual({ files: 3, dirs: 2, symlinks: 0, logicalBytes: 6 + 5 + 4 });
    for (const k of ["objects", "chunkRefs", "referencedBytes", "uniqueBytes", "storedBytes", "dedupRatio", "compressionRatio", "databaseBytes", "packFiles", "packBytes", "layers", "branches", "snapshots"]) {
      expect(typeof s.store[k], k).toBe("number");
    }
    expect(s.store.snapshots).toBe(1);
    const text = run(["stats"]).stdout;
    expect(text).toMatch(/logical size\s+15 B \(15 bytes\)/);
    expect(text).toMatch(/dedup ratio\s+\d+\.\d\dx/);
    expect(text).toMatch(/compression ratio\s+\d+\.\d\dx/);
    expect(text).toMatch(/database on disk\s+\d+\.\d (KiB|MiB)/);

    const f = run(["fsck"]);
    expect(f.code).toBe(0);
    expect(f.stdout).toMatch(/no problems found/);
    expect(json(["fsck", "--json"])).toMatchObject({ ok: true, problems: [] });
  });

  it("fsck exits 1 and names each problem when an object is corrupt", () => {
    const d = initStore();
    try {
      agentfs(["write", "/f.txt"], { cwd: d, input: "some content that will be corrupted\n" });
      const store = Store.open(join(d, ".agentfs"));
      const row = store.manifest.db.prepare(`SELECT id, hash FROM objects LIMIT 1`).get() as { id: number; hash: Buffer };
      store.manifest.db.prepare(`UPDATE objects SET data = ?, codec = 0 WHERE id = ?`).run(Buffer.from("garbage"), row.id);
      store.close();
      const r = agentfs(["fsck"], { cwd: d });
      expect(r.code).toBe(1);
      expect(r.stdout).toContain(`corrupt-object: object ${row.hash.toString("hex")}`);
      expect(r.stderr).toMatch(/^agentfs: fsck found \d+ problems?\n$/);
      const j = agentfs(["fsck", "--json"], { cwd: d });
      expect(j.code).toBe(1);
      const rep = JSON.parse(j.stdout);
      expect(rep.ok).toBe(false);
      expect(rep.problems.some((p: any) => p.kind === "corrupt-object" && p.object === row.hash.toString("hex"))).toBe(true);
      const cat = agentfs(["cat", "/f.txt"], { cwd: d });
      expect(cat.code).toBe(1);
      expect(cat.stderr).toContain("EIO");
    } finally {
      cleanup(d);
    }
  });
});
