/**
 * chmod, chown and utimens by inode number (`FsCore.chmodOf`, `chownOf`,
 * `utimesOf`; the FUSE daemon's SETATTR without a handle): the same result
 * as by path, on a real SQLite store; they reach a file unlinked while
 * open; the permission checks and errno values are those of the path
 * calls.
 */
import { describe, expect, it } from "vitest";
import { constants as C } from "node:fs";
import { FsCore } from "../src/index.js";
import { codeOf, withStore, writeFile } from "./helpers.js";

describe("chmod/chown/utimens by inode", () => {
  it("match the path calls; reach a file unlinked while open; ENOENT for an inode that is gone", async () => {
    await withStore(({ core }) => {
      writeFile(core, "/a", Buffer.from("a"));
      writeFile(core, "/b", Buffer.from("b"));
      const a = core.stat("/a").ino;
      core.chmodOf(a, 0o600);
      core.chmod("/b", 0o600);
      core.chownOf(a, 123, 456);
      core.chown("/b", 123, 456);
      core.utimesOf(a, 5_000_000_000n, 7_000_000_000n);
      core.utimes("/b", 5_000_000_000n, 7_000_000_000n);
      const sa = core.stat("/a");
      const sb = core.stat("/b");
      for (const k of ["mode", "uid", "gid", "atimeNs", "mtimeNs"] as const) expect([k, sa[k]]).toEqual([k, sb[k]]);
      expect(sa.mode & 0o7777).toBe(0o600);
      expect(sa.mtimeNs).toBe(7_000_000_000n);

      const fd = core.openFile("/a", C.O_RDONLY);
      try {
        core.unlink("/a");
        core.chmodOf(a, 0o640);
        expect(core.fstat(fd).mode & 0o7777).toBe(0o640);
      } finally {
        core.close(fd);
      }
      expect(codeOf(() => core.chmodOf(a, 0o644))).toBe("ENOENT");
      expect(codeOf(() => core.utimesOf(999_999, "now", "now"))).toBe("ENOENT");
    });
  });

  it("check permissions as the path calls do: EPERM for chmod and chown by a non-owner, EPERM for explicit times", async () => {
    await withStore(({ store, core }) => {
      writeFile(core, "/root-owned", Buffer.from("x"));
      const ino = core.stat("/root-owned").ino;
      const user = new FsCore(store, { branch: "main" }, { umask: 0o022, cred: { uid: 1000, gid: 1000 } });
      expect(codeOf(() => user.chmodOf(ino, 0o777))).toBe("EPERM");
      expect(codeOf(() => user.chownOf(ino, 1000, -1))).toBe("EPERM");
      expect(codeOf(() => user.utimesOf(ino, 1n, 1n))).toBe("EPERM");
      expect(codeOf(() => user.chmod("/root-owned", 0o777))).toBe("EPERM");
      expect(core.stat("/root-owned").mode & 0o7777).toBe(0o644);
    });
  });
});
