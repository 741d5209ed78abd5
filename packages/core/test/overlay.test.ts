/**
 * Overlay branches over a real host directory under /dev/shm: pass-through
 * reads, copy-up, metadata-only changes, whiteouts, renames of lower
 * directories, merged readdir, stable inode numbers, snapshots, diff against
 * the host, and a differential property test against a real copy of the
 * host directory. Every test checks the host directory was never written.
 */
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { execFileSync } from "node:child_process";
import { existsSync, linkSync, lstatSync, mkdirSync, readdirSync, readFileSync, readlinkSync, symlinkSync, writeFileSync, chmodSync } from "node:fs";
import { join } from "node:path";
import { createHash } from "node:crypto";
import fc from "fast-check";
import { getAttributeSync, listAttributesSync, setAttributeSync } from "@napi-rs/xattr";
import { AgentFS, LOWER_INO_BASE, lowerIno } from "../src/index.js";
import { errOf, prng, tempDir } from "./helpers.js";
import { apply, fsOp, snapshotTree, type Op, type Side } from "./model.js";

const SHM = existsSync("/dev/shm") ? "/dev/shm" : undefined;
let oldUmask = 0;
beforeAll(() => {
  oldUmask = process.umask(0o022);
});
afterAll(() => {
  process.umask(oldUmask);
});

/** Everything observable about a host tree except atimes: type, mode, owner, size, nlink, ino, mtime, ctime, bytes, link targets. */
function hostImage(root: string): Record<string, string> {
  const out: Record<string, string> = {};
  const walk = (rel: string) => {
    const abs = rel ? join(root, rel) : root;
    const st = lstatSync(abs, { bigint: true });
    let extra = "";
    if (st.isFile()) extra = createHash("sha256").update(readFileSync(abs)).digest("hex");
    else if (st.isSymbolicLink()) extra = readlinkSync(abs);
    out[rel || "/"] = [st.mode, st.uid, st.gid, st.size, st.nlink, st.ino, st.mtimeNs, st.ctimeNs, extra].join(" ");
    if (st.isDirectory()) for (const n of readdirSync(abs).sort()) walk(rel ? `${rel}/${n}` : n);
  };
  walk("");
  return out;
}

/** A host tree: /f.txt, /big.bin (300 KiB), /d/x, /d/sub/y, /d/sub/z, /link → f.txt, /hard ↔ /f.txt, /empty/. */
function makeLower(dir: string): void {
  mkdirSync(join(dir, "d", "sub"), { recursive: true });
  mkdirSync(join(dir, "empty"));
  writeFileSync(join(dir, "f.txt"), "hello lower\n");
  writeFileSync(join(dir, "big.bin"), prng(300 * 1024, 7));
  writeFileSync(join(dir, "d", "x"), "x-data");
  writeFileSync(join(dir, "d", "sub", "y"), "y-data");
  writeFileSync(join(dir, "d", "sub", "z"), "z-data");
  symlinkSync("f.txt", join(dir, "link"));
  linkSync(join(dir, "f.txt"), join(dir, "hard"));
  chmodSync(dir, 0o755);
}

async function withOverlay(fn: (afs: AgentFS, lower: string, storeDir: string) => Promise<void>): Promise<void> {
  const t = tempDir("agentfs-overlay-", SHM);
  const lower = join(t.dir, "lower");
  mkdirSync(lower);
  makeLower(lower);
  const before = hostImage(lower);
  const storeDir = join(t.dir, "store");
  const afs = await AgentFS.open(storeDir, { create: true, branch: "ov", lower, umask: 0o022 });
  try {
    await fn(afs, lower, storeDir);
    expect(hostImage(lower), "the host directory must never be written").toEqual(before);
  } finally {
    afs.closeSync();
    t.cleanup();
  }
}

/** As withOverlay, for tests that mean to write the host directory (applyToLower). */
async function withOverlayNoCheck(fn: (afs: AgentFS, lower: string) => Promise<void>): Promise<void> {
  const t = tempDir("agentfs-overlay-", SHM);
  const lower = join(t.dir, "lower");
  mkdirSync(lower);
  makeLower(lower);
  const afs = await AgentFS.open(join(t.dir, "store"), { create: true, branch: "ov", lower, umask: 0o022 });
  try {
    await fn(afs, lower);
  } finally {
    afs.closeSync();
    t.cleanup();
  }
}

describe.skipIf(!SHM)("overlay over a host directory", () => {
  it("pass-through reads: contents, stat, readdir, symlinks and hard links come from the host", async () => {
    await withOverlay(async (afs, lower) => {
      expect(await afs.fs.readFile("/f.txt", "utf8")).toBe("hello lower\n");
      expect((await afs.fs.readFile("/big.bin")).equals(prng(300 * 1024, 7))).toBe(true);
      expect(await afs.fs.readFile("/d/sub/y", "utf8")).toBe("y-data");
      expect((await afs.fs.readdir("/")).sort()).toEqual(["big.bin", "d", "empty", "f.txt", "hard", "link"]);
      expect(await afs.fs.readlink("/link")).toBe("f.txt");
      expect(await afs.fs.readFile("/link", "utf8")).toBe("hello lower\n");
      const a = await afs.fs.stat("/f.txt");
      const h = await afs.fs.stat("/hard");
      const host = lstatSync(join(lower, "f.txt"));
      expect(a.ino).toBe(h.ino); // one inode per host inode
      expect(a.ino).toBe(lowerIno(host.ino));
      expect(a.ino).toBeGreaterThanOrEqual(LOWER_INO_BASE);
      expect(a.ino % 2 ** 32).toBeGreaterThanOrEqual(2 ** 31); // apart from allocated numbers in a 32-bit fold
      expect(a.nlink).toBe(2);
      expect(a.size).toBe(host.size);
      expect(a.mode).toBe(host.mode);
      expect(a.mtimeMs).toBe(host.mtimeMs);
      expect(a.rdev).toBe(0);
      const st = await afs.stats();
      expect(st.store.objects).toBe(0); // nothing was imported
    });
  });

  it("copy-up on write: the branch sees the new bytes, the host file is unchanged", async () => {
    await withOverlay(async (afs, lower) => {
      await afs.fs.appendFile("/f.txt", "more\n");
      expect(await afs.fs.readFile("/f.txt", "utf8")).toBe("hello lower\nmore\n");
      expect(await afs.fs.readFile("/hard", "utf8")).toBe("hello lower\nmore\n"); // the hard link is the same inode
      expect(readFileSync(join(lower, "f.txt"), "utf8")).toBe("hello lower\n");
      const fh = await afs.fs.open("/big.bin", "r+");
      await fh.write(Buffer.from("XY"), 0, 2, 100_000);
      await fh.close();
      const want = prng(300 * 1024, 7);
      want.write("XY", 100_000);
      expect((await afs.fs.readFile("/big.bin")).equals(want)).toBe(true);
      await afs.fs.truncate("/d/x", 2);
      expect(await afs.fs.readFile("/d/x", "utf8")).toBe("x-");
      await afs.fs.writeFile("/d/sub/z", "replaced");
      expect(await afs.fs.readFile("/d/sub/z", "utf8")).toBe("replaced");
      await afs.fs.copyFile("/d/sub/y", "/copy");
      expect(await afs.fs.readFile("/copy", "utf8")).toBe("y-data");
      // O_TRUNC of a lower file replaces its bytes without importing them
      await afs.fs.writeFile("/d/sub/y", "");
      expect((await afs.fs.stat("/d/sub/y")).size).toBe(0);
      expect(await afs.fs.readFile("/d/sub/y", "utf8")).toBe("");
    });
  });

  it("host user xattrs show through; changing or removing them changes only the branch", async () => {
    const t = tempDir("agentfs-overlay-", SHM);
    const lower = join(t.dir, "lower");
    mkdirSync(join(lower, "d"), { recursive: true });
    writeFileSync(join(lower, "f"), "f");
    setAttributeSync(join(lower, "f"), "user.a", Buffer.from("1"));
    setAttributeSync(join(lower, "f"), "user.b", Buffer.from(""));
    setAttributeSync(join(lower, "d"), "user.dir", Buffer.from("yes"));
    const before = hostImage(lower);
    const afs = await AgentFS.open(join(t.dir, "store"), { create: true, branch: "ov", lower, umask: 0o022 });
    try {
      expect((await afs.fs.listxattr("/f")).sort()).toEqual(["user.a", "user.b"]);
      expect((await afs.fs.getxattr("/f", "user.a")).toString()).toBe("1");
      expect((await afs.fs.getxattr("/f", "user.b")).length).toBe(0);
      expect((await afs.fs.getxattr("/d", "user.dir")).toString()).toBe("yes");
      await afs.fs.removexattr("/f", "user.a");
      await afs.fs.setxattr("/d", "user.dir", Buffer.from("no"));
      expect(await afs.fs.listxattr("/f")).toEqual(["user.b"]);
      expect((await afs.fs.getxattr("/d", "user.dir")).toString()).toBe("no");
      expect(listAttributesSync(join(lower, "f")).sort()).toEqual(["user.a", "user.b"]);
      expect(getAttributeSync(join(lower, "d"), "user.dir")?.toString()).toBe("yes");
      expect(hostImage(lower)).toEqual(before);
    } finally {
      afs.closeSync();
      t.cleanup();
    }
  });

  it("metadata-only changes (chmod, chown, utimes, xattr) copy no data", async () => {
    await withOverlay(async (afs, lower) => {
      await afs.fs.chmod("/big.bin", 0o600);
      await afs.fs.chown("/big.bin", 1234, 5678);
      await afs.fs.utimes("/big.bin", 1_000, 2_000);
      await afs.fs.setxattr("/big.bin", "user.k", Buffer.from("v"));
      const st = await afs.fs.stat("/big.bin");
      expect(st.mode & 0o7777).toBe(0o600);
      expect([st.uid, st.gid]).toEqual([1234, 5678]);
      expect(st.mtimeMs).toBe(2_000_000);
      expect(st.size).toBe(300 * 1024);
      expect((await afs.fs.readFile("/big.bin")).equals(prng(300 * 1024, 7))).toBe(true);
      const s = await afs.stats();
      expect(s.store.objects).toBe(0);
      expect(s.store.storedBytes ?? 0).toBe(0);
      expect(lstatSync(join(lower, "big.bin")).mode & 0o7777).toBe(0o644);
      // a later data write copies the bytes up and keeps the new metadata
      await afs.fs.appendFile("/big.bin", "!");
      const st2 = await afs.fs.stat("/big.bin");
      expect([st2.mode & 0o7777, st2.uid, st2.size]).toEqual([0o600, 1234, 300 * 1024 + 1]);
      expect((await afs.stats()).store.objects).toBeGreaterThan(0);
    });
  });

  it("unlink and rmdir of lower entries leave whiteouts (also across reopen)", async () => {
    await withOverlay(async (afs, lower, storeDir) => {
      await afs.fs.unlink("/f.txt");
      expect((await errOf(afs.fs.stat("/f.txt"))).code).toBe("ENOENT");
      expect((await afs.fs.stat("/hard")).nlink).toBe(1);
      await afs.fs.rmdir("/empty");
      expect((await errOf(afs.fs.rmdir("/d"))).code).toBe("ENOTEMPTY");
      await afs.fs.rm("/d", { recursive: true });
      expect((await afs.fs.readdir("/")).sort()).toEqual(["big.bin", "hard", "link"]);
      expect((await errOf(afs.fs.readFile("/link"))).code).toBe("ENOENT"); // dangling now
      // a new directory in place of a removed lower one is empty (opaque)
      await afs.fs.mkdir("/d");
      expect(await afs.fs.readdir("/d")).toEqual([]);
      afs.closeSync();
      const again = await AgentFS.open(storeDir, { branch: "ov" });
      try {
        expect((await again.fs.readdir("/")).sort()).toEqual(["big.bin", "d", "hard", "link"]);
        expect(await again.fs.readdir("/d")).toEqual([]);
      } finally {
        again.closeSync();
      }
      expect(existsSync(join(lower, "f.txt")) && existsSync(join(lower, "d", "sub", "y"))).toBe(true);
    });
  });

  it("rename of a lower directory keeps its lower children reachable, also after reopen", async () => {
    await withOverlay(async (afs, _lower, storeDir) => {
      const ino = (await afs.fs.stat("/d/sub/y")).ino;
      await afs.fs.rename("/d", "/moved");
      await afs.fs.rename("/moved/sub", "/sub2");
      expect((await errOf(afs.fs.stat("/d"))).code).toBe("ENOENT");
      expect(await afs.fs.readFile("/moved/x", "utf8")).toBe("x-data");
      expect((await afs.fs.readdir("/sub2")).sort()).toEqual(["y", "z"]);
      expect((await afs.fs.stat("/sub2/y")).ino).toBe(ino);
      afs.closeSync();
      const again = await AgentFS.open(storeDir, { branch: "ov" });
      try {
        expect(await again.fs.readFile("/sub2/y", "utf8")).toBe("y-data");
        expect(await again.fs.readFile("/moved/x", "utf8")).toBe("x-data");
        expect((await again.fs.readdir("/moved")).sort()).toEqual(["x"]);
        expect((await again.fs.stat("/sub2/y")).ino).toBe(ino);
        expect((await again.fsck()).problems).toEqual([]);
      } finally {
        again.closeSync();
      }
    });
  });

  it("a second connection sees a renamed lower directory's children (paths are persisted with the rename)", async () => {
    await withOverlay(async (afs, _lower, storeDir) => {
      const other = await AgentFS.open(storeDir, { branch: "ov" });
      try {
        await afs.fs.rename("/d/sub", "/s2");
        expect((await other.fs.readdir("/s2")).sort()).toEqual(["y", "z"]);
        expect(await other.fs.readFile("/s2/y", "utf8")).toBe("y-data");
        await other.fs.chmod("/s2/z", 0o600);
        expect((await afs.fs.stat("/s2/z")).mode & 0o777).toBe(0o600);
      } finally {
        other.closeSync();
      }
    });
  });

  it("readdir merges host entries with new ones; whiteouts hide", async () => {
    await withOverlay(async (afs) => {
      await afs.fs.writeFile("/d/new", "n");
      await afs.fs.unlink("/d/x");
      await afs.fs.mkdir("/d/sub/inner");
      expect((await afs.fs.readdir("/d")).sort()).toEqual(["new", "sub"]);
      expect((await afs.fs.readdir("/d/sub")).sort()).toEqual(["inner", "y", "z"]);
      const typed = await afs.fs.readdir("/", { withFileTypes: true });
      const kinds = Object.fromEntries(typed.map((e: any) => [e.name, e.isDirectory() ? "d" : e.isSymbolicLink() ? "l" : "f"]));
      expect(kinds).toEqual({ "big.bin": "f", d: "d", empty: "d", "f.txt": "f", hard: "f", link: "l" });
      expect((await afs.fs.stat("/d/sub")).nlink).toBe(3);
    });
  });

  it("inode numbers of lower entries are stable across reopen and unique in the tree", async () => {
    await withOverlay(async (afs, _lower, storeDir) => {
      const paths = ["/", "/f.txt", "/big.bin", "/d", "/d/x", "/d/sub", "/d/sub/y", "/d/sub/z", "/link", "/empty"];
      const before = await Promise.all(paths.map(async (p) => (await afs.fs.lstat(p)).ino));
      expect(new Set(before).size).toBe(paths.length);
      await afs.fs.writeFile("/n", "new");
      expect(before).not.toContain((await afs.fs.stat("/n")).ino);
      afs.closeSync();
      const again = await AgentFS.open(storeDir, { branch: "ov" });
      try {
        expect(await Promise.all(paths.map(async (p) => (await again.fs.lstat(p)).ino))).toEqual(before);
      } finally {
        again.closeSync();
      }
    });
  });

  it("snapshots freeze what was changed here; untouched lower files are read live from the host", async () => {
    const t = tempDir("agentfs-overlay-", SHM);
    try {
      const lower = join(t.dir, "lower");
      mkdirSync(lower);
      makeLower(lower);
      const afs = await AgentFS.open(join(t.dir, "store"), { create: true, branch: "ov", lower });
      await afs.fs.writeFile("/d/x", "changed here");
      await afs.snapshot("s1");
      await afs.fs.writeFile("/d/x", "changed again");
      await afs.fs.unlink("/f.txt");
      const s1 = await AgentFS.open(join(t.dir, "store"), { snapshot: "s1" });
      expect(await s1.fs.readFile("/d/x", "utf8")).toBe("changed here");
      expect(await s1.fs.readFile("/f.txt", "utf8")).toBe("hello lower\n");
      expect((await errOf(s1.fs.writeFile("/d/x", "no"))).code).toBe("EROFS");
      // The host changes underneath (by someone else): the snapshot shows the live host bytes of untouched files.
      writeFileSync(join(lower, "d", "sub", "y"), "host changed");
      expect(await s1.fs.readFile("/d/sub/y", "utf8")).toBe("host changed");
      expect(await s1.fs.readFile("/d/x", "utf8")).toBe("changed here");
      // a branch from the snapshot sits over the same host directory
      await afs.branch("b2", { snapshot: "s1" });
      const b2 = await AgentFS.open(join(t.dir, "store"), { branch: "b2" });
      expect(await b2.fs.readFile("/f.txt", "utf8")).toBe("hello lower\n");
      expect(b2.store.lowerDirOf({ branch: "b2" })).toBe(lower);
      b2.closeSync();
      s1.closeSync();
      afs.closeSync();
    } finally {
      t.cleanup();
    }
  });

  it("diffLower lists what changed against the host directory", async () => {
    await withOverlay(async (afs) => {
      expect(await afs.diffLower()).toEqual([]);
      // a change deep in an untouched lower directory is found (its host parents lead to it)
      await afs.fs.writeFile("/d/sub/new", "n");
      expect((await afs.diffLower()).map((e) => [e.path, e.change])).toEqual([["/d/sub/new", "added"]]);
      await afs.fs.unlink("/d/sub/new");
      await afs.fs.writeFile("/d/x", "new bytes");
      await afs.fs.chmod("/big.bin", 0o600);
      await afs.fs.unlink("/f.txt");
      await afs.fs.mkdir("/nd");
      await afs.fs.writeFile("/nd/a", "a");
      await afs.fs.rename("/d/sub", "/sub");
      const d = await afs.diffLower();
      expect(d.map((e) => [e.path, e.change, ...(e.what ?? [])])).toEqual([
        ["/big.bin", "modified", "mode"],
        ["/d/sub", "deleted"],
        ["/d/sub/y", "deleted"],
        ["/d/sub/z", "deleted"],
        ["/d/x", "modified", "content"],
        ["/f.txt", "deleted"],
        ["/nd", "added"],
        ["/nd/a", "added"],
        ["/sub", "added"],
        ["/sub/y", "added"],
        ["/sub/z", "added"],
      ]);
    });
  });

  it("applyToLower writes the branch's changes to the host directory, atomically per file; reset makes the branch read the host afresh", async () => {
    await withOverlayNoCheck(async (afs, lower) => {
      await afs.fs.writeFile("/d/x", "new bytes");
      await afs.fs.chmod("/big.bin", 0o600);
      await afs.fs.unlink("/f.txt");
      await afs.fs.mkdir("/nd");
      await afs.fs.writeFile("/nd/a", prng(100_000, 3));
      await afs.fs.symlink("nd/a", "/nl");
      await afs.fs.rename("/d/sub", "/sub");
      await afs.fs.rm("/empty", { recursive: true });
      await afs.fs.utimes("/nd/a", 5, 6);
      const want = await snapshotTree({ kind: "agentfs", fs: afs.fs });
      const rep = await afs.applyToLower({ reset: true });
      expect(rep.applied.length).toBeGreaterThan(0);
      expect(rep.skipped).toEqual([]);
      expect(await snapshotTree({ kind: "host", root: lower })).toEqual(want);
      expect(readdirSync(lower).filter((n) => n.startsWith(".agentfs-"))).toEqual([]);
      expect(lstatSync(join(lower, "nd", "a")).mtimeMs).toBe(6000);
      expect(await afs.diffLower()).toEqual([]);
      expect(await snapshotTree({ kind: "agentfs", fs: afs.fs })).toEqual(want);
      expect((await afs.stats()).tree.files).toBeGreaterThan(0);
    });
  });

  it("applyToLower writes user.* xattr changes to the host: set, changed and removed, on replaced files, new entries and entries changed only in their xattrs", async () => {
    const userXattrs = (abs: string) =>
      Object.fromEntries(listAttributesSync(abs).filter((n) => n.startsWith("user.")).sort().map((n) => [n, getAttributeSync(abs, n)!.toString()]));
    await withOverlayNoCheck(async (afs, lower) => {
      const f = join(lower, "f.txt");
      setAttributeSync(f, "user.keep", Buffer.from("1"));
      setAttributeSync(f, "user.gone", Buffer.from("x"));
      setAttributeSync(f, "user.same", Buffer.from("s"));
      setAttributeSync(join(lower, "d", "x"), "user.x", Buffer.from("1"));
      setAttributeSync(join(lower, "d", "sub", "y"), "user.y", Buffer.from("1"));
      setAttributeSync(join(lower, "d"), "user.dir", Buffer.from("old"));
      setAttributeSync(join(lower, "empty"), "user.e", Buffer.from("1"));
      const fIno = lstatSync(f).ino;
      // Only xattrs change (in place): one changed, one removed, one added, one kept.
      await afs.fs.setxattr("/f.txt", "user.keep", Buffer.from("2"));
      await afs.fs.removexattr("/f.txt", "user.gone");
      await afs.fs.setxattr("/f.txt", "user.new", Buffer.from("n"));
      await afs.fs.setxattr("/d", "user.dir", Buffer.from("new"));
      // Replaced files: the host file's xattrs are the branch's, unchanged or changed.
      await afs.fs.writeFile("/d/x", "new bytes");
      await afs.fs.writeFile("/d/sub/y", "new y");
      await afs.fs.setxattr("/d/sub/y", "user.y", Buffer.from("2"));
      // New entries.
      await afs.fs.mkdir("/nd");
      await afs.fs.setxattr("/nd", "user.nd", Buffer.from("1"));
      await afs.fs.writeFile("/nd/a", "a");
      await afs.fs.setxattr("/nd/a", "user.a", Buffer.from("A"));
      // A lower directory renamed: recreated on the host after its old place is deleted, with its xattrs.
      await afs.fs.rename("/empty", "/moved");
      // Outside user.*: not written to the host, reported.
      await afs.fs.setxattr("/big.bin", "security.agentfs-test", Buffer.from("1"));

      const rep = await afs.applyToLower({ reset: true });
      expect(rep.skipped).toEqual([{ path: "/big.bin", reason: "xattrs" }]);
      expect(userXattrs(f)).toEqual({ "user.keep": "2", "user.new": "n", "user.same": "s" });
      expect(lstatSync(f).ino).toBe(fIno); // changed in place, not replaced
      expect(userXattrs(join(lower, "d"))).toEqual({ "user.dir": "new" });
      expect(readFileSync(join(lower, "d", "x"), "utf8")).toBe("new bytes");
      expect(userXattrs(join(lower, "d", "x"))).toEqual({ "user.x": "1" });
      expect(readFileSync(join(lower, "d", "sub", "y"), "utf8")).toBe("new y");
      expect(userXattrs(join(lower, "d", "sub", "y"))).toEqual({ "user.y": "2" });
      expect(userXattrs(join(lower, "nd"))).toEqual({ "user.nd": "1" });
      expect(userXattrs(join(lower, "nd", "a"))).toEqual({ "user.a": "A" });
      expect(existsSync(join(lower, "empty"))).toBe(false);
      expect(userXattrs(join(lower, "moved"))).toEqual({ "user.e": "1" });
      expect(listAttributesSync(join(lower, "big.bin"))).not.toContain("security.agentfs-test");
      // The reset branch reads the host afresh: the same xattrs.
      expect((await afs.fs.listxattr("/f.txt")).sort()).toEqual(["user.keep", "user.new", "user.same"]);
      expect((await afs.fs.getxattr("/nd/a", "user.a")).toString()).toBe("A");
      expect(await afs.diffLower()).toEqual([]);
    });
  });

  it("gc and fsck on an overlay store: layers over the host stay, copied-up data is reclaimed after reset", async () => {
    await withOverlay(async (afs) => {
      await afs.fs.writeFile("/d/x", prng(200_000, 9));
      await afs.fs.rename("/d/sub", "/sub");
      await afs.gc();
      expect((await afs.fsck()).problems).toEqual([]);
      expect(await afs.fs.readFile("/sub/y", "utf8")).toBe("y-data");
      expect((await afs.fs.readFile("/d/x")).equals(prng(200_000, 9))).toBe(true);
      afs.store.resetOverlay("ov");
      const rep = await afs.gc();
      expect(rep.objectsRemoved).toBeGreaterThan(0);
      expect((await afs.stats()).store.objects).toBe(0);
      expect(await afs.fs.readFile("/d/x", "utf8")).toBe("x-data");
      expect((await afs.fsck()).problems).toEqual([]);
      // a deleted overlay branch's root goes with its host directory record
      await afs.overlayBranch("tmp", "/dev/shm");
      await afs.store.deleteBranch("tmp");
      await afs.gc();
      expect(afs.store.manifest.db.prepare(`SELECT count(*) FROM meta WHERE key LIKE 'lower:%'`).pluck().get()).toBe(1);
      expect(await afs.fs.readFile("/d/sub/y", "utf8")).toBe("y-data"); // reset dropped the rename
    });
  });

  it("applyToLower: a lower directory renamed away and replaced by a file at its old name", async () => {
    await withOverlayNoCheck(async (afs, lower) => {
      await afs.fs.rename("/d", "/e");
      await afs.fs.writeFile("/d", "now a file");
      const want = await snapshotTree({ kind: "agentfs", fs: afs.fs });
      await afs.applyToLower({ reset: true });
      expect(await snapshotTree({ kind: "host", root: lower })).toEqual(want);
      expect(readFileSync(join(lower, "e", "sub", "y"), "utf8")).toBe("y-data");
    });
  });

  it("a store inside its own host directory does not show itself in the overlay", async () => {
    const t = tempDir("agentfs-overlay-", SHM);
    try {
      writeFileSync(join(t.dir, "f"), "host");
      const before = hostImage(t.dir);
      const a = await AgentFS.open(join(t.dir, ".agentfs"), { create: true, branch: "ov", lower: t.dir });
      expect(await a.fs.readdir("/")).toEqual(["f"]);
      expect((await errOf(a.fs.stat("/.agentfs"))).code).toBe("ENOENT");
      await a.fs.writeFile("/f", "changed");
      a.closeSync();
      const after = hostImage(t.dir);
      expect(Object.fromEntries(Object.entries(after).filter(([p]) => !p.startsWith(".agentfs") && p !== "/"))).toEqual(
        Object.fromEntries(Object.entries(before).filter(([p]) => p !== "/")),
      );
    } finally {
      t.cleanup();
    }
  });

  it("options: a new store's main can be the overlay; an existing branch must be pristine or sit over the same directory; a missing host dir is ENOENT", async () => {
    const t = tempDir("agentfs-overlay-", SHM);
    try {
      const lower = join(t.dir, "lower");
      mkdirSync(lower);
      writeFileSync(join(lower, "h"), "host");
      // a new store's main becomes the overlay
      const m = await AgentFS.open(join(t.dir, "store"), { create: true, lower });
      expect(await m.fs.readFile("/h", "utf8")).toBe("host");
      await m.fs.writeFile("/mine", "x");
      m.closeSync();
      const m2 = await AgentFS.open(join(t.dir, "store"), { branch: "main" });
      expect((await m2.fs.readdir("/")).sort()).toEqual(["h", "mine"]);
      m2.closeSync();
      // a plain branch with content cannot become one
      const p = await AgentFS.open(join(t.dir, "plain"), { create: true });
      await p.fs.writeFile("/f", "x");
      p.closeSync();
      expect((await errOf(AgentFS.open(join(t.dir, "plain"), { lower }))).code).toBe("EINVAL");
      const a = await AgentFS.open(join(t.dir, "store"), { create: true, branch: "ov", lower });
      a.closeSync();
      expect((await errOf(AgentFS.open(join(t.dir, "store"), { branch: "ov", lower: t.dir }))).code).toBe("EINVAL");
      expect((await errOf(AgentFS.open(join(t.dir, "store"), { branch: "x", lower: join(t.dir, "nope") }))).code).toBe("ENOENT");
      const plain = await AgentFS.open(join(t.dir, "plain"));
      expect(plain.store.lowerDirOf({ branch: "main" })).toBe(null);
      expect((await errOf(plain.diffLower())).code).toBe("EINVAL");
      plain.closeSync();
    } finally {
      t.cleanup();
    }
  });

  it("random operations on an overlay give the same results as on a real copy of the host directory, which stays unchanged", async () => {
    const noAbsLinks = (o: Op) => !(o.op === "symlink" && o.t.startsWith("/"));
    await fc.assert(
      fc.asyncProperty(fc.array(fsOp.filter(noAbsLinks), { maxLength: 25 }), fc.array(fsOp, { minLength: 1, maxLength: 40 }), async (init, ops) => {
        const t = tempDir("agentfs-ovmodel-", SHM);
        const lower = join(t.dir, "lower");
        const live = join(t.dir, "live");
        mkdirSync(lower);
        chmodSync(lower, 0o755);
        for (const o of init) await apply({ kind: "host", root: lower }, o);
        execFileSync("cp", ["-a", lower, live]);
        const before = hostImage(lower);
        const afs = await AgentFS.open(join(t.dir, "store"), { create: true, branch: "ov", lower, umask: 0o022 });
        try {
          const A: Side = { kind: "agentfs", fs: afs.fs };
          const H: Side = { kind: "host", root: live };
          const log: string[] = [`init: ${JSON.stringify(init)}`];
          expect(await snapshotTree(A)).toEqual(await snapshotTree(H));
          let mid: Record<string, unknown> | undefined;
          for (const [i, o] of ops.entries()) {
            const ra = await apply(A, o);
            const rh = await apply(H, o);
            log.push(`${JSON.stringify(o)} -> ${JSON.stringify(rh)}`);
            expect(ra, `op ${log.length - 1} differs; ops so far:\n${log.join("\n")}`).toEqual(rh);
            if (i === Math.floor(ops.length / 2)) {
              await afs.snapshot("mid");
              mid = await snapshotTree(H);
            }
          }
          // the snapshot taken midway still shows that state (the host did not change)
          const snap = await AgentFS.open(join(t.dir, "store"), { snapshot: "mid" });
          try {
            expect(await snapshotTree({ kind: "agentfs", fs: snap.fs }), `snapshot changed after:\n${log.join("\n")}`).toEqual(mid);
          } finally {
            snap.closeSync();
          }
          expect(await snapshotTree(A), `final tree differs after:\n${log.join("\n")}`).toEqual(await snapshotTree(H));
          expect(hostImage(lower), `host written after:\n${log.join("\n")}`).toEqual(before);
          await afs.snapshot("end");
          await afs.gc(); // compaction must keep the overlay root (the host directory hangs off it)
          expect(await snapshotTree(A), `tree differs after gc:\n${log.join("\n")}`).toEqual(await snapshotTree(H));
          expect((await afs.fsck()).problems).toEqual([]);
          afs.closeSync();
          const again = await AgentFS.open(join(t.dir, "store"), { branch: "ov" });
          try {
            expect(await snapshotTree({ kind: "agentfs", fs: again.fs })).toEqual(await snapshotTree(H));
          } finally {
            again.closeSync();
          }
        } finally {
          afs.closeSync();
          t.cleanup();
        }
      }),
      { numRuns: Number(process.env.AGENTFS_PROP_RUNS ?? 100) },
    );
  });

  it("random operations then applyToLower leave the host directory equal to a real copy that got the same operations", async () => {
    const noLinks = (o: Op) => o.op !== "link" && !(o.op === "symlink" && o.t.startsWith("/"));
    await fc.assert(
      fc.asyncProperty(fc.array(fsOp.filter(noLinks), { maxLength: 25 }), fc.array(fsOp.filter(noLinks), { minLength: 1, maxLength: 40 }), async (init, ops) => {
        const t = tempDir("agentfs-ovapply-", SHM);
        const lower = join(t.dir, "lower");
        const live = join(t.dir, "live");
        mkdirSync(lower);
        chmodSync(lower, 0o755);
        for (const o of init) await apply({ kind: "host", root: lower }, o);
        execFileSync("cp", ["-a", lower, live]);
        const afs = await AgentFS.open(join(t.dir, "store"), { create: true, branch: "ov", lower, umask: 0o022 });
        try {
          const log: string[] = [`init: ${JSON.stringify(init)}`];
          for (const o of ops) {
            await apply({ kind: "agentfs", fs: afs.fs }, o);
            await apply({ kind: "host", root: live }, o);
            log.push(JSON.stringify(o));
          }
          await afs.applyToLower({ reset: true });
          expect(await snapshotTree({ kind: "host", root: lower }), `host after apply differs:\n${log.join("\n")}`).toEqual(await snapshotTree({ kind: "host", root: live }));
          expect(await afs.diffLower()).toEqual([]);
        } finally {
          afs.closeSync();
          t.cleanup();
        }
      }),
      { numRuns: Number(process.env.AGENTFS_PROP_RUNS ?? 100) },
    );
  });
});
