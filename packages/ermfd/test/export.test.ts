import fs from "node:fs";
import { afterEach, describe, expect, it } from "vitest";
import { FsError } from "@agentfs/core";
import { openRamStore } from "@agentfs/backstore-linux";
import * as native from "@agentfs/native";
import { READ_ONLY_SEALS, exportMemfd, exportMemfdStat } from "../src/index.js";
import { MiB, codeOf, fdCount, fdPos, freshStore, isLinux, preadAll, prng, text } from "./helpers.js";

describe.skipIf(!isLinux)("exportMemfd", () => {
  let cleanup: (() => Promise<void>) | undefined;
  const fds: number[] = [];
  afterEach(async () => {
    for (const fd of fds.splice(0)) fs.closeSync(fd);
    await cleanup?.();
    cleanup = undefined;
  });
  const keep = (fd: number) => (fds.push(fd), fd);

  it("exports bytes that read, lseek, fstat and mmap like the stored file", async () => {
    const s = await freshStore();
    cleanup = s.cleanup;
    const data = prng(MiB + 12345, 9);
    await s.afs.fs.mkdir("/bin");
    await s.afs.fs.writeFile("/bin/tool", data, { mode: 0o751 });
    const fd = keep(exportMemfd(s.afs, "/bin/tool"));
    expect(fs.readlinkSync(`/proc/self/fd/${fd}`)).toMatch(/^\/memfd:agentfs:tool/);
    const st = fs.fstatSync(fd);
    expect(st.size).toBe(data.length);
    expect(st.isFile()).toBe(true);
    expect(st.mode & 0o7777).toBe(0o751);
    expect(fdPos(fd)).toBe(0); // positioned at 0
    const head = Buffer.alloc(1000);
    expect(fs.readSync(fd, head, 0, 1000, null)).toBe(1000); // read(2) from the current offset
    expect(head.equals(data.subarray(0, 1000))).toBe(true);
    expect(fdPos(fd)).toBe(1000);
    expect(preadAll(fd).equals(data)).toBe(true);
    const map = native.mmap(fd, data.length, native.PROT_READ, native.MAP_SHARED, 0);
    try {
      expect(map.equals(data)).toBe(true);
    } finally {
      native.munmap(map);
    }
    // Unsealed: a private writable copy; writing it leaves the store alone.
    fs.writeSync(fd, Buffer.from("ZZ"), 0, 2, 0);
    expect(((await s.afs.fs.readFile("/bin/tool")) as Buffer).subarray(0, 2).equals(data.subarray(0, 2))).toBe(true);
    expect(native.getSeals(fd) & native.F_SEAL_WRITE).toBe(0);
  });

  it("has snapshot semantics: later store writes do not reach an exported fd", async () => {
    const s = await freshStore();
    cleanup = s.cleanup;
    await s.afs.fs.writeFile("/f", "version one");
    const fd = keep(exportMemfd(s.afs, "/f", { seal: true }));
    await s.afs.fs.writeFile("/f", "version two, longer");
    expect(preadAll(fd).toString()).toBe("version one");
  });

  it("seal: refuses writes, growth, shrinking and writable shared maps; seals cannot change", async () => {
    const s = await freshStore();
    cleanup = s.cleanup;
    await s.afs.fs.writeFile("/f", text(100_000));
    const fd = keep(exportMemfd(s.afs, "/f", { seal: true }));
    expect(native.getSeals(fd)).toBe(READ_ONLY_SEALS);
    expect(READ_ONLY_SEALS & (native.F_SEAL_WRITE | native.F_SEAL_GROW | native.F_SEAL_SHRINK)).toBe(native.F_SEAL_WRITE | native.F_SEAL_GROW | native.F_SEAL_SHRINK);
    expect(codeOf(() => fs.writeSync(fd, Buffer.from("x"), 0, 1, 0))).toBe("EPERM");
    expect(codeOf(() => fs.writeSync(fd, Buffer.from("x"), 0, 1, 100_000))).toBe("EPERM");
    expect(codeOf(() => native.ftruncate(fd, 200_000))).toBe("EPERM");
    expect(codeOf(() => native.ftruncate(fd, 10))).toBe("EPERM");
    expect(codeOf(() => native.mmap(fd, 4096, native.PROT_READ | native.PROT_WRITE, native.MAP_SHARED, 0))).toBe("EPERM");
    expect(codeOf(() => native.addSeals(fd, native.F_SEAL_FUTURE_WRITE))).toBe("EPERM");
    // Reading and read-only maps still work.
    expect(preadAll(fd).equals(text(100_000))).toBe(true);
    const m = native.mmap(fd, 100_000, native.PROT_READ, native.MAP_PRIVATE, 0);
    expect(m.subarray(0, 6).toString()).toBe("agentf");
    native.munmap(m);
    // A writable path through /proc is refused too.
    expect(codeOf(() => fs.writeFileSync(`/proc/self/fd/${fd}`, "y", { flag: "r+" }))).toBe("EPERM");
  });

  it("exports compressed, incompressible, empty and sparse files exactly", async () => {
    const s = await freshStore();
    cleanup = s.cleanup;
    const comp = text(3 * MiB + 7);
    const raw = prng(2 * MiB + 3, 4);
    await s.afs.fs.writeFile("/comp", comp);
    await s.afs.fs.writeFile("/raw", raw);
    await s.afs.fs.writeFile("/empty", "");
    const fh = await s.afs.fs.open("/sparse", "w");
    await fh.write(Buffer.from("start"), 0, 5, 0);
    await fh.write(Buffer.from("end"), 0, 3, 512 * MiB);
    await fh.close();
    await s.afs.fs.truncate("/sparse", 768 * MiB); // trailing hole too
    const st = await s.afs.stats();
    expect(st).toBeTruthy();

    const c = exportMemfdStat(s.afs, "/comp");
    keep(c.fd);
    expect(preadAll(c.fd).equals(comp)).toBe(true);
    const r = exportMemfdStat(s.afs, "/raw");
    keep(r.fd);
    expect(preadAll(r.fd).equals(raw)).toBe(true);
    const e = exportMemfdStat(s.afs, "/empty");
    keep(e.fd);
    expect(fs.fstatSync(e.fd).size).toBe(0);
    expect(e.dataBytes).toBe(0);
    const sp = exportMemfdStat(s.afs, "/sparse", { seal: true });
    keep(sp.fd);
    const sst = fs.fstatSync(sp.fd);
    expect(sst.size).toBe(768 * MiB);
    expect(sst.blocks * 512).toBeLessThan(MiB); // holes stayed holes in the memfd
    expect(sp.dataBytes).toBeLessThan(MiB);
    const b = Buffer.alloc(5);
    fs.readSync(sp.fd, b, 0, 5, 0);
    expect(b.toString()).toBe("start");
    fs.readSync(sp.fd, b, 0, 5, 512 * MiB - 2);
    expect(b.equals(Buffer.from([0, 0, 0x65, 0x6e, 0x64]))).toBe(true);
    fs.readSync(sp.fd, b, 0, 5, 700 * MiB);
    expect(b.every((x) => x === 0)).toBe(true);
  });

  it("a file open for writing in this process exports its in-progress bytes (unflushed writes included)", async () => {
    const s = await freshStore();
    cleanup = s.cleanup;
    await s.afs.fs.writeFile("/f", "committed content");
    const fh = await s.afs.fs.open("/f", "r+");
    await fh.write(Buffer.from("IN-PROGRESS"), 0, 11, 0);
    await fh.write(Buffer.from("!"), 0, 1, 40); // grows with a hole
    const fd = keep(exportMemfd(s.afs, "/f"));
    const want = Buffer.alloc(41);
    want.write("IN-PROGRESSontent");
    want.write("!", 40);
    expect(preadAll(fd).equals(want)).toBe(true);
    // Another view of the store (as another process would be) sees the committed bytes.
    const { AgentFS } = await import("@agentfs/core");
    const other = await AgentFS.open(s.afs.store.dir);
    try {
      const fd2 = keep(exportMemfd(other, "/f"));
      expect(preadAll(fd2).toString()).toBe("committed content");
    } finally {
      await other.close();
    }
    await fh.close();
  });

  it("errors as POSIX: ENOENT, EISDIR, ELOOP, ENOTDIR (FsError), and leaks no fd", async () => {
    const s = await freshStore();
    cleanup = s.cleanup;
    await s.afs.fs.mkdir("/dir");
    await s.afs.fs.writeFile("/file", "x");
    await s.afs.fs.symlink("/b", "/a");
    await s.afs.fs.symlink("/a", "/b");
    await s.afs.fs.symlink("/file", "/link");
    const before = fdCount();
    const err = (p: string, o = {}) => {
      try {
        exportMemfd(s.afs, p, o);
      } catch (e) {
        expect(e).toBeInstanceOf(FsError);
        return (e as FsError).code;
      }
      return "none";
    };
    expect(err("/missing")).toBe("ENOENT");
    expect(err("/dir")).toBe("EISDIR");
    expect(err("/a")).toBe("ELOOP");
    expect(err("/link", { follow: false })).toBe("ELOOP");
    expect(err("/file/sub")).toBe("ENOTDIR");
    expect(fdCount()).toBe(before);
    const fd = keep(exportMemfd(s.afs, "/link"));
    expect(preadAll(fd).toString()).toBe("x");
    expect(native.getCloexec(fd)).toBe(true);
    const fd2 = keep(exportMemfd(s.afs.core, "/file", { cloexec: false }));
    expect(native.getCloexec(fd2)).toBe(false);
  });

  it("exports from a RAM store (objects in memfds): memfd to memfd, nothing on disk", async () => {
    const ram = openRamStore("ram-export");
    try {
      const data = text(3 * MiB + 1, 5);
      await ram.afs.fs.writeFile("/f", data);
      ram.afs.store.cas.clearCache();
      const fd = keep(exportMemfd(ram.afs, "/f", { seal: true }));
      expect(preadAll(fd).equals(data)).toBe(true);
    } finally {
      await ram.close();
    }
  });
});
