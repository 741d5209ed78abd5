/**
 * `gcAsync` (mark in a worker, sweep in slices) against `gc` (one
 * transaction): the same report and the same surviving objects; writes
 * that deduplicate against garbage after the mark, files open but
 * unlinked, and another process writing during the run all keep their
 * data; one run per store at a time; in-memory stores use `gc`. Also the
 * hold on chunks an asynchronous commit found present, which `gc` between
 * the lookup and the inode write must spare.
 */
import { beforeAll, describe, expect, it } from "vitest";
import { cpSync } from "node:fs";
import { constants as C } from "node:fs";
import { join } from "node:path";
import { CommitPool, FsCore, Store, encodeChunk, fsck, gc, gcAsync, sha256, type GcMark } from "../src/index.js";
import { ensureDist, errOf, openAt, prng, readFile, tempDir, withStore, writeFile } from "./helpers.js";

beforeAll(() => {
  ensureDist(); // the mark runs in dist/commitworker.js
}, 120_000);

const KiB = 1024;

const hashes = (s: Store) => (s.manifest.db.prepare(`SELECT hex(hash) FROM objects ORDER BY 1`).pluck().all() as string[]).join(",");

/** A store with garbage of every kind: deleted files, overwritten files, a deleted snapshot's versions. */
function garbageStore(dir: string): void {
  const { store, core } = openAt(dir, true);
  core.mkdir("/d", 0o755);
  for (let i = 0; i < 60; i++) writeFile(core, `/d/f${i}`, prng(3 * KiB + i * 97, i + 1));
  writeFile(core, "/big", prng(900 * KiB, 500));
  store.createSnapshot("s1", { branch: "main" });
  for (let i = 0; i < 30; i++) core.unlink(`/d/f${i}`);
  writeFile(core, "/big", prng(700 * KiB, 501));
  store.createSnapshot("s2", { branch: "main" });
  store.deleteSnapshot("s1");
  for (let i = 30; i < 40; i++) writeFile(core, `/d/f${i}`, prng(2 * KiB, 1000 + i));
  store.close();
}

/** A pool whose mark, once done, runs `after` before the sweep starts (the writes "during" the run). */
function pausingPool(after: () => void | Promise<void>): { pool: Pick<CommitPool, "gcMark">; marks: () => number } {
  let n = 0;
  return {
    pool: {
      gcMark: async (file: string): Promise<GcMark> => {
        const m = await CommitPool.shared().gcMark(file);
        if (n++ === 0) await after();
        return m;
      },
    },
    marks: () => n,
  };
}

describe("gcAsync", () => {
  it("removes what gc removes: the same report, the same objects left, fsck clean", async () => {
    const t = tempDir("agentfs-gca-");
    try {
      const a = join(t.dir, "a");
      garbageStore(a);
      const b = join(t.dir, "b");
      cpSync(a, b, { recursive: true });
      const sa = Store.open(a);
      const sb = Store.open(b);
      try {
        const ra = gc(sa);
        const rb = await gcAsync(sb);
        expect(rb).toEqual(ra);
        expect(ra.objectsRemoved).toBeGreaterThan(30);
        expect(hashes(sb)).toBe(hashes(sa));
        expect(fsck(sb).ok).toBe(true);
        // A second run finds nothing more.
        expect(await gcAsync(sb)).toMatchObject({ layersRemoved: 0, objectsRemoved: 0, bytesFreed: 0 });
      } finally {
        sa.close();
        sb.close();
      }
    } finally {
      t.cleanup();
    }
  });

  it("a write after the mark that stores bytes equal to a garbage object keeps it; unlinked-but-open files keep theirs", () =>
    withStore(async ({ store, core }) => {
      const gone = prng(40 * KiB, 7);
      const open = prng(50 * KiB, 8);
      writeFile(core, "/gone", gone);
      writeFile(core, "/open", open);
      core.unlink("/gone"); // its object is garbage now
      const fd = core.openFile("/open", C.O_RDONLY);
      core.unlink("/open"); // garbage in the rows, but still read through fd
      const { pool, marks } = pausingPool(() => writeFile(core, "/again", gone));
      const rep = await gcAsync(store, { pool, keep: () => core.heldChunks() });
      expect(marks()).toBe(1);
      expect(rep.objectsRemoved).toBe(0);
      expect(readFile(core, "/again").equals(gone)).toBe(true);
      const b = Buffer.alloc(open.length);
      core.read(fd, b, 0, b.length, 0);
      expect(b.equals(open)).toBe(true);
      core.close(fd);
      expect(fsck(store).ok).toBe(true);
      // Closed for good: now the unlinked file's object goes.
      expect((await gcAsync(store, { keep: () => core.heldChunks() })).objectsRemoved).toBe(1);
      expect(fsck(store).ok).toBe(true);
    }));

  it("another process writing during the run: the mark is redone and its data kept", () =>
    withStore(async ({ dir, store, core }) => {
      const other = openAt(dir);
      try {
        const gone = prng(40 * KiB, 9);
        writeFile(core, "/gone", gone);
        writeFile(core, "/junk", prng(30 * KiB, 10));
        core.unlink("/gone");
        core.unlink("/junk");
        // The other connection's lookup of the garbage object cannot be watched from here.
        const { pool, marks } = pausingPool(() => writeFile(other.core, "/theirs", gone));
        const rep = await gcAsync(store, { pool });
        expect(marks()).toBe(2);
        expect(rep.objectsRemoved).toBe(1); // /junk's only
        expect(readFile(core, "/theirs").equals(gone)).toBe(true);
        expect(fsck(store).ok).toBe(true);
      } finally {
        other.store.close();
      }
    }));

  it("one run per store at a time (EBUSY); an in-memory store is collected by gc", async () => {
    await withStore(async ({ store, core }) => {
      writeFile(core, "/x", prng(20 * KiB, 11));
      core.unlink("/x");
      const first = gcAsync(store);
      const e = await errOf(gcAsync(store));
      expect(e.code).toBe("EBUSY");
      expect((await first).objectsRemoved).toBe(1);
    });
    const mem = Store.open("ram", { inMemory: true });
    try {
      const c = new FsCore(mem, { branch: "main" });
      writeFile(c, "/y", prng(20 * KiB, 12));
      c.unlink("/y");
      expect((await gcAsync(mem)).objectsRemoved).toBe(1);
    } finally {
      mem.close();
    }
  });
});

describe("gcAsync: failures and fallbacks", () => {
  it("another process writing during every mark: EAGAIN after three marks, and nothing it still uses is gone", () =>
    withStore(async ({ dir, store, core }) => {
      const other = openAt(dir);
      try {
        writeFile(core, "/junk", prng(30 * KiB, 31));
        core.unlink("/junk");
        let n = 0;
        const pool = {
          gcMark: async (file: string) => {
            const m = await CommitPool.shared().gcMark(file);
            writeFile(other.core, `/theirs${n++}`, prng(10 * KiB, 40 + n));
            return m;
          },
        };
        const e = await errOf(gcAsync(store, { pool }));
        expect(e.code).toBe("EAGAIN");
        expect(n).toBe(3);
        for (let i = 0; i < 3; i++) expect(readFile(core, `/theirs${i}`).equals(prng(10 * KiB, 41 + i))).toBe(true);
        expect(fsck(store).ok).toBe(true);
      } finally {
        other.store.close();
      }
    }));

  it("the store closed during the run: EIO naming it; a mark that cannot open the database: EIO", async () => {
    const t = tempDir("agentfs-gca-");
    try {
      const { store, core } = openAt(join(t.dir, "s"), true);
      writeFile(core, "/x", prng(20 * KiB, 32));
      core.unlink("/x");
      const { pool } = pausingPool(() => store.close());
      const e = await errOf(gcAsync(store, { pool }));
      expect(e.code).toBe("EIO");
      expect(e.message).toMatch(/store was closed/);
    } finally {
      t.cleanup();
    }
    const e = await errOf(CommitPool.shared().gcMark("/nonexistent/agentfs/manifest.db"));
    expect(e.code).toBe("EIO");
    expect(e.message).toMatch(/gc mark of \/nonexistent\/agentfs\/manifest\.db failed/);
  });

  it("a store with an object backend is collected by gc (its bodies are freed only after their rows' deletion commits)", async () => {
    const bodies = new Map<string, Buffer>();
    const backend = {
      kind: "map",
      put: (h: Buffer, b: Uint8Array) => void bodies.set(h.toString("hex"), Buffer.from(b)),
      get: (h: Buffer) => bodies.get(h.toString("hex")),
      delete: (h: Buffer) => void bodies.delete(h.toString("hex")),
      keys: () => [...bodies.keys()].map((k) => Buffer.from(k, "hex")),
    };
    const t = tempDir("agentfs-gca-");
    const store = Store.open(join(t.dir, "s"), { create: true, objectBackend: backend });
    try {
      const core = new FsCore(store, { branch: "main" });
      writeFile(core, "/x", prng(20 * KiB, 33));
      writeFile(core, "/y", prng(20 * KiB, 34));
      core.unlink("/x");
      const pool = { gcMark: () => Promise.reject(new Error("a backend store must not reach the worker")) };
      expect((await gcAsync(store, { pool })).objectsRemoved).toBe(1);
      expect(bodies.size).toBe(1);
      expect(readFile(core, "/y").equals(prng(20 * KiB, 34))).toBe(true);
    } finally {
      store.close();
      t.cleanup();
    }
  });
});

describe("gcAsync's layer half in slices", () => {
  /** Every path under `/` with its mode, size and contents (a file's bytes as hex of their SHA-256). */
  function tree(core: FsCore): string {
    const out: string[] = [];
    const walk = (dir: string) => {
      for (const e of core.readdir(dir)) {
        const p = dir === "/" ? `/${e.name}` : `${dir}/${e.name}`;
        const st = core.stat(p, false);
        const isDir = (st.mode & 0o170000) === 0o040000;
        out.push(`${p} ${st.mode.toString(8)} ${isDir ? "" : sha256(readFile(core, p)).toString("hex")}`);
        if (isDir) walk(p);
      }
    };
    walk("/");
    return out.join("\n");
  }

  it("merging a deleted snapshot's layer takes many slices; between them the tree reads the same, writes go on, and the result equals gc's", async () => {
    const t = tempDir("agentfs-gca-");
    try {
      const a = join(t.dir, "a");
      {
        const { store, core } = openAt(a, true);
        for (let d = 0; d < 6; d++) {
          core.mkdir(`/d${d}`, 0o755);
          for (let i = 0; i < 120; i++) writeFile(core, `/d${d}/f${i}`, Buffer.from(`${d}/${i} `.repeat(20)));
        }
        store.createSnapshot("s1", { branch: "main" });
        for (let i = 0; i < 120; i += 3) writeFile(core, `/d1/f${i}`, Buffer.from(`changed ${i}`)); // shadowing versions in the head
        core.unlink("/d2/f7");
        store.deleteSnapshot("s1"); // its layer now has one child and no name: gc merges it
        store.close();
      }
      const b = join(t.dir, "b");
      cpSync(a, b, { recursive: true });
      const sa = Store.open(a);
      const { store: sb, core } = openAt(b);
      try {
        const ra = gc(sa);
        expect(ra.layersRemoved).toBe(1);
        let before = tree(core);
        // Between slices: the tree must read as before (checked on every turn), and a write must work.
        let turns = 0;
        let stop = false;
        const mismatches: number[] = [];
        const layerCount = sb.manifest.db.prepare(`SELECT count(*) FROM layers`).pluck();
        const layersSeen: number[] = [];
        const watch = () => {
          if (stop) return;
          turns++;
          layersSeen.push(layerCount.get() as number);
          if (tree(core) !== before) mismatches.push(turns);
          if (turns === 3) {
            // A write between slices: a file of the merged layer changes in the head, and a new one appears.
            writeFile(core, "/d0/f5", Buffer.from("rewritten during the merge"));
            writeFile(core, "/d4/during", Buffer.from("made during the merge"));
            before = tree(core);
          }
          setImmediate(watch);
        };
        setImmediate(watch);
        const rb = await gcAsync(sb);
        stop = true;
        // The merge itself yielded many times: turns on which the merged layer was still there.
        const after = layerCount.get() as number;
        expect(layersSeen.filter((n) => n > after).length).toBeGreaterThan(5);
        expect(mismatches).toEqual([]);
        // The same, plus the version of /d0/f5 the write during the merge replaced.
        expect(rb).toMatchObject({ layersRemoved: ra.layersRemoved, objectsRemoved: ra.objectsRemoved + 1 });
        // The layer structure equals the one-transaction result, and so does every visible byte once the
        // same two writes are made there.
        const layers = (s: Store) => JSON.stringify(s.manifest.db.prepare(`SELECT count(*) AS n FROM layers`).get());
        expect(layers(sb)).toBe(layers(sa));
        const ca = new FsCore(sa, { branch: "main" });
        writeFile(ca, "/d0/f5", Buffer.from("rewritten during the merge"));
        writeFile(ca, "/d4/during", Buffer.from("made during the merge"));
        expect(tree(core)).toBe(tree(ca));
        writeFile(core, "/d3/after", Buffer.from("written after the merge"));
        expect(readFile(core, "/d3/after").toString()).toBe("written after the merge");
        expect(fsck(sb).ok).toBe(true);
      } finally {
        sa.close();
        sb.close();
      }
    } finally {
      t.cleanup();
    }
  });
});

describe("ObjectStore.trackUses", () => {
  it("records objects found by has or put and objects stored, until untracked", () =>
    withStore(({ store }) => {
      const cas = store.cas;
      const a = prng(5000, 21);
      const b = prng(5000, 22);
      const c = prng(5000, 23);
      const [ha, hb, hc] = [a, b, c].map((d) => sha256(d));
      store.manifest.write(() => cas.put(ha, a)); // before tracking: not recorded
      const uses = cas.trackUses();
      expect(cas.has(hb)).toBe(false); // absent: not recorded
      expect(cas.has(ha)).toBe(true);
      store.manifest.write(() => cas.put(hb, b)); // stored
      const e = encodeChunk(c, 1);
      store.manifest.write(() => cas.putEncoded(hc, c.length, e.codec, e.body, e.crc));
      expect([...uses].sort()).toEqual([ha, hb, hc].map((h) => h.toString("hex")).sort());
      cas.untrackUses(uses);
      uses.clear();
      expect(cas.has(ha)).toBe(true);
      expect(uses.size).toBe(0);
    }));
});

describe("an asynchronous commit holds the chunks it found present", () => {
  it.each(["gc", "gcAsync"])("%s started between the worker's lookup and the inode write spares them", (which) =>
    withStore(async ({ store, core }) => {
      const v = prng(6 << 20, 13); // several 64 KiB-average chunks, committed through the worker
      writeFile(core, "/old", v);
      core.unlink("/old"); // all of its chunks are garbage
      // The first time the commit below finds a chunk present, gc runs on the next turn: before the
      // worker's answer with the remaining chunks arrives, so before the extents are written.
      const has = store.cas.has.bind(store.cas);
      let ran = false;
      let collected: Promise<unknown> = Promise.resolve();
      // gcAsync: its mark sees the state before the inode write; its sweep waits for the commit to end.
      let closed: Promise<void> = Promise.resolve();
      const { pool } = pausingPool(() => closed);
      store.cas.has = (h: Uint8Array) => {
        const found = has(h);
        if (found && !ran) {
          ran = true;
          setImmediate(() => {
            if (which === "gc") gc(store, core.heldChunks());
            else collected = gcAsync(store, { keep: () => core.heldChunks(), pool });
          });
        }
        return found;
      };
      // Half found present (the garbage of /old), half stored by this commit.
      const w = Buffer.concat([v.subarray(0, 3 << 20), prng(3 << 20, 14)]);
      const fd = core.openFile("/new", C.O_CREAT | C.O_WRONLY, 0o644);
      core.write(fd, w, 0, w.length, 0);
      closed = core.closeAsync(fd);
      await closed;
      await collected;
      expect(ran).toBe(true);
      expect(readFile(core, "/new").equals(w)).toBe(true);
      expect(fsck(store).ok).toBe(true);
    }));
});
