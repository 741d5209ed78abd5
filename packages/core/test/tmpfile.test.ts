/**
 * O_TMPFILE and linkat(AT_EMPTY_PATH) in the SDK (`FsCore.openTmpfile`,
 * `FsCore.flink`), on a real SQLite store: a file with no name until it is
 * linked, whose bytes are then stored and survive reopening the store, and
 * that leaves nothing behind when it is closed unnamed.
 */
import { describe, expect, it } from "vitest";
import { constants as C } from "node:fs";
import { AgentFsPromises, FsCore, O_TMPFILE, Store, fsck, gc } from "../src/index.js";
import { codeOf, withStore, writeFile } from "./helpers.js";

const read = (core: FsCore, path: string) => {
  const fd = core.openFile(path, C.O_RDONLY);
  try {
    const buf = Buffer.alloc(1 << 16);
    return buf.subarray(0, core.read(fd, buf, 0, buf.length, 0)).toString();
  } finally {
    core.close(fd);
  }
};

describe("O_TMPFILE (openTmpfile) and linkat of a descriptor (flink)", () => {
  it("an unnamed file until linked; linked, its bytes are committed and survive reopening the store; fsck clean", async () => {
    await withStore(({ dir, store, core }) => {
      core.mkdir("/d", 0o755);
      const dirBefore = core.stat("/d");
      const fd = core.openTmpfile("/d", C.O_RDWR, 0o640);
      core.write(fd, Buffer.from("first|"), 0, 6, null);
      const st = core.fstat(fd);
      expect([st.nlink, st.mode & 0o7777, st.size]).toEqual([0, 0o640 & ~0o022, 6]);
      expect(core.readdir("/d")).toHaveLength(0);
      // the directory does not change until the file is named
      expect(core.stat("/d").mtimeNs).toBe(dirBefore.mtimeNs);
      const back = Buffer.alloc(6);
      expect(core.read(fd, back, 0, 6, 0)).toBe(6);
      expect(back.toString()).toBe("first|");

      core.flink(fd, "/d/named");
      expect(core.fstat(fd).nlink).toBe(1);
      expect(core.stat("/d/named").ino).toBe(st.ino);
      core.write(fd, Buffer.from("second"), 0, 6, null);
      core.close(fd);
      expect(read(core, "/d/named")).toBe("first|second");
      store.close();

      const again = Store.open(dir);
      try {
        const c2 = new FsCore(again, { branch: "main" });
        expect(read(c2, "/d/named")).toBe("first|second");
        expect(c2.stat("/d/named").nlink).toBe(1);
        expect(fsck(again).ok).toBe(true);
      } finally {
        again.close();
      }
    });
  });

  it("closed without a name it is gone: nothing listed, and what its fsync stored is garbage that gc frees", async () => {
    await withStore(({ store, core }) => {
      core.mkdir("/d", 0o755);
      const fd = core.openTmpfile("/d", C.O_WRONLY);
      const ino = core.fstat(fd).ino;
      core.write(fd, Buffer.alloc(200_000, 7), 0, 200_000, null);
      core.fsync(fd);
      core.close(fd);
      expect(core.readdir("/d")).toHaveLength(0);
      expect(codeOf(() => core.statInode(ino))).toBe("ENOENT");
      expect(fsck(store).ok).toBe(true);
      expect(gc(store).objectsRemoved).toBeGreaterThan(0);
      expect(gc(store).objectsRemoved).toBe(0);
      expect(fsck(store).ok).toBe(true);
    });
  });

  it("errors: EINVAL read-only, ENOENT, ENOTDIR, EACCES without write permission on the directory, EEXIST, EROFS on a snapshot", async () => {
    await withStore(({ store, core }) => {
      core.mkdir("/d", 0o755);
      writeFile(core, "/f", Buffer.from("x"));
      expect(codeOf(() => core.openTmpfile("/d", C.O_RDONLY))).toBe("EINVAL");
      expect(codeOf(() => core.openTmpfile("/nope", C.O_RDWR))).toBe("ENOENT");
      expect(codeOf(() => core.openTmpfile("/f", C.O_RDWR))).toBe("ENOTDIR");
      const user = new FsCore(store, { branch: "main" }, { umask: 0o022, cred: { uid: 1000, gid: 1000 } });
      expect(codeOf(() => user.openTmpfile("/d", C.O_RDWR))).toBe("EACCES");
      const fd = core.openTmpfile("/d", C.O_RDWR);
      try {
        expect(codeOf(() => core.flink(fd, "/f"))).toBe("EEXIST");
        expect(codeOf(() => core.flink(fd, "/nope/x"))).toBe("ENOENT");
        expect(core.readdir("/d")).toHaveLength(0);
      } finally {
        core.close(fd);
      }
      store.createSnapshot("s");
      const snap = new FsCore(store, { snapshot: "s" });
      expect(codeOf(() => snap.openTmpfile("/d", C.O_RDWR))).toBe("EROFS");
    });
  });

  it("the fs/promises API: open(dir, O_TMPFILE | O_RDWR) makes one; flink of its fd names it", async () => {
    await withStore(async ({ core }) => {
      const fsp = new AgentFsPromises(core);
      await fsp.mkdir("/d");
      const h = await fsp.open("/d", O_TMPFILE | C.O_RDWR, 0o600);
      await h.write(Buffer.from("via the SDK"));
      expect((await h.stat()).nlink).toBe(0);
      expect(await fsp.readdir("/d")).toEqual([]);
      core.flink(h.fd, "/d/made");
      await h.close();
      expect(await fsp.readFile("/d/made", "utf8")).toBe("via the SDK");
      await expect(fsp.open("/d", O_TMPFILE | C.O_RDONLY)).rejects.toMatchObject({ code: "EINVAL" });
    });
  });

  it("flink of a linked file adds a name; of a file unlinked while open gives it one back, with its bytes", async () => {
    await withStore(({ core }) => {
      writeFile(core, "/a", Buffer.from("kept"));
      const fd = core.openFile("/a", C.O_RDWR);
      try {
        core.flink(fd, "/b");
        expect([core.stat("/a").nlink, core.stat("/b").nlink]).toEqual([2, 2]);
        core.unlink("/a");
        core.unlink("/b");
        expect(core.fstat(fd).nlink).toBe(0);
        core.write(fd, Buffer.from("KEPT"), 0, 4, 0);
        core.flink(fd, "/c");
        expect(core.fstat(fd).nlink).toBe(1);
      } finally {
        core.close(fd);
      }
      expect(read(core, "/c")).toBe("KEPT");
      expect(core.readdir("/").map((e) => e.name)).toEqual(["c"]);
    });
  });
});
