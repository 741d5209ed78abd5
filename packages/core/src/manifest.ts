/**
 * The manifest: one SQLite database per store (better-sqlite3, WAL) holding
 * layers, branches, snapshots, inode versions, directory entries and the
 * CAS objects table. This module owns the schema and the row-level access;
 * it holds no POSIX policy.
 *
 * Storage model: a *layer* is a set of inode versions and dentries. Each
 * layer has a parent; a layer's *chain* (itself, its parent, …, the root
 * layer) is one tree state, and the nearest version of a row in the chain
 * wins. A branch owns one writable head layer; a snapshot is a frozen layer.
 * Taking a snapshot freezes the head and gives the branch a fresh empty head;
 * forking a branch gives it a fresh head over a frozen layer. Both are O(1).
 */
import Database from "better-sqlite3";
import { existsSync, mkdirSync, openSync, closeSync, statSync, fsync, fsyncSync } from "node:fs";
import { join } from "node:path";
import { StoreError } from "./errors.js";
import { objectColumns } from "./cas.js";
import { fsyncIsNoopAt } from "./packs.js";
import type { Lower } from "./overlay.js";

/** File name of the manifest inside a store directory. */
export const MANIFEST_FILE = "manifest.db";
/**
 * Manifest format written to `meta.format` of new stores: "-2" is a store
 * that may hold packed objects (rows whose body lies in a pack file,
 * packs.ts). Versions from before packs know only "-1" and refuse it
 * (EINVAL) instead of reading a packed row's empty `data` as its body.
 */
export const FORMAT = "agentfs-manifest-2";
/** The format of stores from before packs. Opened as it is; becomes FORMAT once a process that may write packs opens it (`markPackFormat`). */
export const FORMAT_BEFORE_PACKS = "agentfs-manifest-1";
/** Inode number of every tree's root directory. */
export const ROOT_INO = 1;

/** One version of an inode, as stored. Times are ns since the epoch (bigint). */
export interface InodeRow {
  ino: number;
  /** st_mode: file type bits (S_IFREG, S_IFDIR, S_IFLNK, …) and permission bits. */
  mode: number;
  uid: number;
  gid: number;
  nlink: number;
  /** Logical size in bytes (st_size). */
  size: number;
  rdev: number;
  atime: bigint;
  mtime: bigint;
  ctime: bigint;
  btime: bigint;
  /** Symlink target for S_IFLNK, else null. */
  target: string | null;
  /** Encoded extent list (see content.ts) for regular files, else null. */
  extents: Buffer | null;
  /** Encoded xattr map (see xattr codec in fscore.ts), or null when there are none. */
  xattrs: Buffer | null;
}

/** A directory entry as stored: `ino` 0 is a whiteout (the name is deleted in this layer). */
export interface DentryRow {
  parent: number;
  name: string;
  ino: number;
  /** File type bits of the target (S_IFMT part of st_mode); 0 for a whiteout. */
  type: number;
  layer: number;
}

const SCHEMA = `
CREATE TABLE IF NOT EXISTS meta(key TEXT PRIMARY KEY, value) ;
CREATE TABLE IF NOT EXISTS layers(
  id INTEGER PRIMARY KEY,
  parent INTEGER REFERENCES layers(id),
  frozen INTEGER NOT NULL DEFAULT 0,
  created INTEGER NOT NULL
);
CREATE TABLE IF NOT EXISTS branches(
  name TEXT PRIMARY KEY,
  head INTEGER NOT NULL REFERENCES layers(id),
  created INTEGER NOT NULL,
  origin TEXT
);
CREATE TABLE IF NOT EXISTS snapshots(
  name TEXT PRIMARY KEY,
  layer INTEGER NOT NULL REFERENCES layers(id),
  branch TEXT,
  created INTEGER NOT NULL,
  message TEXT
);
CREATE TABLE IF NOT EXISTS inodes(
  id INTEGER PRIMARY KEY,
  ino INTEGER NOT NULL,
  layer INTEGER NOT NULL,
  mode INTEGER NOT NULL, uid INTEGER NOT NULL, gid INTEGER NOT NULL,
  nlink INTEGER NOT NULL, size INTEGER NOT NULL, rdev INTEGER NOT NULL,
  atime INTEGER NOT NULL, mtime INTEGER NOT NULL, ctime INTEGER NOT NULL, btime INTEGER NOT NULL,
  target TEXT, extents BLOB, xattrs BLOB,
  UNIQUE(ino, layer)
);
CREATE INDEX IF NOT EXISTS inodes_by_layer ON inodes(layer);
CREATE TABLE IF NOT EXISTS dentries(
  parent INTEGER NOT NULL,
  name TEXT NOT NULL,
  layer INTEGER NOT NULL,
  ino INTEGER NOT NULL,
  type INTEGER NOT NULL,
  PRIMARY KEY(parent, name, layer)
) WITHOUT ROWID;
CREATE INDEX IF NOT EXISTS dentries_by_ino ON dentries(ino);
CREATE INDEX IF NOT EXISTS dentries_by_layer ON dentries(layer);
CREATE TABLE IF NOT EXISTS objects(
  id INTEGER PRIMARY KEY,
  hash BLOB NOT NULL UNIQUE,
  size INTEGER NOT NULL,
  stored INTEGER NOT NULL,
  codec INTEGER NOT NULL,
  data BLOB NOT NULL,
  crc INTEGER,
  pack INTEGER,
  off INTEGER
);
`;

const INODE_COLS = "ino, mode, uid, gid, nlink, size, rdev, atime, mtime, ctime, btime, target, extents, xattrs";

/**
 * Creates the schema and a new store's first state in one transaction:
 * format marker, branch `main` on an empty root layer, and the root
 * directory (mode 0755, owned by the calling process).
 */
function initialize(db: Database.Database): void {
  db.transaction(() => {
    db.exec(SCHEMA);
    const now = nowNs();
    db.prepare(`INSERT INTO meta(key, value) VALUES('format', ?), ('next_ino', 2), ('head', 'main'), ('created', ?)`).run(FORMAT, now);
    const layer = Number(db.prepare(`INSERT INTO layers(parent, frozen, created) VALUES(NULL, 0, ?)`).run(now).lastInsertRowid);
    db.prepare(`INSERT INTO branches(name, head, created, origin) VALUES('main', ?, ?, NULL)`).run(layer, now);
    const uid = process.getuid?.() ?? 0;
    const gid = process.getgid?.() ?? 0;
    db.prepare(`INSERT INTO inodes(layer, ${INODE_COLS}) VALUES(?, ?, ?, ?, ?, 2, 4096, 0, ?, ?, ?, ?, NULL, NULL, NULL)`)
      .run(layer, ROOT_INO, 0o040755, uid, gid, now, now, now, now);
  }).immediate();
}

/** Converts a raw row (safe integers on) to an InodeRow. */
function toInode(r: any): InodeRow {
  return {
    ino: Number(r.ino),
    mode: Number(r.mode),
    uid: Number(r.uid),
    gid: Number(r.gid),
    nlink: Number(r.nlink),
    size: Number(r.size),
    rdev: Number(r.rdev),
    atime: BigInt(r.atime),
    mtime: BigInt(r.mtime),
    ctime: BigInt(r.ctime),
    btime: BigInt(r.btime),
    target: r.target,
    extents: r.extents,
    xattrs: r.xattrs,
  };
}

let lastNowNs = 0n;

/**
 * Current time in ns since the epoch, never going backwards within this
 * process (the sub-millisecond part comes from hrtime, which alone could make
 * a later call return an earlier time in the same millisecond).
 */
export function nowNs(): bigint {
  let t = BigInt(Date.now()) * 1_000_000n + (process.hrtime.bigint() % 1_000_000n);
  if (t <= lastNowNs) t = lastNowNs + 1n;
  lastNowNs = t;
  return t;
}

/** Reports whether `dir` holds a manifest. */
export function isStoreDir(dir: string): boolean {
  return existsSync(join(dir, MANIFEST_FILE));
}

/**
 * Maps a SqliteError to a StoreError: damage and I/O errors → EIO, locks →
 * EBUSY, full disk → ENOSPC, read-only file → EROFS, any other SQLite error →
 * EIO naming the SQLite code. Non-SQLite errors are rethrown unchanged.
 */
export function translateSqliteError(e: unknown, file: string): never {
  const code = (e as { code?: string })?.code;
  if (code === "SQLITE_NOTADB" || code === "SQLITE_CORRUPT" || code === "SQLITE_CORRUPT_INDEX") {
    throw new StoreError("EIO", `store manifest ${file} is damaged (${(e as Error).message}); run 'agentfs fsck' or restore it from a backup`);
  }
  if (code === "SQLITE_BUSY" || code === "SQLITE_LOCKED") {
    throw new StoreError("EBUSY", `store manifest ${file} is locked by another process (${(e as Error).message})`);
  }
  if (code === "SQLITE_FULL") throw new StoreError("ENOSPC", `no space left writing ${file}`);
  if (code === "SQLITE_READONLY") throw new StoreError("EROFS", `store manifest ${file} is read-only`);
  if (code === "SQLITE_IOERR" || code?.startsWith("SQLITE_IOERR_")) throw new StoreError("EIO", `i/o error on ${file} (${(e as Error).message})`);
  if (typeof code === "string" && code.startsWith("SQLITE")) {
    // Anything else (a constraint failure, a schema surprise) is a bug or damage, never user input: report it as EIO with SQLite's words.
    throw new StoreError("EIO", `unexpected manifest error in ${file}: ${code}: ${(e as Error).message}`);
  }
  throw e;
}

/**
 * Descriptors of manifest files (the database, its WAL) kept open for
 * fsync(2) (`Manifest.syncFiles`), by "dev:ino", shared by every Manifest
 * of this thread that uses the file: close(2) of any descriptor of a file
 * drops every POSIX lock the process holds on it, SQLite's included, so one
 * is closed only once no Manifest here uses it. Not across threads: a
 * Manifest in a worker thread that syncs and closes drops the locks of the
 * process's other connections to the file (none does today: the daemon's
 * fsck worker never syncs).
 */
const keptFds = new Map<string, { fd: number; users: number }>();

/**
 * An open manifest: the database handle, prepared statements, and row-level
 * reads and writes keyed by layer. All writes must run inside `write()`.
 */
export class Manifest {
  readonly db: Database.Database;
  readonly file: string;
  private st: Record<string, Database.Statement>;
  private tx: Record<"begin" | "beginImmediate" | "commit" | "rollback" | "savepoint" | "release" | "rollbackTo" | "dataVersion", Database.Statement>;
  /** Inode numbers reserved by this connection and not yet used: [next, end). */
  private inoNext = 0;
  private inoEnd = 0;
  private lastDataVersion = -1;
  /**
   * Row caches keyed by chain head: "head:ino" → nearest inode version, and
   * "head:parent/name" → visible dentry. Only head layers are ever written and
   * an unfrozen head belongs to exactly one chain, so writes through this
   * object keep them exact; they are dropped on rollback, on changes by other
   * connections, and by `clearCaches()`.
   */
  private icache = new Map<string, { row: InodeRow; layer: number } | null>();
  private dcache = new Map<string, { ino: number; type: number; layer: number } | null>();
  /** Longest a held transaction stays open, in ms; 0 = no holding (`holdTransactions`). */
  private holdMs = 0;
  /** The held transaction, when one is open between operations (see `holdTransactions`). */
  private held: { write: boolean; since: number } | null = null;
  /** Operations (`write`, `heldWrite`, `heldRead`) currently running: 0 between operations. */
  private depth = 0;
  /** The held transaction `changedByOthers` has already checked (it checks once per held transaction). */
  private checkedIn: { write: boolean; since: number } | null = null;
  /**
   * Grows by one whenever what clients of this connection may have cached
   * can be wrong: `changedByOthers` found that another connection had
   * committed (the first look not counted), or a held transaction whose
   * operations were already answered was rolled back (its commit failed).
   * A server that lets clients cache (the FUSE daemon's kernel caches)
   * polls it to know when to drop those caches.
   */
  cacheEpoch = 0;
  /** Why held changes that were already answered were rolled back: reported once, by the next `settle()` or durable `write`. */
  private settleError: unknown = null;

  private constructor(db: Database.Database, file: string) {
    this.db = db;
    this.file = file;
    const p = (sql: string, safe = false) => {
      const s = db.prepare(sql);
      if (safe) s.safeIntegers(true);
      return s;
    };
    this.tx = {
      begin: db.prepare("BEGIN"),
      beginImmediate: db.prepare("BEGIN IMMEDIATE"),
      commit: db.prepare("COMMIT"),
      rollback: db.prepare("ROLLBACK"),
      savepoint: db.prepare("SAVEPOINT agentfs"),
      release: db.prepare("RELEASE agentfs"),
      rollbackTo: db.prepare("ROLLBACK TO agentfs"),
      dataVersion: db.prepare("PRAGMA data_version").pluck(),
    };
    this.st = {
      inodeVersions: p(`SELECT layer, ${INODE_COLS} FROM inodes WHERE ino = ? AND layer <= ? ORDER BY layer DESC`, true),
      inodeInLayer: p(`SELECT ${INODE_COLS} FROM inodes WHERE ino = ? AND layer = ?`, true),
      putInode: p(
        `INSERT INTO inodes(layer, ${INODE_COLS}) VALUES(?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)
         ON CONFLICT(ino, layer) DO UPDATE SET mode=excluded.mode, uid=excluded.uid, gid=excluded.gid, nlink=excluded.nlink,
           size=excluded.size, rdev=excluded.rdev, atime=excluded.atime, mtime=excluded.mtime, ctime=excluded.ctime,
           btime=excluded.btime, target=excluded.target, extents=excluded.extents, xattrs=excluded.xattrs`,
      ),
      delInode: p(`DELETE FROM inodes WHERE ino = ? AND layer = ?`),
      dentryVersions: p(`SELECT layer, ino, type FROM dentries WHERE parent = ? AND name = ? AND layer <= ? ORDER BY layer DESC`),
      listDentries: p(`SELECT name, layer, ino, type FROM dentries WHERE parent = ? AND layer <= ?`),
      dentriesByIno: p(`SELECT parent, name, layer FROM dentries WHERE ino = ?`),
      dentriesByPrefix: p(`SELECT DISTINCT parent, name FROM dentries WHERE layer IN (SELECT value FROM json_each(@layers)) AND substr(name, 1, length(@prefix)) = @prefix`),
      putDentry: p(`INSERT INTO dentries(parent, name, layer, ino, type) VALUES(?, ?, ?, ?, ?)
                    ON CONFLICT(parent, name, layer) DO UPDATE SET ino=excluded.ino, type=excluded.type`),
      delDentry: p(`DELETE FROM dentries WHERE parent = ? AND name = ? AND layer = ?`),
      getMeta: p(`SELECT value FROM meta WHERE key = ?`).pluck(),
      setMeta: p(`INSERT INTO meta(key, value) VALUES(?, ?) ON CONFLICT(key) DO UPDATE SET value=excluded.value`),
      layerParent: p(`SELECT parent, frozen FROM layers WHERE id = ?`),
      newLayer: p(`INSERT INTO layers(parent, frozen, created) VALUES(?, 0, ?)`),
      freeze: p(`UPDATE layers SET frozen = 1 WHERE id = ?`),
    };
  }

  /**
   * Opens (or with `create`, creates) the manifest in store directory `dir`.
   * Errors: ENOENT when absent and not creating; EIO with a clear message when
   * the file is not a SQLite database, is truncated or is damaged; EINVAL when
   * it is a SQLite database of another format.
   */
  static open(dir: string, opts: { create?: boolean; readonly?: boolean; memory?: boolean } = {}): Manifest {
    if (opts.memory) return Manifest.openMemory(dir);
    const file = join(dir, MANIFEST_FILE);
    const exists = existsSync(file);
    if (!exists && !opts.create) throw new StoreError("ENOENT", `no agentfs store at ${dir} (missing ${MANIFEST_FILE})`);
    if (exists) checkHeader(file);
    if (!exists) mkdirSync(dir, { recursive: true });
    let db: Database.Database | undefined;
    try {
      db = new Database(file, { readonly: !!opts.readonly && exists });
      if (!exists) db.pragma("page_size = 4096");
      db.pragma("busy_timeout = 15000");
      if (!opts.readonly) db.pragma("journal_mode = WAL");
      db.pragma("synchronous = NORMAL");
      db.pragma("mmap_size = 268435456");
      db.pragma("cache_size = -65536");
      if (!exists) initialize(db);
      const format = db.prepare(`SELECT value FROM meta WHERE key = 'format'`).pluck().get();
      if (format !== FORMAT && format !== FORMAT_BEFORE_PACKS) {
        throw new StoreError("EINVAL", `${file} is a SQLite database but not an agentfs store this version reads (format ${JSON.stringify(format ?? null)}, expected ${FORMAT} or ${FORMAT_BEFORE_PACKS})`);
      }
      // Stores made before objects.crc (NULL for their rows: those reads verify the SHA-256) or objects.pack
      // and objects.off (NULL: the body is in the row) get the columns. Not on a file this process cannot
      // write (ObjectStore then reads without them), and another process adding them at the same moment is fine.
      if (!opts.readonly && !db.readonly) {
        const cols = objectColumns(db);
        for (const c of ["crc", "pack", "off"]) {
          if (cols.has(c)) continue;
          try {
            db.exec(`ALTER TABLE objects ADD COLUMN ${c} INTEGER`);
          } catch (e) {
            if (!/duplicate column name/.test(String((e as Error).message))) throw e;
          }
        }
      }
      return new Manifest(db, file);
    } catch (e) {
      db?.close();
      if (e instanceof StoreError) throw e;
      const code = (e as { code?: string })?.code;
      if (code === "SQLITE_ERROR" && /no such table/.test(String((e as Error).message))) {
        throw new StoreError("EINVAL", `${file} is a SQLite database but not an agentfs store`);
      }
      translateSqliteError(e, file);
    }
  }

  /**
   * A new, empty manifest held in memory only (SQLite ":memory:", temporary
   * tables and sorts in memory too): nothing touches the filesystem, and
   * everything is gone when it is closed. `label` names it in messages
   * (`file` is "<label> (in memory)"). For RAM stores.
   */
  static openMemory(label: string): Manifest {
    const db = new Database(":memory:");
    try {
      db.pragma("temp_store = MEMORY");
      initialize(db);
      return new Manifest(db, `${label} (in memory)`);
    } catch (e) {
      db.close();
      translateSqliteError(e, label);
    }
  }

  /** Closes the database (checkpointing the WAL), committing a held transaction first. */
  close(): void {
    if (!this.db.open) return;
    try {
      this.settle();
    } finally {
      this.db.close();
      this.closeSyncFds();
    }
  }

  /** Descriptors `syncFiles` uses: file → key in `keptFds`. */
  private readonly syncFds = new Map<string, string>();
  private noopFsync: boolean | undefined;

  /**
   * True when the database lives on a filesystem whose fsync(2) does nothing
   * (tmpfs, ramfs: their pages are the only copy, and no power loss spares
   * them). Asked once, with statfs(2); false when that fails.
   */
  fsyncIsNoop(): boolean {
    this.noopFsync ??= fsyncIsNoopAt(this.file);
    return this.noopFsync;
  }

  /** `syncFiles` calls in flight (their descriptors must stay open until they finish). */
  private syncing = 0;

  /**
   * Makes every transaction committed so far durable, as `synchronous=FULL`
   * would at commit time: fsync(2) of the database file and of its WAL, both
   * at once on the libuv thread pool, so the event loop is not held.
   * (SQLite resets the WAL only after a checkpoint that synced the database
   * file, so the two together cover every committed transaction.) The
   * descriptors stay open for the next call and are closed with the
   * manifest. A no-op in memory, and for a file on tmpfs or ramfs, whose
   * fsync(2) does nothing (`fsyncIsNoop`): two thread-pool round trips
   * there cost ~0.2 ms each on this project's machine and made nothing more
   * durable. Errors: the fsync's (EIO).
   */
  async syncFiles(): Promise<void> {
    if (this.db.memory || this.fsyncIsNoop()) return;
    // Both descriptors first (an open that fails then starts no fsync), then both fsyncs at once.
    const fds = [this.syncFd(this.file + "-wal"), this.syncFd(this.file)].filter((fd): fd is number => fd !== null);
    this.syncing++;
    try {
      await Promise.all(fds.map((fd) => new Promise<void>((resolve, reject) => fsync(fd, (e) => (e ? reject(e) : resolve())))));
    } finally {
      if (--this.syncing === 0 && !this.db.open) this.closeSyncFds();
    }
  }

  /**
   * As `syncFiles`, on this thread: fsync(2) of the WAL and the database
   * file, so that what was committed so far survives a power loss (with
   * `synchronous=NORMAL` a commit reaches the disk only at a checkpoint).
   * A no-op in memory and on tmpfs/ramfs. For the rare callers that must
   * order a durable deletion before an irreversible act (gc before it
   * punches pack ranges). Errors: the fsync's (EIO).
   */
  syncFilesSync(): void {
    if (this.db.memory || this.fsyncIsNoop()) return;
    for (const f of [this.file + "-wal", this.file]) {
      const fd = this.syncFd(f);
      if (fd !== null) fsyncSync(fd);
    }
  }

  /** The kept descriptor of `file` (`keptFds`), opened on first use; null when the file does not exist (no WAL yet). */
  private syncFd(file: string): number | null {
    const have = this.syncFds.get(file);
    if (have !== undefined) return keptFds.get(have)!.fd;
    if (!this.db.open) return null; // (closed: nothing would release a new one)
    let key: string;
    try {
      const st = statSync(file);
      key = `${st.dev}:${st.ino}`;
    } catch (e) {
      if ((e as NodeJS.ErrnoException).code === "ENOENT") return null;
      throw e;
    }
    let kept = keptFds.get(key);
    if (!kept) {
      let fd: number;
      try {
        fd = openSync(file, "r");
      } catch (e) {
        if ((e as NodeJS.ErrnoException).code === "ENOENT") return null;
        throw e;
      }
      kept = { fd, users: 0 };
      keptFds.set(key, kept);
    }
    kept.users++;
    this.syncFds.set(file, key);
    return kept.fd;
  }

  private closeSyncFds(): void {
    if (this.syncing > 0) return; // the last syncFiles closes them
    for (const key of this.syncFds.values()) {
      const kept = keptFds.get(key);
      if (!kept || --kept.users > 0) continue;
      keptFds.delete(key);
      try {
        closeSync(kept.fd);
      } catch {
        /* already gone */
      }
    }
    this.syncFds.clear();
  }

  /**
   * Turns on held transactions for `heldRead`/`heldWrite` (a server that
   * answers many small requests one after another: the FUSE daemon).
   * Instead of one SQLite transaction per operation, consecutive operations
   * share one: it stays open between them and is committed by a timer after
   * `ms`, by the first operation after that, by any `write` that is not
   * held, and by `settle()`. Each held write runs
   * in its own savepoint, so a failing operation undoes only itself. What a
   * held write changed is visible to this connection at once and to other
   * connections, and durable against a crash of this process, once the
   * transaction is committed: callers that promise more (close, fsync) use
   * `write`, which commits before it returns. `ms` = 0 turns holding off
   * (committing what is held).
   */
  holdTransactions(ms: number): void {
    if (ms <= 0) this.settle();
    this.holdMs = Math.max(0, ms);
  }

  /**
   * Commits the held transaction, if one is open between operations.
   * Errors: the StoreError (EIO, ENOSPC…) of held changes that were rolled
   * back after they were answered — by this commit, or earlier by the
   * timer, by the operation that happened to start the next transaction,
   * or by SQLite itself on an error — reported once.
   */
  settle(): void {
    this.commitHeld();
    this.throwLostHeld();
  }

  /**
   * Commits the held transaction if one is open between operations. A
   * failed commit rolls it back (`loseHeld`) and is kept for the next
   * `settle()` or durable `write` to report: the operation that happened to
   * trigger the commit is not the one that promised the changes.
   */
  private commitHeld(): void {
    const h = this.held;
    if (!h || this.depth > 0) return;
    this.held = null;
    if (!this.db.inTransaction) return;
    try {
      this.tx.commit.run();
    } catch (e) {
      this.loseHeld(e);
    }
  }

  /** Throws (once) the error of held changes that were rolled back after they were answered, if any. */
  private throwLostHeld(): void {
    if (this.settleError === null) return;
    const e = this.settleError;
    this.settleError = null;
    throw e;
  }

  /**
   * Held changes that were already answered are gone (a failed commit, or
   * SQLite rolled the whole transaction back on an error): rolls back what
   * is left, forgets cached rows and reserved inode numbers, bumps
   * `cacheEpoch`, calls the `onHeldRollback` hooks, and keeps `cause` (as a
   * StoreError) for the next `settle()` or durable `write` to report.
   */
  private loseHeld(cause: unknown): void {
    this.held = null;
    this.cacheEpoch++;
    this.clearCaches();
    this.inoNext = this.inoEnd = 0;
    try {
      if (this.db.inTransaction) this.tx.rollback.run();
    } catch {
      /* the cause below says what went wrong */
    }
    if (this.settleError === null) {
      try {
        if (cause instanceof StoreError) throw cause;
        translateSqliteError(cause, this.file);
        throw new StoreError("EIO", `held changes to ${this.file} were rolled back: ${String(cause)}`);
      } catch (e) {
        this.settleError = e;
      }
    }
    for (const f of this.heldRollbackHooks) f();
  }

  private readonly heldRollbackHooks: (() => void)[] = [];

  /**
   * Calls `fn` whenever a held transaction is rolled back after its
   * operations returned (its commit failed): for state kept outside the
   * database that believes those operations' rows were written.
   */
  onHeldRollback(fn: () => void): void {
    this.heldRollbackHooks.push(fn);
  }

  /** Opens a held transaction (write: BEGIN IMMEDIATE) and schedules its commit in `holdMs`. */
  private beginHeld(write: boolean): void {
    const now = performance.now();
    const h = this.held;
    if (h && (now - h.since > this.holdMs || (write && !h.write))) this.commitHeld();
    if (this.held || this.db.inTransaction) return;
    try {
      (write ? this.tx.beginImmediate : this.tx.begin).run();
    } catch (e) {
      translateSqliteError(e, this.file);
    }
    const held = (this.held = { write, since: now });
    setTimeout(() => {
      if (this.held === held && this.db.open) this.commitHeld();
    }, this.holdMs).unref();
  }

  /**
   * As `write`, for a server's operation that needs no commit before it
   * returns: runs `fn` in a savepoint of the held write transaction
   * (see `holdTransactions`; without holding, exactly `write`). Errors: as
   * `write`.
   */
  heldWrite<T>(fn: () => T): T {
    return this.writeOp(fn, this.holdMs > 0);
  }

  /**
   * As `read`, for a server's operation: runs `fn` in the held transaction
   * (see `holdTransactions`; without holding, exactly `read`). Errors: as
   * `read`.
   */
  heldRead<T>(fn: () => T): T {
    if (this.holdMs === 0) return this.read(fn);
    if (this.depth === 0) this.beginHeld(false);
    this.depth++;
    try {
      return this.read(fn);
    } catch (e) {
      if (this.held && !this.db.inTransaction) this.loseHeld(e);
      throw e;
    } finally {
      this.depth--;
    }
  }

  /**
   * Runs `fn` in a write transaction (BEGIN IMMEDIATE), or in a savepoint when
   * a transaction is already open, so nested writes commit with the outer
   * one. An exception rolls back `fn`'s changes and propagates; SQLite
   * damage maps to EIO.
   */
  write<T>(fn: () => T): T {
    return this.writeOp(fn, false);
  }

  /** `write` (hold false: committed before it returns) or `heldWrite` (hold true). */
  private writeOp<T>(fn: () => T, hold: boolean): T {
    const durable = !hold && this.depth === 0;
    if (this.depth === 0) {
      if (hold) this.beginHeld(true);
      // A held read transaction cannot take writes: end it first.
      else if (this.held && !this.held.write) this.commitHeld();
    }
    const nested = this.db.inTransaction;
    this.depth++;
    let out: T;
    try {
      out = this.runWrite(fn, nested, this.tx);
    } finally {
      this.depth--;
    }
    if (durable) {
      // Committed now, together with whatever the held transaction kept; then the loss of held changes
      // answered earlier (a failed commit) is reported here, after this write's own work is safe.
      this.commitHeld();
      this.throwLostHeld();
    }
    return out;
  }

  private runWrite<T>(fn: () => T, nested: boolean, tx: Manifest["tx"]): T {
    try {
      (nested ? tx.savepoint : tx.beginImmediate).run();
    } catch (e) {
      translateSqliteError(e, this.file);
    }
    try {
      const out = fn();
      (nested ? tx.release : tx.commit).run();
      return out;
    } catch (e) {
      this.clearCaches();
      this.inoNext = this.inoEnd = 0;
      try {
        if (this.db.inTransaction) {
          if (nested) {
            tx.rollbackTo.run();
            tx.release.run();
          } else tx.rollback.run();
        }
      } catch {
        /* a damaged file can fail the rollback too; the original error below says why */
      }
      // SQLite rolls a whole transaction back on some errors (SQLITE_FULL, IOERR, NOMEM): a held one is gone too.
      if (this.held && !this.db.inTransaction) this.loseHeld(e);
      if (e instanceof StoreError || (e as { code?: string })?.code?.startsWith?.("SQLITE") !== true) throw e;
      translateSqliteError(e, this.file);
    }
  }

  /** Runs `fn` in a read transaction (BEGIN DEFERRED), so it sees one consistent state. */
  read<T>(fn: () => T): T {
    if (this.db.inTransaction) return fn();
    const tx = this.tx;
    try {
      tx.begin.run();
    } catch (e) {
      translateSqliteError(e, this.file);
    }
    let out: T;
    try {
      out = fn();
    } catch (e) {
      // Ending the transaction can fail too on a damaged file: report the first error.
      try {
        if (this.db.inTransaction) tx.commit.run();
      } catch {
        /* the original error below says what went wrong */
      }
      if (e instanceof StoreError || (e as { code?: string })?.code?.startsWith?.("SQLITE") !== true) throw e;
      translateSqliteError(e, this.file);
    }
    try {
      if (this.db.inTransaction) tx.commit.run();
    } catch (e) {
      translateSqliteError(e, this.file);
    }
    return out;
  }

  /** True when another connection committed since the last call (PRAGMA data_version). */
  changedByOthers(): boolean {
    // Nobody else's commit can show up inside one transaction: check once per held transaction.
    const h = this.held;
    if (h && this.checkedIn === h) return false;
    this.checkedIn = h;
    const v = this.tx.dataVersion.get() as number;
    const changed = v !== this.lastDataVersion;
    const first = this.lastDataVersion === -1;
    this.lastDataVersion = v;
    if (changed) this.clearCaches();
    if (changed && !first) this.cacheEpoch++;
    return changed;
  }

  /** Drops the row caches (after gc, restore, or anything that rewrites layers). */
  clearCaches(): void {
    this.icache.clear();
    this.dcache.clear();
  }

  getMeta(key: string): unknown {
    return this.st.getMeta.get(key);
  }

  /**
   * Marks a store from before packs (`FORMAT_BEFORE_PACKS`) as one that may
   * hold packed objects (`FORMAT`), in a committed write transaction of its
   * own: call it before this process may write a packed row, so older
   * versions refuse the store from then on. A no-op when it is marked
   * already. Errors: as `write` (EROFS-like SQLite errors map as there).
   */
  markPackFormat(): void {
    if (this.getMeta("format") === FORMAT) return;
    this.write(() => this.setMeta("format", FORMAT));
  }
  setMeta(key: string, value: unknown): void {
    this.st.setMeta.run(key, value);
  }

  /**
   * Allocates a fresh inode number (inside a write transaction). Numbers are
   * reserved from `meta.next_ino` in blocks of 256 per connection, so most
   * creates write no meta row; unused numbers of a block are simply skipped.
   */
  allocIno(): number {
    if (this.inoNext >= this.inoEnd) {
      const n = Number(this.getMeta("next_ino"));
      this.setMeta("next_ino", n + 256);
      this.inoNext = n;
      this.inoEnd = n + 256;
    }
    return this.inoNext++;
  }

  /** The chain of `layer`: itself first, then each parent up to the root layer. */
  chainOf(layer: number): number[] {
    const chain: number[] = [];
    let cur: number | null = layer;
    while (cur !== null) {
      chain.push(cur);
      const r = this.st.layerParent.get(cur) as { parent: number | null } | undefined;
      if (!r) throw new StoreError("EIO", `manifest damaged: layer ${cur} is missing`);
      cur = r.parent;
    }
    return chain;
  }

  /** Whether layer `id` is frozen (part of a snapshot or a fork point). */
  isFrozen(id: number): boolean {
    const r = this.st.layerParent.get(id) as { frozen: number } | undefined;
    return !!r?.frozen;
  }

  /** Creates an empty writable layer over `parent`; returns its id. */
  newLayer(parent: number | null): number {
    return Number(this.st.newLayer.run(parent, nowNs()).lastInsertRowid);
  }

  /** Marks a layer immutable. */
  freeze(id: number): void {
    this.st.freeze.run(id);
  }

  /** The nearest version of inode `ino` in `chain`, with its layer; undefined when absent or deleted (a tombstone with nlink 0). */
  getInode(ino: number, chain: Chain): { row: InodeRow; layer: number } | undefined {
    const key = `${chain.head}:${ino}`;
    const hit = this.icache.get(key);
    if (hit !== undefined) return hit ?? undefined;
    let found: { row: InodeRow; layer: number } | null = null;
    let sawRow = false;
    for (const r of this.st.inodeVersions.iterate(ino, chain.head) as Iterable<any>) {
      const layer = Number(r.layer);
      if (chain.set.has(layer)) {
        // nlink 0 is a tombstone: the inode was deleted in this layer.
        if (Number(r.nlink) !== 0) found = { row: toInode(r), layer };
        sawRow = true;
        break;
      }
    }
    if (!sawRow && chain.lower) {
      // No version in the layers: the host (lower) directory's, read live and never cached.
      const row = chain.lower.inode(ino);
      return row ? { row, layer: chain.lower.rootLayer } : undefined;
    }
    if (this.icache.size > 200_000) this.icache.clear();
    this.icache.set(key, found);
    return found ?? undefined;
  }

  /** The version of inode `ino` stored in exactly `layer`, if any. */
  getInodeInLayer(ino: number, layer: number): InodeRow | undefined {
    const r = this.st.inodeInLayer.get(ino, layer);
    return r ? toInode(r) : undefined;
  }

  /** Writes (insert or replace) the version of `row.ino` in `layer`. */
  putInode(layer: number, row: InodeRow): void {
    // Positional parameters: binding 15 named ones from an object cost more than the upsert itself.
    this.st.putInode.run(layer, row.ino, row.mode, row.uid, row.gid, row.nlink, row.size, row.rdev, row.atime, row.mtime, row.ctime, row.btime, row.target, row.extents, row.xattrs);
    this.icache.set(`${layer}:${row.ino}`, row.nlink === 0 ? null : { row, layer });
  }

  /** Deletes the version of `ino` in `layer` (no-op when absent). */
  deleteInode(ino: number, layer: number): void {
    this.st.delInode.run(ino, layer);
    this.icache.delete(`${layer}:${ino}`);
  }

  /** The visible dentry `(parent, name)` in `chain`: undefined when absent, `ino` 0 never returned (whiteouts hide). */
  lookup(parent: number, name: string, chain: Chain, below = false): { ino: number; type: number; layer: number } | undefined {
    const key = below ? "" : `${chain.head}:${parent}/${name}`;
    if (!below) {
      const hit = this.dcache.get(key);
      if (hit !== undefined) return hit ?? undefined;
    }
    let found: { ino: number; type: number; layer: number } | null = null;
    let sawRow = false;
    for (const r of this.st.dentryVersions.iterate(parent, name, chain.head) as Iterable<any>) {
      if (!chain.set.has(r.layer) || (below && r.layer === chain.head)) continue;
      if (r.ino !== 0) found = r;
      sawRow = true;
      break;
    }
    if (!sawRow && chain.lower) {
      // No row (not even a whiteout) in the layers: the host entry shows, read live and never cached.
      const e = chain.lower.lookup(parent, name);
      return e ? { ...e, layer: chain.lower.rootLayer } : undefined;
    }
    if (!below) {
      if (this.dcache.size > 200_000) this.dcache.clear();
      this.dcache.set(key, found);
    }
    return found ?? undefined;
  }

  /** The visible entries of directory `parent` in `chain`, whiteouts resolved. */
  list(parent: number, chain: Chain): Map<string, { ino: number; type: number }> {
    const best = new Map<string, { ino: number; type: number; layer: number }>();
    for (const r of this.st.listDentries.iterate(parent, chain.head) as Iterable<any>) {
      if (!chain.set.has(r.layer)) continue;
      const cur = best.get(r.name);
      if (!cur || r.layer > cur.layer) best.set(r.name, r);
    }
    const out = new Map<string, { ino: number; type: number }>();
    for (const [name, r] of best) if (r.ino !== 0) out.set(name, { ino: r.ino, type: r.type });
    // Host entries that no row (entry or whiteout) of the layers names.
    if (chain.lower) for (const [name, e] of chain.lower.list(parent)) if (!best.has(name)) out.set(name, e);
    return out;
  }

  /** All dentry rows (any layer) that point at `ino`. */
  dentriesOf(ino: number): Array<{ parent: number; name: string; layer: number }> {
    return this.st.dentriesByIno.all(ino) as Array<{ parent: number; name: string; layer: number }>;
  }

  /**
   * Every `(parent, name)` that has a dentry row (entry or whiteout) in a
   * layer of `chain` and whose name starts with `prefix` (case-sensitive).
   * One query over the dentry rows, no tree walk; rows of the host directory
   * of an overlay chain are not searched. The caller checks visibility
   * (`lookup`): a name may be whited out by a nearer layer.
   */
  dentriesByPrefix(prefix: string, chain: Chain): Array<{ parent: number; name: string }> {
    const out: Array<{ parent: number; name: string }> = [];
    for (const r of this.st.dentriesByPrefix.iterate({ prefix, layers: JSON.stringify(chain.ids) }) as Iterable<{ parent: number; name: string }>) out.push(r);
    return out;
  }

  /** Writes a dentry (or a whiteout with ino 0) into `layer`. */
  putDentry(layer: number, parent: number, name: string, ino: number, type: number): void {
    this.st.putDentry.run(parent, name, layer, ino, type);
    this.dcache.set(`${layer}:${parent}/${name}`, ino === 0 ? null : { ino, type, layer });
  }

  /** Removes the dentry row `(parent, name)` of `layer` itself (does not write a whiteout). */
  deleteDentryRow(layer: number, parent: number, name: string): void {
    this.st.delDentry.run(parent, name, layer);
    this.dcache.delete(`${layer}:${parent}/${name}`);
  }
}

/**
 * A layer chain: head layer id, ids head-first, a Set for membership tests,
 * and for an overlay chain the host directory below its bottom layer.
 */
export interface Chain {
  head: number;
  ids: number[];
  set: Set<number>;
  /** The host (lower) directory of an overlay chain; rows of the layers win over it. */
  lower?: Lower;
}

/** Builds a Chain from ids (head first), optionally over a host directory. */
export function makeChain(ids: number[], lower?: Lower): Chain {
  return lower ? { head: ids[0], ids, set: new Set(ids), lower } : { head: ids[0], ids, set: new Set(ids) };
}

function walSize(file: string): number {
  try {
    return statSync(file + "-wal").size;
  } catch {
    return 0;
  }
}

/**
 * Before the store's connection opens `file`: refuses a file too short to
 * be a store, one that is not a SQLite database (bad header), and one
 * shorter than its header's page count says (truncated; only when no WAL
 * is present: then no other process is writing, and a checkpoint may be
 * resizing the file). The size comes from stat(2) and the header is read by
 * SQLite, through a read-only connection of its own: this process never
 * opens a descriptor of a manifest itself (closing one would drop the POSIX
 * locks its SQLite connections hold on the file), and a refused file is
 * left as it is (a read-write connection's close would checkpoint a WAL
 * into it). Other failures of that connection are left to the store's own
 * to report. Errors: EIO (the message names the file).
 */
function checkHeader(file: string): void {
  const size = statSync(file).size;
  if (size === 0) throw new StoreError("EIO", `store manifest ${file} is empty (0 bytes): it was truncated or never written`);
  if (size < 512) throw new StoreError("EIO", `store manifest ${file} is truncated or not a SQLite database (${size} bytes): it is damaged`);
  let pages: number;
  let ps: number;
  let db: Database.Database | undefined;
  try {
    db = new Database(file, { readonly: true, fileMustExist: true });
    pages = db.pragma("page_count", { simple: true }) as number; // (reads the header first: page_size alone may not)
    ps = db.pragma("page_size", { simple: true }) as number;
  } catch (e) {
    const code = (e as { code?: string })?.code;
    if (code === "SQLITE_NOTADB") {
      throw new StoreError("EIO", `store manifest ${file} is not a SQLite database (bad header): it is damaged or was overwritten`);
    }
    if (code === "SQLITE_CORRUPT") {
      // (SQLite's own check at open: the header counts more pages than the file holds)
      throw new StoreError("EIO", `store manifest ${file} is truncated or damaged (${size} bytes; SQLite: ${(e as Error).message}); run 'agentfs fsck' or restore it from a backup`);
    }
    return; // (busy, unreadable, no room for a -shm…: the store's connection says what it is)
  } finally {
    db?.close();
  }
  if (walSize(file) > 0) return;
  if (ps >= 512 && (size % ps !== 0 || size < pages * ps)) {
    throw new StoreError("EIO", `store manifest ${file} is truncated (${size} bytes; its header says ${pages * ps} bytes in pages of ${ps}): it is damaged`);
  }
}
