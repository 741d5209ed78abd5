/**
 * Asynchronous commits of open files for `FsCore.flushAsync`, `fsyncAsync`
 * and `closeAsync`: the CPU-heavy work of a large commit (chunking,
 * SHA-256, compression) runs in a worker thread (`CommitPool`) and the
 * objects are stored in short transactions (commitpipe.ts), so the event
 * loop is never held for more than a few ms. Commits of one file are queued
 * in call order; a synchronous commit meanwhile supersedes the one in
 * flight; small changes are committed at once.
 */
import { encodeExtents } from "./content.js";
import type { InodeRow } from "./manifest.js";
import type { Store } from "./store.js";
import { LOWER_DATA } from "./overlay.js";
import { CommitPool, CommitWorkerError, COMMIT_SLICE_MS, commitFrozen, nextTurn } from "./commitpipe.js";
import { asFsError } from "./errwrap.js";
import type { OpenInode } from "./openfile.js";

/** Commits with up to this much data to re-chunk (bytes, `OpenContent.pendingWork`) run synchronously even from the asynchronous calls: about 1–3 ms of work. */
export const SYNC_COMMIT_SPAN = 256 * 1024;

/** Internal signal: objects an asynchronous commit stored vanished (gc by another process); the commit is redone. */
class RetryCommit extends Error {}

/** What an `AsyncCommitter` uses of the `FsCore` view whose files it commits. */
export interface CommitHost {
  /** The view's store: its manifest (transactions), CAS and chunker parameters. */
  readonly store: Store;
  /** Runs `fn`, turning StoreErrors into FsErrors naming `syscall` (`FsCore`'s error wrapping). */
  wrap<T>(syscall: string, fn: () => T): T;
  /** Runs `fn` in one write transaction of the view, errors wrapped as by `wrap`. */
  write<T>(syscall: string, fn: () => T): T;
  /** Whether the view still shows inode `ino` (false once unlinked while open); inside a transaction. */
  visible(ino: number): boolean;
  /** Commits `o`'s working buffer synchronously, inside the current write transaction. */
  commitContent(o: OpenInode): void;
  /** Copies the visible row of `ino` into the view's head layer with `change` applied; inside a write transaction. */
  update(ino: number, change: (r: InodeRow) => void): InodeRow;
}

/** Queues and runs the asynchronous commits of one view's open files (see the module comment). */
export class AsyncCommitter {
  /** `host`: the view whose open files it commits. */
  constructor(private readonly host: CommitHost) {}

  /**
   * Commits what `o` has pending after the commits already queued for it;
   * resolves once they are committed (visible to other connections), or
   * rejects with an FsError naming `syscall` (EIO, or the errno of a
   * StoreError). Little to do (nothing queued and at most SYNC_COMMIT_SPAN
   * bytes to re-chunk, or only times): committed synchronously before it
   * returns. Never throws: every error rejects.
   */
  commit(o: OpenInode, syscall: string): Promise<void> {
    const host = this.host;
    const c = o.content;
    try {
      if (!o.tail && c && !c.inFlight && (!c.dirty || c.pendingWork() <= SYNC_COMMIT_SPAN)) {
        // Nothing queued and little to do (small change, or times only): commit right now, as `flush`.
        if (!(c.dirty || o.mtime !== null)) return Promise.resolve();
        if (o.orphan && !host.wrap(syscall, () => host.store.manifest.read(() => host.visible(o.ino)))) return Promise.resolve();
        host.write(syscall, () => host.commitContent(o));
        return Promise.resolve();
      }
    } catch (e) {
      return Promise.reject(asFsError(e, syscall));
    }
    const run = (o.tail ?? Promise.resolve()).then(() => this.run(o, syscall));
    const tail = run.then(
      () => {},
      () => {},
    );
    o.tail = tail;
    void tail.then(() => {
      if (o.tail === tail) o.tail = null;
    });
    return run.catch((e) => {
      throw asFsError(e, syscall);
    });
  }

  /** Commits what `o` has pending: synchronously when small, else through the worker pool. */
  private async run(o: OpenInode, syscall: string): Promise<void> {
    const host = this.host;
    const m = host.store.manifest;
    for (let round = 0; ; round++) {
      const c = o.content;
      if (!c || !(c.dirty || o.mtime !== null)) return;
      if (o.orphan && !host.wrap(syscall, () => m.read(() => host.visible(o.ino)))) return; // unlinked while open
      if (!c.dirty || c.inFlight || round >= 8 || c.pendingWork() <= SYNC_COMMIT_SPAN) {
        host.write(syscall, () => host.commitContent(o));
        return;
      }
      // Freeze the changed region (loading the committed pages it needs, a slice per turn).
      let r = host.wrap(syscall, () => m.read(() => c.freeze(COMMIT_SLICE_MS)));
      while (r === "more") {
        await nextTurn();
        if (o.content !== c) break;
        r = host.wrap(syscall, () => m.read(() => c.freeze(COMMIT_SLICE_MS)));
      }
      if (o.content !== c || typeof r === "string") continue; // replaced, clean (times only) or busy: look again
      const job = r;
      const t = o.mtime;
      const seq = o.timesSeq;
      const held = (o.held = new Set<string>());
      const dv0 = m.db.pragma("data_version", { simple: true });
      try {
        const res = await commitFrozen(
          CommitPool.shared(),
          { manifest: m, cas: host.store.cas, params: host.store.chunker.params, level: host.store.cas.level, onInserted: (hx) => held.add(hx), pack: host.store.cas.packTarget() },
          job,
        );
        if (!res) continue; // superseded by a synchronous commit: look again
        if (job.superseded || o.content !== c) continue;
        host.write(syscall, () => {
          if (m.db.pragma("data_version", { simple: true }) !== dv0) {
            // Another connection committed meanwhile (maybe a gc): every chunk must still be there.
            for (const e of res.extents) if (e.hash && !host.store.cas.has(e.hash)) throw new RetryCommit();
          }
          // (Unlinked meanwhile: `update` then changes only the in-memory row the open file keeps, which must
          // carry these extents now that the buffer counts them as committed.)
          const ext = encodeExtents(res.extents);
          host.update(o.ino, (row) => {
            row.extents = ext.length ? ext : null;
            row.size = job.size;
            if (row.rdev === LOWER_DATA) row.rdev = 0;
            if (t !== null && seq === o.timesSeq) {
              row.mtime = t;
              row.ctime = t > row.ctime ? t : row.ctime;
            }
          });
        });
        c.finishAsync(job, res.extents);
        if (o.mtime === t) o.mtime = null;
        o.ext = null;
        return;
      } catch (e) {
        c.abortAsync(job);
        if (e instanceof RetryCommit) continue;
        if (e instanceof CommitWorkerError && o.content === c) {
          // No worker (failed to start, or died): commit on this thread rather than fail.
          host.write(syscall, () => host.commitContent(o));
          return;
        }
        throw e;
      } finally {
        if (o.held === held) o.held = null;
      }
    }
  }
}
