/**
 * A `node:fs/promises`-compatible API over an `FsCore` view. A program
 * written against `node:fs/promises` runs against it with an import change;
 * paths are absolute within the store's tree. Errors are `FsError`s shaped
 * like Node's (`code`, `errno`, `syscall`, `path`).
 */
import { constants as C } from "node:fs";
import { FsError, isErrno } from "./errors.js";
import { FsCore, S_IFDIR, S_IFMT, S_IFREG, type TimeSpec } from "./fscore.js";
import { BigIntStats, Dirent, Stats } from "./node-types.js";

/** Data accepted by write calls: strings (with an encoding) and any ArrayBufferView. */
export type Data = string | ArrayBufferView;
/** Path arguments: strings, Buffers (UTF-8) or file: URLs. */
export type PathLike = string | Buffer | URL;
/** Open flags: a Node flag string ("r", "w+", "ax", …) or a number of fs.constants O_* bits. */
export type OpenFlags = string | number;
type Encoding = BufferEncoding | null | undefined;
type TimeLike = number | string | Date | bigint;

const FLAG_STRINGS: Record<string, number> = {
  r: C.O_RDONLY, rs: C.O_RDONLY | C.O_SYNC, sr: C.O_RDONLY | C.O_SYNC,
  "r+": C.O_RDWR, "rs+": C.O_RDWR | C.O_SYNC, "sr+": C.O_RDWR | C.O_SYNC,
  w: C.O_TRUNC | C.O_CREAT | C.O_WRONLY, wx: C.O_TRUNC | C.O_CREAT | C.O_WRONLY | C.O_EXCL, xw: C.O_TRUNC | C.O_CREAT | C.O_WRONLY | C.O_EXCL,
  "w+": C.O_TRUNC | C.O_CREAT | C.O_RDWR, "wx+": C.O_TRUNC | C.O_CREAT | C.O_RDWR | C.O_EXCL, "xw+": C.O_TRUNC | C.O_CREAT | C.O_RDWR | C.O_EXCL,
  a: C.O_APPEND | C.O_CREAT | C.O_WRONLY, ax: C.O_APPEND | C.O_CREAT | C.O_WRONLY | C.O_EXCL, xa: C.O_APPEND | C.O_CREAT | C.O_WRONLY | C.O_EXCL,
  as: C.O_APPEND | C.O_CREAT | C.O_WRONLY | C.O_SYNC, sa: C.O_APPEND | C.O_CREAT | C.O_WRONLY | C.O_SYNC,
  "a+": C.O_APPEND | C.O_CREAT | C.O_RDWR, "ax+": C.O_APPEND | C.O_CREAT | C.O_RDWR | C.O_EXCL, "xa+": C.O_APPEND | C.O_CREAT | C.O_RDWR | C.O_EXCL,
  "as+": C.O_APPEND | C.O_CREAT | C.O_RDWR | C.O_SYNC, "sa+": C.O_APPEND | C.O_CREAT | C.O_RDWR | C.O_SYNC,
};

/** Converts Node flags to O_* bits. Errors: EINVAL for an unknown flag string. */
export function parseFlags(flags: OpenFlags | undefined, dflt: string): number {
  if (flags === undefined || flags === null) return FLAG_STRINGS[dflt];
  if (typeof flags === "number") return flags;
  const f = FLAG_STRINGS[flags];
  if (f === undefined) throw new FsError("EINVAL", "open", undefined, undefined, `unknown file open flag ${JSON.stringify(flags)}`);
  return f;
}

function toPath(p: PathLike): string {
  if (typeof p === "string") return p;
  if (Buffer.isBuffer(p)) return p.toString("utf8");
  if (p instanceof URL) {
    if (p.protocol !== "file:") throw new FsError("EINVAL", "open", String(p), undefined, "only file: URLs are paths");
    return decodeURIComponent(p.pathname);
  }
  throw new TypeError(`path must be a string, Buffer or URL; got ${typeof p}`);
}

function toBytes(data: Data, encoding: Encoding = "utf8"): Uint8Array {
  if (typeof data === "string") return Buffer.from(data, encoding ?? "utf8");
  if (ArrayBuffer.isView(data)) return new Uint8Array(data.buffer, data.byteOffset, data.byteLength);
  throw new TypeError(`data must be a string or an ArrayBufferView; got ${typeof data}`);
}

function encodingOf(opts: unknown): Encoding {
  if (typeof opts === "string") return opts as BufferEncoding;
  if (opts && typeof opts === "object" && "encoding" in opts) return (opts as { encoding?: Encoding }).encoding;
  return undefined;
}

/** Converts a Node time argument (seconds as number/string, Date, or ns bigint) to ns since the epoch. */
export function toTimeNs(t: TimeLike): bigint {
  if (typeof t === "bigint") return t;
  if (t instanceof Date) return BigInt(t.getTime()) * 1_000_000n;
  const sec = typeof t === "string" ? Number(t) : t;
  if (!Number.isFinite(sec)) return BigInt(Date.now()) * 1_000_000n;
  const whole = Math.floor(sec);
  return BigInt(whole) * 1_000_000_000n + BigInt(Math.round((sec - whole) * 1e9));
}

/**
 * Seconds since the epoch for `ns` (ns since the epoch), as Node's
 * fs.utimes/lutimes take them, so that the host file gets exactly the whole
 * microseconds of `ns`: libuv truncates the seconds it is given to whole µs,
 * and a double near 2^31 s is only good to ~240 ns, so `Number(ns) / 1e9`
 * could land just below a microsecond and lose it. This returns the middle
 * of that microsecond. Times before 1970 are converted as `Number(ns) / 1e9`.
 */
export function hostTimeSec(ns: bigint): number {
  if (ns < 0n) return Number(ns) / 1e9;
  const us = ns / 1000n;
  return Number(us / 1_000_000n) + (Number(us % 1_000_000n) + 0.5) / 1e6;
}

/** Reads descriptor `fd` from its position to EOF into one Buffer. */
function readAll(core: FsCore, fd: number): Buffer {
  const size = core.fstat(fd).size;
  const chunks: Buffer[] = [];
  let buf = Buffer.allocUnsafe(Math.max(size, 16384));
  let used = 0;
  for (;;) {
    if (used === buf.length) {
      chunks.push(buf);
      buf = Buffer.allocUnsafe(buf.length);
      used = 0;
    }
    const n = core.read(fd, buf, used, buf.length - used, null);
    if (n === 0) break;
    used += n;
  }
  chunks.push(buf.subarray(0, used));
  return chunks.length === 1 ? chunks[0] : Buffer.concat(chunks);
}

/**
 * As `fs.promises.FileHandle`: an open descriptor of an agentfs file. Writes
 * are buffered in the store's backstore and committed on `close()` or
 * `sync()`; reads see every write made through any descriptor of this view.
 */
export class FileHandle {
  constructor(private readonly core: FsCore, readonly fd: number) {}

  /** As read(2)/pread(2): `{ bytesRead, buffer }`. `position` null reads at the file position. */
  async read<T extends ArrayBufferView = Buffer>(
    bufferOrOpts?: T | { buffer?: T; offset?: number; length?: number; position?: number | null },
    offset?: number, length?: number, position?: number | null,
  ): Promise<{ bytesRead: number; buffer: T }> {
    let buffer: T;
    if (bufferOrOpts && !ArrayBuffer.isView(bufferOrOpts)) {
      const o = bufferOrOpts;
      buffer = (o.buffer ?? Buffer.alloc(16384)) as T;
      offset = o.offset;
      length = o.length;
      position = o.position;
    } else buffer = (bufferOrOpts ?? Buffer.alloc(16384)) as T;
    const view = new Uint8Array(buffer.buffer, buffer.byteOffset, buffer.byteLength);
    offset ??= 0;
    length ??= view.length - offset;
    const pos = position === undefined || position === null || (typeof position === "number" && position < 0) ? null : Number(position);
    const bytesRead = this.core.read(this.fd, view, offset, length, pos);
    return { bytesRead, buffer };
  }

  /** As write(2)/pwrite(2): a buffer `(buf, offset, length, position)` or a string `(str, position, encoding)`. */
  async write(data: Data, offsetOrPosition?: number | null, lengthOrEncoding?: number | BufferEncoding, position?: number | null): Promise<{ bytesWritten: number; buffer: Data }> {
    if (typeof data === "string") {
      const bytes = Buffer.from(data, (lengthOrEncoding as BufferEncoding) ?? "utf8");
      const pos = typeof offsetOrPosition === "number" ? offsetOrPosition : null;
      const n = this.core.write(this.fd, bytes, 0, bytes.length, pos);
      return { bytesWritten: n, buffer: data };
    }
    const view = toBytes(data);
    const offset = offsetOrPosition ?? 0;
    const length = typeof lengthOrEncoding === "number" ? lengthOrEncoding : view.length - offset;
    const n = this.core.write(this.fd, view, offset, length, typeof position === "number" ? position : null);
    return { bytesWritten: n, buffer: data };
  }

  /** As writev(2). */
  async writev(buffers: ArrayBufferView[], position?: number | null): Promise<{ bytesWritten: number; buffers: ArrayBufferView[] }> {
    let total = 0;
    for (const b of buffers) {
      const v = toBytes(b);
      total += this.core.write(this.fd, v, 0, v.length, typeof position === "number" ? position + total : null);
    }
    return { bytesWritten: total, buffers };
  }

  /** As readv(2). */
  async readv(buffers: ArrayBufferView[], position?: number | null): Promise<{ bytesRead: number; buffers: ArrayBufferView[] }> {
    let total = 0;
    for (const b of buffers) {
      const v = toBytes(b);
      const n = this.core.read(this.fd, v, 0, v.length, typeof position === "number" ? position + total : null);
      total += n;
      if (n < v.length) break;
    }
    return { bytesRead: total, buffers };
  }

  /** Reads from the current position to EOF; a string when an encoding is given. */
  async readFile(options?: BufferEncoding | { encoding?: Encoding }): Promise<Buffer | string> {
    const out = readAll(this.core, this.fd);
    const enc = encodingOf(options);
    return enc ? out.toString(enc) : out;
  }

  /** Writes all of `data` at the current position (at the end with O_APPEND). */
  async writeFile(data: Data, options?: BufferEncoding | { encoding?: Encoding }): Promise<void> {
    const bytes = toBytes(data, encodingOf(options));
    let off = 0;
    while (off < bytes.length) off += this.core.write(this.fd, bytes, off, bytes.length - off, null);
  }

  /** Appends `data` (as writeFile on an O_APPEND descriptor). */
  async appendFile(data: Data, options?: BufferEncoding | { encoding?: Encoding }): Promise<void> {
    return this.writeFile(data, options);
  }

  /** As ftruncate(2). */
  async truncate(len = 0): Promise<void> {
    this.core.ftruncate(this.fd, len);
  }

  /** As fsync(2): commits pending writes durably. */
  async sync(): Promise<void> {
    this.core.fsync(this.fd);
  }

  /** As fdatasync(2) (same as sync here). */
  async datasync(): Promise<void> {
    this.core.fsync(this.fd);
  }

  /** As fstat(2). */
  async stat(opts?: { bigint?: boolean }): Promise<Stats | BigIntStats> {
    const s = this.core.fstat(this.fd);
    return opts?.bigint ? new BigIntStats(s) : new Stats(s);
  }

  /** As fchmod(2). */
  async chmod(mode: number | string): Promise<void> {
    this.core.fchmod(this.fd, typeof mode === "string" ? parseInt(mode, 8) : mode);
  }

  /** As fchown(2). */
  async chown(uid: number, gid: number): Promise<void> {
    this.core.fchown(this.fd, uid, gid);
  }

  /** As futimens(3). */
  async utimes(atime: TimeLike, mtime: TimeLike): Promise<void> {
    this.core.futimes(this.fd, toTimeNs(atime), toTimeNs(mtime));
  }

  /** As close(2): commits pending writes, then releases the descriptor. */
  async close(): Promise<void> {
    this.core.close(this.fd);
  }

  async [Symbol.asyncDispose](): Promise<void> {
    if (this.core.openFds().includes(this.fd)) this.core.close(this.fd);
  }
}

/** The `node:fs/promises`-shaped API of one agentfs view. */
export class AgentFsPromises {
  /** The O_*, F_OK, R_OK, W_OK, X_OK and COPYFILE_* constants of `node:fs`. */
  readonly constants = C;

  constructor(readonly core: FsCore) {}

  /** As fs.promises.open. */
  async open(path: PathLike, flags?: OpenFlags, mode?: number | string): Promise<FileHandle> {
    const m = typeof mode === "string" ? parseInt(mode, 8) : mode ?? 0o666;
    return new FileHandle(this.core, this.core.openFile(toPath(path), parseFlags(flags, "r"), m));
  }

  /** As fs.promises.readFile: a Buffer, or a string with an encoding. */
  async readFile(path: PathLike, options?: BufferEncoding | { encoding?: Encoding; flag?: OpenFlags }): Promise<Buffer | string>;
  async readFile(path: PathLike, options?: BufferEncoding | { encoding?: Encoding; flag?: OpenFlags }): Promise<Buffer | string> {
    const flag = typeof options === "object" && options ? options.flag : undefined;
    const flags = parseFlags(flag, "r");
    const run = () => {
      const fd = this.core.openFile(toPath(path), flags);
      try {
        return readAll(this.core, fd);
      } finally {
        this.core.close(fd);
      }
    };
    // A plain read is one read transaction; a flag that writes needs a write one.
    const data = (flags & 3) === C.O_RDONLY && !(flags & (C.O_CREAT | C.O_TRUNC)) ? this.core.readBatch(run) : this.core.batch(run);
    const enc = encodingOf(options);
    return enc ? data.toString(enc) : data;
  }

  /** As fs.promises.writeFile: creates or truncates (flag "w" by default) and writes `data`. */
  async writeFile(path: PathLike, data: Data, options?: BufferEncoding | { encoding?: Encoding; mode?: number; flag?: OpenFlags }): Promise<void> {
    const o = typeof options === "object" && options ? options : {};
    const bytes = toBytes(data, encodingOf(options));
    const flags = parseFlags(o.flag, "w");
    // open + write + close commit as one transaction: all of it lands, or none.
    this.core.batch(() => {
      const fd = this.core.openFile(toPath(path), flags, o.mode ?? 0o666);
      try {
        let off = 0;
        while (off < bytes.length) off += this.core.write(fd, bytes, off, bytes.length - off, null);
      } finally {
        this.core.close(fd);
      }
    });
  }

  /** As fs.promises.appendFile (flag "a" by default). */
  async appendFile(path: PathLike, data: Data, options?: BufferEncoding | { encoding?: Encoding; mode?: number; flag?: OpenFlags }): Promise<void> {
    const o = typeof options === "object" && options ? options : {};
    return this.writeFile(path, data, { ...o, encoding: encodingOf(options), flag: o.flag ?? "a" });
  }

  /** As fs.promises.stat (`{ bigint: true }` gives BigIntStats with ns times). */
  async stat(path: PathLike, opts?: { bigint?: boolean }): Promise<Stats | BigIntStats> {
    const s = this.core.stat(toPath(path), true);
    return opts?.bigint ? new BigIntStats(s) : new Stats(s);
  }

  /** As fs.promises.lstat. */
  async lstat(path: PathLike, opts?: { bigint?: boolean }): Promise<Stats | BigIntStats> {
    const s = this.core.stat(toPath(path), false);
    return opts?.bigint ? new BigIntStats(s) : new Stats(s);
  }

  /** As fs.promises.readdir: names, or Dirents with `withFileTypes`; `recursive` lists every descendant as a relative path. */
  async readdir(path: PathLike, options?: BufferEncoding | { withFileTypes?: boolean; recursive?: boolean; encoding?: Encoding }): Promise<string[] | Dirent[]> {
    const o = typeof options === "object" && options ? options : {};
    const root = toPath(path);
    const out: Array<{ rel: string; parent: string; name: string; type: number }> = [];
    const walk = (dir: string, rel: string) => {
      for (const e of this.core.readdir(dir)) {
        const r = rel ? `${rel}/${e.name}` : e.name;
        out.push({ rel: r, parent: dir, name: e.name, type: e.type });
        if (o.recursive && e.type === S_IFDIR) walk(dir === "/" ? `/${e.name}` : `${dir}/${e.name}`, r);
      }
    };
    walk(root, "");
    if (o.withFileTypes) return out.map((e) => new Dirent(e.name, e.parent, e.type));
    return out.map((e) => e.rel);
  }

  /** As fs.promises.mkdir; with `recursive`, returns the first directory created (or undefined). */
  async mkdir(path: PathLike, options?: number | string | { recursive?: boolean; mode?: number | string }): Promise<string | undefined> {
    const o = typeof options === "object" && options ? options : { mode: options };
    const mode = typeof o.mode === "string" ? parseInt(o.mode, 8) : o.mode ?? 0o777;
    const p = toPath(path);
    if (!o.recursive) {
      this.core.mkdir(p, mode);
      return undefined;
    }
    const parts = p.split("/").filter((c) => c && c !== ".");
    let cur = "";
    let first: string | undefined;
    for (const c of parts) {
      cur += "/" + c;
      try {
        this.core.mkdir(cur, mode);
        first ??= cur;
      } catch (e) {
        if (!isErrno(e, "EEXIST")) throw e;
        const st = this.core.stat(cur, true);
        if ((st.mode & S_IFMT) !== S_IFDIR) throw new FsError("ENOTDIR", "mkdir", p);
      }
    }
    return first;
  }

  /** As fs.promises.rm: `recursive` removes trees, `force` ignores a missing path. */
  async rm(path: PathLike, options?: { recursive?: boolean; force?: boolean }): Promise<void> {
    const p = toPath(path);
    let st;
    try {
      st = this.core.stat(p, false);
    } catch (e) {
      if (options?.force && isErrno(e, "ENOENT")) return;
      throw e;
    }
    if ((st.mode & S_IFMT) === S_IFDIR) {
      if (!options?.recursive) throw new FsError("EISDIR", "rm", p, undefined, "Path is a directory: use { recursive: true }");
      this.removeTree(p);
    } else this.core.unlink(p);
  }

  private removeTree(dir: string): void {
    for (const e of this.core.readdir(dir)) {
      const child = dir === "/" ? `/${e.name}` : `${dir}/${e.name}`;
      if (e.type === S_IFDIR) this.removeTree(child);
      else this.core.unlink(child);
    }
    if (this.core.realpath(dir) !== "/") this.core.rmdir(dir);
  }

  /** As fs.promises.rmdir. */
  async rmdir(path: PathLike): Promise<void> {
    this.core.rmdir(toPath(path));
  }

  /** As fs.promises.unlink. */
  async unlink(path: PathLike): Promise<void> {
    this.core.unlink(toPath(path));
  }

  /** As fs.promises.rename (rename(2)). */
  async rename(oldPath: PathLike, newPath: PathLike): Promise<void> {
    this.core.rename(toPath(oldPath), toPath(newPath));
  }

  /**
   * As fs.promises.copyFile: the copy shares the source's chunks (a
   * copy-on-write clone), so it costs no data. `mode` COPYFILE_EXCL fails with
   * EEXIST when the destination exists.
   */
  async copyFile(src: PathLike, dest: PathLike, mode = 0): Promise<void> {
    this.core.copyFile(toPath(src), toPath(dest), (mode & C.COPYFILE_EXCL) !== 0);
  }

  /** As fs.promises.link. */
  async link(existingPath: PathLike, newPath: PathLike): Promise<void> {
    this.core.link(toPath(existingPath), toPath(newPath));
  }

  /** As fs.promises.symlink(target, path). */
  async symlink(target: PathLike, path: PathLike): Promise<void> {
    this.core.symlink(toPath(target), toPath(path));
  }

  /** As fs.promises.readlink. */
  async readlink(path: PathLike): Promise<string> {
    return this.core.readlink(toPath(path));
  }

  /** As fs.promises.realpath. */
  async realpath(path: PathLike): Promise<string> {
    return this.core.realpath(toPath(path));
  }

  /** As fs.promises.chmod. */
  async chmod(path: PathLike, mode: number | string): Promise<void> {
    this.core.chmod(toPath(path), typeof mode === "string" ? parseInt(mode, 8) : mode);
  }

  /** As fs.promises.chown. */
  async chown(path: PathLike, uid: number, gid: number): Promise<void> {
    this.core.chown(toPath(path), uid, gid, true);
  }

  /** As fs.promises.lchown. */
  async lchown(path: PathLike, uid: number, gid: number): Promise<void> {
    this.core.chown(toPath(path), uid, gid, false);
  }

  /** As fs.promises.utimes: times as seconds (number/string), Dates, or ns bigints. */
  async utimes(path: PathLike, atime: TimeLike, mtime: TimeLike): Promise<void> {
    this.core.utimes(toPath(path), toTimeNs(atime), toTimeNs(mtime), true);
  }

  /** As fs.promises.lutimes. */
  async lutimes(path: PathLike, atime: TimeLike, mtime: TimeLike): Promise<void> {
    this.core.utimes(toPath(path), toTimeNs(atime), toTimeNs(mtime), false);
  }

  /** As fs.promises.access: F_OK, R_OK, W_OK, X_OK. */
  async access(path: PathLike, mode = C.F_OK): Promise<void> {
    this.core.access(toPath(path), mode);
  }

  /** As fs.promises.truncate. */
  async truncate(path: PathLike, len = 0): Promise<void> {
    this.core.truncate(toPath(path), len);
  }

  /** As getxattr(2); `follow: false` is lgetxattr(2). */
  async getxattr(path: PathLike, name: string, opts?: { follow?: boolean }): Promise<Buffer> {
    return this.core.getxattr(toPath(path), name, opts?.follow ?? true);
  }

  /** As setxattr(2); `flags` 0, XATTR_CREATE (1) or XATTR_REPLACE (2). */
  async setxattr(path: PathLike, name: string, value: Data, opts?: { flags?: number; follow?: boolean }): Promise<void> {
    this.core.setxattr(toPath(path), name, toBytes(value), opts?.flags ?? 0, opts?.follow ?? true);
  }

  /** As listxattr(2). */
  async listxattr(path: PathLike, opts?: { follow?: boolean }): Promise<string[]> {
    return this.core.listxattr(toPath(path), opts?.follow ?? true);
  }

  /** As removexattr(2). */
  async removexattr(path: PathLike, name: string, opts?: { follow?: boolean }): Promise<void> {
    this.core.removexattr(toPath(path), name, opts?.follow ?? true);
  }
}

export { S_IFREG };
export type { TimeSpec };
