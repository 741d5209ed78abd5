import fs from "node:fs";
import { afterEach, describe, expect, it } from "vitest";
import * as n from "../src/index.js";
import { expectErrno, isLinux, readAll } from "./helpers.js";

const open: number[] = [];
function track(...fds: number[]): void {
  open.push(...fds);
}
function closeQuiet(fd: number): void {
  try {
    fs.closeSync(fd);
  } catch {
    /* already closed */
  }
}
afterEach(() => {
  for (const fd of open.splice(0)) closeQuiet(fd);
});

/** A memfd holding a copy of `src` (a binary or a script). */
function memfdCopyOf(contents: Buffer, flags: number): number {
  const fd = n.memfdCreate("exec", flags);
  track(fd);
  fs.writeSync(fd, contents, 0, contents.length, 0);
  return fd;
}

/** Runs `spawn` with a pipe as stdout/stderr; returns the output and the exit status. */
async function runCapture(
  spawn: (stdio: [number, number, number]) => number,
): Promise<{ stdout: string; stderr: string; status: n.WaitStatus }> {
  const [outR, outW] = n.pipe();
  const [errR, errW] = n.pipe();
  track(outR, errR);
  let pid: number;
  try {
    pid = spawn([0, outW, errW]);
  } finally {
    fs.closeSync(outW);
    fs.closeSync(errW);
  }
  const status = await n.waitForExit(pid);
  // The child has exited and our write ends are closed: reads end at EOF.
  return { stdout: readAll(outR).toString(), stderr: readAll(errR).toString(), status };
}

const echo = fs.readFileSync(fs.existsSync("/bin/echo") ? "/bin/echo" : "/usr/bin/echo");

describe.skipIf(!isLinux)("spawnFexecve / spawnExecveat", () => {
  it("fexecve of a memfd holding a copy of /bin/echo prints its argv to a pipe and exits 0", async () => {
    const fd = memfdCopyOf(echo, n.MFD_CLOEXEC);
    const r = await runCapture((stdio) => n.spawnFexecve(fd, ["echo", "hello", "from", "memfd"], null, { stdio }));
    expect(r.stdout).toBe("hello from memfd\n");
    expect(r.stderr).toBe("");
    expect(r.status.exitCode).toBe(0);
    expect(r.status.signal).toBeNull();
  });

  it("execveat(AT_EMPTY_PATH) runs the same binary", async () => {
    const fd = memfdCopyOf(echo, n.MFD_CLOEXEC);
    const r = await runCapture((stdio) => n.spawnExecveat(fd, ["echo", "-n", "via execveat"], [], { stdio }));
    expect(r.stdout).toBe("via execveat");
    expect(r.status.exitCode).toBe(0);
  });

  it("passes envp (and only envp) to the child", async () => {
    const sh = memfdCopyOf(fs.readFileSync("/bin/sh"), n.MFD_CLOEXEC);
    const r = await runCapture((stdio) =>
      n.spawnFexecve(sh, ["sh", "-c", 'echo "$AGENTFS_X|${HOME-unset}"; exit 3'], ["AGENTFS_X=42", "PATH=/usr/bin:/bin"], { stdio }),
    );
    expect(r.stdout).toBe("42|unset\n");
    expect(r.status.exitCode).toBe(3);
  });

  it("a #!/bin/sh script runs when its fd survives the exec (no MFD_CLOEXEC, or listed in inheritFds)", async () => {
    const script = Buffer.from('#!/bin/sh\necho "script args: $*"\nexit 7\n');
    // Without MFD_CLOEXEC: the kernel hands /dev/fd/N to /bin/sh, which can open it.
    const fd = memfdCopyOf(script, 0);
    const r = await runCapture((stdio) => n.spawnFexecve(fd, ["myscript", "a", "b"], null, { stdio }));
    expect(r.stdout).toBe("script args: a b\n");
    expect(r.status.exitCode).toBe(7);

    // MFD_CLOEXEC, but cleared in the child through inheritFds: also works, via execveat too.
    const fd2 = memfdCopyOf(script, n.MFD_CLOEXEC);
    const r2 = await runCapture((stdio) => n.spawnExecveat(fd2, ["myscript", "c"], null, { stdio, inheritFds: [fd2] }));
    expect(r2.stdout).toBe("script args: c\n");
    expect(r2.status.exitCode).toBe(7);
  });

  it("a #!/bin/sh script on a close-on-exec fd is refused by the kernel with ENOENT (sync, both calls)", () => {
    // execveat(2): the interpreter would get /dev/fd/N, which is gone after
    // the exec closes the fd, so the kernel fails the exec with ENOENT.
    const fd = memfdCopyOf(Buffer.from("#!/bin/sh\necho never\n"), n.MFD_CLOEXEC);
    expectErrno(() => n.spawnFexecve(fd, ["myscript"]), "ENOENT", "fexecve");
    expectErrno(() => n.spawnExecveat(fd, ["myscript"]), "ENOENT", "execveat");
  });

  it("stdio defaults to ours, inherited even where close-on-exec, with our flags unchanged", async () => {
    const isOpen = (fd: number): boolean => {
      try {
        fs.fstatSync(fd);
        return true;
      } catch {
        return false;
      }
    };
    const ours = [0, 1, 2].filter(isOpen);
    const flagsBefore = ours.map((fd) => n.getCloexec(fd));
    // Make one of them close-on-exec for sure; the child must still get it.
    if (ours.includes(2)) n.setCloexec(2, true);
    const [r, w] = n.pipe();
    track(r);
    const sh = memfdCopyOf(fs.readFileSync("/bin/sh"), n.MFD_CLOEXEC);
    const probe = `for i in 0 1 2; do [ -e /proc/self/fd/$i ] && printf "$i " >/proc/self/fd/${w}; done; exit 0`;
    const pid = n.spawnFexecve(sh, ["sh", "-c", probe], null, { inheritFds: [w] });
    fs.closeSync(w);
    expect((await n.waitForExit(pid)).exitCode).toBe(0);
    const seen = readAll(r).toString().trim().split(" ").filter(Boolean).map(Number);
    expect(seen).toEqual(ours);
    if (ours.includes(2)) n.setCloexec(2, flagsBefore[ours.indexOf(2)]!);
    expect(ours.map((fd) => n.getCloexec(fd))).toEqual(flagsBefore);
  });

  it("inheritFds hands an extra close-on-exec fd to the child under the same number", async () => {
    const data = n.memfdCreate("payload", n.MFD_CLOEXEC);
    track(data);
    fs.writeSync(data, Buffer.from("payload bytes"), 0, 13, 0);
    const sh = memfdCopyOf(fs.readFileSync("/bin/sh"), n.MFD_CLOEXEC);
    const cmd = `cat /proc/self/fd/${data} 2>/dev/null || echo missing`;
    const without = await runCapture((stdio) => n.spawnFexecve(sh, ["sh", "-c", cmd], null, { stdio }));
    expect(without.stdout).toBe("missing\n");
    const withFd = await runCapture((stdio) =>
      n.spawnFexecve(sh, ["sh", "-c", cmd], null, { stdio, inheritFds: [data] }),
    );
    expect(withFd.stdout).toBe("payload bytes");
    expect(n.getCloexec(data)).toBe(true); // unchanged in the parent
  });

  it("stdio slots may be swapped (stdout <-> stderr) without clobbering each other", async () => {
    const sh = memfdCopyOf(fs.readFileSync("/bin/sh"), n.MFD_CLOEXEC);
    const r = await runCapture(([i, o, e]) =>
      n.spawnFexecve(sh, ["sh", "-c", "echo out; echo err >&2"], null, { stdio: [i, e, o] }),
    );
    expect(r.stdout).toBe("err\n");
    expect(r.stderr).toBe("out\n");
  });

  it("resets signal dispositions: the child does not inherit Node's ignored SIGPIPE", async () => {
    const sh = memfdCopyOf(fs.readFileSync("/bin/sh"), n.MFD_CLOEXEC);
    const r = await runCapture((stdio) =>
      n.spawnFexecve(sh, ["sh", "-c", "grep -E '^Sig(Ign|Blk):' /proc/self/status"], null, { stdio }),
    );
    const ign = BigInt("0x" + /SigIgn:\s*([0-9a-f]+)/.exec(r.stdout)![1]);
    const blk = BigInt("0x" + /SigBlk:\s*([0-9a-f]+)/.exec(r.stdout)![1]);
    const SIGPIPE = 13n;
    expect(ign & (1n << (SIGPIPE - 1n))).toBe(0n);
    expect(blk).toBe(0n);
  });

  it("reports a signal death and exit codes through waitForExit / waitpid", async () => {
    const sh = memfdCopyOf(fs.readFileSync("/bin/sh"), n.MFD_CLOEXEC);
    const pid = n.spawnFexecve(sh, ["sh", "-c", "kill -KILL $$"]);
    const st = await n.waitForExit(pid);
    expect(st).toMatchObject({ pid, exitCode: null, signal: 9 });

    const pid2 = n.spawnFexecve(sh, ["sh", "-c", "sleep 0.2; exit 42"]);
    expect(n.waitpid(pid2, n.WNOHANG)).toBeNull();
    const st2 = n.waitpid(pid2); // blocking form
    expect(st2).toMatchObject({ pid: pid2, exitCode: 42, signal: null });
    expectErrno(() => n.waitpid(pid2, n.WNOHANG), "ECHILD", "waitpid");
    await expect(n.waitForExit(pid2)).rejects.toMatchObject({ code: "ECHILD" });
  });

  it("exec failures are thrown synchronously with the child's errno", () => {
    expectErrno(() => n.spawnFexecve(987654, ["x"]), "EBADF", "fexecve");
    const junk = memfdCopyOf(Buffer.from("not an executable\n"), n.MFD_CLOEXEC);
    expectErrno(() => n.spawnFexecve(junk, ["junk"]), "ENOEXEC", "fexecve");
    const missingInterp = memfdCopyOf(Buffer.from("#!/nonexistent/interpreter\n"), 0);
    expectErrno(() => n.spawnExecveat(missingInterp, ["x"]), "ENOENT", "execveat");
    // A regular file without the x bit, opened read-only.
    const p = `/tmp/agentfs-noexec-${process.pid}`;
    fs.writeFileSync(p, echo, { mode: 0o644 });
    const fd = fs.openSync(p, "r");
    track(fd);
    fs.unlinkSync(p);
    expectErrno(() => n.spawnFexecve(fd, ["echo"]), "EACCES", "fexecve");
    expect(() => n.spawnFexecve(fd, [])).toThrow(TypeError);
    // Linux 6.3+: MFD_NOEXEC_SEAL makes a memfd that can never be executed.
    let noexec: number | undefined;
    try {
      noexec = n.memfdCreate("noexec", n.MFD_NOEXEC_SEAL | n.MFD_CLOEXEC);
    } catch (e) {
      if ((e as NodeJS.ErrnoException).code !== "EINVAL") throw e; // older kernel
    }
    if (noexec !== undefined) {
      track(noexec);
      fs.writeSync(noexec, echo, 0, echo.length, 0);
      expect(n.getSeals(noexec) & n.F_SEAL_EXEC).toBe(n.F_SEAL_EXEC);
      expectErrno(() => n.spawnFexecve(noexec, ["echo"]), "EACCES", "fexecve");
    }
  });
});

describe.skipIf(isLinux)("spawnFexecve / spawnExecveat off Linux", () => {
  it("throw ENOSYS", () => {
    expectErrno(() => n.spawnExecveat(0, ["x"]), "ENOSYS", "execveat");
    expectErrno(() => n.spawnFexecve(0, ["x"]), "ENOSYS", "fexecve");
  });
});
