/**
 * The mount daemon's control socket, through real mounts and real child
 * processes: store commands run while a store is mounted go to the daemon
 * (its log names each request), see bytes that programs still hold in open
 * files, restore the served tree in place, refuse other users, and fall back
 * to opening the store directly when the daemon was killed. Also `mount
 * --lower` (an overlay branch over a host directory), the allow_other
 * default, and that `umount` keeps the daemon's log.
 *
 * The test process never serves a mount: every mount is a daemon started by
 * the built CLI, and every access is a child process. Every mount is torn
 * down in afterAll (umount, then SIGKILL + fusermount -uz).
 */
import { Store } from "@agentfs/core";
import { spawn, spawnSync, type ChildProcess } from "node:child_process";
import { chmodSync, existsSync, mkdirSync, mkdtempSync, readFileSync, readdirSync, rmSync, statSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { MAIN } from "./helpers.js";

/** True when this machine can run real mounts: Linux with a FUSE device, as root (a missing FUSE binding fails the tests). */
const ENABLED = process.platform === "linux" && existsSync("/dev/fuse") && process.getuid?.() === 0;

interface Run {
  code: number;
  stdout: string;
  stderr: string;
}

/** `agentfs ...args` as a child with `env` added; `asUid` runs it through setpriv as that uid/gid. */
function cli(args: string[], env: Record<string, string>, asUid?: number): Run {
  const cmd = asUid === undefined ? [process.execPath, MAIN, ...args] : ["setpriv", `--reuid=${asUid}`, `--regid=${asUid}`, "--clear-groups", process.execPath, MAIN, ...args];
  const r = spawnSync(cmd[0]!, cmd.slice(1), { cwd: "/", env: { ...process.env, ...env }, timeout: 60_000, maxBuffer: 64 << 20 });
  if (r.error) throw r.error;
  return { code: r.status ?? -1, stdout: r.stdout.toString(), stderr: r.stderr.toString() };
}

/** `cli` that must exit 0; returns stdout. */
function must(args: string[], env: Record<string, string>): string {
  const r = cli(args, env);
  if (r.code !== 0) throw new Error(`agentfs ${args.join(" ")} exited ${r.code}: ${r.stderr}`);
  return r.stdout;
}

/** `bash -c script` in `cwd`; must exit 0; returns stdout. */
function sh(script: string, cwd: string): string {
  const r = spawnSync("bash", ["-c", script], { cwd, timeout: 60_000 });
  if (r.status !== 0) throw new Error(`'${script}' exited ${r.status}: ${r.stderr}`);
  return r.stdout.toString();
}

/** FUSE mount points under `prefix`, with their super options (from /proc/self/mountinfo). */
function fuseMounts(prefix: string): Array<{ mp: string; opts: string }> {
  const out: Array<{ mp: string; opts: string }> = [];
  for (const line of readFileSync("/proc/self/mountinfo", "utf8").split("\n")) {
    const f = line.split(" ");
    const sep = f.indexOf("-");
    if (sep < 0 || !f[sep + 1]?.startsWith("fuse")) continue;
    const mp = f[4]!.replace(/\\([0-7]{3})/g, (_, o) => String.fromCharCode(parseInt(o, 8)));
    if (mp.startsWith(prefix)) out.push({ mp, opts: f[sep + 3] ?? "" });
  }
  return out;
}

/**
 * Starts a node child in `cwd` that opens `file` with `flags`, writes `data`
 * at offset 0 and keeps the descriptor open without closing or duplicating
 * it (a shell's `printf >&3` closes a dup, which is a FUSE flush that
 * commits); resolves once the write returned.
 */
async function holder(file: string, flags: string, data: string, cwd: string): Promise<ChildProcess> {
  const script = `const fs = require("node:fs"); const fd = fs.openSync(${JSON.stringify(file)}, ${JSON.stringify(flags)}); fs.writeSync(fd, ${JSON.stringify(data)}, 0); console.log("ready"); setTimeout(() => {}, 60000);`;
  const p = spawn(process.execPath, ["-e", script], { cwd, stdio: ["ignore", "pipe", "inherit"] });
  await new Promise<void>((res, rej) => {
    p.stdout!.once("data", () => res());
    p.once("exit", (c) => rej(new Error(`holder exited ${c} before it was ready`)));
  });
  return p;
}

/** Kills `p` and resolves once it has exited (its descriptors are closed then). */
async function stop(p: ChildProcess): Promise<void> {
  if (p.exitCode !== null || p.signalCode !== null) return;
  const gone = new Promise<void>((res) => p.once("exit", () => res()));
  p.kill("SIGKILL");
  await gone;
}

describe.skipIf(!ENABLED)("mount daemon control socket", () => {
  let root: string;
  let store: string;
  let mnt: string;
  let env: Record<string, string>;
  /** A runtime dir with no records: commands there open the store directly. */
  let direct: Record<string, string>;
  const pids: number[] = [];

  const record = () => {
    const dir = env.AGENTFS_RUNTIME_DIR!;
    const n = readdirSync(dir).find((x) => x.endsWith(".json"))!;
    return JSON.parse(readFileSync(join(dir, n), "utf8")) as { pid: number; log: string; control: string; allowOther: boolean; lower: string | null; mountpoint: string };
  };
  const log = () => readFileSync(record().log, "utf8");
  const mount = (...extra: string[]) => {
    const r = cli(["mount", store, mnt, ...extra], env);
    expect(r.stderr).toBe("");
    expect(r.code).toBe(0);
    pids.push(record().pid);
  };

  beforeAll(() => {
    root = mkdtempSync("/tmp/agentfs-control-test-");
    store = join(root, "store");
    mnt = join(root, "mnt");
    mkdirSync(store);
    mkdirSync(mnt);
    env = { AGENTFS_RUNTIME_DIR: join(root, "run") };
    direct = { AGENTFS_RUNTIME_DIR: join(root, "run-none") };
    must(["init", store], env);
    mount();
  });

  afterAll(() => {
    try {
      for (const m of fuseMounts(root)) cli(["umount", m.mp], env);
    } finally {
      for (const pid of pids) {
        try {
          process.kill(pid, "SIGKILL");
        } catch {
          /* gone */
        }
      }
      for (const m of fuseMounts(root)) spawnSync("fusermount", ["-uz", m.mp]);
      rmSync(root, { recursive: true, force: true });
    }
  });

  it("records a 0600 control socket; mounts with allow_other and default_permissions by default (root)", () => {
    const rec = record();
    expect(rec.control).toMatch(/\.sock$/);
    const st = statSync(rec.control);
    expect(st.isSocket()).toBe(true);
    expect(st.mode & 0o777).toBe(0o600);
    expect(rec.allowOther).toBe(true);
    const opts = fuseMounts(mnt)[0]!.opts.split(",");
    expect(opts).toContain("allow_other");
    expect(opts).toContain("default_permissions");
  });

  it("snapshot create while a process holds a file open with unflushed writes: the snapshot has its bytes", async () => {
    const p = await holder("held.txt", "w", "not yet closed", mnt);
    try {
      // The same command opening the store itself (no record in its runtime dir) cannot see the daemon's buffers ...
      must(["--store", store, "snapshot", "create", "beside", "--json"], direct);
      expect(sh("wc -c < .agentfs/snapshots/beside/held.txt", mnt).trim()).toBe("0");
      // ... through the daemon it does.
      const s = JSON.parse(must(["--store", store, "snapshot", "create", "live", "--json"], env));
      expect(s).toMatchObject({ name: "live", branch: "main" });
      expect(log()).toMatch(/control: uid 0 pid \d+: snapshot\.create ok/);
      expect(sh("cat .agentfs/snapshots/live/held.txt", mnt)).toBe("not yet closed");
    } finally {
      await stop(p);
    }
    expect(sh("cat held.txt", mnt)).toBe("not yet closed");
  });

  it("stats, diff, snapshot list and branch list (text and --json) are answered by the daemon, identical to a direct run", () => {
    sh("mkdir -p d && echo one > d/a.txt && echo two > b.txt", mnt);
    const before = log().split("\n").length;
    const cmds = [
      ["diff", "--json", "live", "main"],
      ["diff", "live", "main"],
      ["snapshot", "list", "--json"],
      ["branch", "list", "--json"],
      ["stats", "--json"],
      ["stats", "--snapshot", "live"],
    ];
    const viaDaemon = cmds.map((c) => cli(["--store", store, ...c], env));
    const lines = log().split("\n").slice(before - 1).filter((l) => l.startsWith("control:"));
    expect(lines.map((l) => /: (\S+) ok/.exec(l)?.[1])).toEqual(["diff", "diff", "snapshot.list", "branch.list", "stats", "stats"]);
    const viaStore = cmds.map((c) => cli(["--store", store, ...c], direct));
    const norm = (s: string) => s.replace(/"databaseBytes": \d+/, "").replace(/database on disk.*\n/, "").replace(/"packBytes": \d+/, "").replace(/pack files on disk.*\n/, "");
    for (let i = 0; i < cmds.length; i++) {
      expect(viaDaemon[i]!.code).toBe(0);
      expect(norm(viaDaemon[i]!.stdout)).toBe(norm(viaStore[i]!.stdout));
      expect(viaDaemon[i]!.stderr).toBe("");
    }
    const d = JSON.parse(viaDaemon[0]!.stdout);
    expect(d.changes.map((c: { path: string; change: string }) => `${c.change} ${c.path}`)).toEqual(["added /b.txt", "added /d", "added /d/a.txt"]);
    expect(JSON.parse(viaDaemon[4]!.stdout).tree.files).toBe(3);
  });

  it("errors and exit codes are the same through the daemon: ENOENT (1), usage (2), EBUSY for deleting the mounted branch", () => {
    for (const [args, code, msg] of [
      [["restore", "nope"], 1, /^agentfs: ENOENT: /],
      [["diff", "--snapshot", "live"], 2, /^agentfs: diff of a snapshot needs FROM/],
      [["snapshot", "create", "live"], 1, /^agentfs: EEXIST: /],
    ] as Array<[string[], number, RegExp]>) {
      const a = cli(["--store", store, ...args], env);
      const b = cli(["--store", store, ...args], direct);
      expect([a.code, a.stderr]).toEqual([b.code, b.stderr]);
      expect(a.code).toBe(code);
      expect(a.stderr).toMatch(msg);
    }
    expect(log()).toMatch(/control: uid 0 pid \d+: restore ENOENT/);
    must(["--store", store, "branch", "create", "other", "-c"], env);
    const del = cli(["--store", store, "branch", "delete", "main"], env);
    expect(del.code).toBe(1);
    expect(del.stderr).toMatch(/EBUSY: branch main is mounted on/);
    must(["--store", store, "branch", "checkout", "main"], env);
    must(["--store", store, "branch", "delete", "other"], env);
  });

  it("restore of the mounted branch: the mount serves the restored tree, even for a file a process holds open after writing", async () => {
    sh("printf v1 > r.txt", mnt);
    must(["--store", store, "snapshot", "create", "base"], env);
    sh("printf 'after base' > gone.txt", mnt);
    // The holder rewrote r.txt through a descriptor it keeps (its bytes sit in the daemon's buffer).
    const p = await holder("r.txt", "r+", "v2-longer", mnt);
    try {
      expect(sh("cat r.txt", mnt)).toBe("v2-longer");
      const r = cli(["--store", store, "restore", "base"], env);
      expect(r.stderr).toBe("");
      expect(r.stdout).toBe("restored branch main to snapshot base\n");
      expect(log()).toMatch(/control: uid 0 pid \d+: restore ok/);
      // The daemon drops the kernel's names, attributes and cached pages before it answers, so the
      // restored tree shows at once (not after the 1 s entry/attr timeouts).
      expect(existsSync(join(mnt, "gone.txt"))).toBe(false);
      expect(sh("cat r.txt", mnt)).toBe("v1");
    } finally {
      await stop(p);
    }
    // Closing the held descriptor does not bring the pre-restore bytes back.
    expect(sh("cat r.txt", mnt)).toBe("v1");
    expect(JSON.parse(must(["--store", store, "diff", "--json", "base", "main"], env)).changes).toEqual([]);
  });

  it("restore and snapshot create/delete through the daemon show at once: cached names, negative names and attributes are dropped before the reply", () => {
    sh("mkdir -p inv && printf one > inv/keep && printf x > inv/new && stat inv/keep inv/new >/dev/null", mnt);
    must(["--store", store, "snapshot", "create", "inv0"], env);
    sh("printf changed > inv/keep && rm inv/new && printf y > inv/later && stat inv/keep inv/later > /dev/null", mnt);
    // cached: a positive entry for inv/later, a negative one for inv/new, attributes of inv/keep (size 7)
    expect(sh("stat -c %s inv/keep; test -e inv/new || echo no-new; test -e .agentfs/snapshots/inv1 || echo no-inv1", mnt)).toBe("7\nno-new\nno-inv1\n");
    must(["--store", store, "restore", "inv0"], env);
    expect(sh("stat -c %s inv/keep; cat inv/keep; test -e inv/new && echo new; test -e inv/later || echo no-later", mnt)).toBe("3\nonenew\nno-later\n");
    must(["--store", store, "snapshot", "create", "inv1"], env);
    expect(sh("ls .agentfs/snapshots/inv1/inv", mnt)).toBe("keep\nnew\n");
    must(["--store", store, "snapshot", "delete", "inv0", "inv1"], env);
    expect(sh("test -e .agentfs/snapshots/inv1 || echo gone; ls .agentfs/snapshots | grep -c '^inv' || true", mnt)).toBe("gone\n0\n");
    sh("rm -r inv", mnt);
  });

  it("fsck through the daemon runs in a worker thread on its own connection: clean, then a corrupt object (written by another connection) is named with exit 1", () => {
    sh("printf 'checked by fsck' > fsck.txt", mnt);
    const clean = cli(["--store", store, "fsck", "--json"], env);
    expect(clean.code).toBe(0);
    expect(JSON.parse(clean.stdout).ok).toBe(true);
    expect(log()).toMatch(/fsck: checking the store in a worker thread\n.*control: uid 0 pid \d+: fsck ok/);
    const s = Store.open(join(store, ".agentfs"));
    const row = s.manifest.db.prepare(`SELECT id, hash, data, codec FROM objects ORDER BY id DESC LIMIT 1`).get() as { id: number; hash: Buffer; data: Buffer; codec: number };
    try {
      s.manifest.db.prepare(`UPDATE objects SET data = ?, codec = 0 WHERE id = ?`).run(Buffer.from("garbage"), row.id);
      const bad = cli(["--store", store, "fsck"], env);
      expect(bad.code).toBe(1);
      expect(bad.stdout).toContain(`corrupt-object: object ${row.hash.toString("hex")}`);
    } finally {
      s.manifest.db.prepare(`UPDATE objects SET data = ?, codec = ? WHERE id = ?`).run(row.data, row.codec, row.id);
      s.close();
    }
    expect(cli(["--store", store, "fsck"], env).code).toBe(0);
    sh("rm fsck.txt", mnt);
  });

  it("gc through the daemon (mark in a worker, sweep in slices): a file deleted while a process holds it open keeps its bytes, and they go once it is closed", () => {
    const before = log().split("\n").length;
    // One shell holds the deleted file on fd 3 across the daemon's gc; the page cache is dropped so the
    // read after it reaches the daemon and the store.
    const out = spawnSync(
      "bash",
      [
        "-c",
        `set -e
head -c 400000 /dev/urandom > gcheld.bin
want=$(sha256sum < gcheld.bin)
exec 3< gcheld.bin
rm gcheld.bin
"$NODE" "$MAIN" --store "$STORE" gc --json > "$OUT"
sync; echo 3 > /proc/sys/vm/drop_caches
got=$(sha256sum <&3)
[ "$want" = "$got" ] && echo same`,
      ],
      { cwd: mnt, env: { ...process.env, ...env, NODE: process.execPath, MAIN, STORE: store, OUT: join(root, "gc1.json") }, timeout: 60_000 },
    );
    expect(out.stderr.toString()).toBe("");
    expect(out.stdout.toString()).toBe("same\n");
    expect(JSON.parse(readFileSync(join(root, "gc1.json"), "utf8"))).toHaveProperty("objectsRemoved");
    // Closed now (the shell exited): its chunks are garbage.
    const second = JSON.parse(must(["--store", store, "gc", "--json"], env));
    expect(second.objectsRemoved).toBeGreaterThanOrEqual(2);
    expect(second.bytesFreed).toBeGreaterThanOrEqual(400_000);
    expect(log().split("\n").slice(before - 1).join("\n")).toMatch(/control: uid 0 pid \d+: gc ok[\s\S]*control: uid 0 pid \d+: gc ok/);
    expect(JSON.parse(must(["--store", store, "fsck", "--json"], env)).ok).toBe(true);
  });

  it("another uid is refused: by the socket's mode (EACCES on connect), and by SO_PEERCRED when the mode would let it in", () => {
    const rec = record();
    chmodSync(root, 0o755);
    chmodSync(env.AGENTFS_RUNTIME_DIR!, 0o755);
    const byMode = cli(["--store", store, "stats"], env, 1000);
    expect(byMode.code).toBe(1);
    expect(byMode.stderr).toMatch(/EACCES: may not connect to control socket/);
    chmodSync(rec.control, 0o666);
    try {
      const byCred = cli(["--store", store, "stats"], env, 1000);
      expect(byCred.code).toBe(1);
      expect(byCred.stderr).toMatch(/EACCES: uid 1000 may not use the control socket/);
      expect(log()).toMatch(/control: refused peer uid 1000 pid \d+/);
    } finally {
      chmodSync(rec.control, 0o600);
      chmodSync(env.AGENTFS_RUNTIME_DIR!, 0o700);
      chmodSync(root, 0o700);
    }
    // root still gets through
    expect(cli(["--store", store, "stats"], env).code).toBe(0);
  });

  it("a killed daemon's record and socket: commands open the store directly, say so on stderr, and do not hang", () => {
    const rec = record();
    process.kill(rec.pid, "SIGKILL");
    const exited = () => {
      try {
        return readFileSync(`/proc/${rec.pid}/stat`, "utf8").includes(") Z");
      } catch {
        return true;
      }
    };
    for (let i = 0; i < 100 && !exited(); i++) spawnSync("sleep", ["0.05"]);
    expect(existsSync(rec.control)).toBe(true); // nothing removed it
    const r = cli(["--store", store, "snapshot", "list", "--json"], env);
    expect(r.code).toBe(0);
    expect(r.stderr).toMatch(/note: the mount daemon of .* \(pid \d+\) is gone; opening the store directly/);
    expect(JSON.parse(r.stdout).map((s: { name: string }) => s.name)).toEqual(["beside", "live", "base"]);
    // A record naming a live process that does not listen (pid reused): ECONNREFUSED, then direct.
    const file = join(env.AGENTFS_RUNTIME_DIR!, readdirSync(env.AGENTFS_RUNTIME_DIR!).find((x) => x.endsWith(".json"))!);
    writeFileSync(file, JSON.stringify({ ...rec, pid: process.pid }));
    const r2 = cli(["--store", store, "stats", "--json"], env);
    expect(r2.code).toBe(0);
    expect(r2.stderr).toMatch(/does not answer on .*\.sock \(ECONNREFUSED\); opening the store directly/);
    writeFileSync(file, JSON.stringify(rec));
    // umount clears the stale mount, the record and the socket, and keeps the log.
    const u = cli(["umount", mnt], env);
    expect(u.code).toBe(0);
    expect(fuseMounts(mnt)).toEqual([]);
    expect(readdirSync(env.AGENTFS_RUNTIME_DIR!).sort()).toEqual([rec.log.slice(rec.log.lastIndexOf("/") + 1)]);
  });

  it("umount keeps the daemon's log, whose last line holds the request stats", () => {
    mount("--no-allow-other");
    const rec = record();
    expect(rec.allowOther).toBe(false);
    expect(fuseMounts(mnt)[0]!.opts.split(",")).not.toContain("allow_other");
    sh("cat r.txt >/dev/null", mnt);
    expect(cli(["umount", mnt], env).code).toBe(0);
    const text = readFileSync(rec.log, "utf8");
    expect(text).toMatch(/unmounted after SIGTERM; requests: \{.*"getattr"/);
    expect(existsSync(rec.control)).toBe(false);
  });

  it("mount --lower: an overlay branch over a host directory; reads pass through, writes copy up, the host stays, diff shows it", () => {
    const host = join(root, "host");
    mkdirSync(join(host, "sub"), { recursive: true });
    writeFileSync(join(host, "a.txt"), "host a\n");
    writeFileSync(join(host, "sub", "b.txt"), "host b\n");
    mount("--branch", "ov", "--lower", host);
    const rec = record();
    expect(rec.lower).toBe(host);
    expect(sh("cat a.txt sub/b.txt", mnt)).toBe("host a\nhost b\n");
    must(["--store", store, "--branch", "ov", "snapshot", "create", "ov0"], env);
    sh("echo more >> a.txt && echo new > c.txt && rm sub/b.txt", mnt);
    expect(sh("cat a.txt", mnt)).toBe("host a\nmore\n");
    expect(readFileSync(join(host, "a.txt"), "utf8")).toBe("host a\n");
    expect(existsSync(join(host, "c.txt"))).toBe(false);
    expect(existsSync(join(host, "sub", "b.txt"))).toBe(true);
    const d = JSON.parse(must(["--store", store, "--branch", "ov", "diff", "--json"], env));
    expect(d.from).toEqual({ snapshot: "ov0" });
    expect(d.changes.map((c: { path: string; change: string }) => `${c.change} ${c.path}`)).toEqual(["modified /a.txt", "added /c.txt", "deleted /sub/b.txt"]);
    expect(log()).toMatch(/control: uid 0 pid \d+: diff ok/);
    const dry = JSON.parse(must(["--store", store, "--branch", "ov", "commit-lower", "-n", "--json"], env));
    expect(dry.changes.map((c: { path: string }) => c.path)).toEqual(["/a.txt", "/c.txt", "/sub/b.txt"]);
    expect(cli(["umount", mnt], env).code).toBe(0);
    // The branch exists now: the same host directory reuses it, another one is EINVAL.
    mount("--branch", "ov", "--lower", host);
    expect(sh("cat a.txt", mnt)).toBe("host a\nmore\n");
    expect(cli(["umount", mnt], env).code).toBe(0);
    const other = join(root, "host2");
    mkdirSync(other);
    const bad = cli(["mount", store, mnt, "--branch", "ov", "--lower", other], env);
    expect(bad.code).toBe(1);
    expect(bad.stderr).toMatch(/EINVAL: branch 'ov' sits over .*host, not .*host2/);
    expect(fuseMounts(mnt)).toEqual([]);
    const plain = cli(["mount", store, mnt, "--branch", "main", "--lower", host], env);
    expect(plain.code).toBe(1);
    expect(plain.stderr).toMatch(/EINVAL: branch 'main' is not an overlay and has content/);
    expect(cli(["mount", store, mnt, "--snapshot", "ov0", "--lower", host], env).code).toBe(2);
  });

  it("--store ram:NAME reaches the daemon of a RAM store (which has nothing on disk to open); ENOENT when none serves it", () => {
    const r = cli(["mount", "--ram", "ctl", mnt], env);
    expect(r.code).toBe(0);
    pids.push(record().pid);
    sh("printf ram > f.txt", mnt);
    expect(must(["--store", "ram:ctl", "snapshot", "create", "r1"], env)).toBe("created snapshot r1 of branch main\n");
    expect(sh("cat .agentfs/snapshots/r1/f.txt", mnt)).toBe("ram");
    expect(JSON.parse(must(["--store", "ram:ctl", "stats", "--json"], env)).tree.files).toBe(1);
    const none = cli(["--store", "ram:other", "stats"], env);
    expect(none.code).toBe(1);
    expect(none.stderr).toMatch(/ENOENT: no live mount daemon serves RAM store 'other'/);
    expect(cli(["umount", mnt], env).code).toBe(0);
  });
});
