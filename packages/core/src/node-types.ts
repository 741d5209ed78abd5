/**
 * `Stats`, `BigIntStats` and `Dirent` shaped like Node's `fs` classes, so
 * code written against `node:fs/promises` reads agentfs results unchanged.
 */
import type { InodeStat } from "./fscore.js";
import { S_IFMT, S_IFDIR, S_IFREG, S_IFLNK } from "./fscore.js";

const S_IFIFO = 0o010000;
const S_IFCHR = 0o020000;
const S_IFBLK = 0o060000;
const S_IFSOCK = 0o140000;

/**
 * ns → ms as a float without losing the whole milliseconds: `Number(ns) / 1e6`
 * rounds ns above 2^53 first, so a time set from a Date read back 1 ms early.
 */
function nsToMs(ns: bigint): number {
  return Number(ns / 1_000_000n) + Number(ns % 1_000_000n) / 1e6;
}

/** File-type predicates shared by Stats, BigIntStats and Dirent. */
abstract class TypeBits {
  protected abstract typeBits(): number;
  isFile(): boolean { return this.typeBits() === S_IFREG; }
  isDirectory(): boolean { return this.typeBits() === S_IFDIR; }
  isSymbolicLink(): boolean { return this.typeBits() === S_IFLNK; }
  isFIFO(): boolean { return this.typeBits() === S_IFIFO; }
  isCharacterDevice(): boolean { return this.typeBits() === S_IFCHR; }
  isBlockDevice(): boolean { return this.typeBits() === S_IFBLK; }
  isSocket(): boolean { return this.typeBits() === S_IFSOCK; }
}

/** As fs.Stats: numeric fields, times in ms (`atimeMs`) and as Dates (`atime`). */
export class Stats extends TypeBits {
  dev: number; ino: number; mode: number; nlink: number; uid: number; gid: number; rdev: number;
  size: number; blksize: number; blocks: number;
  atimeMs: number; mtimeMs: number; ctimeMs: number; birthtimeMs: number;
  atime: Date; mtime: Date; ctime: Date; birthtime: Date;
  constructor(s: InodeStat) {
    super();
    this.dev = s.dev; this.ino = s.ino; this.mode = s.mode; this.nlink = s.nlink; this.uid = s.uid; this.gid = s.gid;
    this.rdev = s.rdev; this.size = s.size; this.blksize = s.blksize; this.blocks = s.blocks;
    this.atimeMs = nsToMs(s.atimeNs); this.mtimeMs = nsToMs(s.mtimeNs);
    this.ctimeMs = nsToMs(s.ctimeNs); this.birthtimeMs = nsToMs(s.birthtimeNs);
    // As Node: the Date is the ms value rounded to the nearest millisecond.
    this.atime = new Date(Math.round(this.atimeMs)); this.mtime = new Date(Math.round(this.mtimeMs));
    this.ctime = new Date(Math.round(this.ctimeMs)); this.birthtime = new Date(Math.round(this.birthtimeMs));
  }
  protected typeBits(): number { return this.mode & S_IFMT; }
}

/** As fs.BigIntStats (`stat(p, { bigint: true })`): bigint fields plus ns times (`mtimeNs`). */
export class BigIntStats extends TypeBits {
  dev: bigint; ino: bigint; mode: bigint; nlink: bigint; uid: bigint; gid: bigint; rdev: bigint;
  size: bigint; blksize: bigint; blocks: bigint;
  atimeMs: bigint; mtimeMs: bigint; ctimeMs: bigint; birthtimeMs: bigint;
  atimeNs: bigint; mtimeNs: bigint; ctimeNs: bigint; birthtimeNs: bigint;
  atime: Date; mtime: Date; ctime: Date; birthtime: Date;
  constructor(s: InodeStat) {
    super();
    this.dev = BigInt(s.dev); this.ino = BigInt(s.ino); this.mode = BigInt(s.mode); this.nlink = BigInt(s.nlink);
    this.uid = BigInt(s.uid); this.gid = BigInt(s.gid); this.rdev = BigInt(s.rdev); this.size = BigInt(s.size);
    this.blksize = BigInt(s.blksize); this.blocks = BigInt(s.blocks);
    this.atimeNs = s.atimeNs; this.mtimeNs = s.mtimeNs; this.ctimeNs = s.ctimeNs; this.birthtimeNs = s.birthtimeNs;
    this.atimeMs = s.atimeNs / 1_000_000n; this.mtimeMs = s.mtimeNs / 1_000_000n;
    this.ctimeMs = s.ctimeNs / 1_000_000n; this.birthtimeMs = s.birthtimeNs / 1_000_000n;
    this.atime = new Date(Number(this.atimeMs)); this.mtime = new Date(Number(this.mtimeMs));
    this.ctime = new Date(Number(this.ctimeMs)); this.birthtime = new Date(Number(this.birthtimeMs));
  }
  protected typeBits(): number { return Number(this.mode) & S_IFMT; }
}

/** As fs.Dirent: `name`, `parentPath` (and the deprecated alias `path`) and type predicates. */
export class Dirent extends TypeBits {
  name: string;
  parentPath: string;
  path: string;
  private readonly type: number;
  constructor(name: string, parentPath: string, type: number) {
    super();
    this.name = name;
    this.parentPath = parentPath;
    this.path = parentPath;
    this.type = type;
  }
  protected typeBits(): number { return this.type; }
}
