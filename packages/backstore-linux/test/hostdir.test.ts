import { spawnSync } from "node:child_process";
import fs from "node:fs";
import os from "node:os";
import path from "node:path";
import { AgentFS } from "@agentfs/core";
import * as native from "@agentfs/native";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { HostDirBackstore, cloneFile, openUnnamed, probeReflink } from "../src/index.js";
import { isLinux, prng, tmpDir } from "./helpers.js";

const MiB = 1024 * 1024;
const hasFilefrag = spawnSync("filefrag", ["-V"]).status === 0;

/** Writes `total` bytes of a repeated pseudo-random 1 MiB block to `p`, fsynced. */
function writeBig(p: string, total: number, seed: number): Buffer {
  const block = prng(MiB, seed);
  const fd = fs.openSync(p, "w");
  try {
    for (let pos = 0; pos < total; pos += MiB) {
      block.writeUInt32LE(pos / MiB, 0); // every block differs
      fs.writeSync(fd, block, 0, MiB, pos);
    }
    fs.fsyncSync(fd);
  } finally {
    fs.closeSync(fd);
  }
  return block;
}

function readAt(fd: number, pos: number, n: number): Buffer {
  const b = Buffer.alloc(n);
  fs.readSync(fd, b, 0, n, pos);
  return b;
}

describe.skipIf(!isLinux)("HostDirBackstore on a filesystem without reflink (copy fallback)", () => {
  const dir = tmpDir("agentfs-hostdir-");
  afterAll(() => fs.rmSync(dir, { recursive: true, force: true }));

  it("buffers are unnamed files; copy-up copies bytes (keeping holes) and never writes the source", () => {
    if (probeReflink(dir)) return; // this host's tmpdir can reflink: covered by the XFS test
    const bs = new HostDirBackstore(dir);
    expect(bs.kind).toBe("hostdir");
    const src = path.join(dir, "src");
    const data = prng(3 * MiB + 5, 2);
    fs.writeFileSync(src, data);
    fs.truncateSync(src, 64 * MiB); // trailing hole
    const b = bs.cloneFrom(src);
    try {
      expect(b.method).toBe("copy");
      expect(b.size).toBe(64 * MiB);
      expect(fs.fstatSync(b.fd).blocks * 512).toBeLessThan(8 * MiB); // the hole stayed a hole
      const out = Buffer.alloc(data.length);
      b.read(out, 0, out.length, 0);
      expect(out.equals(data)).toBe(true);
      b.write(Buffer.from("changed"), 0, 7, 0);
      expect(fs.readFileSync(src).subarray(0, 7).equals(data.subarray(0, 7))).toBe(true);
      expect(fs.readdirSync(dir)).toEqual(["src"]); // no named temp files
    } finally {
      b.dispose();
    }
    expect(cloneFile(src, path.join(dir, "copy"))).toBe("copy");
    expect(fs.readFileSync(path.join(dir, "copy")).subarray(0, data.length).equals(data)).toBe(true);
    expect(() => cloneFile(src, path.join(dir, "copy"))).toThrow(/EEXIST/);
  });

  it("tmpfs cannot reflink and still copies", () => {
    const d = tmpDir("agentfs-hostdir-shm-", "/dev/shm");
    try {
      const bs = new HostDirBackstore(d);
      expect(bs.reflink).toBe(false);
      fs.writeFileSync(path.join(d, "f"), "tmpfs bytes");
      const b = bs.cloneFrom(path.join(d, "f"));
      expect(b.method).toBe("copy");
      expect(readAt(b.fd, 0, 11).toString()).toBe("tmpfs bytes");
      b.dispose();
    } finally {
      fs.rmSync(d, { recursive: true, force: true });
    }
  });
});

const canLoop =
  isLinux && process.getuid?.() === 0 && spawnSync("mkfs.xfs", ["-V"]).status === 0 && fs.existsSync("/dev/loop-control");

describe.skipIf(!canLoop)("HostDirBackstore on XFS with reflink=1 (loop mount)", () => {
  let dir = "";
  let mnt = "";
  let mounted = false;

  beforeAll(() => {
    dir = tmpDir("agentfs-xfs-");
    const img = path.join(dir, "xfs.img");
    fs.writeFileSync(img, "");
    fs.truncateSync(img, 512 * MiB); // sparse image file
    const mk = spawnSync("mkfs.xfs", ["-q", "-m", "reflink=1", img], { encoding: "utf8" });
    if (mk.status !== 0) throw new Error(`mkfs.xfs failed: ${mk.stderr}`);
    mnt = path.join(dir, "mnt");
    fs.mkdirSync(mnt);
    const m = spawnSync("mount", ["-o", "loop", img, mnt], { encoding: "utf8" });
    if (m.status !== 0) throw new Error(`mount failed: ${m.stderr}`);
    mounted = true;
  });

  afterAll(() => {
    try {
      if (mounted) {
        // umount of a "-o loop" mount detaches the loop device too; -l if busy.
        const loopDev = spawnSync("findmnt", ["-n", "-o", "SOURCE", mnt], { encoding: "utf8" }).stdout.trim();
        if (spawnSync("umount", [mnt]).status !== 0) spawnSync("umount", ["-l", mnt]);
        if (loopDev.startsWith("/dev/loop")) spawnSync("losetup", ["-d", loopDev]); // no-op when already detached
      }
    } finally {
      fs.rmSync(dir, { recursive: true, force: true });
    }
  });

  it("reflinks copy-up: 3 × 200 MiB clones on a 512 MiB filesystem use no data blocks; extents are shared; writes are copy-on-write", () => {
    expect(native.statfsTypeName(mnt)).toBe("xfs");
    const bs = new HostDirBackstore(mnt);
    expect(bs.kind).toBe("reflink");
    const src = path.join(mnt, "big");
    const block = writeBig(src, 200 * MiB, 5);
    const before = native.statfs(mnt);
    const clones = [bs.cloneFrom(src), bs.cloneFrom(src), bs.cloneFrom(src)];
    try {
      for (const c of clones) fs.fsyncSync(c.fd);
      const after = native.statfs(mnt);
      const usedBytes = (before.bfree - after.bfree) * before.bsize;
      console.log(
        `XFS reflink: 3 clones of 200 MiB (600 MiB logical) used ${(usedBytes / 1024).toFixed(0)} KiB of data blocks; ` +
          `free ${((before.bfree * before.bsize) / MiB).toFixed(0)} MiB -> ${((after.bfree * after.bsize) / MiB).toFixed(0)} MiB`,
      );
      // A copy would need 600 MiB: more than the whole filesystem has free.
      expect((before.bfree * before.bsize) / MiB).toBeLessThan(600);
      expect(usedBytes).toBeLessThan(4 * MiB);
      for (const c of clones) {
        expect(c.method).toBe("reflink");
        expect(c.size).toBe(200 * MiB);
        expect(readAt(c.fd, 150 * MiB + 4, 1000).equals(block.subarray(4, 1004))).toBe(true);
        expect(readAt(c.fd, 150 * MiB, 4).readUInt32LE(0)).toBe(150);
      }
      // FIEMAP (filefrag -v) marks the source's extents shared.
      const ff = spawnSync("filefrag", ["-v", src], { encoding: "utf8" });
      if (hasFilefrag) {
        expect(ff.status).toBe(0);
        expect(ff.stdout).toMatch(/shared/);
      }
      // Copy-on-write: writing a clone allocates new blocks for the written range only, and leaves the source alone.
      const free0 = native.statfs(mnt).bfree;
      clones[0]!.write(Buffer.alloc(MiB, 0x5a), 0, MiB, 10 * MiB);
      fs.fsyncSync(clones[0]!.fd);
      const grew = (free0 - native.statfs(mnt).bfree) * before.bsize;
      expect(grew).toBeGreaterThanOrEqual(MiB);
      expect(grew).toBeLessThan(8 * MiB);
      const s = fs.openSync(src, "r");
      try {
        expect(readAt(s, 10 * MiB, 4).readUInt32LE(0)).toBe(10);
      } finally {
        fs.closeSync(s);
      }
      expect(readAt(clones[1]!.fd, 10 * MiB, 4).readUInt32LE(0)).toBe(10);
      expect(fs.readdirSync(mnt).sort()).toEqual(["big"]); // buffers are unnamed
    } finally {
      for (const c of clones) c.dispose();
    }
  });

  it("cloneFile makes a named reflink copy whose extents filefrag reports shared", () => {
    const src = path.join(mnt, "big");
    const dst = path.join(mnt, "big.clone");
    const free0 = native.statfs(mnt).bfree;
    expect(cloneFile(src, dst)).toBe("reflink");
    const fd = fs.openSync(dst, "r");
    fs.fsyncSync(fd);
    fs.closeSync(fd);
    expect((free0 - native.statfs(mnt).bfree) * native.statfs(mnt).bsize).toBeLessThan(4 * MiB);
    const ff = spawnSync("filefrag", ["-v", dst], { encoding: "utf8" });
    if (hasFilefrag) {
      expect(ff.status).toBe(0);
      expect(ff.stdout).toMatch(/shared/);
    }
    fs.rmSync(dst);
  });

  it("runs an SDK workload with working buffers on the XFS mount", async () => {
    const sdir = tmpDir("agentfs-xfs-store-");
    try {
      const afs = await AgentFS.open(path.join(sdir, "store"), { create: true, backstore: new HostDirBackstore(mnt) });
      try {
        const data = prng(2 * MiB + 1, 8);
        const fh = await afs.fs.open("/f", "w");
        await fh.write(data);
        await fh.write(Buffer.from("end"), 0, 3, 5 * MiB);
        await fh.close();
        const back = (await afs.fs.readFile("/f")) as Buffer;
        expect(back.subarray(0, data.length).equals(data)).toBe(true);
        expect(back.subarray(5 * MiB).toString()).toBe("end");
        expect(afs.store.backstore.kind).toBe("reflink");
      } finally {
        await afs.close();
      }
      expect(fs.readdirSync(mnt).sort()).toEqual(["big"]);
    } finally {
      fs.rmSync(sdir, { recursive: true, force: true });
    }
  });

  it("openUnnamed leaves no directory entry", () => {
    const fd = openUnnamed(mnt);
    try {
      expect(fs.readlinkSync(`/proc/self/fd/${fd}`)).toMatch(/\(deleted\)$/);
    } finally {
      fs.closeSync(fd);
    }
  });
});
