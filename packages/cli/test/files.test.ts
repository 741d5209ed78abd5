import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { join } from "node:path";
import { AgentFS, S_IFCHR, S_IFIFO, S_IFSOCK } from "@agentfs/core";
import { agentfs, agentfsJson, cleanup, initStore } from "./helpers.js";

describe("file commands", () => {
  let dir: string;
  const run = (args: string[], input?: string | Buffer) => agentfs(args, { cwd: dir, input });
  const json = (args: string[], input?: string) => agentfsJson(args, { cwd: dir, input });

  beforeAll(() => {
    dir = initStore();
  });
  afterAll(() => cleanup(dir));

  it("write from stdin, then cat returns the same bytes (binary-safe, large)", () => {
    const data = Buffer.alloc(3 * 1024 * 1024 + 17);
    for (let i = 0; i < data.length; i++) data[i] = (i * 7919) & 0xff;
    expect(run(["write", "/big.bin"], data).code).toBe(0);
    const r = run(["cat", "/big.bin"]);
    expect(r.code).toBe(0);
    expect(r.raw.equals(data)).toBe(true);

    expect(run(["write", "/hello.txt"], "hello\n").code).toBe(0);
    expect(run(["write", "-a", "/hello.txt"], "world\n").code).toBe(0);
    expect(run(["cat", "/hello.txt"]).stdout).toBe("hello\nworld\n");
    expect(run(["write", "/hello.txt"], "replaced\n").code).toBe(0);
    expect(run(["cat", "hello.txt"]).stdout).toBe("replaced\n");
    const w = json(["write", "--json", "-m", "0600", "/secret"], "x");
    expect(w).toEqual({ path: "/secret", bytes: 1 });
    expect(json(["stat", "--json", "/secret"]).perm).toBe("0600");
  });

  it("mkdir (-p, -m), ls (-a, -l, -d, -R, --json)", () => {
    expect(run(["mkdir", "/d"]).code).toBe(0);
    expect(run(["mkdir", "-p", "/d/e/f", "/g"]).code).toBe(0);
    expect(run(["mkdir", "-p", "/d/e"]).code).toBe(0); // exists: fine with -p
    const again = run(["mkdir", "/d"]);
    expect(again.code).toBe(1);
    expect(again.stderr).toMatch(/^agentfs: EEXIST/);
    expect(run(["mkdir", "-m", "0700", "/private"]).code).toBe(0);
    expect(json(["stat", "--json", "/private"]).perm).toBe("0700");
    expect(run(["write", "/d/.hidden"], "h").code).toBe(0);
    expect(run(["write", "/d/visible"], "v").code).toBe(0);

    expect(run(["ls", "/d"]).stdout).toBe("e\nvisible\n");
    expect(run(["ls", "-a", "/d"]).stdout).toBe(".hidden\ne\nvisible\n");
    const long = run(["ls", "-l", "/d"]).stdout.trim().split("\n");
    expect(long[0]).toMatch(/^drwx.* e$/);
    expect(long[1]).toMatch(/^-rw.* 1 \d{4}-\d\d-\d\d \d\d:\d\d visible$/);
    expect(run(["ls", "-d", "/d"]).stdout).toBe("/d\n");
    expect(run(["ls", "-R", "/d"]).stdout).toBe("/d:\ne\nvisible\n\n/d/e:\nf\n\n/d/e/f:\n");

    const entries = json(["ls", "--json", "-a", "/d"]);
    expect(entries.map((e: any) => [e.name, e.path, e.type])).toEqual([
      [".hidden", "/d/.hidden", "file"],
      ["e", "/d/e", "dir"],
      ["visible", "/d/visible", "file"],
    ]);
    const v = entries[2];
    expect(v).toMatchObject({ size: 1, nlink: 1, modeString: expect.stringMatching(/^-/) });
    expect(typeof v.mode).toBe("number");
    expect(typeof v.mtimeNs).toBe("string");
    expect(new Date(v.mtime).getTime()).toBeGreaterThan(0);
  });

  it("ls -l and stat name special files (made by mknod through the SDK or a mount)", async () => {
    const afs = await AgentFS.open(join(dir, ".agentfs"));
    try {
      afs.core.mkdir("/sp");
      afs.core.mknod("/sp/fifo", S_IFIFO | 0o644);
      afs.core.mknod("/sp/null", S_IFCHR | 0o644, (1 << 8) | 3);
      afs.core.mknod("/sp/sock", S_IFSOCK | 0o644);
    } finally {
      await afs.close();
    }
    const long = run(["ls", "-l", "/sp"]).stdout.trim().split("\n");
    expect(long.map((l) => l[0] + " " + l.split(" ").pop())).toEqual(["p fifo", "c null", "s sock"]);
    expect(run(["stat", "/sp/null"]).stdout).toMatch(/Type: character special file/);
    expect(json(["stat", "--json", "/sp/fifo"]).type).toBe("fifo");
    const cat = run(["cat", "/sp/fifo"]);
    expect([cat.code, cat.stderr]).toEqual([1, expect.stringMatching(/^agentfs: ENXIO/)]);
  });

  it("ln -s and ln create symlinks and hard links; stat shows them", () => {
    expect(run(["write", "/target.txt"], "T").code).toBe(0);
    expect(run(["ln", "-s", "target.txt", "/sym"]).code).toBe(0);
    expect(run(["ln", "/target.txt", "/hard"]).code).toBe(0);
    expect(run(["ln", "/target.txt", "/d"]).code).toBe(0); // into a directory
    const sym = json(["stat", "--json", "/sym"]);
    expect(sym).toMatchObject({ type: "symlink", target: "target.txt", path: "/sym" });
    expect(json(["stat", "--json", "-L", "/sym"])).toMatchObject({ type: "file", size: 1 });
    const [t, h, inDir] = json(["stat", "--json", "/target.txt", "/hard", "/d/target.txt"]);
    expect(h.ino).toBe(t.ino);
    expect(inDir.ino).toBe(t.ino);
    expect(t.nlink).toBe(3);
    expect(run(["cat", "/sym"]).stdout).toBe("T");
    expect(run(["ls", "-l", "/sym"]).stdout).toMatch(/^lrwxrwxrwx .* \/sym -> target\.txt\n$/);
    const human = run(["stat", "/sym"]).stdout;
    expect(human).toContain("File: /sym -> target.txt");
    expect(human).toContain("Type: symbolic link");
    const exists = run(["ln", "-s", "x", "/sym"]);
    expect(exists.code).toBe(1);
    expect(exists.stderr).toContain("EEXIST");
    expect(run(["ln", "-s", "-f", "other.txt", "/sym"]).code).toBe(0);
    expect(json(["stat", "--json", "/sym"]).target).toBe("other.txt");
  });

  it("chmod with octal and symbolic modes, and -R", () => {
    expect(run(["write", "/m.sh"], "#!/bin/sh\n").code).toBe(0);
    expect(run(["chmod", "644", "/m.sh"]).code).toBe(0);
    expect(json(["stat", "--json", "/m.sh"]).perm).toBe("0644");
    expect(run(["chmod", "u+x,g+w", "/m.sh"]).code).toBe(0);
    expect(json(["stat", "--json", "/m.sh"]).perm).toBe("0764");
    expect(run(["chmod", "go-rwx", "/m.sh"]).code).toBe(0);
    expect(json(["stat", "--json", "/m.sh"]).perm).toBe("0700");
    expect(run(["chmod", "a=rX", "/m.sh"]).code).toBe(0);
    expect(json(["stat", "--json", "/m.sh"]).perm).toBe("0555");
    expect(run(["chmod", "4755", "/m.sh"]).code).toBe(0);
    expect(json(["stat", "--json", "/m.sh"]).modeString).toBe("-rwsr-xr-x");
    expect(run(["chmod", "-R", "go-rwx", "/g"]).code).toBe(0);
    expect(json(["stat", "--json", "/g"]).perm).toBe("0700");
    const bad = run(["chmod", "u+q", "/m.sh"]);
    expect(bad.code).toBe(2);
    expect(bad.stderr).toMatch(/^agentfs: invalid mode 'u\+q'/);
    const missing = run(["chmod", "644", "/nope"]);
    expect(missing.code).toBe(1);
    expect(missing.stderr).toMatch(/^agentfs: ENOENT: .*'\/nope'/);
  });

  it("mv renames and moves into directories", () => {
    expect(run(["write", "/a1"], "1").code).toBe(0);
    expect(run(["write", "/a2"], "2").code).toBe(0);
    expect(run(["mv", "/a1", "/b1"]).code).toBe(0);
    expect(run(["cat", "/b1"]).stdout).toBe("1");
    expect(run(["mkdir", "/into"]).code).toBe(0);
    expect(run(["mv", "/b1", "/a2", "/into"]).code).toBe(0);
    expect(run(["ls", "/into"]).stdout).toBe("a2\nb1\n");
    const notDir = run(["mv", "/into/a2", "/into/b1", "/hello.txt"]);
    expect(notDir.code).toBe(1);
    expect(notDir.stderr).toContain("ENOTDIR");
    const missing = run(["mv", "/nope", "/x"]);
    expect(missing.code).toBe(1);
    expect(missing.stderr).toContain("ENOENT");
    expect(run(["mv", "/only-one"]).code).toBe(2);
  });

  it("rm removes files, refuses directories without -r, -f ignores missing paths", () => {
    expect(run(["mkdir", "-p", "/rmme/sub"]).code).toBe(0);
    expect(run(["write", "/rmme/sub/f"], "f").code).toBe(0);
    expect(run(["write", "/rmfile"], "f").code).toBe(0);
    expect(run(["rm", "/rmfile"]).code).toBe(0);
    expect(run(["stat", "/rmfile"]).code).toBe(1);
    const isDir = run(["rm", "/rmme"]);
    expect(isDir.code).toBe(1);
    expect(isDir.stderr).toMatch(/^agentfs: EISDIR/);
    expect(run(["rm", "-r", "/rmme"]).code).toBe(0);
    const gone = run(["ls", "/rmme"]);
    expect(gone.code).toBe(1);
    expect(gone.stderr).toMatch(/^agentfs: ENOENT/);
    const missing = run(["rm", "/nope"]);
    expect(missing.code).toBe(1);
    expect(missing.stderr).toContain("ENOENT");
    expect(run(["rm", "-f", "/nope"]).code).toBe(0);
    expect(run(["rm", "-rf", "/"]).code).toBe(1);
    expect(run(["ls", "/hello.txt"]).code).toBe(0); // nothing was removed
  });

  it("errors: operation errors exit 1 with the errno code; usage errors exit 2", () => {
    const cat = run(["cat", "/does/not/exist"]);
    expect(cat.code).toBe(1);
    expect(cat.stderr).toMatch(/^agentfs: ENOENT: no such file or directory, open '\/does\/not\/exist'/);
    expect(cat.stdout).toBe("");
    const catDir = run(["cat", "/d"]);
    expect(catDir.code).toBe(1);
    expect(catDir.stderr).toContain("EISDIR");
    for (const args of [["frobnicate"], ["ls", "--bogus"], ["cat"], ["write"], ["stat", "/a", "--no-such"], ["snapshot", "create"], [], ["mkdir", "-m", "rwx", "/z"]]) {
      const r = run(args);
      expect(r.code, `agentfs ${args.join(" ")}`).toBe(2);
      expect(r.stderr, `agentfs ${args.join(" ")}`).not.toBe("");
    }
    const both = run(["--branch", "main", "--snapshot", "x", "ls"]);
    expect(both.code).toBe(2);
    expect(both.stderr).toContain("--branch and --snapshot");
  });

  it("--help works for the program and every command, with exit 0", () => {
    const top = run(["--help"]);
    expect(top.code).toBe(0);
    for (const c of ["init", "import", "export", "ls", "cat", "write", "rm", "mv", "mkdir", "chmod", "ln", "stat", "snapshot", "branch", "restore", "diff", "gc", "fsck", "stats"]) {
      expect(top.stdout).toContain(c);
      const r = run([c, "--help"]);
      expect(r.code, c).toBe(0);
      expect(r.stdout, c).toMatch(new RegExp(`^Usage: agentfs ${c}`));
    }
    for (const sub of [["snapshot", "create"], ["snapshot", "list"], ["branch", "checkout"], ["branch", "delete"]]) {
      const r = run([...sub, "--help"]);
      expect(r.code).toBe(0);
      expect(r.stdout).toMatch(new RegExp(`^Usage: agentfs ${sub.join(" ")}`));
    }
    expect(run(["--version"]).stdout.trim()).toMatch(/^\d+\.\d+\.\d+$/);
  });
});
