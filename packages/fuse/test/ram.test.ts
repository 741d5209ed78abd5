/**
 * `agentfs mount --ram`: a RAM store served through a real FUSE mount. The
 * daemon holds the manifest in memory and every byte in memfds: while it
 * serves a workload, no regular file of its own is open except its log, the
 * store leaves nothing on disk, and its contents are gone after unmount.
 */
import { mkdirSync, mkdtempSync, readdirSync, readFileSync, readlinkSync, rmSync } from "node:fs";
import { join } from "node:path";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { agentfs, canMount, fuseMountsUnder, ok, teardown } from "./helpers.js";

const ENABLED = canMount();

describe.skipIf(!ENABLED)("agentfs mount --ram", () => {
  let root: string;
  let mnt: string;
  let env: Record<string, string>;
  let pid = 0;

  beforeAll(() => {
    root = mkdtempSync("/tmp/agentfs-ram-test-");
    mnt = join(root, "mnt");
    mkdirSync(mnt);
    env = { AGENTFS_RUNTIME_DIR: join(root, "run") };
    const r = agentfs(["mount", "--ram", "scratch", mnt], env);
    expect(r.stderr).toBe("");
    expect(r.code).toBe(0);
    const rec = readdirSync(env.AGENTFS_RUNTIME_DIR!).find((n) => n.endsWith(".json"))!;
    pid = JSON.parse(readFileSync(join(env.AGENTFS_RUNTIME_DIR!, rec), "utf8")).pid;
  });

  afterAll(() => {
    try {
      if (fuseMountsUnder(root).length) agentfs(["umount", mnt], env);
    } finally {
      teardown(root, pid ? [pid] : []);
      rmSync(root, { recursive: true, force: true });
    }
  });

  it("serves files written through the kernel, with status naming the RAM store", () => {
    ok("mkdir -p src/deep && seq 1 200000 > src/deep/numbers.txt && printf hi > a.txt && ln -s a.txt link && cp src/deep/numbers.txt copy.txt", mnt);
    expect(ok("cat link", mnt)).toBe("hi");
    expect(ok("sha256sum src/deep/numbers.txt copy.txt | cut -d' ' -f1 | uniq | wc -l", mnt).trim()).toBe("1");
    expect(ok("wc -l < copy.txt", mnt).trim()).toBe("200000");
    const st = JSON.parse(agentfs(["status", "--json"], env).stdout);
    expect(st).toMatchObject([{ mountpoint: mnt, store: "ram:scratch", state: "ok" }]);
  });

  it("the daemon keeps no file open but its log: store bytes live in memfds", () => {
    const targets = readdirSync(`/proc/${pid}/fd`).map((fd) => {
      try {
        return readlinkSync(`/proc/${pid}/fd/${fd}`);
      } catch {
        return "";
      }
    });
    expect(targets.some((t) => t.startsWith("/memfd:"))).toBe(true);
    const files = targets.filter((t) => t.startsWith("/") && !t.startsWith("/memfd:") && !t.startsWith("/dev/") && !t.startsWith("/proc/"));
    expect(files.filter((t) => !t.endsWith(".log"))).toEqual([]);
  });

  it("unmount ends the store: the mount point is empty afterwards", () => {
    const r = agentfs(["umount", mnt], env);
    expect(r.code).toBe(0);
    expect(fuseMountsUnder(root)).toEqual([]);
    expect(readdirSync(mnt)).toEqual([]);
  });

  it("--ram with --snapshot is a usage error (exit 2)", () => {
    const r = agentfs(["mount", "--ram", "--snapshot", "x", "s", mnt], env);
    expect(r.code).toBe(2);
    expect(r.stderr).toMatch(/no snapshots/);
  });
});
