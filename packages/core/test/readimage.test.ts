import { constants as C } from "node:fs";
import { afterEach, describe, expect, it } from "vitest";
import { FsError } from "../src/index.js";
import { freshStore, prng } from "./helpers.js";

/** Rebuilds a file from readImage pieces, checking ordering and that pieces never overlap. */
function image(core: any, path: string, follow = true): { bytes: Buffer; pieces: number; dataBytes: number; mode: number } {
  let buf = Buffer.alloc(0);
  let last = -1;
  let pieces = 0;
  let dataBytes = 0;
  const st = core.readImage(path, (d: Uint8Array, pos: number) => {
    expect(pos).toBeGreaterThan(last);
    last = pos + d.length - 1;
    pieces++;
    dataBytes += d.length;
    if (buf.length < pos + d.length) buf = Buffer.concat([buf, Buffer.alloc(pos + d.length - buf.length)]);
    buf.set(d, pos);
  }, { follow });
  const out = Buffer.alloc(st.size);
  buf.copy(out, 0, 0, Math.min(buf.length, st.size));
  return { bytes: out, pieces, dataBytes, mode: st.mode };
}

describe("FsCore.readImage", () => {
  let cleanup: (() => Promise<void>) | undefined;
  afterEach(async () => {
    await cleanup?.();
    cleanup = undefined;
  });

  it("streams committed bytes chunk by chunk, skipping holes, with the file's stat", async () => {
    const s = await freshStore();
    cleanup = s.cleanup;
    const data = prng(3 * 1024 * 1024 + 17, 5);
    await s.afs.fs.writeFile("/f", data, { mode: 0o750 });
    const im = image(s.afs.core, "/f");
    expect(im.bytes.equals(data)).toBe(true);
    expect(im.pieces).toBeGreaterThan(3); // chunk-sized pieces, not one big buffer
    expect(im.mode & 0o777).toBe(0o750);
    // sparse: 64 MiB hole then 5 bytes
    const fh = await s.afs.fs.open("/sparse", "w");
    await fh.write(Buffer.from("hello"), 0, 5, 64 * 1024 * 1024);
    await fh.close();
    const sp = image(s.afs.core, "/sparse");
    expect(sp.bytes.length).toBe(64 * 1024 * 1024 + 5);
    expect(sp.dataBytes).toBeLessThan(1024 * 1024);
    expect(sp.bytes.subarray(64 * 1024 * 1024).toString()).toBe("hello");
    await s.afs.fs.writeFile("/empty", "");
    expect(image(s.afs.core, "/empty").pieces).toBe(0);
  });

  it("gives this view's in-progress bytes for a file it has open for writing", async () => {
    const s = await freshStore();
    cleanup = s.cleanup;
    await s.afs.fs.writeFile("/f", "committed-bytes");
    const core = s.afs.core;
    const fd = core.openFile("/f", C.O_RDWR);
    core.write(fd, Buffer.from("XX"), 0, 2, 0);
    core.write(fd, Buffer.from("+tail"), 0, 5, 15);
    expect(image(core, "/f").bytes.toString()).toBe("XXmmitted-bytes+tail");
    core.close(fd);
    expect(image(core, "/f").bytes.toString()).toBe("XXmmitted-bytes+tail");
  });

  it("errors as open(2): ENOENT, EISDIR, ELOOP (loop, or O_NOFOLLOW on a symlink), ENOTDIR", async () => {
    const s = await freshStore();
    cleanup = s.cleanup;
    const fsx = s.afs.fs;
    await fsx.mkdir("/d");
    await fsx.writeFile("/file", "x");
    await fsx.symlink("/loop2", "/loop1");
    await fsx.symlink("/loop1", "/loop2");
    await fsx.symlink("/file", "/link");
    const code = (fn: () => unknown) => {
      try {
        fn();
      } catch (e) {
        expect(e).toBeInstanceOf(FsError);
        return (e as FsError).code;
      }
      return "none";
    };
    const core = s.afs.core;
    const nop = () => {};
    expect(code(() => core.readImage("/nope", nop))).toBe("ENOENT");
    expect(code(() => core.readImage("/d", nop))).toBe("EISDIR");
    expect(code(() => core.readImage("/loop1", nop))).toBe("ELOOP");
    expect(code(() => core.readImage("/link", nop, { follow: false }))).toBe("ELOOP");
    expect(code(() => core.readImage("/file/x", nop))).toBe("ENOTDIR");
    expect(image(core, "/link").bytes.toString()).toBe("x");
  });
});
