import fs from "node:fs";
import path from "node:path";
import { AgentFS, MemoryBackstore, type Backstore } from "@agentfs/core";
import { afterAll, describe, expect, it } from "vitest";
import { FdBuffer } from "@agentfs/core";
import * as native from "@agentfs/native";
import { MemfdBackstore, TmpfsBackstore } from "../src/index.js";
import { fdTargets, isLinux, prng, rssBytes, tmpDir } from "./helpers.js";

const MiB = 1024 * 1024;

describe.skipIf(!isLinux)("MemfdBackstore buffers", () => {
  it("reads, writes, grows with zeros, shrinks, and tracks holes like a file", () => {
    const b = new MemfdBackstore().createBuffer();
    try {
      expect(b.size).toBe(0);
      expect(fdTargets()).toContain(fs.readlinkSync(`/proc/self/fd/${b.fd}`));
      expect(fs.readlinkSync(`/proc/self/fd/${b.fd}`)).toMatch(/^\/memfd:agentfs-buffer/);
      b.write(Buffer.from("hello"), 0, 5, 10);
      expect(b.size).toBe(15);
      const out = Buffer.alloc(20, 0xee);
      expect(b.read(out, 0, 20, 0)).toBe(15);
      expect(out.subarray(0, 10).every((x) => x === 0)).toBe(true);
      expect(out.subarray(10, 15).toString()).toBe("hello");
      expect(b.read(out, 0, 4, 15)).toBe(0);
      b.truncate(3 * MiB);
      expect(b.size).toBe(3 * MiB);
      expect(fs.fstatSync(b.fd).size).toBe(3 * MiB);
      expect(b.hasData(0, 100)).toBe(true);
      expect(b.hasData(MiB, MiB)).toBe(false);
      b.truncate(12);
      expect(b.read(out, 0, 20, 0)).toBe(12);
      expect(out.subarray(10, 12).toString()).toBe("he");
      b.truncate(20);
      b.read(out, 0, 20, 0);
      expect(out.subarray(12, 20).every((x) => x === 0)).toBe(true);
      expect(() => b.truncate(-1)).toThrow(RangeError);
    } finally {
      b.dispose();
    }
  });

  it.each([
    ["memfd", () => new MemfdBackstore().createBuffer()],
    ["tmpfs", () => TmpfsBackstore.at("/dev/shm").createBuffer()],
  ])("punchHole on a %s buffer frees the range's pages (fallocate PUNCH_HOLE): st_blocks drops, it reads zeros, hasData sees the hole", (_kind, make) => {
    const b = make();
    try {
      const data = prng(4 * MiB, 3);
      b.write(data, 0, data.length, 0);
      const before = fs.fstatSync(b.fd).blocks;
      expect(before * 512).toBeGreaterThanOrEqual(4 * MiB);
      b.punchHole(MiB + 100, 2 * MiB); // whole 64 KiB pages inside are freed, the partial ends zeroed
      const after = fs.fstatSync(b.fd).blocks;
      expect((before - after) * 512).toBeGreaterThanOrEqual(2 * MiB - 64 * 1024);
      expect(b.size).toBe(4 * MiB);
      const out = Buffer.alloc(4 * MiB);
      expect(b.read(out, 0, out.length, 0)).toBe(4 * MiB);
      expect(out.subarray(0, MiB + 100).equals(data.subarray(0, MiB + 100))).toBe(true);
      expect(out.subarray(MiB + 100, 3 * MiB + 100).every((x) => x === 0)).toBe(true);
      expect(out.subarray(3 * MiB + 100).equals(data.subarray(3 * MiB + 100))).toBe(true);
      expect(b.hasData(2 * MiB, 64 * 1024)).toBe(false);
      expect(b.hasData(MiB, 64 * 1024)).toBe(true); // partly punched: still data
    } finally {
      b.dispose();
    }
  });

  it.each([
    ["PUNCH_HOLE (MemfdBuffer)", () => new MemfdBackstore().createBuffer()],
    ["zeros (core FdBuffer)", () => new FdBuffer(native.memfdCreate("plain", native.MFD_CLOEXEC), 0)],
  ])("punching all of a 64 TiB sparse buffer by %s visits only its written pages", (_kind, make) => {
    const b = make();
    try {
      const size = 2 ** 46;
      b.truncate(size);
      b.write(Buffer.alloc(5000, 7), 0, 5000, 100);
      b.write(Buffer.alloc(5000, 9), 0, 5000, size - 5000);
      b.punchHole(0, size);
      expect(b.size).toBe(size);
      const out = Buffer.alloc(5000, 1);
      b.read(out, 0, 5000, 100);
      expect(out.every((x) => x === 0)).toBe(true);
      b.read(out, 0, 5000, size - 5000);
      expect(out.every((x) => x === 0)).toBe(true);
      expect(b.hasData(0, 64 * 1024)).toBe(false);
    } finally {
      b.dispose();
    }
  });

  it("dispose closes the memfd (no fd leak)", () => {
    const before = fdTargets().filter((t) => t.startsWith("/memfd:agentfs-buffer")).length;
    const bufs = Array.from({ length: 50 }, () => new MemfdBackstore().createBuffer());
    expect(fdTargets().filter((t) => t.startsWith("/memfd:agentfs-buffer")).length).toBe(before + 50);
    for (const b of bufs) b.dispose();
    expect(fdTargets().filter((t) => t.startsWith("/memfd:agentfs-buffer")).length).toBe(before);
  });

  it("RSS stays flat over many grow/shrink cycles, and shrinking frees the memfd's pages", () => {
    const b = new MemfdBackstore().createBuffer();
    const piece = prng(MiB, 7);
    const cycle = (i: number) => {
      const target = (4 + ((i * 7) % 13)) * MiB; // 4..16 MiB
      for (let p = 0; p < target; p += MiB) b.write(piece, 0, MiB, p);
      const st = fs.fstatSync(b.fd);
      expect(st.size).toBe(target);
      expect(st.blocks * 512).toBeGreaterThanOrEqual(target); // pages really exist in the memfd
      b.truncate((i * 4099) % 65536); // shrink to a few KiB
      expect(fs.fstatSync(b.fd).blocks * 512).toBeLessThanOrEqual(128 * 1024); // pages returned to the kernel
    };
    try {
      for (let i = 0; i < 10; i++) cycle(i); // warm up
      global.gc?.();
      const r0 = rssBytes();
      let peak = r0;
      for (let i = 10; i < 210; i++) {
        cycle(i);
        if (i % 20 === 0) peak = Math.max(peak, rssBytes());
      }
      global.gc?.();
      const r1 = rssBytes();
      console.log(`memfd grow/shrink x200 (≈2 GiB written): RSS ${(r0 / MiB).toFixed(1)} MiB -> ${(r1 / MiB).toFixed(1)} MiB (peak ${(peak / MiB).toFixed(1)} MiB)`);
      // 200 cycles of up to 16 MiB: a heap that fragmented or leaked would grow by far more.
      expect(r1 - r0).toBeLessThan(24 * MiB);
      expect(peak - r0).toBeLessThan(24 * MiB);
    } finally {
      b.dispose();
    }
  });
});

/** One SDK workload: writes, overwrites, appends, truncates, sparse files, renames, a snapshot, a branch. Returns what it read. */
async function workload(backstore: Backstore, dir: string): Promise<Record<string, string>> {
  const afs = await AgentFS.open(path.join(dir, "store"), { create: true, backstore, umask: 0o022 });
  const seen: Record<string, string> = {};
  const h = (b: Buffer | string) => (typeof b === "string" ? b : b.toString("base64").slice(0, 64) + `…${b.length}`);
  try {
    const fsx = afs.fs;
    await fsx.mkdir("/src/deep", { recursive: true });
    const big = prng(3 * MiB + 123, 3);
    await fsx.writeFile("/src/big.bin", big);
    const fh = await fsx.open("/src/big.bin", "r+");
    await fh.write(Buffer.from("MIDDLE"), 0, 6, 1_500_000);
    await fh.truncate(2 * MiB + 5);
    await fh.write(Buffer.from("TAIL"), 0, 4, 4 * MiB); // leaves a hole
    // Reads through the open handle see the in-progress bytes (served from the memfd).
    const mid = Buffer.alloc(6);
    await fh.read(mid, 0, 6, 1_500_000);
    seen.midOpen = mid.toString();
    await fh.close();
    const back = (await fsx.readFile("/src/big.bin")) as Buffer;
    expect(back.length).toBe(4 * MiB + 4);
    const want = Buffer.alloc(4 * MiB + 4);
    big.copy(want, 0, 0, 2 * MiB + 5);
    want.write("MIDDLE", 1_500_000);
    want.write("TAIL", 4 * MiB);
    expect(back.equals(want)).toBe(true);
    seen.big = h(back);
    for (let i = 0; i < 40; i++) await fsx.writeFile(`/src/deep/f${i}.txt`, `file ${i}\n`.repeat(i + 1));
    await fsx.appendFile("/src/deep/f3.txt", "more\n");
    await fsx.rename("/src/deep/f4.txt", "/src/moved.txt");
    await fsx.truncate("/src/deep/f5.txt", 3);
    await afs.snapshot("s1");
    await fsx.writeFile("/src/deep/f6.txt", "after snapshot");
    await afs.branch("b1", { snapshot: "s1" });
    for (const f of ["/src/deep/f3.txt", "/src/moved.txt", "/src/deep/f5.txt", "/src/deep/f6.txt"]) seen[f] = h((await fsx.readFile(f)) as Buffer);
    seen.list = ((await fsx.readdir("/src/deep")) as string[]).sort().join(",");
    const fsck = await afs.fsck();
    expect(fsck.ok).toBe(true);
  } finally {
    await afs.close();
  }
  const snap = await AgentFS.open(path.join(dir, "store"), { snapshot: "s1", backstore });
  try {
    seen.snapF6 = h((await snap.fs.readFile("/src/deep/f6.txt")) as Buffer);
  } finally {
    await snap.close();
  }
  return seen;
}

describe.skipIf(!isLinux)("AgentFS.open(..., { backstore: MemfdBackstore })", () => {
  const dirs: string[] = [];
  afterAll(() => {
    for (const d of dirs) fs.rmSync(d, { recursive: true, force: true });
  });

  it("runs a full SDK workload with the same results as the default heap backstore, leaving no memfds open", async () => {
    const d1 = tmpDir("agentfs-memfd-");
    const d2 = tmpDir("agentfs-heap-");
    dirs.push(d1, d2);
    const before = fdTargets().filter((t) => t.startsWith("/memfd:")).length;
    const onMemfd = await workload(new MemfdBackstore(), d1);
    expect(fdTargets().filter((t) => t.startsWith("/memfd:")).length).toBe(before);
    const onHeap = await workload(new MemoryBackstore(), d2);
    expect(onMemfd).toEqual(onHeap);
    expect(onMemfd.midOpen).toBe("MIDDLE");
    // Working buffers left no files behind: the store dir holds only the manifest files.
    expect(fs.readdirSync(path.join(d1, "store")).filter((f) => !/^manifest\.db(-wal|-shm)?$/.test(f))).toEqual([]);
  });

  it("an open file's buffer is a memfd, visible in /proc/self/fd while open", async () => {
    const d = tmpDir("agentfs-memfd-open-");
    dirs.push(d);
    const afs = await AgentFS.open(path.join(d, "store"), { create: true, backstore: new MemfdBackstore({ name: "agentfs-probe" }) });
    try {
      const fh = await afs.fs.open("/x", "w");
      await fh.write("abc");
      expect(fdTargets().some((t) => t.startsWith("/memfd:agentfs-probe"))).toBe(true);
      await fh.close();
      expect(fdTargets().some((t) => t.startsWith("/memfd:agentfs-probe"))).toBe(false);
      expect(await afs.fs.readFile("/x", "utf8")).toBe("abc");
    } finally {
      await afs.close();
    }
  });
});
