/**
 * Mounting a `View` through the kernel with the libfuse 3 low-level binding
 * of `@agentfs/native` (served on the event loop, no threads), and the
 * helpers around a mount: stale-mount detection and recovery, lazy unmount.
 */
import { loadFuseBinding, type FuseSession } from "@agentfs/native";
import { SLOT_CONTROL, encodeIno, type View } from "@agentfs/view";
import type { InodeStat } from "@agentfs/core";
import { execFile } from "node:child_process";
import { existsSync, readFileSync, statSync, statfsSync, writeFileSync } from "node:fs";
import { dirname, resolve } from "node:path";
import { Handlers, newOpStats, removeFuseHiddenNames, type OpStats } from "./ops.js";

/**
 * Write-behind threshold (bytes) recommended for FUSE views
 * (`ViewOptions.autoCommitBytes`): a sequential writer's bytes start being
 * committed in the background after this many, so a large file is chunked
 * while it is written, not all at close (see README, "The loop").
 */
export const FUSE_AUTO_COMMIT_BYTES = 8 << 20;

/** Default largest write request (bytes): 1 MiB, the most libfuse 3 accepts (256 pages). */
export const DEFAULT_MAX_WRITE = 1 << 20;

/** Default `MountOptions.pollSpinUs`: µs to poll for a next request after serving a burst. */
export const DEFAULT_POLL_SPIN_US = 100;
/** Default `MountOptions.holdTransactionsMs`. */
export const DEFAULT_HOLD_MS = 2;
/** Default attribute and entry timeout (s) of a mount that is not an overlay: outside commits are noticed by polling instead. */
export const DEFAULT_CACHE_TIMEOUT = 30;
/** Longest stretch (ms) of name checks `invalidateTree({ sliced: true })` does before serving requests again. */
const INVALIDATE_SLICE_MS = 4;
/** Default `MountOptions.outsideCheckMs`. */
export const DEFAULT_OUTSIDE_CHECK_MS = 250;

/** Default read-ahead window (bytes): as large as a request may be. */
export const DEFAULT_MAX_READAHEAD = 1 << 20;

/** Options for `FuseMount.mount`. */
export interface MountOptions {
  /** Let users other than the mounting one use the mount (`allow_other`; needs root or user_allow_other in /etc/fuse.conf). */
  allowOther?: boolean;
  /** Let the kernel check permissions from the mode bits (`default_permissions`). Default true: without it every caller acts with the daemon's rights. */
  defaultPermissions?: boolean;
  /** Largest write request in bytes (default 1 MiB; the kernel sends at most this much per WRITE). 0 means 4096. */
  maxWrite?: number;
  /**
   * Read-ahead window in bytes (default 1 MiB): offered at INIT and, as
   * root, set as the mount's read_ahead_kb (`setReadAhead`), so that
   * sequential reads arrive as requests of up to this size instead of 128 KiB.
   */
  maxReadahead?: number;
  /**
   * Seconds the kernel may cache attributes: default 30, or 1 over an
   * overlay (the host may change its lower directory at any time). Changes
   * made through the mount are seen at once (every reply carries fresh
   * attributes; all hard links of a file are one kernel inode); commits by
   * other processes (SDK, CLI opening the store directly) drop the kernel's
   * caches within `outsideCheckMs`.
   */
  attrTimeout?: number;
  /** Seconds the kernel may cache name lookups: default 30, or 1 over an overlay (as `attrTimeout`). */
  entryTimeout?: number;
  /** Seconds the kernel may remember that a name does not exist (default 1): a file created by another process may stay invisible that long. */
  negativeTimeout?: number;
  /**
   * Page cache across opens. "auto" (default): an open keeps the cached
   * data of a file that nothing but this kernel changed since it was last
   * opened (its mtime and size are as the last open, write or setattr
   * through the mount left them); a commit by another process drops it
   * (`outsideCheckMs`). Over an overlay the kernel also drops a file's
   * pages whenever it sees its mtime or size change
   * (FUSE_CAP_AUTO_INVAL_DATA), since the host may change the lower
   * directory. "never": every open drops it.
   */
  pageCache?: "auto" | "never";
  /**
   * Serve the `security.capability` xattr (default false). When false the
   * binding answers getxattr of it with ENODATA without a JS call — the
   * kernel asks before every write(2) to strip file capabilities — and
   * setting it fails with EOPNOTSUPP. The mount is nosuid, so file
   * capabilities would have no effect on exec anyway.
   */
  fileCapabilities?: boolean;
  /**
   * After serving a burst of requests, keep reading /dev/fuse for up to this
   * many µs before sleeping in epoll (default 100; 0 never). A program
   * waiting on the mount sends its next request soon after a reply, and a
   * wake-up through epoll costs more than that wait (measured here: stat
   * through the mount 316 µs → 146 µs; the small-file job 13.8–14.2 s with
   * 25 µs, 11.1–11.5 s with 100). Adaptive: after mostly empty polls it
   * stops for a while, so an idle or sparse mount burns nothing.
   */
  pollSpinUs?: number;
  /**
   * Consecutive requests share one SQLite transaction of the store, committed
   * at the end of the event-loop turn or after this many ms (default 2; 0:
   * one transaction per request). See `Manifest.holdTransactions`: close,
   * fsync and fsyncdir still commit before they are answered, so only
   * namespace and attribute changes of the last few ms, never a closed
   * file's data, can be lost to a SIGKILL of the daemon.
   */
  holdTransactionsMs?: number;
  /**
   * Every this many ms (default 250; 0 never) the daemon looks whether
   * another process committed to the store (or a held transaction's commit
   * failed and its answered changes were rolled back), and if so drops every name,
   * attribute and cached page the kernel holds (`invalidateTree`), so such
   * changes show through the mount within about this long even though the
   * kernel may cache for `attrTimeout`/`entryTimeout` seconds.
   */
  outsideCheckMs?: number;
  /** Filesystem name shown in /proc/mounts (default "agentfs"). */
  fsname?: string;
  /** Extra raw `-o` mount options (e.g. ["ro"]). */
  options?: string[];
  /** libfuse debug output on stderr. */
  debug?: boolean;
  /** Called for non-errno exceptions (answered with EIO). Default: written to stderr. */
  onInternalError?: (op: string, e: unknown) => void;
  /**
   * Before serving, unlink every `.fuse_hidden…` file left in the view's
   * tree by a libfuse 2 daemon of an earlier agentfs that died
   * (`removeFuseHiddenNames`; count in `FuseMount.removedHidden`). Default
   * true; pass false while such a daemon may be serving the same branch.
   * Ignored on a read-only view.
   */
  removeHidden?: boolean;
}

/** The `-o` mount options a mount passes to libfuse, in order. */
export function fuseOptionList(opts: MountOptions, readOnly: boolean): string[] {
  const o: string[] = [`fsname=${(opts.fsname ?? "agentfs").replace(/[,\s\\]/g, "_")}`, "subtype=agentfs"];
  if (opts.defaultPermissions ?? true) o.push("default_permissions");
  if (opts.allowOther) o.push("allow_other");
  if (readOnly) o.push("ro");
  if (opts.debug) o.push("debug");
  o.push(...(opts.options ?? []));
  return o;
}

/** Mount points this process serves now: it must never stat, statfs or mount on them itself. */
const servedHere = new Set<string>();

/** A live FUSE mount of a View. */
export class FuseMount {
  /** Counters of served requests (writes, largest write, per-op loop time, internal errors). */
  readonly stats: OpStats = newOpStats();
  private session: FuseSession | null = null;
  private handlers!: Handlers;
  private resolveDone!: () => void;
  /**
   * Resolves once the mount has ended: after `unmount`, or when the kernel
   * ended it from outside (fusermount -u, umount) and the view's open files
   * were committed.
   */
  readonly done: Promise<void> = new Promise((r) => (this.resolveDone = r));
  /** True when the mount ended from outside rather than by `unmount`. */
  endedOutside = false;
  /** Read-ahead window the kernel uses for this mount, in KiB (128 when it could not be raised). */
  readAheadKb = 128;
  /** Number of `.fuse_hidden…` files of an earlier libfuse 2 daemon that `mount` removed before serving (`MountOptions.removeHidden`). */
  removedHidden = 0;

  /** Times `outsideCheckMs` polling found the kernel's caches possibly wrong (`View.cacheEpoch`: another process committed, or held changes were rolled back) and dropped them. */
  outsideInvalidations = 0;
  private outsideWatch: NodeJS.Timeout | null = null;
  private seenEpoch = 0;
  private invalidatingOutside = false;

  private constructor(readonly view: View, readonly mountpoint: string, readonly options: string[]) {}

  /** `outsideCheckMs` polling: drops the kernel's caches once another process has committed to the store, or held changes were rolled back. */
  private checkOutside(): void {
    if (!this.session || this.invalidatingOutside) return;
    let n: number;
    try {
      n = this.view.cacheEpoch();
    } catch {
      return; // a damaged store shows up in the requests themselves
    }
    if (n === this.seenEpoch) return;
    this.seenEpoch = n;
    this.outsideInvalidations++;
    this.invalidatingOutside = true;
    // Sliced: the kernel's caches were already stale since the other process committed, so a few ms more
    // of serving from names not yet checked changes nothing, and the loop is never held long.
    void this.invalidateTree({ sliced: true })
      .catch(() => 0) // the kernel's caches then expire with their timeouts
      .finally(() => (this.invalidatingOutside = false));
  }

  private stopOutsideWatch(): void {
    if (this.outsideWatch) clearInterval(this.outsideWatch);
    this.outsideWatch = null;
  }

  /**
   * Mounts `view` on the directory `mountpoint` (absolute or relative to the
   * working directory). A stale mount left there by a killed daemon
   * (ENOTCONN) is lazily unmounted first. Resolves once the kernel has sent
   * INIT. The mount keeps the event loop alive until it ends. The event loop
   * must stay free: a synchronous wait on the mount from this process
   * (execSync of `ls`, fs.*Sync on the mountpoint) deadlocks.
   * Errors: ENOENT/ENOTDIR (mountpoint), EBUSY (a FUSE filesystem is
   * mounted there, or this process serves that mount point or one above
   * it), EIO (the kernel refused; libfuse printed why), EINVAL (a bad raw
   * option).
   */
  static async mount(view: View, mountpoint: string, opts: MountOptions = {}): Promise<FuseMount> {
    const mnt = resolve(mountpoint);
    // Any stat of a mount this process serves would wait on this very loop: refuse before touching it.
    for (const own of servedHere) {
      if (mnt === own || mnt.startsWith(own === "/" ? own : own + "/")) {
        throw Object.assign(new Error(`EBUSY: cannot mount on '${mnt}': ${mnt === own ? "this process already serves a mount there" : `it is inside ${own}, which this process serves`}`), { code: "EBUSY", errno: -16, syscall: "mount", path: mnt });
      }
    }
    await recoverStaleMount(mnt);
    let st;
    try {
      st = statSync(mnt);
    } catch (e) {
      const code = (e as NodeJS.ErrnoException).code ?? "EIO";
      throw Object.assign(new Error(`${code}: cannot mount on '${mnt}': ${(e as Error).message}`), { code, errno: (e as NodeJS.ErrnoException).errno, syscall: "mount", path: mnt });
    }
    if (!st.isDirectory()) throw Object.assign(new Error(`ENOTDIR: cannot mount on '${mnt}': not a directory`), { code: "ENOTDIR", errno: -20, syscall: "mount", path: mnt });
    if (isFuseMounted(mnt)) throw Object.assign(new Error(`EBUSY: cannot mount on '${mnt}': a FUSE filesystem is mounted there`), { code: "EBUSY", errno: -16, syscall: "mount", path: mnt });
    const binding = loadFuseBinding();
    const m = new FuseMount(view, mnt, fuseOptionList(opts, view.readOnly));
    if (opts.removeHidden ?? true) m.removedHidden = removeFuseHiddenNames(view);
    // The host may change an overlay's lower directory behind the store's back: keep the kernel's caches short there.
    const overlay = view.lowerRoot !== null;
    const cacheTimeout = overlay ? 1 : DEFAULT_CACHE_TIMEOUT;
    const report = opts.onInternalError ?? ((op: string, e: unknown) => process.stderr.write(`agentfs fuse: ${op}: ${e instanceof Error ? e.stack : String(e)}\n`));
    const h = new Handlers(view, binding, m.stats, {
      timeouts: { attr: opts.attrTimeout ?? cacheTimeout, entry: opts.entryTimeout ?? cacheTimeout, negative: opts.negativeTimeout ?? 1 },
      fileCapabilities: !!opts.fileCapabilities,
      pageCache: opts.pageCache ?? "auto",
      onInternalError: report,
      onExit: () => m.endOutside(),
    });
    const C = binding.caps;
    const session = new binding.FuseSession(["agentfs", "-o", m.options.join(",")], h.dispatch, {
      maxWrite: opts.maxWrite === 0 ? 4096 : opts.maxWrite ?? DEFAULT_MAX_WRITE,
      maxReadahead: opts.maxReadahead ?? DEFAULT_MAX_READAHEAD,
      // AUTO_INVAL_DATA (drop a file's pages whenever a GETATTR shows a new mtime) only over an overlay, whose
      // host directory may change behind the store's back. Elsewhere every change either comes through this
      // kernel, which updates its pages itself, or is invalidated explicitly (invalidateTree); with it, the
      // first stat after a write dropped every page the write had just filled (the daemon's mtime is not the
      // kernel's), and every read after a write asked for attributes first.
      wantSet: (overlay ? C.AUTO_INVAL_DATA! : 0) | C.CACHE_SYMLINKS! | C.PARALLEL_DIROPS! | C.ASYNC_READ!,
      // O_TRUNC as a setattr first; no writeback cache: every write reaches the store at once, so a SIGKILLed
      // daemon loses only unflushed bytes. Not KILLPRIV (v1): it would leave the kernel probing
      // security.capability before every write(2) and clearing S_ISUID for root writers too.
      wantClear: (overlay ? 0 : C.AUTO_INVAL_DATA!) | C.ATOMIC_O_TRUNC! | C.HANDLE_KILLPRIV! | C.WRITEBACK_CACHE! | C.POSIX_ACL! | C.EXPORT_SUPPORT! | C.DONT_MASK!,
      fileCapabilities: !!opts.fileCapabilities,
      // KILLPRIV_V2: the daemon clears set-user-ID/set-group-ID (ops.ts killPrivs) and the kernel stops asking
      // getxattr("security.capability") before each write(2), a round trip per write (a fifth of tar x's
      // requests). Only without file capabilities: the daemon would also have to drop a stored capability
      // on every write, truncate and chown.
      killprivV2: !opts.fileCapabilities,
      spinUs: opts.pollSpinUs ?? DEFAULT_POLL_SPIN_US,
    });
    h.attach(session);
    session.mount(mnt);
    // (requests are served on this loop, so none runs before this line)
    view.holdTransactions(opts.holdTransactionsMs ?? DEFAULT_HOLD_MS);
    if (!view.readOnly) view.deferCompression(true);
    servedHere.add(mnt);
    m.session = session;
    m.handlers = h;
    await h.initialized;
    // (the INIT reply went out before this continuation ran)
    m.stats.killprivV2 = session.killprivV2();
    const every = opts.outsideCheckMs ?? DEFAULT_OUTSIDE_CHECK_MS;
    if (every > 0) {
      m.seenEpoch = view.cacheEpoch();
      m.outsideWatch = setInterval(() => m.checkOutside(), every).unref();
    }
    const ra = opts.maxReadahead ?? DEFAULT_MAX_READAHEAD;
    if (setReadAhead(mnt, ra >> 10)) m.readAheadKb = ra >> 10;
    return m;
  }

  /** True until the mount has ended. */
  get mounted(): boolean {
    return this.session !== null;
  }

  /** Capability bits (binding.caps) the kernel agreed to at INIT. */
  get capabilities(): number {
    return this.handlers.want;
  }

  /** Number of nodes the kernel holds (root included). */
  get nodeCount(): number {
    return this.handlers.nodes.size;
  }

  /**
   * After the served tree changed underneath the mount (a restore or an
   * overlay reset by the daemon, not through the kernel): keeps only node
   * names that still lead to the same inode, then drops every name and every
   * inode's attributes and cached data the kernel holds (notifications on a
   * pool thread, `FuseSession.notifyAsync`), so the next access sees the new
   * tree instead of waiting out the entry and attribute timeouts. Resolves
   * with the number of notifications the kernel took (0 when not mounted).
   * `sliced`: check the names a few ms at a time, serving requests in
   * between (for changes the kernel's caches were stale about anyway: the
   * `outsideCheckMs` poll); else all at once, so that no request is served
   * by a name not yet checked (restore: ~10 ms for 10,000 cached names).
   */
  async invalidateTree(opts: { sliced?: boolean } = {}): Promise<number> {
    let s = this.session;
    if (!s) return 0;
    const nodes = this.handlers.nodes;
    // The cached names of each directory are checked in one read of the store (inode numbers only, no
    // path walks); with `sliced`, a few ms at a time.
    const byParent = new Map<number, string[]>();
    const held = new Set<string>(); // "id/parent/name" of every link when the check began
    for (const l of nodes.links()) {
      const names = byParent.get(l.parent);
      if (names) names.push(l.name);
      else byParent.set(l.parent, [l.name]);
      if (opts.sliced) held.add(`${l.id}/${l.parent}/${l.name}`);
    }
    // parent -> name -> the inode it leads to now (-1: no entry); null: the directory itself is gone
    const found = new Map<number, Map<string, number> | null>();
    let t0 = performance.now();
    for (const [parent, all] of byParent) {
      const here = new Map<string, number>();
      found.set(parent, here);
      // Pieces of at most 1,000 names (one read of the store each), so a slice can end inside a large directory.
      for (let at = 0; at < all.length; at += 1000) {
        if (opts.sliced && performance.now() - t0 > INVALIDATE_SLICE_MS) {
          // Serve requests in between (a name cached meanwhile was looked up in the new tree).
          await new Promise((r) => setImmediate(r));
          t0 = performance.now();
          s = this.session;
          if (!s) return 0;
        }
        const names = all.slice(at, at + 1000);
        let inos: (number | null)[] | undefined;
        try {
          inos = this.view.inosAt(parent, names);
        } catch {
          found.set(parent, null); // the directory itself is gone: none of its names is kept
          break;
        }
        names.forEach((name, i) => {
          let ino = inos ? inos[i] : null;
          if (!inos) {
            try {
              ino = this.statByPath(parent, name)?.ino ?? null;
            } catch {
              /* gone */
            }
          }
          here.set(name, ino ?? -1);
        });
      }
    }
    // A link made after the check began (sliced: a lookup, or a name replaced through the mount) is
    // kept: it was made from the new tree.
    const links = nodes.revalidate((parent, name, id) => {
      if (opts.sliced && !held.has(`${id}/${parent}/${name}`)) return true;
      const here = found.get(parent);
      if (here === undefined) return true;
      if (here === null) return false;
      const ino = here.get(name);
      return ino === undefined || ino === id;
    });
    return this.handlers.notifier.drop(links.map((l) => [l.parent, l.name]), this.handlers.nodes.ids());
  }

  /** Stat of entry `name` of node `parent` by path (snapshot trees, an overlay's lower directories), or null. */
  private statByPath(parent: number, name: string): InodeStat | null {
    const path = this.handlers.nodes.childPath(parent, name);
    return path === null ? null : this.view.stat(path, false);
  }

  /**
   * After snapshots were created or deleted: drops the kernel's names
   * `names` under `/.agentfs/snapshots/` (a deleted one, or a negative entry
   * for a new one) and that directory's attributes and listing. Resolves
   * with the number of notifications the kernel took.
   */
  invalidateSnapshots(names: string[]): Promise<number> {
    const s = this.session;
    if (!s) return Promise.resolve(0);
    const dir = encodeIno(SLOT_CONTROL, 2);
    return this.handlers.notifier.drop(names.map((n) => [dir, n]), [dir]);
  }

  /** Copies the session's own counters (poll spins, capability probes) into `stats`. */
  private recordSessionCounters(s: FuseSession): void {
    const [spins, hits] = s.spinStats();
    this.stats.spins = spins!;
    this.stats.spinHits = hits!;
    this.stats.capabilityProbes = s.capabilityProbes();
  }

  /** Resolves when every notification sent so far (invalidations, page-cache stores) has been taken by the kernel (or failed). */
  settled(): Promise<void> {
    return this.handlers.notifier.settled();
  }

  /** The kernel ended the session: commit what is open and free it. */
  private endOutside(): void {
    const s = this.session;
    if (!s) return;
    this.endedOutside = true;
    this.end(s);
  }

  /** Ends session `s` (the current one): stops polling, commits every open file and what the store holds, unmounts. */
  private end(s: FuseSession): void {
    this.session = null;
    this.stopOutsideWatch();
    this.recordSessionCounters(s);
    servedHere.delete(this.mountpoint);
    try {
      this.view.closeAll();
      if (!this.view.readOnly) {
        try {
          this.stats.deferredCompression = this.view.deferCompression(false);
        } catch {
          // Compressing what was still queued failed (EIO…): those objects stay raw, which is valid.
        }
      }
      this.view.holdTransactions(0);
    } finally {
      s.unmount();
      this.resolveDone();
    }
  }

  /**
   * Commits every open file (`View.closeAll`) and unmounts (lazily, as
   * `fusermount -uz`: programs still inside the mount get ENOTCONN from
   * then on). Safe to call twice. Errors: none (the view is committed
   * regardless; a failed unmount leaves a stale mount `recoverStaleMount`
   * removes).
   */
  async unmount(): Promise<void> {
    if (!this.session) return;
    // A notification may wait for a kernel lock held by a process that waits for a reply: keep serving until
    // all are through (the session unmounts only after its last one). Checked again in the tick that ends the
    // session: a continuation may have started another meanwhile.
    do await this.settled();
    while (this.handlers.notifier.busy);
    const s = this.session;
    if (s) this.end(s);
  }
}

/** One line of /proc/self/mountinfo: mount point (octal escapes decoded), device "major:minor", filesystem type. */
interface MountInfo {
  mountpoint: string;
  device: string;
  type: string;
}

/** The mount table of this process's namespace, in mount order; [] when it cannot be read. */
function mountInfo(): MountInfo[] {
  let text = "";
  try {
    text = readFileSync("/proc/self/mountinfo", "utf8");
  } catch {
    return [];
  }
  const out: MountInfo[] = [];
  for (const line of text.split("\n")) {
    const f = line.split(" ");
    const sep = f.indexOf("-");
    if (f.length < 10 || sep < 0) continue;
    out.push({ mountpoint: f[4]!.replace(/\\([0-7]{3})/g, (_, o) => String.fromCharCode(parseInt(o, 8))), device: f[2]!, type: f[sep + 1]! });
  }
  return out;
}

/**
 * Mount entries from /proc/self/mountinfo whose mount point is `dir`.
 * Returns the filesystem types, innermost last.
 */
export function mountTypesAt(dir: string): string[] {
  const want = resolve(dir);
  return mountInfo().filter((m) => m.mountpoint === want).map((m) => m.type);
}

/**
 * Sets the kernel read-ahead window of the FUSE mount on `dir` to `kb` KiB
 * (`/sys/class/bdi/MAJOR:MINOR/read_ahead_kb`; needs root). The kernel
 * starts a FUSE mount at 128 KiB whatever the daemon offers, which caps
 * sequential reads at 128 KiB per request. Reads /proc/self/mountinfo, never
 * the mount itself (the serving process must not wait on its own mount).
 * Returns true when set.
 */
export function setReadAhead(dir: string, kb: number): boolean {
  const want = resolve(dir);
  const m = mountInfo().filter((x) => x.mountpoint === want && x.type.startsWith("fuse")).pop();
  if (!m) return false;
  try {
    writeFileSync(`/sys/class/bdi/${m.device}/read_ahead_kb`, String(kb));
    return true;
  } catch {
    return false;
  }
}

/** True when a FUSE filesystem is mounted on `dir` (per /proc/self/mountinfo). */
export function isFuseMounted(dir: string): boolean {
  return mountTypesAt(dir).some((t) => t.startsWith("fuse"));
}

/**
 * True when `dir` is a FUSE mount whose daemon is gone: statfs fails with
 * ENOTCONN (or ECONNABORTED). Not stat: the kernel answers stat of the
 * mount's root from its attribute cache for attr_timeout after the daemon
 * died; statfs always asks the daemon.
 */
export function isStaleMount(dir: string): boolean {
  try {
    statfsSync(dir);
    return false;
  } catch (e) {
    const code = (e as NodeJS.ErrnoException).code;
    return code === "ENOTCONN" || code === "ECONNABORTED";
  }
}

/**
 * Lazily unmounts `dir` (`fusermount -uz`, falling back to `fusermount3 -uz`
 * and `umount -l`). Resolves true when nothing FUSE is mounted there
 * afterwards. Never throws.
 */
export async function lazyUnmount(dir: string): Promise<boolean> {
  const mnt = resolve(dir);
  for (const [cmd, args] of [["fusermount", ["-uz", mnt]], ["fusermount3", ["-uz", mnt]], ["umount", ["-l", mnt]]] as const) {
    if (!isFuseMounted(mnt)) return true;
    await new Promise<void>((res) => execFile(cmd, [...args], () => res()));
  }
  return !isFuseMounted(mnt);
}

/**
 * Detects a stale mount on `dir` (ENOTCONN: the daemon that served it died)
 * and recovers it with a lazy unmount. Resolves true when one was removed.
 */
export async function recoverStaleMount(dir: string): Promise<boolean> {
  if (!existsSync(dirname(resolve(dir)))) return false;
  if (!isStaleMount(dir)) return false;
  await lazyUnmount(dir);
  return true;
}
