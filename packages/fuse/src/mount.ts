/**
 * Mounting a `View` with fuse-native (libfuse 2.9, high-level API), and the
 * helpers around a mount: stale-mount detection and recovery, lazy unmount,
 * readiness polling.
 */
import type { View } from "@agentfs/view";
import { execFile } from "node:child_process";
import { existsSync, readFileSync, statfsSync } from "node:fs";
import { createRequire } from "node:module";
import { dirname, resolve } from "node:path";
import { makeOps, newOpStats, removeFuseHiddenNames, type ContextReader, type OpStats } from "./ops.js";

const require = createRequire(import.meta.url);

/**
 * Sequential-write commit interval (bytes) recommended for FUSE views
 * (`ViewOptions.autoCommitBytes`): bounds the pause a large file's commit
 * imposes on every other request (see README, "The loop").
 */
export const FUSE_AUTO_COMMIT_BYTES = 8 << 20;

/** Default largest write request (bytes) asked of the kernel with `big_writes`. */
export const DEFAULT_MAX_WRITE = 131072;

/** Options for `mountView`. */
export interface MountOptions {
  /** Let users other than the mounting one use the mount (`allow_other`; needs root or user_allow_other in /etc/fuse.conf). */
  allowOther?: boolean;
  /** Let the kernel check permissions from the mode bits (`default_permissions`). Default true: without it every caller acts with the daemon's rights. */
  defaultPermissions?: boolean;
  /** Largest write request in bytes; passes `big_writes,max_write=N`. Default 131072; 0 keeps libfuse's 4096. */
  maxWrite?: number;
  /**
   * Seconds the kernel may cache attributes (`attr_timeout`, default 1).
   * Changes made through the mount are seen at once: the kernel refreshes
   * the inode it wrote or set, and the patched addon never lets the kernel
   * cache attributes of a file with several hard links (libfuse 2 gives
   * each link its own kernel inode) and invalidates a link source's inode.
   * Changes made by other processes (CLI, SDK) may take this long to show.
   * 0 asks the daemon on every stat and on every permission check of each
   * directory of a path.
   */
  attrTimeout?: number;
  /** Seconds the kernel may cache name lookups (`entry_timeout`, default 1): a file removed or renamed by another process may stay visible that long. */
  entryTimeout?: number;
  /** Seconds the kernel may remember that a name does not exist (`negative_timeout`, default 1): a file created by another process may stay invisible that long. */
  negativeTimeout?: number;
  /**
   * Page cache across opens. "auto" (default, libfuse `auto_cache`): an open
   * keeps the cached data of a file whose mtime and size are unchanged since
   * libfuse last saw them, and drops it otherwise. "never": every open drops
   * the file's cached data (reads still go through the page cache while open).
   */
  pageCache?: "auto" | "never";
  /**
   * Serve the `security.capability` xattr (default false). When false the
   * patched addon answers getxattr of it with ENODATA on the FUSE thread,
   * which saves a round trip to the daemon before every write(2) (the kernel
   * asks it to strip file capabilities), and setting it fails with
   * EOPNOTSUPP. The mount is nosuid, so file capabilities would have no
   * effect on exec anyway.
   */
  fileCapabilities?: boolean;
  /** Filesystem name shown in /proc/mounts (default "agentfs"). */
  fsname?: string;
  /** Extra raw `-o` options (e.g. ["ro"]). */
  options?: string[];
  /** libfuse debug output on stderr. */
  debug?: boolean;
  /** Called for non-errno exceptions (answered with EIO). */
  onInternalError?: (op: string, e: unknown) => void;
  /**
   * Before serving, unlink every libfuse `.fuse_hidden…` file left in the
   * view's tree (`removeFuseHiddenNames`; count in `FuseMount.removedHidden`).
   * Default true. Such a file was open when it was unlinked and its daemon
   * died before the last release; pass false when another mount may be
   * serving the same branch right now (its open files would lose their
   * hidden names). Ignored on a read-only view.
   */
  removeHidden?: boolean;
}

/** Minimal shape of the fuse-native class that this package uses. */
interface FuseNative {
  mount(cb: (err: Error | null) => void): void;
  unmount(cb: (err: Error | null) => void): void;
}
type FuseCtor = (new (mnt: string, ops: object, opts: object) => FuseNative) & Record<string, unknown>;

let FuseClass: FuseCtor | undefined;

/**
 * Loads fuse-native (a CommonJS addon). Errors: whatever its loader throws
 * (no prebuild for this platform, or libfuse.so.2 missing: `apt-get install libfuse2`).
 */
export function loadFuse(): FuseCtor {
  if (FuseClass) return FuseClass;
  const Base = require("fuse-native") as FuseCtor;
  /**
   * fuse-native's option list has no `big_writes`/`max_write`/`use_ino`,
   * and its getxattr/listxattr copy into the kernel's buffer without a size
   * check. This subclass builds the option string itself and answers ERANGE
   * when a value does not fit the buffer the caller gave.
   */
  class AgentFuse extends (Base as any) {
    _fuseOptions(): string {
      const o = (this as any).agentOptions as string[];
      return o.length ? "-o" + o.join(",") : "";
    }
    _op_getxattr(signal: (code: number, buf: ArrayBuffer) => void, path: string, name: string, valueBuf: Buffer, position: number) {
      (this as any).ops.getxattr(path, name, position, (err: number, value?: Buffer) => {
        if (err) return signal(err, valueBuf.buffer as ArrayBuffer);
        if (!value) return signal(-61, valueBuf.buffer as ArrayBuffer); // ENODATA
        if (valueBuf.length === 0) return signal(value.length, valueBuf.buffer as ArrayBuffer);
        if (value.length > valueBuf.length) return signal(-34, valueBuf.buffer as ArrayBuffer); // ERANGE
        value.copy(valueBuf);
        return signal(value.length, valueBuf.buffer as ArrayBuffer);
      });
    }
    _op_listxattr(signal: (code: number, buf: ArrayBuffer) => void, path: string, listBuf: Buffer) {
      (this as any).ops.listxattr(path, (err: number, list?: string[]) => {
        if (err || !list) return signal(err || 0, listBuf.buffer as ArrayBuffer);
        const raw = Buffer.concat(list.map((n) => Buffer.from(n + "\0")));
        if (listBuf.length === 0) return signal(raw.length, listBuf.buffer as ArrayBuffer);
        if (raw.length > listBuf.length) return signal(-34, listBuf.buffer as ArrayBuffer); // ERANGE
        raw.copy(listBuf);
        return signal(raw.length, listBuf.buffer as ArrayBuffer);
      });
    }
  }
  (AgentFuse as any).agentfsContext = (Base as any).agentfsContext ?? null;
  (AgentFuse as any).agentfsPatchLevel = (Base as any).agentfsPatchLevel ?? 0;
  FuseClass = AgentFuse as unknown as FuseCtor;
  return FuseClass;
}

/**
 * True when the loaded fuse-native carries the agentfs patch
 * (patches/fuse-native@2.2.6.patch): callers' uid/gid reach new files and
 * utimens keeps ns, UTIME_NOW and UTIME_OMIT.
 */
export function hasCallerContext(): boolean {
  return typeof loadFuse().agentfsContext === "function";
}

/**
 * True when the loaded fuse-native has the agentfs channel (patch level 2
 * or later): hard-linked files' attributes are never cached, link sources
 * are invalidated, and `agentfs_nocaps` is understood.
 */
export function hasAgentfsChannel(): boolean {
  return Number(loadFuse().agentfsPatchLevel ?? 0) >= 2;
}

/** The `-o` options a mount passes to libfuse, in order (`agentfs_nocaps` is the patched addon's own). */
export function fuseOptionList(opts: MountOptions, readOnly: boolean): string[] {
  const o: string[] = [];
  // Read (and removed) by the patched addon, which needs it first; see MountOptions.fileCapabilities.
  if (!opts.fileCapabilities && hasAgentfsChannel()) o.push("agentfs_nocaps");
  o.push(`fsname=${(opts.fsname ?? "agentfs").replace(/[,\s\\]/g, "_")}`, "subtype=agentfs", "use_ino");
  // Not `hard_remove`: the patched addon accepts the NULL paths it causes, and read/write/
  // ftruncate/fsync work by fd, but libfuse 2 answers fstat (GETATTR without a handle) of an
  // unlinked open file with ENOENT. libfuse's default — rename to .fuse_hidden* until release —
  // keeps every operation working; opts.options: ["hard_remove"] trades that for a clean namespace.
  if (opts.defaultPermissions ?? true) o.push("default_permissions");
  if (opts.allowOther) o.push("allow_other");
  const maxWrite = opts.maxWrite ?? DEFAULT_MAX_WRITE;
  if (maxWrite > 0) o.push("big_writes", `max_write=${maxWrite}`);
  o.push(`attr_timeout=${opts.attrTimeout ?? 1}`, `entry_timeout=${opts.entryTimeout ?? 1}`, `negative_timeout=${opts.negativeTimeout ?? 1}`);
  if ((opts.pageCache ?? "auto") === "auto") o.push("auto_cache");
  if (readOnly) o.push("ro");
  if (opts.debug) o.push("debug");
  o.push(...(opts.options ?? []));
  return o;
}

/** A live FUSE mount of a View. */
export class FuseMount {
  /** Counters of served requests (writes, largest write, internal errors). */
  readonly stats: OpStats = newOpStats();
  private fuse: FuseNative | null = null;
  private keepAlive: NodeJS.Timeout | null = null;
  /** `.fuse_hidden…` paths of files unlinked while open and not released yet (`OpsOptions.hidden`). */
  private readonly hidden = new Set<string>();
  /** Number of `.fuse_hidden…` files left by an earlier daemon that `mount` removed before serving (`MountOptions.removeHidden`). */
  removedHidden = 0;

  private constructor(readonly view: View, readonly mountpoint: string, readonly options: string[]) {}

  /**
   * Mounts `view` on the directory `mountpoint` (absolute or relative to the
   * working directory). A stale mount left there by a killed daemon
   * (ENOTCONN) is lazily unmounted first, and `.fuse_hidden…` files left in
   * the tree by a daemon that died are removed (`MountOptions.removeHidden`)
   * before the mount serves anything. Resolves once the kernel has sent
   * INIT. The mount keeps the event loop alive until `unmount`. The event
   * loop must stay free: a synchronous wait on the mount from this process
   * (execSync of `ls`, fs.*Sync on the mountpoint) deadlocks.
   * Errors: ENOENT/ENOTDIR (mountpoint), EBUSY ("Mountpoint in use": something
   * is already mounted there), EIO ("fuse failed": the kernel refused).
   */
  static async mount(view: View, mountpoint: string, opts: MountOptions = {}): Promise<FuseMount> {
    const mnt = resolve(mountpoint);
    await recoverStaleMount(mnt);
    const Fuse = loadFuse();
    const m = new FuseMount(view, mnt, fuseOptionList(opts, view.readOnly));
    if (opts.removeHidden ?? true) m.removedHidden = removeFuseHiddenNames(view);
    const context = typeof Fuse.agentfsContext === "function" ? (Fuse.agentfsContext as ContextReader) : undefined;
    const fuse = new Fuse(mnt, makeOps(view, m.stats, { onInternalError: opts.onInternalError, context, hidden: m.hidden, fileCapabilities: !m.options.includes("agentfs_nocaps") }), { timeout: false });
    (fuse as any).agentOptions = m.options;
    await new Promise<void>((res, rej) =>
      fuse.mount((err) => {
        if (!err) return res();
        const msg = err.message || String(err);
        const code = /in use/i.test(msg) ? "EBUSY" : /does not exist/i.test(msg) ? "ENOENT" : /not a directory/i.test(msg) ? "ENOTDIR" : "EIO";
        rej(Object.assign(new Error(`${code}: cannot mount on '${mnt}': ${msg}`), { code }));
      }),
    );
    m.fuse = fuse;
    m.keepAlive = setInterval(() => {}, 1 << 30);
    return m;
  }

  /** True until `unmount` has completed. */
  get mounted(): boolean {
    return this.fuse !== null;
  }

  /**
   * Commits every open file (`View.closeAll`), removes the `.fuse_hidden…`
   * names of files unlinked while still open (their last release, which
   * would remove them, never comes once unmounted) and unmounts (lazily, as
   * `fusermount -uz`: programs still inside the mount get ENOTCONN from then
   * on). Safe to call twice. Errors: the fusermount failure, if any (the
   * view is committed regardless).
   */
  async unmount(): Promise<void> {
    const fuse = this.fuse;
    if (!fuse) return;
    this.fuse = null;
    if (this.keepAlive) clearInterval(this.keepAlive);
    this.view.closeAll();
    for (const path of this.hidden) {
      try {
        this.view.unlink(path);
      } catch {
        /* already gone, or its directory was removed */
      }
    }
    this.hidden.clear();
    await new Promise<void>((res, rej) => fuse.unmount((err) => (err ? rej(err) : res())));
  }
}

/**
 * Mount entries from /proc/self/mountinfo whose mount point is `dir`
 * (octal escapes decoded). Returns the filesystem types, innermost last.
 */
export function mountTypesAt(dir: string): string[] {
  const want = resolve(dir);
  let text = "";
  try {
    text = readFileSync("/proc/self/mountinfo", "utf8");
  } catch {
    return [];
  }
  const out: string[] = [];
  for (const line of text.split("\n")) {
    const f = line.split(" ");
    if (f.length < 10) continue;
    const mp = f[4]!.replace(/\\([0-7]{3})/g, (_, o) => String.fromCharCode(parseInt(o, 8)));
    const sep = f.indexOf("-");
    if (mp === want && sep > 0) out.push(f[sep + 1]!);
  }
  return out;
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
