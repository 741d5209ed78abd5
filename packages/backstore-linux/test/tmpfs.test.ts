import { spawnSync } from "node:child_process";
import fs from "node:fs";
import path from "node:path";
import { fileURLToPath } from "node:url";
import { AgentFS } from "@agentfs/core";
import * as native from "@agentfs/native";
import { describe, expect, it } from "vitest";
import { TmpfsBackstore } from "../src/index.js";
import { isLinux, prng, tmpDir } from "./helpers.js";

const MiB = 1024 * 1024;
const isRoot = process.getuid?.() === 0;
const pkgDir = path.resolve(path.dirname(fileURLToPath(import.meta.url)), "..");
const mounted = (dir: string) => fs.readFileSync("/proc/self/mounts", "utf8").split("\n").some((l) => l.split(" ")[1] === dir);

describe.skipIf(!isLinux)("TmpfsBackstore", () => {
  it("at(): on /dev/shm; refuses a directory that is not tmpfs", () => {
    const bs = TmpfsBackstore.at("/dev/shm");
    expect(bs.kind).toBe("tmpfs");
    const b = bs.createBuffer();
    try {
      b.write(Buffer.from("ram"), 0, 3, 0);
      expect(fs.readlinkSync(`/proc/self/fd/${b.fd}`)).toMatch(/^\/dev\/shm\/#\d+ \(deleted\)$/);
    } finally {
      b.dispose();
    }
    const d = tmpDir("agentfs-notram-");
    try {
      if (native.statfsTypeName(d) !== "tmpfs") expect(() => TmpfsBackstore.at(d)).toThrow(/EINVAL/);
    } finally {
      fs.rmSync(d, { recursive: true });
    }
  });

  it.skipIf(!isRoot)("mount(): a private size-capped RAM disk that answers ENOSPC when full and is unmounted on close", async () => {
    const bs = TmpfsBackstore.mount({ size: 16 * MiB });
    try {
      expect(native.statfsTypeName(bs.dir)).toBe("tmpfs");
      expect(mounted(bs.dir)).toBe(true);
      expect(bs.usage().total).toBe(16 * MiB);
      const b = bs.createBuffer();
      const piece = prng(MiB, 3);
      let err: NodeJS.ErrnoException | undefined;
      try {
        for (let i = 0; i < 32; i++) b.write(piece, 0, MiB, i * MiB);
      } catch (e) {
        err = e as NodeJS.ErrnoException;
      }
      expect(err?.code).toBe("ENOSPC");
      b.truncate(0);
      expect(bs.usage().used).toBeLessThan(MiB);
      b.dispose();
      // A full SDK workload on it.
      const sdir = tmpDir("agentfs-tmpfs-store-");
      try {
        const afs = await AgentFS.open(path.join(sdir, "store"), { create: true, backstore: bs });
        const data = prng(3 * MiB, 4);
        await afs.fs.writeFile("/f", data);
        expect(((await afs.fs.readFile("/f")) as Buffer).equals(data)).toBe(true);
        await afs.close();
      } finally {
        fs.rmSync(sdir, { recursive: true, force: true });
      }
      expect(fs.readdirSync(bs.dir)).toEqual([]);
    } finally {
      bs.close();
    }
    expect(mounted(bs.dir)).toBe(false);
    expect(fs.existsSync(bs.dir)).toBe(false);
    expect(() => bs.createBuffer()).toThrow(/EBADF/);
  });

  it.skipIf(!isRoot)("a process that exits (or gets SIGTERM) without close() still unmounts its RAM disk", () => {
    for (const how of ["exit", "SIGTERM"]) {
      const script = `
        import { TmpfsBackstore } from ${JSON.stringify(path.join(pkgDir, "dist", "index.js"))};
        const bs = TmpfsBackstore.mount({ size: 4 * 1024 * 1024 });
        bs.createBuffer().write(Buffer.from("x"), 0, 1, 0);
        console.log(bs.dir);
        ${how === "exit" ? "process.exit(0);" : "setInterval(() => {}, 1000); process.kill(process.pid, 'SIGTERM');"}
      `;
      const r = spawnSync(process.execPath, ["--input-type=module", "-e", script], { encoding: "utf8", timeout: 20_000 });
      const dir = r.stdout.trim();
      expect(dir).toMatch(/agentfs-ram-/);
      if (how === "SIGTERM") expect(r.signal).toBe("SIGTERM");
      expect(mounted(dir)).toBe(false);
      expect(fs.existsSync(dir)).toBe(false);
    }
  });
});
