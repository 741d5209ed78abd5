import fs from "node:fs";
import { afterAll, describe, expect, it } from "vitest";
import { exportMemfdStat } from "../src/index.js";
import { MiB, freshStore, isLinux } from "./helpers.js";

/** VmRSS and VmHWM (peak RSS) of this process in bytes. */
function mem(): { rss: number; hwm: number } {
  const s = fs.readFileSync("/proc/self/status", "utf8");
  const kb = (k: string) => Number(new RegExp(`^${k}:\\s+(\\d+) kB`, "m").exec(s)![1]) * 1024;
  return { rss: kb("VmRSS"), hwm: kb("VmHWM") };
}

/** Resets VmHWM to the current RSS (Linux 4.0+: write 5 to clear_refs); false when not allowed. */
function resetPeak(): boolean {
  try {
    fs.writeFileSync("/proc/self/clear_refs", "5");
    return true;
  } catch {
    return false;
  }
}

describe.skipIf(!isLinux)("exportMemfd of a 1 GiB file", () => {
  let cleanup: (() => Promise<void>) | undefined;
  afterAll(async () => {
    await cleanup?.();
  });

  it("streams chunk by chunk: peak RSS grows far less than the file size", async () => {
    const s = await freshStore("agentfs-ermfd-big-");
    cleanup = s.cleanup;
    // 1 GiB of compressible, non-repeating data: every 64 KiB block differs (a counter), so chunks do not dedupe.
    const size = 1024 * MiB;
    const fh = await s.afs.fs.open("/big", "w");
    const block = Buffer.alloc(4 * MiB);
    for (let i = 0; i < block.length; i += 64) block.write(`line ${i.toString(16).padStart(8, "0")} compressible agentfs data...\n`.slice(0, 64), i);
    for (let p = 0; p < size; p += block.length) {
      block.writeUInt32LE(p / block.length, 0);
      for (let k = 65536; k < block.length; k += 65536) block.writeUInt32LE(p + k, k);
      await fh.write(block, 0, block.length, p);
    }
    await fh.close();
    const st = await s.afs.stats();
    expect(st.store.objects).toBeGreaterThan(4000); // no dedup shortcut: thousands of distinct chunks
    expect(st.store.storedBytes).toBeLessThan(size / 4); // compressed: the export really decompresses
    global.gc?.();
    const canReset = resetPeak();
    const before = mem();
    const t0 = process.hrtime.bigint();
    const ex = exportMemfdStat(s.afs, "/big", { seal: true });
    const secs = Number(process.hrtime.bigint() - t0) / 1e9;
    const after = mem();
    try {
      expect(fs.fstatSync(ex.fd).size).toBe(size);
      expect(ex.dataBytes).toBe(size);
      // spot-check a block header
      const b = Buffer.alloc(4);
      fs.readSync(ex.fd, b, 0, 4, 512 * MiB);
      expect(b.readUInt32LE(0)).toBe(128);
    } finally {
      fs.closeSync(ex.fd);
    }
    const growth = (canReset ? after.hwm : after.rss) - before.rss;
    console.log(
      `export 1 GiB (${st.store.objects} chunks, stored ${(st.store.storedBytes / MiB).toFixed(0)} MiB gzip): ` +
        `${secs.toFixed(2)} s (${(1 / secs).toFixed(2)} GiB/s); RSS ${(before.rss / MiB).toFixed(0)} MiB before, ` +
        `peak ${(after.hwm / MiB).toFixed(0)} MiB${canReset ? "" : " (peak not resettable: end RSS used)"}; growth ${(growth / MiB).toFixed(1)} MiB`,
    );
    expect(growth).toBeLessThan(256 * MiB);
  });
});
