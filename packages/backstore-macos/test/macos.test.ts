import fs from "node:fs";
import os from "node:os";
import path from "node:path";
import { AgentFS } from "@agentfs/core";
import * as native from "@agentfs/native";
import { describe, expect, it } from "vitest";
import { ApfsCloneBackstore, ApfsRamDisk, isApfs } from "../src/index.js";

const MiB = 1024 * 1024;
const isMac = process.platform === "darwin";

// Real tests: macOS only. On Linux they are reported as skipped, never as passed.
describe.skipIf(!isMac)("APFS (macOS, real syscalls)", () => {
  it("isApfs: the temp dir of a default macOS install is APFS", () => {
    expect(isApfs(os.tmpdir())).toBe(native.statfs(os.tmpdir()).typeName === "apfs");
    expect(isApfs("/dev")).toBe(false); // devfs
  });

  it("ApfsRamDisk + ApfsCloneBackstore: clone copy-up costs no space, writes are copy-on-write, detach on close", async () => {
    const disk = ApfsRamDisk.create({ size: 256 * MiB });
    try {
      expect(isApfs(disk.mountPoint)).toBe(true);
      const bs = disk.backstore();
      expect(bs.kind).toBe("apfs-clone");
      const src = path.join(disk.mountPoint, "big");
      const block = Buffer.alloc(MiB, 7);
      const fd = fs.openSync(src, "w");
      for (let i = 0; i < 64; i++) fs.writeSync(fd, block, 0, MiB, i * MiB);
      fs.fsyncSync(fd);
      fs.closeSync(fd);
      const before = native.statfs(disk.mountPoint).bfree;
      const clones = [bs.cloneFrom(src), bs.cloneFrom(src)];
      const used = (before - native.statfs(disk.mountPoint).bfree) * native.statfs(disk.mountPoint).bsize;
      expect(used).toBeLessThan(4 * MiB); // two 64 MiB copies would need 128 MiB
      for (const c of clones) expect(c.method).toBe("clone");
      clones[0]!.write(Buffer.from("changed"), 0, 7, 0);
      expect(fs.readFileSync(src).subarray(0, 7).equals(block.subarray(0, 7))).toBe(true);
      for (const c of clones) c.dispose();
      const afs = await AgentFS.open(path.join(disk.mountPoint, "store"), { create: true, backstore: bs });
      await afs.fs.writeFile("/f", "on the RAM disk");
      expect(await afs.fs.readFile("/f", "utf8")).toBe("on the RAM disk");
      await afs.close();
    } finally {
      expect(disk.close()).toBe(true);
    }
    expect(fs.existsSync(disk.mountPoint)).toBe(false);
  });

  it("ApfsCloneBackstore on the temp dir: empty buffers are unlinked files", () => {
    const bs = new ApfsCloneBackstore(os.tmpdir());
    const b = bs.createBuffer();
    b.write(Buffer.from("abc"), 0, 3, 5);
    const out = Buffer.alloc(8);
    expect(b.read(out, 0, 8, 0)).toBe(8);
    expect(out.subarray(5).toString()).toBe("abc");
    b.dispose();
  });
});
