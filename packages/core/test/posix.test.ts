/**
 * POSIX behaviour of the SDK (`AgentFS.open(dir).fs`), on a real SQLite store
 * in a temp dir. Each test checks results and error codes the way Linux and
 * Node's fs report them.
 */
import { afterEach, beforeEach, describe, expect, it } from "vitest";
import { constants as C } from "node:fs";
import { AgentFS, type AgentFsPromises } from "../src/index.js";
import { errOf, freshStore, prng } from "./helpers.js";

let afs: AgentFS;
let fs: AgentFsPromises;
let cleanup: () => Promise<void>;

beforeEach(async () => {
  const s = await freshStore();
  afs = s.afs;
  fs = afs.fs;
  cleanup = s.cleanup;
});
afterEach(async () => {
  await cleanup();
});

const S_IFMT = 0o170000;

describe("regular files", () => {
  it("write, read, overwrite, stat", async () => {
    await fs.writeFile("/a.txt", "hello");
    expect(await fs.readFile("/a.txt", "utf8")).toBe("hello");
    await fs.writeFile("/a.txt", "hi");
    expect(await fs.readFile("/a.txt", "utf8")).toBe("hi");
    const st = await fs.stat("/a.txt");
    expect(st.isFile()).toBe(true);
    expect(st.size).toBe(2);
    expect(st.nlink).toBe(1);
    expect(st.mode & 0o777).toBe(0o644);
    expect(await fs.readFile("/a.txt")).toEqual(Buffer.from("hi"));
  });

  it("O_APPEND writes at the end regardless of position", async () => {
    await fs.writeFile("/f", "abc");
    await fs.appendFile("/f", "def");
    const h = await fs.open("/f", "a+");
    await h.write(Buffer.from("XY"), 0, 2, 0); // position ignored with O_APPEND
    await h.close();
    expect(await fs.readFile("/f", "utf8")).toBe("abcdefXY");
  });

  it("O_EXCL fails with EEXIST on an existing file", async () => {
    await fs.writeFile("/f", "x");
    const e = await errOf(fs.open("/f", "wx"));
    expect(e.code).toBe("EEXIST");
    expect(e.syscall).toBe("open");
    expect(e.path).toBe("/f");
    const e2 = await errOf(fs.writeFile("/f", "y", { flag: "wx" }));
    expect(e2.code).toBe("EEXIST");
    expect(await fs.readFile("/f", "utf8")).toBe("x");
  });

  it("O_TRUNC empties the file", async () => {
    await fs.writeFile("/f", "0123456789");
    const h = await fs.open("/f", C.O_RDWR | C.O_TRUNC);
    expect((await h.stat()).size).toBe(0);
    await h.write("ab");
    await h.close();
    expect(await fs.readFile("/f", "utf8")).toBe("ab");
  });

  it("pwrite in the middle via r+ and reading through a handle", async () => {
    await fs.writeFile("/f", "aaaaaaaaaa");
    const h = await fs.open("/f", "r+");
    await h.write(Buffer.from("ZZ"), 0, 2, 4);
    const { bytesRead, buffer } = await h.read(Buffer.alloc(10), 0, 10, 0);
    expect(bytesRead).toBe(10);
    expect(buffer.toString()).toBe("aaaaZZaaaa");
    await h.close();
    expect(await fs.readFile("/f", "utf8")).toBe("aaaaZZaaaa");
  });

  it("truncate grows with zeros and shrinks", async () => {
    await fs.writeFile("/f", "abcdef");
    await fs.truncate("/f", 3);
    expect(await fs.readFile("/f", "utf8")).toBe("abc");
    await fs.truncate("/f", 8);
    expect(await fs.readFile("/f")).toEqual(Buffer.from([0x61, 0x62, 0x63, 0, 0, 0, 0, 0]));
    expect((await fs.stat("/f")).size).toBe(8);
    const h = await fs.open("/f", "r+");
    await h.truncate(1);
    await h.close();
    expect(await fs.readFile("/f", "utf8")).toBe("a");
    expect((await errOf(fs.truncate("/", 0))).code).toBe("EISDIR");
  });

  it("reading a directory or missing file gives EISDIR / ENOENT", async () => {
    await fs.mkdir("/d");
    expect((await errOf(fs.readFile("/d"))).code).toBe("EISDIR");
    expect((await errOf(fs.readFile("/nope"))).code).toBe("ENOENT");
    expect((await errOf(fs.writeFile("/d", "x"))).code).toBe("EISDIR");
    expect((await errOf(fs.writeFile("/nodir/f", "x"))).code).toBe("ENOENT");
    await fs.writeFile("/f", "x");
    expect((await errOf(fs.writeFile("/f/g", "x"))).code).toBe("ENOTDIR");
  });

  it("copyFile copies bytes and mode; COPYFILE_EXCL refuses an existing dest", async () => {
    const data = prng(300_000, 7);
    await fs.writeFile("/src", data);
    await fs.chmod("/src", 0o600);
    await fs.copyFile("/src", "/dst");
    expect((await fs.readFile("/dst")).equals(data)).toBe(true);
    expect((await fs.stat("/dst")).mode & 0o7777).toBe(0o600);
    await fs.writeFile("/other", "other");
    const e = await errOf(fs.copyFile("/src", "/other", C.COPYFILE_EXCL));
    expect(e.code).toBe("EEXIST");
    expect(await fs.readFile("/other", "utf8")).toBe("other");
    await fs.copyFile("/src", "/other");
    expect((await fs.readFile("/other")).equals(data)).toBe(true);
    // the copy is independent of the source
    await fs.writeFile("/src", "changed");
    expect((await fs.readFile("/dst")).equals(data)).toBe(true);
    expect((await errOf(fs.copyFile("/missing", "/x"))).code).toBe("ENOENT");
  });

  it("copyFile onto a dangling symlink creates the file it points at (as Linux); COPYFILE_EXCL gives EEXIST", async () => {
    await fs.writeFile("/s", "data");
    await fs.symlink("t", "/dangling");
    expect((await errOf(fs.copyFile("/s", "/dangling", C.COPYFILE_EXCL))).code).toBe("EEXIST");
    await fs.copyFile("/s", "/dangling");
    expect(await fs.readFile("/t", "utf8")).toBe("data");
    expect(await fs.readlink("/dangling")).toBe("t");
  });
});

describe("directories", () => {
  it("mkdir, EEXIST, rmdir ENOTEMPTY, readdir withFileTypes", async () => {
    await fs.mkdir("/d");
    expect((await errOf(fs.mkdir("/d"))).code).toBe("EEXIST");
    expect((await errOf(fs.mkdir("/x/y"))).code).toBe("ENOENT");
    await fs.writeFile("/d/f", "1");
    await fs.mkdir("/d/sub");
    await fs.symlink("f", "/d/ln");
    expect((await errOf(fs.rmdir("/d"))).code).toBe("ENOTEMPTY");
    expect(await fs.readdir("/d")).toEqual(["f", "ln", "sub"]);
    const ents = (await fs.readdir("/d", { withFileTypes: true })) as any[];
    expect(ents.map((e) => [e.name, e.isFile(), e.isDirectory(), e.isSymbolicLink()])).toEqual([
      ["f", true, false, false],
      ["ln", false, false, true],
      ["sub", false, true, false],
    ]);
    expect(ents[0].parentPath).toBe("/d");
    expect((await fs.stat("/d")).nlink).toBe(3);
    expect((await fs.stat("/")).nlink).toBe(3);
    expect((await errOf(fs.readdir("/d/f"))).code).toBe("ENOTDIR");
    expect((await errOf(fs.rmdir("/d/f"))).code).toBe("ENOTDIR");
    expect((await errOf(fs.unlink("/d/sub"))).code).toBe("EISDIR");
    await fs.rmdir("/d/sub");
    expect((await fs.stat("/d")).nlink).toBe(2);
  });

  it("mkdir recursive returns the first directory created", async () => {
    expect(await fs.mkdir("/a/b/c", { recursive: true })).toBe("/a");
    expect(await fs.mkdir("/a/b/c/d/e", { recursive: true })).toBe("/a/b/c/d");
    expect(await fs.mkdir("/a/b", { recursive: true })).toBeUndefined();
    await fs.writeFile("/a/file", "x");
    expect((await errOf(fs.mkdir("/a/file/z", { recursive: true }))).code).toBe("ENOTDIR");
    expect((await fs.stat("/a/b/c/d/e")).isDirectory()).toBe(true);
  });

  it("rm recursive and force", async () => {
    await fs.mkdir("/t/u/v", { recursive: true });
    await fs.writeFile("/t/u/v/f", "x");
    await fs.writeFile("/t/g", "y");
    await fs.symlink("/t/g", "/t/u/ln");
    expect((await errOf(fs.rm("/t"))).code).toBe("EISDIR");
    await fs.rm("/t", { recursive: true });
    expect((await errOf(fs.stat("/t"))).code).toBe("ENOENT");
    expect((await errOf(fs.rm("/t"))).code).toBe("ENOENT");
    await fs.rm("/t", { force: true });
    await fs.rm("/t", { recursive: true, force: true });
    expect(await fs.readdir("/")).toEqual([]);
  });
});

describe("rename", () => {
  it("over an existing file replaces it atomically", async () => {
    await fs.writeFile("/a", "A");
    await fs.writeFile("/b", "B");
    await fs.rename("/a", "/b");
    expect(await fs.readFile("/b", "utf8")).toBe("A");
    expect((await errOf(fs.stat("/a"))).code).toBe("ENOENT");
    expect(await fs.readdir("/")).toEqual(["b"]);
  });

  it("a directory over an empty directory; non-empty target is ENOTEMPTY", async () => {
    await fs.mkdir("/s");
    await fs.writeFile("/s/f", "x");
    await fs.mkdir("/empty");
    await fs.rename("/s", "/empty");
    expect(await fs.readFile("/empty/f", "utf8")).toBe("x");
    await fs.mkdir("/s2");
    const e = await errOf(fs.rename("/s2", "/empty"));
    expect(e.code).toBe("ENOTEMPTY");
    expect(e.syscall).toBe("rename");
    expect(e.path).toBe("/s2");
    expect(e.dest).toBe("/empty");
    expect((await fs.stat("/")).nlink).toBe(4);
  });

  it("a directory into its own subtree is EINVAL", async () => {
    await fs.mkdir("/a/b/c", { recursive: true });
    expect((await errOf(fs.rename("/a", "/a/b/c/a"))).code).toBe("EINVAL");
    expect((await errOf(fs.rename("/a", "/a/x"))).code).toBe("EINVAL");
    // a target that is an ancestor of the source: ENOTEMPTY, even for a file source (as Linux)
    await fs.writeFile("/a/b/c/f", "x");
    expect((await errOf(fs.rename("/a/b/c/f", "/a/b"))).code).toBe("ENOTEMPTY");
    expect((await errOf(fs.rename("/a/b/c", "/a"))).code).toBe("ENOTEMPTY");
    expect((await fs.stat("/a/b/c")).isDirectory()).toBe(true);
  });

  it("file over dir is EISDIR, dir over file is ENOTDIR, missing source ENOENT", async () => {
    await fs.writeFile("/f", "x");
    await fs.mkdir("/d");
    expect((await errOf(fs.rename("/f", "/d"))).code).toBe("EISDIR");
    expect((await errOf(fs.rename("/d", "/f"))).code).toBe("ENOTDIR");
    expect((await errOf(fs.rename("/nope", "/z"))).code).toBe("ENOENT");
    // moving a dir between parents fixes nlink
    await fs.mkdir("/p");
    await fs.rename("/d", "/p/d");
    expect((await fs.stat("/p")).nlink).toBe(3);
    expect((await fs.stat("/")).nlink).toBe(3);
  });
});

describe("symlinks", () => {
  it("follow, lstat, readlink, dangling, loops", async () => {
    await fs.writeFile("/target", "T");
    await fs.symlink("/target", "/abs");
    await fs.mkdir("/d");
    await fs.symlink("../target", "/d/rel");
    expect(await fs.readFile("/abs", "utf8")).toBe("T");
    expect(await fs.readFile("/d/rel", "utf8")).toBe("T");
    expect(await fs.readlink("/d/rel")).toBe("../target");
    const l = await fs.lstat("/abs");
    expect(l.isSymbolicLink()).toBe(true);
    expect(l.size).toBe("/target".length);
    expect((await fs.stat("/abs")).isFile()).toBe(true);
    expect((await errOf(fs.readlink("/target"))).code).toBe("EINVAL");

    await fs.symlink("/nowhere", "/dangling");
    expect((await fs.lstat("/dangling")).isSymbolicLink()).toBe(true);
    expect((await errOf(fs.stat("/dangling"))).code).toBe("ENOENT");
    // writing through a dangling symlink creates the target
    await fs.writeFile("/dangling", "made");
    expect(await fs.readFile("/nowhere", "utf8")).toBe("made");

    await fs.symlink("/loop2", "/loop1");
    await fs.symlink("/loop1", "/loop2");
    const e = await errOf(fs.stat("/loop1"));
    expect(e.code).toBe("ELOOP");
    expect(e.syscall).toBe("stat");
    expect((await errOf(fs.readFile("/loop1/x"))).code).toBe("ELOOP");
    await fs.symlink("self", "/self");
    expect((await errOf(fs.readFile("/self"))).code).toBe("ELOOP");
    expect((await errOf(fs.symlink("x", "/abs"))).code).toBe("EEXIST");
  });

  it("realpath resolves symlinks and ..", async () => {
    await fs.mkdir("/a/b", { recursive: true });
    await fs.writeFile("/a/b/f", "x");
    await fs.symlink("/a/b", "/lb");
    await fs.symlink("b/f", "/a/lf");
    expect(await fs.realpath("/lb/f")).toBe("/a/b/f");
    expect(await fs.realpath("/a/lf")).toBe("/a/b/f");
    expect(await fs.realpath("/a/b/../b/./f")).toBe("/a/b/f");
    expect(await fs.realpath("/")).toBe("/");
    expect((await errOf(fs.realpath("/a/missing"))).code).toBe("ENOENT");
  });
});

describe("hard links", () => {
  it("share content and count nlink", async () => {
    await fs.writeFile("/a", "one");
    await fs.link("/a", "/b");
    expect((await fs.stat("/a")).nlink).toBe(2);
    expect((await fs.stat("/a")).ino).toBe((await fs.stat("/b")).ino);
    await fs.writeFile("/b", "two");
    expect(await fs.readFile("/a", "utf8")).toBe("two");
    const h = await fs.open("/a", "r+");
    await h.write("X", 0);
    await h.close();
    expect(await fs.readFile("/b", "utf8")).toBe("Xwo");
    await fs.chmod("/b", 0o600);
    expect((await fs.stat("/a")).mode & 0o777).toBe(0o600);
    await fs.unlink("/a");
    expect((await fs.stat("/b")).nlink).toBe(1);
    expect(await fs.readFile("/b", "utf8")).toBe("Xwo");
    await fs.mkdir("/d");
    expect((await errOf(fs.link("/d", "/d2"))).code).toBe("EPERM");
    expect((await errOf(fs.link("/b", "/b"))).code).toBe("EEXIST");
    expect((await errOf(fs.link("/missing", "/m"))).code).toBe("ENOENT");
  });
});

describe("metadata", () => {
  it("modes and chmod", async () => {
    await fs.writeFile("/f", "x", { mode: 0o640 });
    expect((await fs.stat("/f")).mode & 0o7777).toBe(0o640);
    expect((await fs.stat("/f")).mode & S_IFMT).toBe(0o100000);
    await fs.chmod("/f", 0o4755);
    expect((await fs.stat("/f")).mode & 0o7777).toBe(0o4755);
    await fs.mkdir("/d", { mode: 0o700 });
    expect((await fs.stat("/d")).mode & 0o7777).toBe(0o700);
    expect((await fs.stat("/d")).mode & S_IFMT).toBe(0o040000);
  });

  it("chown as root", async () => {
    await fs.writeFile("/f", "x");
    await fs.chown("/f", 1234, 5678);
    const st = await fs.stat("/f");
    expect(st.uid).toBe(1234);
    expect(st.gid).toBe(5678);
    await fs.chown("/f", -1, 42);
    expect((await fs.stat("/f")).uid).toBe(1234);
    expect((await fs.stat("/f")).gid).toBe(42);
    await fs.symlink("/f", "/ln");
    await fs.lchown("/ln", 7, 8);
    expect((await fs.lstat("/ln")).uid).toBe(7);
    expect((await fs.stat("/ln")).uid).toBe(1234);
  });

  it("times in ns: utimes with bigint and Date; mtime/ctime move on write", async () => {
    await fs.writeFile("/f", "x");
    const at = 1_600_000_000_123_456_789n;
    const mt = 1_500_000_000_987_654_321n;
    await fs.utimes("/f", at, mt);
    let st: any = await fs.stat("/f", { bigint: true });
    expect(st.atimeNs).toBe(at);
    expect(st.mtimeNs).toBe(mt);
    expect(st.mtimeMs).toBe(mt / 1_000_000n);
    const ctimeAfterUtimes = st.ctimeNs;
    expect(ctimeAfterUtimes > mt).toBe(true);
    const d = new Date("2001-02-03T04:05:06.789Z");
    await fs.utimes("/f", d, d);
    st = await fs.stat("/f", { bigint: true });
    expect(st.mtimeNs).toBe(BigInt(d.getTime()) * 1_000_000n);
    expect(st.atimeNs).toBe(BigInt(d.getTime()) * 1_000_000n);
    const plain = await fs.stat("/f");
    expect(plain.mtime.getTime()).toBe(d.getTime());
    await fs.utimes("/f", 1234.5, 1234.5);
    st = await fs.stat("/f", { bigint: true });
    expect(st.mtimeNs).toBe(1_234_500_000_000n);
    // a write moves mtime and ctime to now (well after 2001)
    await fs.appendFile("/f", "y");
    st = await fs.stat("/f", { bigint: true });
    expect(st.mtimeNs > BigInt(d.getTime()) * 1_000_000n).toBe(true);
    expect(st.ctimeNs >= st.mtimeNs).toBe(true);
    // chmod moves ctime but not mtime
    const m0 = st.mtimeNs;
    await fs.utimes("/f", at, mt);
    await fs.chmod("/f", 0o600);
    st = await fs.stat("/f", { bigint: true });
    expect(st.mtimeNs).toBe(mt);
    expect(st.ctimeNs >= m0).toBe(true);
  });

  it("futimens after writes on an open file survives the commit at close (tar: write, futimens, close)", async () => {
    const h = await fs.open("/t", "w");
    await h.write("data");
    const mt = 1_049_522_828_000_000_000n;
    await h.utimes(mt as any, mt as any);
    await h.close();
    const st: any = await fs.stat("/t", { bigint: true });
    expect(st.mtimeNs).toBe(mt);
    expect((await fs.readFile("/t")).toString()).toBe("data");
  });

  it("access", async () => {
    await fs.writeFile("/f", "x", { mode: 0o644 });
    await fs.access("/f");
    await fs.access("/f", C.R_OK | C.W_OK);
    // root: X_OK needs some execute bit
    expect((await errOf(fs.access("/f", C.X_OK))).code).toBe("EACCES");
    await fs.chmod("/f", 0o744);
    await fs.access("/f", C.X_OK);
    const e = await errOf(fs.access("/missing"));
    expect(e.code).toBe("ENOENT");
    expect(e.syscall).toBe("access");
  });

  it("xattrs: set/get/list/remove with XATTR_CREATE and XATTR_REPLACE", async () => {
    await fs.writeFile("/f", "x");
    await fs.setxattr("/f", "user.a", "1");
    await fs.setxattr("/f", "user.b", Buffer.from([0, 1, 2]));
    expect((await fs.getxattr("/f", "user.a")).toString()).toBe("1");
    expect(await fs.getxattr("/f", "user.b")).toEqual(Buffer.from([0, 1, 2]));
    expect(await fs.listxattr("/f")).toEqual(["user.a", "user.b"]);
    expect((await errOf(fs.setxattr("/f", "user.a", "2", { flags: 1 }))).code).toBe("EEXIST");
    expect((await errOf(fs.setxattr("/f", "user.c", "2", { flags: 2 }))).code).toBe("ENODATA");
    await fs.setxattr("/f", "user.a", "22", { flags: 2 });
    await fs.setxattr("/f", "user.c", "3", { flags: 1 });
    expect((await fs.getxattr("/f", "user.a")).toString()).toBe("22");
    await fs.removexattr("/f", "user.b");
    expect(await fs.listxattr("/f")).toEqual(["user.a", "user.c"]);
    expect((await errOf(fs.getxattr("/f", "user.b"))).code).toBe("ENODATA");
    expect((await errOf(fs.removexattr("/f", "user.b"))).code).toBe("ENODATA");
    expect((await errOf(fs.getxattr("/f", "bogus"))).code).toBe("ENOTSUP");
    expect((await errOf(fs.getxattr("/missing", "user.a"))).code).toBe("ENOENT");
    // xattrs survive reopen
    const dir = afs.store.dir;
    afs.closeSync();
    afs = await AgentFS.open(dir);
    fs = afs.fs;
    expect(await fs.listxattr("/f")).toEqual(["user.a", "user.c"]);
    expect((await fs.getxattr("/f", "user.c")).toString()).toBe("3");
  });
});

describe("sparse files", () => {
  it("one byte at 1 GiB: size right, reads zero, stores almost nothing", async () => {
    const GiB = 1024 ** 3;
    const h = await fs.open("/sparse", "w");
    await h.write(Buffer.from([0x5a]), 0, 1, GiB);
    await h.close();
    const st = await fs.stat("/sparse");
    expect(st.size).toBe(GiB + 1);
    expect(st.blocks).toBeLessThan(1024);
    const r = await fs.open("/sparse", "r");
    const buf = Buffer.alloc(1 << 16, 0xff);
    let { bytesRead } = await r.read(buf, 0, buf.length, 12345);
    expect(bytesRead).toBe(buf.length);
    expect(buf.every((x) => x === 0)).toBe(true);
    buf.fill(0xff);
    ({ bytesRead } = await r.read(buf, 0, 16, GiB - 8));
    expect(bytesRead).toBe(9);
    expect([...buf.subarray(0, 9)]).toEqual([0, 0, 0, 0, 0, 0, 0, 0, 0x5a]);
    await r.close();
    const s = await afs.stats();
    expect(s.store.storedBytes).toBeLessThan(64 * 1024);
    expect(s.store.uniqueBytes).toBeLessThan(512 * 1024);
    // growing by truncate stores nothing either
    await fs.truncate("/sparse", 4 * GiB);
    expect((await fs.stat("/sparse")).size).toBe(4 * GiB);
    expect((await afs.stats()).store.storedBytes).toBeLessThan(64 * 1024);
  });
});

describe("unlink of an open file", () => {
  it("stays readable through its handle until close, then is gone", async () => {
    const data = prng(200_000, 3);
    await fs.writeFile("/f", data);
    const h = await fs.open("/f", "r");
    await fs.unlink("/f");
    expect((await errOf(fs.stat("/f"))).code).toBe("ENOENT");
    expect(await fs.readdir("/")).toEqual([]);
    const { bytesRead, buffer } = await h.read(Buffer.alloc(data.length), 0, data.length, 0);
    expect(bytesRead).toBe(data.length);
    expect(buffer.equals(data)).toBe(true);
    expect((await h.stat()).size).toBe(data.length);
    await h.close();
    expect((await errOf(fs.stat("/f"))).code).toBe("ENOENT");
    // a new file with the same name is a different, empty file
    await fs.writeFile("/f", "new");
    expect(await fs.readFile("/f", "utf8")).toBe("new");
  });

  it("an open writer's data survives unlink for its reads; nothing is committed after", async () => {
    const h = await fs.open("/w", "w+");
    await h.write("hello");
    await fs.unlink("/w");
    await h.write(" world");
    const { buffer, bytesRead } = await h.read(Buffer.alloc(32), 0, 32, 0);
    expect(buffer.subarray(0, bytesRead).toString()).toBe("hello world");
    await h.close();
    expect((await errOf(fs.stat("/w"))).code).toBe("ENOENT");
    expect((await afs.fsck()).ok).toBe(true);
  });
});

describe("names and paths", () => {
  it("255-byte names ok, 256 ENAMETOOLONG; 4096-byte paths ENAMETOOLONG", async () => {
    const n255 = "n".repeat(255);
    await fs.writeFile("/" + n255, "ok");
    expect(await fs.readdir("/")).toEqual([n255]);
    const e = await errOf(fs.writeFile("/" + "n".repeat(256), "x"));
    expect(e.code).toBe("ENAMETOOLONG");
    // multibyte: 128 × "é" (2 bytes each) = 256 bytes
    expect((await errOf(fs.mkdir("/" + "é".repeat(128)))).code).toBe("ENAMETOOLONG");
    await fs.mkdir("/" + "é".repeat(127));
    const long = "/" + Array.from({ length: 40 }, () => "d".repeat(100)).join("/") + "/" + "x".repeat(100);
    expect(Buffer.byteLength(long)).toBeGreaterThanOrEqual(4096);
    expect((await errOf(fs.stat(long))).code).toBe("ENAMETOOLONG");
    expect((await errOf(fs.writeFile(long, "x"))).code).toBe("ENAMETOOLONG");
    expect((await errOf(fs.stat("/" + "a".repeat(4095)))).code).toBe("ENAMETOOLONG");
  });

  it("NUL in a path is EINVAL", async () => {
    for (const op of [() => fs.writeFile("/a\0b", "x"), () => fs.stat("/a\0"), () => fs.mkdir("/\0"), () => fs.readdir("/x\0/y")]) {
      const e = await errOf(op);
      expect(e.code).toBe("EINVAL");
    }
    expect(await fs.readdir("/")).toEqual([]);
  });

  it('".." cannot escape the root', async () => {
    await fs.writeFile("/f", "root-f");
    expect(await fs.readFile("/../../f", "utf8")).toBe("root-f");
    expect(await fs.readFile("../../../f", "utf8")).toBe("root-f");
    await fs.mkdir("/d");
    expect(await fs.readFile("/d/../../../../f", "utf8")).toBe("root-f");
    await fs.writeFile("/../../escape", "x");
    expect(await fs.readdir("/")).toEqual(["d", "escape", "f"]);
    expect(await fs.realpath("/../..")).toBe("/");
    await fs.symlink("../../../../../f", "/d/up");
    expect(await fs.readFile("/d/up", "utf8")).toBe("root-f");
    expect(await fs.readdir("/..")).toEqual(["d", "escape", "f"]);
  });

  it("errors look like Node's", async () => {
    const e = await errOf(fs.readFile("/missing/file"));
    expect(e).toBeInstanceOf(Error);
    expect(e.code).toBe("ENOENT");
    expect(e.errno).toBe(-2);
    expect(e.syscall).toBe("open");
    expect(e.path).toBe("/missing/file");
    expect(e.message).toMatch(/^ENOENT: no such file or directory, open '\/missing\/file'/);
    const e2 = await errOf(fs.mkdir("/"));
    expect(e2.code).toBe("EEXIST");
    expect(e2.errno).toBe(-17);
    expect(e2.syscall).toBe("mkdir");
    const e3 = await errOf(fs.readdir("/nope"));
    expect(e3.syscall).toBe("scandir");
    expect(e3.errno).toBe(-2);
  });
});

describe("content store", () => {
  it("20 MiB pseudo-random file round-trips; a 4-byte edit stores only a few chunks", async () => {
    const data = prng(20 * 1024 * 1024, 12345);
    await fs.writeFile("/big", data);
    const back = (await fs.readFile("/big")) as Buffer;
    expect(back.length).toBe(data.length);
    expect(back.equals(data)).toBe(true);
    const before = (await afs.stats()).store;
    expect(before.uniqueBytes).toBeGreaterThanOrEqual(data.length);
    expect(before.uniqueBytes).toBeLessThan(data.length + 1024 * 1024);

    const h = await fs.open("/big", "r+");
    await h.write(Buffer.from("EDIT"), 0, 4, 10 * 1024 * 1024 + 7);
    await h.close();
    const after = (await afs.stats()).store;
    expect(after.uniqueBytes - before.uniqueBytes).toBeGreaterThan(0);
    expect(after.uniqueBytes - before.uniqueBytes).toBeLessThan(600 * 1024);
    data.write("EDIT", 10 * 1024 * 1024 + 7);
    expect(((await fs.readFile("/big")) as Buffer).equals(data)).toBe(true);
    // reopening reads from SQLite, not from caches
    const dir = afs.store.dir;
    afs.closeSync();
    afs = await AgentFS.open(dir);
    fs = afs.fs;
    expect(((await fs.readFile("/big")) as Buffer).equals(data)).toBe(true);
  });

  it("identical data in two files is stored once", async () => {
    const data = prng(3 * 1024 * 1024, 99);
    await fs.writeFile("/one", data);
    const s1 = (await afs.stats()).store;
    await fs.mkdir("/sub");
    await fs.writeFile("/sub/two", data);
    const s2 = (await afs.stats()).store;
    expect(s2.uniqueBytes).toBe(s1.uniqueBytes);
    expect(s2.objects).toBe(s1.objects);
    expect(s2.referencedBytes).toBe(2 * s1.referencedBytes);
    expect(s2.dedupRatio).toBeGreaterThan(1.9);
  });

  it("compressible data is stored compressed, incompressible raw", async () => {
    const text = Buffer.from("the quick brown fox jumps over the lazy dog\n".repeat(50_000));
    await fs.writeFile("/text", text);
    const s1 = (await afs.stats()).store;
    expect(s1.uniqueBytes).toBe(text.length);
    expect(s1.storedBytes).toBeLessThan(s1.uniqueBytes / 10);
    const rnd = prng(2 * 1024 * 1024, 5);
    await fs.writeFile("/rnd", rnd);
    const s2 = (await afs.stats()).store;
    expect(s2.uniqueBytes - s1.uniqueBytes).toBe(rnd.length);
    expect(s2.storedBytes - s1.storedBytes).toBe(rnd.length); // raw: not larger, not smaller
    const rows = afs.store.manifest.db.prepare("SELECT codec, count(*) AS n FROM objects GROUP BY codec ORDER BY codec").all() as any[];
    expect(rows.map((r) => r.codec)).toEqual([0, 1]);
    expect((await fs.readFile("/text")).equals(text)).toBe(true);
    expect((await fs.readFile("/rnd")).equals(rnd)).toBe(true);
  });
});
