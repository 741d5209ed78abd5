/**
 * The lookups the FUSE front end makes by directory and inode number
 * instead of by path: `statManyAt` (readdirplus' batch: per name the same
 * stat as `lstat` of the path, null for a missing or impossible name),
 * `lookupAt` (null instead of ENOENT), `inosAt` (inode numbers only, for
 * revalidating the kernel's cached names), and `statInode`,
 * `getxattrOf`/`listxattrOf` (also an inode unlinked while open).
 */
import { afterAll, describe, expect, it } from "vitest";
import { join } from "node:path";
import { FsCore, Store } from "../src/index.js";
import { tempDir } from "./helpers.js";

describe("FsCore.statManyAt, lookupAt, statInode", () => {
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

  it("lookupAt: the stat of statAt, or null where statAt fails with ENOENT; other errors as statAt", () => {
    const dir = c.stat("/d").ino;
    expect(c.lookupAt(dir, "f")).toEqual(c.statAt(dir, "f"));
    expect(c.lookupAt(dir, "missing")).toBeNull();
    expect(() => c.statAt(dir, "missing")).toThrow(expect.objectContaining({ code: "ENOENT" }));
    expect(() => c.lookupAt(c.stat("/d/f").ino, "x")).toThrow(expect.objectContaining({ code: "ENOTDIR" }));
    expect(() => c.lookupAt(dir, "x".repeat(256))).toThrow(expect.objectContaining({ code: "ENAMETOOLONG" }));
  });

  it("statInode: a linked inode as lstat shows it, an inode unlinked while open, ENOENT once it is gone", () => {
    expect(c.statInode(c.stat("/d/sub").ino)).toEqual(c.stat("/d/sub", false));
    const fd = c.openFile("/d/held", 0o102, 0o600); // O_RDWR | O_CREAT
    c.write(fd, Buffer.from("abc"), 0, 3, 0);
    const ino = c.fstat(fd).ino;
    c.unlink("/d/held");
    expect(c.statInode(ino)).toMatchObject({ ino, size: 3, nlink: 0 });
    c.close(fd);
    expect(() => c.statInode(ino)).toThrow(expect.objectContaining({ code: "ENOENT" }));
    expect(() => c.statInode(987654)).toThrow(expect.objectContaining({ code: "ENOENT" }));
  });

  it("inosAt: the inode numbers statManyAt finds, null where it finds nothing; ENOTDIR for a file", () => {
    const dir = c.stat("/d").ino;
    const names = ["f", "missing", "sub", ".", "x".repeat(256), "link"];
    expect(c.inosAt(dir, names)).toEqual(c.statManyAt(dir, names).map((st) => (st ? st.ino : null)));
    expect(() => c.inosAt(c.stat("/d/f").ino, ["x"])).toThrow(expect.objectContaining({ code: "ENOTDIR" }));
  });

  it("getxattrOf/listxattrOf: an inode's extended attributes by number, also after unlink while open", () => {
    const fd = c.openFile("/d/x", 0o102, 0o600); // O_RDWR | O_CREAT
    c.setxattr("/d/x", "user.k", Buffer.from("val"));
    const ino = c.fstat(fd).ino;
    c.unlink("/d/x");
    expect(c.getxattrOf(ino, "user.k").toString()).toBe("val");
    expect(c.listxattrOf(ino)).toEqual(["user.k"]);
    expect(() => c.getxattrOf(ino, "user.none")).toThrow(expect.objectContaining({ code: "ENODATA" }));
    c.close(fd);
    expect(() => c.getxattrOf(ino, "user.k")).toThrow(expect.objectContaining({ code: "ENOENT" }));
  });
});
