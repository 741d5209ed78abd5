/**
 * Content-defined chunking must cut where it always cut: a store written by
 * an earlier version dedups against new writes only if the same bytes give
 * the same chunks. Golden cut lists (recorded with the per-byte loop before
 * it was unrolled) and a property test against that per-byte loop, with
 * random data, sizes, chunk parameters and partial input (eof false).
 */
import { describe, expect, it } from "vitest";
import fc from "fast-check";
import { createHash } from "node:crypto";
import { Chunker, DEFAULT_CHUNK_PARAMS, type ChunkParams } from "../src/chunker.js";

/** A deterministic pseudo-random byte stream (SHA-256 of a counter). */
function stream(n: number): Uint8Array {
  const d = new Uint8Array(n);
  for (let i = 0, k = 0; i < n; i += 32, k++) d.set(createHash("sha256").update("agentfs-chunker-" + k).digest().subarray(0, Math.min(32, n - i)), i);
  return d;
}

/** Deterministic text-like bytes: words from a small vocabulary. */
function text(n: number): Uint8Array {
  const w = ["alpha ", "beta ", "gamma ", "delta\n", "epsilon ", "zeta ", "eta\n", "theta "];
  const b = Buffer.allocUnsafe(n);
  let s = 7;
  let p = 0;
  while (p < n) {
    s = (Math.imul(s, 1103515245) + 12345) >>> 0;
    p += b.write(w[s >>> 29]!.slice(0, n - p), p, "latin1");
  }
  return b;
}

/** Chunk lengths of `d` as a streaming caller sees them (windows of at most `max` bytes). */
function cutAll(c: Chunker, d: Uint8Array): number[] {
  const max = c.params.max;
  const out: number[] = [];
  for (let pos = 0; pos < d.length; ) {
    const e = c.cut(d, pos, Math.min(d.length, pos + max), pos + max >= d.length);
    out.push(e - pos);
    pos = e;
  }
  return out;
}

/** The gear table, as chunker.ts builds it (splitmix32 from a fixed seed). */
const GEAR = (() => {
  const t = new Uint32Array(256);
  let s = 0x9e3779b9;
  for (let i = 0; i < 256; i++) {
    s = (s + 0x9e3779b9) >>> 0;
    let z = s;
    z = Math.imul(z ^ (z >>> 16), 0x85ebca6b) >>> 0;
    z = Math.imul(z ^ (z >>> 13), 0xc2b2ae35) >>> 0;
    t[i] = (z ^ (z >>> 16)) >>> 0;
  }
  return t;
})();

/** The reference: FastCDC's per-byte loop with normalized chunking, as written before the unrolling. */
function referenceCut(p: ChunkParams, data: Uint8Array, start: number, end: number, eof: boolean): number {
  const bits = Math.log2(p.avg);
  const top = (b: number) => (b <= 0 ? 0 : (0xffffffff << (32 - b)) >>> 0);
  const maskS = top(bits + 2);
  const maskL = top(bits - 2);
  const n = end - start;
  if (n <= p.min) return eof ? end : n >= p.max ? start + p.max : -1;
  const limit = start + Math.min(n, p.max);
  const normal = start + Math.min(p.avg, n);
  let h = 0;
  let i = start + p.min;
  for (; i < normal; i++) {
    h = ((h << 1) + GEAR[data[i]!]!) | 0;
    if ((h & maskS) === 0) return i + 1;
  }
  for (; i < limit; i++) {
    h = ((h << 1) + GEAR[data[i]!]!) | 0;
    if ((h & maskL) === 0) return i + 1;
  }
  if (limit === start + p.max) return limit;
  return eof ? end : -1;
}

const digest = (cuts: number[]) => createHash("sha256").update(cuts.join(",")).digest("hex");

describe("Chunker", () => {
  it("cuts 8 MiB of pseudo-random and of text-like bytes exactly where earlier versions did", () => {
    const c = new Chunker(DEFAULT_CHUNK_PARAMS);
    const r = cutAll(c, stream(8 << 20));
    const t = cutAll(c, text(8 << 20));
    expect([r.length, digest(r)]).toEqual([108, "0788abe051de1873af1d30033f44c46124c7975fa8526d28ebd3b47b5f92be37"]);
    expect([t.length, digest(t)]).toEqual([114, "6b60062f7bf5e6413a957acbeab2b6843479c9942ebe279952514c317cc83689"]);
  });

  it("every cut equals the per-byte reference loop (random bytes, windows, parameters, partial input)", () => {
    const params = fc.constantFrom<ChunkParams>(
      { min: 64, avg: 256, max: 1024 },
      { min: 1, avg: 4, max: 16 },
      { min: 100, avg: 128, max: 131 },
      { min: 2048, avg: 8192, max: 32768 },
    );
    fc.assert(
      fc.property(params, fc.integer({ min: 0, max: 40_000 }), fc.integer(), fc.nat(), fc.nat(), fc.boolean(), fc.nat(7), (p, len, seed, a, b, eof, skew) => {
        // Bytes from a seeded generator (fast-check's own arrays are mostly short); low-entropy ones
        // too (`skew`), so short chunks and long runs without a cut both occur.
        const d = new Uint8Array(len);
        let s = seed >>> 0;
        for (let i = 0; i < len; i++) {
          s = (Math.imul(s, 1664525) + 1013904223) >>> 0;
          d[i] = skew ? (s >>> 24) % (skew + 1) : s >>> 24;
        }
        const start = d.length ? a % d.length : 0;
        const end = start + (d.length - start ? b % (d.length - start + 1) : 0);
        expect(new Chunker(p).cut(d, start, end, eof)).toBe(referenceCut(p, d, start, end, eof));
      }),
      { numRuns: 400 },
    );
  });
});
