/**
 * `FdServer`: serves exported memfds to other processes over a unix stream
 * socket, speaking the protocol in `protocol.ts` / README.md, after checking
 * each peer's credentials (SO_PEERCRED).
 */
import fs from "node:fs";
import net from "node:net";
import type { AgentFS, FsCore } from "@agentfs/core";
import * as native from "@agentfs/native";
import { exportMemfdStat } from "./export.js";
import { FLAG_NOFOLLOW, FLAG_SEAL, decodeRequest, encodeReply, errnoNumber } from "./protocol.js";

/** Credentials of a connecting process, as SO_PEERCRED reports them. */
export type PeerCred = native.PeerCred;

/** Options of {@link FdServer.listen}. */
export interface FdServerOptions {
  /**
   * Decides whether a peer may use the server, from its SO_PEERCRED
   * credentials taken when it connected. Default: the same uid as this
   * process, or root (uid 0). A refused peer gets one reply with status
   * EACCES and no fd to its first request, then the connection is closed.
   */
  allow?: (cred: PeerCred) => boolean;
  /** Always seal exported fds read-only, whatever the request's FLAG_SEAL says (default false: honour the flag). */
  alwaysSeal?: boolean;
  /** chmod of the socket file after bind (default: left as the umask makes it). */
  socketMode?: number;
}

/** Counters of a running server. */
export interface FdServerStats {
  connections: number;
  /** Requests answered with an fd. */
  served: number;
  /** Requests answered with an errno. */
  failed: number;
  /** Connections refused by `allow`. */
  refused: number;
}

/** The raw fd of an accepted unix-socket connection (libuv's handle; not a public Node API). */
function rawFd(sock: net.Socket): number {
  const fd = (sock as unknown as { _handle?: { fd?: number } })._handle?.fd;
  return typeof fd === "number" ? fd : -1;
}

/**
 * A unix-socket server that answers each request with a memfd of the named
 * file of `afs` (see {@link exportMemfdStat}: snapshot semantics, this
 * process's in-progress bytes for files it has open for writing).
 *
 * Exports run synchronously on the event loop (one chunk at a time), so a
 * large file delays other connections for the export's duration.
 * Requests on one connection are answered in order. Data is read by libuv;
 * replies (and the fd) are sent with sendmsg(2) on the raw socket fd.
 */
export class FdServer {
  readonly stats: FdServerStats = { connections: 0, served: 0, failed: 0, refused: 0 };
  private readonly conns = new Set<net.Socket>();

  private constructor(
    private readonly afs: AgentFS | FsCore,
    readonly path: string,
    private readonly server: net.Server,
    private readonly opts: FdServerOptions,
  ) {}

  /**
   * Binds a unix stream socket at `socketPath` (which must not exist) and
   * starts serving. Resolves once listening. Errors: EADDRINUSE, EACCES,
   * ENOENT (no such directory), ENAMETOOLONG (path over ~107 bytes).
   */
  static listen(afs: AgentFS | FsCore, socketPath: string, opts: FdServerOptions = {}): Promise<FdServer> {
    return new Promise((resolve, reject) => {
      const server = net.createServer();
      const s = new FdServer(afs, socketPath, server, opts);
      server.on("connection", (sock) => s.onConnection(sock));
      server.once("error", reject);
      server.listen(socketPath, () => {
        server.off("error", reject);
        try {
          if (opts.socketMode !== undefined) fs.chmodSync(socketPath, opts.socketMode);
        } catch (e) {
          server.close();
          reject(e);
          return;
        }
        resolve(s);
      });
    });
  }

  private allowed(cred: PeerCred): boolean {
    if (this.opts.allow) return this.opts.allow(cred);
    const me = process.getuid?.() ?? 0;
    return cred.uid === me || cred.uid === 0;
  }

  private onConnection(sock: net.Socket): void {
    this.stats.connections++;
    this.conns.add(sock);
    sock.on("close", () => this.conns.delete(sock));
    sock.on("error", () => sock.destroy());
    const fd = rawFd(sock);
    let cred: PeerCred | undefined;
    try {
      if (fd >= 0) cred = native.getPeerCred(fd);
    } catch {
      cred = undefined;
    }
    // A refused peer gets EACCES in answer to its first complete request
    // (replying before it finished writing would race our close into EPIPE
    // on its side), then the connection is closed. Silent peers: 5 s.
    const refused = fd < 0 || !cred || !this.allowed(cred);
    if (refused) {
      this.stats.refused++;
      sock.setTimeout(5000, () => sock.destroy());
    }
    let pending: Buffer = Buffer.alloc(0);
    sock.on("data", (chunk: Buffer) => {
      pending = pending.length ? Buffer.concat([pending, chunk]) : chunk;
      for (;;) {
        const d = decodeRequest(pending);
        if (d.kind === "need-more") return;
        if (d.kind === "error") {
          this.stats.failed++;
          this.sendRaw(fd, encodeReply(errnoNumber(d.errno)));
          sock.destroy();
          return;
        }
        pending = pending.subarray(d.consumed);
        if (refused) {
          if (fd >= 0) this.sendRaw(fd, encodeReply(errnoNumber("EACCES")));
          sock.destroy();
          return;
        }
        if (!this.answer(fd, d.request.path, d.request.flags)) {
          sock.destroy();
          return;
        }
      }
    });
  }

  /** Exports `path` and sends reply + fd; false when the socket failed (connection to be closed). */
  private answer(sockFd: number, path: string, flags: number): boolean {
    let ex;
    try {
      ex = exportMemfdStat(this.afs, path, { seal: this.opts.alwaysSeal || (flags & FLAG_SEAL) !== 0, follow: (flags & FLAG_NOFOLLOW) === 0 });
    } catch (e) {
      this.stats.failed++;
      return this.sendRaw(sockFd, encodeReply(errnoNumber((e as NodeJS.ErrnoException).code)));
    }
    try {
      native.sendFd(sockFd, ex.fd, encodeReply(0, ex.size, ex.mode));
      this.stats.served++;
      return true;
    } catch {
      return false;
    } finally {
      fs.closeSync(ex.fd);
    }
  }

  private sendRaw(sockFd: number, data: Buffer): boolean {
    try {
      // write(2) on the socket: same path (and order) as the sendmsg replies.
      let done = 0;
      while (done < data.length) done += fs.writeSync(sockFd, data, done, data.length - done);
      return true;
    } catch {
      return false;
    }
  }

  /** Stops listening, closes open connections and removes the socket file. */
  close(): Promise<void> {
    for (const c of this.conns) c.destroy();
    return new Promise((resolve) => this.server.close(() => resolve()));
  }
}
