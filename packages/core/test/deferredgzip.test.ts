/**
 * Deferred compression (`Store.deferCompression`, `DeferredCompressor`): a
 * small file's chunks are stored raw at close and swapped for their gzip
 * bodies by a worker shortly after, on a real SQLite file. Reads, CRC-32
 * and fsck stay right throughout; objects that are gone or no longer raw
 * by their turn, and incompressible ones, stay as they are; stopping compresses what
 * is left; a failing worker leaves raw (valid) objects; stores with an
 * object backend never defer.
 */
import { beforeAll, describe, expect, it } from "vitest";
import { join } from "node:path";
import { tmpdir } from "node:os";
import { CODEC_GZIP, CODEC_RAW, DeferredCompressor, FsCore, Store, encodeChunk, fsck, gc, sha256, type ObjectBackend } from "../src/index.js";
import { ensureDist, prng, readFile, withStore, writeFile } from "./helpers.js";

beforeAll(() => {
  ensureDist(); // the worker runs dist/commitworker.js
}, 120_000);

const TEXT = Buffer.from("the quick brown fox jumps over the lazy dog\n".repeat(40)); // 1760 bytes, compressible

interface Row {
  codec: number;
  size: number;
  stored: number;
  crc: number;
  n: number;
}
const rowOf = (s: Store, data: Buffer) =>
  s.manifest.db.prepare(`SELECT codec, size, stored, crc, length(data) AS n FROM objects WHERE hash = ?`).get(sha256(data)) as Row | undefined;

describe("deferred compression", () => {
  it("stores a small file raw at close, then swaps in its gzip body with the same CRC-32; reads and fsck agree at every step", async () => {
    await withStore(async ({ store, core }) => {
      const dc = new DeferredCompressor(store);
      writeFile(core, "/a.txt", TEXT);
      const raw = rowOf(store, TEXT)!;
      expect(raw).toMatchObject({ codec: CODEC_RAW, size: TEXT.length, stored: TEXT.length, n: TEXT.length });
      store.cas.clearCache();
      expect(readFile(core, "/a.txt").equals(TEXT)).toBe(true);
      expect(fsck(store).ok).toBe(true);

      await dc.idle();
      const gz = rowOf(store, TEXT)!;
      expect(gz.codec).toBe(CODEC_GZIP);
      expect(gz.stored).toBe(gz.n);
      expect(gz.stored).toBeLessThan(TEXT.length / 4);
      expect(gz.crc).toBe(raw.crc);
      store.cas.clearCache();
      expect(readFile(core, "/a.txt").equals(TEXT)).toBe(true);
      expect(fsck(store).ok).toBe(true);
      dc.stop();
      expect(dc.stats).toEqual({ compressed: 1, keptRaw: 0, bytesSaved: TEXT.length - gz.stored, failures: 0 });
    });
  });

  it("incompressible chunks stay raw; writes after stopping are compressed at once", async () => {
    await withStore(async ({ store, core }) => {
      const dc = new DeferredCompressor(store);
      const noise = prng(3000, 7);
      writeFile(core, "/noise", noise);
      await dc.idle();
      expect(rowOf(store, noise)!.codec).toBe(CODEC_RAW);
      dc.stop();
      expect(dc.stats).toMatchObject({ compressed: 0, keptRaw: 1 });
      writeFile(core, "/later.txt", TEXT);
      expect(rowOf(store, TEXT)!.codec).toBe(CODEC_GZIP);
    });
  });

  it("Store.deferCompression: turning it off compresses what is still queued, synchronously, and reports the counters", async () => {
    await withStore(async ({ store, core }) => {
      store.deferCompression(true);
      const files = Array.from({ length: 300 }, (_, i) => Buffer.from(`file ${i}\n`.repeat(100)));
      files.forEach((d, i) => writeFile(core, `/f${i}`, d));
      expect(files.every((d) => rowOf(store, d)!.codec === CODEC_RAW)).toBe(true);
      const st = store.deferCompression(false)!;
      expect(files.every((d) => rowOf(store, d)!.codec === CODEC_GZIP)).toBe(true);
      expect(st.compressed).toBe(300);
      store.cas.clearCache();
      expect(files.every((d, i) => readFile(core, `/f${i}`).equals(d))).toBe(true);
      expect(fsck(store).ok).toBe(true);
    });
  });

  it("leaves alone objects gc removed or something compressed meanwhile; compresses the bytes it queued, never what the row holds by then", async () => {
    await withStore(async ({ store, core }) => {
      const dc = new DeferredCompressor(store);
      const gone = Buffer.from("deleted before its turn\n".repeat(50));
      const done = Buffer.from("compressed before its turn\n".repeat(50));
      const bad = Buffer.from("damaged before its turn\n".repeat(50));
      writeFile(core, "/gone", gone);
      writeFile(core, "/done", done);
      writeFile(core, "/bad", bad);
      core.unlink("/gone");
      gc(store);
      expect(rowOf(store, gone)).toBeUndefined();
      const db = store.manifest.db;
      const gz = encodeChunk(done, 9);
      db.prepare(`UPDATE objects SET data = ?, stored = ?, codec = ? WHERE hash = ?`).run(gz.body, gz.body.length, gz.codec, sha256(done));
      const flipped = Buffer.from(bad);
      flipped[100] ^= 1;
      db.prepare(`UPDATE objects SET data = ? WHERE hash = ?`).run(flipped, sha256(bad));
      expect(fsck(store).ok).toBe(false);
      await dc.idle();
      expect(rowOf(store, done)!.stored).toBe(gz.body.length); // level 9's body, not replaced
      expect(rowOf(store, bad)!.codec).toBe(CODEC_GZIP); // from the queued bytes: the damage is gone
      store.cas.clearCache();
      expect(readFile(core, "/bad").equals(bad)).toBe(true);
      expect(readFile(core, "/done").equals(done)).toBe(true);
      expect(fsck(store).ok).toBe(true);
      dc.stop();
      expect(dc.stats).toMatchObject({ compressed: 1, keptRaw: 2 });
    });
  });

  it("one batch of many small chunks, compressible and not, comes back whole (no failure from buffers the chunks share)", async () => {
    await withStore(async ({ store, core }) => {
      const dc = new DeferredCompressor(store);
      const text = Array.from({ length: 120 }, (_, i) => Buffer.from(`small text file ${i}\n`.repeat(5 + (i % 30))));
      const noise = Array.from({ length: 120 }, (_, i) => prng(100 + i * 7, i + 1));
      text.forEach((d, i) => writeFile(core, `/t${i}`, d));
      noise.forEach((d, i) => writeFile(core, `/n${i}`, d));
      await dc.idle();
      expect(dc.stats.failures).toBe(0);
      expect(dc.stats.compressed).toBe(120);
      expect(text.every((d) => rowOf(store, d)!.codec === CODEC_GZIP)).toBe(true);
      store.cas.clearCache();
      expect(noise.every((d, i) => readFile(core, `/n${i}`).equals(d))).toBe(true);
      expect(fsck(store).ok).toBe(true);
      dc.stop();
    });
  });

  it("a batch the worker fails on stays raw and valid; later batches still run", async () => {
    await withStore(async ({ store, core }) => {
      let calls = 0;
      const pool = {
        encode: async (chunks: Uint8Array[], level: number) => {
          if (calls++ === 0) throw new Error("worker died");
          const { CommitPool } = await import("../src/index.js");
          return CommitPool.shared().encode(chunks, level);
        },
      };
      const dc = new DeferredCompressor(store, pool);
      writeFile(core, "/one.txt", TEXT);
      await dc.idle();
      expect(dc.stats.failures).toBe(1);
      expect(rowOf(store, TEXT)!.codec).toBe(CODEC_RAW);
      store.cas.clearCache();
      expect(readFile(core, "/one.txt").equals(TEXT)).toBe(true);
      const two = Buffer.from("second batch\n".repeat(100));
      writeFile(core, "/two.txt", two);
      await dc.idle();
      expect(rowOf(store, two)!.codec).toBe(CODEC_GZIP);
      dc.stop();
      expect(fsck(store).ok).toBe(true);
    });
  });

  it("a store with an object backend never defers", () => {
    const bodies = new Map<string, Buffer>();
    const be: ObjectBackend = {
      kind: "map",
      put: (h, b) => void bodies.set(h.toString("hex"), Buffer.from(b)),
      get: (h) => bodies.get(h.toString("hex")),
      delete: (h) => void bodies.delete(h.toString("hex")),
      keys: () => [...bodies.keys()].map((k) => Buffer.from(k, "hex")),
    };
    const store = Store.open(join(tmpdir(), `agentfs-defer-ram-${process.pid}`), { create: true, inMemory: true, objectBackend: be });
    try {
      store.deferCompression(true);
      writeFile(new FsCore(store, { branch: "main" }, { umask: 0o022 }), "/a.txt", TEXT);
      expect(rowOf(store, TEXT)!.codec).toBe(CODEC_GZIP);
      expect(store.deferCompression(false)).toMatchObject({ compressed: 0, keptRaw: 0 });
    } finally {
      store.close();
    }
  });
});
