import { execFile, spawnSync } from "node:child_process";
import fs from "node:fs";
import path from "node:path";
import { fileURLToPath } from "node:url";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import * as native from "@agentfs/native";
import { FLAG_NOFOLLOW, FLAG_SEAL, FdServer, READ_ONLY_SEALS, decodeRequest, encodeRequest, errnoNumber } from "../src/index.js";
import { freshStore, isLinux, prng, tmpDir, text } from "./helpers.js";

const hasGcc = spawnSync("gcc", ["--version"]).status === 0;
const hasPython = spawnSync("python3", ["-c", "import socket; socket.recv_fds"]).status === 0;
const here = path.dirname(fileURLToPath(import.meta.url));

function fnv(b: Buffer): string {
  let h = 0xcbf29ce484222325n;
  for (const x of b) {
    h ^= BigInt(x);
    h = (h * 0x100000001b3n) & 0xffffffffffffffffn;
  }
  return h.toString(16).padStart(16, "0");
}

function run(cmd: string, args: string[], opts: { uid?: number; gid?: number } = {}): Promise<{ code: number; stdout: string; stderr: string }> {
  return new Promise((resolve) => {
    execFile(cmd, args, { ...opts, encoding: "utf8", timeout: 20_000 }, (err, stdout, stderr) => {
      resolve({ code: err ? ((err as any).code ?? 1) : 0, stdout, stderr });
    });
  });
}

function fields(line: string): Record<string, string> {
  return Object.fromEntries(line.trim().split(/\s+/).filter((w) => w.includes("=")).map((w) => w.split("=") as [string, string]));
}

describe("protocol encoding", () => {
  it("round-trips a request and rejects bad ones", () => {
    const r = encodeRequest("/a/b", FLAG_SEAL);
    expect(r.subarray(0, 5).toString("latin1")).toBe("AGFD\x01");
    expect(decodeRequest(r.subarray(0, 7))).toEqual({ kind: "need-more" });
    expect(decodeRequest(r)).toEqual({ kind: "ok", request: { version: 1, flags: FLAG_SEAL, path: "/a/b" }, consumed: 16 });
    expect(decodeRequest(Buffer.from("XXXXXXXXXXXXXXXX"))).toMatchObject({ kind: "error", errno: "EPROTO" });
    const v2 = Buffer.from(r);
    v2[4] = 2;
    expect(decodeRequest(v2)).toMatchObject({ kind: "error", errno: "EPROTONOSUPPORT" });
    const long = Buffer.from(r);
    long.writeUInt32LE(5000, 8);
    expect(decodeRequest(long)).toMatchObject({ kind: "error", errno: "ENAMETOOLONG" });
    expect(errnoNumber("ENOENT")).toBe(2);
  });
});

describe.skipIf(!isLinux)("FdServer: fd passing to other processes", () => {
  let dir: string;
  let server: FdServer | undefined;
  let cleanup: (() => Promise<void>) | undefined;
  let receiver = "";
  const data = prng(300_000, 11);
  const comp = text(200_000);
  let sock = "";

  beforeAll(async () => {
    dir = tmpDir("agentfs-fdpass-");
    fs.chmodSync(dir, 0o755); // the refused-peer test runs a client as nobody
    const s = await freshStore("agentfs-fdpass-store-");
    cleanup = s.cleanup;
    await s.afs.fs.mkdir("/d");
    await s.afs.fs.writeFile("/d/data.bin", data, { mode: 0o640 });
    await s.afs.fs.writeFile("/d/comp.txt", comp);
    await s.afs.fs.writeFile("/empty", "");
    await s.afs.fs.symlink("/d/data.bin", "/link");
    sock = path.join(dir, "ermfd.sock");
    server = await FdServer.listen(s.afs, sock, { socketMode: 0o666 });
    if (hasGcc) {
      receiver = path.join(dir, "receiver");
      const cc = spawnSync("gcc", ["-O1", "-Wall", "-o", receiver, path.join(here, "receiver.c")], { encoding: "utf8" });
      if (cc.status !== 0) throw new Error(`gcc failed: ${cc.stderr}`);
    }
  });

  afterAll(async () => {
    try {
      await server?.close();
      await cleanup?.();
    } finally {
      fs.rmSync(dir, { recursive: true, force: true });
    }
  });

  it.skipIf(!hasGcc)("a C receiver gets working fds: read, lseek, fstat, mmap; seals as requested; errors as errno", async () => {
    const r = await run(receiver, [sock, "/d/data.bin", "0", "/d/comp.txt", String(FLAG_SEAL), "/missing", "0", "/d", "0", "/link", String(FLAG_NOFOLLOW), "/link", "0", "/empty", "1"]);
    expect(r.stderr).toBe("");
    expect(r.code).toBe(0);
    const lines = r.stdout.trim().split("\n").map(fields);
    expect(lines).toHaveLength(7);
    const [plain, sealed, missing, isdir, nofollow, link, empty] = lines as Record<string, string>[];
    expect(plain).toMatchObject({ size: "300000", rsize: "300000", mode: "640", pos: "0", seek_end: "300000", hash: fnv(data), mmap_hash: fnv(data), write: "ok", seals: "0" });
    expect(parseInt(plain!.rmode!, 8)).toBe(0o100640);
    expect(sealed).toMatchObject({ size: "200000", hash: fnv(comp), mmap_hash: fnv(comp), write: "EPERM", seals: String(READ_ONLY_SEALS) });
    expect(missing).toEqual({ status: String(errnoNumber("ENOENT")), fd: "no" });
    expect(isdir).toEqual({ status: String(errnoNumber("EISDIR")), fd: "no" });
    expect(nofollow).toEqual({ status: String(errnoNumber("ELOOP")), fd: "no" });
    expect(link).toMatchObject({ size: "300000", hash: fnv(data) });
    expect(empty).toMatchObject({ size: "0", seek_end: "0", write: "EPERM" });
    expect(server!.stats.served).toBeGreaterThanOrEqual(4);
  });

  it.skipIf(!hasPython)("Python's socket.recv_fds gets a working fd", async () => {
    const py = `
import os, socket, struct, sys, mmap
s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
s.connect(sys.argv[1])
p = sys.argv[2].encode()
s.sendall(b"AGFD" + bytes([1, 1, 0, 0]) + struct.pack("<I", len(p)) + p)
msg, fds, flags, addr = socket.recv_fds(s, 24, 1)
status, size, mode = struct.unpack("<iQI", msg[8:24])
fd = fds[0]
st = os.fstat(fd)
body = os.read(fd, st.st_size)
m = mmap.mmap(fd, st.st_size, prot=mmap.PROT_READ)
print(status, size, oct(mode), st.st_size, body == m[:], body[:30].decode())
`;
    const r = await run("python3", ["-c", py, sock, "/d/comp.txt"]);
    expect(r.stderr).toBe("");
    expect(r.stdout.trim()).toBe(`0 200000 0o100644 200000 True ${comp.subarray(0, 30).toString()}`);
  });

  it.skipIf(!hasGcc || process.getuid?.() !== 0)("refuses a peer with another uid (SO_PEERCRED): EACCES, no fd", async () => {
    const before = server!.stats.refused;
    const r = await run(receiver, [sock, "/d/data.bin", "0"], { uid: 65534, gid: 65534 });
    expect(r.stderr + r.stdout.trim()).toBe(`status=${errnoNumber("EACCES")} fd=no`);
    expect(server!.stats.refused).toBe(before + 1);
  });

  it.skipIf(!hasGcc)("a custom allow() sees the peer's credentials", async () => {
    const seen: native.PeerCred[] = [];
    const s2 = path.join(dir, "deny.sock");
    const st = await freshStore("agentfs-fdpass-deny-");
    const srv = await FdServer.listen(st.afs, s2, { allow: (c) => (seen.push(c), false) });
    try {
      const r = await run(receiver, [s2, "/x", "0"]);
      expect(r.stderr + r.stdout.trim()).toBe(`status=${errnoNumber("EACCES")} fd=no`);
      expect(seen).toHaveLength(1);
      expect(seen[0]!.uid).toBe(process.getuid!());
      expect(seen[0]!.pid).toBeGreaterThan(0);
      expect(seen[0]!.pid).not.toBe(process.pid);
    } finally {
      await srv.close();
      await st.cleanup();
    }
  });

  it.skipIf(!hasPython)("a malformed request gets EPROTO and the connection is closed", async () => {
    const py = `
import socket, struct, sys
s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
s.connect(sys.argv[1])
s.sendall(b"HTTP/1.1 GET /\\r\\n")
r = s.recv(24)
print(struct.unpack("<i", r[8:12])[0], s.recv(10) == b"")
`;
    const r = await run("python3", ["-c", py, sock]);
    expect(r.stdout.trim()).toBe(`${errnoNumber("EPROTO")} True`);
  });
});
