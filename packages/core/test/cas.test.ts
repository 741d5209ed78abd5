/**
 * The CAS's encoding decision: `looksIncompressible` (an entropy probe that
 * spares random or already-compressed chunks the deflate) and `encodeChunk`
 * (gzip when it saves at least 1/16, else raw), for every length around the
 * probe's bounds, odd ones included (an odd length below 4 KiB once made the
 * probe read fractional indexes: estimate 0 bits, and a slow path).
 */
import { describe, expect, it } from "vitest";
import { createHash } from "node:crypto";
import { gunzipSync } from "node:zlib";
import { join } from "node:path";
import { CODEC_GZIP, CODEC_RAW, encodeChunk, looksIncompressible, sha256 } from "../src/cas.js";
import { Store } from "../src/index.js";
import { tempDir } from "./helpers.js";

/** Deterministic pseudo-random bytes (SHA-256 of a counter). */
function random(n: number): Uint8Array {
  const d = new Uint8Array(n);
  for (let i = 0, k = 0; i < n; i += 32, k++) d.set(createHash("sha256").update(String(k)).digest().subarray(0, Math.min(32, n - i)), i);
  return d;
}

/** Text-like bytes: English-ish words. */
function text(n: number): Uint8Array {
  const words = "the quick brown fox jumps over the lazy dog while a filesystem keeps every byte ".split(" ");
  const b = Buffer.alloc(n);
  for (let p = 0, k = 0; p < n; k++) p += b.write(words[(k * 7) % words.length]! + " ", p, "latin1");
  return b;
}

describe("looksIncompressible and encodeChunk", () => {
  const lengths = [1024, 1025, 1500, 2047, 2048, 3001, 4095, 4096, 4097, 65537];

  it("random bytes of every length from 1 KiB look incompressible and are stored raw", () => {
    for (const n of lengths) {
      const d = random(n);
      expect(looksIncompressible(d), `length ${n}`).toBe(true);
      const e = encodeChunk(d, 1);
      expect([n, e.codec, e.body]).toEqual([n, CODEC_RAW, d]);
    }
  });

  it("text looks compressible and is stored gzip-compressed, round-tripping; under 1 KiB the probe says no", () => {
    for (const n of lengths) {
      const d = text(n);
      expect(looksIncompressible(d), `length ${n}`).toBe(false);
      const e = encodeChunk(d, 1);
      expect(e.codec).toBe(CODEC_GZIP);
      expect(Buffer.from(gunzipSync(e.body)).equals(Buffer.from(d))).toBe(true);
    }
    expect(looksIncompressible(random(1023))).toBe(false);
  });

  // put() caches small chunks as verified. Storing the same chunk again must not count its bytes twice:
  // the count would creep up to the limit and the cache would then keep nothing. Seen from outside: a
  // chunk stored 40,000 times (more than 32 MiB counted twice over) is still served from the cache
  // after its stored bytes are damaged, where a miss would fetch them and fail with EIO.
  it("a small chunk stored many times stays cached once (the cache's byte count does not creep)", () => {
    const t = tempDir("agentfs-cas-");
    const store = Store.open(join(t.dir, "store"), { create: true });
    try {
      const data = text(1000);
      const hash = sha256(data);
      store.manifest.write(() => {
        for (let i = 0; i < 40_000; i++) store.cas.put(hash, data);
      });
      store.manifest.db.prepare("UPDATE objects SET data = zeroblob(length(data)) WHERE hash = ?").run(hash);
      expect(Buffer.from(store.cas.get(hash)).equals(Buffer.from(data))).toBe(true);
      store.cas.clearCache();
      expect(() => store.cas.get(hash)).toThrow(expect.objectContaining({ code: "EIO" }));
    } finally {
      store.close();
      t.cleanup();
    }
  });
});
