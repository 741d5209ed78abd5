/**
 * Extended attributes stored with an inode version: encoding of the
 * name → value map and the Linux rules for names and sizes.
 */
import { StoreError } from "./errors.js";

/** Longest xattr name in bytes (XATTR_NAME_MAX). */
export const XATTR_NAME_MAX = 255;
/** Largest xattr value in bytes (XATTR_SIZE_MAX). */
export const XATTR_SIZE_MAX = 65536;
/** setxattr(2) flag: fail with EEXIST if the attribute exists. */
export const XATTR_CREATE = 1;
/** setxattr(2) flag: fail with ENODATA if the attribute does not exist. */
export const XATTR_REPLACE = 2;

const NAMESPACES = ["user.", "trusted.", "security.", "system."];

/** Checks an xattr name. Errors: ENOTSUP for an unknown namespace, ERANGE for an over-long or empty name. */
export function checkXattrName(name: string): void {
  if (!NAMESPACES.some((ns) => name.startsWith(ns) && name.length > ns.length)) {
    throw new StoreError("ENOTSUP", `xattr name ${JSON.stringify(name)} is not in the user., trusted., security. or system. namespace`);
  }
  if (Buffer.byteLength(name) > XATTR_NAME_MAX) throw new StoreError("ERANGE", `xattr name is longer than ${XATTR_NAME_MAX} bytes`);
}

/** Decodes an xattr blob (u32 count, then per entry u16 name length, name, u32 value length, value). */
export function decodeXattrs(buf: Buffer | null): Map<string, Buffer> {
  const m = new Map<string, Buffer>();
  if (!buf || buf.length === 0) return m;
  try {
    let p = 0;
    const n = buf.readUInt32LE(p);
    p += 4;
    for (let i = 0; i < n; i++) {
      const nl = buf.readUInt16LE(p);
      p += 2;
      const name = buf.toString("utf8", p, p + nl);
      p += nl;
      const vl = buf.readUInt32LE(p);
      p += 4;
      if (p + vl > buf.length) throw new RangeError("truncated");
      m.set(name, Buffer.from(buf.subarray(p, p + vl)));
      p += vl;
    }
  } catch {
    throw new StoreError("EIO", "manifest damaged: bad xattr record");
  }
  return m;
}

/** Encodes an xattr map; returns null for an empty map. */
export function encodeXattrs(m: Map<string, Buffer>): Buffer | null {
  if (m.size === 0) return null;
  const parts: Buffer[] = [];
  const head = Buffer.alloc(4);
  head.writeUInt32LE(m.size);
  parts.push(head);
  for (const name of [...m.keys()].sort()) {
    const nb = Buffer.from(name);
    const v = m.get(name)!;
    const h = Buffer.alloc(2);
    h.writeUInt16LE(nb.length);
    const vl = Buffer.alloc(4);
    vl.writeUInt32LE(v.length);
    parts.push(h, nb, vl, v);
  }
  return Buffer.concat(parts);
}
