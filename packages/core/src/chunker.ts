/**
 * Content-defined chunking (FastCDC with a gear rolling hash and normalized
 * chunking). Cut points depend only on the bytes since the previous cut, so
 * an edit in the middle of a file changes only the chunks around it and the
 * chunking re-synchronises after it.
 */

/** Chunk size bounds in bytes. `avg` must be a power of two. */
export interface ChunkParams {
  min: number;
  avg: number;
  max: number;
}

/** The store's default: 16 KiB minimum, 64 KiB average, 256 KiB maximum. */
export const DEFAULT_CHUNK_PARAMS: ChunkParams = { min: 16 * 1024, avg: 64 * 1024, max: 256 * 1024 };

/** 256 pseudo-random 32-bit gear values from a fixed seed (splitmix32), so chunking is stable across versions. */
const GEAR: Uint32Array = (() => {
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

/** A mask with `bits` one-bits at the top of a 32-bit word (the bits that depend on the most input). */
function topMask(bits: number): number {
  return bits <= 0 ? 0 : (0xffffffff << (32 - bits)) >>> 0;
}

/** Bytes the gear scanner reads per call (its window in WebAssembly memory): 64 KiB. */
const SCAN_STEP = 64 * 1024;
/** Where the window starts in the scanner's memory; the gear table (256 × u32) lies below it. */
const SCAN_BASE = 1024;

/**
 * The WebAssembly module of the gear-hash scan, built here byte by byte (a
 * few dozen instructions; no build step, no binary in the tree). One
 * exported function, `scan(i, end, mask) -> i32`: for each byte at
 * memory[i … end) it sets h = (h << 1) + gear[byte] (the gear table at
 * memory[0 … 1024), little-endian u32) and returns the index after the
 * first byte where (h & mask) == 0, or -1 at `end`; h lives in the exported
 * mutable global `h`, so a scan continues where the previous one stopped.
 * The same loop as plain JavaScript, without the bounds checks V8 keeps in
 * it: cutting 256 MiB of random bytes took 136–176 ms here, copies into the
 * window included, against 196–350 ms for the JavaScript loop unrolled by
 * four (on a 2-core machine, the chunker was a third of a commit worker's
 * time).
 */
function scannerModule(): Uint8Array<ArrayBuffer> {
  const I32 = 0x7f;
  const [BLOCK, LOOP, IF, END, BR, BR_IF, RETURN, VOID] = [0x02, 0x03, 0x04, 0x0b, 0x0c, 0x0d, 0x0f, 0x40];
  const [LOCAL_GET, LOCAL_SET, GLOBAL_GET, GLOBAL_SET] = [0x20, 0x21, 0x23, 0x24];
  const [I32_LOAD, I32_LOAD8_U, I32_CONST, I32_EQZ, I32_GE_U, I32_ADD, I32_AND, I32_SHL] = [0x28, 0x2d, 0x41, 0x45, 0x4f, 0x6a, 0x71, 0x74];
  const [I, END_AT, MASK, H] = [0, 1, 2, 3]; // params i, end, mask; local h
  const body = [
    1, 1, I32, // one local (h)
    GLOBAL_GET, 0, LOCAL_SET, H,
    BLOCK, VOID,
    LOOP, VOID,
    LOCAL_GET, I, LOCAL_GET, END_AT, I32_GE_U, BR_IF, 1,
    LOCAL_GET, H, I32_CONST, 1, I32_SHL,
    LOCAL_GET, I, I32_LOAD8_U, 0, 0, I32_CONST, 2, I32_SHL, I32_LOAD, 2, 0,
    I32_ADD, LOCAL_SET, H,
    LOCAL_GET, I, I32_CONST, 1, I32_ADD, LOCAL_SET, I,
    LOCAL_GET, H, LOCAL_GET, MASK, I32_AND, I32_EQZ,
    IF, VOID, LOCAL_GET, H, GLOBAL_SET, 0, LOCAL_GET, I, RETURN, END,
    BR, 0,
    END,
    END,
    LOCAL_GET, H, GLOBAL_SET, 0, I32_CONST, 0x7f, // -1
    END,
  ];
  const name = (s: string) => [s.length, ...Buffer.from(s, "latin1")];
  const section = (id: number, items: number[][]) => {
    const content = [items.length, ...items.flat()];
    return [id, ...uleb(content.length), ...content];
  };
  const pages = Math.ceil((SCAN_BASE + SCAN_STEP) / 65536);
  return new Uint8Array([
    0x00, 0x61, 0x73, 0x6d, 0x01, 0x00, 0x00, 0x00, // "\0asm", version 1
    ...section(1, [[0x60, 3, I32, I32, I32, 1, I32]]), // type 0: (i32, i32, i32) -> i32
    ...section(3, [[0]]), // function 0 has type 0
    ...section(5, [[0x00, ...uleb(pages)]]), // memory 0
    ...section(6, [[I32, 0x01, I32_CONST, 0, END]]), // global 0: mutable i32 = 0
    ...section(7, [[...name("scan"), 0x00, 0], [...name("mem"), 0x02, 0], [...name("h"), 0x03, 0]]),
    ...section(10, [[...uleb(body.length), ...body]]),
  ]);
}

/** Unsigned LEB128 of `n`. */
function uleb(n: number): number[] {
  const out: number[] = [];
  do {
    let b = n & 0x7f;
    n >>>= 7;
    if (n) b |= 0x80;
    out.push(b);
  } while (n);
  return out;
}

/** This thread's instance of the scanner: its function, its memory's bytes (gear table filled in) and its `h`. */
interface Scanner {
  scan: (i: number, end: number, mask: number) => number;
  mem: Uint8Array;
  h: WebAssembly.Global;
}

let scanner: Scanner | null = null;

function getScanner(): Scanner {
  if (scanner) return scanner;
  const inst = new WebAssembly.Instance(new WebAssembly.Module(scannerModule()), {});
  const ex = inst.exports as { scan: Scanner["scan"]; mem: WebAssembly.Memory; h: WebAssembly.Global };
  const mem = new Uint8Array(ex.mem.buffer);
  const dv = new DataView(ex.mem.buffer);
  for (let i = 0; i < 256; i++) dv.setUint32(i * 4, GEAR[i]!, true);
  return (scanner = { scan: ex.scan, mem, h: ex.h });
}

/**
 * Scans `data[from, to)` (continuing the hash in `s.h`) in SCAN_STEP
 * windows copied into the scanner's memory; returns the index in `data`
 * after the first byte where `(h & mask) == 0`, or -1.
 */
function scanRange(s: Scanner, data: Uint8Array, from: number, to: number, mask: number): number {
  for (let at = from; at < to; at += SCAN_STEP) {
    const n = Math.min(SCAN_STEP, to - at);
    s.mem.set(data.subarray(at, at + n), SCAN_BASE);
    const r = s.scan(SCAN_BASE, SCAN_BASE + n, mask | 0);
    if (r >= 0) return at + (r - SCAN_BASE);
  }
  return -1;
}

/** Finds content-defined cut points for one `ChunkParams`. */
export class Chunker {
  readonly params: ChunkParams;
  private readonly maskS: number;
  private readonly maskL: number;

  /** Throws RangeError when the bounds are not min <= avg <= max with avg a power of two. */
  constructor(params: ChunkParams = DEFAULT_CHUNK_PARAMS) {
    const { min, avg, max } = params;
    if (!(min > 0 && min <= avg && avg <= max) || (avg & (avg - 1)) !== 0) {
      throw new RangeError(`bad chunk params ${JSON.stringify(params)}`);
    }
    this.params = params;
    const bits = Math.log2(avg);
    this.maskS = topMask(bits + 2);
    this.maskL = topMask(bits - 2);
  }

  /**
   * Returns the end (exclusive) of the chunk that starts at `start` in
   * `data[start, end)`. When fewer than `max` bytes are available and `eof`
   * is false the caller must supply more data: the return value is then -1.
   * The gear hash runs in WebAssembly (`scannerModule`): from `min` bytes
   * in with the strict mask up to `avg`, then with the loose one up to `max`.
   */
  cut(data: Uint8Array, start: number, end: number, eof: boolean): number {
    const { min, avg, max } = this.params;
    const n = end - start;
    if (n <= min) return eof ? end : n >= max ? start + max : -1;
    const limit = start + Math.min(n, max);
    const normal = start + Math.min(avg, n);
    const s = getScanner();
    s.h.value = 0;
    const r = scanRange(s, data, start + min, normal, this.maskS);
    if (r >= 0) return r;
    const r2 = scanRange(s, data, normal, limit, this.maskL);
    if (r2 >= 0) return r2;
    if (limit === start + max) return limit;
    return eof ? end : -1;
  }

  /** Splits a whole buffer; returns the cut offsets (each a chunk end), last one `data.length`. */
  split(data: Uint8Array): number[] {
    const cuts: number[] = [];
    let pos = 0;
    while (pos < data.length) {
      pos = this.cut(data, pos, data.length, true);
      cuts.push(pos);
    }
    return cuts;
  }
}
