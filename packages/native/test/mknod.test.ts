/**
 * mknod(2) through the addon: FIFOs carry data between processes, device
 * nodes keep their numbers (as root), sockets are nodes; errors keep the
 * errno and the path.
 */
import { spawnSync } from "node:child_process";
import fs from "node:fs";
import path from "node:path";
import { afterAll, describe, expect, it } from "vitest";
import * as n from "../src/index.js";
import { expectErrno, tmpDir } from "./helpers.js";

const dir = tmpDir("agentfs-mknod-");
afterAll(() => fs.rmSync(dir, { recursive: true, force: true }));
const { S_IFIFO, S_IFCHR, S_IFSOCK } = fs.constants;

describe("mknod", () => {
  it("makes a FIFO that carries data from one process to another, with the mode asked for less the umask", () => {
    const p = path.join(dir, "fifo");
    const old = process.umask(0o022);
    try {
      n.mknod(p, S_IFIFO | 0o666, 0);
    } finally {
      process.umask(old);
    }
    const st = fs.lstatSync(p);
    expect(st.isFIFO()).toBe(true);
    expect(st.mode & 0o7777).toBe(0o644);
    const r = spawnSync("sh", ["-c", `echo through > '${p}' & cat '${p}'; wait`], { encoding: "utf8", timeout: 10_000 });
    expect(r.stdout).toBe("through\n");
  });

  it.skipIf(process.getuid?.() !== 0)("makes a character device with the numbers given (as root)", () => {
    const p = path.join(dir, "null");
    const rdev = fs.statSync("/dev/null").rdev;
    n.mknod(p, S_IFCHR | 0o600, rdev);
    const st = fs.lstatSync(p);
    expect(st.isCharacterDevice()).toBe(true);
    expect(st.rdev).toBe(rdev);
    fs.writeFileSync(p, "discarded"); // it is /dev/null
    expect(fs.readFileSync(p).length).toBe(0);
  });

  it("makes a socket node; errors are errno-coded with the path", () => {
    const s = path.join(dir, "sock");
    n.mknod(s, S_IFSOCK | 0o600, 0);
    expect(fs.lstatSync(s).isSocket()).toBe(true);
    const e = expectErrno(() => n.mknod(s, S_IFIFO | 0o600, 0), "EEXIST", "mknod");
    expect(e.path).toBe(s);
    expectErrno(() => n.mknod(path.join(dir, "no", "such"), S_IFIFO | 0o600, 0), "ENOENT", "mknod");
  });
});
