/**
 * Read-ahead (FsCore.readAhead, ObjectStore.prefetch, FetchPool): on a real
 * SQLite store, chunks are fetched and SHA-256-verified in fetch workers on
 * connections of their own; a corrupt or missing object is never cached as
 * good (the read that follows reports EIO); stores and handles it cannot
 * serve say so with null.
 */
import { afterEach, beforeAll, beforeEach, describe, expect, it } from "vitest";
import { constants as C } from "node:fs";
import { join } from "node:path";
import Database from "better-sqlite3";
import { AgentFS, FetchPool, MANIFEST_FILE } from "../src/index.js";
import { codeOf, ensureDist, prng, tempDir } from "./helpers.js";

const MiB = 1 << 20;
const DATA = prng(6 * MiB, 41);

let t: { dir: string; cleanup: () => void };
let dir: string;
let afs: AgentFS;

beforeAll(() => ensureDist(), 120_000); // the workers run from dist/fetchworker.js

beforeEach(async () => {
  t = tempDir();
  dir = join(t.dir, "store");
  const w = await AgentFS.open(dir, { create: true });
  await w.fs.writeFile("/big", DATA);
  w.closeSync();
  afs = await AgentFS.open(dir); // a fresh process-like start: nothing cached
});

afterEach(() => {
  afs.closeSync();
  t.cleanup();
});

/** All the bytes of `fd` at `pos…pos+len` by pread. */
function pread(fd: number, pos: number, len: number): Buffer {
  const b = Buffer.alloc(len);
  const n = afs.core.read(fd, b, 0, len, pos);
  return b.subarray(0, n);
}

/** Waits until every chunk of `[pos, pos+len)` is cached; returns how many rounds that took. */
async function settle(fd: number, pos: number, len: number): Promise<number> {
  let rounds = 0;
  for (let p = afs.core.readAhead(fd, pos, len, 0); p; p = afs.core.readAhead(fd, pos, len, 0)) {
    await p;
    if (++rounds > 5) throw new Error("read-ahead never settled");
  }
  return rounds;
}

describe("read-ahead", () => {
  it("verifies the chunks of the range and of the window ahead in the workers; reads then find them cached", async () => {
    const fd = afs.core.openFile("/big", C.O_RDONLY);
    const first = afs.core.readAhead(fd, 0, MiB, 4 * MiB);
    expect(first).toBeInstanceOf(Promise);
    await first;
    // the asked range is cached now; the window ahead arrives without any read on this thread
    expect(afs.core.readAhead(fd, 0, MiB, 0)).toBeNull();
    await settle(fd, 0, 5 * MiB);
    expect(afs.core.readAhead(fd, 0, 5 * MiB, 0)).toBeNull();
    // beyond the window nothing was fetched
    expect(afs.core.readAhead(fd, 5 * MiB, MiB, 0)).toBeInstanceOf(Promise);
    expect(pread(fd, 0, 6 * MiB).equals(DATA)).toBe(true);
    afs.core.close(fd);
  });

  it("a corrupt object is left for the read, which fails with EIO naming it; the rest reads intact", async () => {
    const db = new Database(join(dir, MANIFEST_FILE));
    const rows = db.prepare("SELECT hash, data FROM objects WHERE codec = 0").all() as { hash: Buffer; data: Buffer }[];
    // the raw chunk that starts 2 MiB or more into the file (prng data: its first 64 bytes occur once)
    const at = rows.map((r) => ({ ...r, off: DATA.indexOf(r.data.subarray(0, 64)) })).filter((r) => r.off >= 2 * MiB).sort((a, b) => a.off - b.off)[0];
    expect(at).toBeDefined();
    const bad = Buffer.from(at.data);
    bad[bad.length >> 1] ^= 1;
    expect(db.prepare("UPDATE objects SET data = ? WHERE hash = ?").run(bad, at.hash).changes).toBe(1);
    db.close();

    const fd = afs.core.openFile("/big", C.O_RDONLY);
    const p = afs.core.readAhead(fd, 0, 6 * MiB, 0);
    expect(p).toBeInstanceOf(Promise);
    await expect(p).resolves.toBeUndefined(); // never rejects: the error is the read's
    expect(afs.core.readAhead(fd, at.off, 1, 0)).toBeInstanceOf(Promise); // not cached as good
    const e = (() => {
      try {
        pread(fd, at.off, 4096);
      } catch (err) {
        return err as Error & { code: string };
      }
      throw new Error("read of a corrupt chunk succeeded");
    })();
    expect(e.code).toBe("EIO");
    expect(e.message).toContain(at.hash.toString("hex"));
    expect(codeOf(() => pread(fd, at.off, 4096))).toBe("EIO");
    expect(pread(fd, 0, at.off).equals(DATA.subarray(0, at.off))).toBe(true);
    const after = at.off + at.data.length;
    expect(pread(fd, after, DATA.length - after).equals(DATA.subarray(after))).toBe(true);
    afs.core.close(fd);
  });

  it("a missing object is left for the read (EIO); a worker killed mid-fetch loses nothing", async () => {
    const db = new Database(join(dir, MANIFEST_FILE));
    const victim = db.prepare("SELECT hash FROM objects ORDER BY hash LIMIT 1").pluck().get() as Buffer;
    db.prepare("DELETE FROM objects WHERE hash = ?").run(victim);
    db.close();
    const fd = afs.core.openFile("/big", C.O_RDONLY);
    const p = afs.core.readAhead(fd, 0, 6 * MiB, 0)!;
    await FetchPool.shared().terminate(); // the answers in flight are given up on, not lost
    await p;
    await settle(fd, 0, 6 * MiB).catch(() => 0);
    expect(codeOf(() => pread(fd, 0, 6 * MiB))).toBe("EIO");
    afs.core.close(fd);
  });

  it("is null where it cannot help: a RAM store, a file with changes open here, a bad descriptor, a directory", async () => {
    const ram = await AgentFS.open("ram", { inMemory: true });
    try {
      await ram.fs.writeFile("/f", prng(2 * MiB, 3));
      const fd = ram.core.openFile("/f", C.O_RDONLY);
      expect(ram.core.readAhead(fd, 0, MiB, MiB)).toBeNull();
      ram.core.close(fd);
    } finally {
      ram.closeSync();
    }
    const w = afs.core.openFile("/big", C.O_RDWR);
    afs.core.write(w, Buffer.from("x"), 0, 1, 0);
    expect(afs.core.readAhead(w, 0, MiB, MiB)).toBeNull();
    expect(pread(w, 0, 2).toString("latin1")).toBe("x" + DATA.subarray(1, 2).toString("latin1"));
    afs.core.close(w);
    expect(afs.core.readAhead(9999, 0, MiB, 0)).toBeNull();
    const d = afs.core.openFile("/", C.O_RDONLY | C.O_DIRECTORY);
    expect(afs.core.readAhead(d, 0, MiB, 0)).toBeNull();
    afs.core.close(d);
  });
});
