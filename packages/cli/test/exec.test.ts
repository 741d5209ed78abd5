import { readFileSync } from "node:fs";
import { afterAll, describe, expect, it } from "vitest";
import { agentfs, cleanup, initStore } from "./helpers.js";

describe.skipIf(process.platform !== "linux")("agentfs exec (fexecve of a stored program)", () => {
  const dir = initStore();
  afterAll(() => cleanup(dir));
  const ok = (args: string[], input?: string | Buffer) => {
    const r = agentfs(args, { cwd: dir, input });
    if (r.code !== 0) throw new Error(`agentfs ${args.join(" ")}: ${r.stderr}`);
    return r;
  };
  ok(["mkdir", "/bin"]);
  ok(["write", "/bin/echo"], readFileSync("/bin/echo"));
  ok(["chmod", "0755", "/bin/echo"]);
  ok(["write", "/run.sh"], '#!/bin/sh\necho "script got: $*"\nexit 3\n');
  ok(["chmod", "0755", "/run.sh"]);
  ok(["write", "/plain.txt"], "not a program\n");

  it("runs a stored copy of /bin/echo with its arguments (options after -- pass through)", () => {
    const r = agentfs(["exec", "/bin/echo", "hello", "agentfs"], { cwd: dir });
    expect(r).toMatchObject({ code: 0, stdout: "hello agentfs\n", stderr: "" });
    expect(agentfs(["exec", "/bin/echo", "--", "-n", "no newline"], { cwd: dir }).stdout).toBe("no newline");
  });

  it("runs a #! script and exits with its status", () => {
    const r = agentfs(["exec", "/run.sh", "a", "b"], { cwd: dir });
    expect(r.stdout).toBe("script got: a b\n");
    expect(r.code).toBe(3);
  });

  it("fails with the errno for a missing path, a directory or a non-executable file", () => {
    const missing = agentfs(["exec", "/nope"], { cwd: dir });
    expect(missing.code).toBe(1);
    expect(missing.stderr).toMatch(/ENOENT/);
    expect(agentfs(["exec", "/bin"], { cwd: dir }).stderr).toMatch(/EISDIR/);
    expect(agentfs(["exec", "/plain.txt"], { cwd: dir }).stderr).toMatch(/EACCES/);
    expect(agentfs(["exec"], { cwd: dir }).code).toBe(2);
  });
});
