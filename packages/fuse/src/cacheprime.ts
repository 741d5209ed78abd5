/**
 * Priming the kernel's page cache at close. Without a writeback cache the
 * kernel copies written bytes into its page cache, but a page a write
 * covers only in part (the tail page of most small files) is not marked up
 * to date, so the first read after close — a build reading what it just
 * wrote, an unpacked tree being checked — is a READ round trip. After the
 * FLUSH of a small file that was written through its only open handle, the
 * daemon stores the file's committed bytes into the kernel's page cache
 * (FUSE_NOTIFY_STORE), and the next open keeps that cache (its stamp is
 * unchanged), so the read needs no request.
 *
 * The store runs on a libuv pool thread: it locks the pages it fills, and
 * a process may hold one of them while it waits for a reply from the loop.
 * Stale pages must never result, so while a store of an inode is in flight:
 * - an OPEN for writing, a SETATTR of the size and a FALLOCATE of that
 *   inode wait (answered after it; the kernel drops the pages a truncate
 *   or punch covers only once answered, and holds no page meanwhile): no
 *   new handle can write, and no truncate or punch can change the file,
 *   behind the store. Read-only opens, chmod, chown and
 *   utimens need not wait (a program that chmods what it just wrote, as
 *   git does with each object, would otherwise wait for every store);
 * - a WRITE through the one handle left (a thread writing while another
 *   closes the descriptor) cannot wait — it may hold the page the store
 *   needs — so it is served, and the inode's cached pages are dropped after
 *   the store.
 * The FLUSH itself is answered at once (waiting for the pool thread cost
 * more than the READ the store saves: ~200 µs per file).
 */
import type { View } from "@agentfs/view";
import type { Notifier } from "./notifier.js";

/** Largest file (bytes) whose pages are stored at close: 64 KiB (larger files are read ahead well by the kernel). */
export const PRIME_MAX_BYTES = 64 * 1024;

/** Counters of a `CachePrimer` (whole mount). */
export interface CachePrimeStats {
  /** Files whose bytes were stored into the kernel's page cache at close. */
  stored: number;
  /** Stores the kernel refused (e.g. ENOENT: it had dropped the inode). */
  refused: number;
  /** Stores followed by a drop of the inode's pages (written meanwhile). */
  dropped: number;
  /** OPEN (for writing), SETATTR (of the size) and FALLOCATE requests that waited for a store. */
  deferred: number;
}

/** Page-cache priming of one mount (see the module comment). */
export class CachePrimer {
  readonly stats: CachePrimeStats = { stored: 0, refused: 0, dropped: 0, deferred: 0 };
  /** Handles written through since their last FLUSH. */
  private readonly written = new Set<number>();
  /** Inodes with a store in flight → requests waiting for it, and whether a write came meanwhile. */
  private readonly storing = new Map<number, { waiting: (() => void)[]; writtenMeanwhile: boolean }>();
  private buf = Buffer.alloc(0);

  constructor(private readonly view: View, private readonly notifier: Notifier) {}

  /** A WRITE through handle `fh` of inode `ino` was served. */
  wrote(fh: number, ino: number | undefined): void {
    this.written.add(fh);
    const s = ino === undefined ? undefined : this.storing.get(ino);
    if (s) s.writtenMeanwhile = true;
  }

  /** Handle `fh` is gone (release). */
  forget(fh: number): void {
    this.written.delete(fh);
  }

  /**
   * Runs `serve` after the store of `ino` in flight, when there is one (an
   * OPEN for writing, a SETATTR of the size or a FALLOCATE must not overtake
   * it). True when it was deferred; false: the caller serves it now.
   */
  after(ino: number, serve: () => void): boolean {
    const s = this.storing.get(ino);
    if (!s) return false;
    this.stats.deferred++;
    s.waiting.push(serve);
    return true;
  }

  /**
   * After handle `fh` of inode `ino` was committed by a FLUSH: starts storing
   * the file's bytes into the kernel's page cache when `fh` wrote since its
   * last FLUSH, is the inode's only open handle (`openHandles` 1) and the
   * file is 1 byte to `PRIME_MAX_BYTES` long. From this call until the store
   * is done, an OPEN for writing, a SETATTR of the size and a FALLOCATE of
   * `ino` wait (`after`); the FLUSH need not: the cache is only an
   * optimisation, and the only way left to change the file meanwhile is a
   * write through `fh` itself, after which the pages are dropped. Resolves
   * when done; never rejects.
   */
  async flushed(ino: number, fh: number, openHandles: number): Promise<void> {
    if (!this.written.delete(fh) || openHandles !== 1 || this.storing.has(ino)) return;
    let data: Buffer;
    try {
      const size = this.view.fstat(fh).size;
      if (size <= 0 || size > PRIME_MAX_BYTES) return;
      if (this.buf.length < size) this.buf = Buffer.allocUnsafe(PRIME_MAX_BYTES);
      const n = this.view.readForCache(fh, this.buf, 0, size, 0);
      if (n !== size) return;
      data = this.buf.subarray(0, n);
    } catch {
      return;
    }
    const s = { waiting: [] as (() => void)[], writtenMeanwhile: false };
    const storing = this.notifier.store(ino, 0, data);
    if (storing) this.storing.set(ino, s);
    const stored = await storing;
    if (stored === 0) this.stats.stored++;
    else if (stored !== null) this.stats.refused++;
    if (stored !== null && s.writtenMeanwhile) {
      this.stats.dropped++;
      await this.notifier.drop([], [ino]);
    }
    this.storing.delete(ino);
    for (const serve of s.waiting) serve();
  }
}
