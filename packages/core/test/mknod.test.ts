/**
 * On a real SQLite store: special files (FsCore.mknod: FIFOs, sockets and
 * device nodes) — what they store, the errors mknod(2) gives, how the rest of
 * the tree treats them (link, rename, unlink, snapshots, diff, fsck, export),
 * and that they survive a reopen — and RENAME_EXCHANGE (FsCore.exchange).
 */
import { afterEach, beforeEach, describe, expect, it } from "vitest";
import { constants as C, readdirSync } from "node:fs";
import { join } from "node:path";
import { AgentFS, FsCore, S_IFBLK, S_IFCHR, S_IFIFO, S_IFMT, S_IFREG, S_IFSOCK, exportTree } from "../src/index.js";
import { codeOf, errOf, freshStore, tempDir } from "./helpers.js";

let afs: AgentFS;
let core: FsCore;
let dir: string;
let cleanup: () => Promise<void>;

beforeEach(async () => {
  const s = await freshStore();
  afs = s.afs;
  core = afs.core;
  dir = s.dir;
  cleanup = s.cleanup;
});
afterEach(async () => {
  await cleanup();
});

/** makedev(3) for small numbers (as glibc encodes major/minor below 4096/256). */
const makedev = (major: number, minor: number) => (major << 8) | minor;

describe("mknod", () => {
  it("makes each special type with its mode (less the umask), owner, size 0 and, for devices, rdev", () => {
    core.mknod("/fifo", S_IFIFO | 0o666);
    core.mknod("/sock", S_IFSOCK | 0o755);
    core.mknod("/null", S_IFCHR | 0o666, makedev(1, 3));
    core.mknod("/loop", S_IFBLK | 0o640, makedev(7, 0));
    core.mknod("/fiforeg", 0o600); // no type bits: a regular file
    const want: Array<[string, number, number, number]> = [
      ["/fifo", S_IFIFO, 0o644, 0],
      ["/sock", S_IFSOCK, 0o755, 0],
      ["/null", S_IFCHR, 0o644, makedev(1, 3)],
      ["/loop", S_IFBLK, 0o640, makedev(7, 0)],
      ["/fiforeg", S_IFREG, 0o600, 0],
    ];
    for (const [p, type, perm, rdev] of want) {
      const st = core.stat(p, false);
      expect([p, st.mode & S_IFMT, st.mode & 0o7777, st.rdev, st.size, st.nlink, st.blocks]).toEqual([p, type, perm, rdev, 0, 1, 0]);
      expect(st.uid).toBe(core.cred.uid);
    }
    const types = Object.fromEntries(core.readdir("/").map((e) => [e.name, e.type]));
    expect(types).toMatchObject({ fifo: S_IFIFO, sock: S_IFSOCK, null: S_IFCHR, loop: S_IFBLK, fiforeg: S_IFREG });
  });

  it("gives mknod(2)'s errors and changes nothing when it fails", () => {
    core.mknod("/p", S_IFIFO | 0o644);
    core.symlink("nowhere", "/dangling");
    const fd = core.openFile("/f", C.O_CREAT | C.O_WRONLY, 0o644);
    core.close(fd);
    const before = core.readdir("/").map((e) => e.name).sort();
    expect(codeOf(() => core.mknod("/p", S_IFIFO | 0o644))).toBe("EEXIST");
    expect(codeOf(() => core.mknod("/dangling", S_IFIFO | 0o644))).toBe("EEXIST"); // not followed
    expect(codeOf(() => core.mknod("/d", 0o040755))).toBe("EPERM"); // directories: mkdir
    expect(codeOf(() => core.mknod("/x", 0o170644))).toBe("EINVAL"); // no such type
    expect(codeOf(() => core.mknod("/no/x", S_IFIFO | 0o644))).toBe("ENOENT");
    expect(codeOf(() => core.mknod("/f/x", S_IFIFO | 0o644))).toBe("ENOTDIR");
    expect(codeOf(() => core.mknod("/y/", S_IFIFO | 0o644))).toBe("ENOENT");
    expect(codeOf(() => core.mknod("/" + "n".repeat(256), S_IFIFO | 0o644))).toBe("ENAMETOOLONG");
    expect(codeOf(() => core.mknod("/z\0", S_IFIFO | 0o644))).not.toBe("ok");
    expect(core.readdir("/").map((e) => e.name).sort()).toEqual(before);
  });

  it("leaves device nodes to root, and checks the directory's permissions for other callers", () => {
    core.mkdir("/open");
    core.chmod("/open", 0o777);
    core.mkdir("/closed", 0o755);
    const user = new FsCore(afs.store, { branch: "main" }, { cred: { uid: 1000, gid: 1000, groups: [] }, umask: 0 });
    try {
      expect(codeOf(() => user.mknod("/open/c", S_IFCHR | 0o600, makedev(1, 3)))).toBe("EPERM");
      expect(codeOf(() => user.mknod("/open/b", S_IFBLK | 0o600, makedev(7, 0)))).toBe("EPERM");
      expect(codeOf(() => user.mknod("/closed/p", S_IFIFO | 0o600))).toBe("EACCES");
      expect(codeOf(() => user.mknod("/open/p", S_IFIFO | 0o600))).toBe("ok");
      const st = user.stat("/open/p", false);
      expect([st.uid, st.gid, st.mode & 0o7777]).toEqual([1000, 1000, 0o600]);
    } finally {
      user.closeAll();
    }
  });

  it("answers ENXIO to open: their I/O belongs to a kernel front end", async () => {
    core.mknod("/p", S_IFIFO | 0o644);
    core.mknod("/c", S_IFCHR | 0o644, makedev(1, 3));
    for (const p of ["/p", "/c"]) {
      expect(() => core.openFile(p, C.O_RDONLY)).toThrow(expect.objectContaining({ code: "ENXIO" }));
      expect((await errOf(afs.fs.readFile(p))).code).toBe("ENXIO");
    }
    expect((await errOf(afs.fs.truncate("/p", 0))).code).toBe("EINVAL");
  });

  it("links, renames over, and unlinks like any other node", () => {
    core.mknod("/p", S_IFIFO | 0o644);
    core.link("/p", "/p2");
    expect(core.stat("/p", false).nlink).toBe(2);
    core.mknod("/target", S_IFSOCK | 0o644);
    core.rename("/p2", "/target");
    expect(core.stat("/target", false).mode & S_IFMT).toBe(S_IFIFO);
    expect(core.stat("/target", false).ino).toBe(core.stat("/p", false).ino);
    core.unlink("/p");
    expect(core.stat("/target", false).nlink).toBe(1);
    core.unlink("/target");
    expect(core.readdir("/").map((e) => e.name)).toEqual([]);
  });

  it("is kept by snapshots, named by kind in diff (rdev changes too), clean in fsck, and survives a reopen", async () => {
    core.mknod("/p", S_IFIFO | 0o644);
    core.mknod("/c", S_IFCHR | 0o644, makedev(1, 3));
    await afs.snapshot("a");
    core.unlink("/c");
    core.mknod("/c", S_IFCHR | 0o644, makedev(1, 5));
    core.mknod("/s", S_IFSOCK | 0o644);
    await afs.snapshot("b");
    const d = await afs.diff({ snapshot: "a" }, { snapshot: "b" });
    const byPath = Object.fromEntries(d.map((e) => [e.path, e]));
    expect(byPath["/s"]).toMatchObject({ change: "added", kind: "socket" });
    expect(byPath["/c"]).toMatchObject({ change: "modified", kind: "chardev" });
    expect(byPath["/c"].what).toContain("rdev");
    expect(byPath["/p"]).toBeUndefined();
    expect((await afs.fsck()).ok).toBe(true);
    afs.closeSync();
    afs = await AgentFS.open(dir, {});
    core = afs.core;
    expect(core.stat("/c", false).rdev).toBe(makedev(1, 5));
    expect(core.stat("/p", false).mode & S_IFMT).toBe(S_IFIFO);
    const old = new FsCore(afs.store, { snapshot: "a" });
    try {
      expect(old.stat("/c", false).rdev).toBe(makedev(1, 3));
      expect(() => old.mknod("/q", S_IFIFO | 0o644)).toThrow(expect.objectContaining({ code: "EROFS" }));
    } finally {
      old.closeAll();
    }
  });

  it("is skipped, and named, by export to a host directory", () => {
    core.mknod("/p", S_IFIFO | 0o644);
    const fd = core.openFile("/f", C.O_CREAT | C.O_WRONLY, 0o644);
    core.close(fd);
    const t = tempDir();
    try {
      const rep = exportTree(core, "/", join(t.dir, "out"));
      expect(readdirSync(join(t.dir, "out"))).toEqual(["f"]);
      expect(rep.skipped).toEqual(["/p"]);
    } finally {
      t.cleanup();
    }
  });
});

describe("exchange (renameat2 RENAME_EXCHANGE)", () => {
  it("swaps two names atomically, moving a directory's '..' link between parents; errors leave both names alone", async () => {
    core.mkdir("/a");
    core.mkdir("/b");
    core.mkdir("/a/d");
    core.mkdir("/a/d/sub");
    const fd = core.openFile("/b/f", C.O_CREAT | C.O_WRONLY, 0o644);
    core.write(fd, Buffer.from("file"), 0, 4, 0);
    core.close(fd);
    await afs.snapshot("before");
    const d = core.stat("/a/d", false).ino;
    const f = core.stat("/b/f", false).ino;
    const nlinks = () => [core.stat("/a", false).nlink, core.stat("/b", false).nlink];
    expect(nlinks()).toEqual([3, 2]);
    core.exchange("/a/d", "/b/f");
    expect([core.stat("/a/d", false).ino, core.stat("/b/f", false).ino]).toEqual([f, d]);
    expect(core.readdir("/b/f").map((e) => e.name)).toEqual(["sub"]);
    expect(nlinks()).toEqual([2, 3]);
    expect(codeOf(() => core.exchange("/b/f", "/b/f/sub"))).toBe("EINVAL");
    expect(codeOf(() => core.exchange("/b/f/sub", "/b"))).toBe("EINVAL");
    expect(codeOf(() => core.exchange("/a/d", "/a/nope"))).toBe("ENOENT");
    expect(codeOf(() => core.exchange("/a/d/", "/b/f"))).toBe("ENOTDIR");
    expect([core.stat("/a/d", false).ino, core.stat("/b/f", false).ino]).toEqual([f, d]);
    // the snapshot still has the old names; fsck agrees with the new counts
    const old = new FsCore(afs.store, { snapshot: "before" });
    try {
      expect([old.stat("/a/d", false).ino, old.stat("/b/f", false).ino]).toEqual([d, f]);
    } finally {
      old.closeAll();
    }
    expect((await afs.fsck()).ok).toBe(true);
  });
});
