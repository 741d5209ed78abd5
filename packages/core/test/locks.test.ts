/**
 * The POSIX locks SQLite holds on a store's manifest survive what this
 * process does with the file besides SQLite: close(2) of any descriptor of
 * a file drops every lock the process holds on it, so opening a second
 * store of the same directory (its header check) or closing it (its kept
 * fsync descriptors) must not close a descriptor of the manifest while
 * another store of the process still has it open. Read from /proc/locks,
 * on a disk (/tmp: fsync is real there, so the fsync descriptors are used).
 */
import { afterEach, describe, expect, it } from "vitest";
import { readFileSync, statSync } from "node:fs";
import { join } from "node:path";
import { MANIFEST_FILE, Store } from "../src/index.js";
import { tempDir } from "./helpers.js";

const cleanups: (() => void)[] = [];
afterEach(() => {
  for (const c of cleanups.splice(0)) c();
});

/** POSIX locks this process holds on the inode of `file` (lines of /proc/locks). */
function locksOn(file: string): number {
  const ino = statSync(file).ino;
  return readFileSync("/proc/locks", "utf8")
    .split("\n")
    .filter((l) => {
      const f = l.trim().split(/\s+/);
      return f[1] === "POSIX" && f[4] === String(process.pid) && (f[5] ?? "").endsWith(`:${ino}`);
    }).length;
}

describe.runIf(process.platform === "linux")("manifest locks", () => {
  it("a second store of the same directory, opened, synced and closed, leaves the first one's locks in place", () => {
    const t = tempDir("agentfs-locks-", "/tmp");
    cleanups.push(t.cleanup);
    const dir = join(t.dir, "store");
    Store.open(dir, { create: true }).close();
    const file = join(dir, MANIFEST_FILE);
    const a = Store.open(dir);
    try {
      a.manifest.write(() => a.manifest.setMeta("probe", 1));
      a.manifest.syncFilesSync();
      const held = locksOn(file);
      expect(held).toBeGreaterThan(0);
      const b = Store.open(dir);
      expect(locksOn(file)).toBeGreaterThanOrEqual(held);
      b.manifest.write(() => b.manifest.setMeta("probe", 2));
      b.manifest.syncFilesSync();
      b.close();
      expect(locksOn(file)).toBe(held);
    } finally {
      a.close();
    }
    expect(locksOn(file)).toBe(0);
  });
});
