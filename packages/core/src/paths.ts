/**
 * Path and name validation shared by every operation: NUL bytes, the
 * 255-byte name and 4096-byte path limits (as Linux NAME_MAX and PATH_MAX).
 */
import { StoreError } from "./errors.js";

/** Longest name in bytes (NAME_MAX). */
export const NAME_MAX = 255;
/** Longest path in bytes including the terminating NUL (PATH_MAX): paths of 4096 bytes or more fail. */
export const PATH_MAX = 4096;

/** A parsed path: its components (no empty or "." entries; ".." kept) and whether it ended in "/". */
export interface ParsedPath {
  parts: string[];
  absolute: boolean;
  trailingSlash: boolean;
}

/**
 * Parses and validates a path. Errors: ENOENT for an empty path, EINVAL for a
 * NUL byte, ENAMETOOLONG for a path of `pathMax` bytes or more (default
 * PATH_MAX; `Infinity` turns the whole-path check off) or a component over
 * NAME_MAX bytes.
 */
export function parsePath(path: string, pathMax: number = PATH_MAX): ParsedPath {
  if (typeof path !== "string") throw new StoreError("EINVAL", `path must be a string, got ${typeof path}`);
  if (path.length === 0) throw new StoreError("ENOENT", "empty path");
  if (path.includes("\0")) throw new StoreError("EINVAL", "path contains a NUL byte");
  if (pathMax !== Infinity && Buffer.byteLength(path) >= pathMax) throw new StoreError("ENAMETOOLONG", `path is ${Buffer.byteLength(path)} bytes; the limit is ${pathMax - 1}`);
  const parts: string[] = [];
  for (const c of path.split("/")) {
    if (c === "" || c === ".") continue;
    if (c.length > NAME_MAX / 4 && Buffer.byteLength(c) > NAME_MAX) {
      throw new StoreError("ENAMETOOLONG", `name '${c.slice(0, 32)}…' is ${Buffer.byteLength(c)} bytes; the limit is ${NAME_MAX}`);
    }
    parts.push(c);
  }
  return { parts, absolute: path.startsWith("/"), trailingSlash: /\/\.?$/.test(path) && parts.length > 0 };
}

/**
 * Validates one directory entry name. Errors: EINVAL for "", ".", "..", a
 * name with "/" or NUL; ENAMETOOLONG over NAME_MAX bytes.
 */
export function checkName(name: string): void {
  if (name === "" || name === "." || name === ".." || name.includes("/") || name.includes("\0")) {
    throw new StoreError("EINVAL", `invalid name ${JSON.stringify(name)}`);
  }
  if (Buffer.byteLength(name) > NAME_MAX) throw new StoreError("ENAMETOOLONG", `name is ${Buffer.byteLength(name)} bytes; the limit is ${NAME_MAX}`);
}

/** Joins components into an absolute path ("/" for none). */
export function joinParts(parts: string[]): string {
  return "/" + parts.join("/");
}
