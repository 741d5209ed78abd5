/**
 * Notifications the daemon sends the kernel on its own (dropping cached
 * names, attributes and pages; storing pages), written on a libuv pool
 * thread because the kernel may make them wait for a lock held by a process
 * that waits for a reply from the loop. Every batch goes through one
 * `Notifier`, so that ending the mount can keep serving until all are
 * through: the native session frees itself (and unmounts) only after its
 * last batch, so an `unmount` that did not wait would return with the mount
 * still in place.
 */
import type { FuseSession } from "@agentfs/native";

/** The notification batches of one mount (see the module comment). */
export class Notifier {
  private readonly running = new Set<Promise<unknown>>();

  /** `session`: the serving session, or null once it has ended. */
  constructor(private readonly session: () => FuseSession | null) {}

  /**
   * Drops the kernel's names `entries` ([parent node, name]) and the
   * attributes and cached pages of nodes `inodes` (attributes only with
   * `attrsOnly`), as FuseSession.notifyAsync. Resolves with the number of
   * notifications the kernel took; 0 when the session no longer serves.
   * Never rejects.
   */
  drop(entries: [number, string][], inodes: number[], attrsOnly = false): Promise<number> {
    return this.track<number>((done) => this.session()?.notifyAsync(entries, inodes, done, attrsOnly) ?? false) ?? Promise.resolve(0);
  }

  /**
   * Stores `data` into the kernel's page cache of node `ino` at byte
   * `offset`, as FuseSession.notifyStoreAsync. Returns null when the session
   * no longer serves (nothing started); else resolves with 0 or the errno
   * the kernel answered. Never rejects.
   */
  store(ino: number, offset: number, data: Buffer): Promise<number> | null {
    return this.track<number>((done) => this.session()?.notifyStoreAsync(ino, offset, data, done) ?? false);
  }

  /** True while a batch is running. */
  get busy(): boolean {
    return this.running.size > 0;
  }

  /**
   * Resolves once no batch is running. A batch started by a continuation
   * of one that ended may still be running when the caller resumes: check
   * `busy` in the same tick as what must follow.
   */
  async settled(): Promise<void> {
    while (this.running.size) await Promise.all([...this.running]);
  }

  /** Starts a batch with `start` (false: not started) and tracks it until its callback. */
  private track<T>(start: (done: (v: T) => void) => boolean): Promise<T> | null {
    let started = false;
    const p = new Promise<T>((res) => {
      started = start(res);
    });
    if (!started) return null;
    this.running.add(p);
    void p.then(() => this.running.delete(p));
    return p;
  }
}
