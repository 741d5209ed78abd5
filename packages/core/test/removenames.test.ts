/**
 * `FsCore.removeNames`: unlinking names found by prefix with one manifest
 * query, across layers (a name in a snapshot's frozen layer gets a whiteout
 * in the head and stays in the snapshot), never directories, never in other
 * branches, and only names the predicate accepts.
 */
import { join } from "node:path";
import { afterEach, beforeEach, describe, expect, it } from "vitest";
import { FsCore, Store, fsck } from "../src/index.js";
import { errOf, tempDir } from "./helpers.js";

let store: Store;
let cleanup: () => void;

beforeEach(() => {
  const t = tempDir();
  cleanup = t.cleanup;
  store = Store.open(join(t.dir, "store"), { create: true });
});
afterEach(() => {
  store.close();
  cleanup();
});

/** Writes `text` to a new file `path` of `fs`. */
function put(fs: FsCore, path: string, text = "x"): void {
  const fd = fs.openFile(path, 0o101 /* O_WRONLY|O_CREAT */, 0o644);
  fs.write(fd, Buffer.from(text), 0, text.length, null);
  fs.close(fd);
}

const isTmp = (name: string) => /^\.tmp[0-9]+$/.test(name);

describe("FsCore.removeNames", () => {
  it("unlinks matching files anywhere in the tree, in layers below the head too, and keeps the rest", async () => {
    const fs = new FsCore(store, { branch: "main" });
    fs.mkdir("/a");
    fs.mkdir("/a/b");
    put(fs, "/.tmp1");
    put(fs, "/a/b/.tmp2");
    store.createSnapshot("s1");
    put(fs, "/a/.tmp3");
    put(fs, "/a/.tmpx");
    put(fs, "/a/tmp4");
    fs.mkdir("/a/.tmp5");
    fs.symlink("nowhere", "/a/b/.tmp6");
    const open = fs.openFile("/a/b/.tmp2", 0);

    expect(fs.removeNames(".tmp", isTmp)).toBe(4);
    expect(fs.readdir("/").map((e) => e.name)).toEqual(["a"]);
    expect(fs.readdir("/a").map((e) => e.name)).toEqual([".tmp5", ".tmpx", "b", "tmp4"]);
    expect(fs.readdir("/a/b")).toEqual([]);
    // an open file stays readable through its fd, as after unlink(2)
    const buf = Buffer.alloc(4);
    expect(fs.read(open, buf, 0, 4, 0)).toBe(1);
    fs.close(open);
    // the snapshot keeps its names
    const snap = new FsCore(store, { snapshot: "s1" });
    expect(snap.readdir("/a/b").map((e) => e.name)).toEqual([".tmp2"]);
    expect(snap.readdir("/").map((e) => e.name)).toEqual([".tmp1", "a"]);
    expect((await errOf(() => snap.removeNames(".tmp", isTmp))).code).toBe("EROFS");
    expect(fs.removeNames(".tmp", isTmp)).toBe(0);
    expect(fsck(store).problems).toEqual([]);
  });

  it("leaves other branches alone", () => {
    const fs = new FsCore(store, { branch: "main" });
    put(fs, "/.tmp1");
    store.createBranch("other", { branch: "main" });
    const other = new FsCore(store, { branch: "other" });
    put(other, "/.tmp2");
    expect(fs.removeNames(".tmp", isTmp)).toBe(1);
    expect(other.readdir("/").map((e) => e.name)).toEqual([".tmp1", ".tmp2"]);
    expect(other.removeNames(".tmp", isTmp)).toBe(2);
    expect(other.readdir("/")).toEqual([]);
  });
});
