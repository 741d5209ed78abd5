/**
 * Adversarial tests of the libfuse 3 low-level binding and the mount
 * lifecycle around it: clients killed mid-request, unmount while requests
 * are in flight, unmount from outside, unmount racing an invalidation batch,
 * many mount cycles in one process, two mounts served by one loop, failed
 * mounts, name-length and path-depth edges, and the kernel's lookup counts.
 *
 * In-process mounts: this process serves them, so every filesystem access
 * runs in an asynchronous child process. Scenarios that can hang or crash the
 * serving process run in a separate Node process (`serve`) with a timeout.
 */
import { Store, fsck } from "@agentfs/core";
import { View } from "@agentfs/view";
import { execFile, spawn } from "node:child_process";
import { mkdirSync, mkdtempSync, readdirSync, rmSync, writeFileSync } from "node:fs";
import { dirname, join } from "node:path";
import { fileURLToPath, pathToFileURL } from "node:url";
import { promisify } from "node:util";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { FuseMount } from "../src/index.js";
import { canMount, fuseMountsUnder, teardown } from "./helpers.js";
import type { Notifier } from "../src/notifier.js";

const pexec = promisify(execFile);
const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));
const PKG = join(dirname(fileURLToPath(import.meta.url)), "..");
/** Temporary directories this run created (for the last check). */
const roots: string[] = [];

/** Runs `bash -c script` inside `dir` (cd after start: a cwd inside the mount would deadlock libuv's spawn); returns stdout. */
async function bash(script: string, dir: string, timeout = 60_000): Promise<string> {
  return (await pexec("bash", ["-c", `cd "$1" && { ${script}
}`, "bash", dir], { cwd: "/", timeout, maxBuffer: 16 << 20 })).stdout;
}

/** As `bash`, but never throws: exit code, stdout and stderr. */
async function bashRun(script: string, dir: string, timeout = 60_000): Promise<{ code: number; stdout: string; stderr: string }> {
  try {
    const r = await pexec("bash", ["-c", `cd "$1" && { ${script}
}`, "bash", dir], { cwd: "/", timeout, maxBuffer: 16 << 20 });
    return { code: 0, stdout: r.stdout, stderr: r.stderr };
  } catch (e) {
    const x = e as { code?: number; stdout?: string; stderr?: string };
    return { code: typeof x.code === "number" ? x.code : -1, stdout: x.stdout ?? "", stderr: x.stderr ?? "" };
  }
}

/**
 * Runs `body` (an ES module body; `Store`, `fsck`, `View`, `FuseMount`, `bash(script, dir)`, `sleep(ms)`,
 * `fs`, `root` and `out(obj)` in scope) in a separate Node process that serves its own mounts. Resolves with
 * the objects passed to `out`, the exit code/signal and stderr; a run longer than `ms` is SIGKILLed
 * (`timedOut`). Mounts under `root` are torn down afterwards by the caller.
 */
async function serve(root: string, body: string, ms = 60_000): Promise<{ out: any[]; code: number | null; signal: string | null; stderr: string; timedOut: boolean }> {
  const url = (p: string) => JSON.stringify(pathToFileURL(join(PKG, p)).href);
  const src = `
import { Store, fsck } from "@agentfs/core";
import { View } from "@agentfs/view";
import { FuseMount } from ${url("dist/index.js")};
import { execFile } from "node:child_process";
import { promisify } from "node:util";
import * as fs from "node:fs";
const pexec = promisify(execFile);
const sleep = (ms) => new Promise((r) => setTimeout(r, ms));
const bash = async (s, dir) => (await pexec("bash", ["-c", 'cd "$1" && { ' + s + '\\n}', "bash", dir], { cwd: "/" })).stdout;
const root = ${JSON.stringify(root)};
const out = (o) => process.stdout.write(JSON.stringify(o) + "\\n");
${body}
`;
  const child = spawn(process.execPath, ["--input-type=module", "-e", src], { cwd: PKG, stdio: ["ignore", "pipe", "pipe"] });
  let stdout = "";
  let stderr = "";
  child.stdout.on("data", (d) => (stdout += d));
  child.stderr.on("data", (d) => (stderr += d));
  let timedOut = false;
  const timer = setTimeout(() => {
    timedOut = true;
    child.kill("SIGKILL");
  }, ms);
  const [code, signal] = await new Promise<[number | null, string | null]>((r) => child.on("exit", (c, s) => r([c, s])));
  clearTimeout(timer);
  await new Promise((r) => setTimeout(r, 50)); // drain stdio
  const out = stdout.split("\n").filter(Boolean).map((l) => JSON.parse(l));
  return { out, code, signal, stderr, timedOut };
}

/** Number of descriptors this process holds. */
function fdCount(): number {
  return readdirSync("/proc/self/fd").length;
}

describe.skipIf(!canMount())("FUSE binding: lifecycle and edge cases (real mounts)", () => {
  let root: string;
  let store: Store;
  let n = 0;

  beforeAll(() => {
    root = mkdtempSync("/tmp/agentfs-fuse-binding-");
    roots.push(root);
    store = Store.open(join(root, "store"), { create: true });
  });
  afterAll(async () => {
    try {
      teardown(root);
      // a mount of a hung child can be left stale: lazily unmount whatever is left
      for (const mp of fuseMountsUnder(root)) await pexec("fusermount3", ["-uz", mp]).catch(() => {});
    } finally {
      store.close();
      rmSync(root, { recursive: true, force: true });
    }
  });

  /** A fresh mountpoint under root. */
  function point(name: string): string {
    const mnt = join(root, `${name}-${n++}`);
    mkdirSync(mnt);
    return mnt;
  }

  /** Mounts a fresh store of its own (checked with fsck afterwards) on a fresh mountpoint. */
  async function withMount(name: string, fn: (mnt: string, m: FuseMount, s: Store) => Promise<void>, opts: Parameters<typeof FuseMount.mount>[2] = {}): Promise<void> {
    const mnt = point(name);
    const s = Store.open(`${mnt}.store`, { create: true });
    try {
      const m = await FuseMount.mount(View.open(s), mnt, opts);
      try {
        await fn(mnt, m, s);
      } finally {
        await m.unmount();
      }
      expect(fuseMountsUnder(mnt)).toEqual([]);
      expect(fsck(s).problems).toEqual([]);
    } finally {
      s.close();
    }
  }

  /** Internals a test checks after the dust settles (private fields, read only). */
  const internals = (m: FuseMount) => {
    const x = m as unknown as { handlers: { openHandles(): number }; session: { pending(): number } | null };
    return { handles: x.handlers.openHandles(), pending: x.session ? x.session.pending() : 0 };
  };

  it("clients SIGKILLed in the middle of reads, opens, creates and writes leak no view descriptor, handle or pending request", async () => {
    await withMount("kill", async (mnt, m) => {
      await bash("head -c 16000000 /dev/urandom > big && mkdir d", mnt);
      for (let round = 0; round < 4; round++) {
        const kids = [];
        for (let k = 0; k < 4; k++) {
          kids.push(spawn("bash", ["-c", `cd "$1"; while :; do cat big > /dev/null; touch d/x$RANDOM; cat d/* > /dev/null 2>&1; head -c 300000 big > d/y$RANDOM; ls -l d > /dev/null; rm -f d/x*; done`, "bash", mnt], {
            stdio: "ignore",
            detached: true,
            cwd: "/",
          }));
        }
        await sleep(300 + round * 150);
        for (const c of kids) process.kill(-c.pid!, "SIGKILL");
        await Promise.all(kids.map((c) => (c.exitCode !== null || c.signalCode ? null : new Promise((r) => c.on("exit", r)))));
      }
      // releases of the killed processes' files arrive asynchronously
      let st = internals(m);
      for (let i = 0; i < 50 && (st.handles || m.view.openCount() || st.pending); i++) {
        await sleep(100);
        st = internals(m);
      }
      expect({ ...st, viewOpen: m.view.openCount() }).toEqual({ handles: 0, pending: 0, viewOpen: 0 });
      expect(await bash("rm -rf d && echo ok", mnt)).toBe("ok\n");
    });
  });

  it("unmount while a large file's FLUSH (async commit) is in flight: unmount resolves, the store is consistent and holds every byte", async () => {
    const mnt = point("flush");
    const m = await FuseMount.mount(View.open(store), mnt, {});
    const MB = 64;
    let child: Promise<string> | undefined;
    const deadline = Date.now() + 60_000;
    try {
      child = pexec("python3", ["-c", `import os,sys
f = open(sys.argv[1] + "/big", "wb")
b = bytes(range(256)) * 4096
for i in range(${MB}): f.write(b)
try:
    f.close(); print("closed")
except OSError as e:
    print("close", e.errno)`, mnt], { cwd: "/" }).then((r) => r.stdout, (e) => `failed ${String(e.stderr)}`);
      // the FLUSH of close(2) arrives after the last write and waits for the commit of 64 MiB (off the loop)
      while (!(m.stats.ops.flush?.count ?? 0) && Date.now() < deadline) await sleep(1);
      expect(m.stats.writes).toBeGreaterThanOrEqual(MB);
      expect(internals(m).pending).toBeGreaterThanOrEqual(1);
    } finally {
      await m.unmount();
    }
    // close(2) of the interrupted flush is answered (EIO, documented: pending requests get EIO at unmount) or succeeds
    expect(await child).toMatch(/^(closed|close 5)\n$/);
    expect(fuseMountsUnder(mnt)).toEqual([]);
    expect(m.mounted).toBe(false);
    await m.done;
    expect(fsck(store).problems).toEqual([]);
    const v = View.open(store);
    expect(v.stat("/big").size).toBe(MB << 20);
  });

  it("umount -l while a file is open and written: serving goes on until the last descriptor closes, then done resolves with endedOutside", async () => {
    const mnt = point("lazy");
    const m = await FuseMount.mount(View.open(store), mnt, {});
    try {
      const writer = bash("exec 3>lazy.txt; for i in $(seq 150); do echo line$i >&3 || exit 9; sleep 0.01; done; exec 3>&-; echo wrote", mnt);
      await sleep(300);
      await pexec("umount", ["-l", mnt]);
      let ended = false;
      void m.done.then(() => (ended = true));
      await sleep(200);
      expect(ended).toBe(false); // the detached mount still serves the open descriptor
      expect(await writer).toBe("wrote\n");
      await Promise.race([m.done, sleep(10_000)]);
      expect(ended).toBe(true);
      expect(m.endedOutside).toBe(true);
      expect(m.mounted).toBe(false);
      const lines = Array.from({ length: 150 }, (_, i) => `line${i + 1}\n`).join("");
      expect(View.open(store).stat("/lazy.txt").size).toBe(lines.length);
    } finally {
      await m.unmount();
    }
  });

  it("fusermount3 -u: refused (EBUSY) while a file is open, the mount keeps serving; once idle it ends the mount (done, endedOutside)", async () => {
    const mnt = point("fum");
    const m = await FuseMount.mount(View.open(store), mnt, {});
    try {
      const holder = bash("exec 3>held.txt; echo a >&3; sleep 1; echo b >&3; exec 3>&-; cat held.txt", mnt);
      await sleep(300);
      const r = await bashRun(`fusermount3 -u "${mnt}"`, "/");
      expect(r.code).not.toBe(0);
      expect(r.stderr).toMatch(/busy/i);
      expect(await holder).toBe("a\nb\n");
      expect(m.mounted).toBe(true);
      await pexec("fusermount3", ["-u", mnt]);
      await Promise.race([m.done, sleep(10_000)]);
      expect(m.endedOutside).toBe(true);
      expect(m.mounted).toBe(false);
      expect(fuseMountsUnder(mnt)).toEqual([]);
    } finally {
      await m.unmount();
    }
  });

  it("invalidateTree() immediately followed by unmount(): both settle, the kernel took the notifications, nothing hangs", async () => {
    const mnt = point("inval");
    const m = await FuseMount.mount(View.open(store), mnt, {});
    let taken = -1;
    try {
      await bash("mkdir inv && cd inv && seq 1 1500 | xargs touch && ls -l > /dev/null", mnt);
      expect(m.nodeCount).toBeGreaterThan(1500);
      // a reader keeps hitting the tree while the batch runs
      const reader = bashRun("for i in $(seq 20); do ls -l inv > /dev/null 2>&1; done", mnt);
      const inv = m.invalidateTree();
      const un = m.unmount();
      taken = await Promise.race([inv, sleep(20_000).then(() => -2)]);
      await Promise.race([un, sleep(20_000)]);
      await reader;
    } finally {
      await m.unmount();
    }
    expect(taken).toBeGreaterThan(1500);
    expect(m.mounted).toBe(false);
    expect(fuseMountsUnder(mnt)).toEqual([]);
    // a second invalidation after the end is a no-op
    expect(await m.invalidateTree()).toBe(0);
  });

  it("30 mount/unmount cycles in one process: no descriptor leak, and nothing keeps the event loop alive afterwards", async () => {
    const dir = mkdtempSync(join(root, "cycles-"));
    const r = await serve(dir, `
const store = Store.open(root + "/store", { create: true });
const mnt = root + "/m"; fs.mkdirSync(mnt);
const fds = () => fs.readdirSync("/proc/self/fd").length;
let first = 0;
for (let i = 0; i < 30; i++) {
  const m = await FuseMount.mount(View.open(store), mnt, {});
  await bash("echo " + i + " > f" + i + " && cat f" + i + " > /dev/null && ls > /dev/null", mnt);
  await m.unmount();
  await m.done;
  if (i === 0) first = fds();
}
const files = View.open(store).readdir("/").filter((e) => e.name.startsWith("f")).length;
store.close();
out({ first, last: fds(), files, t: Date.now() });
// no explicit exit: the process must end by itself
`, 90_000);
    try {
      expect(r.timedOut).toBe(false);
      expect(r.code).toBe(0);
      expect(r.out).toHaveLength(1);
      expect(r.out[0].files).toBe(30);
      expect(r.out[0].last).toBeLessThanOrEqual(r.out[0].first);
      expect(Date.now() - r.out[0].t).toBeLessThan(5000); // exited promptly after the last unmount
    } finally {
      teardown(dir);
    }
  });

  it("two mounts served by one process at once: copies between them, unmounting one leaves the other serving", async () => {
    const store2 = Store.open(join(root, "store2"), { create: true });
    const a = point("two-a");
    const b = point("two-b");
    const ma = await FuseMount.mount(View.open(store), a, {});
    try {
      const mb = await FuseMount.mount(View.open(store2), b, {});
      try {
        const out = await bash(`head -c 12000000 /dev/urandom > "$A/x" && cp "$A/x" "$B/y" & printf two > "$B/s" && cp "$B/s" "$A/s"; wait; cmp "$A/x" "$B/y" && cat "$A/s"`.replaceAll("$A", a).replaceAll("$B", b), "/");
        expect(out).toBe("two");
        await ma.unmount();
        expect(fuseMountsUnder(a)).toEqual([]);
        expect(await bash("cat s && cmp y y && echo ok", b)).toBe("twook\n");
      } finally {
        await mb.unmount();
      }
    } finally {
      await ma.unmount();
      store2.close();
    }
  });

  // Found by CI: a page-cache store (cacheprime.ts) still on the pool thread when unmount ended the session
  // made the native session put the unmount off until the store ended, so unmount() returned with the mount
  // still in place. Started here in the same tick as unmount(), the store is always still running then.
  it("unmount returns with the mount gone while a page-cache store is still running on the pool", async () => {
    await withMount("store-inflight", async (mnt, m) => {
      const ino = Number(await bash("head -c 65536 /dev/urandom > f && stat -c %i f", mnt));
      const { notifier } = (m as unknown as { handlers: { notifier: Notifier } }).handlers;
      // (what it stores is never read: the mount ends with it)
      const stored = notifier.store(ino, 0, Buffer.alloc(65536));
      expect(stored).not.toBeNull();
      await m.unmount();
      expect(fuseMountsUnder(mnt)).toEqual([]);
      expect(await stored).toBe(0);
    });
  });

  it("failed mounts: ENOENT for a missing mountpoint; 20 failures leak no descriptor and a mount afterwards works", async () => {
    const missing = join(root, "no-such-dir");
    const fd0 = fdCount();
    for (let i = 0; i < 20; i++) {
      await expect(FuseMount.mount(View.open(store), missing, {})).rejects.toMatchObject({ code: "ENOENT" });
    }
    expect(fdCount()).toBeLessThanOrEqual(fd0);
    await withMount("after-fail", async (mnt) => {
      expect(await bash("echo ok > f && cat f", mnt)).toBe("ok\n");
    });
  });

  // Found by this suite: fuse_session_mount mounts over a regular file (libfuse takes rootmode from the
  // mountpoint's type), so FuseMount.mount checks for a directory first. Run in a child, so that a
  // regression (a mount on the file) cannot hang this process.
  it("a mount on a regular file fails with ENOTDIR", async () => {
    const dir = mkdtempSync(join(root, "onfile-"));
    writeFileSync(join(dir, "file"), "x");
    const r = await serve(dir, `
try { const m = await FuseMount.mount(View.open(Store.open(root + "/store", { create: true })), root + "/file", {}); out({ mounted: true }); await m.unmount(); }
catch (e) { out({ code: e.code }); }
process.exit(0);
`, 30_000);
    teardown(dir);
    expect(r.out).toEqual([{ code: "ENOTDIR" }]);
  });

  // Found by this suite: before mounting, the stale-mount check runs statfsSync(mountpoint) on the event
  // loop; on a mount this same process serves, the kernel's STATFS waits for that loop: a hang forever.
  // FuseMount.mount now refuses a mount point (or one below it) this process serves with EBUSY first.
  it("a second FuseMount.mount on a mountpoint this process already serves rejects with EBUSY instead of deadlocking", async () => {
    const dir = mkdtempSync(join(root, "twice-"));
    const r = await serve(dir, `
const store = Store.open(root + "/store", { create: true });
const mnt = root + "/m"; fs.mkdirSync(mnt);
const m = await FuseMount.mount(View.open(store), mnt, {});
out({ first: true });
try { const m2 = await FuseMount.mount(View.open(store), mnt, {}); out({ second: "mounted" }); await m2.unmount(); }
catch (e) { out({ second: e.code }); }
await m.unmount();
process.exit(0);
`, 15_000);
    teardown(dir);
    expect(r.timedOut).toBe(false);
    expect(r.out[0]).toEqual({ first: true });
    expect(r.out[1]).toBeDefined();
  });

  // Found by this suite: the session constructor's error for an unknown -o option had no `code`.
  it("a bad raw mount option rejects with code EINVAL", async () => {
    await expect(FuseMount.mount(View.open(store), point("badopt"), { options: ["no_such_option_xyz"] })).rejects.toMatchObject({ code: "EINVAL" });
  });

  it("names: 255 bytes work; 256 and 1024 bytes (passed on by the kernel) fail ENAMETOOLONG; 1025 fails in the kernel; NUL never arrives", async () => {
    await withMount("names", async (mnt, m) => {
      const py = `import os, errno, sys
def code(f):
    try:
        f(); return "OK"
    except OSError as e:
        return errno.errorcode[e.errno]
    except ValueError:
        return "ValueError"
res = []
for n in (255, 256, 1024, 1025):
    name = "n" * n
    res.append(code(lambda: os.close(os.open(name, os.O_CREAT | os.O_WRONLY, 0o644))))
    res.append(code(lambda: os.mkdir("d" + name[1:])))
    res.append(code(lambda: os.stat(name)))
    res.append(code(lambda: os.rename("n" * 255, name)))
res.append(code(lambda: os.open("a\\0b", os.O_CREAT | os.O_WRONLY)))
res.append(code(lambda: os.symlink("t" * 4095, "s")))
res.append(str(len(os.readlink("s"))))
print(" ".join(res))
print(len([x for x in os.listdir(".") if x.startswith("n")]))`;
      const before = m.stats.ops.lookup?.count ?? 0;
      const out = (await pexec("python3", ["-c", `import os, sys; os.mkdir(sys.argv[1] + "/names"); os.chdir(sys.argv[1] + "/names")\n${py}`, mnt], { cwd: "/" })).stdout;
      expect(out).toBe(
        [
          "OK OK OK OK", // 255: create, mkdir, stat, rename onto itself
          "ENAMETOOLONG ENAMETOOLONG ENAMETOOLONG ENAMETOOLONG",
          "ENAMETOOLONG ENAMETOOLONG ENAMETOOLONG ENAMETOOLONG",
          "ENAMETOOLONG ENAMETOOLONG ENAMETOOLONG ENAMETOOLONG",
          "ValueError OK 4095",
        ].join(" ") + "\n1\n",
      );
      expect((m.stats.ops.lookup?.count ?? 0) - before).toBeGreaterThan(0);
    });
  });

  // Found by this suite: names crossed into JS decoded as UTF-8 with U+FFFD for bad bytes, so $'a\xff' and
  // $'a\xfe' were one file (and symlink targets were corrupted). The binding now refuses names and targets
  // that are not UTF-8 (EILSEQ when creating, ENOENT when looking up): never an alias.
  it("names that are not valid UTF-8 are kept apart (or refused), never aliased", async () => {
    await withMount("utf8", async (mnt) => {
      const out = await bashRun("touch $'a\\xff' && touch $'a\\xfe'; ls | od -An -c | tr -s ' '; ln -s $'t\\xff' l && readlink l | od -An -tx1", mnt);
      const listing = out.stdout.split("\n")[0]!;
      // either both files exist with their own bytes, or creation was refused and nothing was made
      expect(listing === " a 377 \\n a 376 \\n" || listing === " a 376 \\n a 377 \\n" || listing.trim() === "").toBe(true);
    });
  });

  it("a tree deeper than PATH_MAX (30 levels of 200-byte names, ~6 KB) is reachable by relative steps (no getcwd)", async () => {
    await withMount("deep", async (mnt) => {
      const py = `import os, sys
os.chdir(sys.argv[1])
top = os.open(".", os.O_RDONLY)
n = "d" * 200
for i in range(30):
    os.mkdir(n); os.chdir(n)
with open("leaf", "w") as f: f.write("deep")
os.chdir(top)
p = "/".join([n] * 30)
# the whole relative path is longer than PATH_MAX: reach it by descriptors, one component at a time
fd = os.open(".", os.O_RDONLY)
for i in range(30):
    nfd = os.open(n, os.O_RDONLY | os.O_DIRECTORY, dir_fd=fd); os.close(fd); fd = nfd
leaf = os.open("leaf", os.O_RDONLY, dir_fd=fd)
print(os.read(leaf, 10).decode(), len(p))
os.close(leaf); os.close(fd)
`;
      expect((await pexec("python3", ["-c", py, mnt], { cwd: "/" })).stdout).toBe("deep 6029\n");
      expect(await bash(`rm -rf ${"d".repeat(200)} && ls -A | wc -l`, mnt)).toBe("1\n"); // .agentfs
    });
  });

  // A shell `cd` that crosses 4096 bytes makes bash rebuild $PWD with glibc's getcwd fallback (openat("..") +
  // getdents up the tree). While the binding was being reworked (an uncommitted build of fusell.cc) this hung
  // every time at depth >= 22 in FUSE_OPENDIR (kernel: fuse_dir_open -> request_wait_answer) with the daemon idle
  // in epoll_wait, pending() 0 and /dev/fuse not readable. It passes with the committed binding; kept as a
  // regression test, in a child with a timeout so that a hang fails instead of blocking this process.
  it("cd across PATH_MAX inside the mount (glibc getcwd fallback walks up with opendir/readdir) completes", async () => {
    const dir = mkdtempSync(join(root, "deepcd-"));
    const r = await serve(dir, `
const store = Store.open(root + "/store", { create: true });
const mnt = root + "/m"; fs.mkdirSync(mnt);
const m = await FuseMount.mount(View.open(store), mnt, {});
const n = "d".repeat(200);
const res = await Promise.race([bash("for i in $(seq 30); do mkdir " + n + " && cd " + n + " || exit 1; done; echo made; /bin/pwd | wc -c", mnt), sleep(10000).then(() => "hung")]);
out({ res });
if (res !== "hung") await m.unmount();
store.close();
process.exit(0);
`, 30_000);
    teardown(dir);
    expect(r.out).toEqual([{ res: `made\n${30 * 201 + dir.length + 3}\n` }]);
  });

  it("lookup counting: 5000 files looked up (ls -l), then kernel caches dropped: the node table shrinks back near the root; again after deleting them", async () => {
    await withMount("forget", async (mnt, m) => {
      const base = m.nodeCount;
      await bash("mkdir many && cd many && seq 1 5000 | sed 's/^/f/' | xargs touch && ls -l | wc -l", mnt);
      expect(m.nodeCount).toBeGreaterThan(5000);
      await pexec("bash", ["-c", "sync; echo 2 > /proc/sys/vm/drop_caches"], { cwd: "/" });
      for (let i = 0; i < 50 && m.nodeCount > base + 5; i++) await sleep(100);
      expect(m.nodeCount).toBeLessThanOrEqual(base + 5);
      // looked up again through readdirplus and stat, then deleted
      await bash("cd many && ls -l > /dev/null && stat f1 f2500 f5000 > /dev/null && find . -type f -delete && cd .. && rmdir many", mnt);
      await pexec("bash", ["-c", "sync; echo 2 > /proc/sys/vm/drop_caches"], { cwd: "/" });
      for (let i = 0; i < 50 && m.nodeCount > base + 5; i++) await sleep(100);
      expect(m.nodeCount).toBeLessThanOrEqual(base + 5);
      expect(internals(m).handles).toBe(0);
    });
  });

  // Found by review: the node table dropped the oldest of more than 16 names of a file, so after
  // unlinking the others the name the kernel still held led nowhere (ENOENT for an existing file).
  it("a file with 17 hard links stays reachable by its first name after the other 17 are unlinked", async () => {
    await withMount("links17", async (mnt) => {
      const out = await bash("echo data > f; for i in $(seq 17); do ln f l$i; done; for i in $(seq 17); do rm l$i; done; stat -c %h f; cat f", mnt);
      expect(out).toBe("1\ndata\n");
    });
  });

  // Found by review: a directory's first READDIR at offset 0 listed it again after opendir had (double
  // work), yet a rewind of a directory that was empty at opendir did not list it again (new files missed).
  it("rewinddir shows entries made since opendir, also for a directory that was empty", async () => {
    await withMount("rewind", async (mnt) => {
      const py = `import os, sys
d = sys.argv[1] + "/e"
os.mkdir(d)
fd = os.open(d, os.O_RDONLY | os.O_DIRECTORY)
a = sorted(os.listdir(fd))
open(d + "/new", "w").close()
os.lseek(fd, 0, 0)
print(a, sorted(os.listdir(fd)))`;
      expect((await pexec("python3", ["-c", py, mnt], { cwd: "/" })).stdout).toBe("[] ['new']\n");
    });
  });

  it("truncate(2) by path of a file another descriptor holds 7 MiB of unflushed writes to: the size and bytes are right", async () => {
    await withMount("trunc", async (mnt) => {
      const py = `import os, sys, hashlib
p = sys.argv[1] + "/t"
fd = os.open(p, os.O_CREAT | os.O_RDWR, 0o644)
data = bytes(range(256)) * (7 * 4096)
os.write(fd, data)
os.truncate(p, len(data) + 1)
os.truncate(p, 1000)
st = os.stat(p).st_size
os.close(fd)
print(st, hashlib.sha256(open(p, "rb").read()).hexdigest() == hashlib.sha256(data[:1000]).hexdigest())`;
      expect((await pexec("python3", ["-c", py, mnt], { cwd: "/" })).stdout).toBe("1000 True\n");
    });
  });
});

// The test file's own hygiene: nothing is left mounted under the directories this run made (other runs,
// e.g. another checkout's suite, may have mounts under the same prefix at the same time).
describe.skipIf(!canMount())("FUSE binding: no mount left behind", () => {
  it("no mount of this run remains", () => {
    expect(roots.length).toBeGreaterThan(0);
    for (const r of roots) expect(fuseMountsUnder(r)).toEqual([]);
  });
});
