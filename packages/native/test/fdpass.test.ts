import { spawn, spawnSync } from "node:child_process";
import fs from "node:fs";
import path from "node:path";
import { afterAll, afterEach, beforeAll, describe, expect, it } from "vitest";
import * as n from "../src/index.js";
import { expectErrno, isLinux, tmpDir } from "./helpers.js";

const open: number[] = [];
function track(...fds: number[]): void {
  open.push(...fds);
}
afterEach(() => {
  for (const fd of open.splice(0)) {
    try {
      fs.closeSync(fd);
    } catch {
      /* already closed */
    }
  }
});

const hasPython = spawnSync("python3", ["-c", "import socket; socket.recv_fds"]).status === 0;
const hasGcc = spawnSync("gcc", ["--version"]).status === 0;

/** Runs a child with `fd` as its fd 3; resolves with stdout/stderr/exit code. */
function runWithFd3(
  cmd: string,
  args: string[],
  fd: number,
): { done: Promise<{ stdout: string; stderr: string; code: number | null }>; pid: number } {
  const child = spawn(cmd, args, { stdio: ["ignore", "pipe", "pipe", fd] });
  let stdout = "";
  let stderr = "";
  child.stdout!.on("data", (d: Buffer) => (stdout += d.toString()));
  child.stderr!.on("data", (d: Buffer) => (stderr += d.toString()));
  const done = new Promise<{ stdout: string; stderr: string; code: number | null }>((resolve, reject) => {
    child.on("error", reject);
    child.on("close", (code) => resolve({ stdout, stderr, code }));
  });
  return { done, pid: child.pid! };
}

/** A sealed memfd holding `text` — what ermfd's export will hand out. */
function sealedMemfd(text: string): number {
  const fd = n.memfdCreate("exported", n.MFD_CLOEXEC | n.MFD_ALLOW_SEALING);
  track(fd);
  const b = Buffer.from(text);
  fs.writeSync(fd, b, 0, b.length, 0);
  n.addSeals(fd, n.F_SEAL_WRITE | n.F_SEAL_GROW | n.F_SEAL_SHRINK | n.F_SEAL_SEAL);
  return fd;
}

const PY_RECEIVER = String.raw`
import json, mmap, os, socket
s = socket.socket(fileno=3)
msg, fds, flags, addr = socket.recv_fds(s, 1024, 4)
fd = fds[0]
st = os.fstat(fd)
m = mmap.mmap(fd, st.st_size, prot=mmap.PROT_READ)
out = {
  "msg": msg.decode(), "nfds": len(fds), "size": st.st_size,
  "mmap": m[:].decode(), "pread": os.pread(fd, st.st_size, 0).decode(),
  "link": os.readlink("/proc/self/fd/%d" % fd),
}
try:
  os.pwrite(fd, b"X", 0); out["write"] = "ok"
except OSError as e:
  out["write"] = e.errno
# send one back: a memfd of our own
back = os.memfd_create("from-python")
os.write(back, b"made in python")
socket.send_fds(s, [b"back"], [back])
print(json.dumps(out), flush=True)
`;

const C_RECEIVER = String.raw`
#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <unistd.h>
int main(void) {
  char data[256];
  char ctl[CMSG_SPACE(sizeof(int))];
  struct iovec iov = { data, sizeof data - 1 };
  struct msghdr msg = {0};
  msg.msg_iov = &iov; msg.msg_iovlen = 1;
  msg.msg_control = ctl; msg.msg_controllen = sizeof ctl;
  ssize_t n = recvmsg(3, &msg, 0);
  if (n < 0) { perror("recvmsg"); return 2; }
  data[n] = 0;
  struct cmsghdr *cm = CMSG_FIRSTHDR(&msg);
  if (!cm || cm->cmsg_type != SCM_RIGHTS) { fprintf(stderr, "no fd\n"); return 3; }
  int fd; memcpy(&fd, CMSG_DATA(cm), sizeof fd);
  struct stat st;
  if (fstat(fd, &st) < 0) { perror("fstat"); return 4; }
  char *p = mmap(NULL, st.st_size, PROT_READ, MAP_SHARED, fd, 0);
  if (p == MAP_FAILED) { perror("mmap"); return 5; }
  int seals = fcntl(fd, F_GET_SEALS);
  int werr = pwrite(fd, "X", 1, 0) < 0 ? errno : 0;
  printf("data=%s size=%ld seals=%d write_errno=%d mmap=%.*s\n", data, (long)st.st_size, seals, werr,
         (int)st.st_size, p);
  return 0;
}
`;

describe.skipIf(!isLinux)("sendFd / recvFd over a socketpair", () => {
  it("passes an fd within this process: a new number for the same open file", () => {
    const [a, b] = n.socketpair();
    track(a, b);
    const fd = sealedMemfd("same file");
    expect(n.sendFd(a, fd, Buffer.from("hdr"))).toBe(3);
    const r = n.recvFd(b);
    track(r.fd);
    expect(r.data.toString()).toBe("hdr");
    expect(r.fds).toEqual([r.fd]);
    expect(r.truncated).toBe(false);
    expect(r.fd).not.toBe(fd);
    expect(n.getCloexec(r.fd)).toBe(true); // MSG_CMSG_CLOEXEC by default
    const s1 = fs.fstatSync(fd);
    const s2 = fs.fstatSync(r.fd);
    expect([s2.dev, s2.ino]).toEqual([s1.dev, s1.ino]);
    expect(n.getSeals(r.fd)).toBe(n.getSeals(fd));
  });

  it("several fds in one message; plain data without fds; EAGAIN when nothing is queued", () => {
    const [a, b] = n.socketpair(n.SOCK_STREAM, { nonblock: true });
    track(a, b);
    const f1 = sealedMemfd("one");
    const f2 = sealedMemfd("two");
    n.sendFd(a, [f1, f2]); // default data: one NUL byte
    const r = n.recvFds(b, { cloexec: false });
    track(...r.fds);
    expect(r.data).toEqual(Buffer.from([0]));
    expect(r.fds).toHaveLength(2);
    expect(n.getCloexec(r.fds[0]!)).toBe(false);
    expect(fs.readFileSync(`/proc/self/fd/${r.fds[1]}`, "utf8")).toBe("two");
    n.sendFd(a, [], Buffer.from("just data"));
    const r2 = n.recvFd(b);
    expect(r2).toMatchObject({ fd: -1, fds: [] });
    expect(r2.data.toString()).toBe("just data");
    expectErrno(() => n.recvFd(b), "EAGAIN", "recvmsg");
    expectErrno(() => n.recvFd(b, { nonblock: true, maxFds: 1000 }), "EINVAL", "recvmsg");
    expectErrno(() => n.sendFd(a, 987654), "EBADF", "sendmsg");
    const notSock = sealedMemfd("x");
    expectErrno(() => n.sendFd(notSock, notSock), "ENOTSOCK", "sendmsg");
  });

  it("more fds than maxFds: truncated is set and the extra fds are closed, not leaked", () => {
    const [a, b] = n.socketpair(n.SOCK_STREAM, { nonblock: true });
    track(a, b);
    const f = sealedMemfd("t");
    n.sendFd(a, [f, f, f, f]);
    const r = n.recvFds(b, { maxFds: 1 });
    track(...r.fds);
    expect(r.truncated).toBe(true);
    expect(r.fds).toHaveLength(1);
    const memfdsOpen = fs.readdirSync("/proc/self/fd").filter((x) => {
      try {
        return fs.readlinkSync(`/proc/self/fd/${x}`).startsWith("/memfd:exported");
      } catch {
        return false;
      }
    });
    expect(memfdsOpen).toHaveLength(2); // ours and the one received: the extras were closed
  });

  it("recvFd sees EOF as empty data once the peer closes", () => {
    const [a, b] = n.socketpair();
    track(b);
    fs.closeSync(a);
    const r = n.recvFd(b);
    expect(r.data.length).toBe(0);
    expect(r.fd).toBe(-1);
  });

  it.skipIf(!hasPython)("a Python child receives a sealed memfd, fstats, mmaps and reads it, and sends one back", async () => {
    const [a, b] = n.socketpair();
    track(a, b);
    const fd = sealedMemfd("hello from agentfs");
    const child = runWithFd3("python3", ["-c", PY_RECEIVER], b);
    fs.closeSync(b);
    open.splice(open.indexOf(b), 1);
    n.sendFd(a, fd, Buffer.from("take this"));
    // Blocking receive: the child runs independently and answers quickly.
    const back = n.recvFd(a);
    track(back.fd);
    const res = await child.done;
    expect(res.stderr).toBe("");
    expect(res.code).toBe(0);
    const out = JSON.parse(res.stdout) as Record<string, unknown>;
    expect(out).toMatchObject({
      msg: "take this",
      nfds: 1,
      size: 18,
      mmap: "hello from agentfs",
      pread: "hello from agentfs",
      write: 1, // EPERM: F_SEAL_WRITE holds in the receiver too
    });
    expect(out.link).toMatch(/^\/memfd:exported/);
    expect(back.data.toString()).toBe("back");
    expect(fs.readlinkSync(`/proc/self/fd/${back.fd}`)).toMatch(/^\/memfd:from-python/);
    const buf = Buffer.alloc(64);
    const got = fs.readSync(back.fd, buf, 0, 64, 0);
    expect(buf.subarray(0, got).toString()).toBe("made in python");
  });

  describe.skipIf(!hasGcc)("to a C child", () => {
    let dir: string;
    let exe: string;
    beforeAll(() => {
      dir = tmpDir("agentfs-native-c-");
      exe = path.join(dir, "receiver");
      fs.writeFileSync(path.join(dir, "receiver.c"), C_RECEIVER);
      const cc = spawnSync("gcc", ["-O1", "-o", exe, path.join(dir, "receiver.c")], { encoding: "utf8" });
      if (cc.status !== 0) throw new Error(`gcc failed: ${cc.stderr}`);
    });
    afterAll(() => fs.rmSync(dir, { recursive: true, force: true }));

    it("receives the fd with recvmsg, fstat's its size, mmaps it and sees its seals", async () => {
      const [a, b] = n.socketpair();
      track(a, b);
      const fd = sealedMemfd("bytes for C");
      n.sendFd(a, fd, Buffer.from("meta"));
      const child = runWithFd3(exe, [], b);
      const res = await child.done;
      expect(res.stderr).toBe("");
      expect(res.code).toBe(0);
      const seals = n.F_SEAL_WRITE | n.F_SEAL_GROW | n.F_SEAL_SHRINK | n.F_SEAL_SEAL;
      expect(res.stdout).toBe(`data=meta size=11 seals=${seals} write_errno=1 mmap=bytes for C\n`);
    });
  });
});

async function acceptWithin(srv: number, ms: number): Promise<number> {
  const deadline = Date.now() + ms;
  for (;;) {
    try {
      return n.accept(srv);
    } catch (e) {
      if ((e as NodeJS.ErrnoException).code !== "EAGAIN" || Date.now() > deadline) throw e;
      await new Promise((r) => setTimeout(r, 5));
    }
  }
}

describe("getPeerCred and unix socket wrappers", () => {
  it("on a socketpair reports our own pid, uid and gid", () => {
    const [a, b] = n.socketpair();
    track(a, b);
    const c = n.getPeerCred(a);
    expect(c.pid).toBe(process.pid);
    expect(c.uid).toBe(process.getuid!());
    expect(c.gid).toBe(process.getgid!());
    expectErrno(() => n.getPeerCred(987654), "EBADF");
  });

  it.skipIf(!hasPython)("bind/listen/accept: a Python client connects; peer creds name its pid; a sealed memfd passes to it", async () => {
    const dir = tmpDir("agentfs-native-sock-");
    const sockPath = path.join(dir, "s.sock");
    try {
      // Non-blocking listener, polled: a child that never connects must fail
      // the test, not block the event loop (and the test timeout) forever.
      const srv = n.socket(n.SOCK_STREAM, { nonblock: true });
      track(srv);
      n.bind(srv, sockPath);
      n.listen(srv, 4);
      expect(fs.statSync(sockPath).isSocket()).toBe(true);
      const py = String.raw`
import os, socket, sys
s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
s.connect(sys.argv[1])
msg, fds, _, _ = socket.recv_fds(s, 100, 1)
print(msg.decode(), os.pread(fds[0], 100, 0).decode(), flush=True)
`;
      const child = spawn("python3", ["-c", py, sockPath], { stdio: ["ignore", "pipe", "pipe"] });
      let stdout = "";
      child.stdout.on("data", (d: Buffer) => (stdout += d.toString()));
      const done = new Promise<number | null>((r) => child.on("close", r));
      const conn = await acceptWithin(srv, 20_000);
      track(conn);
      expect(n.getCloexec(conn)).toBe(true);
      const cred = n.getPeerCred(conn);
      expect(cred.pid).toBe(child.pid);
      expect(cred.uid).toBe(process.getuid!());
      n.sendFd(conn, sealedMemfd("over a named socket"), Buffer.from("hi"));
      expect(await done).toBe(0);
      expect(stdout).toBe("hi over a named socket\n");

      // connect() from our side too
      const cli = n.socket();
      track(cli);
      n.connect(cli, sockPath);
      const conn2 = await acceptWithin(srv, 5_000);
      track(conn2);
      expect(n.getPeerCred(conn2).pid).toBe(process.pid);
      expectErrno(() => n.connect(n.socket(), path.join(dir, "missing.sock")), "ENOENT", "connect");
      expectErrno(() => n.bind(n.socket(), sockPath), "EADDRINUSE", "bind");
    } finally {
      fs.rmSync(dir, { recursive: true, force: true });
    }
  });
});
