/**
 * Bad input: corrupt objects, damaged or foreign manifests, and two
 * processes writing one store at once.
 */
import { afterEach, beforeAll, beforeEach, describe, expect, it } from "vitest";
import { execFile } from "node:child_process";
import { openSync, closeSync, ftruncateSync, statSync, writeFileSync } from "node:fs";
import { randomBytes } from "node:crypto";
import { join } from "node:path";
import { promisify } from "node:util";
import Database from "better-sqlite3";
import { crc32 } from "node:zlib";
import { AgentFS, MANIFEST_FILE, Manifest, ObjectStore } from "../src/index.js";
import { CORE_DIR, ensureDist, errOf, prng, sha256hex, tempDir } from "./helpers.js";

const execFileP = promisify(execFile);

let root: string;
let cleanup: () => void;
beforeEach(() => {
  const t = tempDir("agentfs-bad-");
  root = t.dir;
  cleanup = t.cleanup;
});
afterEach(() => cleanup());

async function makeStore(files: Record<string, Buffer | string>): Promise<string> {
  const dir = join(root, "store");
  const afs = await AgentFS.open(dir, { create: true });
  for (const [p, d] of Object.entries(files)) await afs.fs.writeFile(p, d);
  afs.closeSync();
  return dir;
}

/** Flips one byte in the middle of the stored data of object `hashHex`. */
function flipObjectByte(dir: string, hashHex: string): void {
  const db = new Database(join(dir, MANIFEST_FILE));
  try {
    const row = db.prepare("SELECT data FROM objects WHERE hash = ?").get(Buffer.from(hashHex, "hex")) as { data: Buffer } | undefined;
    expect(row, `object ${hashHex} not found`).toBeDefined();
    const data = Buffer.from(row!.data);
    data[data.length >> 1] ^= 0x40;
    const r = db.prepare("UPDATE objects SET data = ? WHERE hash = ?").run(data, Buffer.from(hashHex, "hex"));
    expect(r.changes).toBe(1);
  } finally {
    db.close();
  }
}

describe("corrupt objects", () => {
  it.each([
    ["raw (incompressible)", prng(5000, 77)],
    ["gzip (compressible)", Buffer.from("compressible text line\n".repeat(400))],
  ])("a flipped byte in a %s object gives EIO naming it; fsck reports it; other files still read", async (_kind, victim) => {
    const other = prng(400_000, 78);
    const dir = await makeStore({ "/victim": victim, "/other": other, "/small": "small file" });
    const hash = sha256hex(victim); // a single-chunk file: its object is named by the hash of its bytes
    flipObjectByte(dir, hash);

    const afs = await AgentFS.open(dir);
    try {
      const e = await errOf(afs.fs.readFile("/victim"));
      expect(e.code).toBe("EIO");
      expect(e.errno).toBe(-5);
      expect(e.syscall).toBeDefined();
      expect(e.message).toContain(hash);
      // reading through a handle fails the same way, and again on retry (nothing is cached as good)
      const h = await afs.fs.open("/victim", "r");
      expect((await errOf(h.read(Buffer.alloc(100), 0, 100, 0))).code).toBe("EIO");
      await h.close();
      expect((await errOf(afs.fs.readFile("/victim"))).code).toBe("EIO");

      const rep = await afs.fsck();
      expect(rep.ok).toBe(false);
      const corrupt = rep.problems.filter((p) => p.kind === "corrupt-object");
      expect(corrupt).toHaveLength(1);
      expect(corrupt[0].object).toBe(hash);
      expect(corrupt[0].message).toContain(hash);
      expect(rep.problems.filter((p) => p.kind !== "corrupt-object")).toEqual([]);

      expect((await afs.fs.readFile("/other")).equals(other)).toBe(true);
      expect(await afs.fs.readFile("/small", "utf8")).toBe("small file");
      expect((await afs.fs.stat("/victim")).size).toBe(victim.length);
    } finally {
      afs.closeSync();
    }
  });

  it("a missing object gives EIO and fsck reports missing-object", async () => {
    const victim = prng(3000, 5);
    const dir = await makeStore({ "/victim": victim, "/ok": "ok" });
    const db = new Database(join(dir, MANIFEST_FILE));
    db.prepare("DELETE FROM objects WHERE hash = ?").run(Buffer.from(sha256hex(victim), "hex"));
    db.close();
    const afs = await AgentFS.open(dir);
    try {
      const e = await errOf(afs.fs.readFile("/victim"));
      expect(e.code).toBe("EIO");
      expect(e.message).toContain(sha256hex(victim));
      const rep = await afs.fsck();
      expect(rep.problems.map((p) => p.kind)).toEqual(["missing-object"]);
      expect(rep.problems[0].object).toBe(sha256hex(victim));
      expect(await afs.fs.readFile("/ok", "utf8")).toBe("ok");
    } finally {
      afs.closeSync();
    }
  });
});

describe("object checks: CRC-32 on read, SHA-256 in fsck", () => {
  const RAW = prng(5000, 91);
  const TEXT = Buffer.from("compressible text line\n".repeat(400));

  /** Runs `fn` on the manifest database of store `dir`, opened directly. */
  function withDb<T>(dir: string, fn: (db: Database.Database) => T): T {
    const db = new Database(join(dir, MANIFEST_FILE));
    try {
      return fn(db);
    } finally {
      db.close();
    }
  }
  const crcOf = (db: Database.Database, data: Buffer) =>
    db.prepare("SELECT crc FROM objects WHERE hash = ?").pluck().get(Buffer.from(sha256hex(data), "hex")) as number | null;

  it("new raw and gzip objects carry the CRC-32 of their bytes; a wrong CRC is EIO for reads, fsck names it, and nothing is changed", async () => {
    const dir = await makeStore({ "/raw": RAW, "/text": TEXT });
    withDb(dir, (db) => {
      expect(db.prepare("SELECT codec FROM objects WHERE hash = ?").pluck().get(Buffer.from(sha256hex(TEXT), "hex"))).toBe(1);
      expect(crcOf(db, RAW)).toBe(crc32(RAW));
      expect(crcOf(db, TEXT)).toBe(crc32(TEXT));
      db.prepare("UPDATE objects SET crc = (crc + 1) % 4294967296 WHERE hash = ?").run(Buffer.from(sha256hex(TEXT), "hex"));
    });
    let afs = await AgentFS.open(dir);
    try {
      const e = await errOf(afs.fs.readFile("/text"));
      expect(e.code).toBe("EIO");
      expect(e.message).toContain(sha256hex(TEXT));
      expect(e.message).toContain("CRC-32");
      expect((await afs.fs.readFile("/raw")).equals(RAW)).toBe(true);
      const rep = await afs.fsck();
      expect(rep.problems.map((p) => [p.kind, p.object])).toEqual([["corrupt-object", sha256hex(TEXT)]]);
      expect(rep.problems[0].message).toMatch(/CRC-32 column does not match/);
    } finally {
      afs.closeSync();
    }
    // The bytes were never touched: with the CRC put back, the file reads again.
    withDb(dir, (db) => db.prepare("UPDATE objects SET crc = ? WHERE hash = ?").run(crc32(TEXT), Buffer.from(sha256hex(TEXT), "hex")));
    afs = await AgentFS.open(dir);
    try {
      expect((await afs.fs.readFile("/text")).equals(TEXT)).toBe(true);
      expect((await afs.fsck()).ok).toBe(true);
    } finally {
      afs.closeSync();
    }
  });

  it("a store from before objects.crc reads by SHA-256 (read-only, without the column); opened for writing it gains the column, old rows keep their SHA-256 check", async () => {
    const dir = await makeStore({ "/raw": RAW, "/text": TEXT });
    withDb(dir, (db) => db.exec("ALTER TABLE objects DROP COLUMN crc"));
    const m = Manifest.open(dir, { readonly: true });
    try {
      const cas = new ObjectStore(m.db);
      expect(cas.get(Buffer.from(sha256hex(RAW), "hex")).equals(RAW)).toBe(true);
      expect(cas.get(Buffer.from(sha256hex(TEXT), "hex")).equals(TEXT)).toBe(true);
    } finally {
      m.close();
    }
    withDb(dir, (db) => expect(db.prepare("SELECT count(*) FROM pragma_table_info('objects') WHERE name = 'crc'").pluck().get()).toBe(0));

    const afs = await AgentFS.open(dir);
    try {
      await afs.fs.writeFile("/new", "written after the upgrade\n");
      expect(await afs.fs.readFile("/new", "utf8")).toBe("written after the upgrade\n");
      expect((await afs.fsck()).ok).toBe(true);
    } finally {
      afs.closeSync();
    }
    withDb(dir, (db) => {
      expect(crcOf(db, RAW)).toBeNull();
      expect(crcOf(db, Buffer.from("written after the upgrade\n"))).toBe(crc32(Buffer.from("written after the upgrade\n")));
    });
    // An old row is still checked, by its SHA-256.
    flipObjectByte(dir, sha256hex(RAW));
    const again = await AgentFS.open(dir);
    try {
      const e = await errOf(again.fs.readFile("/raw"));
      expect(e.code).toBe("EIO");
      expect(e.message).toContain("SHA-256");
      expect((await again.fs.readFile("/text")).equals(TEXT)).toBe(true);
    } finally {
      again.closeSync();
    }
  });
});

describe("damaged manifests", () => {
  async function bigStore(): Promise<string> {
    const files: Record<string, Buffer> = {};
    for (let i = 0; i < 40; i++) files[`/f${i}`] = prng(20_000 + i * 3000, i + 1);
    return makeStore(files);
  }

  it.each([
    ["half its size", (n: number) => Math.floor(n / 2)],
    ["100 bytes", () => 100],
    ["0 bytes", () => 0],
    ["one page short", (n: number) => n - 4096],
    ["one byte short", (n: number) => n - 1],
  ])("a manifest truncated to %s gives EIO from open, not a crash", async (_what, len) => {
    const dir = await bigStore();
    const file = join(dir, MANIFEST_FILE);
    const size = statSync(file).size;
    expect(size).toBeGreaterThan(100_000);
    const fd = openSync(file, "r+");
    ftruncateSync(fd, len(size));
    closeSync(fd);
    const e = await errOf(AgentFS.open(dir));
    expect(e.code).toBe("EIO");
    expect(e.message).toMatch(/damaged|truncated|not a (SQLite )?database|empty/i);
    expect(e.message).toContain(file);
  });

  // Refusing must not touch the files: a read-write connection's close would checkpoint the WAL into the
  // damaged database and delete the WAL, the one copy of the last commits.
  it("a manifest with a damaged header and a WAL is refused with EIO and left byte for byte as it was", async () => {
    const dir = await bigStore();
    const afs = await AgentFS.open(dir);
    try {
      // A change in the WAL that leaves page 1 alone (nothing checkpoints while the store is open); with page 1
      // in the WAL, SQLite would read the header from there, and the store opens (its checkpoint repairs it).
      await afs.fs.chmod("/f3", 0o600);
      const copy = join(root, "walcopy");
      const { mkdirSync, copyFileSync, readFileSync } = await import("node:fs");
      mkdirSync(copy);
      for (const f of [MANIFEST_FILE, `${MANIFEST_FILE}-wal`]) copyFileSync(join(dir, f), join(copy, f));
      const fd = openSync(join(copy, MANIFEST_FILE), "r+");
      const { writeSync } = await import("node:fs");
      writeSync(fd, Buffer.from("not sqlite at all"), 0, 16, 0);
      closeSync(fd);
      const before = [MANIFEST_FILE, `${MANIFEST_FILE}-wal`].map((f) => readFileSync(join(copy, f)));
      expect(before[1]!.length).toBeGreaterThan(0);
      const e = await errOf(AgentFS.open(copy));
      expect(e.code).toBe("EIO");
      expect(e.message).toMatch(/not a SQLite database/);
      const after = [MANIFEST_FILE, `${MANIFEST_FILE}-wal`].map((f) => readFileSync(join(copy, f)));
      expect(after[0]!.equals(before[0]!)).toBe(true);
      expect(after[1]!.equals(before[1]!)).toBe(true);
    } finally {
      afs.closeSync();
    }
  });

  it("a garbage file gives EIO saying it is not a database", async () => {
    const dir = join(root, "garbage");
    const { mkdirSync } = await import("node:fs");
    mkdirSync(dir);
    writeFileSync(join(dir, MANIFEST_FILE), randomBytes(64 * 1024));
    const e = await errOf(AgentFS.open(dir));
    expect(e.code).toBe("EIO");
    expect(e.message).toMatch(/not a SQLite database|damaged/);
  });

  it("garbage after a valid SQLite header gives EIO", async () => {
    const dir = await bigStore();
    const file = join(dir, MANIFEST_FILE);
    const fd = openSync(file, "r+");
    const { writeSync } = await import("node:fs");
    writeSync(fd, randomBytes(32 * 1024), 0, 32 * 1024, 4096);
    closeSync(fd);
    const e = await errOf(async () => {
      const afs = await AgentFS.open(dir);
      try {
        // if open happens to miss the damage, the first reads must report it as EIO
        for (let i = 0; i < 40; i++) await afs.fs.readFile(`/f${i}`);
        const rep = await afs.fsck();
        if (!rep.ok) throw Object.assign(new Error("fsck found damage: " + rep.problems[0].message), { code: "EIO" });
      } finally {
        afs.closeSync();
      }
    });
    expect(e.code).toBe("EIO");
  });

  it("a manifest whose second half was zeroed gives EIO (from open or the first read), never a raw SQLite error", async () => {
    const dir = await bigStore();
    const file = join(dir, MANIFEST_FILE);
    const size = statSync(file).size;
    const fd = openSync(file, "r+");
    ftruncateSync(fd, size >> 1);
    ftruncateSync(fd, size); // same size again, but the second half is zeros
    closeSync(fd);
    const e = await errOf(async () => {
      const afs = await AgentFS.open(dir);
      try {
        for (let i = 0; i < 40; i++) await afs.fs.readFile(`/f${i}`);
      } finally {
        afs.closeSync();
      }
    });
    expect(e.code).toBe("EIO");
    expect(e.message).toMatch(/damaged|malformed/);
  });

  it("a SQLite database of another schema gives EINVAL", async () => {
    const dir = join(root, "other");
    const { mkdirSync } = await import("node:fs");
    mkdirSync(dir);
    const db = new Database(join(dir, MANIFEST_FILE));
    db.exec("CREATE TABLE people(name TEXT); INSERT INTO people VALUES ('x')");
    db.close();
    const e = await errOf(AgentFS.open(dir));
    expect(e.code).toBe("EINVAL");
    expect(e.message).toMatch(/not an agentfs store/);
    // a meta table with another format is refused too
    const db2 = new Database(join(dir, MANIFEST_FILE));
    db2.exec("CREATE TABLE meta(key TEXT PRIMARY KEY, value); INSERT INTO meta VALUES ('format', 'something-else')");
    db2.close();
    const e2 = await errOf(AgentFS.open(dir));
    expect(e2.code).toBe("EINVAL");
    // nothing was changed in the foreign database
    const db3 = new Database(join(dir, MANIFEST_FILE), { readonly: true });
    expect(db3.prepare("SELECT name FROM sqlite_master WHERE type = 'table' ORDER BY name").pluck().all()).toEqual(["meta", "people"]);
    db3.close();
  });

  it("opening a missing store without create gives ENOENT", async () => {
    const e = await errOf(AgentFS.open(join(root, "nothing-here")));
    expect(e.code).toBe("ENOENT");
  });
});

describe("two processes on one store", () => {
  beforeAll(() => ensureDist(), 120_000);

  it("concurrent writers corrupt nothing", async () => {
    const dir = join(root, "store");
    (await AgentFS.open(dir, { create: true })).closeSync();
    const fixture = join(CORE_DIR, "test", "fixtures", "concurrent-writer.mjs");
    const results = await Promise.all(["1", "2"].map((id) => execFileP(process.execPath, [fixture, dir, id], { maxBuffer: 1 << 20 })));
    for (const r of results) {
      expect(r.stderr).toBe("");
      expect(r.stdout).toBe("DONE\n");
    }
    const { content } = await import("./fixtures/concurrent-writer-content.mjs");
    const afs = await AgentFS.open(dir);
    try {
      const rep = await afs.fsck();
      expect(rep.problems).toEqual([]);
      for (const id of ["1", "2"]) {
        expect(((await afs.fs.readdir(`/w${id}`)) as string[]).length).toBe(200);
        for (let i = 0; i < 200; i++) {
          const got = (await afs.fs.readFile(`/w${id}/f${i}`)) as Buffer;
          expect(got.equals(content(id, i)), `/w${id}/f${i}`).toBe(true);
          if (i % 10 === 0) expect(((await afs.fs.readFile(`/shared/s${id}-${i}`)) as Buffer).equals(content(id, i))).toBe(true);
        }
      }
      expect(((await afs.fs.readdir("/shared")) as string[]).length).toBe(41);
      const log = ((await afs.fs.readFile("/shared/log", "utf8")) as string).split("\n").filter(Boolean).sort();
      const want = ["1", "2"].flatMap((id) => [0, 25, 50, 75, 100, 125, 150, 175].map((i) => `${id}:${i}`)).sort();
      expect(log).toEqual(want);
    } finally {
      afs.closeSync();
    }
  });
});
