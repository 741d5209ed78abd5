/**
 * How `FsCore` reports errors: a `StoreError` raised deep in the store (an
 * errno name and a detail) becomes an `FsError` naming the system call and
 * paths, shaped like Node's fs errors; anything else thrown by an
 * asynchronous call becomes EIO.
 */
import { FsError, StoreError, type ErrnoName } from "./errors.js";

/** Details that only repeat the errno's meaning: left out of the message. */
const GENERIC_DETAIL: Record<string, string> = {
  ENOENT: "no such file or directory", EEXIST: "file exists", ENOTDIR: "not a directory", EISDIR: "is a directory",
  ENOTEMPTY: "directory not empty", EACCES: "permission denied",
};

function isGeneric(code: ErrnoName, detail: string): boolean {
  return GENERIC_DETAIL[code] === detail;
}

/**
 * `e` as an FsError with the same errno name, naming `syscall`, `path` and
 * `dest`, with `e`'s detail unless it only repeats the errno's meaning.
 * `stacks` false: without a stack trace (`FsError.withoutStack`; EIO keeps
 * its stack).
 */
export function fsErrorOf(e: StoreError, syscall: string, path?: string, dest?: string, stacks = true): FsError {
  const detail = e.message.replace(/^[A-Z0-9]+: /, "");
  const d = isGeneric(e.code, detail) ? undefined : detail;
  return stacks ? new FsError(e.code, syscall, path, dest, d) : FsError.withoutStack(e.code, syscall, path, dest, d);
}

/**
 * Any error of an asynchronous call as an FsError naming `syscall`: an
 * FsError as it is, a StoreError with its errno name (`fsErrorOf`), an error
 * with an errno-like `code` ("E…") with that code, anything else EIO with
 * its message as the detail.
 */
export function asFsError(e: unknown, syscall: string): FsError {
  if (e instanceof FsError) return e;
  if (e instanceof StoreError) return fsErrorOf(e, syscall);
  const code = (e as { code?: unknown })?.code;
  if (typeof code === "string" && /^E[A-Z0-9]+$/.test(code)) return new FsError(code as ErrnoName, syscall);
  return new FsError("EIO", syscall, undefined, undefined, e instanceof Error ? e.message : String(e));
}
