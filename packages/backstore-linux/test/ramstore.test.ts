import fs from "node:fs";
import os from "node:os";
import path from "node:path";
import { FsCore } from "@agentfs/core";
import { describe, expect, it } from "vitest";
import { MemfdObjectStore, openRamStore } from "../src/index.js";
import { isLinux, prng } from "./helpers.js";

const MiB = 1024 * 1024;

/** fd number → link target, for this process. */
function fdMap(): Map<string, string> {
  const m = new Map<string, string>();
  for (const n of fs.readdirSync("/proc/self/fd")) {
    try {
      m.set(n, fs.readlinkSync(`/proc/self/fd/${n}`));
    } catch {
      /* gone */
    }
  }
  return m;
}

describe.skipIf(!isLinux)("RAM store: objects in memfds, manifest in memory", () => {
  it("a full SDK workload keeps every object byte in memfds and opens no file anywhere", async () => {
    const label = path.join(os.tmpdir(), `agentfs-ramstore-${process.pid}`);
    const fdsBefore = fdMap();
    const ram = openRamStore(label, { umask: 0o022 });
    const seen = new Set<string>();
    const sample = () => {
      for (const [n, t] of fdMap()) if (fdsBefore.get(n) !== t) seen.add(t);
    };
    try {
      const fsx = ram.afs.fs;
      const big = prng(5 * MiB + 3, 4);
      await fsx.mkdir("/d/e", { recursive: true });
      const fh = await fsx.open("/d/big.bin", "w");
      await fh.write(big);
      sample(); // while a file is open for writing
      await fh.close();
      for (let i = 0; i < 30; i++) await fsx.writeFile(`/d/e/f${i}.txt`, `file ${i} `.repeat(2000));
      await ram.afs.snapshot("s1");
      await fsx.writeFile("/d/big.bin", "replaced");
      sample();
      ram.afs.store.cas.clearCache();
      const st = await ram.afs.stats();
      const os_ = ram.objects.stats();
      expect(os_.objects).toBe(st.store.objects);
      expect(os_.liveBytes).toBe(st.store.storedBytes); // every stored byte is in the memfd arenas
      expect(os_.residentBytes).toBeGreaterThanOrEqual(os_.usedBytes - 4096 * os_.arenas);
      const inSqlite = ram.afs.store.manifest.db.prepare(`SELECT coalesce(sum(length(data)), 0) FROM objects`).pluck().get();
      expect(inSqlite).toBe(0);
      // Reads come back from the memfds (cache cleared), snapshot included.
      const old = new FsCore(ram.afs.store, { snapshot: "s1" });
      const fd = old.openFile("/d/big.bin", 0);
      const back = Buffer.alloc(big.length);
      old.read(fd, back, 0, back.length, 0);
      old.close(fd);
      expect(back.equals(big)).toBe(true);
      expect(await fsx.readFile("/d/e/f7.txt", "utf8")).toBe("file 7 ".repeat(2000));
      expect((await ram.afs.fsck()).ok).toBe(true);
    } finally {
      await ram.close();
    }
    // Everything new this store opened was a memfd: no file, no temp file, no SQLite file.
    const kinds = [...seen].map((t) => (t.startsWith("/memfd:") ? "memfd" : t));
    expect(kinds.filter((k) => k !== "memfd" && !/^(pipe|socket|anon_inode):/.test(k))).toEqual([]);
    expect([...seen].some((t) => t.startsWith("/memfd:agentfs-objects"))).toBe(true);
    expect([...seen].some((t) => t.startsWith("/memfd:agentfs-buffer"))).toBe(true);
    expect(fs.existsSync(label)).toBe(false);
    // ...and close() freed them all.
    const after = [...fdMap().values()].filter((t) => t.startsWith("/memfd:agentfs-"));
    expect(after).toEqual([]);
  });

  it("gc returns arena memory: dead arenas are closed, mostly-dead ones compacted", async () => {
    const ram = openRamStore("gc", { objects: { arenaSize: 2 * MiB } });
    try {
      const fsx = ram.afs.fs;
      for (let i = 0; i < 8; i++) await fsx.writeFile(`/f${i}`, prng(MiB, 100 + i));
      await fsx.writeFile("/keep", prng(256 * 1024, 9));
      const full = ram.objects.stats();
      expect(full.arenas).toBeGreaterThanOrEqual(4);
      expect(full.residentBytes).toBeGreaterThanOrEqual(8 * MiB);
      for (let i = 0; i < 8; i++) await fsx.unlink(`/f${i}`);
      const g = await ram.afs.gc();
      expect(g.objectsRemoved).toBeGreaterThan(8);
      const after = ram.objects.stats();
      expect(after.liveBytes).toBe(256 * 1024);
      expect(after.residentBytes).toBeLessThan(3 * MiB); // pages went back to the kernel
      expect(after.arenas).toBeLessThanOrEqual(2);
      ram.afs.store.cas.clearCache();
      expect(((await fsx.readFile("/keep")) as Buffer).equals(prng(256 * 1024, 9))).toBe(true);
    } finally {
      await ram.close();
    }
  });

  it("MemfdObjectStore: put/get/delete/keys round trip, compaction keeps bodies intact", () => {
    const s = new MemfdObjectStore({ arenaSize: 64 * 1024, compactBelow: 0.5 });
    try {
      const bodies = new Map<string, Buffer>();
      for (let i = 0; i < 40; i++) {
        const h = Buffer.alloc(32, 0);
        h.writeUInt32LE(i, 0);
        const b = prng(5000 + i * 37, i + 1);
        s.put(h, b);
        s.put(h, Buffer.from("ignored: already present"));
        bodies.set(h.toString("hex"), b);
      }
      expect([...s.keys()].length).toBe(40);
      let i = 0;
      for (const k of [...bodies.keys()]) {
        if (i++ % 4 !== 0) {
          s.delete(Buffer.from(k, "hex"));
          bodies.delete(k);
        }
      }
      for (const [k, b] of bodies) expect(s.get(Buffer.from(k, "hex"))!.equals(b)).toBe(true);
      expect(s.get(Buffer.alloc(32, 0xff))).toBeUndefined();
      const st = s.stats();
      expect(st.objects).toBe(10);
      expect(st.usedBytes).toBeLessThan(st.liveBytes * 3); // compaction reclaimed most dead bytes
    } finally {
      s.close();
    }
  });
});
