/**
 * RAM stores (ERMFS): CAS object bodies in memfds, packed into arenas, plus
 * `openRamStore`, which opens an agentfs store whose manifest is in memory,
 * whose objects are in memfds and whose open files' working buffers are
 * memfds — so nothing of it ever touches a filesystem, not even a temp file.
 */
import fs from "node:fs";
import { AgentFS, type AgentFSOptions, type ObjectBackend } from "@agentfs/core";
import * as native from "@agentfs/native";
import { MemfdBackstore } from "./memfd.js";

/** Options of {@link MemfdObjectStore}. */
export interface MemfdObjectStoreOptions {
  /** Bytes per arena memfd (default 64 MiB); a larger body gets an arena of its own. */
  arenaSize?: number;
  /** memfd label (default "agentfs-objects"). */
  name?: string;
  /**
   * Compact a full arena when its live bytes fall below this fraction of
   * what was written to it (default 0.25): its live bodies move to the
   * current arena and its memfd is closed, returning its pages.
   */
  compactBelow?: number;
}

/** Space accounting of a {@link MemfdObjectStore}, in bytes. */
export interface MemfdObjectStats {
  objects: number;
  arenas: number;
  /** Bytes of bodies currently held. */
  liveBytes: number;
  /** Bytes written into the open arenas (live + dead, not yet compacted). */
  usedBytes: number;
  /** Memory the arenas' memfds occupy (fstat st_blocks × 512). */
  residentBytes: number;
}

interface Arena {
  fd: number;
  used: number;
  live: number;
  keys: Set<string>;
}

interface Loc {
  arena: Arena;
  off: number;
  len: number;
}

/**
 * An `ObjectBackend` keeping bodies in memfds ("arenas", appended to with
 * pwrite, read with pread): the bytes are in the kernel's shmem, outside the
 * JS heap, and no file exists for them. Freed bodies are reclaimed by closing
 * an arena once it holds nothing live, or by compacting it when it is mostly
 * dead. Linux only (memfd_create): the constructor throws ENOSYS elsewhere.
 */
export class MemfdObjectStore implements ObjectBackend {
  readonly kind = "memfd";
  private readonly arenaSize: number;
  private readonly name: string;
  private readonly compactBelow: number;
  private readonly arenas = new Set<Arena>();
  private current: Arena | null = null;
  private readonly map = new Map<string, Loc>();
  private closed = false;

  constructor(opts: MemfdObjectStoreOptions = {}) {
    this.arenaSize = opts.arenaSize ?? 64 * 1024 * 1024;
    this.name = opts.name ?? "agentfs-objects";
    this.compactBelow = opts.compactBelow ?? 0.25;
    if (!native.hasMemfd) {
      const e = new Error("ENOSYS: memfd_create is not available on this platform") as NodeJS.ErrnoException;
      e.code = "ENOSYS";
      throw e;
    }
  }

  private newArena(): Arena {
    const a: Arena = { fd: native.memfdCreate(this.name, native.MFD_CLOEXEC), used: 0, live: 0, keys: new Set() };
    this.arenas.add(a);
    this.current = a;
    return a;
  }

  private append(key: string, body: Uint8Array): void {
    let a = this.current;
    if (!a || (a.used > 0 && a.used + body.length > this.arenaSize)) a = this.newArena();
    let done = 0;
    while (done < body.length) done += fs.writeSync(a.fd, body, done, body.length - done, a.used + done);
    this.map.set(key, { arena: a, off: a.used, len: body.length });
    a.used += body.length;
    a.live += body.length;
    a.keys.add(key);
  }

  /** Stores `body` under `hash` (pwrite into the current arena). Errors: ENOMEM/ENOSPC from the kernel, EMFILE. */
  put(hash: Buffer, body: Uint8Array): void {
    if (this.closed) throw Object.assign(new Error("EBADF: object store closed"), { code: "EBADF" });
    const key = hash.toString("hex");
    if (this.map.has(key)) return;
    this.append(key, body);
  }

  /** A heap copy of the body of `hash` (pread), or undefined. */
  get(hash: Buffer): Buffer | undefined {
    return this.getKey(hash.toString("hex"));
  }

  private getKey(key: string): Buffer | undefined {
    const l = this.map.get(key);
    if (!l) return undefined;
    const out = Buffer.allocUnsafe(l.len);
    let done = 0;
    while (done < l.len) {
      const n = fs.readSync(l.arena.fd, out, done, l.len - done, l.off + done);
      if (n === 0) return undefined;
      done += n;
    }
    return out;
  }

  /** Frees the body of `hash`; may close or compact its arena. */
  delete(hash: Buffer): void {
    const key = hash.toString("hex");
    const l = this.map.get(key);
    if (!l) return;
    this.map.delete(key);
    const a = l.arena;
    a.live -= l.len;
    a.keys.delete(key);
    if (a === this.current) {
      if (a.live === 0) {
        // Nothing live: start the arena over (ftruncate frees its pages).
        native.ftruncate(a.fd, 0);
        a.used = 0;
      }
      return;
    }
    if (a.live === 0) this.dropArena(a);
    else if (a.live < a.used * this.compactBelow) this.compact(a);
  }

  private compact(a: Arena): void {
    for (const key of [...a.keys]) {
      const body = this.getKey(key)!;
      a.keys.delete(key);
      this.append(key, body);
    }
    this.dropArena(a);
  }

  private dropArena(a: Arena): void {
    this.arenas.delete(a);
    if (this.current === a) this.current = null;
    fs.closeSync(a.fd);
  }

  /** Hashes of every body held. */
  *keys(): Iterable<Buffer> {
    for (const k of [...this.map.keys()]) yield Buffer.from(k, "hex");
  }

  /** Space accounting (see {@link MemfdObjectStats}). */
  stats(): MemfdObjectStats {
    let used = 0;
    let live = 0;
    let resident = 0;
    for (const a of this.arenas) {
      used += a.used;
      live += a.live;
      resident += fs.fstatSync(a.fd).blocks * 512;
    }
    return { objects: this.map.size, arenas: this.arenas.size, liveBytes: live, usedBytes: used, residentBytes: resident };
  }

  /** Closes every arena memfd (all bodies are gone). Idempotent. */
  close(): void {
    if (this.closed) return;
    this.closed = true;
    for (const a of this.arenas) fs.closeSync(a.fd);
    this.arenas.clear();
    this.map.clear();
    this.current = null;
  }
}

/** An open RAM store: the SDK view, its object backend, and `close`. */
export interface RamStore {
  afs: AgentFS;
  objects: MemfdObjectStore;
  /** Closes the view and the store, then frees every object memfd. The store is gone afterwards. */
  close(): Promise<void>;
}

/**
 * Opens a new, empty RAM store: manifest in memory (SQLite ":memory:"),
 * object bodies in a {@link MemfdObjectStore}, working buffers in memfds
 * ({@link MemfdBackstore}). Nothing is created on any filesystem; `label`
 * only names it. Everything is lost on `close()` or process exit — snapshot
 * or export what should survive. `opts` are passed to `AgentFS.open`
 * (e.g. `umask`, `compressionLevel`).
 */
export function openRamStore(label = "ram", opts: Omit<AgentFSOptions, "inMemory" | "objectBackend" | "create"> & { objects?: MemfdObjectStoreOptions } = {}): RamStore {
  const objects = new MemfdObjectStore(opts.objects);
  try {
    const { objects: _o, ...rest } = opts;
    const afs = AgentFS.openSync(label, { backstore: new MemfdBackstore(), ...rest, create: true, inMemory: true, objectBackend: objects });
    return {
      afs,
      objects,
      close: async () => {
        try {
          await afs.close();
        } finally {
          objects.close();
        }
      },
    };
  } catch (e) {
    objects.close();
    throw e;
  }
}
