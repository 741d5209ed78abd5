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

  it("closed without a name it is gone: nothing listed, nothing stored (an fsync of a file with no name commits nothing)", async () => {
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
      expect(gc(store).objectsRemoved).toBe(0);
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

  it("flink of a linked file adds a name; a file unlinked while open, an O_EXCL one or one linked once before gets ENOENT (Linux's I_LINKABLE)", async () => {
    await withStore(({ core }) => {
      writeFile(core, "/a", Buffer.from("kept"));
      const fd = core.openFile("/a", C.O_RDWR);
      try {
        core.flink(fd, "/b");
        expect([core.stat("/a").nlink, core.stat("/b").nlink]).toEqual([2, 2]);
        core.unlink("/a");
        core.unlink("/b");
        expect(core.fstat(fd).nlink).toBe(0);
        expect(codeOf(() => core.flink(fd, "/c"))).toBe("ENOENT");
      } finally {
        core.close(fd);
      }
      core.mkdir("/d", 0o755);
      const excl = core.openTmpfile("/d", C.O_RDWR | C.O_EXCL);
      expect(codeOf(() => core.flink(excl, "/d/x"))).toBe("ENOENT");
      core.close(excl);
      const t = core.openTmpfile("/d", C.O_RDWR);
      core.flink(t, "/d/once");
      core.unlink("/d/once");
      expect(codeOf(() => core.flink(t, "/d/twice"))).toBe("ENOENT");
      core.close(t);
      expect(core.readdir("/").map((e) => e.name)).toEqual(["d"]);
      expect(core.readdir("/d")).toHaveLength(0);
    });
  });

  it("an asynchronous commit that finishes after the file was unlinked leaves the open file reading its new bytes", async () => {
    await withStore(async ({ core }) => {
      const size = 24 << 20;
      writeFile(core, "/big", Buffer.alloc(size, 1));
      const fd = core.openFile("/big", C.O_RDWR);
      try {
        const data = Buffer.alloc(size, 2);
        core.write(fd, data, 0, size, 0);
        const commit = core.fsyncAsync(fd);
        // unlinked while the workers chunk it (24 MiB take well over 20 ms here)
        await new Promise((r) => setTimeout(r, 20));
        core.unlink("/big");
        await commit;
        // The buffer now counts as committed: drop it, so reads go to the rows the open file keeps.
        core.dropCleanBuffers();
        const back = Buffer.alloc(4096);
        for (const at of [0, size / 2, size - 4096]) {
          expect(core.read(fd, back, 0, 4096, at)).toBe(4096);
          expect(back.every((b) => b === 2)).toBe(true);
        }
      } finally {
        core.close(fd);
      }
    });
  });
});
