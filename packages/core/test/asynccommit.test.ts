/**
 * The off-loop commit path (`FsCore.flushAsync`/`fsyncAsync`/`closeAsync`,
 * commitpipe.ts): what it stores equals what the synchronous commit stores,
 * writes/truncates/unlink/rename/utimes during a commit in flight, ordering,
 * a synchronous commit superseding an asynchronous one, gc during a commit,
 * and crash safety: a child process that kills itself right after fsyncAsync
 * resolved, or in the middle of a commit.
 */
import { beforeAll, describe, expect, it } from "vitest";
import { spawnSync } from "node:child_process";
import { createHash } from "node:crypto";
import { constants as C, statSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import { CommitPool, FsCore, Store, decodeExtents, fsck, gc, type InodeStat } from "../src/index.js";
import { CORE_DIR, ensureDist, prng, tempDir } from "./helpers.js";

beforeAll(() => {
  ensureDist(); // the worker runs from dist/commitworker.js
}, 120_000);

const MiB = 1 << 20;
const turn = () => new Promise<void>((r) => setImmediate(r));
const sha = (b: Uint8Array) => createHash("sha256").update(b).digest("hex");

/** Compressible but not trivially repetitive bytes (text-like). */
function text(n: number, seed = 7): Buffer {
  const words = ["alpha ", "beta ", "gamma ", "delta\n", "epsilon ", "zeta ", "eta\n", "theta "];
  const b = Buffer.allocUnsafe(n);
  let s = seed;
  let p = 0;
  while (p < n) {
    s = (Math.imul(s, 1103515245) + 12345) >>> 0;
    const w = words[s >>> 29];
    p += b.write(w.slice(0, n - p), p, "latin1");
  }
  return b;
}

function open(): { dir: string; store: Store; core: FsCore; cleanup: () => void } {
  const t = tempDir("agentfs-async-");
  const dir = join(t.dir, "store");
  const store = Store.open(dir, { create: true });
  const core = new FsCore(store, { branch: "main" }, { umask: 0o022 });
  return { dir, store, core, cleanup: () => { try { store.close(); } catch { /* closed */ } t.cleanup(); } };
}

/** The committed bytes of `path` as a second connection sees them. */
function committed(dir: string, path: string): Buffer {
  const s = Store.open(dir);
  try {
    const c = new FsCore(s, { branch: "main" });
    const parts: Buffer[] = [];
    let size = 0;
    const st: InodeStat = c.readImage(path, (d, pos) => {
      parts.push(Buffer.concat([Buffer.alloc(Math.max(0, pos - size)), Buffer.from(d)]));
      size = pos + d.length;
    });
    const out = Buffer.concat(parts);
    return out.length < st.size ? Buffer.concat([out, Buffer.alloc(st.size - out.length)]) : out;
  } finally {
    s.close();
  }
}

function readAll(core: FsCore, fd: number): Buffer {
  const size = core.fstat(fd).size;
  const b = Buffer.alloc(size);
  core.read(fd, b, 0, size, 0);
  return b;
}

function extentsOf(dir: string, path: string): string[] {
  const s = Store.open(dir);
  try {
    const c = new FsCore(s, { branch: "main" });
    const ino = c.stat(path).ino;
    const row = s.manifest.read(() => s.manifest.getInode(ino, s.chainOf({ branch: "main" })))!.row;
    return decodeExtents(row.extents).map((e) => `${e.off}+${e.len}:${e.hash?.toString("hex") ?? "hole"}`);
  } finally {
    s.close();
  }
}

describe("asynchronous commit", () => {
  it("stores the same extents as the synchronous commit (data, holes, text, random)", async () => {
    const a = open();
    const b = open();
    try {
      const data = Buffer.concat([text(3 * MiB), Buffer.alloc(2 * MiB), prng(3 * MiB + 12345, 3)]);
      for (const x of [a, b]) {
        const fd = x.core.openFile("/f", C.O_CREAT | C.O_RDWR);
        x.core.write(fd, data, 0, data.length, 0);
        if (x === a) await x.core.closeAsync(fd);
        else x.core.close(fd);
      }
      expect(sha(committed(a.dir, "/f"))).toBe(sha(data));
      expect(extentsOf(a.dir, "/f")).toEqual(extentsOf(b.dir, "/f"));
      // an edit in the middle of the committed file re-chunks only around it, asynchronously too
      for (const x of [a, b]) {
        const fd = x.core.openFile("/f", C.O_RDWR);
        x.core.write(fd, prng(300_000, 9), 0, 300_000, 4 * MiB);
        if (x === a) await x.core.fsyncAsync(fd);
        else x.core.fsync(fd);
        x.core.close(fd);
      }
      const want = Buffer.from(data);
      prng(300_000, 9).copy(want, 4 * MiB);
      expect(sha(committed(a.dir, "/f"))).toBe(sha(want));
      expect(sha(committed(b.dir, "/f"))).toBe(sha(want));
      const ea = extentsOf(a.dir, "/f");
      const eb = extentsOf(b.dir, "/f");
      expect(ea[0]).toBe(eb[0]); // the unchanged head keeps its chunks
      expect(ea[ea.length - 1]).toBe(eb[eb.length - 1]); // and so does the tail after re-synchronisation
      expect(fsck(a.store).ok).toBe(true);
    } finally {
      a.cleanup();
      b.cleanup();
    }
  });

  it("a large commit is split into 8 MiB lanes chunked by several workers: a cut at each lane end, holes (a whole lane of them too) kept, same bytes", async () => {
    const x = open();
    try {
      // 40 MiB: text, random, a 12 MiB hole (lane 3 holds no data at all), random again.
      const data = Buffer.concat([text(10 * MiB, 21), prng(8 * MiB, 22), Buffer.alloc(12 * MiB), prng(10 * MiB + 777, 23)]);
      const fd = x.core.openFile("/lanes", C.O_CREAT | C.O_RDWR, 0o644);
      x.core.write(fd, data.subarray(0, 18 * MiB), 0, 18 * MiB, 0);
      x.core.write(fd, data, 30 * MiB, data.length - 30 * MiB, 30 * MiB);
      await x.core.closeAsync(fd);
      expect(sha(committed(x.dir, "/lanes"))).toBe(sha(data));
      const ends = new Set(extentsOf(x.dir, "/lanes").map((e) => e.split(":")[0]!.split("+").map(Number)).map(([o, l]) => o! + l!));
      for (const b of [8, 16, 32]) expect(ends.has(b * MiB), `a chunk ends at ${b} MiB`).toBe(true);
      expect(extentsOf(x.dir, "/lanes").some((e) => e.endsWith(":hole"))).toBe(true);
      expect(fsck(x.store).ok).toBe(true);
      // A change in place: lanes up to the old boundaries past it, where chunking re-synchronises.
      const fd2 = x.core.openFile("/lanes", C.O_RDWR);
      x.core.write(fd2, prng(20 * MiB, 24), 0, 20 * MiB, 1 * MiB);
      await x.core.closeAsync(fd2);
      const want = Buffer.from(data);
      prng(20 * MiB, 24).copy(want, 1 * MiB);
      expect(sha(committed(x.dir, "/lanes"))).toBe(sha(want));
      expect(fsck(x.store).ok).toBe(true);
    } finally {
      x.cleanup();
    }
  }, 60_000);

  it("scattered writes across a 1 TiB sparse file commit in a bounded number of lanes (64 at most): right bytes, and quickly", async () => {
    const x = open();
    try {
      const TiB = 2 ** 40;
      const fd = x.core.openFile("/sparse", C.O_CREAT | C.O_RDWR, 0o644);
      x.core.ftruncate(fd, TiB);
      const at = [0, TiB / 2 + 12345, TiB - 100_000];
      const parts = at.map((_, i) => prng(100_000, 30 + i));
      at.forEach((p, i) => x.core.write(fd, parts[i]!, 0, 100_000, p));
      const t0 = performance.now();
      await x.core.fsyncAsync(fd);
      expect(performance.now() - t0).toBeLessThan(20_000);
      x.core.close(fd);
      const s = Store.open(x.dir);
      try {
        const c = new FsCore(s, { branch: "main" });
        const rfd = c.openFile("/sparse", C.O_RDONLY);
        expect(c.fstat(rfd).size).toBe(TiB);
        at.forEach((p, i) => {
          const b = Buffer.alloc(100_000);
          c.read(rfd, b, 0, b.length, p);
          expect(b.equals(parts[i]!)).toBe(true);
        });
        const hole = Buffer.alloc(4096, 1);
        c.read(rfd, hole, 0, hole.length, TiB / 4);
        expect(hole.every((v) => v === 0)).toBe(true);
        c.close(rfd);
      } finally {
        s.close();
      }
    } finally {
      x.cleanup();
    }
  }, 60_000);

  it("huge sparse files commit by their data, not their span: truncated up to 16 TiB, a new file written at its last byte, a write in the middle of the hole (each used to take hours)", async () => {
    const x = open();
    try {
      // Re-chunking the hole instead would walk 2^28 pages (a 256 MiB zero-page map): far past the timeout.
      const size = 2 ** 44;
      let fd = x.core.openFile("/sparse", C.O_CREAT | C.O_RDWR);
      x.core.ftruncate(fd, size); // a span of 16 TiB with no data in it: committed at once
      await x.core.closeAsync(fd);
      // A new file whose only byte is its last one: the same.
      fd = x.core.openFile("/last", C.O_CREAT | C.O_RDWR);
      x.core.write(fd, Buffer.from("z"), 0, 1, size - 1);
      await x.core.closeAsync(fd);
      expect(extentsOf(x.dir, "/last").filter((e) => !e.endsWith(":hole"))).toHaveLength(1);
      for (const [at, what] of [[2 ** 43 + 12345, "middle"], [size - 3, "end"], [7, "head"]] as const) {
        fd = x.core.openFile("/sparse", C.O_RDWR);
        x.core.write(fd, Buffer.from(what), 0, what.length, at);
        await x.core.closeAsync(fd);
      }
      const ext = extentsOf(x.dir, "/sparse");
      // Three small data extents, holes between them (merged back where a split hole's halves meet).
      expect(ext.filter((e) => !e.endsWith(":hole"))).toHaveLength(3);
      expect(ext.length).toBeLessThanOrEqual(6);
      for (let i = 1; i < ext.length; i++) expect(ext[i - 1]!.endsWith(":hole") && ext[i]!.endsWith(":hole")).toBe(false);
      const c = x.core.openFile("/sparse", C.O_RDONLY);
      const got = Buffer.alloc(6);
      x.core.read(c, got, 0, 6, 2 ** 43 + 12345);
      expect(got.toString()).toBe("middle");
      x.core.read(c, got, 0, 3, size - 3);
      expect(got.subarray(0, 3).toString()).toBe("end");
      x.core.read(c, got, 0, 4, 7);
      expect(got.subarray(0, 4).toString()).toBe("head");
      expect(x.core.fstat(c).size).toBe(size);
      x.core.close(c);
      expect(fsck(x.store).ok).toBe(true);
    } finally {
      x.cleanup();
    }
  }, 20_000);

  it("a small change in place in a large file commits at once and re-chunks only the old chunks it overlaps", async () => {
    const x = open();
    try {
      const data = Buffer.concat([text(2 * MiB, 3), prng(2 * MiB, 4)]);
      const fd = x.core.openFile("/db", C.O_CREAT | C.O_RDWR);
      x.core.write(fd, data, 0, data.length, 0);
      await x.core.fsyncAsync(fd);
      const before = extentsOf(x.dir, "/db");
      const objects = () => x.store.manifest.db.prepare(`SELECT count(*) FROM objects`).pluck().get() as number;
      const n0 = objects();
      // A 20 KiB overwrite in place, as a sqlite3 WAL frame batch: in the text half, then in the random half.
      for (const at of [MiB + 5000, 3 * MiB + 77]) {
        const patch = prng(20_600, at);
        x.core.write(fd, patch, 0, patch.length, at);
        patch.copy(data, at);
        const p = x.core.fsyncAsync(fd);
        // Committed before the promise is awaited: the synchronous path, no worker round trip.
        expect(sha(committed(x.dir, "/db"))).toBe(sha(data));
        await p;
      }
      const after = extentsOf(x.dir, "/db");
      const offOf = (e: string) => Number(e.split("+")[0]);
      const endOf = (e: string) => offOf(e) + Number(e.split("+")[1].split(":")[0]);
      // Every old chunk that ends before the first change or starts after the last one is kept as it was.
      const kept = before.filter((e) => endOf(e) <= MiB + 5000 || (offOf(e) >= MiB + 25_600 && endOf(e) <= 3 * MiB + 77) || offOf(e) >= 3 * MiB + 77 + 20_600);
      for (const e of kept) expect(after).toContain(e);
      // Two changes, each within at most two old chunks: a handful of new objects, not a re-chunked tail.
      expect(objects() - n0).toBeLessThanOrEqual(8);
      x.core.close(fd);
      expect(fsck(x.store).ok).toBe(true);
    } finally {
      x.cleanup();
    }
  });

  it("a sequential writer past 32 MiB: committed pages leave the buffer and read back from the store, also after changes in them", async () => {
    const x = open();
    try {
      const data = Buffer.concat([text(24 * MiB, 11), prng(24 * MiB, 12)]);
      const fd = x.core.openFile("/seq", C.O_RDWR | C.O_CREAT, 0o644);
      for (let off = 0; off < data.length; off += 8 * MiB) {
        x.core.write(fd, data, off, 8 * MiB, off);
        await x.core.flushAsync(fd); // each commit past 32 MiB of pages frees the committed ones
      }
      x.store.cas.clearCache();
      expect(sha(readAll(x.core, fd))).toBe(sha(data));
      // Change bytes inside evicted pages (partial pages: they load from the store first) and past them.
      const patch = prng(100_000, 13);
      x.core.write(fd, patch, 0, patch.length, 5 * MiB + 12_345);
      patch.copy(data, 5 * MiB + 12_345);
      x.core.write(fd, patch, 0, 10, data.length - 5);
      const grown = Buffer.concat([data.subarray(0, data.length - 5), patch.subarray(0, 10)]);
      expect(sha(readAll(x.core, fd))).toBe(sha(grown));
      await x.core.closeAsync(fd);
      expect(sha(committed(x.dir, "/seq"))).toBe(sha(grown));
      expect(fsck(x.store).ok).toBe(true);
    } finally {
      x.cleanup();
    }
  }, 60_000);

  it("write-behind: one background commit at a time (later writes wait for the next, which takes the backlog); a writer past 64 MiB is throttled until the commit frees pages; same bytes", async () => {
    const x = open();
    try {
      const data = prng(88 * MiB, 31);
      const fd = x.core.openFile("/wb", C.O_CREAT | C.O_RDWR, 0o644);
      x.core.write(fd, data, 0, 8 * MiB, 0);
      expect(x.core.writeThrottle(fd)).toBeNull(); // nothing in flight
      expect(x.core.commitBehind(fd)).toBe(true);
      expect(x.core.commitBehind(fd)).toBe(false); // one is queued: the next waits
      await turn(); // the first commit freezes its 8 MiB
      x.core.write(fd, data, 8 * MiB, 72 * MiB, 8 * MiB);
      const held = x.core.writeThrottle(fd);
      expect(held).toBeInstanceOf(Promise); // 80 MiB of pages and a commit in flight
      await held;
      expect(sha(committed(x.dir, "/wb").subarray(0, 8 * MiB))).toBe(sha(data.subarray(0, 8 * MiB)));
      expect(committed(x.dir, "/wb").length).toBe(8 * MiB);
      expect(x.core.writeThrottle(fd)).toBeNull(); // its pages were freed, nothing in flight
      expect(x.core.commitBehind(fd)).toBe(true); // the whole 72 MiB backlog in one commit
      x.core.write(fd, data, 80 * MiB, 8 * MiB, 80 * MiB);
      await x.core.closeAsync(fd);
      expect(sha(committed(x.dir, "/wb"))).toBe(sha(data));
      expect(fsck(x.store).ok).toBe(true);
      // Truncated away, pages no longer count: after a truncate to 0 and 8 MiB more, a commit in flight holds no writer.
      const fd3 = x.core.openFile("/wt", C.O_CREAT | C.O_RDWR, 0o644);
      x.core.write(fd3, data, 0, 72 * MiB, 0);
      x.core.ftruncate(fd3, 0);
      x.core.write(fd3, data, 0, 8 * MiB, 0);
      expect(x.core.commitBehind(fd3)).toBe(true);
      expect(x.core.writeThrottle(fd3)).toBeNull();
      await x.core.closeAsync(fd3);
      expect(sha(committed(x.dir, "/wt"))).toBe(sha(data.subarray(0, 8 * MiB)));
      // A second file through the same workers (their buffers handed back and filled again): same bytes.
      const more = Buffer.concat([text(20 * MiB, 32), prng(20 * MiB, 33)]);
      const fd2 = x.core.openFile("/wb2", C.O_CREAT | C.O_RDWR, 0o644);
      x.core.write(fd2, more, 0, more.length, 0);
      await x.core.closeAsync(fd2);
      expect(sha(committed(x.dir, "/wb2"))).toBe(sha(more));
    } finally {
      x.cleanup();
    }
  }, 60_000);

  it("writes and truncates during a commit in flight do not disturb it; reads see the latest bytes", async () => {
    const x = open();
    try {
      const v1 = text(32 * MiB, 1);
      const fd = x.core.openFile("/big", C.O_CREAT | C.O_RDWR);
      x.core.write(fd, v1, 0, v1.length, 0);
      const p = x.core.flushAsync(fd);
      await turn(); // frozen now; most pages not yet handed to the worker
      const patch = prng(200_000, 5);
      x.core.write(fd, patch, 0, patch.length, 30 * MiB);
      x.core.write(fd, patch, 0, patch.length, 1000);
      const v2 = Buffer.from(v1);
      patch.copy(v2, 30 * MiB);
      patch.copy(v2, 1000);
      expect(sha(readAll(x.core, fd))).toBe(sha(v2));
      x.core.ftruncate(fd, 20 * MiB);
      const v3 = v2.subarray(0, 20 * MiB);
      expect(sha(readAll(x.core, fd))).toBe(sha(v3));
      await p;
      expect(sha(committed(x.dir, "/big"))).toBe(sha(v1)); // exactly the state at the freeze
      await x.core.flushAsync(fd);
      expect(sha(committed(x.dir, "/big"))).toBe(sha(v3));
      x.core.ftruncate(fd, 25 * MiB); // grows with zeros after a shrink below the old base
      await x.core.closeAsync(fd);
      expect(sha(committed(x.dir, "/big"))).toBe(sha(Buffer.concat([v3, Buffer.alloc(5 * MiB)])));
      expect(fsck(x.store).ok).toBe(true);
    } finally {
      x.cleanup();
    }
  });

  it("orders commits of one file and lets a synchronous commit supersede one in flight", async () => {
    const x = open();
    try {
      const v1 = text(16 * MiB, 2);
      const fd = x.core.openFile("/f", C.O_CREAT | C.O_RDWR);
      x.core.write(fd, v1, 0, v1.length, 0);
      const p1 = x.core.flushAsync(fd);
      await turn();
      const v2 = prng(16 * MiB, 11);
      x.core.write(fd, v2, 0, v2.length, 0);
      const p2 = x.core.flushAsync(fd); // queued after p1
      await p1;
      await p2;
      expect(sha(committed(x.dir, "/f"))).toBe(sha(v2));
      // a synchronous flush while an asynchronous commit is in flight commits the latest state
      const v3 = text(16 * MiB, 3);
      x.core.write(fd, v3, 0, v3.length, 0);
      const p3 = x.core.flushAsync(fd);
      await turn();
      const v4 = Buffer.from(v3);
      v4.write("synchronous", 8 * MiB);
      x.core.write(fd, v4, 8 * MiB, 11, 8 * MiB);
      x.core.flush(fd);
      expect(sha(committed(x.dir, "/f"))).toBe(sha(v4));
      await p3;
      expect(sha(committed(x.dir, "/f"))).toBe(sha(v4)); // the superseded commit did not overwrite it
      x.core.close(fd);
      expect(sha(committed(x.dir, "/f"))).toBe(sha(v4));
      expect(fsck(x.store).ok).toBe(true);
    } finally {
      x.cleanup();
    }
  });

  it("unlink, rename and utimes during a commit in flight", async () => {
    const x = open();
    try {
      const v1 = text(12 * MiB, 4);
      const fd = x.core.openFile("/a", C.O_CREAT | C.O_RDWR);
      x.core.write(fd, v1, 0, v1.length, 0);
      const p = x.core.flushAsync(fd);
      await turn();
      x.core.rename("/a", "/b");
      x.core.futimes(fd, "omit", 1_000_000_000_000n);
      await p;
      expect(sha(committed(x.dir, "/b"))).toBe(sha(v1));
      expect(x.core.stat("/b").mtimeNs).toBe(1_000_000_000_000n); // the explicit time wins over the write time
      expect(() => x.core.stat("/a")).toThrow(/ENOENT/);
      // unlink while a commit is in flight: nothing reappears, the fd keeps the bytes
      const v2 = prng(12 * MiB, 8);
      x.core.write(fd, v2, 0, v2.length, 0);
      const q = x.core.closeAsync(fd);
      const fd2 = x.core.openFile("/b", C.O_RDONLY);
      await turn();
      x.core.unlink("/b");
      await q;
      expect(sha(readAll(x.core, fd2))).toBe(sha(v2));
      x.core.close(fd2);
      expect(x.core.readdir("/")).toEqual([]);
      expect(fsck(x.store).ok).toBe(true);
      // the objects of the orphaned commit are garbage for gc, and gc leaves a consistent store
      gc(x.store, x.core.heldChunks());
      expect(fsck(x.store).ok).toBe(true);
    } finally {
      x.cleanup();
    }
  });

  it("CommitPool.prestart starts every worker at once, and idle prestarted workers let the process exit by itself", () => {
    ensureDist();
    const script = `
      import { readdirSync } from "node:fs";
      const { CommitPool } = await import(${JSON.stringify(join(CORE_DIR, "dist", "index.js"))});
      const threads = () => readdirSync("/proc/self/task").length;
      const before = threads();
      const pool = new CommitPool(2);
      pool.prestart();
      pool.prestart(); // idempotent
      await new Promise((r) => setTimeout(r, 500));
      console.log(threads() - before);`;
    const t = tempDir("agentfs-prestart-");
    const file = join(t.dir, "prestart.mjs"); // a file, not -e: workers inherit execArgv, and --input-type fails them
    writeFileSync(file, script);
    const r = spawnSync(process.execPath, [file], { encoding: "utf8", timeout: 20_000 });
    t.cleanup();
    expect(r.error).toBeUndefined(); // no timeout: the process ended on its own
    expect(r.status).toBe(0);
    // Each worker is at least one thread of its own (more with its isolate's helpers); a second prestart adds none.
    const added = Number(r.stdout.trim());
    expect(added).toBeGreaterThanOrEqual(2);
    expect(added).toBeLessThan(20);
  });

  it("a worker that dies in the middle of a commit: the commit completes on the main thread", async () => {
    const x = open();
    try {
      const v1 = text(16 * MiB, 12);
      const fd = x.core.openFile("/f", C.O_CREAT | C.O_RDWR);
      x.core.write(fd, v1, 0, v1.length, 0);
      const p = x.core.closeAsync(fd);
      await turn();
      await CommitPool.shared().terminate();
      await p;
      expect(sha(committed(x.dir, "/f"))).toBe(sha(v1));
      expect(fsck(x.store).ok).toBe(true);
      // and the pool starts a new worker for the next commit
      const fd2 = x.core.openFile("/g", C.O_CREAT | C.O_RDWR);
      x.core.write(fd2, v1, 0, v1.length, 0);
      await x.core.closeAsync(fd2);
      expect(sha(committed(x.dir, "/g"))).toBe(sha(v1));
    } finally {
      x.cleanup();
    }
  });

  it("WAL checkpoints run in a worker: the connection's automatic checkpoint is off, CommitPool.checkpoint copies the WAL into the database", async () => {
    const x = open();
    try {
      const v1 = prng(12 * MiB, 21);
      const fd = x.core.openFile("/f", C.O_CREAT | C.O_RDWR);
      x.core.write(fd, v1, 0, v1.length, 0);
      await x.core.closeAsync(fd);
      expect(x.store.manifest.db.pragma("wal_autocheckpoint", { simple: true })).toBe(0);
      const dbFile = x.store.manifest.file;
      // (The checkpointer's own PASSIVE checkpoint after the commit may be running in the other worker; while it
      // runs, this one copies nothing. One of them copies the WAL.)
      for (let i = 0; i < 40 && statSync(dbFile).size <= 12 * MiB; i++) {
        await CommitPool.shared().checkpoint(dbFile);
        if (statSync(dbFile).size <= 12 * MiB) await new Promise((r) => setTimeout(r, 50));
      }
      expect(statSync(dbFile).size).toBeGreaterThan(12 * MiB); // the objects are in the database file now
      expect(sha(committed(x.dir, "/f"))).toBe(sha(v1));
      expect(fsck(x.store).ok).toBe(true);
      await expect(CommitPool.shared().checkpoint(join(x.dir, "missing.db"))).rejects.toThrow(/EIO/);
    } finally {
      x.cleanup();
    }
  });

  it("gc by another connection during a commit in flight never leaves a dangling chunk", async () => {
    const x = open();
    try {
      const v1 = text(24 * MiB, 6);
      const fd = x.core.openFile("/f", C.O_CREAT | C.O_RDWR);
      x.core.write(fd, v1, 0, v1.length, 0);
      const p = x.core.flushAsync(fd);
      for (let i = 0; i < 3; i++) await turn(); // some objects stored, inode not yet written
      const other = Store.open(x.dir);
      try {
        gc(other); // another process: knows nothing of the commit in flight
      } finally {
        other.close();
      }
      await p;
      expect(sha(committed(x.dir, "/f"))).toBe(sha(v1));
      const rep = fsck(x.store);
      expect(rep.problems).toEqual([]);
      x.core.close(fd);
    } finally {
      x.cleanup();
    }
  });
});

describe("asynchronous commit: crash safety", () => {
  const FIXTURE = join(CORE_DIR, "test", "fixtures", "async-writer.mjs");

  it("a file whose fsyncAsync resolved survives SIGKILL; a commit cut short leaves the previous version", () => {
    const t = tempDir("agentfs-async-crash-");
    const dir = join(t.dir, "store");
    try {
      // mode "synced": write v1 (8 MiB + seed), fsyncAsync, print, SIGKILL itself at once.
      const r1 = spawnSync(process.execPath, [FIXTURE, dir, "synced", "1"], { encoding: "utf8" });
      expect(r1.stderr).toBe("");
      expect(r1.signal).toBe("SIGKILL");
      const [tag1, sha1] = r1.stdout.trim().split(" ");
      expect(tag1).toBe("SYNCED");
      // mode "midway": rewrite the same file (v2), start closeAsync, SIGKILL itself while it runs.
      const r2 = spawnSync(process.execPath, [FIXTURE, dir, "midway", "2"], { encoding: "utf8" });
      expect(r2.stderr).toBe("");
      expect(r2.signal).toBe("SIGKILL");
      expect(r2.stdout.trim().split(" ")[0]).toBe("STARTED");
      const s = Store.open(dir);
      try {
        const rep = fsck(s);
        expect(rep.problems).toEqual([]);
      } finally {
        s.close();
      }
      expect(sha(committed(dir, "/f"))).toBe(sha1);
    } finally {
      t.cleanup();
    }
  });
});
