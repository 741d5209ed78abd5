/**
 * Pack files (core packs.ts) with Linux's real hole punch (`punchHoleFd`):
 * a large file committed through the worker path puts its bodies into a
 * pack; they read back (also by a store opened without a hole punch), fsck
 * is clean; gc and gcAsync free the ranges of what they deleted (the
 * pack's allocated blocks shrink) and keep the rest; a damaged or
 * truncated pack gives EIO on read and fsck names the objects. A store
 * from before packs gets the format older versions refuse once a process
 * that may pack opens it. Bytes a writer killed between append and row left
 * in packs are freed by the next process that opens the store alone. A
 * program run with `node --input-type=module -e` commits through the
 * workers too.
 */
import { afterEach, describe, expect, it } from "vitest";
import fs from "node:fs";
import path from "node:path";
import { constants as C } from "node:fs";
import { FORMAT, FORMAT_BEFORE_PACKS, FsCore, PackFiles, Store, fsck, gc, gcAsync, packPath } from "@agentfs/core";
import { spawn } from "node:child_process";
import { createRequire } from "node:module";
import { fileURLToPath, pathToFileURL } from "node:url";
import { punchHoleFd } from "../src/index.js";
import { prng, tmpDir } from "./helpers.js";

const MiB = 1 << 20;
const dirs: string[] = [];
afterEach(() => {
  for (const d of dirs.splice(0)) fs.rmSync(d, { recursive: true, force: true });
});

/** A store on /dev/shm (tmpfs) or `base`, opened with the hole punch unless `punch` is false. */
function open(opts: { base?: string; dir?: string; punch?: boolean } = {}): { dir: string; store: Store; core: FsCore } {
  let dir = opts.dir;
  if (!dir) {
    const t = tmpDir("agentfs-packs-", opts.base ?? "/dev/shm");
    dirs.push(t);
    dir = path.join(t, "store");
  }
  const store = Store.open(dir, { create: true, ...(opts.punch === false ? {} : { punchHole: punchHoleFd }) });
  return { dir, store, core: new FsCore(store, { branch: "main" }, { umask: 0o022 }) };
}

/** Writes `data` to `p` and commits it through the worker path (closeAsync). */
async function writeAsync(core: FsCore, p: string, data: Buffer): Promise<void> {
  const fd = core.openFile(p, C.O_WRONLY | C.O_CREAT | C.O_TRUNC, 0o644);
  core.write(fd, data, 0, data.length, 0);
  await core.closeAsync(fd);
}

function readAll(core: FsCore, p: string): Buffer {
  const fd = core.openFile(p, C.O_RDONLY);
  try {
    const size = core.fstat(fd).size;
    const b = Buffer.alloc(size);
    expect(core.read(fd, b, 0, size, 0)).toBe(size);
    return b;
  } finally {
    core.close(fd);
  }
}

function packRows(store: Store): { pack: number; off: number; stored: number }[] {
  return store.manifest.db.prepare(`SELECT pack, off, stored FROM objects WHERE pack IS NOT NULL ORDER BY pack, off`).all() as { pack: number; off: number; stored: number }[];
}

/** Allocated bytes (st_blocks × 512) of every pack file of the store. */
function packBlocks(store: Store): number {
  const d = store.cas.packs!.dir;
  if (!fs.existsSync(d)) return 0;
  return fs.readdirSync(d).reduce((n, f) => n + fs.statSync(path.join(d, f)).blocks * 512, 0);
}

describe("pack files", () => {
  it("a large commit puts its bodies into a pack; they read back, also without a hole punch; fsck is clean", async () => {
    const { dir, store, core } = open();
    const data = prng(6 * MiB, 3);
    await writeAsync(core, "/big", data);
    const rows = packRows(store);
    expect(rows.length).toBeGreaterThan(10);
    // Bodies lie back to back in one pack file, which holds exactly them.
    expect(new Set(rows.map((r) => r.pack)).size).toBe(1);
    const total = rows.reduce((n, r) => n + r.stored, 0);
    expect(fs.statSync(packPath(store.cas.packs!.dir, rows[0]!.pack)).size).toBe(total);
    expect(store.manifest.db.prepare(`SELECT max(length(data)) FROM objects WHERE pack IS NOT NULL`).pluck().get()).toBe(0);
    store.cas.clearCache();
    expect(readAll(core, "/big").equals(data)).toBe(true);
    // Partial chunks go through the verified-chunk cache instead of straight into the caller's buffer.
    const part = Buffer.alloc(1000);
    const fd = core.openFile("/big", C.O_RDONLY);
    expect(core.read(fd, part, 0, 1000, 100_000)).toBe(1000);
    core.close(fd);
    expect(part.equals(data.subarray(100_000, 101_000))).toBe(true);
    // Compressible data: gzip bodies in the pack.
    const text = Buffer.from(Array.from({ length: 200_000 }, (_, i) => `line ${i} ${(i * 7919) % 1000}\n`).join(""));
    await writeAsync(core, "/text", text);
    expect(store.manifest.db.prepare(`SELECT count(*) FROM objects WHERE pack IS NOT NULL AND codec = 1`).pluck().get()).toBeGreaterThan(0);
    store.cas.clearCache();
    expect(readAll(core, "/text").equals(text)).toBe(true);
    expect(fsck(store).ok).toBe(true);
    store.close();
    // A store opened without a hole punch reads packs but writes none.
    const plain = open({ dir, punch: false });
    expect(readAll(plain.core, "/big").equals(data)).toBe(true);
    expect(plain.store.cas.packTarget()).toBeNull();
    await writeAsync(plain.core, "/other", prng(3 * MiB, 4));
    expect(plain.store.manifest.db.prepare(`SELECT count(*) FROM objects WHERE pack IS NULL AND stored > 8192`).pluck().get()).toBeGreaterThan(5);
    expect(fsck(plain.store).ok).toBe(true);
    plain.store.close();
  });

  it("small files stay in their rows", async () => {
    const { store, core } = open();
    await writeAsync(core, "/small", prng(40_000, 5));
    expect(packRows(store)).toHaveLength(0);
    store.close();
  });

  it("appends need fdatasync on a disk, not on tmpfs", () => {
    const shm = open();
    expect(shm.store.cas.packTarget()).toEqual({ dir: shm.store.cas.packs!.dir, sync: false });
    shm.store.close();
    const disk = open({ base: "/var/tmp" });
    expect(disk.store.cas.packTarget()?.sync).toBe(true);
    disk.store.close();
  });

  it("gc frees the pack ranges of the objects it deletes, once deleted, and keeps the others", async () => {
    const { store, core } = open();
    const keep = prng(4 * MiB, 6);
    await writeAsync(core, "/keep", keep);
    await writeAsync(core, "/drop", prng(8 * MiB, 7));
    const before = packBlocks(store);
    expect(before).toBeGreaterThanOrEqual(12 * MiB);
    core.unlink("/drop");
    const rep = gc(store);
    expect(rep.objectsRemoved).toBeGreaterThan(10);
    const after = packBlocks(store);
    // 8 MiB freed, give or take the partial 4 KiB blocks at the ends of each range.
    expect(before - after).toBeGreaterThan(7.5 * MiB);
    expect(after).toBeGreaterThanOrEqual(4 * MiB);
    expect(store.cas.packs!.bytesFreed).toBe(rep.bytesFreed);
    store.cas.clearCache();
    expect(readAll(core, "/keep").equals(keep)).toBe(true);
    expect(fsck(store).ok).toBe(true);
    store.close();
  });

  it("gcAsync frees them too", async () => {
    const { store, core } = open();
    const keep = prng(3 * MiB, 8);
    await writeAsync(core, "/keep", keep);
    await writeAsync(core, "/drop", prng(6 * MiB, 9));
    const before = packBlocks(store);
    core.unlink("/drop");
    const rep = await gcAsync(store);
    expect(rep.objectsRemoved).toBeGreaterThan(10);
    expect(before - packBlocks(store)).toBeGreaterThan(5.5 * MiB);
    store.cas.clearCache();
    expect(readAll(core, "/keep").equals(keep)).toBe(true);
    expect(fsck(store).ok).toBe(true);
    store.close();
  });

  it("a damaged pack byte is EIO on read and a corrupt object in fsck; a truncated pack is EIO naming the pack", async () => {
    const { store, core } = open();
    await writeAsync(core, "/big", prng(3 * MiB, 10));
    const rows = packRows(store);
    const file = packPath(store.cas.packs!.dir, rows[0]!.pack);
    const fd = fs.openSync(file, "r+");
    const b = Buffer.alloc(1);
    fs.readSync(fd, b, 0, 1, rows[1]!.off + 100);
    b[0] ^= 0xff;
    fs.writeSync(fd, b, 0, 1, rows[1]!.off + 100);
    fs.closeSync(fd);
    store.cas.clearCache();
    expect(() => readAll(core, "/big")).toThrow(expect.objectContaining({ code: "EIO" }));
    const rep = fsck(store);
    expect(rep.ok).toBe(false);
    expect(rep.problems.filter((p) => p.kind === "corrupt-object")).toHaveLength(1);
    fs.truncateSync(file, rows[rows.length - 1]!.off + 10);
    store.cas.packs!.close();
    store.cas.clearCache();
    const fd2 = core.openFile("/big", C.O_RDONLY);
    const buf = Buffer.alloc(3 * MiB);
    expect(() => core.read(fd2, buf, 0, buf.length, 0)).toThrow(/EIO/);
    core.close(fd2);
    expect(() => store.cas.get(Buffer.from(store.manifest.db.prepare(`SELECT hash FROM objects WHERE pack IS NOT NULL ORDER BY off DESC LIMIT 1`).pluck().get() as Buffer))).toThrow(/ends before/);
    store.close();
  });
});

describe("reading whole chunks", () => {
  it("an object whose row disagrees with the file's extent about its size is EIO, and nothing past the chunk is written", async () => {
    const { store, core } = open();
    const data = prng(2 * MiB, 12);
    await writeAsync(core, "/big", data);
    const first = store.manifest.db.prepare(`SELECT hash, size FROM objects WHERE pack IS NOT NULL ORDER BY off LIMIT 1`).get() as { hash: Buffer; size: number };
    store.manifest.db.prepare(`UPDATE objects SET size = size + 1 WHERE hash = ?`).run(first.hash);
    store.cas.clearCache();
    const fd = core.openFile("/big", C.O_RDONLY);
    const buf = Buffer.alloc(first.size + 10, 0xaa);
    expect(() => core.read(fd, buf, 0, first.size, 0)).toThrow(/EIO.*bytes where the file's extent says/);
    expect(buf.subarray(first.size).every((b) => b === 0xaa)).toBe(true);
    core.close(fd);
    store.close();
  });
});

describe("pack writers", () => {
  it("a store removed and made again at the same path gets packs of its own (the worker's open pack belonged to the old one)", async () => {
    const first = open();
    // (Two commits, so that every worker of the pool has a pack of the old store open.)
    await writeAsync(first.core, "/a", prng(2 * MiB, 13));
    await writeAsync(first.core, "/a2", prng(2 * MiB, 15));
    first.store.close();
    fs.rmSync(first.dir, { recursive: true, force: true });
    const again = open({ dir: first.dir });
    const data = prng(3 * MiB, 14);
    await writeAsync(again.core, "/b", data);
    again.store.cas.clearCache();
    expect(readAll(again.core, "/b").equals(data)).toBe(true);
    expect(fsck(again.store).ok).toBe(true);
    again.store.close();
  });

  it("a commit worker closes a pack idle for 5 s: a store removed meanwhile keeps no descriptor open", async () => {
    const { dir, store, core } = open();
    await writeAsync(core, "/big", prng(2 * MiB, 11));
    const packDir = store.cas.packs!.dir;
    store.close();
    const held = () => {
      let n = 0;
      for (const f of fs.readdirSync("/proc/self/fd")) {
        try {
          if (fs.readlinkSync(`/proc/self/fd/${f}`).startsWith(packDir)) n++;
        } catch {
          /* closed meanwhile */
        }
      }
      return n;
    };
    expect(held()).toBe(1); // the worker's open pack (worker threads share this process's fd table)
    fs.rmSync(path.dirname(dir), { recursive: true, force: true });
    const t0 = Date.now();
    while (held() > 0 && Date.now() - t0 < 15_000) await new Promise((r) => setTimeout(r, 250));
    expect(held()).toBe(0);
  }, 20_000);
});

describe("store format", () => {
  const formatOf = (store: Store) => store.manifest.getMeta("format");

  it("a store from before packs becomes agentfs-manifest-2 once a process that may pack opens it; one without a hole punch leaves it as it is", async () => {
    const a = open();
    expect(formatOf(a.store)).toBe(FORMAT);
    await writeAsync(a.core, "/early.bin", prng(MiB, 3));
    // As a store written before packs existed: the old format, its objects in rows.
    a.store.manifest.setMeta("format", FORMAT_BEFORE_PACKS);
    a.store.close();

    const ro = open({ dir: a.dir, punch: false }); // writes no packs: no reason to lock older versions out
    expect(formatOf(ro.store)).toBe(FORMAT_BEFORE_PACKS);
    expect(readAll(ro.core, "/early.bin").equals(prng(MiB, 3))).toBe(true);
    ro.store.close();

    const rw = open({ dir: a.dir });
    expect(formatOf(rw.store)).toBe(FORMAT);
    const big = prng(4 * MiB, 4);
    await writeAsync(rw.core, "/late.bin", big);
    expect(packRows(rw.store).length).toBeGreaterThan(0);
    rw.store.close();

    // What a version from before packs checks at open is no longer its own marker, so it refuses the store.
    const again = open({ dir: a.dir, punch: false });
    expect(formatOf(again.store)).toBe(FORMAT);
    expect(readAll(again.core, "/late.bin").equals(big)).toBe(true);
    expect(fsck(again.store).ok).toBe(true);
    again.store.close();
  });
});

describe("pack bytes a crash leaves", () => {
  const markers = (dir: string) => fs.readdirSync(path.join(dir, "packs")).filter((n) => n.endsWith(".writer"));
  /** Apparent bytes of every pack file, and the bytes the rows' ranges end at (per pack, its last range's end). */
  function usage(dir: string, store: Store): { files: number; apparent: number; referencedEnd: number } {
    const names = fs.readdirSync(path.join(dir, "packs")).filter((n) => n.endsWith(".pack"));
    const ends = new Map<number, number>();
    for (const r of packRows(store)) ends.set(r.pack, Math.max(ends.get(r.pack) ?? 0, r.off + r.stored));
    return {
      files: names.length,
      apparent: names.reduce((n, f) => n + fs.statSync(path.join(dir, "packs", f)).size, 0),
      referencedEnd: [...ends.values()].reduce((a, b) => a + b, 0),
    };
  }

  /** A child process running `body` after opening the store in argv[2] with the hole punch as `store` and a view `fs`; its output lines, stdin and exit. */
  function child(body: string, storeDir: string) {
    const req = createRequire(import.meta.url);
    const core = pathToFileURL(req.resolve("@agentfs/core")).href;
    const linux = pathToFileURL(path.join(path.dirname(fileURLToPath(import.meta.url)), "..", "dist", "index.js")).href;
    // (a file, not `-e`: the children must be ordinary programs)
    const file = path.join(path.dirname(storeDir), `child-${Math.random().toString(36).slice(2)}.mjs`);
    fs.writeFileSync(file, `
import { FsCore, Store } from ${JSON.stringify(core)};
import { punchHoleFd } from ${JSON.stringify(linux)};
import { constants as C } from "node:fs";
import { randomBytes } from "node:crypto";
const store = Store.open(process.argv[2], { punchHole: punchHoleFd });
const fs = new FsCore(store, { branch: "main" });
${body}
`);
    const p = spawn(process.execPath, [file, storeDir], { stdio: ["pipe", "pipe", "pipe"] });
    const r = { p, out: "", err: "", exited: new Promise<void>((res) => p.on("close", () => res())) };
    p.stdout.on("data", (d) => (r.out += d));
    p.stderr.on("data", (d) => (r.err += d));
    return r;
  }

  async function until(what: () => boolean, label: string, err: () => string): Promise<void> {
    for (const t0 = Date.now(); !what(); await new Promise((r) => setTimeout(r, 20))) {
      if (Date.now() - t0 > 20_000) throw new Error(`timed out waiting for ${label}; stderr: ${err()}`);
    }
  }

  // A real cut-short commit: the writer's commit workers append the bodies of what it fed them to a pack of
  // their own, its first row insert waits behind a write lock this process holds, and it is SIGKILLed there.
  // A live writer in another process (the holder) keeps every sweep off; once it has closed, the next open
  // frees what the killed one left. Then the same within one process.
  it("a writer killed between append and row leaves unreferenced pack bytes and its marker; no open frees them while another writer is live (another process, or another store of this one); the next open with none frees them", async () => {
    const a = open();
    const kept = prng(3 * MiB, 7);
    await writeAsync(a.core, "/kept.bin", kept);
    a.store.close();
    expect(markers(a.dir)).toEqual([]); // a closed store leaves no marker
    const look = Store.open(a.dir); // (no hole punch: neither sweeps nor claims)
    const base = usage(a.dir, look);

    const holder = child(`console.log("ready"); process.stdin.once("data", () => { store.close(); process.exit(0); });`, a.dir);
    const writer = child(`
const fd = fs.openFile("/cut.bin", C.O_WRONLY | C.O_CREAT, 0o644);
const data = randomBytes(8 << 20);
fs.write(fd, data, 0, data.length, 0);
console.log("ready");
process.stdin.once("data", () => fs.closeAsync(fd).then(() => console.log("committed")));
`, a.dir);
    let cut = base;
    try {
      const errs = () => holder.err + writer.err;
      await until(() => holder.out.includes("ready") && writer.out.includes("ready"), "the children", errs);
      expect(markers(a.dir)).toHaveLength(2);
      look.manifest.db.exec("BEGIN IMMEDIATE");
      writer.p.stdin.write("go\n");
      await until(() => usage(a.dir, look).apparent > base.apparent, "the writer's appends", errs);
      await new Promise((r) => setTimeout(r, 500)); // (the workers finish what they were fed)
      writer.p.kill("SIGKILL");
      await writer.exited;
      look.manifest.db.exec("ROLLBACK");
      expect(writer.out).not.toContain("committed");
      cut = usage(a.dir, look);
      expect(cut.referencedEnd).toBe(base.referencedEnd);
      expect(cut.apparent).toBeGreaterThan(base.apparent);

      // The holder (another process) may be appending: nothing is freed.
      const t = open({ dir: a.dir });
      expect(t.store.cas.packs!.swept).toBeNull();
      expect(markers(a.dir)).toHaveLength(3);
      t.store.close();
      expect(usage(a.dir, look)).toEqual(cut);
      holder.p.stdin.write("x\n");
      await holder.exited;
      expect(markers(a.dir)).toHaveLength(1); // the killed writer's
    } finally {
      writer.p.kill("SIGKILL");
      holder.p.kill("SIGKILL");
      look.close();
    }

    // No writer left: the killed one's bytes are freed (its pack held nothing else), its marker removed, the rest kept.
    const b = open({ dir: a.dir });
    const swept = b.store.cas.packs!.swept!;
    expect(swept).toMatchObject({ claimsRemoved: 1, failed: 0 });
    expect(swept.packsRemoved).toBeGreaterThanOrEqual(1);
    expect(swept.bytesFreed).toBeGreaterThanOrEqual(cut.apparent - base.apparent);
    expect(markers(a.dir)).toHaveLength(1); // its own
    expect(usage(a.dir, b.store)).toEqual({ files: base.files, apparent: base.referencedEnd, referencedEnd: base.referencedEnd });
    expect(readAll(b.core, "/kept.bin").equals(kept)).toBe(true);
    expect(fsck(b.store).ok).toBe(true);

    // Within one process: a stale marker, and another store of this process holding its claim: no sweep.
    fs.writeFileSync(path.join(a.dir, "packs", "00000000dead.writer"), "");
    const c = open({ dir: a.dir });
    expect(c.store.cas.packs!.swept).toBeNull();
    c.store.close();
    // It packs as before.
    const rows = packRows(b.store).length;
    const more = prng(2 * MiB, 8);
    await writeAsync(b.core, "/more.bin", more);
    expect(packRows(b.store).length).toBeGreaterThan(rows);
    b.store.close();
    const d = open({ dir: a.dir });
    expect(d.store.cas.packs!.swept).toMatchObject({ claimsRemoved: 1, failed: 0 });
    expect(markers(a.dir)).toHaveLength(1);
    expect(readAll(d.core, "/more.bin").equals(more)).toBe(true);
    expect(readAll(d.core, "/kept.bin").equals(kept)).toBe(true);
    d.store.close();
    expect(markers(a.dir)).toEqual([]);
  }, 60_000);

  it("a lock database someone turned to WAL holds every sweep off; a damaged one turns packing off and says why", async () => {
    const a = open();
    await writeAsync(a.core, "/f.bin", prng(2 * MiB, 5));
    a.store.close();
    const lockDb = path.join(a.dir, "packs", "writers.db");
    const stale = path.join(a.dir, "packs", "00000000beef.writer");
    fs.writeFileSync(stale, "");
    // In WAL mode BEGIN EXCLUSIVE does not conflict with readers: a sweep there could run under live claims.
    const Sqlite = createRequire(createRequire(import.meta.url).resolve("@agentfs/core"))("better-sqlite3") as new (f: string) => { pragma(s: string): unknown; close(): void };
    const db = new Sqlite(lockDb);
    db.pragma("journal_mode = WAL");
    db.close();
    const b = open({ dir: a.dir });
    expect(b.store.cas.packs!.swept).toBeNull();
    expect(fs.existsSync(stale)).toBe(true);
    expect(b.store.cas.packTarget()).not.toBeNull(); // (claims still work)
    b.store.close();
    // Damaged: the claim fails, so this process writes no packs, and the store says why; reads go on.
    for (const f of fs.readdirSync(path.join(a.dir, "packs"))) if (f.startsWith("writers.db")) fs.rmSync(path.join(a.dir, "packs", f));
    fs.writeFileSync(lockDb, prng(64 * 1024, 6));
    const c = open({ dir: a.dir });
    expect(c.store.cas.packTarget()).toBeNull();
    expect(c.store.cas.packs!.claimError).toMatch(/writers\.db/);
    expect(readAll(c.core, "/f.bin").equals(prng(2 * MiB, 5))).toBe(true);
    c.store.close();
  });

  // The sweep's arithmetic on a pack of its own: gaps between kept ranges (overlapping, adjacent,
  // duplicated) are punched, the tail cut, a pack no range lies in removed.
  it("sweep keeps exactly the listed ranges: gaps punched, tail cut, unlisted packs removed", () => {
    const t = tmpDir("agentfs-packs-", "/dev/shm");
    dirs.push(t);
    const dir = path.join(t, "packs");
    fs.mkdirSync(dir);
    const body = prng(64 * 4096, 9);
    fs.writeFileSync(packPath(dir, 1), body);
    fs.writeFileSync(packPath(dir, 2), body);
    fs.writeFileSync(path.join(dir, "notapack.txt"), "x");
    const files = new PackFiles(dir, punchHoleFd);
    const keep = [
      { pack: 1, off: 4096, len: 8192 },
      { pack: 1, off: 8192, len: 8192 }, // overlaps the one before
      { pack: 1, off: 16384, len: 4096 }, // adjacent
      { pack: 1, off: 16384, len: 4096 }, // duplicate
      { pack: 1, off: 40 * 4096, len: 4096 },
    ];
    const r = files.sweep(keep, []);
    expect(r).toMatchObject({ packsRemoved: 1, failed: 0 });
    expect(fs.existsSync(packPath(dir, 2))).toBe(false);
    expect(fs.existsSync(path.join(dir, "notapack.txt"))).toBe(true);
    const after = fs.readFileSync(packPath(dir, 1));
    expect(after.length).toBe(41 * 4096); // cut after the last kept range
    const zero = Buffer.alloc(4096);
    for (let page = 0; page < 41; page++) {
      const kept = (page >= 1 && page < 5) || page === 40;
      const got = after.subarray(page * 4096, (page + 1) * 4096);
      expect(got.equals(kept ? body.subarray(page * 4096, (page + 1) * 4096) : zero)).toBe(true);
    }
    expect(fs.statSync(packPath(dir, 1)).blocks * 512).toBe(5 * 4096); // only the kept pages hold blocks (tmpfs)
    files.close();
  });
});

describe("commit workers of a program run with -e", () => {
  // `node --input-type=module -e` passes --input-type to worker threads, which then failed at start: every
  // commit fell back to the loop, and none used a pack.
  it("commits through the workers (its bodies go to packs) under node --input-type=module -e", async () => {
    const t = tmpDir("agentfs-packs-", "/dev/shm");
    dirs.push(t);
    const req = createRequire(import.meta.url);
    const core = pathToFileURL(req.resolve("@agentfs/core")).href;
    const linux = pathToFileURL(path.join(path.dirname(fileURLToPath(import.meta.url)), "..", "dist", "index.js")).href;
    const script = `
import { FsCore, Store } from ${JSON.stringify(core)};
import { punchHoleFd } from ${JSON.stringify(linux)};
import { constants as C } from "node:fs";
import { randomBytes } from "node:crypto";
const store = Store.open(process.argv[1], { punchHole: punchHoleFd, create: true });
const fs = new FsCore(store, { branch: "main" });
const fd = fs.openFile("/f.bin", C.O_WRONLY | C.O_CREAT, 0o644);
const data = randomBytes(4 << 20);
fs.write(fd, data, 0, data.length, 0);
await fs.closeAsync(fd);
console.log(JSON.stringify(store.manifest.db.prepare("SELECT count(*) AS n, count(pack) AS packed FROM objects").get()));
store.close();
`;
    const r = await new Promise<{ out: string; err: string; code: number | null }>((resolve) => {
      const child = spawn(process.execPath, ["--input-type=module", "-e", script, path.join(t, "store")], { stdio: ["ignore", "pipe", "pipe"] });
      let out = "";
      let err = "";
      child.stdout.on("data", (d) => (out += d));
      child.stderr.on("data", (d) => (err += d));
      child.on("close", (code) => resolve({ out, err, code }));
    });
    expect(r.err).toBe("");
    expect(r.code).toBe(0);
    const counts = JSON.parse(r.out) as { n: number; packed: number };
    expect(counts.n).toBeGreaterThan(4);
    expect(counts.packed).toBeGreaterThan(counts.n / 2); // (a tail chunk under 8 KiB stays in its row)
  }, 30_000);
});
