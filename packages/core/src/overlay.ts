/**
 * Overlay over a host directory: a `Lower` is the read-only bottom of a
 * layer chain that lives in a host directory instead of the manifest. The
 * manifest consults it only where the layers hold no row: a lookup of
 * `(parent, name)` with no dentry row (a whiteout row hides the host entry),
 * an inode with no version (a tombstone hides it), and `list` merges the
 * host entries that no row of the layers names.
 *
 * Inode numbers of host entries are derived, not allocated:
 * `lowerIno(st_ino)` = `LOWER_INO_BASE + (st_ino XOR 2^31)` (the host directory must be one filesystem, so
 * st_ino is unique there). They are therefore stable across reopen without
 * any write, one per host inode (hard links share it), and never collide
 * with allocated numbers (which count up from 2). Where an inode number
 * was first seen (its host path relative to the lower root) is kept in
 * memory and persisted in table `overlay_paths` at the next write
 * transaction (the latest sighting wins), so a renamed lower directory
 * still finds its host children after reopen.
 *
 * The host directory is never written by anything here: files are opened
 * O_RDONLY (with O_NOATIME where permitted).
 */
import { closeSync, constants as C, lstatSync, openSync, readdirSync, readlinkSync, readSync, type BigIntStats } from "node:fs";
import { join } from "node:path";
import type Database from "better-sqlite3";
import { getAttributeSync, listAttributesSync } from "@napi-rs/xattr";
import { StoreError } from "./errors.js";
import type { InodeRow } from "./manifest.js";
import { encodeXattrs } from "./xattr.js";

/** First inode number of host (lower) entries: 2^48. Host st_ino must be below 2^52 - 2^48. */
export const LOWER_INO_BASE = 2 ** 48;
/**
 * `InodeRow.rdev` marker of a regular file whose bytes are still the lower
 * (host) file's: no data was copied up yet. Reported as rdev 0 by stat.
 */
export const LOWER_DATA = -1;
/** Root inode number (as manifest.ROOT_INO; duplicated to avoid an import cycle). */
const ROOT = 1;
const S_IFMT = 0o170000;
const S_IFREG = 0o100000;
const S_IFDIR = 0o040000;
const S_IFLNK = 0o120000;

/** SQL of the table that persists first-seen host paths of lower inodes (created only in overlay stores). */
export const OVERLAY_SCHEMA = `CREATE TABLE IF NOT EXISTS overlay_paths(root INTEGER NOT NULL, ino INTEGER NOT NULL, path TEXT NOT NULL, PRIMARY KEY(root, ino)) WITHOUT ROWID`;

/** Meta key naming the host directory of an overlay root layer. */
export function lowerMetaKey(rootLayer: number): string {
  return `lower:${rootLayer}`;
}

/**
 * The inode number of the host inode `st_ino` in an overlay:
 * `LOWER_INO_BASE + (st_ino XOR 2^31)`. A bijection, so one number per host
 * inode. Flipping bit 31 keeps the low 32 bits (what a 32-bit st_ino fold
 * such as the FUSE front end's keeps) of host inodes below 2^31 in
 * [2^31, 2^32), apart from allocated numbers, which count up from 2.
 * Errors: EIO when st_ino is about 2^53 - 2^48 - 2^31 or more (the result would not be a safe integer).
 */
export function lowerIno(stIno: bigint | number): number {
  const x = BigInt(stIno);
  if (x >= BigInt(Number.MAX_SAFE_INTEGER - LOWER_INO_BASE) - 0x80000000n) throw new StoreError("EIO", `host inode number ${x} is too large for an overlay`);
  return LOWER_INO_BASE + Number(x ^ 0x80000000n);
}

/** True when `ino` is a host-derived inode number. */
export function isLowerIno(ino: number): boolean {
  return ino >= LOWER_INO_BASE;
}

/**
 * The `user.*` extended attributes of the host file or directory at
 * absolute path `abs` (`mode`: its st_mode) as a manifest xattr blob
 * (`encodeXattrs`); null for other types, when it has none, or when they
 * cannot be read.
 */
export function hostXattrBlob(abs: string, mode: number): Buffer | null {
  const type = mode & S_IFMT;
  if (type !== S_IFREG && type !== S_IFDIR) return null;
  try {
    const names = listAttributesSync(abs).filter((n) => n.startsWith("user."));
    if (names.length === 0) return null;
    const m = new Map<string, Buffer>();
    for (const n of names) m.set(n, Buffer.from(getAttributeSync(abs, n) ?? Buffer.alloc(0)));
    return encodeXattrs(m);
  } catch {
    return null;
  }
}

/**
 * Builds an InodeRow from a host lstat (bigint, ns times) and its xattr blob
 * (`hostXattrBlob`); regular files get `rdev` LOWER_DATA.
 */
export function rowFromHost(ino: number, st: BigIntStats, target: string | null, xattrs: Buffer | null = null): InodeRow {
  const mode = Number(st.mode);
  const type = mode & S_IFMT;
  return {
    ino, mode, uid: Number(st.uid), gid: Number(st.gid), nlink: Number(st.nlink), size: Number(st.size),
    rdev: type === S_IFREG ? LOWER_DATA : Number(st.rdev),
    atime: st.atimeNs, mtime: st.mtimeNs, ctime: st.ctimeNs, btime: st.birthtimeNs || st.ctimeNs,
    target: type === S_IFLNK ? target : null, extents: null, xattrs,
  };
}

/**
 * The host directory under an overlay chain. `root` is the absolute host
 * path; `rootLayer` the manifest layer (bottom of the chain) it belongs to.
 * Host `user.*` xattrs are read with the metadata of each lower inode.
 */
export class Lower {
  private readonly paths = new Map<number, string>();
  private unsaved = new Map<number, string>();
  private readonly getPath: Database.Statement;
  private readonly putPath: Database.Statement;

  /**
   * `root`: absolute host directory; `rootLayer`: its overlay root layer;
   * `hide`: an absolute host path never shown (the store's own directory,
   * when the store lives inside the host directory).
   */
  constructor(readonly root: string, readonly rootLayer: number, db: Database.Database, private readonly hide?: string) {
    this.getPath = db.prepare(`SELECT path FROM overlay_paths WHERE root = ? AND ino = ?`).pluck();
    this.putPath = db.prepare(`INSERT OR REPLACE INTO overlay_paths(root, ino, path) VALUES(?, ?, ?)`);
    this.paths.set(ROOT, "");
  }

  /** Host path of lower inode `ino` relative to the root ("" for the root), or undefined when never seen. */
  pathOf(ino: number): string | undefined {
    const p = this.paths.get(ino);
    if (p !== undefined) return p;
    if (!isLowerIno(ino)) return undefined;
    const q = this.getPath.get(this.rootLayer, ino) as string | undefined;
    if (q !== undefined) this.paths.set(ino, q);
    return q;
  }

  private abs(rel: string): string {
    return rel === "" ? this.root : join(this.root, rel);
  }

  private lstat(rel: string): BigIntStats | undefined {
    try {
      return lstatSync(this.abs(rel), { bigint: true, throwIfNoEntry: false }) ?? undefined;
    } catch {
      return undefined; // ENOTDIR, EACCES: the host shows nothing there
    }
  }

  /** Records that `ino` was seen at host path `rel`: the latest sighting wins (the host may change underneath). */
  private note(ino: number, rel: string): void {
    if (this.paths.get(ino) !== rel) {
      this.paths.set(ino, rel);
      this.unsaved.set(ino, rel);
    }
  }

  private inoOf(st: BigIntStats): number {
    return lowerIno(st.ino);
  }

  /** The host entry `name` of lower directory `parent` (ROOT_INO or a lower ino), or undefined. */
  lookup(parent: number, name: string): { ino: number; type: number } | undefined {
    if (parent !== ROOT && !isLowerIno(parent)) return undefined;
    const dir = this.pathOf(parent);
    if (dir === undefined) return undefined;
    const rel = dir === "" ? name : `${dir}/${name}`;
    if (this.hide !== undefined && this.abs(rel) === this.hide) return undefined;
    const st = this.lstat(rel);
    if (!st) return undefined;
    const ino = this.inoOf(st);
    this.note(ino, rel);
    return { ino, type: Number(st.mode) & S_IFMT };
  }

  /** Host entries of lower directory `parent`: name → ino and type bits. Empty when it is not a lower directory. */
  list(parent: number): Map<string, { ino: number; type: number }> {
    const out = new Map<string, { ino: number; type: number }>();
    if (parent !== ROOT && !isLowerIno(parent)) return out;
    const dir = this.pathOf(parent);
    if (dir === undefined) return out;
    let names: string[];
    try {
      names = readdirSync(this.abs(dir));
    } catch {
      return out;
    }
    for (const name of names) {
      const rel = dir === "" ? name : `${dir}/${name}`;
      if (this.hide !== undefined && this.abs(rel) === this.hide) continue;
      const st = this.lstat(rel);
      if (!st) continue;
      const ino = this.inoOf(st);
      this.note(ino, rel);
      out.set(name, { ino, type: Number(st.mode) & S_IFMT });
    }
    return out;
  }

  /**
   * Where lower inode `ino` sits in the host tree: its host parent directory's
   * inode number (ROOT_INO at the top) and its name; undefined for the root
   * or an inode never seen. (Whether the layers still show it there is the
   * caller's question.)
   */
  hostParent(ino: number): { parent: number; name: string } | undefined {
    const rel = this.pathOf(ino);
    if (!rel) return undefined;
    const cut = rel.lastIndexOf("/");
    if (cut < 0) return { parent: ROOT, name: rel };
    const st = this.lstat(rel.slice(0, cut));
    if (!st) return undefined;
    const parent = this.inoOf(st);
    this.note(parent, rel.slice(0, cut));
    return { parent, name: rel.slice(cut + 1) };
  }

  /** Current host metadata of lower inode `ino`; undefined when unknown or the host path now holds another inode. */
  inode(ino: number): InodeRow | undefined {
    if (!isLowerIno(ino)) return undefined;
    const rel = this.pathOf(ino);
    if (rel === undefined) return undefined;
    const st = this.lstat(rel);
    if (!st || this.inoOf(st) !== ino) return undefined;
    let target: string | null = null;
    if ((Number(st.mode) & S_IFMT) === S_IFLNK) target = readlinkSync(this.abs(rel));
    return rowFromHost(ino, st, target, hostXattrBlob(this.abs(rel), Number(st.mode)));
  }

  /** Metadata of the host root directory as the overlay root's row (ino ROOT_INO). Errors: ENOENT, ENOTDIR. */
  rootRow(): InodeRow {
    const st = this.lstat("");
    if (!st) throw new StoreError("ENOENT", `lower directory ${this.root} does not exist`);
    if ((Number(st.mode) & S_IFMT) !== S_IFDIR) throw new StoreError("ENOTDIR", `lower ${this.root} is not a directory`);
    return rowFromHost(ROOT, st, null, hostXattrBlob(this.abs(""), Number(st.mode)));
  }

  /**
   * As pread(2) on the host file of lower inode `ino`: copies up to `len`
   * bytes at `pos` (clipped to `size`) into `dst[dstOff…]`, zero-filling
   * when the host file is shorter. Returns bytes copied. Errors: ESTALE-ish
   * ENOENT when the host file vanished, EIO on a host read error.
   */
  read(ino: number, size: number, dst: Uint8Array, dstOff: number, len: number, pos: number): number {
    const end = Math.min(size, pos + len);
    if (end <= pos) return 0;
    const rel = this.pathOf(ino);
    if (rel === undefined) throw new StoreError("ENOENT", `lower file of inode ${ino} is unknown`);
    const fd = this.openRead(rel);
    try {
      let got = 0;
      while (pos + got < end) {
        const n = readSync(fd, dst, dstOff + got, end - pos - got, pos + got);
        if (n <= 0) break;
        got += n;
      }
      if (got < end - pos) dst.fill(0, dstOff + got, dstOff + (end - pos));
      return end - pos;
    } finally {
      closeSync(fd);
    }
  }

  private openRead(rel: string): number {
    const noatime = (C as Record<string, number>).O_NOATIME ?? 0;
    try {
      return openSync(this.abs(rel), C.O_RDONLY | noatime | C.O_NOFOLLOW);
    } catch (e) {
      const code = (e as { code?: string }).code;
      if (code === "EPERM" && noatime) return openSync(this.abs(rel), C.O_RDONLY | C.O_NOFOLLOW);
      if (code === "ENOENT") throw new StoreError("ENOENT", `lower file ${rel} vanished from the host directory`);
      if (code === "EACCES" || code === "EPERM") throw new StoreError("EACCES", `the host does not let this process read lower file ${rel}`);
      throw new StoreError("EIO", `cannot read lower file ${rel}: ${(e as Error).message}`);
    }
  }

  /** Persists first-seen host paths (inside the caller's write transaction); returns them so a rollback can re-queue them. */
  flush(): Map<number, string> {
    const out = this.unsaved;
    if (out.size) {
      this.unsaved = new Map();
      for (const [ino, p] of out) if (isLowerIno(ino)) this.putPath.run(this.rootLayer, ino, p);
    }
    return out;
  }

  /**
   * Queues every host path this object knows to be persisted again (after
   * a held transaction that had persisted some of them was rolled back:
   * which ones is not known here). The next write transaction writes them.
   */
  resaveAll(): void {
    for (const [ino, p] of this.paths) if (isLowerIno(ino)) this.unsaved.set(ino, p);
  }

  /** Re-queues paths whose persisting transaction rolled back. */
  requeue(paths: Map<number, string>): void {
    for (const [ino, p] of paths) this.unsaved.set(ino, p);
  }
}
