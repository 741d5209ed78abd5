/**
 * @agentfs/native — thin, policy-free wrappers for the system calls agentfs
 * needs and Node does not expose.
 *
 * Errors: every wrapper throws an `Error` shaped like Node's own fs errors —
 * `code` is the errno name in libuv's spelling (`"EBADF"`, `"ENOSYS"`, …; on
 * Linux `EOPNOTSUPP` and `ENOTSUP` are the same number and are reported as
 * `"ENOTSUP"`, as node:fs does), `errno` is the **negative** errno number
 * (as Node reports it: `-9` for EBADF), `syscall` names the call
 * (`"memfd_create"`, `"fcntl(F_ADD_SEALS)"`, `"ioctl(FICLONE)"`, …). Bad
 * argument types throw a `TypeError` before any system call is made.
 *
 * A function whose system call does not exist on this platform (memfd and
 * seals, FICLONE and execveat off Linux; clonefile off macOS) throws an
 * ENOSYS error; it never silently does something else.
 *
 * File descriptors are plain numbers, interchangeable with node:fs
 * (`fs.readSync`, `fs.writeSync`, `fs.fstatSync`, `fs.closeSync` all work on
 * them). Reading and writing at an offset is `fs.readSync(fd, buf, 0, n, pos)`
 * / `fs.writeSync(fd, buf, 0, n, pos)` (pread/pwrite) and is not duplicated here.
 */
import { createRequire } from "node:module";
import { fileURLToPath } from "node:url";
import path from "node:path";
import os from "node:os";

const require = createRequire(import.meta.url);
const pkgRoot = path.resolve(path.dirname(fileURLToPath(import.meta.url)), "..");

interface Binding {
  platform: "linux" | "darwin" | "other";
  constants: Record<string, number>;
  memfdCreate?(name: string, flags: number): number;
  addSeals?(fd: number, seals: number): void;
  getSeals?(fd: number): number;
  ficlone?(srcFd: number, dstFd: number): void;
  clonefile?(src: string, dst: string, flags: number): void;
  ftruncate(fd: number, size: number | bigint): void;
  fallocate?(fd: number, mode: number, offset: number, length: number): void;
  setCloexec(fd: number, on: boolean): void;
  getCloexec(fd: number): boolean;
  pipe(flags: number): [number, number];
  mmap(fd: number, length: number, prot: number, flags: number, offset: number | bigint): Buffer;
  munmap(buffer: Buffer): void;
  spawnExec?(
    fd: number,
    argv: string[],
    envp: string[] | null,
    stdio: number[],
    inheritFds: number[],
    useExecveat: boolean,
  ): number;
  waitpid(pid: number, options: number): WaitStatus | null;
  socketpair(type: number, flags: number): [number, number];
  socket(type: number, flags: number): number;
  bind(fd: number, path: string): void;
  connect(fd: number, path: string): void;
  listen(fd: number, backlog: number): void;
  accept(fd: number, flags: number): number;
  sendFds(socketFd: number, fds: number[], data: Uint8Array, flags: number): number;
  recvFds(socketFd: number, maxData: number, maxFds: number, flags: number): RecvResult;
  getPeerCred(socketFd: number): PeerCred;
  statfs(path: string): StatfsResult;
  mknod(path: string, mode: number, rdev: number): void;
}

function loadBinding(): Binding {
  const candidates = [
    path.join(pkgRoot, "build", "Release", "agentfs_native.node"),
    path.join(pkgRoot, "build", "Debug", "agentfs_native.node"),
  ];
  let lastErr: unknown;
  for (const c of candidates) {
    try {
      return require(c) as Binding;
    } catch (e) {
      lastErr = e;
      if ((e as NodeJS.ErrnoException).code !== "MODULE_NOT_FOUND") throw e;
    }
  }
  const err = new Error(
    `@agentfs/native: addon not built (looked for ${candidates.join(", ")}); ` +
      `run \`pnpm --filter @agentfs/native run build:addon\` (needs a C++ compiler, make, python3 and Node headers)`,
  );
  (err as Error & { cause?: unknown }).cause = lastErr;
  throw err;
}

const binding = loadBinding();
const C = binding.constants;

/** An errno-coded error as thrown by every wrapper in this package. */
export interface NativeError extends Error {
  /** errno name, e.g. "EBADF". */
  code: string;
  /** negative errno number, as Node reports it (e.g. -9 for EBADF on Linux). */
  errno: number;
  /** the system call that failed. */
  syscall: string;
  path?: string;
}

function enosys(syscall: string): NativeError {
  const e = new Error(`ENOSYS: function not implemented, ${syscall} (not available on ${process.platform})`) as NativeError;
  e.code = "ENOSYS";
  // os.constants.errno.ENOSYS is 78 on macOS, 38 on Linux.
  e.errno = -(os.constants.errno.ENOSYS ?? 38);
  e.syscall = syscall;
  return e;
}

function need<K extends keyof Binding>(name: K, syscall: string): NonNullable<Binding[K]> {
  const f = binding[name];
  if (f === undefined) throw enosys(syscall);
  return f as NonNullable<Binding[K]>;
}

/** Which platform code the addon was compiled with. */
export const platform: "linux" | "darwin" | "other" = binding.platform;

/** `true` where memfd_create, seals, FICLONE and execveat exist (Linux). */
export const hasMemfd: boolean = binding.memfdCreate !== undefined;
/** `true` where clonefile(2) exists (macOS). */
export const hasClonefile: boolean = binding.clonefile !== undefined;

// ------------------------------------------------------------------ constants

/** memfd_create flag: the fd is close-on-exec. 0 where memfd does not exist. */
export const MFD_CLOEXEC: number = C.MFD_CLOEXEC ?? 0;
/** memfd_create flag: seals may be added (without it the fd starts with F_SEAL_SEAL). */
export const MFD_ALLOW_SEALING: number = C.MFD_ALLOW_SEALING ?? 0;
/** memfd_create flag (Linux 6.3+): not executable, and F_SEAL_EXEC is set. */
export const MFD_NOEXEC_SEAL: number = C.MFD_NOEXEC_SEAL ?? 0;
/** memfd_create flag (Linux 6.3+): executable even where vm.memfd_noexec asks otherwise. */
export const MFD_EXEC: number = C.MFD_EXEC ?? 0;
/** fallocate(2) mode flag: do not change the file size. 0 where fallocate does not exist. */
export const FALLOC_FL_KEEP_SIZE: number = C.FALLOC_FL_KEEP_SIZE ?? 0;
/** fallocate(2) mode flag: deallocate the range, which then reads as zeros (needs FALLOC_FL_KEEP_SIZE). */
export const FALLOC_FL_PUNCH_HOLE: number = C.FALLOC_FL_PUNCH_HOLE ?? 0;
/** Seal: no more seals can be added. */
export const F_SEAL_SEAL: number = C.F_SEAL_SEAL ?? 0;
/** Seal: the file cannot shrink (ftruncate to a smaller size fails with EPERM). */
export const F_SEAL_SHRINK: number = C.F_SEAL_SHRINK ?? 0;
/** Seal: the file cannot grow (ftruncate larger or writes past the end fail with EPERM). */
export const F_SEAL_GROW: number = C.F_SEAL_GROW ?? 0;
/** Seal: contents cannot change (write fails with EPERM; refused with EBUSY while a shared writable mapping exists). */
export const F_SEAL_WRITE: number = C.F_SEAL_WRITE ?? 0;
/** Seal (Linux 5.1+): no new writes or writable mappings, existing shared writable mappings keep working. */
export const F_SEAL_FUTURE_WRITE: number = C.F_SEAL_FUTURE_WRITE ?? 0;
/** Seal (Linux 6.3+): the mode's exec bits cannot change; set by MFD_NOEXEC_SEAL. */
export const F_SEAL_EXEC: number = C.F_SEAL_EXEC ?? 0;

export const PROT_NONE: number = C.PROT_NONE!;
export const PROT_READ: number = C.PROT_READ!;
export const PROT_WRITE: number = C.PROT_WRITE!;
export const PROT_EXEC: number = C.PROT_EXEC!;
export const MAP_SHARED: number = C.MAP_SHARED!;
export const MAP_PRIVATE: number = C.MAP_PRIVATE!;
/** waitpid option: return null at once if the child has not changed state. */
export const WNOHANG: number = C.WNOHANG!;
/** waitpid option: also report stopped children. */
export const WUNTRACED: number = C.WUNTRACED!;
export const SOCK_STREAM: number = C.SOCK_STREAM!;
export const SOCK_DGRAM: number = C.SOCK_DGRAM!;
export const SOCK_SEQPACKET: number = C.SOCK_SEQPACKET!;
/** recvmsg flag: do not block (EAGAIN when nothing is queued). */
export const MSG_DONTWAIT: number = C.MSG_DONTWAIT!;
/** recvmsg flag: leave the data queued. */
export const MSG_PEEK: number = C.MSG_PEEK!;
/** recvmsg flag (Linux): received fds are close-on-exec. 0 elsewhere. */
export const MSG_CMSG_CLOEXEC: number = C.MSG_CMSG_CLOEXEC ?? 0;
/** clonefile flag (macOS): do not follow a symlink at `src`. 0 elsewhere. */
export const CLONE_NOFOLLOW: number = C.CLONE_NOFOLLOW ?? 0;
/** clonefile flag (macOS): do not copy ownership. 0 elsewhere. */
export const CLONE_NOOWNERCOPY: number = C.CLONE_NOOWNERCOPY ?? 0;
/** The system page size in bytes (mmap offsets must be multiples of it). */
export const PAGE_SIZE: number = C.PAGE_SIZE!;

/** All numeric constants the addon was compiled with, by their C names. */
export const constants: Readonly<Record<string, number>> = Object.freeze({ ...C });

// ------------------------------------------------------------------ memfd, ftruncate, seals

/**
 * memfd_create(2): creates an anonymous RAM-backed file and returns its fd
 * (size 0, read/write). `name` is only a label (shown as `/memfd:<name>` in
 * /proc/<pid>/fd), at most 249 bytes. `flags`: MFD_CLOEXEC, MFD_ALLOW_SEALING,
 * MFD_NOEXEC_SEAL, MFD_EXEC or'ed together.
 *
 * Errors: EINVAL (bad flags, name too long), EMFILE, ENFILE, ENOMEM,
 * ENOSYS (not Linux).
 */
export function memfdCreate(name: string, flags = 0): number {
  return need("memfdCreate", "memfd_create")(name, flags);
}
/** Alias of {@link memfdCreate} with the C spelling. */
export const memfd_create = memfdCreate;

/**
 * ftruncate(2): sets the size of the file open at `fd` to `size` bytes
 * (number or bigint), growing with zeros or shrinking.
 *
 * Errors: EBADF, EINVAL (negative size, fd not open for writing / not a
 * regular file), EPERM (a seal forbids it: F_SEAL_GROW or F_SEAL_SHRINK),
 * EFBIG, EIO.
 */
export function ftruncate(fd: number, size: number | bigint): void {
  binding.ftruncate(fd, size);
}

/**
 * fallocate(2) on the file open at `fd`: `mode` is 0 (allocate) or
 * FALLOC_FL_* flags or'ed (e.g. FALLOC_FL_PUNCH_HOLE | FALLOC_FL_KEEP_SIZE
 * frees `[offset, offset+length)`, bytes, which then reads as zeros).
 *
 * Errors: EBADF (not open for writing), EINVAL, EOPNOTSUPP (the filesystem
 * lacks the mode), EPERM (a seal forbids it), ENOSPC, EFBIG, EIO; ENOSYS
 * where fallocate does not exist (macOS).
 */
export function fallocate(fd: number, mode: number, offset: number, length: number): void {
  need("fallocate", "fallocate")(fd, mode, offset, length);
}

/**
 * fcntl(fd, F_ADD_SEALS, seals): adds seals (F_SEAL_* or'ed) to a memfd
 * created with MFD_ALLOW_SEALING. Seals can only be added, never removed.
 *
 * Errors: EBADF, EINVAL (not a sealable file, or not opened for writing),
 * EPERM (F_SEAL_SEAL is already set, or the fd was created without
 * MFD_ALLOW_SEALING), EBUSY (F_SEAL_WRITE while a shared writable mapping
 * exists), ENOSYS (not Linux).
 */
export function addSeals(fd: number, seals: number): void {
  need("addSeals", "fcntl(F_ADD_SEALS)")(fd, seals);
}

/**
 * fcntl(fd, F_GET_SEALS): the seals set on `fd`, as F_SEAL_* bits.
 *
 * Errors: EBADF, EINVAL (the file does not support seals), ENOSYS (not Linux).
 */
export function getSeals(fd: number): number {
  return need("getSeals", "fcntl(F_GET_SEALS)")(fd);
}

/**
 * fcntl(fd, F_SETFD, ±FD_CLOEXEC): sets (`on = true`) or clears the
 * close-on-exec flag of `fd`. Node opens everything close-on-exec; clear it
 * on an fd a child started with {@link spawnFexecve} should inherit (or name
 * the fd in its `inheritFds`, which clears it in the child only).
 *
 * Errors: EBADF.
 */
export function setCloexec(fd: number, on = true): void {
  binding.setCloexec(fd, on);
}

/** fcntl(fd, F_GETFD) & FD_CLOEXEC: whether `fd` is close-on-exec. Errors: EBADF. */
export function getCloexec(fd: number): boolean {
  return binding.getCloexec(fd);
}

/**
 * pipe(2)/pipe2(2): a new pipe as raw fds `[readFd, writeFd]`, close-on-exec
 * by default (`flags.cloexec`), optionally non-blocking. Handy as a child's
 * stdio with {@link spawnFexecve}; read it with fs.readSync or
 * `fs.createReadStream(null, { fd })`.
 *
 * Errors: EMFILE, ENFILE.
 */
export function pipe(flags?: { cloexec?: boolean; nonblock?: boolean }): [number, number] {
  let n = 0;
  if (flags?.cloexec ?? true) n |= 1;
  if (flags?.nonblock ?? false) n |= 2;
  return binding.pipe(n);
}

// ------------------------------------------------------------------ mmap

/**
 * mmap(2): maps `length` bytes of `fd` starting at byte `offset` (a multiple
 * of {@link PAGE_SIZE}) and returns them as a Buffer that points straight at
 * the mapping (no copy). `prot`: PROT_READ | PROT_WRITE | PROT_EXEC or
 * PROT_NONE; `flags`: MAP_SHARED (writes reach the file and other mappings)
 * or MAP_PRIVATE (copy-on-write).
 *
 * The mapping is unmapped when the Buffer is garbage-collected, or at once by
 * {@link munmap}. Touching bytes past the end of the file raises SIGBUS and
 * kills the process — keep `offset + length` within the file size; writing to
 * a PROT_READ mapping raises SIGSEGV.
 *
 * Errors: EBADF, EACCES (fd not open for reading, or MAP_SHARED + PROT_WRITE
 * on an fd not open for writing), EINVAL (length 0, unaligned offset, bad
 * flags), ENODEV, ENOMEM, EOVERFLOW, EPERM (PROT_WRITE + MAP_SHARED on a memfd
 * with F_SEAL_WRITE / F_SEAL_FUTURE_WRITE, or PROT_EXEC on a noexec mount).
 */
export function mmap(fd: number, length: number, prot: number, flags: number, offset: number | bigint = 0): Buffer {
  return binding.mmap(fd, length, prot, flags, offset);
}

/**
 * munmap(2): unmaps a Buffer returned by {@link mmap} now, instead of at
 * garbage collection. Any view of it (the Buffer, its slices) is detached
 * first and reads as zero-length afterwards, so nothing can touch the freed
 * pages. Passing a slice unmaps the whole mapping.
 *
 * Errors: EINVAL (not a live mapping made by {@link mmap}, e.g. already unmapped).
 */
export function munmap(buffer: Buffer): void {
  binding.munmap(buffer);
}

// ------------------------------------------------------------------ fexecve / execveat

/** How a child ended, as reported by {@link waitpid}. */
export interface WaitStatus {
  pid: number;
  /** exit status 0–255 when the child exited, else null. */
  exitCode: number | null;
  /** number of the signal that killed (or, with WUNTRACED, stopped) it, else null. */
  signal: number | null;
  /** the raw wait status word. */
  status: number;
  /** true when reporting a stop (only with WUNTRACED). */
  stopped?: boolean;
}

export interface SpawnExecOptions {
  /**
   * The child's fds 0, 1 and 2. Each entry is an fd of this process to
   * install in that slot (dup2), or -1 to leave the slot as inherited.
   * Default: [0, 1, 2] — the same stdio as this process, with FD_CLOEXEC
   * cleared in the child (Node marks its own stdio close-on-exec).
   */
  stdio?: [number, number, number];
  /**
   * Further fds whose FD_CLOEXEC is cleared in the child only, so the new
   * program inherits them under the same numbers.
   */
  inheritFds?: number[];
  /**
   * Use execveat(fd, "", argv, envp, AT_EMPTY_PATH) (Linux) instead of
   * fexecve(3). Both execute the file open at `fd`; glibc's fexecve itself
   * tries execveat first and falls back to /proc/self/fd/N. Default false.
   */
  execveat?: boolean;
}

/**
 * fork(2) + fexecve(3): starts a child running the executable open at `fd`
 * (a memfd, or any fd opened for reading/path of an executable file) and
 * returns its pid at once. `argv[0]` is the name the program sees; `envp`
 * (strings "NAME=value") defaults to this process's environment.
 *
 * In the child, signal dispositions and the signal mask are reset to their
 * defaults (Node ignores SIGPIPE, and an ignored signal stays ignored across
 * exec), stdio is installed as given in `options.stdio` and made
 * inheritable, and `options.inheritFds` are made inheritable. Every other fd
 * keeps its flags — Node's fds are close-on-exec, so they do not leak.
 *
 * Scripts (`#!`): the kernel runs the interpreter with `/dev/fd/<fd>` as the
 * script path, so the fd must survive the exec. For a close-on-exec fd (a
 * memfd made with MFD_CLOEXEC, or any fd Node opened) the kernel refuses
 * the exec with ENOENT, as execveat(2) documents. Pass the fd in
 * `inheritFds` (cleared in the child only), or create the memfd without
 * MFD_CLOEXEC; the interpreter then also holds the fd open while it runs.
 * Binaries (ELF) need neither. (A memfd made with MFD_NOEXEC_SEAL cannot
 * be executed at all: EACCES.)
 *
 * Exec failures are reported synchronously: the child sends its errno back
 * over a close-on-exec pipe before exiting with 127, the parent reaps it
 * and throws. The child must be reaped with {@link waitpid} or
 * {@link waitForExit} (Node's child_process does not know about it).
 *
 * Linux only: macOS has no fexecve(3); there this throws ENOSYS.
 *
 * Errors: EBADF (bad fd), EACCES (not executable, noexec mount), ENOEXEC
 * (not a recognised format), ENOENT (script interpreter missing, or a
 * script on a close-on-exec fd), E2BIG,
 * ENOMEM, EAGAIN (fork), ENOSYS (not Linux).
 */
export function spawnFexecve(
  fd: number,
  argv: string[],
  envp?: string[] | null,
  options: SpawnExecOptions = {},
): number {
  const stdio = options.stdio ?? [0, 1, 2];
  if (!Array.isArray(stdio) || stdio.length !== 3) throw new TypeError("options.stdio must be three fds");
  if (argv.length === 0) throw new TypeError("argv must have at least one entry (argv[0])");
  const spawnExec = need("spawnExec", options.execveat ? "execveat" : "fexecve");
  return spawnExec(fd, argv, envp ?? null, stdio, options.inheritFds ?? [], options.execveat ?? false);
}

/**
 * fork(2) + execveat(fd, "", argv, envp, AT_EMPTY_PATH) (Linux): the same as
 * {@link spawnFexecve} with `execveat: true`. Returns the child's pid.
 *
 * Errors: as {@link spawnFexecve}; ENOSYS off Linux.
 */
export function spawnExecveat(
  fd: number,
  argv: string[],
  envp?: string[] | null,
  options: Omit<SpawnExecOptions, "execveat"> = {},
): number {
  if (binding.platform !== "linux") throw enosys("execveat");
  return spawnFexecve(fd, argv, envp, { ...options, execveat: true });
}

/**
 * waitpid(2): waits for child `pid` (or -1 for any child) to change state
 * and reaps it. With `options = WNOHANG` it returns null at once when the
 * child is still running — without WNOHANG it **blocks the event loop**
 * until the child ends; prefer {@link waitForExit} from async code.
 *
 * Errors: ECHILD (not our child, or already reaped), EINVAL (bad options).
 */
export function waitpid(pid: number, options = 0): WaitStatus | null {
  return binding.waitpid(pid, options);
}

/**
 * Resolves with the child's {@link WaitStatus} once it ends, without
 * blocking the event loop: polls waitpid(pid, WNOHANG) on a timer, starting
 * every 1 ms and backing off to every `maxIntervalMs` (default 20 ms).
 *
 * Polling was chosen over a pidfd (Linux 5.3+) so that one code path works
 * on Linux and macOS and needs no libuv handle in the addon; the cost is up
 * to `maxIntervalMs` of latency after the child exits.
 *
 * Rejects with ECHILD if the pid is not an unreaped child of this process.
 */
export function waitForExit(pid: number, maxIntervalMs = 20): Promise<WaitStatus> {
  return new Promise((resolve, reject) => {
    let interval = 1;
    const tick = (): void => {
      let r: WaitStatus | null;
      try {
        r = binding.waitpid(pid, C.WNOHANG!);
      } catch (e) {
        reject(e);
        return;
      }
      if (r) {
        resolve(r);
        return;
      }
      interval = Math.min(interval * 2, maxIntervalMs);
      setTimeout(tick, interval);
    };
    tick();
  });
}

// ------------------------------------------------------------------ unix sockets and fd passing

/** Flags for the socket-creating wrappers. */
export interface SocketFlags {
  /** close-on-exec (default true, like every fd Node opens). */
  cloexec?: boolean;
  /** O_NONBLOCK (default false). */
  nonblock?: boolean;
}

function sockFlags(f: SocketFlags | undefined): number {
  let n = 0;
  if (f?.cloexec ?? true) n |= C.SOCK_FLAG_CLOEXEC!;
  if (f?.nonblock ?? false) n |= C.SOCK_FLAG_NONBLOCK!;
  return n;
}

/**
 * socketpair(AF_UNIX, type, 0): a pair of connected unix sockets, as raw fds
 * `[a, b]`. `type` is SOCK_STREAM (default), SOCK_DGRAM or SOCK_SEQPACKET.
 * Hand one end to a child with child_process.spawn's `stdio` array (an fd
 * number in the array is dup'ed into the child) or {@link spawnFexecve}.
 *
 * Raw fds and Node sockets: wrapping a raw fd with `new net.Socket({ fd })`
 * lets libuv read from it, which discards any SCM_RIGHTS fds that arrive —
 * keep fds you pass descriptors over out of libuv's hands, or use them only
 * for data. Going the other way, a connected `net.Socket` on unix exposes its
 * fd as the internal `socket._handle.fd` (not a public API).
 *
 * Errors: EMFILE, ENFILE, EOPNOTSUPP/EPROTONOSUPPORT (bad type).
 */
export function socketpair(type = C.SOCK_STREAM!, flags?: SocketFlags): [number, number] {
  return binding.socketpair(type, sockFlags(flags));
}

/** socket(AF_UNIX, type, 0): a new unix socket fd. Errors: EMFILE, ENFILE, EPROTONOSUPPORT, EINVAL. */
export function socket(type = C.SOCK_STREAM!, flags?: SocketFlags): number {
  return binding.socket(type, sockFlags(flags));
}

/**
 * bind(2) of a unix socket to filesystem path `path` (or, on Linux, an
 * abstract name when `path` starts with "\0").
 * Errors: EADDRINUSE, EACCES, ENOENT, ENAMETOOLONG (over ~107 bytes), EINVAL.
 */
export function bind(fd: number, path: string): void {
  binding.bind(fd, path);
}

/** listen(2). Errors: EBADF, ENOTSOCK, EOPNOTSUPP, EINVAL. */
export function listen(fd: number, backlog = 128): void {
  binding.listen(fd, backlog);
}

/**
 * accept(2)/accept4(2): the next connection on listening socket `fd`, as a
 * new fd (close-on-exec by default). Blocks the event loop unless `fd` is
 * non-blocking (then EAGAIN when none is pending).
 * Errors: EAGAIN, EBADF, EINVAL, EMFILE, ENOTSOCK.
 */
export function accept(fd: number, flags?: SocketFlags): number {
  return binding.accept(fd, sockFlags(flags));
}

/**
 * connect(2) of a unix socket to `path` ("\0name" for a Linux abstract name).
 * Errors: ENOENT, ECONNREFUSED, EACCES, EAGAIN, ENAMETOOLONG, EISCONN.
 */
export function connect(fd: number, path: string): void {
  binding.connect(fd, path);
}

/**
 * sendmsg(2) with an SCM_RIGHTS control message: sends `data` and a
 * duplicate of `fd` (or of each fd in an array) over unix socket
 * `socketFd`. The receiver gets new descriptors for the same open files;
 * ours stay open. `data` defaults to one NUL byte because a stream socket
 * needs at least one byte of data to carry the control message. Returns the
 * number of data bytes sent. MSG_NOSIGNAL is set where it exists, so a
 * closed peer yields EPIPE instead of SIGPIPE.
 *
 * Errors: EBADF (a bad fd to send), ENOTSOCK, EPIPE, ECONNRESET, EAGAIN
 * (non-blocking and full), EINVAL (too many fds: at most 253), ETOOMANYREFS.
 */
export function sendFd(socketFd: number, fd: number | number[], data: Uint8Array = Buffer.alloc(1)): number {
  return binding.sendFds(socketFd, Array.isArray(fd) ? fd : [fd], data, 0);
}

/** What {@link recvFds} received. */
export interface RecvResult {
  /** the data bytes (length 0 at end of stream). */
  data: Buffer;
  /** the descriptors received, in order (new fds of this process). */
  fds: number[];
  /**
   * true when data or descriptors did not fit (MSG_TRUNC/MSG_CTRUNC, or more
   * than `maxFds` arrived). Descriptors past `maxFds` are closed, never leaked.
   * On a stream socket, data that did not fit stays queued for the next call.
   */
  truncated: boolean;
}

export interface RecvOptions {
  /** largest number of data bytes to take in one call (default 4096). */
  maxData?: number;
  /** largest number of fds to accept in one call (default 16, at most 253). */
  maxFds?: number;
  /** MSG_DONTWAIT: fail with EAGAIN instead of blocking (default false). */
  nonblock?: boolean;
  /** MSG_CMSG_CLOEXEC on Linux: received fds are close-on-exec (default true). */
  cloexec?: boolean;
}

/**
 * recvmsg(2), collecting SCM_RIGHTS descriptors: receives up to `maxData`
 * bytes and any fds sent with them. **Blocks the event loop** on a blocking
 * socket until something arrives — use `nonblock` (or a non-blocking
 * socket) and retry on EAGAIN from async code.
 *
 * Errors: EAGAIN (nothing queued, non-blocking), EBADF, ENOTSOCK, ECONNRESET,
 * EINVAL (maxData < 1 or maxFds out of range).
 */
export function recvFds(socketFd: number, options: RecvOptions = {}): RecvResult {
  let flags = 0;
  if (options.nonblock) flags |= C.MSG_DONTWAIT!;
  if (options.cloexec ?? true) flags |= C.MSG_CMSG_CLOEXEC ?? 0;
  return binding.recvFds(socketFd, options.maxData ?? 4096, options.maxFds ?? 16, flags);
}

/**
 * recvmsg(2) for one descriptor: `{fd, data}` where `fd` is the first
 * descriptor received or -1 if the message carried none (further ones, if
 * any, are in `fds`). Same blocking behaviour and errors as {@link recvFds}.
 */
export function recvFd(socketFd: number, options: RecvOptions = {}): RecvResult & { fd: number } {
  const r = recvFds(socketFd, options);
  return { ...r, fd: r.fds.length > 0 ? r.fds[0]! : -1 };
}

/** Credentials of the process at the other end of a unix socket. */
export interface PeerCred {
  pid: number;
  uid: number;
  gid: number;
}

/**
 * getsockopt(SO_PEERCRED) on Linux, LOCAL_PEERCRED + LOCAL_PEERPID on macOS:
 * the pid, effective uid and gid of the peer of connected unix socket
 * `socketFd`, as of when it connected (or called socketpair). On macOS `gid`
 * is the first group of the peer's credentials.
 *
 * Errors: EBADF, ENOTSOCK, ENOTCONN, EINVAL.
 */
export function getPeerCred(socketFd: number): PeerCred {
  return binding.getPeerCred(socketFd);
}

// ------------------------------------------------------------------ reflinks, statfs

/**
 * ioctl(dstFd, FICLONE, srcFd) (Linux): makes the file at `dstFd` share all
 * of `srcFd`'s data blocks copy-on-write (a reflink), replacing its
 * contents. Works on btrfs, XFS with reflink=1, bcachefs, OCFS2 and some
 * others; `dstFd` must be open for writing.
 *
 * Errors: EOPNOTSUPP (reported as "ENOTSUP": the filesystem has no reflink,
 * e.g. ext4 or tmpfs), EXDEV (different filesystems), EINVAL (not regular
 * files, or unaligned), EBADF (dst not writable), EISDIR, EPERM (dst
 * immutable/append-only), ETXTBSY (dst is a swap file), ENOSYS (not Linux).
 * Which of EOPNOTSUPP/EINVAL/ENOTTY a non-reflink filesystem returns varies
 * by filesystem and kernel: treat all of them as "no reflink here".
 */
export function ficlone(srcFd: number, dstFd: number): void {
  need("ficlone", "ioctl(FICLONE)")(srcFd, dstFd);
}

/**
 * clonefile(2) (macOS): creates `dst` as a copy-on-write clone of `src`
 * (a file or a whole directory tree), on the same APFS volume. `flags`:
 * CLONE_NOFOLLOW, CLONE_NOOWNERCOPY.
 *
 * Errors: EEXIST (dst exists), ENOENT, EXDEV (different volumes), ENOTSUP
 * (the volume cannot clone), EACCES, ENOSYS (not macOS).
 */
export function clonefile(src: string, dst: string, flags = 0): void {
  need("clonefile", "clonefile")(src, dst, flags);
}

/** Result of {@link statfs}. Sizes are in blocks of `bsize` bytes. */
export interface StatfsResult {
  /** f_type: the filesystem's magic number. */
  type: number;
  /**
   * The filesystem's name: on macOS `f_fstypename` ("apfs", "hfs", …); on
   * Linux the name {@link fsTypeName} knows for `type`, or undefined.
   */
  typeName?: string;
  bsize: number;
  blocks: number;
  bfree: number;
  bavail: number;
  files: number;
  ffree: number;
}

/**
 * Linux f_type magic numbers for common filesystems (from linux/magic.h and
 * the filesystems' sources).
 */
export const FS_MAGIC: Readonly<Record<string, number>> = Object.freeze({
  tmpfs: 0x01021994,
  ramfs: 0x858458f6,
  ext4: 0xef53, // ext2/ext3/ext4 share one magic
  xfs: 0x58465342,
  btrfs: 0x9123683e,
  overlayfs: 0x794c7630,
  fuse: 0x65735546,
  fuseblk: 0x65735546,
  nfs: 0x6969,
  zfs: 0x2fc12fc1,
  bcachefs: 0xca451a4e,
  f2fs: 0xf2f52010,
  vfat: 0x4d44,
  exfat: 0x2011bab0,
  ntfs: 0x5346544e,
  squashfs: 0x73717368,
  iso9660: 0x9660,
  proc: 0x9fa0,
  sysfs: 0x62656572,
  cgroup2: 0x63677270,
  devpts: 0x1cd1,
  "9p": 0x01021997,
  ecryptfs: 0xf15f,
  cifs: 0xff534d42,
  smb2: 0xfe534d42,
});

const MAGIC_NAMES = new Map<number, string>();
for (const [name, magic] of Object.entries(FS_MAGIC)) if (!MAGIC_NAMES.has(magic)) MAGIC_NAMES.set(magic, name);

/**
 * Name for a Linux f_type magic number ("tmpfs", "ext4" — ext2/3/4 share one
 * magic —, "xfs", "btrfs", "overlayfs", "fuse", …), or undefined. On macOS
 * f_type numbers are not stable; use {@link statfs}`.typeName` there.
 */
export function fsTypeName(type: number): string | undefined {
  return MAGIC_NAMES.get(type >>> 0);
}

/**
 * As mknod(2): creates a FIFO, socket, character or block device node at
 * `path`. `mode` holds the S_IFMT type (S_IFIFO, S_IFSOCK, S_IFCHR,
 * S_IFBLK) and the permission bits (the process umask applies); `rdev` is
 * the device number of a device node (`makedev(major, minor)`, as in
 * `fs.Stats.rdev`), ignored otherwise. Device nodes need CAP_MKNOD.
 *
 * Errors: EEXIST, ENOENT, ENOTDIR, EACCES, EPERM (a device node without
 * CAP_MKNOD), EINVAL (a type mknod(2) does not create), EROFS, ENOSPC;
 * the error carries `path`.
 */
export function mknod(path: string, mode: number, rdev: number): void {
  binding.mknod(path, mode, rdev);
}

/**
 * statfs(2): filesystem facts for the filesystem holding `path`: `type`
 * (f_type), `typeName` (see {@link StatfsResult}), block size and counts.
 *
 * Errors: ENOENT, ENOTDIR, EACCES, ELOOP, ENAMETOOLONG, EIO, ENOSYS (f_type
 * unsupported); the error carries `path`.
 */
export function statfs(path: string): StatfsResult {
  const r = binding.statfs(path);
  if (r.typeName === undefined) {
    const name = fsTypeName(r.type);
    if (name !== undefined) r.typeName = name;
  }
  return r;
}

/**
 * statfs(2)'s f_type for the filesystem holding `path` (e.g. 0x01021994 for
 * tmpfs). Name it with {@link fsTypeName} or {@link statfsTypeName}.
 * Errors: as {@link statfs}.
 */
export function statfsType(path: string): number {
  return binding.statfs(path).type;
}

/**
 * The filesystem type name for `path`: "tmpfs", "ext4", "xfs", "btrfs",
 * "overlayfs", "fuse", … on Linux (undefined for an unknown magic); macOS's
 * f_fstypename ("apfs", "hfs", "smbfs", …) there. Errors: as {@link statfs}.
 */
export function statfsTypeName(path: string): string | undefined {
  return statfs(path).typeName;
}
export * from "./fuse.js";
