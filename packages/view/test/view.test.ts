import { AgentFS, Store, FsError } from "@agentfs/core";
import { mkdtempSync, rmSync } from "node:fs";
import { constants as osConstants, tmpdir } from "node:os";
import { join } from "node:path";
import { constants as C } from "node:fs";
import { afterEach, beforeEach, describe, expect, it } from "vitest";
import { View, decodeIno, SLOT_MAIN, SLOT_CONTROL } from "../src/index.js";

function code(fn: () => unknown): string | undefined {
  try {
    fn();
  } catch (e) {
    expect(e).toBeInstanceOf(FsError);
    return (e as FsError).code;
  }
  return undefined;
}

describe("View", () => {
  let dir: string;
  let store: Store;
  let view: View;
  beforeEach(() => {
    dir = mkdtempSync(join(tmpdir(), "agentfs-view-"));
    store = Store.open(dir, { create: true });
    view = View.open(store);
  });
  afterEach(() => {
    view.closeAll();
    store.close();
    rmSync(dir, { recursive: true, force: true });
  });

  function writeFile(path: string, text: string): void {
    const fd = view.open(path, C.O_CREAT | C.O_WRONLY | C.O_TRUNC, 0o644);
    const b = Buffer.from(text);
    view.write(fd, b, 0, b.length, 0);
    view.close(fd);
  }
  function readFile(path: string): string {
    const fd = view.open(path, C.O_RDONLY);
    const b = Buffer.alloc(1 << 16);
    const n = view.read(fd, b, 0, b.length, 0);
    view.close(fd);
    return b.subarray(0, n).toString();
  }

  it("root lists .agentfs; control tree is read-only", () => {
    writeFile("/a.txt", "one");
    expect(view.readdir("/").map((e) => e.name)).toEqual([".agentfs", "a.txt"]);
    expect(view.readdir("/.agentfs").map((e) => e.name)).toEqual(["snapshots"]);
    expect(view.readdir("/.agentfs/snapshots")).toEqual([]);
    expect(view.stat("/.agentfs").mode & 0o170000).toBe(0o040000);
    expect(code(() => view.mkdir("/.agentfs"))).toBe("EEXIST");
    expect(code(() => view.mkdir("/.agentfs/x"))).toBe("EROFS");
    expect(code(() => view.mkdir("/.agentfs/snapshots/new"))).toBe("EROFS");
    expect(code(() => view.open("/.agentfs/snapshots/new", C.O_CREAT | C.O_WRONLY))).toBe("EROFS");
    expect(code(() => view.stat("/.agentfs/x"))).toBe("ENOENT");
    expect(code(() => view.rmdir("/.agentfs/snapshots"))).toBe("EROFS");
    expect(code(() => view.stat("/.agentfs/nope"))).toBe("ENOENT");
    expect(code(() => view.stat("/.agentfs/snapshots/nope"))).toBe("ENOENT");
    expect(code(() => view.open("/.agentfs/snapshots", C.O_WRONLY))).toBe("EISDIR");
  });

  it("snapshots appear and disappear at once, including ones made by another connection, and are read-only", () => {
    writeFile("/a.txt", "one");
    store.createSnapshot("s1");
    writeFile("/a.txt", "two");
    expect(view.readdir("/.agentfs/snapshots").map((e) => e.name)).toEqual(["s1"]);
    expect(readFile("/.agentfs/snapshots/s1/a.txt")).toBe("one");
    expect(readFile("/a.txt")).toBe("two");
    const other = Store.open(dir);
    try {
      other.createSnapshot("s2");
      expect(view.readdir("/.agentfs/snapshots").map((e) => e.name)).toEqual(["s1", "s2"]);
      expect(readFile("/.agentfs/snapshots/s2/a.txt")).toBe("two");
      other.deleteSnapshot("s1");
    } finally {
      other.close();
    }
    expect(view.readdir("/.agentfs/snapshots").map((e) => e.name)).toEqual(["s2"]);
    expect(code(() => view.stat("/.agentfs/snapshots/s1/a.txt"))).toBe("ENOENT");
    expect(code(() => writeFile("/.agentfs/snapshots/s2/a.txt", "x"))).toBe("EROFS");
    expect(code(() => writeFile("/.agentfs/snapshots/s2/new.txt", "x"))).toBe("EROFS");
    expect(code(() => view.unlink("/.agentfs/snapshots/s2/a.txt"))).toBe("EROFS");
    expect(code(() => view.mkdir("/.agentfs/snapshots/s2/d"))).toBe("EROFS");
    expect(code(() => view.setxattr("/.agentfs/snapshots/s2/a.txt", "user.x", Buffer.from("1")))).toBe("EROFS");
    expect(code(() => view.access("/.agentfs/snapshots/s2/a.txt", C.W_OK))).toBe("EROFS");
    expect(code(() => view.rename("/a.txt", "/.agentfs/snapshots/s2/b.txt"))).toBe("EROFS");
  });

  it("inode numbers differ between the branch, the control nodes and each snapshot", () => {
    writeFile("/a.txt", "one");
    store.createSnapshot("s1");
    store.createSnapshot("s2");
    const inos = [
      view.stat("/a.txt").ino, view.stat("/.agentfs/snapshots/s1/a.txt").ino, view.stat("/.agentfs/snapshots/s2/a.txt").ino,
      view.stat("/").ino, view.stat("/.agentfs/snapshots/s1").ino, view.stat("/.agentfs/snapshots/s2").ino,
      view.stat("/.agentfs").ino, view.stat("/.agentfs/snapshots").ino,
    ];
    expect(new Set(inos).size).toBe(inos.length);
    expect(decodeIno(inos[0]!).slot).toBe(SLOT_MAIN);
    expect(decodeIno(inos[6]!).slot).toBe(SLOT_CONTROL);
    expect(decodeIno(inos[1]!).ino).toBe(decodeIno(inos[0]!).ino);
    expect(view.readdir("/.agentfs/snapshots").map((e) => e.ino)).toEqual([inos[4], inos[5]]);
  });

  it("a snapshot view serves the snapshot read-only; --read-only branch view refuses writes", () => {
    writeFile("/a.txt", "one");
    store.createSnapshot("s1");
    const sv = View.open(store, { target: { snapshot: "s1" } });
    expect(sv.readOnly).toBe(true);
    const fd = sv.open("/a.txt", C.O_RDONLY);
    sv.close(fd);
    expect(code(() => sv.mkdir("/d"))).toBe("EROFS");
    const ro = View.open(store, { readOnly: true });
    expect(code(() => ro.open("/b.txt", C.O_CREAT | C.O_WRONLY))).toBe("EROFS");
    expect(code(() => ro.unlink("/a.txt"))).toBe("EROFS");
    expect(ro.readdir("/").map((e) => e.name)).toEqual([".agentfs", "a.txt"]);
  });

  it("autoCommitBytes commits sequential writes as they go (others see them before close); a non-sequential write stops it", () => {
    const v = View.open(store, { autoCommitBytes: 1000 });
    const other = Store.open(dir);
    const sizeSeenByOther = (p: string) => {
      const o = View.open(other);
      try {
        return o.stat(p).size;
      } catch {
        return -1;
      } finally {
        o.closeAll();
      }
    };
    try {
      const fd = v.open("/seq.bin", C.O_CREAT | C.O_WRONLY, 0o644);
      const chunk = Buffer.alloc(600, 1);
      v.write(fd, chunk, 0, 600, 0);
      expect(sizeSeenByOther("/seq.bin")).toBe(0);
      v.write(fd, chunk, 0, 600, 600); // 1200 >= 1000: committed
      expect(sizeSeenByOther("/seq.bin")).toBe(1200);
      v.write(fd, chunk, 0, 600, 0); // rewrite at 0: not sequential, auto-commit off for this fd
      v.write(fd, chunk, 0, 600, 1200);
      v.write(fd, chunk, 0, 600, 1800);
      expect(sizeSeenByOther("/seq.bin")).toBe(1200);
      v.close(fd);
      expect(sizeSeenByOther("/seq.bin")).toBe(2400);
    } finally {
      v.closeAll();
      other.close();
    }
  });

  it("name and path limits, EXDEV across trees, open files survive unlink, flush commits for other readers", async () => {
    expect(code(() => view.mkdir("/" + "n".repeat(256)))).toBe("ENAMETOOLONG");
    // whole paths are not limited by default (the kernel limits what programs pass; a deep tree stays reachable)
    expect(code(() => view.stat("/" + "d/".repeat(2100)))).toBe("ENOENT");
    expect(code(() => View.open(store, { pathMax: 4096 }).stat("/" + "d/".repeat(2100)))).toBe("ENAMETOOLONG");
    writeFile("/a.txt", "one");
    store.createSnapshot("s1");
    expect(code(() => view.link("/.agentfs/snapshots/s1/a.txt", "/b.txt"))).toBe("EROFS");
    const fd = view.open("/a.txt", C.O_RDWR);
    view.unlink("/a.txt");
    const b = Buffer.alloc(10);
    expect(view.read(fd, b, 0, 10, 0)).toBe(3);
    view.close(fd);
    const w = view.open("/c.txt", C.O_CREAT | C.O_RDWR, 0o600);
    view.write(w, Buffer.from("hello"), 0, 5, 0);
    view.flush(w);
    const afs = await AgentFS.open(dir);
    try {
      expect((await afs.fs.readFile("/c.txt")).toString()).toBe("hello");
    } finally {
      await afs.close();
    }
    view.close(w);
    expect(view.stat("/c.txt").mode & 0o777).toBe(0o600);
  });

  it("errors keep Node's shape; errorStacks: false drops the stack of errno answers but not of EIO", () => {
    const caught = (fn: () => unknown): FsError => {
      try {
        fn();
      } catch (e) {
        expect(e).toBeInstanceOf(FsError);
        return e as FsError;
      }
      throw new Error("no error");
    };
    writeFile("/f", "x");
    const withStack = caught(() => view.stat("/nope"));
    expect(withStack).toMatchObject({ code: "ENOENT", errno: -osConstants.errno.ENOENT, syscall: "lstat", path: "/nope" });
    expect(withStack.stack).toMatch(/\n\s+at /);
    const xattr = caught(() => view.getxattr("/f", "user.none"));
    expect(xattr.code).toBe("ENODATA");
    expect(xattr.stack).toMatch(/\n\s+at /);

    const quiet = View.open(store, { errorStacks: false });
    const e = caught(() => quiet.stat("/nope"));
    expect(e).toMatchObject({ code: "ENOENT", errno: -osConstants.errno.ENOENT, syscall: "lstat", path: "/nope" });
    expect(e.message).toBe("ENOENT: no such file or directory, lstat '/nope'");
    expect(e.stack).toBe(`Error: ${e.message}`);
    expect(caught(() => quiet.getxattr("/f", "user.none")).code).toBe("ENODATA");
    quiet.closeAll();

    const io = FsError.withoutStack("EIO", "read", "/f");
    expect(io.stack).toMatch(/\n\s+at /);
    const nd = FsError.withoutStack("ENODATA", "getxattr", "/f");
    expect(nd).toMatchObject({ code: "ENODATA", syscall: "getxattr", path: "/f" });
    expect(nd.stack).toBe(`Error: ${nd.message}`);
  });
});
