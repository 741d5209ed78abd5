import { existsSync } from "node:fs";
import { join } from "node:path";
import { tmpdir } from "node:os";
import { describe, expect, it } from "vitest";
import { AgentFS, type ObjectBackend } from "../src/index.js";
import { prng } from "./helpers.js";

/** A heap ObjectBackend (a Map), for testing core's side of the contract. */
class MapBackend implements ObjectBackend {
  readonly kind = "map";
  readonly map = new Map<string, Buffer>();
  puts = 0;
  put(hash: Buffer, body: Uint8Array): void {
    this.puts++;
    this.map.set(hash.toString("hex"), Buffer.from(body));
  }
  get(hash: Buffer): Buffer | undefined {
    const b = this.map.get(hash.toString("hex"));
    return b && Buffer.from(b);
  }
  delete(hash: Buffer): void {
    this.map.delete(hash.toString("hex"));
  }
  *keys(): Iterable<Buffer> {
    for (const k of this.map.keys()) yield Buffer.from(k, "hex");
  }
}

describe("RAM store: in-memory manifest + ObjectBackend", () => {
  it("keeps object bodies only in the backend, creates nothing on disk, and gc/fsck go through the backend", async () => {
    const label = join(tmpdir(), `agentfs-ram-label-${process.pid}-${Date.now()}`);
    const be = new MapBackend();
    const afs = await AgentFS.open(label, { create: true, inMemory: true, objectBackend: be });
    try {
      const data = prng(2 * 1024 * 1024, 3);
      await afs.fs.writeFile("/a.bin", data);
      await afs.fs.writeFile("/t.txt", "text ".repeat(10000));
      expect(existsSync(label)).toBe(false);
      expect(be.map.size).toBeGreaterThan(4);
      const rows = afs.store.manifest.db.prepare(`SELECT length(data) AS n FROM objects`).pluck().all() as number[];
      expect(rows.length).toBe(be.map.size);
      expect(rows.every((n) => n === 0)).toBe(true); // no bytes in SQLite
      afs.store.cas.clearCache();
      expect(((await afs.fs.readFile("/a.bin")) as Buffer).equals(data)).toBe(true);
      expect((await afs.fsck()).ok).toBe(true);
      // gc frees the bodies of unreachable objects
      await afs.fs.unlink("/a.bin");
      const g = await afs.gc();
      expect(g.objectsRemoved).toBeGreaterThan(4);
      expect(be.map.size).toBe(g.objectsKept);
      // A body that vanished from the backend: EIO on read, fsck reports it
      const [k] = [...be.map.keys()];
      be.map.delete(k!);
      afs.store.cas.clearCache();
      await expect(afs.fs.readFile("/t.txt")).rejects.toMatchObject({ code: "EIO" });
      const f = await afs.fsck();
      expect(f.ok).toBe(false);
      expect(f.problems.some((p) => /missing from the map object backend/.test(p.message))).toBe(true);
      expect((await afs.stats()).store.databaseBytes).toBe(0);
    } finally {
      await afs.close();
    }
    expect(existsSync(label)).toBe(false);
  });

  it("a body put by a rolled-back transaction is freed by the next gc", async () => {
    const be = new MapBackend();
    const afs = await AgentFS.open("ram-rollback", { create: true, inMemory: true, objectBackend: be });
    try {
      await afs.fs.writeFile("/keep", "kept bytes");
      const m = afs.store.manifest;
      const before = be.map.size;
      try {
        m.write(() => {
          afs.store.cas.put(Buffer.alloc(32, 7), Buffer.from("orphan body"));
          throw new Error("roll back");
        });
      } catch {
        /* expected */
      }
      expect(be.map.size).toBe(before + 1);
      await afs.gc();
      expect(be.map.size).toBe(before);
      expect(await afs.fs.readFile("/keep", "utf8")).toBe("kept bytes");
    } finally {
      await afs.close();
    }
  });
});
