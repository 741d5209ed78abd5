/**
 * Pack files: where the bodies of large CAS objects live, outside the
 * manifest database. A commit worker appends each new chunk body of at
 * least `PACK_MIN` bytes to a pack file of its own (`PackWriter`), and the
 * object's row records the pack id and the byte offset instead of the
 * body (`objects.pack`, `objects.off`; `data` is empty). Storing a 256 KiB
 * body in SQLite copied it three times (into the page cache, into the WAL
 * at commit, into the database at checkpoint) on the event loop and the
 * worker; a pack append is one pwrite(2) in the worker.
 *
 * Layout: `<manifest dir>/packs/<id as 12 hex digits>.pack`, bodies back to
 * back with no framing (the row holds size, codec and CRC-32). A pack is
 * appended to by the one writer that created it (O_EXCL) and is never
 * rewritten; gc frees the range of each object it deleted, once the
 * deletion is committed and durable (fsync of the WAL: a punch could reach
 * the disk first), by punching a hole (fallocate(2)
 * FALLOC_FL_PUNCH_HOLE), which the platform supplies (`PunchHole`): core
 * has no system call for it. Stores opened without one never write packs
 * (their large bodies stay in the database) but read them, and their gc
 * leaves the ranges it deletes in place.
 *
 * A process that may append keeps, while it has the store open (`claim`,
 * `release`), a marker `<random>.writer` in the folder and a read
 * transaction open on `writers.db` there, an empty SQLite database used
 * only for its lock: SQLite's SHARED lock, which it counts per file within
 * a process and holds as a POSIX lock across processes; a process that
 * dies holds none. A marker left behind means a process ended without
 * closing the store, and may have left bytes no row refers to (a commit
 * cut short between append and row). The next process that opens the
 * store, if it gets the exclusive lock on `writers.db` without waiting
 * (`alone`: no other process or store of this one may be appending),
 * frees them (`sweep`): every byte of a pack outside the ranges of its
 * rows, and whole packs no row refers to.
 */
import { closeSync, fdatasyncSync, fstatSync, fsyncSync, ftruncateSync, mkdirSync, readdirSync, statSync, openSync, readSync, statfsSync, unlinkSync, writeSync } from "node:fs";
import { randomInt } from "node:crypto";
import { dirname, join } from "node:path";
import Database from "better-sqlite3";
import { StoreError } from "./errors.js";

/** Smallest body (bytes) a commit worker appends to a pack: 8 KiB; smaller ones (well-compressed chunks) stay in the row. */
export const PACK_MIN = 8 * 1024;

/** A writer starts a new pack once its current one holds this many bytes: 1 GiB. */
const PACK_ROTATE_BYTES = 1 << 30;

/** Most pack descriptors a reader keeps open (least recently used closed first). */
const MAX_OPEN_PACKS = 64;

/** Name of the folder beside the manifest database that holds the pack files. */
export const PACKS_DIR = "packs";

/**
 * Frees bytes `[offset, offset + length)` of the file open as `fd` while
 * keeping its size, as fallocate(2) FALLOC_FL_PUNCH_HOLE |
 * FALLOC_FL_KEEP_SIZE. Throws an Error with `code` (EOPNOTSUPP where the
 * filesystem cannot).
 */
export type PunchHole = (fd: number, offset: number, length: number) => void;

/** Where an object's body lies in a pack: pack id, byte offset, length in bytes. */
export interface PackLocation {
  pack: number;
  off: number;
  len: number;
}

/** Suffix of a writer's marker in the pack folder (`PackFiles.claim`). */
const CLAIM_SUFFIX = ".writer";

/** The lock database in the pack folder (`PackFiles.claim`, `PackFiles.alone`). */
const LOCK_FILE = "writers.db";

/** How long (ms) a claim waits for a sweep in another process to end. */
const CLAIM_WAIT_MS = 15_000;

/** What `PackFiles.sweep` freed: pack files removed, bytes of disk space given back (st_blocks before and after), markers removed; packs it could not sweep (their markers are then kept). */
export interface PackSweep {
  packsRemoved: number;
  bytesFreed: number;
  claimsRemoved: number;
  failed: number;
}

/** The path of pack `id` in folder `dir`. */
export function packPath(dir: string, id: number): string {
  return join(dir, `${id.toString(16).padStart(12, "0")}.pack`);
}

/**
 * Creates a new file in folder `dir` named by a random 48-bit id (12 hex
 * digits) and `suffix`, with O_EXCL (another id when the name is taken);
 * returns the id, its path and the descriptor (open for writing). Errors:
 * as open(2), with `code`.
 */
function createUnique(dir: string, suffix: string): { id: number; path: string; fd: number } {
  for (;;) {
    const id = randomInt(1, 2 ** 48);
    const path = join(dir, `${id.toString(16).padStart(12, "0")}${suffix}`);
    try {
      return { id, path, fd: openSync(path, "wx", 0o644) };
    } catch (e) {
      if ((e as NodeJS.ErrnoException).code !== "EEXIST") throw e;
    }
  }
}

/** `locs` grouped by pack id. */
function byPack(locs: Iterable<PackLocation>): Map<number, PackLocation[]> {
  const out = new Map<number, PackLocation[]>();
  for (const l of locs) {
    const list = out.get(l.pack);
    if (list) list.push(l);
    else out.set(l.pack, [l]);
  }
  return out;
}

const TMPFS_MAGIC = 0x01021994;
const RAMFS_MAGIC = 0x858458f6;

/**
 * True when `path` lives on a filesystem whose fsync(2) does nothing
 * (tmpfs, ramfs: their pages are the only copy). False when statfs(2) fails.
 */
export function fsyncIsNoopAt(path: string): boolean {
  try {
    const t = statfsSync(path).type;
    return t === TMPFS_MAGIC || t === RAMFS_MAGIC;
  } catch {
    return false;
  }
}

/**
 * Appends bodies to pack files of its own in `dir` (created on first use,
 * one at a time, a new one past 1 GiB). Used by one thread (a commit
 * worker). Errors: the file system's (ENOSPC, EIO, EACCES) as thrown by
 * node:fs, with `code`.
 */
export class PackWriter {
  private fd = -1;
  private id = 0;
  private pos = 0;
  private unsynced = false;
  /** Set when a new pack file (and maybe the folder) was created and their directory entries are not yet synced. */
  private newEntries = false;
  /** `performance.now()` of the last append (ms). */
  lastAppend = 0;

  constructor(readonly dir: string) {}

  /** Appends `body` (as pwrite(2) at the pack's end); returns where it now lies. */
  append(body: Uint8Array): PackLocation {
    if (this.fd < 0 || this.pos >= PACK_ROTATE_BYTES) this.next();
    const off = this.pos;
    let done = 0;
    while (done < body.length) done += writeSync(this.fd, body, done, body.length - done, off + done);
    this.pos += body.length;
    this.unsynced = true;
    this.lastAppend = performance.now();
    return { pack: this.id, off, len: body.length };
  }

  /** Makes every appended body durable (fdatasync(2)) when any is not yet, and a new pack's name (fsync(2) of the folder and its parent). */
  sync(): void {
    if (!this.unsynced || this.fd < 0) return;
    fdatasyncSync(this.fd);
    if (this.newEntries) {
      for (const d of [this.dir, dirname(this.dir)]) {
        const fd = openSync(d, "r");
        try {
          fsyncSync(fd);
        } finally {
          closeSync(fd);
        }
      }
      this.newEntries = false;
    }
    this.unsynced = false;
  }

  /** False when the open pack is no longer the file at its path (the store was removed meanwhile); true with none open. */
  stillThere(): boolean {
    if (this.fd < 0) return true;
    try {
      const a = fstatSync(this.fd);
      const b = statSync(packPath(this.dir, this.id));
      return a.ino === b.ino && a.dev === b.dev;
    } catch {
      return false;
    }
  }

  /** Closes the current pack (after `sync` if the caller wants it durable); the next append starts a new one. */
  close(): void {
    if (this.fd >= 0) closeSync(this.fd);
    this.fd = -1;
  }

  private next(): void {
    this.sync();
    this.close();
    mkdirSync(this.dir, { recursive: true });
    const { id, fd } = createUnique(this.dir, ".pack");
    this.fd = fd;
    this.id = id;
    this.pos = 0;
    this.newEntries = true;
  }
}

/**
 * The pack files of one store, for reading bodies and freeing the ranges
 * of deleted objects. `punch` is the platform's hole punch (null: ranges
 * are never freed, and `writable` is false so nothing new is packed).
 */
export class PackFiles {
  private readonly fds = new Map<number, number>();
  /** Bytes `punchFreed` has freed (the ranges, whether or not the filesystem held blocks there). */
  bytesFreed = 0;

  constructor(readonly dir: string, private punch: PunchHole | null) {}

  /** From now on as without a hole punch: nothing new is packed, and no range is freed. */
  disable(): void {
    this.punch = null;
  }

  /** True when new bodies may go to packs (a hole punch is available to free them again). */
  get writable(): boolean {
    return this.punch !== null;
  }

  private syncNeeded: boolean | undefined;

  /** True when appends need fdatasync(2) before the rows that point at them become durable (not on tmpfs). Asked once. */
  needsSync(): boolean {
    this.syncNeeded ??= !fsyncIsNoopAt(dirname(this.dir)); // (the folder itself appears with the first pack)
    return this.syncNeeded;
  }

  /**
   * Reads `loc.len` bytes at `loc.off` of pack `loc.pack`, as pread(2).
   * `key` names the object in errors. Errors: EIO when the pack is missing
   * or too short (the message names both).
   */
  read(key: string, loc: PackLocation): Buffer {
    return this.readInto(key, loc, Buffer.allocUnsafe(loc.len), 0);
  }

  /** As `read`, into `dst` at `at` (room for `loc.len` bytes); returns that part of `dst` as a Buffer. Errors: as `read`. */
  readInto(key: string, loc: PackLocation, dst: Uint8Array, at: number): Buffer {
    const fd = this.fdOf(key, loc.pack);
    let got = 0;
    while (got < loc.len) {
      const n = readSync(fd, dst, at + got, loc.len - got, loc.off + got);
      if (n === 0) throw new StoreError("EIO", `object ${key} is corrupt: pack ${packPath(this.dir, loc.pack)} ends before its bytes [${loc.off}, ${loc.off + loc.len})`);
      got += n;
    }
    return Buffer.from(dst.buffer, dst.byteOffset + at, loc.len);
  }

  /**
   * Frees the ranges of objects whose rows were deleted and the deletion
   * committed (never before: a rolled-back deletion would point into a
   * hole). A no-op without a hole punch. Failures (a pack gone, a
   * filesystem without hole punching) leave the bytes in place: they are
   * unreferenced, nothing is lost. Returns bytes freed.
   */
  punchFreed(locs: Iterable<PackLocation>): number {
    if (!this.punch) return 0;
    let n = 0;
    for (const [id, list] of byPack(locs)) {
      let fd: number;
      try {
        fd = openSync(packPath(this.dir, id), "r+"); // (a hole punch needs a descriptor open for writing)
      } catch {
        continue;
      }
      try {
        for (const l of list) {
          try {
            this.punch(fd, l.off, l.len);
            n += l.len;
          } catch {
            /* left in place */
          }
        }
      } finally {
        closeSync(fd);
      }
    }
    this.bytesFreed += n;
    return n;
  }

  /** This process's marker (`claim`), or null. */
  private claimed: string | null = null;
  /** Why the last `claim` failed (its error's message), or null: such a process writes no packs. */
  claimError: string | null = null;
  /** The connection whose read transaction on the lock database holds this claim's SHARED lock. */
  private lockDb: Database.Database | null = null;
  /** What the last `sweep` freed (null: none ran). */
  swept: PackSweep | null = null;

  /**
   * Records in the folder (created if missing) that this process may
   * append to packs until `release`: takes a SHARED lock on the lock
   * database (waiting up to 15 s for a sweep elsewhere to end), then makes
   * a new empty marker `<random>.writer`. Errors: as mkdir(2)/open(2), with
   * `code` (EACCES, EROFS, ENOSPC); SQLite's (SQLITE_BUSY after the wait).
   * Nothing is left held when it throws.
   */
  claim(): void {
    if (this.claimed) return;
    mkdirSync(this.dir, { recursive: true });
    let db: Database.Database | null = null;
    try {
      db = new Database(join(this.dir, LOCK_FILE));
      db.pragma(`busy_timeout = ${CLAIM_WAIT_MS}`);
      db.exec("BEGIN");
      db.prepare("SELECT count(*) FROM sqlite_master").get(); // (the read takes the lock; the transaction keeps it)
    } catch (e) {
      db?.close();
      this.claimError = `${join(this.dir, LOCK_FILE)}: ${(e as Error).message}`;
      throw e;
    }
    this.claimError = null;
    this.lockDb = db;
    try {
      const { path, fd } = createUnique(this.dir, CLAIM_SUFFIX);
      closeSync(fd);
      this.claimed = path;
    } catch (e) {
      this.release();
      throw e;
    }
  }

  /** Removes this process's marker and drops its lock (`claim`). Never throws. */
  release(): void {
    if (this.claimed) {
      try {
        unlinkSync(this.claimed);
      } catch {
        /* gone already; a marker left behind costs one sweep */
      }
      this.claimed = null;
    }
    try {
      this.lockDb?.close(); // (ends the read transaction: the lock goes with it)
    } catch {
      /* closed already */
    }
    this.lockDb = null;
  }

  /**
   * Runs `fn` only while no claim is held, by any process or by another
   * store of this one (`claim`): takes the lock database's exclusive lock
   * without waiting, runs `fn`, releases it. Claims made meanwhile wait
   * for the end. Returns `fn`'s result, or null at once when a claim is
   * held (or the lock database cannot be opened). Errors: `fn`'s.
   */
  alone<T>(fn: () => T): T | null {
    let db: Database.Database;
    try {
      db = new Database(join(this.dir, LOCK_FILE)); // (SQLITE_CANTOPEN without the folder: no claim there either)
    } catch {
      return null;
    }
    try {
      try {
        // Only in rollback-journal mode does BEGIN EXCLUSIVE conflict with readers (in WAL mode it would
        // succeed under live claims): a lock database someone turned to WAL holds every sweep off.
        if (db.pragma("journal_mode", { simple: true }) !== "delete") return null;
        db.pragma("busy_timeout = 0");
        db.exec("BEGIN EXCLUSIVE");
      } catch {
        return null; // SQLITE_BUSY: someone holds a claim (or the lock database is damaged)
      }
      return fn();
    } finally {
      db.close(); // (rolls the empty transaction back and drops the lock)
    }
  }

  /** Names of the markers in the folder other than this process's own: none when the folder is missing. */
  claims(): string[] {
    const own = this.claimed === null ? null : this.claimed.slice(this.dir.length + 1);
    return this.list(CLAIM_SUFFIX).filter((n) => n !== own);
  }

  /**
   * Frees what no row refers to: each pack in the folder keeps the ranges
   * of `referenced` (every packed row's pack, offset and stored length)
   * and loses every other byte (holes punched between them, the file cut
   * after the last); a pack none of them lies in is removed. Then, when
   * every pack was swept, removes the markers `claims` (else they stay, and
   * the next open tries again). Only inside `alone`, with what the rows say
   * made durable first, and before this process appends anything: a byte
   * freed here must never be one a commit is about to refer to. Failures
   * on one pack (EIO, a filesystem without hole punching) leave its bytes
   * in place. A no-op without a hole punch. Returns what was freed (also
   * kept as `swept`).
   */
  sweep(referenced: Iterable<PackLocation>, claims: string[]): PackSweep {
    const out: PackSweep = { packsRemoved: 0, bytesFreed: 0, claimsRemoved: 0, failed: 0 };
    if (!this.punch) return out;
    const kept = byPack(referenced);
    for (const name of this.list(".pack")) {
      if (!/^[0-9a-f]{12}\.pack$/.test(name)) continue;
      const id = parseInt(name.slice(0, 12), 16);
      const path = join(this.dir, name);
      const keep = (kept.get(id) ?? []).sort((a, b) => a.off - b.off);
      try {
        if (keep.length === 0) {
          const blocks = statSync(path).blocks;
          unlinkSync(path);
          this.forget(id);
          out.packsRemoved++;
          out.bytesFreed += blocks * 512;
          continue;
        }
        const fd = openSync(path, "r+");
        try {
          const before = fstatSync(fd);
          let end = 0;
          for (const l of keep) {
            if (l.off > end) this.punch(fd, end, l.off - end);
            end = Math.max(end, l.off + l.len);
          }
          if (before.size > end) ftruncateSync(fd, end);
          out.bytesFreed += Math.max(0, before.blocks - fstatSync(fd).blocks) * 512;
        } finally {
          closeSync(fd);
        }
      } catch {
        out.failed++; // left in place: unreferenced bytes, nothing lost
      }
    }
    for (const name of out.failed ? [] : claims) {
      try {
        unlinkSync(join(this.dir, name));
        out.claimsRemoved++;
      } catch {
        /* gone already */
      }
    }
    this.swept = out;
    return out;
  }

  /** Names in the folder ending in `suffix` ([] when the folder is missing or unreadable). */
  private list(suffix: string): string[] {
    try {
      return readdirSync(this.dir).filter((n) => n.endsWith(suffix));
    } catch {
      return [];
    }
  }

  /** Closes the kept descriptor of pack `id`, if any. */
  private forget(id: number): void {
    const fd = this.fds.get(id);
    if (fd === undefined) return;
    this.fds.delete(id);
    closeSync(fd);
  }

  /** Closes every descriptor kept open and removes this process's marker. */
  close(): void {
    for (const fd of this.fds.values()) closeSync(fd);
    this.fds.clear();
    this.release();
  }

  private fdOf(key: string, id: number): number {
    const have = this.fds.get(id);
    if (have !== undefined) {
      this.fds.delete(id);
      this.fds.set(id, have);
      return have;
    }
    let fd: number;
    try {
      fd = openSync(packPath(this.dir, id), "r");
    } catch (e) {
      throw new StoreError("EIO", `object ${key} is missing: cannot open pack ${packPath(this.dir, id)} (${(e as NodeJS.ErrnoException).code ?? e})`);
    }
    this.fds.set(id, fd);
    while (this.fds.size > MAX_OPEN_PACKS) {
      const [k, old] = this.fds.entries().next().value as [number, number];
      this.fds.delete(k);
      closeSync(old);
    }
    return fd;
  }
}
