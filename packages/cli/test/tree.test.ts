import { getAttributeSync, listAttributesSync, setAttributeSync } from "@napi-rs/xattr";
import { spawnSync } from "node:child_process";
import * as fs from "node:fs";
import { join } from "node:path";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { agentfs, agentfsJson, cleanup, initStore, tmp } from "./helpers.js";

interface Ent {
  type: string;
  perm: number;
  size: number;
  mtimeNs: bigint;
  ino: bigint;
  target?: string;
  data?: string;
  xattrs: Record<string, string>;
}

/** Everything the round trip must preserve, per relative path. */
function snapshotHost(root: string): Map<string, Ent> {
  const out = new Map<string, Ent>();
  const walk = (rel: string) => {
    for (const name of fs.readdirSync(join(root, rel)).sort()) {
      const r = rel ? `${rel}/${name}` : name;
      const p = join(root, r);
      const st = fs.lstatSync(p, { bigint: true });
      const type = st.isFile() ? "file" : st.isDirectory() ? "dir" : st.isSymbolicLink() ? "symlink" : "other";
      const xattrs: Record<string, string> = {};
      if (type !== "symlink") for (const n of listAttributesSync(p).filter((n) => n.startsWith("user."))) xattrs[n] = (getAttributeSync(p, n) ?? Buffer.alloc(0)).toString("hex");
      const e: Ent = { type, perm: Number(st.mode) & 0o7777, size: Number(st.size), mtimeNs: st.mtimeNs, ino: st.ino, xattrs };
      if (type === "symlink") e.target = fs.readlinkSync(p);
      if (type === "file") e.data = fs.readFileSync(p).toString("hex");
      out.set(r, e);
      if (type === "dir") walk(r);
    }
  };
  walk("");
  return out;
}

describe("import / export round trip", () => {
  let dir: string;
  let host: string;
  const run = (args: string[]) => agentfs(args, { cwd: dir });

  beforeAll(() => {
    dir = initStore();
    host = tmp("agentfs-cli-host-");
    const src = join(host, "src");
    fs.mkdirSync(join(src, "sub", "deeper"), { recursive: true });
    fs.writeFileSync(join(src, "plain.txt"), "plain text\n");
    const big = Buffer.alloc(2 * 1024 * 1024 + 3);
    for (let i = 0; i < big.length; i++) big[i] = (i * 31 + (i >> 12)) & 0xff;
    fs.writeFileSync(join(src, "sub", "big.bin"), big);
    fs.writeFileSync(join(src, "sub", "deeper", "exec.sh"), "#!/bin/sh\necho hi\n");
    fs.chmodSync(join(src, "sub", "deeper", "exec.sh"), 0o755);
    fs.writeFileSync(join(src, "private"), "secret");
    fs.chmodSync(join(src, "private"), 0o600);
    fs.writeFileSync(join(src, "empty"), "");
    fs.symlinkSync("plain.txt", join(src, "link-rel"));
    fs.symlinkSync("/nonexistent/dangling", join(src, "link-dangling"));
    fs.symlinkSync("sub", join(src, "link-dir"));
    fs.linkSync(join(src, "plain.txt"), join(src, "sub", "hardlink.txt"));
    setAttributeSync(join(src, "plain.txt"), "user.comment", Buffer.from("hello xattr"));
    setAttributeSync(join(src, "sub"), "user.dirattr", Buffer.from([0, 1, 2, 255]));
    fs.chmodSync(join(src, "sub"), 0o750);
    // Distinct, sub-second mtimes (set last, children before parents).
    const t = (s: number) => new Date(1_600_000_000_000 + s * 1000 + 123);
    fs.utimesSync(join(src, "plain.txt"), t(1), t(2));
    fs.utimesSync(join(src, "sub", "big.bin"), t(3), t(4));
    fs.utimesSync(join(src, "sub", "deeper", "exec.sh"), t(5), t(6));
    fs.lutimesSync(join(src, "link-rel"), t(7), t(8));
    fs.utimesSync(join(src, "sub", "deeper"), t(9), t(10));
    fs.utimesSync(join(src, "sub"), t(11), t(12));
  });
  afterAll(() => {
    cleanup(dir);
    cleanup(host);
  });

  it("import reports what it copied (text and --json) and the store sees the tree", () => {
    const rep = agentfsJson(["import", join(host, "src"), "/imported", "--json"], { cwd: dir });
    expect(rep).toMatchObject({ operation: "import", path: "/imported", target: "branch main", files: 5, dirs: 2, symlinks: 3, hardlinks: 1, skipped: [] });
    expect(rep.bytes).toBe(11 + (2 * 1024 * 1024 + 3) + 18 + 6 + 0);
    expect(typeof rep.ms).toBe("number");
    expect(run(["cat", "/imported/sub/hardlink.txt"]).stdout).toBe("plain text\n");
    expect(agentfsJson(["stat", "--json", "/imported/link-rel"], { cwd: dir })).toMatchObject({ type: "symlink", target: "plain.txt" });
    const st = agentfsJson(["stat", "--json", "/imported/plain.txt"], { cwd: dir });
    expect(st.nlink).toBe(2);
    expect(Buffer.from(st.xattrs["user.comment"], "base64").toString()).toBe("hello xattr");
    expect(st.mtimeNs).toBe(String(fs.lstatSync(join(host, "src", "plain.txt"), { bigint: true }).mtimeNs)); // exact ns
    expect(agentfsJson(["stat", "--json", "/imported/sub/deeper/exec.sh"], { cwd: dir }).perm).toBe("0755");
    expect(run(["stat", "/imported/plain.txt"]).stdout).toContain('Xattr: user.comment="hello xattr"');

    const again = run(["import", join(host, "src"), "/second"]);
    expect(again.code).toBe(0);
    expect(again.stdout).toMatch(/^imported .* into branch main:\/second: 5 files, 2 directories, 3 symlinks, 1 hard links, 2\.0 MiB in \d+\.\d\d s\n$/);
    expect(again.stderr).toBe(""); // no progress bar when stderr is not a terminal
  });

  it("export of the imported tree equals the original: bytes, modes, mtimes, symlinks, hard links, xattrs", () => {
    const out = join(host, "out");
    const rep = agentfsJson(["export", "/imported", out, "--json"], { cwd: dir });
    expect(rep).toMatchObject({ operation: "export", files: 5, dirs: 2, symlinks: 3, hardlinks: 1 });
    const a = snapshotHost(join(host, "src"));
    const b = snapshotHost(out);
    expect([...b.keys()]).toEqual([...a.keys()]);
    for (const [p, e] of a) {
      const x = b.get(p)!;
      expect({ p, type: x.type, perm: x.perm, size: x.size, target: x.target, data: x.data, xattrs: x.xattrs }).toEqual({
        p,
        type: e.type,
        perm: e.type === "symlink" ? x.perm : e.perm,
        size: e.size,
        target: e.target,
        data: e.data,
        xattrs: e.xattrs,
      });
      // exportTree sets times through float seconds: allow 1 µs.
      const d = x.mtimeNs > e.mtimeNs ? x.mtimeNs - e.mtimeNs : e.mtimeNs - x.mtimeNs;
      expect(d <= 1000n, `${p} mtime ${x.mtimeNs} vs ${e.mtimeNs}`).toBe(true);
    }
    expect(b.get("sub/hardlink.txt")!.ino).toBe(b.get("plain.txt")!.ino);
    expect(b.get("plain.txt")!.ino).not.toBe(b.get("private")!.ino);
  });

  it("FIFOs and device nodes are imported and exported as such (mknod on the host)", () => {
    const sp = join(host, "special");
    fs.mkdirSync(sp);
    expect(spawnSync("mkfifo", ["-m", "640", join(sp, "fifo")]).status).toBe(0);
    const root = process.getuid?.() === 0;
    if (root) expect(spawnSync("mknod", ["-m", "604", join(sp, "null"), "c", "1", "3"]).status).toBe(0);
    const n = root ? 2 : 1;
    const rep = agentfsJson(["import", sp, "/special", "--json"], { cwd: dir });
    expect(rep).toMatchObject({ files: 0, specials: n, skipped: [] });
    expect(run(["import", sp, "/special2"]).stdout).toContain(`0 hard links, ${n} FIFOs/sockets/devices,`);
    expect(agentfsJson(["stat", "--json", "/special/fifo"], { cwd: dir })).toMatchObject({ type: "fifo", perm: "0640" });
    const out = join(host, "special-out");
    expect(agentfsJson(["export", "/special", out, "--json"], { cwd: dir })).toMatchObject({ specials: n, skipped: [] });
    const f = fs.lstatSync(join(out, "fifo"));
    expect(f.isFIFO()).toBe(true);
    expect(f.mode & 0o7777).toBe(0o640);
    // times reach the host as whole µs (hostTimeSec)
    const want = fs.lstatSync(join(sp, "fifo"), { bigint: true }).mtimeNs;
    expect(fs.lstatSync(join(out, "fifo"), { bigint: true }).mtimeNs).toBe(want - (want % 1000n));
    if (root) {
      const d = fs.lstatSync(join(out, "null"));
      expect(d.isCharacterDevice()).toBe(true);
      expect(d.rdev).toBe(fs.statSync("/dev/null").rdev);
      expect(d.mode & 0o7777).toBe(0o604);
    }
  });

  it("export refuses a non-empty directory unless --overwrite; exports a snapshot", () => {
    const out = join(host, "out2");
    fs.mkdirSync(out);
    fs.writeFileSync(join(out, "existing"), "x");
    const r = run(["export", "/imported", out]);
    expect(r.code).toBe(1);
    expect(r.stderr).toMatch(/^agentfs: EEXIST/);
    expect(run(["export", "--overwrite", "/imported", out]).code).toBe(0);
    expect(fs.readFileSync(join(out, "plain.txt"), "utf8")).toBe("plain text\n");
    expect(fs.readFileSync(join(out, "existing"), "utf8")).toBe("x");

    expect(run(["snapshot", "create", "s"]).code).toBe(0);
    expect(run(["rm", "-r", "/imported/sub"]).code).toBe(0);
    const snapOut = join(host, "snap");
    const e = run(["--snapshot", "s", "export", "/imported", snapOut]);
    expect(e.code).toBe(0);
    expect(e.stdout).toMatch(/^exported snapshot s:\/imported to /);
    expect(fs.readFileSync(join(snapOut, "sub", "deeper", "exec.sh"), "utf8")).toBe("#!/bin/sh\necho hi\n");
  });

  it("import/export errors: missing host dir, file as source, store path that is not a directory", () => {
    const missing = run(["import", join(host, "nope")]);
    expect(missing.code).toBe(1);
    expect(missing.stderr).toMatch(/^agentfs: ENOENT/);
    const file = run(["import", join(host, "src", "plain.txt")]);
    expect(file.code).toBe(1);
    expect(file.stderr).toMatch(/^agentfs: ENOTDIR/);
    const notDir = run(["export", "/imported/plain.txt", join(host, "x")]);
    expect(notDir.code).toBe(1);
    expect(notDir.stderr).toMatch(/^agentfs: ENOTDIR/);
    const noSrc = run(["export", "/nope", join(host, "y")]);
    expect(noSrc.code).toBe(1);
    expect(noSrc.stderr).toMatch(/^agentfs: ENOENT/);
    expect(run(["import"]).code).toBe(2);
    expect(run(["export", "/"]).code).toBe(2);
  });
});
