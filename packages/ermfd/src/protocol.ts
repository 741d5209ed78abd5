/**
 * The ermfd fd-passing wire protocol, version 1 (see README.md, "fd-passing
 * protocol"). All integers are little-endian. One unix stream socket
 * connection carries any number of request/reply pairs, strictly in turn.
 *
 * Request (12-byte header + path):
 *
 * | off | size | field |
 * | --- | --- | --- |
 * | 0 | 4 | magic `"AGFD"` (0x41 0x47 0x46 0x44) |
 * | 4 | 1 | version = 1 |
 * | 5 | 1 | flags: bit 0 `FLAG_SEAL` (seal read-only), bit 1 `FLAG_NOFOLLOW` |
 * | 6 | 2 | reserved, 0 |
 * | 8 | 4 | path length in bytes (1 … 4096) |
 * | 12 | n | path, UTF-8, absolute within the store, no NUL |
 *
 * Reply (24 bytes; on success one fd attached with SCM_RIGHTS):
 *
 * | off | size | field |
 * | --- | --- | --- |
 * | 0 | 4 | magic `"AGFD"` |
 * | 4 | 1 | version = 1 |
 * | 5 | 3 | reserved, 0 |
 * | 8 | 4 | status: 0, or a positive Linux errno number (ENOENT = 2, …) |
 * | 12 | 8 | file size in bytes (0 on error) |
 * | 20 | 4 | st_mode of the stored file (0 on error) |
 */
import os from "node:os";

/** The 4 magic bytes that start every request and reply: ASCII "AGFD". */
export const MAGIC = Buffer.from("AGFD", "ascii");
/** Protocol version spoken by this implementation. */
export const PROTOCOL_VERSION = 1;
/** Size of a request header in bytes (the path follows). */
export const REQUEST_HEADER_SIZE = 12;
/** Size of a reply in bytes. */
export const REPLY_SIZE = 24;
/** Longest path accepted, in bytes (PATH_MAX). */
export const MAX_PATH_BYTES = 4096;
/** Request flag: seal the memfd read-only (F_SEAL_WRITE | F_SEAL_GROW | F_SEAL_SHRINK | F_SEAL_SEAL). */
export const FLAG_SEAL = 1;
/** Request flag: do not follow a final symlink (ELOOP instead), as O_NOFOLLOW. */
export const FLAG_NOFOLLOW = 2;

/** A decoded request. */
export interface FdRequest {
  version: number;
  flags: number;
  path: string;
}

/** A decoded reply (the fd travels beside it as SCM_RIGHTS). */
export interface FdReply {
  version: number;
  /** 0 or a positive errno number. */
  status: number;
  size: number;
  mode: number;
}

/** Encodes a request for `path` with `flags` (FLAG_*). Throws RangeError for an empty or too long path. */
export function encodeRequest(path: string, flags = 0): Buffer {
  const p = Buffer.from(path, "utf8");
  if (p.length === 0 || p.length > MAX_PATH_BYTES) throw new RangeError(`path must be 1..${MAX_PATH_BYTES} bytes`);
  const b = Buffer.alloc(REQUEST_HEADER_SIZE + p.length);
  MAGIC.copy(b, 0);
  b[4] = PROTOCOL_VERSION;
  b[5] = flags;
  b.writeUInt32LE(p.length, 8);
  p.copy(b, REQUEST_HEADER_SIZE);
  return b;
}

/** Result of trying to decode a request from the front of a buffer. */
export type DecodeResult =
  | { kind: "need-more" }
  | { kind: "ok"; request: FdRequest; consumed: number }
  /** A malformed request: `errno` is the name to reply with (EPROTO, EPROTONOSUPPORT, ENAMETOOLONG, EINVAL); the connection is then closed. */
  | { kind: "error"; errno: string; message: string };

/** Decodes one request from the start of `buf`, if complete. */
export function decodeRequest(buf: Buffer): DecodeResult {
  if (buf.length >= 4 && !buf.subarray(0, 4).equals(MAGIC)) return { kind: "error", errno: "EPROTO", message: "bad magic" };
  if (buf.length < REQUEST_HEADER_SIZE) return { kind: "need-more" };
  if (buf[4] !== PROTOCOL_VERSION) return { kind: "error", errno: "EPROTONOSUPPORT", message: `unsupported protocol version ${buf[4]}` };
  const len = buf.readUInt32LE(8);
  if (len === 0) return { kind: "error", errno: "EINVAL", message: "empty path" };
  if (len > MAX_PATH_BYTES) return { kind: "error", errno: "ENAMETOOLONG", message: `path of ${len} bytes` };
  if (buf.length < REQUEST_HEADER_SIZE + len) return { kind: "need-more" };
  const raw = buf.subarray(REQUEST_HEADER_SIZE, REQUEST_HEADER_SIZE + len);
  if (raw.includes(0)) return { kind: "error", errno: "EINVAL", message: "NUL in path" };
  return { kind: "ok", request: { version: buf[4]!, flags: buf[5]!, path: raw.toString("utf8") }, consumed: REQUEST_HEADER_SIZE + len };
}

/** Positive errno number for an errno name (Linux numbering on Linux); EIO's for unknown names. */
export function errnoNumber(code: string | undefined): number {
  const t = os.constants.errno as Record<string, number>;
  return (code !== undefined ? t[code] : undefined) ?? t.EIO ?? 5;
}

/** Encodes a reply. `status` is 0 or a positive errno number. */
export function encodeReply(status: number, size = 0, mode = 0): Buffer {
  const b = Buffer.alloc(REPLY_SIZE);
  MAGIC.copy(b, 0);
  b[4] = PROTOCOL_VERSION;
  b.writeInt32LE(status, 8);
  b.writeBigUInt64LE(BigInt(size), 12);
  b.writeUInt32LE(mode >>> 0, 20);
  return b;
}

/** Decodes a reply. Throws Error with code EPROTO when it is short or lacks the magic. */
export function decodeReply(buf: Buffer): FdReply {
  if (buf.length < REPLY_SIZE || !buf.subarray(0, 4).equals(MAGIC)) {
    const e = new Error("EPROTO: malformed ermfd reply") as NodeJS.ErrnoException;
    e.code = "EPROTO";
    throw e;
  }
  return { version: buf[4]!, status: buf.readInt32LE(8), size: Number(buf.readBigUInt64LE(12)), mode: buf.readUInt32LE(20) };
}
