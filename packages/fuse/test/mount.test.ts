/**
 * Real FUSE mounts (no mocks): the built `agentfs mount` daemon serves a
 * store, and every operation runs in a child process through the kernel.
 * Every mount is torn down in afterAll (umount, then SIGKILL + fusermount -uz).
 */
import { AgentFS } from "@agentfs/core";
import { View } from "@agentfs/view";
import { execFile, spawn } from "node:child_process";
import { constants as C, existsSync, mkdirSync, mkdtempSync, readFileSync, readdirSync, rmSync, statSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import { createHash, randomBytes } from "node:crypto";
import { promisify } from "node:util";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { DEFAULT_MAX_WRITE, FuseMount } from "../src/index.js";
import { agentfs, canMount, fsCodes, fuseMountsUnder, ok, sh, storeFixture, teardown, waitFor } from "./helpers.js";

const ENABLED = canMount();
const pexec = promisify(execFile);

function records(run: string): { pid: number; mountpoint: string }[] {
  if (!existsSync(run)) return [];
  return readdirSync(run)
    .filter((n) => n.endsWith(".json"))
    .map((n) => JSON.parse(readFileSync(join(run, n), "utf8")));
}

describe.skipIf(!existsSync("/dev/fuse") || !ENABLED)("agentfs mount: operations through the kernel", () => {
  let root: string;
  let store: string;
  let mnt: string;
  let env: Record<string, string>;
  const pids: number[] = [];

  const mount = (...extra: string[]) => {
    const r = agentfs(["mount", store, mnt, ...extra], env);
    expect(r.stderr).toBe("");
    expect(r.code).toBe(0);
    for (const rec of records(env.AGENTFS_RUNTIME_DIR!)) pids.push(rec.pid);
  };
  const umount = () => {
    const r = agentfs(["umount", mnt], env);
    expect(r.stderr).toBe("");
    expect(r.code).toBe(0);
    expect(fuseMountsUnder(mnt)).toEqual([]);
  };

  beforeAll(() => {
    root = mkdtempSync("/tmp/agentfs-fuse-test-");
    store = join(root, "store");
    mnt = join(root, "mnt");
    mkdirSync(store);
    mkdirSync(mnt);
    env = { AGENTFS_RUNTIME_DIR: join(root, "run") };
    expect(agentfs(["init", store], env).code).toBe(0);
    ok(`printf seeded | node ${JSON.stringify(join(__dirname, "..", "..", "cli", "dist", "main.js"))} --store ${store} write /seed.txt`, root);
    mount();
  });

  afterAll(() => {
    try {
      if (fuseMountsUnder(root).length) agentfs(["umount", mnt], env);
    } finally {
      teardown(root, pids);
      rmSync(root, { recursive: true, force: true });
    }
  });

  it("mount returns once the mount answers; status lists it; the root shows .agentfs and the store's files", () => {
    expect(fuseMountsUnder(root)).toEqual([mnt]);
    const st = JSON.parse(agentfs(["status", "--json"], env).stdout);
    expect(st).toHaveLength(1);
    expect(st[0]).toMatchObject({ mountpoint: mnt, target: { branch: "main" }, readOnly: false, state: "ok" });
    expect(ok("ls -A", mnt).split("\n").filter(Boolean)).toEqual([".agentfs", "seed.txt"]);
    expect(ok("cat seed.txt", mnt)).toBe("seeded");
    expect(ok("stat -f -c '%l %S' .", mnt).trim()).toBe("255 4096"); // statfs: NAME_MAX and block size
    // mounting twice on the same point is refused
    const again = agentfs(["mount", store, mnt], env);
    expect(again.code).toBe(1);
    expect(again.stderr).toMatch(/EBUSY/);
  });

  it("files, directories, rename, hard and symbolic links, modes, owners, times, xattrs (shell tools)", () => {
    ok("echo hello > a.txt && echo more >> a.txt", mnt);
    expect(ok("cat a.txt", mnt)).toBe("hello\nmore\n");
    ok("mkdir -p d/e && mv a.txt d/e/b.txt && ln d/e/b.txt hard && ln -s d/e/b.txt soft", mnt);
    expect(ok("cat soft && readlink soft", mnt)).toBe("hello\nmore\nd/e/b.txt\n");
    // readdir carries d_type and d_ino (and "." / ".." with nonzero inos, or glibc would hide them)
    expect(ok("ls -a d | head -2 && find . -maxdepth 1 -printf '%y %p\\n' | LC_ALL=C sort", mnt)).toBe(".\n..\nd .\nd ./.agentfs\nd ./d\nf ./hard\nf ./seed.txt\nl ./soft\n");
    expect(ok("ls -i d | cut -d' ' -f1", mnt).trim()).toBe(ok("stat -c %i d/e", mnt).trim());
    expect(ok("stat -c '%h %i' hard d/e/b.txt", mnt).split("\n").filter(Boolean)).toEqual(Array(2).fill(ok("stat -c '%h %i' hard", mnt).trim()));
    expect(ok("stat -c %h hard", mnt).trim()).toBe("2");
    ok("chmod 640 hard && chown 1234:5678 hard && touch -d '2021-02-03 04:05:06' hard", mnt);
    expect(ok("stat -c '%a %u %g %Y' d/e/b.txt", mnt).trim()).toBe(`640 1234 5678 ${Date.UTC(2021, 1, 3, 4, 5, 6) / 1000}`);
    ok("setfattr -n user.color -v blue hard && setfattr -n user.size -v 42 hard", mnt);
    expect(ok("getfattr --absolute-names -d hard", mnt)).toContain('user.color="blue"');
    expect(ok("getfattr --absolute-names --only-values -n user.size hard", mnt)).toBe("42");
    ok("setfattr -x user.color hard", mnt);
    expect(ok("getfattr --absolute-names -d hard", mnt)).not.toContain("user.color");
    expect(sh("getfattr -n user.nope hard", mnt).stderr).toMatch(/No such attribute/);
    ok("truncate -s 3 hard", mnt);
    expect(ok("cat d/e/b.txt", mnt)).toBe("hel");
    ok("rm hard soft && rm -r d", mnt);
    expect(ok("ls -A", mnt).split("\n").filter(Boolean)).toEqual([".agentfs", "seed.txt"]);
  });

  it("node:fs in a child: open/read/write/fsync/ftruncate/close, access, unlinked open files stay readable", () => {
    const codes = fsCodes(mnt, [
      `const fd = fs.openSync("n.bin", "w+"); fs.writeSync(fd, Buffer.alloc(300000, 7)); fs.fsyncSync(fd); fs.ftruncateSync(fd, 100000);
       if (fs.fstatSync(fd).size !== 100000) throw new Error("size " + fs.fstatSync(fd).size); fs.closeSync(fd);`,
      `if (fs.readFileSync("n.bin").length !== 100000) throw new Error("len");`,
      `fs.accessSync("n.bin", fs.constants.R_OK | fs.constants.W_OK)`,
      `fs.writeFileSync("u.txt", "still here"); const fd = fs.openSync("u.txt", "r"); fs.unlinkSync("u.txt");
       const b = Buffer.alloc(20); const n = fs.readSync(fd, b, 0, 20, 0); fs.closeSync(fd);
       if (b.subarray(0, n).toString() !== "still here") throw new Error("read " + b.subarray(0, n));
       if (fs.existsSync("u.txt")) throw new Error("u.txt still listed");`,
      `fs.writeFileSync("v.txt", "abc"); const fd = fs.openSync("v.txt", "r+"); fs.unlinkSync("v.txt");
       fs.writeSync(fd, "defg", 3); fs.ftruncateSync(fd, 5); fs.fsyncSync(fd);
       if (fs.fstatSync(fd).size !== 5) throw new Error("fstat size " + fs.fstatSync(fd).size);
       const b = Buffer.alloc(10); const n = fs.readSync(fd, b, 0, 10, 0); fs.closeSync(fd);
       if (b.subarray(0, n).toString() !== "abcde") throw new Error("read " + b.subarray(0, n));`,
      `fs.rmSync("n.bin")`,
    ]);
    expect(codes).toEqual(["OK", "OK", "OK", "OK", "OK", "OK"]);
    // the unlinked-while-open file left nothing behind once closed (libfuse's .fuse_hidden file is released)
    expect(waitFor(() => ok("ls -A", mnt).split("\n").filter(Boolean).join(",") === ".agentfs,seed.txt", 5000)).toBe(true);
  });

  it("errno for every error case reaches the caller unchanged", () => {
    const long = "x".repeat(256);
    ok("mkdir -p full/sub && echo f > file", mnt);
    const codes = fsCodes(mnt, [
      `fs.statSync("missing")`, // ENOENT
      `fs.rmdirSync("missing")`, // ENOENT
      `fs.mkdirSync("full")`, // EEXIST
      `fs.openSync("file", "wx")`, // EEXIST
      `fs.rmdirSync("full")`, // ENOTEMPTY
      `fs.openSync("full", "w")`, // EISDIR
      `fs.unlinkSync("full")`, // EISDIR
      `fs.mkdirSync("file/x")`, // ENOTDIR
      `fs.readdirSync("file")`, // ENOTDIR
      `fs.writeFileSync(${JSON.stringify(long)}, "x")`, // ENAMETOOLONG
      `fs.mkdirSync(${JSON.stringify(long)})`, // ENAMETOOLONG
      `fs.writeFileSync(${JSON.stringify("y".repeat(255))}, "x")`, // OK: 255 bytes is allowed
      `fs.renameSync("full", "full/sub/inside")`, // EINVAL
      `fs.renameSync("file", "full")`, // EISDIR
      `fs.readlinkSync("file")`, // EINVAL
      `fs.linkSync("full", "full2")`, // EPERM
      `fs.mkdirSync(".agentfs")`, // EEXIST
      `fs.writeFileSync(".agentfs/x", "")`, // EROFS (root passes the kernel's 0555 check)
    ]);
    expect(codes).toEqual([
      "ENOENT", "ENOENT", "EEXIST", "EEXIST", "ENOTEMPTY", "EISDIR", "EISDIR", "ENOTDIR", "ENOTDIR",
      "ENAMETOOLONG", "ENAMETOOLONG", "OK", "EINVAL", "EISDIR", "EINVAL", "EPERM", "EEXIST", "EROFS",
    ]);
    ok(`rm -r full file ${"y".repeat(255)}`, mnt);
  });

  it("special files: a FIFO carries data between two processes, a unix socket is reached through its name, a device node keeps its numbers", () => {
    ok("mkdir sp && mkfifo -m 600 sp/fifo && mknod sp/null c 1 3 && mknod sp/loop b 7 200", mnt);
    // writer and reader are separate processes; the kernel serves the pipe, the store only the name
    expect(ok("(printf 'through the fifo' > sp/fifo &) ; cat sp/fifo", mnt)).toBe("through the fifo");
    const sock = ok(
      `python3 -c "
import socket, os, stat
s = socket.socket(socket.AF_UNIX); s.bind('sp/sock'); s.listen(1)
c = socket.socket(socket.AF_UNIX); c.connect('sp/sock'); a, _ = s.accept(); c.sendall(b'over the socket')
print(a.recv(100).decode(), stat.S_ISSOCK(os.lstat('sp/sock').st_mode))"`,
      mnt,
    );
    expect(sock.trim()).toBe("over the socket True");
    expect(ok("stat -c '%n %F %a %t:%T %s' sp/fifo sp/null sp/loop sp/sock", mnt).trim().split("\n")).toEqual([
      "sp/fifo fifo 600 0:0 0",
      "sp/null character special file 644 1:3 0",
      "sp/loop block special file 644 7:c8 0",
      "sp/sock socket 755 0:0 0",
    ]);
    // readdir's d_type (find -type uses it) and the names survive an unmount
    umount();
    mount();
    expect(ok("find sp -mindepth 1 -printf '%y %p\\n' | sort", mnt).trim().split("\n")).toEqual(["b sp/loop", "c sp/null", "p sp/fifo", "s sp/sock"]);
    ok("rm -r sp", mnt);
  });

  it("a snapshot taken from the CLI while mounted appears under /.agentfs/snapshots, read-only (EROFS), and disappears when deleted", () => {
    ok("echo v1 > snap.txt", mnt);
    expect(agentfs(["--store", store, "snapshot", "create", "s1"], env).code).toBe(0);
    ok("echo v2 > snap.txt", mnt);
    expect(ok("ls .agentfs/snapshots", mnt)).toBe("s1\n");
    expect(ok("cat .agentfs/snapshots/s1/snap.txt && cat snap.txt", mnt)).toBe("v1\nv2\n");
    const codes = fsCodes(mnt, [
      `fs.writeFileSync(".agentfs/snapshots/s1/snap.txt", "x")`,
      `fs.writeFileSync(".agentfs/snapshots/s1/new.txt", "x")`,
      `fs.unlinkSync(".agentfs/snapshots/s1/snap.txt")`,
      `fs.mkdirSync(".agentfs/snapshots/s1/d")`,
      `fs.renameSync("snap.txt", ".agentfs/snapshots/s1/moved.txt")`,
      `fs.chmodSync(".agentfs/snapshots/s1/snap.txt", 0o600)`,
    ]);
    expect(codes).toEqual(["EROFS", "EROFS", "EROFS", "EROFS", codes[4], "EROFS"]);
    expect(["EROFS", "EXDEV"]).toContain(codes[4]);
    const ino = (p: string) => ok(`stat -c %i ${p}`, mnt).trim();
    expect(ino("snap.txt")).not.toBe(ino(".agentfs/snapshots/s1/snap.txt"));
    expect(agentfs(["--store", store, "snapshot", "delete", "s1"], env).code).toBe(0);
    expect(ok("ls .agentfs/snapshots", mnt)).toBe("");
    // the kernel may keep the positive dentry for entry_timeout (1 s)
    expect(waitFor(() => sh("test -e .agentfs/snapshots/s1", mnt).code !== 0, 5000)).toBe(true);
    ok("rm snap.txt", mnt);
  });

  it("git init, add, commit and fsck inside the mount", () => {
    const g = "git -c user.name=t -c user.email=t@example.com -c init.defaultBranch=main";
    ok(`mkdir repo && cd repo && ${g} init -q && mkdir src && for i in $(seq 1 20); do echo "line $i" > src/f$i.txt; done && ${g} add -A && ${g} commit -qm one`, mnt);
    ok(`cd repo && echo changed >> src/f1.txt && git mv src/f2.txt src/g2.txt && ${g} commit -qam two && ${g} gc -q`, mnt);
    expect(ok("cd repo && git fsck --full --strict 2>&1; echo rc=$?", mnt)).toMatch(/rc=0$/m);
    expect(ok("cd repo && git log --oneline | wc -l && git status --porcelain", mnt).trim()).toBe("2");
  });

  it("space and sparse files: df shows the store's host filesystem; du, cp --sparse, fallocate -p/-d and SEEK_HOLE see holes", () => {
    // statfs: the mount reports the filesystem holding the store (not a made-up capacity).
    const fsStat = (dir: string) => ok(`stat -f -c '%S %b' ${JSON.stringify(dir)}`, "/").trim();
    expect(fsStat(mnt)).toBe(fsStat(store));
    // A 1 GiB file with 1 MiB of data in its middle: no space for the rest, and a sparse copy out stays sparse.
    ok("truncate -s 1G sp && head -c 1048576 /dev/urandom | dd of=sp bs=1M seek=500 conv=notrunc status=none", mnt);
    const kib = (dir: string, name: string) => Number(ok(`du -k ${name} | cut -f1`, dir).trim());
    expect(kib(mnt, "sp")).toBeLessThan(2048);
    ok(`cp --sparse=always sp ${root}/sp.copy && cmp sp ${root}/sp.copy`, mnt);
    expect(kib(root, "sp.copy")).toBeLessThan(2048);
    const [data, hole] = ok(`python3 -c "import os; f=os.open('sp', os.O_RDONLY); print(os.lseek(f, 0, os.SEEK_DATA), os.lseek(f, 500 << 20, os.SEEK_HOLE))"`, mnt).trim().split(" ").map(Number);
    expect(data).toBe(500 << 20);
    // Committed holes are known per chunk: the last data chunk (at most 256 KiB) may run into the zeros.
    expect(hole).toBeGreaterThanOrEqual(501 << 20);
    expect(hole).toBeLessThanOrEqual((501 << 20) + (256 << 10));
    // fallocate(1): punch a hole (KEEP_SIZE), then dig the zeros of a dense file into holes.
    ok("head -c 4194304 /dev/urandom > p && fallocate -p -o 1048576 -l 2097152 p", mnt);
    expect(ok("stat -c %s p && cmp -n 1048576 -i 1048576 p /dev/zero && echo zeros", mnt)).toBe("4194304\nzeros\n");
    expect(kib(mnt, "p")).toBeLessThan(3 * 1024);
    ok("head -c 1048576 /dev/urandom > z && head -c 8388608 /dev/zero >> z && sha256sum z > z.sum && fallocate -d z && sha256sum -c z.sum", mnt);
    expect(kib(mnt, "z")).toBeLessThan(2 * 1024);
    expect(sh("fallocate -z -o 0 -l 4096 p", mnt).stderr).toMatch(/not supported/);
    ok("rm sp p z z.sum", mnt);
  });

  it("tar x of a tarball reproduces every file (sha256)", () => {
    const src = join(root, "tarsrc");
    mkdirSync(join(src, "a", "b"), { recursive: true });
    for (let i = 0; i < 30; i++) writeFileSync(join(src, i % 2 ? "a" : "a/b", `f${i}.dat`), Buffer.alloc(1000 * i * i + 1, i));
    writeFileSync(join(src, "big.bin"), Buffer.from(Array.from({ length: 3 << 20 }, (_, i) => (i * 2654435761) >>> 24)));
    ok("ln -s a/f1.dat link && ln a/f3.dat hardlink", src);
    ok("find . -type f -exec touch -d '2003-04-05 06:07:08' {} +", src);
    ok(`tar -C ${src} -cf ${root}/t.tar .`, root);
    ok(`mkdir x && tar -C x -xf ${root}/t.tar`, mnt);
    const sums = (dir: string) => ok("find . -type f -print0 | sort -z | xargs -0 sha256sum", dir);
    expect(sums(join(mnt, "x"))).toBe(sums(src));
    // tar restores mtimes with utimensat(fd, [UTIME_OMIT, mtime]): a single-time setattr that
    // libfuse 2.9 drops unless the filesystem sets flag_utime_omit_ok (our fuse-native patch)
    const mtimes = (dir: string) => ok("find . -type f -printf '%P %TY-%Tm-%Td %TH:%TM:%.2TS\\n' | sort", dir);
    expect(mtimes(join(mnt, "x"))).toBe(mtimes(src));
    expect(ok("readlink x/link && stat -c %h x/hardlink", mnt)).toBe("a/f1.dat\n2\n");
    ok("rm -r x", mnt);
  });

  it("data round-trips: written through the mount, read by the SDK after unmount, and back", async () => {
    ok("mkdir -p rt && printf 'through fuse' > rt/one.txt && setfattr -n user.k -v v rt/one.txt", mnt);
    umount();
    const afs = await AgentFS.open(store);
    try {
      expect((await afs.fs.readFile("/rt/one.txt")).toString()).toBe("through fuse");
      await afs.fs.writeFile("/rt/two.txt", "through the sdk");
    } finally {
      await afs.close();
    }
    mount();
    expect(ok("cat rt/two.txt && getfattr --only-values -n user.k rt/one.txt", mnt)).toBe("through the sdkv");
    // while mounted: another process's commits show through the mount at once (no attribute cache)
    expect(ok("cat rt/one.txt", mnt)).toBe("through fuse");
    const live = await AgentFS.open(store);
    try {
      await live.fs.writeFile("/rt/one.txt", "changed by the sdk while mounted");
      await live.fs.writeFile("/rt/three.txt", "new");
    } finally {
      await live.close();
    }
    expect(ok("cat rt/one.txt rt/three.txt", mnt)).toBe("changed by the sdk while mountednew");
  });

  it("umount (SIGTERM) commits files that are still open with unflushed writes", async () => {
    // A writer keeps its descriptor open (no close, so no FUSE flush) while we unmount.
    const holder = spawn("bash", ["-c", "exec 3>held.txt; printf 'not yet closed' >&3; echo ready; sleep 60"], { cwd: mnt, stdio: ["ignore", "pipe", "ignore"] });
    try {
      await new Promise<void>((res) => holder.stdout!.once("data", () => res()));
      umount();
    } finally {
      holder.kill("SIGKILL");
    }
    const afs = await AgentFS.open(store);
    try {
      expect((await afs.fs.readFile("/held.txt")).toString()).toBe("not yet closed");
      await afs.fs.unlink("/held.txt");
    } finally {
      await afs.close();
    }
    mount();
  });

  it("a mount of a snapshot, and --read-only on a branch, refuse changes with EROFS", () => {
    umount();
    expect(agentfs(["--store", store, "snapshot", "create", "ro"], env).code).toBe(0);
    mount("--snapshot", "ro");
    expect(ok("cat seed.txt", mnt)).toBe("seeded");
    expect(fsCodes(mnt, [`fs.writeFileSync("z", "")`, `fs.unlinkSync("seed.txt")`])).toEqual(["EROFS", "EROFS"]);
    umount();
    mount("--read-only");
    expect(fsCodes(mnt, [`fs.mkdirSync("z")`, `fs.readFileSync("seed.txt", "utf8")`])).toEqual(["EROFS", "OK"]);
    umount();
    mount();
  });

  it("--allow-other: another user's new files are theirs; default_permissions refuses them root's files; utimens sets mtime", () => {
    umount();
    mount("--allow-other");
    ok("mkdir -m 777 shared && echo root > shared/rootfile && chmod 644 shared/rootfile", mnt);
    const as1000 = (script: string) => sh(`setpriv --reuid=1000 --regid=1000 --clear-groups bash -c ${JSON.stringify(script)}`, join(mnt, "shared"));
    expect(as1000("echo mine > f && mkdir g && ln -s f l && mkfifo p 2>/dev/null; true").code).toBe(0);
    expect(ok("stat -c '%u:%g %n' f g && stat -c '%u:%g' -h l 2>/dev/null || stat -c '%u:%g' l", join(mnt, "shared")).split("\n").filter(Boolean)).toEqual(["1000:1000 f", "1000:1000 g", "1000:1000"]);
    const denied = as1000("echo x >> rootfile");
    expect(denied.code).not.toBe(0);
    expect(denied.stderr).toMatch(/Permission denied/);
    expect(as1000("chown 1000 rootfile").stderr).toMatch(/Operation not permitted/);
    expect(as1000("chmod 777 rootfile").stderr).toMatch(/Operation not permitted/);
    // utimens sets mtime (not atime twice, as unpatched fuse-native 2.2.6 did), with sub-second precision (ms through getattr)
    ok("touch -d '2001-02-03 04:05:06.25' f && touch -a -d '2011-01-01 00:00:00' f", join(mnt, "shared"));
    expect(ok("stat -c '%y' f", join(mnt, "shared"))).toContain("2001-02-03 04:05:06.250000000");
    // touch -a / touch -m set one time and pass UTIME_OMIT for the other (flag_utime_omit_ok in our patch)
    expect(ok("stat -c '%X %Y' f", join(mnt, "shared")).trim()).toBe(`${Date.UTC(2011, 0, 1) / 1000} ${Date.UTC(2001, 1, 3, 4, 5, 6) / 1000}`);
    ok("touch -m -d '2012-01-01 00:00:00' f", join(mnt, "shared"));
    expect(ok("stat -c '%X %Y' f", join(mnt, "shared")).trim()).toBe(`${Date.UTC(2011, 0, 1) / 1000} ${Date.UTC(2012, 0, 1) / 1000}`);
    // A write or fallocate by a caller outside the file's group drops a set-group-ID without group execute
    // (the half the daemon does itself), and `stat -c %a` shows it at once: that statx asks for the mode
    // only, which the kernel answers from its cache unless the daemon dropped the cached attributes.
    for (const op of ["printf J | dd of=k conv=notrunc status=none", "fallocate -l 65536 k", "fallocate -p -o 0 -l 4096 k"]) {
      ok("rm -f k && echo hello > k && chown 1000:1000 k && chmod 2766 k", join(mnt, "shared"));
      expect(ok("stat -c %a k", join(mnt, "shared")).trim()).toBe("2766");
      const r = sh(`setpriv --reuid=65534 --regid=65534 --clear-groups bash -c ${JSON.stringify(op)}`, join(mnt, "shared"));
      expect(r.stderr, op).toBe("");
      expect(ok("stat -c %a k", join(mnt, "shared")).trim(), op).toBe("766");
    }
    ok("rm -r shared", mnt);
    umount();
    mount();
  });

  it("an external unmount (fusermount -u) makes the daemon commit, remove its record and exit", () => {
    const rec = records(env.AGENTFS_RUNTIME_DIR!)[0]!;
    ok("printf external > ext.txt", mnt);
    ok(`fusermount -u ${JSON.stringify(mnt)}`, root);
    const alive = () => {
      try {
        process.kill(rec.pid, 0);
        return true;
      } catch {
        return false;
      }
    };
    expect(waitFor(() => !alive(), 10_000)).toBe(true);
    expect(records(env.AGENTFS_RUNTIME_DIR!)).toEqual([]);
    expect(agentfs(["--store", store, "cat", "/ext.txt"], env).stdout).toBe("external");
    expect(agentfs(["--store", store, "rm", "/ext.txt"], env).code).toBe(0);
    mount();
  });

  it("a killed daemon leaves a stale mount (ENOTCONN) that status reports and the next mount recovers", () => {
    const rec = records(env.AGENTFS_RUNTIME_DIR!)[0]!;
    process.kill(rec.pid, "SIGKILL");
    const statCode = () => {
      try {
        statSync(mnt);
        return "OK";
      } catch (e) {
        return (e as NodeJS.ErrnoException).code;
      }
    };
    expect(waitFor(() => statCode() === "ENOTCONN", 10_000)).toBe(true);
    expect(JSON.parse(agentfs(["status", "--json"], env).stdout)[0].state).toBe("stale");
    mount();
    expect(ok("cat seed.txt", mnt)).toBe("seeded");
    umount();
    expect(agentfs(["status"], env).stdout).toBe("no agentfs mounts\n");
    const again = agentfs(["umount", mnt], env);
    expect(again.code).toBe(1);
    expect(again.stderr).toMatch(/EINVAL/);
  });
});

describe.skipIf(!existsSync("/dev/fuse") || !ENABLED)("FuseMount in-process: a corrupt chunk in a large file", () => {
  const fx = storeFixture("agentfs-fuse-eio-");

  it("a 24 MiB file reads back intact; a corrupt chunk in its middle is EIO for the reads that reach it, and only for them", async () => {
    const MiB = 1 << 20;
    const data = randomBytes(24 * MiB);
    const sha = (b: Buffer) => createHash("sha256").update(b).digest("hex");
    const v = View.open(fx.store);
    const fd = v.open("/big", C.O_CREAT | C.O_WRONLY, 0o644);
    v.write(fd, data, 0, data.length, 0);
    await v.closeAsync(fd);
    // Corrupt the raw chunk that starts 12 MiB or more into the file (random data: its first 64 bytes occur once).
    const db = fx.store.manifest.db;
    const rows = db.prepare("SELECT hash, data FROM objects WHERE codec = 0").all() as { hash: Buffer; data: Buffer }[];
    const bad = rows.map((r) => ({ ...r, off: data.indexOf(r.data.subarray(0, 64)) })).filter((r) => r.off >= 12 * MiB).sort((a, b) => a.off - b.off)[0];
    const flipped = Buffer.from(bad.data);
    flipped[flipped.length >> 1] ^= 1;
    expect(db.prepare("UPDATE objects SET data = ? WHERE hash = ?").run(flipped, bad.hash).changes).toBe(1);
    fx.store.cas.clearCache();

    const mnt = join(fx.root, "mnt");
    mkdirSync(mnt);
    const m = await FuseMount.mount(v, mnt, {});
    try {
      // Asynchronous children, and no cwd in the mount (spawn waits for the child's chdir and exec): this
      // process serves the mount, so it must not block.
      const big = join(mnt, "big");
      const head = await pexec("sh", ["-c", `dd if=${big} bs=1M count=8 status=none | sha256sum`]);
      expect(head.stdout.split(" ")[0]).toBe(sha(data.subarray(0, 8 * MiB)));
      const tail = await pexec("sh", ["-c", `dd if=${big} bs=1M skip=16 status=none | sha256sum`]);
      expect(tail.stdout.split(" ")[0]).toBe(sha(data.subarray(16 * MiB)));
      const whole = await pexec("cat", [big], { encoding: "buffer", maxBuffer: 64 * MiB }).then(
        () => "read it all",
        (e: { stderr: Buffer; stdout: Buffer }) => ({ stderr: e.stderr.toString(), got: e.stdout.length }),
      );
      expect(whole).toMatchObject({ stderr: expect.stringContaining("Input/output error") });
      const got = (whole as { got: number }).got;
      expect(got).toBeLessThanOrEqual(bad.off);
      expect(got).toBeGreaterThanOrEqual(bad.off - 2 * MiB); // everything before the bad chunk's read request arrived
    } finally {
      await m.unmount();
    }
  });
});

describe.skipIf(!existsSync("/dev/fuse") || !ENABLED)("FuseMount in-process: write request sizes", () => {
  const fx = storeFixture("agentfs-fuse-wsize-");

  async function ddInto(maxWrite: number): Promise<{ maxWrite: number; line: string }> {
    const mnt = join(fx.root, `m${maxWrite}`);
    mkdirSync(mnt);
    const m = await FuseMount.mount(View.open(fx.store), mnt, { maxWrite });
    try {
      // Asynchronous child: this process serves the mount, so it must not block.
      const r = await pexec("dd", ["if=/dev/zero", `of=${mnt}/f${maxWrite}`, "bs=1M", "count=32"]);
      const o = m.stats.ops;
      expect(o.write!.count).toBe(m.stats.writes);
      const held = ["write", "flush", "release"].map((k) => `${k} max ${o[k]?.maxMs.toFixed(1)} ms`).join(", ");
      return { maxWrite: m.stats.maxWrite, line: `${r.stderr.trim().split("\n").pop() ?? ""} (${held})` };
    } finally {
      await m.unmount();
    }
  }

  it("a 160 MiB sequential write is committed while it runs (write-behind), the writer held past 64 MiB of pages; it reads back intact", async () => {
    const MiB = 1 << 20;
    const src = join(fx.root, "src160.bin");
    writeFileSync(src, randomBytes(160 * MiB));
    const mnt = join(fx.root, "m160");
    mkdirSync(mnt);
    const m = await FuseMount.mount(View.open(fx.store, { autoCommitBytes: 8 * MiB }), mnt, {});
    try {
      await pexec("dd", [`if=${src}`, `of=${mnt}/big`, "bs=1M", "conv=fsync"]);
      expect(m.stats.writes).toBe(160);
      expect(m.stats.throttled).toBeGreaterThan(0); // dd writes far faster than the commits store
      const sum = async (f: string) => (await pexec("sha256sum", [f])).stdout.split(" ")[0];
      expect(await sum(`${mnt}/big`)).toBe(await sum(src));
    } finally {
      await m.unmount();
      rmSync(src, { force: true });
    }
    expect(fuseMountsUnder(fx.root)).toEqual([]);
  }, 120_000);

  it("write request size follows maxWrite: 4 KiB with 0, 128 KiB with 131072, 1 MiB by default", async () => {
    const small = await ddInto(0);
    const mid = await ddInto(131072);
    const big = await ddInto(DEFAULT_MAX_WRITE);
    expect(small.maxWrite).toBe(4096);
    expect(mid.maxWrite).toBe(131072);
    expect(big.maxWrite).toBe(1 << 20);
    process.stdout.write(`dd 32 MiB: 4 KiB writes: ${small.line}\n           128 KiB writes: ${mid.line}\n           1 MiB writes: ${big.line}\n`);
    expect(fx.store.manifest).toBeDefined();
    expect(fuseMountsUnder(fx.root)).toEqual([]);
  });
});

describe.skipIf(!existsSync("/dev/fuse") || !ENABLED)("FuseMount in-process: deferred compression of small files", () => {
  const fx = storeFixture("agentfs-fuse-defer-");

  it("small files written through the mount are stored raw at close and compressed by the worker soon after; unmount reports it", async () => {
    const mnt = join(fx.root, "mnt");
    mkdirSync(mnt);
    const m = await FuseMount.mount(View.open(fx.store), mnt, {});
    const db = fx.store.manifest.db;
    const codecs = () => db.prepare("SELECT codec, count(*) AS n FROM objects GROUP BY codec ORDER BY codec").all() as { codec: number; n: number }[];
    try {
      // Asynchronous child: this process serves the mount, so it must not block.
      await pexec("sh", ["-c", `for i in $(seq 1 50); do seq 1 300 | sed "s/^/line $i /" > ${mnt}/f$i.txt; done`]);
      // The worker's gzip bodies land within a few ms of the closes.
      for (let i = 0; i < 200 && codecs().some((c) => c.codec === 0); i++) await new Promise((r) => setTimeout(r, 10));
      expect(codecs()).toEqual([{ codec: 1, n: 50 }]);
      const r = await pexec("sh", ["-c", `cat ${mnt}/f7.txt | sha256sum`]);
      const want = (await pexec("sh", ["-c", `seq 1 300 | sed "s/^/line 7 /" | sha256sum`])).stdout;
      expect(r.stdout).toBe(want);
    } finally {
      await m.unmount();
    }
    expect(m.stats.deferredCompression).toMatchObject({ compressed: 50, failures: 0 });
    expect(fuseMountsUnder(fx.root)).toEqual([]);
  });
});
