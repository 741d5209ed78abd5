import fs from "node:fs";
import v8 from "node:v8";
import vm from "node:vm";
import { afterEach, describe, expect, it } from "vitest";
import * as n from "../src/index.js";
import { expectErrno, isLinux } from "./helpers.js";

const open: number[] = [];
function track(fd: number): number {
  open.push(fd);
  return fd;
}
afterEach(() => {
  for (const fd of open.splice(0)) {
    try {
      fs.closeSync(fd);
    } catch {
      /* already closed */
    }
  }
});

describe.skipIf(!isLinux)("memfd_create + ftruncate", () => {
  it("creates a RAM file that reads back what was written", () => {
    const fd = track(n.memfdCreate("agentfs-test", n.MFD_CLOEXEC));
    expect(fd).toBeGreaterThan(2);
    expect(n.getCloexec(fd)).toBe(true);
    expect(fs.readlinkSync(`/proc/self/fd/${fd}`)).toMatch(/^\/memfd:agentfs-test/);
    expect(fs.fstatSync(fd).size).toBe(0);
    fs.writeSync(fd, Buffer.from("hello memfd"), 0, 11, 0);
    const out = Buffer.alloc(11);
    expect(fs.readSync(fd, out, 0, 11, 0)).toBe(11);
    expect(out.toString()).toBe("hello memfd");
    fs.writeSync(fd, Buffer.from("MEM"), 0, 3, 6); // pwrite in the middle
    expect(fs.readFileSync(`/proc/self/fd/${fd}`, "utf8")).toBe("hello MEMfd");
  });

  it("grows with zeros and shrinks with ftruncate (number and bigint sizes)", () => {
    const fd = track(n.memfdCreate("grow", 0));
    expect(n.getCloexec(fd)).toBe(false);
    fs.writeSync(fd, Buffer.from("abc"), 0, 3, 0);
    n.ftruncate(fd, 1 << 20);
    expect(fs.fstatSync(fd).size).toBe(1 << 20);
    const tail = Buffer.alloc(16, 0xff);
    fs.readSync(fd, tail, 0, 16, (1 << 20) - 16);
    expect(tail.equals(Buffer.alloc(16))).toBe(true);
    n.ftruncate(fd, 2n);
    expect(fs.fstatSync(fd).size).toBe(2);
    const b = Buffer.alloc(8);
    expect(fs.readSync(fd, b, 0, 8, 0)).toBe(2);
    expect(b.subarray(0, 2).toString()).toBe("ab");
    n.ftruncate(fd, 0);
    expect(fs.fstatSync(fd).size).toBe(0);
  });

  it("throws errno-coded errors", () => {
    const err = expectErrno(() => n.ftruncate(987654, 10), "EBADF", "ftruncate");
    expect(err.errno).toBe(-9);
    expect(err.message).toMatch(/^EBADF: bad file descriptor, ftruncate/);
    const fd = track(n.memfdCreate("neg", 0));
    expectErrno(() => n.ftruncate(fd, -1), "EINVAL", "ftruncate");
    expectErrno(() => n.memfdCreate("x", 0x7000_0000), "EINVAL", "memfd_create");
    expectErrno(() => n.memfdCreate("x".repeat(300), 0), "EINVAL", "memfd_create");
    expect(() => n.ftruncate("3" as unknown as number, 1)).toThrow(TypeError);
    expect(() => n.memfdCreate("a\0b")).toThrow(TypeError);
  });
});

describe.skipIf(!isLinux)("fallocate", () => {
  it("PUNCH_HOLE | KEEP_SIZE frees a memfd's pages and the range reads as zeros; errors are errno-coded", () => {
    const fd = track(n.memfdCreate("punch", n.MFD_CLOEXEC | n.MFD_ALLOW_SEALING));
    const data = Buffer.alloc(1 << 20, 0x5a);
    fs.writeSync(fd, data, 0, data.length, 0);
    const before = fs.fstatSync(fd).blocks;
    n.fallocate(fd, n.FALLOC_FL_PUNCH_HOLE | n.FALLOC_FL_KEEP_SIZE, 256 << 10, 512 << 10);
    const st = fs.fstatSync(fd);
    expect(st.size).toBe(1 << 20);
    expect((before - st.blocks) * 512).toBe(512 << 10);
    const out = Buffer.alloc(1 << 20);
    fs.readSync(fd, out, 0, out.length, 0);
    expect(out.subarray(256 << 10, 768 << 10).every((x) => x === 0)).toBe(true);
    expect(out.subarray(0, 256 << 10).every((x) => x === 0x5a)).toBe(true);
    expect(out.subarray(768 << 10).every((x) => x === 0x5a)).toBe(true);
    expectErrno(() => n.fallocate(987654, 0, 0, 1), "EBADF", "fallocate");
    expectErrno(() => n.fallocate(fd, n.FALLOC_FL_PUNCH_HOLE, 0, 4096), ["EOPNOTSUPP", "ENOTSUP"], "fallocate"); // PUNCH_HOLE needs KEEP_SIZE
    n.addSeals(fd, n.F_SEAL_WRITE);
    expectErrno(() => n.fallocate(fd, n.FALLOC_FL_PUNCH_HOLE | n.FALLOC_FL_KEEP_SIZE, 0, 4096), "EPERM", "fallocate");
  });
});

describe.skipIf(!isLinux)("seals", () => {
  it("getSeals/addSeals round-trip; seals accumulate and cannot be removed", () => {
    const fd = track(n.memfdCreate("seals", n.MFD_ALLOW_SEALING | n.MFD_CLOEXEC));
    expect(n.getSeals(fd)).toBe(0);
    n.addSeals(fd, n.F_SEAL_SHRINK);
    expect(n.getSeals(fd)).toBe(n.F_SEAL_SHRINK);
    n.addSeals(fd, n.F_SEAL_GROW | n.F_SEAL_WRITE);
    expect(n.getSeals(fd)).toBe(n.F_SEAL_SHRINK | n.F_SEAL_GROW | n.F_SEAL_WRITE);
    n.addSeals(fd, n.F_SEAL_SEAL);
    expect(n.getSeals(fd)).toBe(n.F_SEAL_SHRINK | n.F_SEAL_GROW | n.F_SEAL_WRITE | n.F_SEAL_SEAL);
    expectErrno(() => n.addSeals(fd, n.F_SEAL_FUTURE_WRITE), "EPERM", "fcntl(F_ADD_SEALS)");
  });

  it("a memfd made without MFD_ALLOW_SEALING starts with F_SEAL_SEAL", () => {
    const fd = track(n.memfdCreate("nosealing", 0));
    expect(n.getSeals(fd)).toBe(n.F_SEAL_SEAL);
    expectErrno(() => n.addSeals(fd, n.F_SEAL_WRITE), "EPERM");
  });

  it("F_SEAL_WRITE refuses writes with EPERM; reads still work", () => {
    const fd = track(n.memfdCreate("sealw", n.MFD_ALLOW_SEALING));
    fs.writeSync(fd, Buffer.from("frozen"), 0, 6, 0);
    n.addSeals(fd, n.F_SEAL_WRITE);
    expectErrno(() => fs.writeSync(fd, Buffer.from("X"), 0, 1, 0), "EPERM");
    expectErrno(() => n.mmap(fd, 6, n.PROT_READ | n.PROT_WRITE, n.MAP_SHARED, 0), "EPERM", "mmap");
    // A read-only shared mapping or a private one is still allowed.
    const ro = n.mmap(fd, 6, n.PROT_READ, n.MAP_SHARED, 0);
    expect(ro.toString()).toBe("frozen");
    n.munmap(ro);
    expect(fs.readFileSync(`/proc/self/fd/${fd}`, "utf8")).toBe("frozen");
  });

  it("F_SEAL_GROW refuses growth (ftruncate and writes past the end), F_SEAL_SHRINK refuses shrinking", () => {
    const fd = track(n.memfdCreate("sealgs", n.MFD_ALLOW_SEALING));
    n.ftruncate(fd, 4096);
    n.addSeals(fd, n.F_SEAL_GROW);
    expectErrno(() => n.ftruncate(fd, 8192), "EPERM", "ftruncate");
    expectErrno(() => fs.writeSync(fd, Buffer.from("past end"), 0, 8, 4096), "EPERM");
    fs.writeSync(fd, Buffer.from("inside"), 0, 6, 0); // within the size: fine
    n.ftruncate(fd, 1024); // shrinking still allowed
    expect(fs.fstatSync(fd).size).toBe(1024);
    n.addSeals(fd, n.F_SEAL_SHRINK);
    expectErrno(() => n.ftruncate(fd, 10), "EPERM", "ftruncate");
    n.ftruncate(fd, 1024); // same size: neither grows nor shrinks
    expect(fs.fstatSync(fd).size).toBe(1024);
  });

  it("F_SEAL_WRITE is refused (EBUSY) while a shared writable mapping exists, allowed after munmap", () => {
    const fd = track(n.memfdCreate("sealbusy", n.MFD_ALLOW_SEALING));
    n.ftruncate(fd, 4096);
    const m = n.mmap(fd, 4096, n.PROT_READ | n.PROT_WRITE, n.MAP_SHARED, 0);
    expectErrno(() => n.addSeals(fd, n.F_SEAL_WRITE), "EBUSY", "fcntl(F_ADD_SEALS)");
    n.munmap(m);
    n.addSeals(fd, n.F_SEAL_WRITE);
    expect(n.getSeals(fd) & n.F_SEAL_WRITE).toBe(n.F_SEAL_WRITE);
  });
});

describe("mmap", () => {
  function makeFile(size: number): number {
    if (isLinux) {
      const fd = track(n.memfdCreate("mmap", n.MFD_CLOEXEC));
      n.ftruncate(fd, size);
      return fd;
    }
    const p = `${process.env.TMPDIR ?? "/tmp"}/agentfs-mmap-${process.pid}-${Math.random()}`;
    const fd = track(fs.openSync(p, "w+"));
    fs.unlinkSync(p);
    n.ftruncate(fd, size);
    return fd;
  }

  it("a MAP_SHARED mapping sees data written with fs.writeSync, and writes through it are visible to pread", () => {
    const size = 2 * n.PAGE_SIZE;
    const fd = makeFile(size);
    fs.writeSync(fd, Buffer.from("written by write(2)"), 0, 19, 100);
    const m = n.mmap(fd, size, n.PROT_READ | n.PROT_WRITE, n.MAP_SHARED, 0);
    expect(Buffer.isBuffer(m)).toBe(true);
    expect(m.length).toBe(size);
    expect(m.subarray(100, 119).toString()).toBe("written by write(2)");
    // write(2) after mapping shows up in the mapping too
    fs.writeSync(fd, Buffer.from("late"), 0, 4, size - 4);
    expect(m.subarray(size - 4).toString()).toBe("late");
    // stores into the mapping reach the file
    m.write("stored through mmap", 5000);
    const back = Buffer.alloc(19);
    expect(fs.readSync(fd, back, 0, 19, 5000)).toBe(19);
    expect(back.toString()).toBe("stored through mmap");
    n.munmap(m);
    expect(m.length).toBe(0); // detached: nothing can touch the unmapped pages
    expectErrno(() => n.munmap(m), "EINVAL", "munmap");
  });

  it("maps at a page-aligned offset; unaligned offsets and length 0 fail with EINVAL", () => {
    const size = 3 * n.PAGE_SIZE;
    const fd = makeFile(size);
    fs.writeSync(fd, Buffer.from("page two"), 0, 8, n.PAGE_SIZE);
    const m = n.mmap(fd, n.PAGE_SIZE, n.PROT_READ, n.MAP_SHARED, n.PAGE_SIZE);
    expect(m.subarray(0, 8).toString()).toBe("page two");
    n.munmap(m.subarray(4)); // a slice unmaps the whole mapping
    expect(m.length).toBe(0);
    expectErrno(() => n.mmap(fd, 100, n.PROT_READ, n.MAP_SHARED, 1), "EINVAL", "mmap");
    expectErrno(() => n.mmap(fd, 0, n.PROT_READ, n.MAP_SHARED, 0), "EINVAL", "mmap");
    expectErrno(() => n.mmap(987654, 100, n.PROT_READ, n.MAP_SHARED, 0), "EBADF", "mmap");
    expectErrno(() => n.munmap(Buffer.alloc(10)), "EINVAL", "munmap");
  });

  it("MAP_PRIVATE writes stay private (copy-on-write)", () => {
    const fd = makeFile(n.PAGE_SIZE);
    fs.writeSync(fd, Buffer.from("original"), 0, 8, 0);
    const m = n.mmap(fd, n.PAGE_SIZE, n.PROT_READ | n.PROT_WRITE, n.MAP_PRIVATE, 0);
    m.write("CHANGED!", 0);
    expect(m.subarray(0, 8).toString()).toBe("CHANGED!");
    const b = Buffer.alloc(8);
    fs.readSync(fd, b, 0, 8, 0);
    expect(b.toString()).toBe("original");
    n.munmap(m);
  });

  it("mappings left to the garbage collector are unmapped by the finalizer", async () => {
    const fd = makeFile(n.PAGE_SIZE);
    const count = (): number =>
      fs.readFileSync("/proc/self/maps", "utf8").split("\n").filter((l) => l.includes("/memfd:mmap")).length;
    for (let i = 0; i < 300; i++) {
      const m = n.mmap(fd, n.PAGE_SIZE, n.PROT_READ, n.MAP_SHARED, 0);
      expect(m.length).toBe(n.PAGE_SIZE);
    }
    if (!isLinux) return; // counts mappings through /proc/self/maps
    v8.setFlagsFromString("--expose-gc");
    const gc = vm.runInNewContext("gc") as () => void;
    for (let i = 0; i < 5; i++) {
      gc();
      await new Promise((r) => setImmediate(r));
    }
    expect(count()).toBeLessThan(50); // of the 300 made, the unreachable ones are gone
  });
});
