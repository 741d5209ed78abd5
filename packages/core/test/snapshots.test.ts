/**
 * Snapshots, branches, restore, diff, gc and fsck on a real store.
 */
import { afterEach, beforeEach, describe, expect, it } from "vitest";
import { AgentFS, fsck } from "../src/index.js";
import { errOf, freshStore, prng } from "./helpers.js";

let afs: AgentFS;
let dir: string;
let cleanup: () => Promise<void>;
const extra: AgentFS[] = [];

beforeEach(async () => {
  const s = await freshStore();
  afs = s.afs;
  dir = s.dir;
  cleanup = s.cleanup;
});
afterEach(async () => {
  for (const a of extra.splice(0)) a.closeSync();
  await cleanup();
});

async function view(opts: { snapshot?: string; branch?: string }): Promise<AgentFS> {
  const a = await AgentFS.open(dir, opts);
  extra.push(a);
  return a;
}

describe("snapshots", () => {
  it("are immutable after later writes, deletes and renames", async () => {
    const fs = afs.fs;
    await fs.mkdir("/d");
    await fs.writeFile("/d/a", "A1");
    await fs.writeFile("/b", prng(500_000, 1));
    await fs.symlink("d/a", "/ln");
    await afs.snapshot("s1");
    await fs.writeFile("/d/a", "A2");
    await fs.appendFile("/b", "tail");
    await fs.rename("/d", "/e");
    await fs.unlink("/ln");
    await fs.writeFile("/new", "N");
    await fs.chmod("/b", 0o600);
    const s1 = await view({ snapshot: "s1" });
    expect(await s1.fs.readFile("/d/a", "utf8")).toBe("A1");
    expect((await s1.fs.readFile("/b")).equals(prng(500_000, 1))).toBe(true);
    expect(await s1.fs.readlink("/ln")).toBe("d/a");
    expect(await s1.fs.readdir("/")).toEqual(["b", "d", "ln"]);
    expect((await s1.fs.stat("/b")).mode & 0o777).toBe(0o644);
    // and the branch sees the new state
    expect(await fs.readdir("/")).toEqual(["b", "e", "new"]);
    expect(await fs.readFile("/e/a", "utf8")).toBe("A2");
    // snapshots are read-only
    expect((await errOf(s1.fs.writeFile("/x", "x"))).code).toBe("EROFS");
    expect((await errOf(s1.fs.unlink("/b"))).code).toBe("EROFS");
    expect((await errOf(afs.snapshot("s1"))).code).toBe("EEXIST");
    expect((await errOf(view({ snapshot: "nope" }))).code).toBe("ENOENT");
  });

  it("a file open for writing across a snapshot lands after it, not in it", async () => {
    const fs = afs.fs;
    await fs.writeFile("/f", "before");
    const h = await fs.open("/f", "r+");
    await h.write("AFTER!", 0);
    await afs.snapshot("mid");
    await h.close();
    expect(await fs.readFile("/f", "utf8")).toBe("AFTER!");
    const mid = await view({ snapshot: "mid" });
    expect(await mid.fs.readFile("/f", "utf8")).toBe("before");
  });
});

describe("branches", () => {
  it("branch from a snapshot shares data and diverges", async () => {
    const fs = afs.fs;
    const big = prng(4 * 1024 * 1024, 11);
    await fs.writeFile("/big", big);
    await fs.writeFile("/small", "s");
    await afs.snapshot("base");
    const before = (await afs.stats()).store;
    await afs.branch("feature", { snapshot: "base" });
    const feat = await view({ branch: "feature" });
    // sharing: a branch costs no data
    expect((await afs.stats()).store.uniqueBytes).toBe(before.uniqueBytes);
    expect((await feat.fs.readFile("/big")).equals(big)).toBe(true);
    await feat.fs.writeFile("/small", "feature");
    await feat.fs.writeFile("/only-feature", "x");
    await fs.writeFile("/small", "main");
    await fs.unlink("/big");
    expect(await feat.fs.readFile("/small", "utf8")).toBe("feature");
    expect(await fs.readFile("/small", "utf8")).toBe("main");
    expect(await feat.fs.readdir("/")).toEqual(["big", "only-feature", "small"]);
    expect(await fs.readdir("/")).toEqual(["small"]);
    const base = await view({ snapshot: "base" });
    expect(await base.fs.readFile("/small", "utf8")).toBe("s");
    const names = (await afs.branches()).map((b) => b.name);
    expect(names).toEqual(["feature", "main"]);
    expect((await errOf(afs.branch("feature"))).code).toBe("EEXIST");
    expect((await errOf(afs.branch("bad/name"))).code).toBe("EINVAL");
  });

  it("branch from a branch's current state", async () => {
    await afs.fs.writeFile("/f", "1");
    await afs.branch("copy");
    await afs.fs.writeFile("/f", "2");
    const c = await view({ branch: "copy" });
    expect(await c.fs.readFile("/f", "utf8")).toBe("1");
    expect(await afs.fs.readFile("/f", "utf8")).toBe("2");
  });
});

describe("restore", () => {
  it("resets the branch to a snapshot; later snapshots stay intact", async () => {
    const fs = afs.fs;
    await fs.writeFile("/f", "v1");
    await afs.snapshot("one");
    await fs.writeFile("/f", "v2");
    await fs.mkdir("/newdir");
    await afs.snapshot("two");
    await fs.writeFile("/f", "v3");
    await afs.restore("one");
    expect(await fs.readFile("/f", "utf8")).toBe("v1");
    expect(await fs.readdir("/")).toEqual(["f"]);
    await fs.writeFile("/g", "after restore");
    const two = await view({ snapshot: "two" });
    expect(await two.fs.readFile("/f", "utf8")).toBe("v2");
    expect(await two.fs.readdir("/")).toEqual(["f", "newdir"]);
    await afs.restore("two");
    expect(await fs.readdir("/")).toEqual(["f", "newdir"]);
    expect((await errOf(afs.restore("nope"))).code).toBe("ENOENT");
    expect((await afs.fsck()).ok).toBe(true);
  });
});

describe("diff", () => {
  it("lists added, deleted, modified and type-changed entries with sizes", async () => {
    const fs = afs.fs;
    await fs.writeFile("/same", "same");
    await fs.writeFile("/mod", "12345");
    await fs.writeFile("/del", "gone!");
    await fs.writeFile("/chm", "x");
    await fs.writeFile("/becomes-dir", "file");
    await fs.mkdir("/dd");
    await fs.writeFile("/dd/inner", "i");
    await afs.snapshot("a");
    await fs.writeFile("/mod", "1234567");
    await fs.unlink("/del");
    await fs.chmod("/chm", 0o600);
    await fs.unlink("/becomes-dir");
    await fs.mkdir("/becomes-dir");
    await fs.writeFile("/added", "abc");
    await fs.rm("/dd", { recursive: true });
    await afs.snapshot("b");
    const d = await afs.diff({ snapshot: "a" }, { snapshot: "b" });
    const byPath = Object.fromEntries(d.map((e) => [e.path, e]));
    expect(Object.keys(byPath).sort()).toEqual(["/added", "/becomes-dir", "/chm", "/dd", "/dd/inner", "/del", "/mod"]);
    expect(byPath["/added"]).toMatchObject({ change: "added", kind: "file", sizeAfter: 3 });
    expect(byPath["/del"]).toMatchObject({ change: "deleted", kind: "file", sizeBefore: 5 });
    expect(byPath["/mod"]).toMatchObject({ change: "modified", kind: "file", sizeBefore: 5, sizeAfter: 7 });
    expect(byPath["/mod"].what).toContain("content");
    expect(byPath["/chm"]).toMatchObject({ change: "modified" });
    expect(byPath["/chm"].what).toEqual(["mode"]);
    expect(byPath["/becomes-dir"]).toMatchObject({ change: "type-changed", kind: "dir", kindBefore: "file" });
    expect(byPath["/dd"]).toMatchObject({ change: "deleted", kind: "dir" });
    expect(byPath["/dd/inner"]).toMatchObject({ change: "deleted", kind: "file", sizeBefore: 1 });
    // reverse direction swaps added/deleted
    const r = await afs.diff({ snapshot: "b" }, { snapshot: "a" });
    expect(r.find((e) => e.path === "/added")?.change).toBe("deleted");
    expect(r.find((e) => e.path === "/del")?.change).toBe("added");
    // no differences between equal states
    expect(await afs.diff({ snapshot: "b" }, { branch: "main" })).toEqual([]);
  });

  it("rewriting a file with the same bytes is not a content change", async () => {
    await afs.fs.writeFile("/f", "same");
    await afs.snapshot("a");
    await afs.fs.writeFile("/f", "same");
    expect(await afs.diff({ snapshot: "a" })).toEqual([]);
  });
});

describe("gc and fsck", () => {
  it("gc removes only unreachable data; everything reachable still reads", async () => {
    const fs = afs.fs;
    const keep = prng(1_000_000, 21);
    const dropped = prng(1_500_000, 22);
    const inSnap = prng(700_000, 23);
    await fs.writeFile("/keep", keep);
    await fs.writeFile("/dropped", dropped);
    await afs.snapshot("old");
    await fs.unlink("/dropped");
    await fs.writeFile("/snapfile", inSnap);
    await afs.snapshot("kept");
    await fs.unlink("/snapfile");
    // nothing is unreachable yet: gc keeps everything
    const s0 = (await afs.stats()).store;
    const g0 = await afs.gc();
    expect(g0.objectsRemoved).toBe(0);
    expect((await afs.stats()).store.uniqueBytes).toBe(s0.uniqueBytes);
    // a view opened before gc (its own connection) must still read afterwards
    const kept = await view({ snapshot: "kept" });
    expect((await kept.fs.readFile("/keep")).equals(keep)).toBe(true);
    // dropping "old" makes /dropped unreachable
    afs.store.deleteSnapshot("old");
    const g1 = await afs.gc();
    expect(g1.objectsRemoved).toBeGreaterThan(0);
    const s1 = (await afs.stats()).store;
    expect(s0.uniqueBytes - s1.uniqueBytes).toBe(dropped.length);
    expect((await fs.readFile("/keep")).equals(keep)).toBe(true);
    expect((await kept.fs.readFile("/snapfile")).equals(inSnap)).toBe(true);
    expect(await kept.fs.readdir("/")).toEqual(["keep", "snapfile"]);
    expect((await kept.fs.readFile("/keep")).equals(keep)).toBe(true);
    // the dropped chunks are really gone from the objects table
    const { sha256 } = await import("../src/index.js");
    const firstChunk = afs.store.chunker.split(dropped)[0];
    expect(afs.store.cas.has(sha256(dropped.subarray(0, firstChunk)))).toBe(false);
    expect(afs.store.cas.has(sha256(keep.subarray(0, afs.store.chunker.split(keep)[0])))).toBe(true);
    const rep = await afs.fsck();
    expect(rep.problems).toEqual([]);
    expect(rep.ok).toBe(true);
    // a restore discards unsnapshotted changes; gc reclaims them
    await fs.writeFile("/tmp-data", prng(600_000, 24));
    await afs.restore("kept");
    const g2 = await afs.gc();
    expect(g2.objectsRemoved).toBeGreaterThan(0);
    expect((await afs.stats()).store.uniqueBytes).toBe(s1.uniqueBytes);
    expect((await fs.readFile("/snapfile")).equals(inSnap)).toBe(true);
    expect((await afs.fsck()).ok).toBe(true);
  });

  it("gc does not drop data of a file open but unlinked in this view", async () => {
    const data = prng(300_000, 31);
    await afs.fs.writeFile("/f", data);
    const h = await afs.fs.open("/f", "r");
    await afs.fs.unlink("/f");
    await afs.gc();
    const { buffer, bytesRead } = await h.read(Buffer.alloc(data.length), 0, data.length, 0);
    expect(bytesRead).toBe(data.length);
    expect(buffer.equals(data)).toBe(true);
    await h.close();
    await afs.gc();
    expect((await afs.stats()).store.objects).toBe(0);
  });

  it("fsck is clean on a healthy store with branches and snapshots", async () => {
    const fs = afs.fs;
    await fs.mkdir("/a/b", { recursive: true });
    await fs.writeFile("/a/b/f", prng(200_000, 4));
    await fs.link("/a/b/f", "/a/hard");
    await fs.symlink("/a", "/s");
    await afs.snapshot("s1");
    await afs.branch("x", { snapshot: "s1" });
    const x = await view({ branch: "x" });
    await x.fs.unlink("/a/hard");
    await x.fs.rename("/a/b", "/moved");
    await fs.rm("/a", { recursive: true });
    const rep = fsck(afs.store);
    expect(rep.problems).toEqual([]);
    expect(rep.ok).toBe(true);
    expect(rep.checked.views).toBe(3);
    expect(rep.checked.objects).toBeGreaterThan(0);
  });
});
