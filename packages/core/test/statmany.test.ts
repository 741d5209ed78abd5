/**
 * `FsCore.statManyAt` (readdirplus' batch): for every name the same stat
 * as `lstat` of the path, null for a missing or impossible name, and the
 * errors of the directory itself.
 */
import { afterAll, describe, expect, it } from "vitest";
import { join } from "node:path";
import { FsCore, Store } from "../src/index.js";
import { tempDir } from "./helpers.js";

describe("FsCore.statManyAt", () => {
  const t = tempDir("agentfs-statmany-");
  const store = Store.open(join(t.dir, "store"), { create: true });
  afterAll(() => {
    store.close();
    t.cleanup();
  });
  const c = new FsCore(store, { branch: "main" }, { umask: 0o022 });

  it("matches lstat per name; null for missing, '.', '..', and names with '/' or over 255 bytes", () => {
    c.mkdir("/d");
    c.mkdir("/d/sub");
    c.symlink("sub", "/d/link");
    const fd = c.openFile("/d/f", 0o101, 0o640); // O_WRONLY | O_CREAT
    c.close(fd);
    const dir = c.stat("/d").ino;
    const names = ["f", "missing", "sub", ".", "..", "a/b", "x".repeat(256), "link"];
    const got = c.statManyAt(dir, names);
    expect(got.map((s) => (s ? s.ino : null))).toEqual([c.stat("/d/f").ino, null, c.stat("/d/sub").ino, null, null, null, null, c.stat("/d/link", false).ino]);
    expect(got[0]).toEqual(c.stat("/d/f", false));
    expect(got[7]).toEqual(c.stat("/d/link", false));
  });

  it("fails with ENOTDIR for a file and ENOENT for an inode that does not exist", () => {
    expect(() => c.statManyAt(c.stat("/d/f").ino, ["x"])).toThrow(expect.objectContaining({ code: "ENOTDIR" }));
    expect(() => c.statManyAt(987654, ["x"])).toThrow(expect.objectContaining({ code: "ENOENT" }));
  });
});
