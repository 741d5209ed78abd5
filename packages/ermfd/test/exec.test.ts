import fs from "node:fs";
import { afterEach, describe, expect, it } from "vitest";
import * as native from "@agentfs/native";
import { execStored, spawnStored } from "../src/index.js";
import { codeOf, freshStore, isLinux } from "./helpers.js";

/** Runs a stored program with stdout/stderr captured through pipes. */
async function runStored(afs: any, path: string, args: string[], env?: string[]): Promise<{ status: native.WaitStatus; out: string; err: string }> {
  const [or, ow] = native.pipe();
  const [er, ew] = native.pipe();
  let status: native.WaitStatus;
  try {
    status = await execStored(afs, path, args, { stdio: [-1, ow, ew], env });
  } finally {
    fs.closeSync(ow);
    fs.closeSync(ew);
  }
  const read = (fd: number) => {
    const chunks: Buffer[] = [];
    const b = Buffer.alloc(65536);
    for (let n; (n = fs.readSync(fd, b, 0, b.length, null)) > 0; ) chunks.push(Buffer.from(b.subarray(0, n)));
    fs.closeSync(fd);
    return Buffer.concat(chunks).toString();
  };
  return { status, out: read(or), err: read(er) };
}

describe.skipIf(!isLinux)("execStored (fexecve of a memfd)", () => {
  let cleanup: (() => Promise<void>) | undefined;
  afterEach(async () => {
    await cleanup?.();
    cleanup = undefined;
  });

  it("runs a stored copy of /bin/echo with arguments; nothing is written to disk", async () => {
    const s = await freshStore();
    cleanup = s.cleanup;
    await s.afs.fs.mkdir("/bin");
    await s.afs.fs.writeFile("/bin/echo", fs.readFileSync("/bin/echo"), { mode: 0o755 });
    const r = await runStored(s.afs, "/bin/echo", ["hello", "from", "agentfs"]);
    expect(r.err).toBe("");
    expect(r.status.exitCode).toBe(0);
    expect(r.out).toBe("hello from agentfs\n");
    // The running program's executable is the memfd, not a file on disk.
    await s.afs.fs.writeFile("/bin/sleep", fs.readFileSync("/bin/sleep"), { mode: 0o755 });
    const child = spawnStored(s.afs, "/bin/sleep", ["30"], { stdio: [-1, -1, -1] });
    try {
      let exe = "";
      for (let i = 0; i < 200 && !exe.startsWith("/memfd:"); i++) {
        exe = fs.readlinkSync(`/proc/${child.pid}/exe`);
        if (!exe.startsWith("/memfd:")) await new Promise((r) => setTimeout(r, 5));
      }
      expect(exe).toMatch(/^\/memfd:agentfs-exec:sleep \(deleted\)$/);
      expect(child.script).toBe(false);
    } finally {
      process.kill(child.pid, "SIGKILL");
      expect((await native.waitForExit(child.pid)).signal).toBe(9);
    }
  });

  it("runs a #! script (interpreter reads it through /dev/fd/N) and passes argv, env and exit status", async () => {
    const s = await freshStore();
    cleanup = s.cleanup;
    await s.afs.fs.writeFile("/hello.sh", '#!/bin/sh\necho "script $1 $GREETING"\necho "argv0=$0" >&2\nexit 7\n', { mode: 0o755 });
    const r = await runStored(s.afs, "/hello.sh", ["arg1"], ["GREETING=hi", "PATH=/usr/bin:/bin"]);
    expect(r.out).toBe("script arg1 hi\n");
    expect(r.err).toMatch(/^argv0=\/dev\/fd\/\d+\n$/);
    expect(r.status.exitCode).toBe(7);
    await s.afs.fs.writeFile("/py", "#!/usr/bin/env python3\nimport sys\nprint('py', sys.argv[1:])\n", { mode: 0o700 });
    const p = await runStored(s.afs, "/py", ["a", "b"], [`PATH=${process.env.PATH}`]);
    expect(p.out).toBe("py ['a', 'b']\n");
  });

  it("reports exec errors synchronously: EACCES without x bit, ENOEXEC for junk, ENOENT for a missing interpreter; FsError for paths", async () => {
    const s = await freshStore();
    cleanup = s.cleanup;
    await s.afs.fs.writeFile("/noexec", fs.readFileSync("/bin/echo"), { mode: 0o644 });
    await s.afs.fs.writeFile("/junk", Buffer.alloc(100, 1), { mode: 0o755 });
    await s.afs.fs.writeFile("/badinterp.sh", "#!/no/such/interpreter\n", { mode: 0o755 });
    await s.afs.fs.mkdir("/dir");
    expect(codeOf(() => spawnStored(s.afs, "/noexec"))).toBe("EACCES");
    expect(codeOf(() => spawnStored(s.afs, "/junk"))).toBe("ENOEXEC");
    expect(codeOf(() => spawnStored(s.afs, "/badinterp.sh"))).toBe("ENOENT");
    expect(codeOf(() => spawnStored(s.afs, "/missing"))).toBe("ENOENT");
    expect(codeOf(() => spawnStored(s.afs, "/dir"))).toBe("EISDIR");
  });
});
