import { spawnSync } from "node:child_process";
import fs from "node:fs";
import os from "node:os";
import path from "node:path";
import { afterAll, describe, expect, it } from "vitest";
import * as n from "../src/index.js";
import { expectErrno, isLinux, tmpDir } from "./helpers.js";

/** What a filesystem without reflink answers to FICLONE (varies by fs and kernel). */
const NO_REFLINK = ["ENOTSUP", "EOPNOTSUPP", "EXDEV", "EINVAL", "ENOTTY"];

function openPair(dir: string): { src: number; dst: number; close: () => void } {
  const sp = path.join(dir, `src-${process.pid}`);
  const dp = path.join(dir, `dst-${process.pid}`);
  fs.writeFileSync(sp, Buffer.alloc(64 * 1024, "a"));
  const src = fs.openSync(sp, "r");
  const dst = fs.openSync(dp, "w");
  return {
    src,
    dst,
    close: () => {
      fs.closeSync(src);
      fs.closeSync(dst);
      fs.rmSync(sp, { force: true });
      fs.rmSync(dp, { force: true });
    },
  };
}

describe.skipIf(!isLinux)("statfs (Linux)", () => {
  it("statfsType('/dev/shm') is tmpfs", () => {
    expect(n.statfsType("/dev/shm")).toBe(n.FS_MAGIC.tmpfs);
    expect(n.statfsType("/dev/shm")).toBe(0x01021994);
    expect(n.statfsTypeName("/dev/shm")).toBe("tmpfs");
    expect(n.fsTypeName(n.statfsType("/dev/shm"))).toBe("tmpfs");
  });

  it("statfs reports type, name and block counts; /proc is proc", () => {
    const s = n.statfs("/");
    expect(s.type).toBeGreaterThan(0);
    expect(s.bsize).toBeGreaterThan(0);
    expect(s.blocks).toBeGreaterThan(0);
    expect(s.bavail).toBeLessThanOrEqual(s.bfree);
    expect(n.statfsTypeName("/proc")).toBe("proc");
    expect(n.fsTypeName(0xef53)).toBe("ext4");
    expect(n.fsTypeName(0x58465342)).toBe("xfs");
    expect(n.fsTypeName(0x9123683e)).toBe("btrfs");
    expect(n.fsTypeName(0x794c7630)).toBe("overlayfs");
    expect(n.fsTypeName(0x65735546)).toBe("fuse");
    expect(n.fsTypeName(0x12345)).toBeUndefined();
  });

  it("throws ENOENT with the path for a missing path", () => {
    const e = expectErrno(() => n.statfs("/no/such/agentfs/path"), "ENOENT", "statfs");
    expect(e.path).toBe("/no/such/agentfs/path");
    expect(e.message).toContain("'/no/such/agentfs/path'");
    expect(() => n.statfsType("a\0b")).toThrow(TypeError);
  });
});

describe.skipIf(!isLinux)("ficlone (Linux)", () => {
  it("on tmpfs fails with a clean no-reflink errno", () => {
    const p = openPair("/dev/shm");
    try {
      const e = expectErrno(() => n.ficlone(p.src, p.dst), NO_REFLINK, "ioctl(FICLONE)");
      expect(e.errno).toBeLessThan(0);
    } finally {
      p.close();
    }
  });

  it("across filesystems (tmpfs -> os.tmpdir()) fails with EXDEV or a no-reflink errno", () => {
    if (n.statfsType(os.tmpdir()) === n.FS_MAGIC.tmpfs) return; // same fs: not a cross-fs case
    const sp = path.join("/dev/shm", `xsrc-${process.pid}`);
    const dp = path.join(os.tmpdir(), `xdst-${process.pid}`);
    fs.writeFileSync(sp, "x");
    const src = fs.openSync(sp, "r");
    const dst = fs.openSync(dp, "w");
    try {
      expectErrno(() => n.ficlone(src, dst), NO_REFLINK, "ioctl(FICLONE)");
    } finally {
      fs.closeSync(src);
      fs.closeSync(dst);
      fs.rmSync(sp, { force: true });
      fs.rmSync(dp, { force: true });
    }
  });

  it("bad fds fail with EBADF", () => {
    const p = openPair("/dev/shm");
    try {
      expectErrno(() => n.ficlone(987654, p.dst), "EBADF", "ioctl(FICLONE)");
      expectErrno(() => n.ficlone(p.src, 987654), "EBADF", "ioctl(FICLONE)");
      // dst opened read-only
      expectErrno(() => n.ficlone(p.src, p.src), ["EBADF", ...NO_REFLINK], "ioctl(FICLONE)");
    } finally {
      p.close();
    }
  });

  describe("on XFS with reflink=1 (loop mount; needs root and mkfs.xfs)", () => {
    const canTry =
      process.getuid?.() === 0 &&
      spawnSync("mkfs.xfs", ["-V"]).status === 0 &&
      fs.existsSync("/dev/loop-control");
    let dir: string | undefined;
    let mnt: string | undefined;
    afterAll(() => {
      if (mnt) spawnSync("umount", [mnt]);
      if (dir) fs.rmSync(dir, { recursive: true, force: true });
    });

    it.skipIf(!canTry)("clones a file: same bytes, independent copy-on-write afterwards", (ctx) => {
      dir = tmpDir("agentfs-xfs-");
      const img = path.join(dir, "xfs.img");
      fs.writeFileSync(img, "");
      fs.truncateSync(img, 320 * 1024 * 1024); // sparse; XFS wants at least 300 MB
      if (spawnSync("mkfs.xfs", ["-q", "-m", "reflink=1", img]).status !== 0) ctx.skip();
      const m = path.join(dir, "mnt");
      fs.mkdirSync(m);
      const mount = spawnSync("mount", ["-o", "loop", img, m], { encoding: "utf8" });
      if (mount.status !== 0) ctx.skip(); // no loop devices / no mount privilege here
      mnt = m;
      expect(n.statfsTypeName(m)).toBe("xfs");

      const data = Buffer.alloc(1024 * 1024);
      for (let i = 0; i < data.length; i++) data[i] = (i * 7) & 0xff;
      fs.writeFileSync(path.join(m, "src"), data);
      const src = fs.openSync(path.join(m, "src"), "r");
      const dst = fs.openSync(path.join(m, "dst"), "w");
      try {
        n.ficlone(src, dst);
      } finally {
        fs.closeSync(src);
        fs.closeSync(dst);
      }
      expect(fs.readFileSync(path.join(m, "dst")).equals(data)).toBe(true);
      // Writing the clone leaves the source alone.
      const w = fs.openSync(path.join(m, "dst"), "r+");
      fs.writeSync(w, Buffer.from("changed"), 0, 7, 0);
      fs.closeSync(w);
      expect(fs.readFileSync(path.join(m, "src")).equals(data)).toBe(true);
      expect(fs.readFileSync(path.join(m, "dst")).subarray(0, 7).toString()).toBe("changed");
    });
  });
});

describe("platform-only calls", () => {
  it.skipIf(process.platform === "darwin")("clonefile throws ENOSYS off macOS", () => {
    expect(n.hasClonefile).toBe(false);
    expectErrno(() => n.clonefile("/a", "/b"), "ENOSYS", "clonefile");
  });

  it.skipIf(isLinux)("memfd, seals and ficlone throw ENOSYS off Linux", () => {
    expectErrno(() => n.memfdCreate("x"), "ENOSYS", "memfd_create");
    expectErrno(() => n.getSeals(0), "ENOSYS");
    expectErrno(() => n.addSeals(0, 1), "ENOSYS");
    expectErrno(() => n.ficlone(0, 1), "ENOSYS", "ioctl(FICLONE)");
  });

  it.skipIf(process.platform !== "darwin")("clonefile clones a file on APFS (macOS)", () => {
    const dir = tmpDir("agentfs-clonefile-");
    try {
      const src = path.join(dir, "src");
      fs.writeFileSync(src, "apfs clone");
      const st = n.statfs(dir);
      if (st.typeName !== "apfs") return;
      n.clonefile(src, path.join(dir, "dst"), n.CLONE_NOFOLLOW);
      expect(fs.readFileSync(path.join(dir, "dst"), "utf8")).toBe("apfs clone");
      expectErrno(() => n.clonefile(src, path.join(dir, "dst")), "EEXIST", "clonefile");
    } finally {
      fs.rmSync(dir, { recursive: true, force: true });
    }
  });
});
