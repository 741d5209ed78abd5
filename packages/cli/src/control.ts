/**
 * The control socket of a mount daemon: how `agentfs snapshot|branch|
 * restore|diff|stats|gc|fsck|commit-lower` reach the daemon that serves a
 * store, so they see and change the state the mount serves (including bytes
 * that programs have written to files they still hold open) instead of
 * opening the store underneath it.
 *
 * Protocol, version 1 (also described in the package README):
 *
 * - A unix stream socket, `mount-<id>.sock` next to the mount record in the
 *   runtime directory (the record's `control` field), mode 0600, removed when
 *   the daemon exits. The daemon checks each peer's credentials
 *   (SO_PEERCRED): only root and the daemon's own uid are served.
 * - Newline-delimited JSON, UTF-8, one object per line, requests answered in
 *   order on each connection. Request: `{"v":1,"id":ID,"op":NAME,"args":{…}}`
 *   (ID a number or string chosen by the client; args optional). Reply:
 *   `{"v":1,"id":ID,"ok":true,"result":…}` or
 *   `{"v":1,"id":ID,"ok":false,"error":{"code":ERRNO,"message":TEXT,"kind":KIND}}`
 *   where KIND is "error" (exit status 1), "usage" (exit status 2) or
 *   "reported"; TEXT is what the CLI prints after `agentfs: `.
 * - Ops: `hello` (→ {protocol, pid, mountpoint, store, target, readOnly})
 *   and every name in `STORE_OPS` (storeops.ts), with the arguments and
 *   results listed there. Unknown op: ENOSYS. Another `v`: EPROTO. A line
 *   that is not a JSON object: EINVAL, then the connection is closed. A line
 *   longer than `MAX_REQUEST_BYTES`: EMSGSIZE, then closed. A refused peer
 *   gets EACCES in reply to its first request, then the connection is closed.
 * - The daemon runs each request synchronously on its event loop, between
 *   FUSE requests: a snapshot commits the served branch's open files and
 *   takes the snapshot in the same turn, so no write lands in between. The
 *   two long operations do not hold the mount: fsck runs in a worker thread
 *   on its own connection, and gc (`gcAsync`) marks in a worker and sweeps
 *   in slices of a few ms between FUSE requests.
 */
import { Store } from "@agentfs/core";
import { rmSync } from "node:fs";
import net from "node:net";
import { resolve } from "node:path";
import type { Command } from "commander";
import { listRecords, pidAlive, type MountRecord } from "./commands/mount.js";
import { CliError, ReportedFailure, UsageError, errorMessage, findStore, globals, platformStoreOptions } from "./context.js";
import { STORE_OPS, plainResult } from "./storeops.js";

/** The protocol version this build speaks (the `v` of every request and reply). */
export const CONTROL_PROTOCOL = 1;

/** Longest request line the daemon accepts, in bytes (replies are not limited). */
export const MAX_REQUEST_BYTES = 1 << 20;

/** Longest unix socket path (sun_path is 108 bytes on Linux, NUL included). */
export const MAX_SOCKET_PATH = 107;

/** One request line. */
export interface ControlRequest {
  v: number;
  id: number | string;
  op: string;
  args?: Record<string, unknown>;
}

/** The error of a failed request: errno name, the message the CLI prints, and how it maps to an exit status. */
export interface ControlError {
  code: string;
  message: string;
  /** "error": exit status 1; "usage": exit status 2; "reported": exit status 1, already reported on stdout. */
  kind: "error" | "usage" | "reported";
}

/** One reply line. */
export type ControlReply =
  | { v: number; id: number | string | null; ok: true; result: unknown }
  | { v: number; id: number | string | null; ok: false; error: ControlError };

/** Credentials of a connected client (SO_PEERCRED, taken when it connected). */
export interface ControlPeer {
  pid: number;
  uid: number;
  gid: number;
}

/**
 * Runs one operation in the daemon: `(op, args, peer)` → JSON-plain result.
 * Runs synchronously on the daemon's loop; throws errno-coded errors. It may
 * return a promise of the result: the work done before it returned is done
 * in that loop turn, and the reply waits for the promise.
 */
export type ControlHandler = (op: string, args: Record<string, unknown>, peer: ControlPeer) => unknown;

/** Options of `ControlServer.listen`. */
export interface ControlServerOptions {
  /** Who may talk (default: root and this process's uid). */
  allow?: (peer: ControlPeer) => boolean;
  /** Called with one line per request and per refused peer (the daemon's log). */
  log?: (line: string) => void;
}

/** An error as a reply carries it. */
export function errorToWire(e: unknown): ControlError {
  const kind = e instanceof UsageError ? "usage" : e instanceof ReportedFailure ? "reported" : "error";
  const raw = (e as { code?: unknown })?.code;
  const code = typeof raw === "string" && /^E[A-Z0-9]+$/.test(raw) ? raw : kind === "usage" ? "EINVAL" : "EIO";
  return { code, message: kind === "error" ? errorMessage(e) : (e as Error).message, kind };
}

/**
 * The error a reply carried, as the CLI throws it: UsageError (exit 2),
 * ReportedFailure, or a CliError whose message is exactly the daemon's, so
 * `agentfs: <message>` reads the same as when the CLI ran it.
 */
export function errorFromWire(err: ControlError): Error {
  if (err.kind === "usage") return new UsageError(err.message);
  if (err.kind === "reported") return new ReportedFailure(err.message);
  const e = new CliError(err.code, "");
  e.message = err.message;
  return e;
}

/** The raw fd of an accepted unix-socket connection (libuv's handle; not a public Node API), or -1. */
function rawFd(sock: net.Socket): number {
  const fd = (sock as unknown as { _handle?: { fd?: number } })._handle?.fd;
  return typeof fd === "number" ? fd : -1;
}

/** A daemon's listening control socket. */
export class ControlServer {
  /** Counters: connections accepted, requests answered, peers refused. */
  readonly stats = { connections: 0, requests: 0, refused: 0 };
  private readonly conns = new Set<net.Socket>();

  private constructor(readonly path: string, private readonly server: net.Server, private readonly handler: ControlHandler, private readonly opts: ControlServerOptions, private readonly peerCred: (fd: number) => ControlPeer) {}

  /**
   * Listens on the unix socket `path` (a socket file left there by a killed
   * daemon is removed first), created with mode 0600. Resolves once
   * listening. Errors: ENAMETOOLONG (path over `MAX_SOCKET_PATH` bytes),
   * EADDRINUSE, EACCES, ENOENT (no such directory).
   */
  static async listen(path: string, handler: ControlHandler, opts: ControlServerOptions = {}): Promise<ControlServer> {
    if (Buffer.byteLength(path) > MAX_SOCKET_PATH) throw new CliError("ENAMETOOLONG", `control socket path '${path}' is longer than ${MAX_SOCKET_PATH} bytes`);
    // Loaded here, so commands that only talk to a daemon never load the addon.
    const native = await import("@agentfs/native");
    rmSync(path, { force: true });
    const server = net.createServer();
    const s = new ControlServer(path, server, handler, opts, (fd) => native.getPeerCred(fd));
    server.on("connection", (sock) => s.onConnection(sock));
    await new Promise<void>((res, rej) => {
      server.once("error", rej);
      // Node binds a unix socket synchronously inside listen(): the umask that
      // makes the file 0600 from birth (no window in which others may connect)
      // is in force for that call only.
      const old = process.umask(0o177);
      try {
        server.listen(path, () => {
          server.off("error", rej);
          res();
        });
      } finally {
        process.umask(old);
      }
    });
    return s;
  }

  private allowed(peer: ControlPeer): boolean {
    if (this.opts.allow) return this.opts.allow(peer);
    return peer.uid === 0 || peer.uid === (process.getuid?.() ?? 0);
  }

  private onConnection(sock: net.Socket): void {
    this.stats.connections++;
    this.conns.add(sock);
    sock.on("close", () => this.conns.delete(sock));
    sock.on("error", () => sock.destroy());
    let peer: ControlPeer | undefined;
    try {
      const fd = rawFd(sock);
      if (fd >= 0) peer = this.peerCred(fd);
    } catch {
      peer = undefined;
    }
    const refused = !peer || !this.allowed(peer);
    if (refused) {
      this.stats.refused++;
      this.opts.log?.(`control: refused peer ${peer ? `uid ${peer.uid} pid ${peer.pid}` : "(no credentials)"}`);
      sock.setTimeout(5000, () => sock.destroy());
    }
    let pending = "";
    sock.setEncoding("utf8");
    sock.on("data", (chunk: string) => {
      pending += chunk;
      for (;;) {
        const nl = pending.indexOf("\n");
        if (nl < 0) {
          if (Buffer.byteLength(pending) > MAX_REQUEST_BYTES) this.fail(sock, null, { code: "EMSGSIZE", message: `EMSGSIZE: request longer than ${MAX_REQUEST_BYTES} bytes`, kind: "error" });
          return;
        }
        const line = pending.slice(0, nl);
        pending = pending.slice(nl + 1);
        let req: ControlRequest;
        try {
          req = JSON.parse(line) as ControlRequest;
          if (typeof req !== "object" || req === null || Array.isArray(req)) throw new Error("not an object");
        } catch {
          this.fail(sock, null, { code: "EINVAL", message: "EINVAL: request is not a JSON object", kind: "error" });
          return;
        }
        const id = typeof req.id === "number" || typeof req.id === "string" ? req.id : null;
        if (refused) {
          this.fail(sock, id, { code: "EACCES", message: `EACCES: uid ${peer?.uid ?? "?"} may not use the control socket of the mount daemon (pid ${process.pid}); only root and uid ${process.getuid?.() ?? 0} may`, kind: "error" });
          return;
        }
        void this.answer(sock, id, req, peer!);
      }
    });
  }

  /** Sends one error reply and closes the connection. */
  private fail(sock: net.Socket, id: number | string | null, error: ControlError): void {
    sock.end(JSON.stringify({ v: CONTROL_PROTOCOL, id, ok: false, error } satisfies ControlReply) + "\n");
  }

  private async answer(sock: net.Socket, id: number | string | null, req: ControlRequest, peer: ControlPeer): Promise<void> {
    const t0 = performance.now();
    let reply: ControlReply;
    if (req.v !== CONTROL_PROTOCOL) {
      reply = { v: CONTROL_PROTOCOL, id, ok: false, error: { code: "EPROTO", message: `EPROTO: control protocol version ${String(req.v)} is not spoken here (this daemon speaks ${CONTROL_PROTOCOL})`, kind: "error" } };
    } else {
      try {
        const args = req.args && typeof req.args === "object" && !Array.isArray(req.args) ? req.args : {};
        // The handler runs now (in this loop turn); a promise it returns only delays the reply.
        reply = { v: CONTROL_PROTOCOL, id, ok: true, result: plainResult(await this.handler(String(req.op), args, peer)) ?? null };
      } catch (e) {
        reply = { v: CONTROL_PROTOCOL, id, ok: false, error: errorToWire(e) };
      }
    }
    this.stats.requests++;
    const ms = (performance.now() - t0).toFixed(1);
    this.opts.log?.(`control: uid ${peer.uid} pid ${peer.pid}: ${String(req.op)} ${reply.ok ? "ok" : reply.error.code} (${ms} ms)`);
    sock.write(JSON.stringify(reply) + "\n");
  }

  /** Stops listening, closes every connection and removes the socket file. Never throws. */
  async close(): Promise<void> {
    for (const c of this.conns) c.destroy();
    await new Promise<void>((res) => this.server.close(() => res()));
    rmSync(this.path, { force: true });
  }
}

/** Thrown by `controlRequest` when nothing listens on the socket (ENOENT, ECONNREFUSED: a killed daemon's leftover). */
export class ControlUnavailable extends Error {
  constructor(readonly code: string, message: string) {
    super(`${code}: ${message}`);
    this.name = "ControlUnavailable";
  }
}

/** Seconds a client waits for a reply: $AGENTFS_CONTROL_TIMEOUT, default 600. */
export function controlTimeoutMs(): number {
  const s = Number(process.env.AGENTFS_CONTROL_TIMEOUT);
  return (Number.isFinite(s) && s > 0 ? s : 600) * 1000;
}

let nextId = 1;

/**
 * Sends one request on a new connection to the socket at `path` and
 * resolves with the reply's result. Errors: ControlUnavailable (ENOENT,
 * ECONNREFUSED, ENOTSOCK: nothing listens there); the reply's error
 * (`errorFromWire`); CliError EACCES (may not connect), EIO (connection
 * closed without a reply, or a malformed reply), ETIMEDOUT (no reply within
 * `timeoutMs`, default `controlTimeoutMs()`).
 */
export function controlRequest(path: string, op: string, args: Record<string, unknown> = {}, timeoutMs = controlTimeoutMs()): Promise<unknown> {
  const id = nextId++;
  return new Promise((res, rej) => {
    let connected = false;
    let buf = "";
    let settled = false;
    const sock = net.createConnection(path);
    const done = (err: Error | null, value?: unknown) => {
      if (settled) return;
      settled = true;
      clearTimeout(timer);
      sock.destroy();
      if (err) rej(err);
      else res(value);
    };
    const timer = setTimeout(() => done(new CliError("ETIMEDOUT", `the mount daemon did not answer '${op}' within ${timeoutMs / 1000}s (control socket ${path})`)), timeoutMs);
    sock.setEncoding("utf8");
    sock.on("connect", () => {
      connected = true;
      sock.write(JSON.stringify({ v: CONTROL_PROTOCOL, id, op, args } satisfies ControlRequest) + "\n");
    });
    sock.on("data", (chunk: string) => {
      buf += chunk;
      const nl = buf.indexOf("\n");
      if (nl < 0) return;
      let reply: ControlReply;
      try {
        reply = JSON.parse(buf.slice(0, nl)) as ControlReply;
      } catch {
        return done(new CliError("EIO", `malformed reply on control socket ${path}`));
      }
      if (reply.ok) done(null, reply.result);
      else done(errorFromWire(reply.error ?? { code: "EIO", message: "EIO: reply without error", kind: "error" }));
    });
    sock.on("error", (e: NodeJS.ErrnoException) => {
      const code = e.code ?? "EIO";
      if (!connected && (code === "ENOENT" || code === "ECONNREFUSED" || code === "ENOTSOCK")) return done(new ControlUnavailable(code, `nothing listens on control socket ${path}`));
      if (!connected && code === "EACCES") return done(new CliError("EACCES", `may not connect to control socket ${path}`));
      done(new CliError("EIO", `control socket ${path}: ${e.message}`));
    });
    sock.on("close", () => done(new CliError("EIO", `the mount daemon closed control socket ${path} without answering '${op}'`)));
  });
}

/** Prefix of the `store` field (and `--store`) naming a RAM store a daemon serves. */
const RAM = "ram:";

/**
 * The live daemons serving store `storeDir` (absolute store directory or
 * "ram:NAME"), those serving `branch` first; and the records whose daemon is
 * gone (a killed daemon's leftovers).
 */
export function daemonsFor(storeDir: string, branch?: string): { live: MountRecord[]; stale: MountRecord[] } {
  const mine = listRecords().filter((r) => typeof r.control === "string" && (r.store.startsWith(RAM) ? r.store === storeDir : resolve(r.store) === storeDir));
  const live = mine.filter((r) => pidAlive(r.pid));
  const stale = mine.filter((r) => !pidAlive(r.pid));
  const rank = (r: MountRecord) => ("branch" in r.target && r.target.branch === branch && !r.readOnly ? 0 : 1);
  live.sort((a, b) => rank(a) - rank(b));
  return { live, stale };
}

/**
 * Runs store operation `op` (a `STORE_OPS` name) for the store the global
 * options select: through the control socket of a live mount daemon serving
 * that store, else on the store opened here. A daemon that is gone or does
 * not answer on its socket is reported on stderr (`agentfs: note: …`) and
 * the store is opened directly. The result is JSON-plain either way
 * (`plainResult`). `--store ram:NAME` reaches the daemon serving that RAM
 * store (ENOENT when none does). Errors: those of the operation; CliError
 * EACCES/EIO/ETIMEDOUT from the socket; ENOENT (no store).
 */
export async function runStoreOp<T = unknown>(cmd: Command, op: string, args: Record<string, unknown> = {}): Promise<T> {
  const g = globals(cmd);
  const ram = g.store?.startsWith(RAM) ? g.store : undefined;
  const dir = ram ?? findStore(g);
  const { live, stale } = daemonsFor(dir, typeof args.branch === "string" ? args.branch : undefined);
  for (const r of stale) process.stderr.write(`agentfs: note: the mount daemon of ${r.mountpoint} (pid ${r.pid}) is gone; opening the store directly\n`);
  for (const r of live) {
    try {
      return (await controlRequest(r.control!, op, args)) as T;
    } catch (e) {
      if (!(e instanceof ControlUnavailable)) throw e;
      process.stderr.write(`agentfs: note: the mount daemon of ${r.mountpoint} (pid ${r.pid}) does not answer on ${r.control} (${e.code}); opening the store directly\n`);
    }
  }
  if (ram) throw new CliError("ENOENT", `no live mount daemon serves RAM store '${ram.slice(RAM.length)}'`);
  const fn = STORE_OPS[op];
  if (!fn) throw new CliError("ENOSYS", `unknown store operation '${op}'`);
  const store = Store.open(dir, await platformStoreOptions());
  try {
    return plainResult(fn(store, args)) as T;
  } finally {
    store.close();
  }
}
