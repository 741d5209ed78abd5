/**
 * Page-cache priming at close (cacheprime.ts) on a real mount: a small file
 * written through its only handle is read back with no READ request and the
 * right bytes; files with another handle open, or over PRIME_MAX_BYTES, are
 * left to READ; and a file rewritten, truncated, punched and read by
 * several processes at once never shows an older version to the process
 * that wrote it.
 */
import { View } from "@agentfs/view";
import { execFile } from "node:child_process";
import { existsSync, mkdirSync } from "node:fs";
import { join } from "node:path";
import { promisify } from "node:util";
import { describe, expect, it } from "vitest";
import { FuseMount, PRIME_MAX_BYTES } from "../src/index.js";
import { canMount, fuseMountsUnder, storeFixture } from "./helpers.js";

const pexec = promisify(execFile);
const ENABLED = canMount();

/** Runs python3 `code` with argv[1] = `dir` (asynchronously: this process serves the mount). */
async function py(code: string, dir: string): Promise<string> {
  return (await pexec("python3", ["-c", code, dir], { maxBuffer: 16 << 20 })).stdout;
}

describe.skipIf(!existsSync("/dev/fuse") || !ENABLED)("page-cache priming at close", () => {
  const fx = storeFixture("agentfs-fuse-prime-");

  async function mounted<T>(name: string, fn: (mnt: string, m: FuseMount) => Promise<T>): Promise<T> {
    const mnt = join(fx.root, name);
    mkdirSync(mnt);
    const m = await FuseMount.mount(View.open(fx.store), mnt, {});
    try {
      return await fn(mnt, m);
    } finally {
      await m.unmount();
    }
  }

  it("small files read back right after close need no READ request; large ones and ones open elsewhere are read as before", async () => {
    await mounted("a", async (mnt, m) => {
      const reads = () => m.stats.ops.read?.count ?? 0;
      await py(
        `import sys
d = sys.argv[1]
for i in range(50):
    open(f"{d}/s{i}", "wb").write((b"small %d " % i) * 100)
open(f"{d}/big", "wb").write(b"B" * ${PRIME_MAX_BYTES + 1})`,
        mnt,
      );
      // The stores go on after each FLUSH is answered: the last one may still be on its way.
      for (let i = 0; i < 100 && m.stats.cachePrime.stored < 50; i++) await new Promise((r) => setTimeout(r, 10));
      expect(m.stats.cachePrime.stored).toBe(50);
      const before = reads();
      const out = await py(
        `import sys
d = sys.argv[1]
print(all(open(f"{d}/s{i}", "rb").read() == (b"small %d " % i) * 100 for i in range(50)))`,
        mnt,
      );
      expect(out.trim()).toBe("True");
      expect(reads()).toBe(before);
      await py(`import sys; assert open(sys.argv[1] + "/big", "rb").read() == b"B" * ${PRIME_MAX_BYTES + 1}`, mnt);
      expect(reads()).toBeGreaterThan(before);

      // A reader holds the file open while another handle writes and closes it: no store (two handles).
      const stored = m.stats.cachePrime.stored;
      const out2 = await py(
        `import sys, os
d = sys.argv[1]
open(f"{d}/shared", "wb").write(b"one")
r = os.open(f"{d}/shared", os.O_RDONLY)
with open(f"{d}/shared", "r+b") as w: w.write(b"two")
print(os.pread(r, 10, 0).decode(), open(f"{d}/shared", "rb").read().decode())`,
        mnt,
      );
      expect(out2.trim()).toBe("two two");
      expect(m.stats.cachePrime.stored).toBe(stored + 1); // the first close only
    });
    expect(fuseMountsUnder(fx.root)).toEqual([]);
  });

  it("a writer that rewrites a file while other processes open, read, truncate, punch and overwrite it never reads an older version back", async () => {
    await mounted("b", async (mnt, m) => {
      const writer = py(
        `import sys, os, re
d = sys.argv[1]
bad = 0
for i in range(300):
    data = (b"version %d " % i) * (1 + i % 40)
    with open(f"{d}/f", "wb") as f: f.write(data)
    got = open(f"{d}/f", "rb").read()
    # Others may truncate, punch or overwrite the start meanwhile; bytes of an older version never show.
    if any(int(n) != i for n in re.findall(rb"version (\\d+) ", got)): bad += 1
print(bad)`,
        mnt,
      );
      const others = py(
        `import sys, os, ctypes
libc = ctypes.CDLL(None, use_errno=True)
d = sys.argv[1]
for i in range(300):
    try:
        with open(f"{d}/f", "rb") as f: f.read()
        if i % 7 == 0: os.truncate(f"{d}/f", 5)
        if i % 11 == 0:
            with open(f"{d}/f", "r+b") as f: f.write(b"other")
        if i % 13 == 0:
            with open(f"{d}/f", "r+b") as f: libc.fallocate(f.fileno(), 3, ctypes.c_long(0), ctypes.c_long(4096))
    except FileNotFoundError: pass`,
        mnt,
      );
      const [bad] = await Promise.all([writer, others]);
      expect(bad.trim()).toBe("0");
      // Quiet now: the last close's bytes are what every reader sees.
      const last = await py(`import sys; print(len(open(sys.argv[1] + "/f", "rb").read()))`, mnt);
      expect(Number(last.trim())).toBeGreaterThan(0);
      expect(m.stats.cachePrime.stored).toBeGreaterThan(0);
    });
  });
});
