import { constants as osConstants } from "node:os";

/** Errno names agentfs raises; each maps to the platform's positive errno number. */
export type ErrnoName =
  | "EPERM" | "ENOENT" | "EIO" | "EBADF" | "EACCES" | "EBUSY" | "EEXIST" | "EXDEV"
  | "ENOTDIR" | "EISDIR" | "EINVAL" | "EFBIG" | "ENOSPC" | "EROFS" | "EMLINK"
  | "ENAMETOOLONG" | "ENOTEMPTY" | "ELOOP" | "ENODATA" | "ENOTSUP" | "ERANGE"
  | "E2BIG" | "EMFILE" | "ENOSYS" | "EAGAIN" | "ESTALE" | "ENXIO";

const DESCRIPTIONS: Record<ErrnoName, string> = {
  EPERM: "operation not permitted",
  ENOENT: "no such file or directory",
  EIO: "i/o error",
  EBADF: "bad file descriptor",
  EACCES: "permission denied",
  EBUSY: "resource busy or locked",
  EEXIST: "file already exists",
  EXDEV: "cross-device link not permitted",
  ENOTDIR: "not a directory",
  EISDIR: "illegal operation on a directory",
  EINVAL: "invalid argument",
  EFBIG: "file too large",
  ENOSPC: "no space left on device",
  EROFS: "read-only file system",
  EMLINK: "too many links",
  ENAMETOOLONG: "name too long",
  ENOTEMPTY: "directory not empty",
  ELOOP: "too many symbolic links encountered",
  ENODATA: "no data available",
  ENOTSUP: "operation not supported on socket",
  ERANGE: "result too large",
  E2BIG: "argument list too long",
  EMFILE: "too many open files",
  ENOSYS: "function not implemented",
  EAGAIN: "resource temporarily unavailable",
  ESTALE: "stale file handle",
  ENXIO: "no such device or address",
};

/** Positive errno number for `code` on this platform (e.g. errnoNumber("ENOENT") === 2 on Linux). */
export function errnoNumber(code: ErrnoName): number {
  const n = (osConstants.errno as Record<string, number>)[code];
  return n ?? 5; // EIO if the platform lacks the name
}

/**
 * An errno-coded error shaped like Node's own `fs` errors: `code` is the errno
 * name, `errno` the negative errno number (as libuv reports it), `syscall` the
 * operation, `path`/`dest` the paths involved. The message reads like Node's:
 * `ENOENT: no such file or directory, open '/a/b'`, optionally followed by a
 * detail sentence (`(object 3fa2… failed its SHA-256 check)`).
 */
export class FsError extends Error {
  /**
   * As `new FsError(...)` but without capturing a stack trace (`stack` is
   * just the "Error: message" line), for front ends that only pass the errno
   * on (the FUSE daemon answering ENOENT to a lookup): capturing the stack is
   * most of the cost of a negative answer. EIO keeps its stack, as it reports
   * a fault someone may need to trace.
   */
  static withoutStack(code: ErrnoName, syscall: string, path?: string, dest?: string, detail?: string): FsError {
    if (code === "EIO") return new FsError(code, syscall, path, dest, detail);
    const limit = Error.stackTraceLimit;
    Error.stackTraceLimit = 0;
    try {
      return new FsError(code, syscall, path, dest, detail);
    } finally {
      Error.stackTraceLimit = limit;
    }
  }

  readonly code: ErrnoName;
  readonly errno: number;
  readonly syscall: string;
  readonly path?: string;
  readonly dest?: string;

  constructor(code: ErrnoName, syscall: string, path?: string, dest?: string, detail?: string) {
    let msg = `${code}: ${DESCRIPTIONS[code]}, ${syscall}`;
    if (path !== undefined) msg += ` '${path}'`;
    if (dest !== undefined) msg += ` -> '${dest}'`;
    if (detail) msg += ` (${detail})`;
    super(msg);
    this.name = "Error";
    this.code = code;
    this.errno = -errnoNumber(code);
    this.syscall = syscall;
    if (path !== undefined) this.path = path;
    if (dest !== undefined) this.dest = dest;
  }
}

/**
 * Raised deep inside the store, before the syscall and path are known.
 * `FsCore` rewraps it into an `FsError` naming the operation and path.
 */
export class StoreError extends Error {
  readonly code: ErrnoName;
  constructor(code: ErrnoName, detail: string) {
    if (rewrapDepth > 0) {
      // Inside `rewrappingStoreErrors`: the caller turns this into an FsError
      // with its own stack, so capturing one here would be wasted work.
      const limit = Error.stackTraceLimit;
      Error.stackTraceLimit = 0;
      try {
        super(`${code}: ${detail}`);
      } finally {
        Error.stackTraceLimit = limit;
      }
    } else super(`${code}: ${detail}`);
    this.code = code;
  }
}

/** How many `rewrappingStoreErrors` calls are running (synchronously) right now. */
let rewrapDepth = 0;

/**
 * Runs `fn` promising that any StoreError it throws is caught and rewrapped
 * (into an FsError naming the operation) by the caller, so StoreErrors
 * created meanwhile skip capturing a stack trace. For synchronous `fn` only.
 */
export function rewrappingStoreErrors<T>(fn: () => T): T {
  rewrapDepth++;
  try {
    return fn();
  } finally {
    rewrapDepth--;
  }
}

/** Throws `new StoreError(code, detail)`; typed `never` for control flow. */
export function fail(code: ErrnoName, detail = DESCRIPTIONS[code]): never {
  throw new StoreError(code, detail);
}

/** True when `e` is an agentfs error (FsError or StoreError) with errno name `code`. */
export function isErrno(e: unknown, code?: ErrnoName): e is FsError | StoreError {
  return (e instanceof FsError || e instanceof StoreError) && (code === undefined || e.code === code);
}
