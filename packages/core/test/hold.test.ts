/**
 * Held transactions (`Manifest.holdTransactions`, used by the FUSE daemon):
 * consecutive operations share one SQLite transaction, committed by a timer,
 * by the next operation after the hold, by any write that must be durable
 * at return (close, flush, fsync) and by `settle`/`syncAsync`. Checked with
 * a second connection to the same real database file (what another process
 * sees) and with a child process that writes while the holder holds.
 */
import { afterEach, beforeAll, describe, expect, it } from "vitest";
import { spawn, spawnSync } from "node:child_process";
import { constants as C, existsSync, mkdirSync, rmSync, statfsSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { FsCore, Store, fsck } from "../src/index.js";
import { CORE_DIR, ensureDist, tempDir } from "./helpers.js";

beforeAll(() => {
  ensureDist(); // the child process below runs the built package
}, 120_000);

const sleep = (ms: number) => new Promise<void>((r) => setTimeout(r, ms));

let cleanups: (() => void)[] = [];
afterEach(() => {
  for (const c of cleanups.reverse()) c();
  cleanups = [];
});

/** A store with a holding connection `a` and a plain second connection `b` (`seen(path)`: whether `b` sees it). */
function setup(holdMs: number) {
  const t = tempDir("agentfs-hold-");
  const dir = join(t.dir, "store");
  const sa = Store.open(dir, { create: true });
  const sb = Store.open(dir);
  cleanups.push(() => {
    for (const s of [sa, sb]) {
      try {
        s.close();
      } catch {
        /* closed */
      }
    }
    t.cleanup();
  });
  sa.manifest.holdTransactions(holdMs);
  const a = new FsCore(sa, { branch: "main" }, { umask: 0o022 });
  const b = new FsCore(sb, { branch: "main" }, { umask: 0o022 });
  const seen = (path: string) => {
    try {
      b.stat(path);
      return true;
    } catch (e) {
      if ((e as { code?: string }).code === "ENOENT") return false;
      throw e;
    }
  };
  return { dir, sa, a, b, seen };
}

describe("held transactions", () => {
  it("a held change is committed by the timer, without another operation", async () => {
    // 200 ms: long enough that a loaded machine does not fire the timer before the first check (5 ms did, in a full run).
    const { a, seen } = setup(200);
    a.mkdir("/d");
    expect(a.stat("/d").mode & C.S_IFMT).toBe(C.S_IFDIR); // the holder sees its own change at once
    expect(seen("/d")).toBe(false); // held: not committed yet
    await sleep(600);
    expect(seen("/d")).toBe(true);
  });

  it("close commits at once, together with the held create of the file", () => {
    const { a, b, seen } = setup(1000);
    a.mkdir("/dir");
    const fd = a.openFile("/dir/f", C.O_CREAT | C.O_WRONLY, 0o644);
    a.write(fd, Buffer.from("hello"), 0, 5, 0);
    expect(seen("/dir/f")).toBe(false);
    a.close(fd);
    expect(seen("/dir")).toBe(true);
    expect(b.stat("/dir/f").size).toBe(5);
  });

  it("fsync and flush commit at once as well", () => {
    const { a, b } = setup(1000);
    const fd = a.openFile("/f", C.O_CREAT | C.O_RDWR, 0o644);
    a.write(fd, Buffer.from("one"), 0, 3, 0);
    a.flush(fd);
    expect(b.stat("/f").size).toBe(3);
    a.write(fd, Buffer.from("three"), 0, 5, 0);
    a.fsync(fd);
    expect(b.stat("/f").size).toBe(5);
    a.close(fd);
  });

  it("a failing operation undoes only itself: the held changes before and after it are committed", () => {
    const { sa, a, seen } = setup(1000);
    a.mkdir("/a");
    expect(() => a.mkdir("/a")).toThrow(expect.objectContaining({ code: "EEXIST" }));
    expect(() => a.rename("/missing", "/x")).toThrow(expect.objectContaining({ code: "ENOENT" }));
    a.mkdir("/a/sub");
    expect(() => a.rmdir("/a")).toThrow(expect.objectContaining({ code: "ENOTEMPTY" }));
    a.mkdir("/b");
    expect(seen("/a")).toBe(false);
    sa.manifest.settle();
    expect([seen("/a"), seen("/a/sub"), seen("/b"), seen("/x")]).toEqual([true, true, true, false]);
  });

  it("syncAsync (fsync of a directory) commits what is held", async () => {
    const { a, seen } = setup(1000);
    a.mkdir("/d");
    a.rename("/d", "/e");
    await a.syncAsync();
    expect([seen("/d"), seen("/e")]).toEqual([false, true]);
  });

  it("turning holding off commits what is held", () => {
    const { sa, a, seen } = setup(1000);
    a.mkdir("/d");
    sa.manifest.holdTransactions(0);
    expect(seen("/d")).toBe(true);
    a.mkdir("/e"); // not held any more
    expect(seen("/e")).toBe(true);
  });

  it("the holder sees another connection's change once its held read transaction ended", async () => {
    const { a, b } = setup(5);
    a.stat("/"); // opens a held read transaction
    b.mkdir("/z");
    await sleep(60);
    expect(a.stat("/z").mode & C.S_IFMT).toBe(C.S_IFDIR);
  });

  it("another process writing while the holder holds a write transaction waits for it, then commits", async () => {
    const { dir, a, b } = setup(20);
    a.mkdir("/mine");
    const script = `
      const { Store, FsCore } = await import(${JSON.stringify(join(CORE_DIR, "dist/index.js"))});
      const s = Store.open(${JSON.stringify(dir)});
      new FsCore(s, { branch: "main" }).mkdir("/theirs");
      s.close();`;
    const child = spawn(process.execPath, ["--input-type=module", "-e", script], { stdio: ["ignore", "ignore", "pipe"] });
    let err = "";
    child.stderr.on("data", (d) => (err += d));
    const code = await new Promise<number | null>((r) => child.on("exit", r));
    expect(err).toBe("");
    expect(code).toBe(0);
    expect(b.stat("/mine").ino).toBeGreaterThan(0);
    expect(b.stat("/theirs").ino).toBeGreaterThan(0);
    await sleep(40);
    expect(a.stat("/theirs").ino).toBe(b.stat("/theirs").ino);
  });

  // A held commit can fail where a per-request one would have failed the request itself: on a full
  // filesystem the COMMIT (which appends the WAL) is what hits ENOSPC. Then the held changes are
  // rolled back, the error reaches the next close/fsync/settle, and nothing committed before is lost.
  it.skipIf(process.getuid?.() !== 0)("a held commit that fails (ENOSPC on a full tmpfs) is reported by the next settle or close, never to a bystander; the store stays consistent", async () => {
    const t = tempDir("agentfs-hold-full-");
    cleanups.push(() => {
      spawnSync("umount", ["-l", t.dir]);
      t.cleanup();
    });
    expect(spawnSync("mount", ["-t", "tmpfs", "-o", "size=4m", "tmpfs", t.dir]).status).toBe(0);
    const dir = join(t.dir, "store");
    const store = Store.open(dir, { create: true });
    cleanups.push(() => store.close());
    const a = new FsCore(store, { branch: "main" }, { umask: 0o022 });
    const fd = a.openFile("/kept", C.O_CREAT | C.O_WRONLY, 0o644);
    a.write(fd, Buffer.from("committed before"), 0, 16, 0);
    a.close(fd);
    // Fill the filesystem but for a little room, then hold enough changes that their commit cannot fit.
    const filler = join(t.dir, "filler");
    let size = 4 << 20;
    for (;;) {
      try {
        writeFileSync(filler, Buffer.alloc(size));
        break;
      } catch {
        size -= 64 << 10;
      }
    }
    rmSync(filler);
    writeFileSync(filler, Buffer.alloc(Math.max(0, size - (48 << 10))));
    store.manifest.holdTransactions(60_000);
    const name = (i: number) => `/d${i}-${"x".repeat(200)}`;
    for (let i = 0; i < 2000; i++) a.mkdir(name(i)); // all held: no page reaches the WAL before the commit
    // The commit fails with ENOSPC, once, and rolls the held changes back; cacheEpoch tells front ends
    // that what they answered (and clients cached) is gone.
    const epoch = store.manifest.cacheEpoch;
    let hooks = 0;
    store.manifest.onHeldRollback(() => hooks++);
    expect(() => store.manifest.settle()).toThrow(expect.objectContaining({ code: "ENOSPC" }));
    expect([store.manifest.cacheEpoch, hooks]).toEqual([epoch + 1, 1]);
    expect(() => store.manifest.settle()).not.toThrow();
    expect(() => a.stat(name(0))).toThrow(expect.objectContaining({ code: "ENOENT" }));
    // When the operation after the hold's end makes the commit that fails (here a stat), that operation
    // still succeeds: the loss is reported to the next settle or durable write, not to a bystander.
    for (let i = 0; i < 2000; i++) a.mkdir(name(i));
    store.manifest.holdTransactions(1);
    await sleep(5);
    expect(a.stat("/kept").size).toBe(16);
    expect(() => a.stat(name(0))).toThrow(expect.objectContaining({ code: "ENOENT" }));
    expect(() => store.manifest.settle()).toThrow(expect.objectContaining({ code: "ENOSPC" }));
    // The same when the timer commits. The next close then does its own work first (there is room
    // again): its data is committed, and the lost changes are reported after it.
    store.manifest.holdTransactions(300);
    const wfd = a.openFile("/kept", C.O_WRONLY);
    for (let i = 0; i < 2000; i++) a.mkdir(name(i));
    await sleep(600);
    expect(() => a.stat(name(0))).toThrow(expect.objectContaining({ code: "ENOENT" }));
    rmSync(filler);
    a.write(wfd, Buffer.from("C"), 0, 1, 0);
    expect(() => a.close(wfd)).toThrow(expect.objectContaining({ code: "ENOSPC" }));
    expect(() => store.manifest.settle()).not.toThrow(); // reported once
    store.manifest.holdTransactions(0);
    // What was committed before is intact, the store is consistent, and new changes work.
    const rfd = a.openFile("/kept", C.O_RDONLY);
    const buf = Buffer.alloc(32);
    expect(buf.subarray(0, a.read(rfd, buf, 0, 32, 0)).toString()).toBe("Committed before");
    a.close(rfd);
    expect(fsck(store).problems).toEqual([]);
    a.mkdir("/after");
    expect(a.stat("/after").mode & C.S_IFMT).toBe(C.S_IFDIR);
  });
});

describe("syncFiles on tmpfs", () => {
  const TMPFS = 0x01021994;
  const typeOf = (dir: string) => statfsSync(dir).type;
  const onTmpfs = existsSync("/dev/shm") && typeOf("/dev/shm") === TMPFS;
  const notTmpfs = [tmpdir(), process.cwd()].find((d) => typeOf(d) !== TMPFS && typeOf(d) !== 0x858458f6);

  it.skipIf(!onTmpfs)("a store on tmpfs skips the fsyncs (they do nothing there) and still commits what is held", async () => {
    const t = tempDir("agentfs-shm-", "/dev/shm");
    cleanups.push(t.cleanup);
    const s = Store.open(join(t.dir, "s"), { create: true });
    cleanups.push(() => s.close());
    expect(s.manifest.fsyncIsNoop()).toBe(true);
    s.manifest.holdTransactions(60_000);
    const core = new FsCore(s, { branch: "main" }, { umask: 0o022 });
    core.mkdir("/held");
    await core.syncAsync();
    const other = Store.open(join(t.dir, "s"));
    cleanups.push(() => other.close());
    expect(new FsCore(other, { branch: "main" }, { umask: 0o022 }).stat("/held").mode & 0o170000).toBe(0o040000);
  });

  it.skipIf(notTmpfs === undefined)("a store on a disk filesystem fsyncs", () => {
    const t = tempDir("agentfs-disk-", notTmpfs);
    cleanups.push(t.cleanup);
    const s = Store.open(join(t.dir, "s"), { create: true });
    cleanups.push(() => s.close());
    expect(s.manifest.fsyncIsNoop()).toBe(false);
  });
});
