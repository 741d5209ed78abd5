/**
 * Kernel caches of a mount (README, "Kernel caches"): the mount options,
 * hard links as one kernel inode, attribute/entry timeouts, page cache kept
 * across opens of an unchanged file and dropped after a change made outside
 * the kernel, and security.capability answered inside the binding. In-process mounts: every child runs asynchronously, because this
 * process serves the mount.
 */
import { View } from "@agentfs/view";
import { execFile } from "node:child_process";
import { createRequire } from "node:module";
import { existsSync, mkdirSync, mkdtempSync, readFileSync, rmSync } from "node:fs";
import { join } from "node:path";
import { promisify } from "node:util";
import { describe, expect, it } from "vitest";
import { FuseMount, fuseOptionList } from "../src/index.js";
import { canMount, storeFixture } from "./helpers.js";

const pexec = promisify(execFile);

/** How often the kernel's dentry and inode caches were dropped (`drop_slab` in /proc/vmstat; other test files run drop_caches). */
function dropSlabCount(): number {
  return Number(/^drop_slab (\d+)$/m.exec(readFileSync("/proc/vmstat", "utf8"))?.[1] ?? -1);
}

/**
 * Runs `bash -c script` inside directory `dir` of the mount without blocking
 * this (serving) process; returns stdout. The child starts outside the
 * mount and cds in: libuv's spawn waits synchronously for the child's exec,
 * so a `cwd` inside the mount (chdir before exec) would deadlock.
 */
async function bash(script: string, dir: string): Promise<string> {
  return (await pexec("bash", ["-c", `cd "$1" && { ${script}
}`, "bash", dir], { cwd: "/" })).stdout;
}

/** stderr of `bash(script, dir)` that is expected to fail. */
async function bashFails(script: string, dir: string): Promise<string> {
  try {
    await pexec("bash", ["-c", `cd "$1" && { ${script}
}`, "bash", dir], { cwd: "/" });
  } catch (e) {
    return String((e as { stderr?: string }).stderr ?? "");
  }
  throw new Error(`'${script}' succeeded`);
}

describe("fuseOptionList: mount options", () => {
  it("fsname (separators replaced), subtype, default_permissions unless off, allow_other on request, ro for a read-only view, raw options last", () => {
    expect(fuseOptionList({}, false)).toEqual(["fsname=agentfs", "subtype=agentfs", "default_permissions"]);
    expect(fuseOptionList({ fsname: "agentfs:/a b,c", defaultPermissions: false, allowOther: true, options: ["noatime"] }, true)).toEqual([
      "fsname=agentfs:/a_b_c", "subtype=agentfs", "allow_other", "ro", "noatime",
    ]);
  });
});

describe.skipIf(!canMount() || !existsSync("/usr/bin/getfattr"))("FuseMount in-process: kernel caches", () => {
  const fx = storeFixture("agentfs-fuse-cache-");

  async function withMount(name: string, opts: Parameters<typeof FuseMount.mount>[2], fn: (mnt: string, m: FuseMount) => Promise<void>): Promise<void> {
    const mnt = join(fx.root, name);
    mkdirSync(mnt);
    const m = await FuseMount.mount(View.open(fx.store), mnt, opts);
    try {
      await fn(mnt, m);
    } finally {
      await m.unmount();
    }
  }

  it("hard links: one kernel inode per file, so a change through one name shows at once through the other, also to an open descriptor", async () => {
    await withMount("links", {}, async (mnt) => {
      await bash("printf one > a && stat -c %h a && ln a b && stat -c '%h %a' a b", mnt);
      expect(await bash("stat -c '%h %a %s' a b", mnt)).toBe("2 644 3\n2 644 3\n");
      const [ia, ib] = (await bash("stat -c %i a b", mnt)).trim().split("\n");
      expect(ia).toBe(ib);
      await bash("chmod 600 b && printf longer >> b", mnt);
      expect(await bash("stat -c '%h %a %s' a && cat a", mnt)).toBe("2 600 9\nonelonger");
      // a descriptor held open on one name reads what is written through the other
      expect(await bash("exec 3<a; dd bs=3 count=1 status=none <&3 >/dev/null; printf XYZ | dd of=b bs=1 seek=3 conv=notrunc status=none; cat <&3", mnt)).toBe("XYZger");
      await bash("rm b", mnt);
      expect(await bash("stat -c '%h %a %s' a", mnt)).toBe("1 600 9\n");
    });
  });

  it("attribute and entry timeouts: repeated stats are answered by the kernel's cache; with timeouts 0 each one reaches the daemon", async () => {
    const stats = async (opts: Parameters<typeof FuseMount.mount>[2]) => {
      let n = 0;
      await withMount(`t${opts?.attrTimeout ?? "d"}`, opts, async (mnt, m) => {
        await bash("echo x > f && stat f >/dev/null", mnt);
        const before = (m.stats.ops.getattr?.count ?? 0) + (m.stats.ops.lookup?.count ?? 0);
        await bash("for i in $(seq 20); do stat f >/dev/null; done", mnt);
        n = (m.stats.ops.getattr?.count ?? 0) + (m.stats.ops.lookup?.count ?? 0) - before;
      });
      return n;
    };
    expect(await stats({})).toBeLessThan(5);
    expect(await stats({ attrTimeout: 0, entryTimeout: 0, negativeTimeout: 0 })).toBeGreaterThanOrEqual(20);
  });

  // The kernel may cache names and attributes for 30 s (DEFAULT_CACHE_TIMEOUT); a commit by another process
  // (the SDK on the same store) must still show within about outsideCheckMs, because the daemon polls for
  // such commits and then drops the kernel's caches. Without the poll the kernel keeps answering from cache.
  it("a commit by another process shows within about outsideCheckMs although the kernel caches for 30 s; without the poll it does not", async () => {
    const core = createRequire(import.meta.url).resolve("@agentfs/core");
    const outside = (base: string) => `
      const { Store, FsCore } = await import(${JSON.stringify(core)});
      const s = Store.open(${JSON.stringify(join(fx.root, "store"))});
      const c = new FsCore(s, { branch: "main" });
      const base = ${JSON.stringify(base)};
      const fd = c.openFile(base + "/f", 0o1001, 0o644); // O_WRONLY | O_TRUNC
      c.write(fd, Buffer.from("longer content"), 0, 14, 0);
      c.close(fd);
      c.unlink(base + "/d/gone");
      c.mkdir(base + "/d/new");
      s.close();`;
    for (const [name, every] of [["poll", 100], ["nopoll", 0]] as const) {
      // Both mounts serve the same branch: each works in its own directory of it.
      await withMount(name, { outsideCheckMs: every }, async (mnt, m) => {
        // stat(2) of f and a path walk through d/gone: both answered from the kernel's caches while they last
        // (coreutils stat asks for the birth time, which the kernel does not cache: python's os.stat does not).
        const look = `cd ${name} && python3 -c "import os; print(os.stat('f').st_size, os.path.exists('d/gone'))"`;
        await bash(`mkdir ${name} && cd ${name} && printf one > f && mkdir d && printf x > d/gone`, mnt);
        expect(await bash(look, mnt)).toBe("3 True\n");
        const slabDrops = dropSlabCount();
        await pexec(process.execPath, ["--input-type=module", "-e", outside("/" + name)], { cwd: "/" });
        let got = "";
        for (let i = 0; i < 20 && got !== "14 False\n"; i++) {
          await new Promise((r) => setTimeout(r, 100));
          got = await bash(look, mnt);
        }
        if (every > 0) {
          expect(got).toBe("14 False\n");
          expect(m.outsideInvalidations).toBeGreaterThanOrEqual(1);
          expect(await bash(`cd ${name} && cat f && ls d`, mnt)).toBe("longer contentnew\n");
        } else {
          // 2 s later, still what the kernel cached, unless another test file dropped the kernel's
          // dentry and inode caches meanwhile (echo 2 > drop_caches): then it looked again.
          if (dropSlabCount() === slabDrops) expect(got).toBe("3 True\n");
          expect(m.outsideInvalidations).toBe(0);
        }
      });
    }
  });

  it("a directory removed while open: fstat of its descriptor works (nlink 0) and listing it gives no entries, as on tmpfs", async () => {
    await withMount("gonedir", {}, async (mnt) => {
      const py = `import os; fd = os.open('x', os.O_RDONLY | os.O_DIRECTORY); os.rmdir('x'); print(os.fstat(fd).st_nlink, os.listdir(fd))`;
      expect(await bash(`mkdir x && python3 -c "${py}"`, mnt)).toBe("0 []\n");
    });
  });

  it("extended attributes of a file unlinked while open stay readable and writable through its descriptor (by inode, not by name), as on tmpfs", async () => {
    await withMount("xunlinked", {}, async (mnt) => {
      const out = await bash("exec 3>f; setfattr -n user.k -v val f && rm f && getfattr --only-values -n user.k /proc/$$/fd/3 && echo && getfattr -d /proc/$$/fd/3 | grep user.k", mnt);
      expect(out).toBe('val\nuser.k="val"\n');
      // fsetxattr/fremovexattr on the descriptor of an unlinked file (they were ENOENT: no name to reach it by)
      const py = [
        "import os",
        "fd = os.open('g', os.O_CREAT | os.O_RDWR, 0o644); os.setxattr(fd, 'user.a', b'1'); os.unlink('g')",
        "os.setxattr(fd, 'user.b', b'2'); os.removexattr(fd, 'user.a')",
        "print(sorted(os.listxattr(fd)), os.getxattr(fd, 'user.b'), os.fstat(fd).st_nlink)",
      ].join("\n");
      const ref = mkdtempSync("/dev/shm/agentfs-xattr-");
      const want = await bash(`python3 -c "${py}"`, ref).finally(() => rmSync(ref, { recursive: true, force: true }));
      expect(want).toBe("['user.b'] b'2' 0\n");
      expect(await bash(`python3 -c "${py}"`, mnt)).toBe(want);
    });
  });

  it("sequential reads arrive as 1 MiB requests (read-ahead raised to 1 MiB); closing a read-only descriptor sends no FLUSH", async () => {
    await withMount("ra", {}, async (mnt, m) => {
      expect(m.readAheadKb).toBe(1024);
      await bash("head -c 8388608 /dev/urandom > big && sync", mnt);
      const flushes = () => m.stats.ops.flush?.count ?? 0;
      const before = flushes();
      // drop this file's cached pages (dd iflag=nocache count=0: POSIX_FADV_DONTNEED), then read it through the page cache
      await bash("dd if=big iflag=nocache count=0 status=none && cat big > /dev/null", mnt);
      expect(m.stats.maxRead).toBe(1 << 20);
      expect(flushes()).toBe(before);
      await bash("echo more >> big", mnt);
      expect(flushes()).toBeGreaterThan(before);
    });
  });

  it("poll spin: back-to-back requests of one program are caught by polling after a reply; pollSpinUs 0 never polls", async () => {
    const run = async (opts: Parameters<typeof FuseMount.mount>[2]) => {
      let m!: FuseMount;
      await withMount(`spin${opts?.pollSpinUs ?? "d"}`, opts, async (mnt, mm) => {
        m = mm;
        // (every mount of this suite serves the same store: a directory of its own)
        const d = `spin${opts?.pollSpinUs ?? "d"}/b/c`;
        await bash(`mkdir -p ${d} && for i in $(seq 200); do echo $i > ${d}/f$i; cat ${d}/f$i > /dev/null; done`, mnt);
      });
      return m.stats;
    };
    const on = await run({});
    // (how many polls find a request depends on the CPU the client gets: only that some do)
    expect(on.spins).toBeGreaterThan(0);
    expect(on.spinHits).toBeGreaterThan(0);
    const off = await run({ pollSpinUs: 0 });
    expect(off.spins).toBe(0);
  });

  it("FUSE_HANDLE_KILLPRIV_V2: the kernel asks for security.capability about once per file, not before every write(2); not negotiated with file capabilities", async () => {
    const run = async (name: string, opts: Parameters<typeof FuseMount.mount>[2]) => {
      let m!: FuseMount;
      await withMount(name, opts, async (mnt, mm) => {
        m = mm;
        // 64 write(2)s of 4 KiB through one descriptor, then a second file the same way
        const py = "import os\nfor n in ('a', 'b'):\n  fd = os.open(n, os.O_WRONLY | os.O_CREAT, 0o644)\n  for i in range(64): os.write(fd, b'x' * 4096)\n  os.close(fd)";
        await bash(`mkdir ${name} && cd ${name} && python3 -c "${py}" && stat -c %s a b`, mnt);
      });
      return m.stats;
    };
    const v2 = await run("kp2", {});
    expect(v2.killprivV2).toBe(true);
    expect(v2.writes).toBeGreaterThanOrEqual(128);
    expect(v2.capabilityProbes).toBeGreaterThan(0);
    expect(v2.capabilityProbes).toBeLessThanOrEqual(6);
    // With file capabilities the kernel keeps asking before each write (the daemon answers it in JS then).
    const caps = await run("kp1", { fileCapabilities: true });
    expect(caps.killprivV2).toBe(false);
    expect(caps.ops.getxattr?.count ?? 0).toBeGreaterThanOrEqual(128);
  });

  it("page cache: kept across opens of an unchanged file, dropped after a change made outside the kernel", async () => {
    await withMount("pages", {}, async (mnt, m) => {
      const reads = () => m.stats.ops.read?.count ?? 0;
      await bash("head -c 1000000 /dev/urandom > f && stat -c %s f && cat f > /dev/null", mnt);
      const before = reads();
      expect((await bash("md5sum < f && md5sum < f", mnt)).split("\n")[0]).toMatch(/^[0-9a-f]{32}/);
      expect(reads()).toBe(before);
      // A change the kernel did not see (the View written directly, as another process would).
      const fd = m.view.open("/f", 1);
      m.view.write(fd, Buffer.from("CHANGED"), 0, 7, 0);
      m.view.close(fd);
      // Seen at an open once the attribute timeout (1 s) has passed.
      let head = "";
      for (let i = 0; i < 50 && head !== "CHANGED"; i++) {
        await new Promise((r) => setTimeout(r, 100));
        head = await bash("head -c 7 f", mnt);
      }
      expect(head).toBe("CHANGED");
      expect(reads()).toBeGreaterThan(before);
    });
  });

  it("page cache: what was written through the mount is read back from the kernel's pages after reopening, also after a stat and a utimens through the mount", async () => {
    await withMount("written", {}, async (mnt, m) => {
      const reads = () => m.stats.ops.read?.count ?? 0;
      // 1 MiB, a whole number of pages: every page the writes fill is complete, so none needs a READ.
      await bash("head -c 1048576 /dev/urandom > ../src.bin", mnt);
      const before = reads();
      const sums = await bash("mkdir -p written && cp ../src.bin written/w && stat -c %s written/w && md5sum < written/w && md5sum < ../src.bin", mnt);
      const [size, got, want] = sums.trim().split("\n");
      expect(size).toBe("1048576");
      expect(got).toBe(want);
      // with the pages dropped at the open (or by a GETATTR that saw the daemon's mtime), md5sum read 1 MiB from the daemon
      expect(reads()).toBe(before);
      expect(await bash("touch -d '2001-02-03 04:05:06' written/w && md5sum < written/w", mnt)).toBe(`${want}\n`);
      expect(reads()).toBe(before);
      // (a truncate to a new size drops the kernel's pages itself: only the bytes are checked)
      const cut = await bash("truncate -s 524288 written/w && md5sum < written/w && head -c 524288 ../src.bin | md5sum", mnt);
      const [a, b] = cut.trim().split("\n");
      expect(a).toBe(b);
      // a change the kernel did not make still drops the pages at the next open
      const fd = m.view.open("/written/w", 1);
      m.view.write(fd, Buffer.from("CHANGED"), 0, 7, 0);
      m.view.close(fd);
      expect(await bash("head -c 7 written/w", mnt)).toBe("CHANGED");
      expect(reads()).toBeGreaterThan(before);
    });
  });

  it("security.capability: ENODATA from the binding and not settable by default; served with fileCapabilities", async () => {
    // A valid VFS_CAP_REVISION_2 value granting nothing (the kernel checks the format before the daemon sees it).
    const cap = "0x0000000200000000000000000000000000000000";
    await withMount("nocaps", {}, async (mnt, m) => {
      const asked = () => m.stats.ops.getxattr?.count ?? 0;
      await bash("echo x > f && setfattr -n user.k -v v f", mnt);
      const before = asked();
      expect(await bashFails("getfattr -n security.capability f", mnt)).toMatch(/No such attribute/);
      await bash("printf more >> f", mnt);
      expect(asked()).toBe(before); // answered by the binding, not the daemon's handlers
      expect(await bashFails(`setfattr -n security.capability -v ${cap} f`, mnt)).toMatch(/Operation not supported/);
      expect(await bash("getfattr --only-values -n user.k f", mnt)).toBe("v");
      expect(asked()).toBeGreaterThan(before);
    });
    await withMount("caps", { fileCapabilities: true }, async (mnt, m) => {
      await bash(`echo x > g && setfattr -n security.capability -v ${cap} g`, mnt);
      expect(await bash("getfattr -e hex -n security.capability g", mnt)).toContain(`security.capability=${cap}`);
      expect(m.stats.ops.getxattr?.count ?? 0).toBeGreaterThan(0);
    });
  });
});
