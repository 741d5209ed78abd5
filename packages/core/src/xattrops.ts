/**
 * Extended-attribute operations of `FsCore` on one inode row, as Linux
 * applies them: which namespaces a caller may read or write (trusted.* is
 * root's only and hidden from others; user.* only on regular files and
 * directories), write permission, and the XATTR_CREATE / XATTR_REPLACE
 * flags. The codec and name rules are in xattr.ts; `FsCore` resolves the
 * path and stores the encoded map these functions return.
 *
 * Errors are `StoreError`s with the errno name as `code`.
 */
import { StoreError } from "./errors.js";
import type { InodeRow } from "./manifest.js";
import { mayAccess, W_OK, type Credentials } from "./access.js";
import { S_IFDIR, S_IFMT, S_IFREG } from "./modes.js";
import { decodeXattrs, encodeXattrs, XATTR_CREATE, XATTR_REPLACE, XATTR_SIZE_MAX } from "./xattr.js";

/**
 * The value of attribute `name` of `row` as getxattr(2) returns it to `cred`
 * (`name` already checked with `checkXattrName`). Errors: ENODATA when
 * absent, or a trusted.* attribute asked for by a caller other than root.
 */
export function xattrValue(cred: Credentials, row: InodeRow, name: string): Buffer {
  const v = decodeXattrs(row.xattrs).get(name);
  if (!v) throw new StoreError("ENODATA", `no attribute ${name}`);
  if (name.startsWith("trusted.") && cred.uid !== 0) throw new StoreError("ENODATA", `no attribute ${name}`);
  return v;
}

/** The attribute names of `row` listxattr(2) shows `cred`, sorted (trusted.* only to root). Errors: EIO (damaged record). */
export function xattrNames(cred: Credentials, row: InodeRow): string[] {
  const names = [...decodeXattrs(row.xattrs).keys()];
  return cred.uid === 0 ? names : names.filter((n) => !n.startsWith("trusted."));
}

/** Checks a setxattr(2) value's size. Errors: E2BIG over XATTR_SIZE_MAX (65,536) bytes. */
export function checkXattrValue(value: Uint8Array): void {
  if (value.length > XATTR_SIZE_MAX) throw new StoreError("E2BIG", `xattr value larger than ${XATTR_SIZE_MAX} bytes`);
}

/**
 * Whether `cred` may set or remove attribute `name` of `row`. Errors: EPERM
 * for user.* on anything but a regular file or directory, or trusted.* by a
 * caller other than root; EACCES for a caller who is neither root, the owner
 * nor allowed to write the file.
 */
export function checkXattrWrite(cred: Credentials, row: InodeRow, name: string): void {
  const type = row.mode & S_IFMT;
  if (name.startsWith("user.") && type !== S_IFREG && type !== S_IFDIR) throw new StoreError("EPERM", "user xattrs are only allowed on regular files and directories");
  if (name.startsWith("trusted.") && cred.uid !== 0) throw new StoreError("EPERM", "trusted xattrs need root");
  if (cred.uid !== 0 && cred.uid !== row.uid && !mayAccess(cred, row, W_OK)) throw new StoreError("EACCES", "permission denied");
}

/**
 * The encoded attributes of `row` after setxattr(2) of `name` = `value` by
 * `cred` (`name` and the value's size already checked); `flags` is 0,
 * XATTR_CREATE (1) or XATTR_REPLACE (2). Errors: as `checkXattrWrite`;
 * EEXIST (XATTR_CREATE, present), ENODATA (XATTR_REPLACE, absent).
 */
export function xattrsWithSet(cred: Credentials, row: InodeRow, name: string, value: Uint8Array, flags: number): Buffer | null {
  checkXattrWrite(cred, row, name);
  const m = decodeXattrs(row.xattrs);
  if (flags & XATTR_CREATE && m.has(name)) throw new StoreError("EEXIST", `attribute ${name} exists`);
  if (flags & XATTR_REPLACE && !m.has(name)) throw new StoreError("ENODATA", `no attribute ${name}`);
  m.set(name, Buffer.from(value));
  return encodeXattrs(m);
}

/**
 * The encoded attributes of `row` after removexattr(2) of `name` by `cred`
 * (null when none are left). Errors: as `checkXattrWrite`; ENODATA when
 * absent.
 */
export function xattrsWithRemoved(cred: Credentials, row: InodeRow, name: string): Buffer | null {
  checkXattrWrite(cred, row, name);
  const m = decodeXattrs(row.xattrs);
  if (!m.delete(name)) throw new StoreError("ENODATA", `no attribute ${name}`);
  return encodeXattrs(m);
}
