/**
 * Sparse files and space: fallocate(2) modes (`FsCore.fallocate`),
 * SEEK_DATA/SEEK_HOLE (`FsCore.seekData`), st_blocks of open and committed
 * files, and `Store.capacity` (what statfs reports), on a real SQLite store.
 * A fast-check property drives random writes, zero writes, truncates, hole
 * punches and commits against a Buffer model and checks the seek and
 * st_blocks invariants after every step.
 */
import { afterEach, beforeEach, describe, expect, it } from "vitest";
import fc from "fast-check";
import { constants as C, statfsSync } from "node:fs";
import { totalmem } from "node:os";
import { AgentFS, FALLOC_FL_KEEP_SIZE, FALLOC_FL_PUNCH_HOLE, MAX_FILE_SIZE, dataBytes, decodeExtents, encodeExtents, encodedDataBytes, type Extent, type FsCore } from "../src/index.js";
import { codeOf, freshStore, prng } from "./helpers.js";

const KiB = 1024;
const MiB = 1024 * KiB;
const PUNCH = FALLOC_FL_PUNCH_HOLE | FALLOC_FL_KEEP_SIZE;

let afs: AgentFS;
let core: FsCore;
let dir: string;
let cleanup: () => Promise<void>;

beforeEach(async () => {
  const s = await freshStore();
  afs = s.afs;
  core = afs.core;
  dir = s.dir;
  cleanup = s.cleanup;
});
afterEach(async () => {
  await cleanup();
});

/** Seek result as lseek(2) would return it: the offset, or the errno name. */
function seek(fd: number, pos: number, data: boolean): number | string {
  try {
    return core.seekData(fd, pos, data);
  } catch (e) {
    return (e as { code: string }).code;
  }
}

function allZero(b: Buffer, lo: number, hi: number): boolean {
  for (let i = lo; i < hi; i++) if (b[i] !== 0) return false;
  return true;
}

/**
 * Checks the SEEK_DATA/SEEK_HOLE and st_blocks invariants of `fd` against
 * `model` (the file's bytes): data found after zeros only, holes read as
 * zero up to the next data, and st_blocks covering every non-zero byte.
 */
function checkInvariants(fd: number, model: Buffer, probes: number[]): void {
  const size = model.length;
  const st = core.fstat(fd);
  expect(st.size).toBe(size);
  let nonZero = 0;
  for (let i = 0; i < size; i++) if (model[i] !== 0) nonZero++;
  expect(st.blocks * 512).toBeGreaterThanOrEqual(nonZero);
  expect(st.blocks * 512).toBeLessThanOrEqual(Math.ceil(size / 4096) * 4096);
  for (const raw of probes) {
    const pos = size === 0 ? 0 : raw % (size + 1);
    const d = seek(fd, pos, true);
    const h = seek(fd, pos, false);
    if (pos >= size) {
      expect([d, h]).toEqual(["ENXIO", "ENXIO"]);
      continue;
    }
    if (d === "ENXIO") expect(allZero(model, pos, size)).toBe(true);
    else {
      expect(typeof d).toBe("number");
      expect(d as number).toBeGreaterThanOrEqual(pos);
      expect(d as number).toBeLessThan(size);
      expect(allZero(model, pos, d as number)).toBe(true);
      // Data starts at d: no hole starts there.
      expect(seek(fd, d as number, false)).toBeGreaterThan(d as number);
    }
    expect(typeof h).toBe("number");
    expect(h as number).toBeGreaterThanOrEqual(pos);
    expect(h as number).toBeLessThanOrEqual(size);
    if ((h as number) < size) {
      // A hole starts at h: no data starts there, and it reads as zero up to the next data.
      const next = seek(fd, h as number, true);
      expect(next === "ENXIO" || (next as number) > (h as number)).toBe(true);
      expect(allZero(model, h as number, next === "ENXIO" ? size : (next as number))).toBe(true);
    }
  }
}

type Op =
  | { t: "write"; pos: number; len: number; zero: boolean; seed: number }
  | { t: "truncate"; size: number }
  | { t: "punch"; pos: number; len: number }
  | { t: "extend"; pos: number; len: number }
  | { t: "commit" };

const SPAN = 2 * MiB;
const opArb: fc.Arbitrary<Op> = fc.oneof(
  fc.record({ t: fc.constant("write" as const), pos: fc.nat(SPAN), len: fc.integer({ min: 1, max: 300 * KiB }), zero: fc.boolean(), seed: fc.integer({ min: 1, max: 1e6 }) }),
  fc.record({ t: fc.constant("truncate" as const), size: fc.nat(SPAN) }),
  fc.record({ t: fc.constant("punch" as const), pos: fc.nat(SPAN), len: fc.integer({ min: 1, max: SPAN }) }),
  fc.record({ t: fc.constant("extend" as const), pos: fc.nat(SPAN), len: fc.integer({ min: 1, max: 300 * KiB }) }),
  fc.constant({ t: "commit" as const }),
);

describe("SEEK_DATA / SEEK_HOLE and st_blocks", () => {
  it("hold their invariants over random writes, zero writes, truncates, punches and commits (fast-check)", () => {
    let n = 0;
    fc.assert(
      fc.property(fc.array(opArb, { minLength: 1, maxLength: 12 }), fc.array(fc.nat(), { minLength: 6, maxLength: 6 }), (ops, probes) => {
        const path = `/f${n++}`;
        let fd = core.openFile(path, C.O_RDWR | C.O_CREAT, 0o644);
        let model = Buffer.alloc(0);
        try {
          for (const op of ops) {
            if (op.t === "write") {
              const data = op.zero ? Buffer.alloc(op.len) : prng(op.len, op.seed);
              core.write(fd, data, 0, op.len, op.pos);
              if (op.pos + op.len > model.length) model = Buffer.concat([model, Buffer.alloc(op.pos + op.len - model.length)]);
              data.copy(model, op.pos);
            } else if (op.t === "truncate") {
              core.ftruncate(fd, op.size);
              model = op.size <= model.length ? Buffer.from(model.subarray(0, op.size)) : Buffer.concat([model, Buffer.alloc(op.size - model.length)]);
            } else if (op.t === "punch") {
              core.fallocate(fd, PUNCH, op.pos, op.len);
              model.fill(0, Math.min(op.pos, model.length), Math.min(op.pos + op.len, model.length));
            } else if (op.t === "extend") {
              core.fallocate(fd, 0, op.pos, op.len);
              if (op.pos + op.len > model.length) model = Buffer.concat([model, Buffer.alloc(op.pos + op.len - model.length)]);
            } else {
              core.close(fd);
              fd = core.openFile(path, C.O_RDWR, 0o644);
            }
            checkInvariants(fd, model, probes);
            const got = Buffer.alloc(model.length);
            expect(core.read(fd, got, 0, got.length, 0)).toBe(model.length);
            expect(got.equals(model)).toBe(true);
          }
          // Committed and read back through a read-only descriptor (extents, no working buffer).
          core.close(fd);
          fd = core.openFile(path, C.O_RDONLY);
          checkInvariants(fd, model, probes);
        } finally {
          core.close(fd);
        }
      }),
      { numRuns: 40 },
    );
  });

  it("a punch with no whole 64 KiB page inside that crosses a page boundary zeroes both partial pages (the fast-check counterexample)", () => {
    // Committed data, then a punch of [655361, 720897): the last byte lies in the next page, which the
    // punch had zeroed without loading it first, so its committed byte came back on the next read.
    let fd = core.openFile("/x", C.O_RDWR | C.O_CREAT, 0o644);
    const data = prng(260808, 1);
    core.write(fd, data, 0, data.length, 460089);
    core.close(fd);
    fd = core.openFile("/x", C.O_RDWR, 0o644);
    try {
      core.fallocate(fd, PUNCH, 655361, 65536);
      const want = Buffer.alloc(460089 + 260808);
      data.copy(want, 460089);
      want.fill(0, 655361);
      const got = Buffer.alloc(want.length);
      expect(core.read(fd, got, 0, got.length, 0)).toBe(want.length);
      expect(got.equals(want)).toBe(true);
    } finally {
      core.close(fd);
    }
    const rfd = core.openFile("/x", C.O_RDONLY);
    try {
      const got = Buffer.alloc(4);
      expect(core.read(rfd, got, 0, 4, 720893)).toBe(4);
      expect([...got]).toEqual([0, 0, 0, 0]);
    } finally {
      core.close(rfd);
    }
  });

  it("finds a 1 MiB data region exactly, open and committed, and reports ENXIO past the end", () => {
    const fd = core.openFile("/s", C.O_RDWR | C.O_CREAT, 0o644);
    core.ftruncate(fd, 4 * MiB);
    core.write(fd, prng(MiB, 7), 0, MiB, MiB);
    for (const when of ["open", "committed"]) {
      const rfd = when === "open" ? fd : core.openFile("/s", C.O_RDONLY);
      expect(core.seekData(rfd, 0, true)).toBe(MiB);
      expect(core.seekData(rfd, 0, false)).toBe(0);
      // Open: holes are known per 64 KiB page, so the data ends exactly; committed: at a chunk end at or after it.
      if (when === "open") expect(core.seekData(rfd, MiB, false)).toBe(2 * MiB);
      else expect(core.seekData(rfd, MiB, false)).toBeGreaterThanOrEqual(2 * MiB);
      expect(seek(rfd, 3 * MiB, true)).toBe("ENXIO");
      expect(seek(rfd, 4 * MiB, false)).toBe("ENXIO");
      expect(seek(rfd, -1, true)).toBe("ENXIO");
      expect(core.fstat(rfd).blocks * 512).toBeLessThan(2 * MiB);
      if (when === "open") core.close(fd);
      else core.close(rfd);
    }
  });

  it("a truncated-up file is all hole: st_blocks 0 while open and after close", () => {
    const fd = core.openFile("/t", C.O_RDWR | C.O_CREAT, 0o644);
    core.ftruncate(fd, 64 * MiB);
    expect(core.fstat(fd).blocks).toBe(0);
    core.close(fd);
    expect(core.stat("/t").blocks).toBe(0);
    expect(core.stat("/t").size).toBe(64 * MiB);
  });

  it("a file written front to back counts every byte (no scan needed)", () => {
    const fd = core.openFile("/d", C.O_RDWR | C.O_CREAT, 0o644);
    for (let i = 0; i < 8; i++) core.write(fd, prng(100 * KiB, i + 1), 0, 100 * KiB, null);
    expect(core.fstat(fd).blocks).toBe(Math.ceil((800 * KiB) / 4096) * 8);
    expect(core.seekData(fd, 0, false)).toBe(800 * KiB);
    core.close(fd);
  });
});

describe("fallocate", () => {
  it("punching frees committed space: st_blocks drops and the range reads as zero after close", () => {
    const data = prng(4 * MiB, 3);
    const fd = core.openFile("/p", C.O_RDWR | C.O_CREAT, 0o644);
    core.write(fd, data, 0, data.length, 0);
    core.close(fd);
    const before = core.stat("/p").blocks;
    const wfd = core.openFile("/p", C.O_RDWR);
    core.fallocate(wfd, PUNCH, MiB, 2 * MiB);
    expect(core.fstat(wfd).size).toBe(4 * MiB);
    core.close(wfd);
    const st = core.stat("/p");
    expect(st.size).toBe(4 * MiB);
    // The chunks wholly inside the hole are gone; the ones at its edges (at most 256 KiB each) remain.
    expect(before - st.blocks).toBeGreaterThanOrEqual(((2 * MiB - 2 * 256 * KiB) / 512) | 0);
    const got = Buffer.alloc(4 * MiB);
    const rfd = core.openFile("/p", C.O_RDONLY);
    core.read(rfd, got, 0, got.length, 0);
    core.close(rfd);
    expect(got.subarray(0, MiB).equals(data.subarray(0, MiB))).toBe(true);
    expect(allZero(got, MiB, 3 * MiB)).toBe(true);
    expect(got.subarray(3 * MiB).equals(data.subarray(3 * MiB))).toBe(true);
  });

  it("punching the whole of a 64 TiB sparse file with data at both ends: the data reads as zero, the size stays, the work is bounded by the data", () => {
    const size = 2 ** 46;
    const head = prng(300 * KiB, 8);
    const tail = prng(200 * KiB, 9);
    const fd = core.openFile("/huge", C.O_RDWR | C.O_CREAT, 0o644);
    core.ftruncate(fd, size);
    core.write(fd, head, 0, head.length, 0);
    core.write(fd, tail, 0, tail.length, size - tail.length);
    core.close(fd);
    // Once committed (data in the base) and once while only in the working buffer.
    for (const reopen of [true, false]) {
      const wfd = core.openFile("/huge", C.O_RDWR);
      if (!reopen) core.write(wfd, head, 0, head.length, 0);
      core.fallocate(wfd, PUNCH, 0, size);
      expect(core.fstat(wfd).size).toBe(size);
      expect(seek(wfd, 0, true)).toBe("ENXIO");
      core.close(wfd);
      const st = core.stat("/huge");
      expect(st.size).toBe(size);
      expect(st.blocks).toBe(0);
      const rfd = core.openFile("/huge", C.O_RDONLY);
      const got = Buffer.alloc(300 * KiB, 1);
      core.read(rfd, got, 0, got.length, 0);
      expect(allZero(got, 0, got.length)).toBe(true);
      got.fill(1);
      core.read(rfd, got, 0, 200 * KiB, size - 200 * KiB);
      expect(allZero(got, 0, 200 * KiB)).toBe(true);
      core.close(rfd);
    }
  }, 60_000);

  it("mode 0 grows the size, KEEP_SIZE does not; both change mtime and ctime", async () => {
    const fd = core.openFile("/g", C.O_RDWR | C.O_CREAT, 0o644);
    core.write(fd, Buffer.from("abc"), 0, 3, 0);
    core.close(fd);
    const t0 = core.stat("/g");
    await new Promise((r) => setTimeout(r, 5));
    const wfd = core.openFile("/g", C.O_RDWR);
    core.fallocate(wfd, FALLOC_FL_KEEP_SIZE, 0, MiB);
    expect(core.fstat(wfd).size).toBe(3);
    core.fallocate(wfd, 0, 0, 2); // inside: no change of size
    expect(core.fstat(wfd).size).toBe(3);
    core.fallocate(wfd, 0, 100, 900);
    expect(core.fstat(wfd).size).toBe(1000);
    core.close(wfd);
    const t1 = core.stat("/g");
    expect(t1.size).toBe(1000);
    expect(t1.mtimeNs).toBeGreaterThan(t0.mtimeNs);
    expect(t1.ctimeNs).toBeGreaterThan(t0.ctimeNs);
    const got = Buffer.alloc(1000);
    const rfd = core.openFile("/g", C.O_RDONLY);
    core.read(rfd, got, 0, 1000, 0);
    core.close(rfd);
    expect(got.subarray(0, 3).toString()).toBe("abc");
    expect(allZero(got, 3, 1000)).toBe(true);
  });

  it("errors as Linux orders them: EINVAL, ENOTSUP, EBADF, EFBIG; nothing changes", () => {
    const fd = core.openFile("/e", C.O_RDWR | C.O_CREAT, 0o644);
    core.write(fd, Buffer.from("data"), 0, 4, 0);
    const ro = core.openFile("/e", C.O_RDONLY);
    expect(codeOf(() => core.fallocate(fd, 0, -1, 10))).toBe("EINVAL");
    expect(codeOf(() => core.fallocate(fd, 0, 0, 0))).toBe("EINVAL");
    expect(codeOf(() => core.fallocate(ro, 0x10, 0, 0))).toBe("EINVAL");
    for (const mode of [FALLOC_FL_PUNCH_HOLE, 0x10, 0x11, 0x08, 0x20, 0x40]) expect(codeOf(() => core.fallocate(fd, mode, 0, 4096))).toBe("ENOTSUP");
    expect(codeOf(() => core.fallocate(ro, 0, 0, 10))).toBe("EBADF");
    expect(codeOf(() => core.fallocate(fd, 0, MAX_FILE_SIZE - 10, 11))).toBe("EFBIG");
    expect(codeOf(() => core.fallocate(fd, 0, MAX_FILE_SIZE - 10, 10))).toBe("ok");
    core.ftruncate(fd, 4);
    expect(core.fstat(fd).size).toBe(4);
    core.close(ro);
    core.close(fd);
    const got = Buffer.alloc(8);
    const rfd = core.openFile("/e", C.O_RDONLY);
    expect(core.read(rfd, got, 0, 8, 0)).toBe(4);
    core.close(rfd);
    expect(got.subarray(0, 4).toString()).toBe("data");
  });
});

describe("Store.capacity (statfs)", () => {
  it("reports the host filesystem of a disk store", () => {
    const c = afs.store.capacity();
    const h = statfsSync(dir);
    expect(c.bsize).toBe(h.bsize);
    expect(c.blocks).toBe(h.blocks);
    expect(c.files).toBe(h.files);
    expect(c.bfree).toBeGreaterThan(0);
    expect(c.bavail).toBeLessThanOrEqual(c.bfree);
    expect(Math.abs(c.bavail - h.bavail)).toBeLessThan(h.blocks / 100 + 1024);
  });

  it("reports the machine's memory for a RAM store", async () => {
    const ram = await AgentFS.open("ram-capacity-test", { inMemory: true, create: true });
    try {
      const c = ram.store.capacity();
      expect(c.bsize).toBe(4096);
      expect(c.blocks).toBe(Math.floor(totalmem() / 4096));
      expect(c.bfree).toBeGreaterThan(0);
      expect(c.bfree).toBeLessThanOrEqual(c.blocks);
    } finally {
      ram.closeSync();
    }
  });
});

describe("encodedDataBytes (st_blocks of a committed file)", () => {
  it("equals dataBytes of the decoded extents, and a damaged encoding is EIO", () => {
    const ext = fc.record({ len: fc.integer({ min: 1, max: 2 ** 40 }), data: fc.boolean() });
    fc.assert(
      fc.property(fc.array(ext, { maxLength: 40 }), fc.nat(), (xs, cut) => {
        let off = 0;
        const exts: Extent[] = xs.map(({ len, data }) => {
          const e = { off, len, hash: data ? prng(32, len) : null };
          off += len;
          return e;
        });
        const enc = encodeExtents(exts);
        expect(encodedDataBytes(enc)).toBe(dataBytes(decodeExtents(enc)));
        // Cut anywhere inside: the same error as decodeExtents, never a wrong count.
        if (enc.length > 0) {
          const bad = enc.subarray(0, cut % enc.length);
          const want = codeOf(() => decodeExtents(bad));
          expect(codeOf(() => encodedDataBytes(bad))).toBe(want);
        }
      }),
      { numRuns: 300 },
    );
    expect(encodedDataBytes(null)).toBe(0);
    expect(codeOf(() => encodedDataBytes(Buffer.from([7, 0, 0, 0, 0, 0, 0])))).toBe("EIO");
  });
});
