/**
 * MemoryBuffer, the portable working buffer: pages it lets go of are reused
 * by the next page any buffer allocates, and a reused page must never show
 * the bytes it held before.
 */
import { describe, expect, it, vi } from "vitest";
import { FREE_PAGES_IDLE_MS, MEMORY_PAGE_SIZE, MemoryBuffer, freePageCount } from "../src/backstore.js";

const PAGE = MEMORY_PAGE_SIZE;

/** The buffer's bytes `[0, n)`. */
function bytes(b: MemoryBuffer, n: number): Buffer {
  const out = Buffer.alloc(n, 0x55);
  expect(b.read(out, 0, n, 0)).toBe(Math.min(n, b.size));
  return out;
}

describe("MemoryBuffer", () => {
  // First in the file: the free list's idle timer is armed by the first page freed in this module.
  it("the free list is emptied once no page was taken from it for FREE_PAGES_IDLE_MS; heldBytes counts pages held", () => {
    vi.useFakeTimers();
    try {
      const a = new MemoryBuffer();
      for (let i = 0; i < 4; i++) a.write(Buffer.alloc(PAGE, 1), 0, PAGE, i * PAGE);
      expect(a.heldBytes).toBe(4 * PAGE);
      a.punchHole(PAGE, 2 * PAGE);
      expect(a.heldBytes).toBe(2 * PAGE);
      a.truncate(PAGE);
      expect(a.heldBytes).toBe(PAGE);
      a.dispose();
      expect(freePageCount()).toBe(4);
      const b = new MemoryBuffer();
      b.write(Buffer.alloc(PAGE, 2), 0, PAGE, 0); // takes one: the list is in use
      vi.advanceTimersByTime(FREE_PAGES_IDLE_MS + 10);
      expect(freePageCount()).toBe(3);
      vi.advanceTimersByTime(FREE_PAGES_IDLE_MS + 10); // a whole period without a take
      expect(freePageCount()).toBe(0);
      b.dispose();
    } finally {
      vi.useRealTimers();
    }
  });

  it("a page freed by dispose, punchHole or truncate and taken by another buffer shows none of its old bytes", () => {
    for (const free of ["dispose", "punch", "truncate"] as const) {
      const old = new MemoryBuffer();
      for (let i = 0; i < 8; i++) old.write(Buffer.alloc(PAGE, 0xab), 0, PAGE, i * PAGE);
      if (free === "dispose") old.dispose();
      else if (free === "punch") old.punchHole(0, 8 * PAGE);
      else old.truncate(0);
      if (free === "punch") expect(old.hasData(0, 8 * PAGE)).toBe(false);
      // New pages, each written in part only: a write in the middle, one at the end, one growing the size.
      const b = new MemoryBuffer();
      b.write(Buffer.from("middle"), 0, 6, 40_000);
      b.write(Buffer.from("end"), 0, 3, 2 * PAGE - 3);
      b.truncate(5 * PAGE);
      b.write(Buffer.from("past"), 0, 4, 4 * PAGE + 50_000);
      const want = Buffer.alloc(5 * PAGE);
      want.write("middle", 40_000);
      want.write("end", 2 * PAGE - 3);
      want.write("past", 4 * PAGE + 50_000);
      expect(bytes(b, 5 * PAGE).equals(want), `after ${free}`).toBe(true);
      // The old buffer (punched or truncated) reads zeros where its pages were.
      if (free !== "dispose") expect(bytes(old, old.size).every((x) => x === 0)).toBe(true);
      b.dispose();
    }
  });

  it("a short source zero-fills the rest of what the write covers, on a reused page too", () => {
    const old = new MemoryBuffer();
    old.write(Buffer.alloc(PAGE, 0xcd), 0, PAGE, 0);
    old.dispose();
    const b = new MemoryBuffer();
    b.write(Buffer.from("abc"), 0, 40_000, 1000); // source holds 3 of the 40 000 bytes
    const want = Buffer.alloc(41_000);
    want.write("abc", 1000);
    expect(bytes(b, 41_000).equals(want)).toBe(true);
  });
});
