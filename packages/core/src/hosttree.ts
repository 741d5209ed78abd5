/**
 * Import of a host directory tree into a view, and export of a view's tree
 * to a host directory, preserving contents, modes, owners (as root), times
 * (ns), symlinks, hard links and user xattrs. FIFOs, sockets and device
 * nodes are imported as such (`FsCore.mknod`; devices only as root); an
 * export creates them on the host through the `mknod` option (Node has no
 * mknod(2)), and skips and counts them without it.
 */
import * as fs from "node:fs";
import { join } from "node:path";
import { listAttributesSync, getAttributeSync, setAttributeSync } from "@napi-rs/xattr";
import { constants as C } from "node:fs";
import { FsError, isErrno } from "./errors.js";
import { FsCore, S_IFBLK, S_IFCHR, S_IFDIR, S_IFLNK, S_IFMT, S_IFREG } from "./fscore.js";
import { hostTimeSec } from "./promises.js";

/** Progress of an import or export: counts so far and totals from the first pass (entries; bytes). */
export interface TreeProgress {
  phase: "scan" | "copy";
  entries: number;
  bytes: number;
  totalEntries: number;
  totalBytes: number;
}

/** What an import or export did. Bytes are file bytes copied. */
export interface TreeReport {
  files: number;
  dirs: number;
  symlinks: number;
  hardlinks: number;
  /** FIFOs, sockets and device nodes made. */
  specials: number;
  skipped: string[];
  bytes: number;
}

/**
 * Creates a special file on the host, as mknod(2): `mode` is the S_IFMT
 * type (S_IFIFO, S_IFSOCK, S_IFCHR, S_IFBLK) with permission bits, `rdev`
 * the device number of a device node. Core makes no system calls Node lacks:
 * front ends pass `@agentfs/native`'s `mknod`. Throws the host's errno as a
 * Node error (EPERM for a device node without CAP_MKNOD).
 */
export type HostMknod = (path: string, mode: number, rdev: number) => void;

/** Options of importTree/exportTree. */
export interface TreeOptions {
  onProgress?: (p: TreeProgress) => void;
  /** Entries per write transaction on import (default 256). */
  batch?: number;
  /** Export only: how to create FIFOs, sockets and device nodes on the host; without it they are skipped (listed in `skipped`). */
  mknod?: HostMknod;
}

const IO_CHUNK = 1 << 20;
const isRoot = (process.getuid?.() ?? 1) === 0;

/** Returns a function that calls `onProgress(prog)` at most every 100 ms. */
function throttled(prog: TreeProgress, onProgress?: (p: TreeProgress) => void): () => void {
  let last = 0;
  return () => {
    const now = Date.now();
    if (onProgress && now - last > 100) {
      last = now;
      onProgress(prog);
    }
  };
}

function storeJoin(dir: string, name: string): string {
  return dir === "/" ? `/${name}` : `${dir}/${name}`;
}

function scanHost(dir: string, acc: { entries: number; bytes: number }): void {
  for (const d of fs.readdirSync(dir, { withFileTypes: true })) {
    acc.entries++;
    if (d.isDirectory()) scanHost(join(dir, d.name), acc);
    else if (d.isFile()) acc.bytes += fs.lstatSync(join(dir, d.name)).size;
  }
}

function hostXattrs(path: string): Array<[string, Buffer]> {
  try {
    return listAttributesSync(path)
      .filter((n) => n.startsWith("user."))
      .map((n) => [n, getAttributeSync(path, n) ?? Buffer.alloc(0)] as [string, Buffer]);
  } catch {
    return [];
  }
}

/**
 * Copies host directory `hostDir` into the view at store path `dest`
 * (created if missing). Errors: ENOENT/ENOTDIR for a bad `hostDir` (Node's
 * own errors), and any FsError from the store (EEXIST when a destination
 * entry exists as a different type).
 */
export function importTree(core: FsCore, hostDir: string, dest = "/", opts: TreeOptions = {}): TreeReport {
  const st = fs.statSync(hostDir);
  if (!st.isDirectory()) throw new FsError("ENOTDIR", "import", hostDir);
  const totals = { entries: 0, bytes: 0 };
  scanHost(hostDir, totals);
  const prog: TreeProgress = { phase: "copy", entries: 0, bytes: 0, totalEntries: totals.entries, totalBytes: totals.bytes };
  const rep: TreeReport = { files: 0, dirs: 0, symlinks: 0, hardlinks: 0, specials: 0, skipped: [], bytes: 0 };
  const links = new Map<string, string>();
  const buf = Buffer.allocUnsafe(IO_CHUNK);
  const batch = Math.max(1, opts.batch ?? 256);
  const report = throttled(prog, opts.onProgress);
  const mkdirp = (p: string) => {
    try {
      core.mkdir(p, 0o755);
    } catch (e) {
      if (!isErrno(e, "EEXIST")) throw e;
    }
  };
  const parts = dest.split("/").filter(Boolean);
  for (let i = 1; i <= parts.length; i++) mkdirp("/" + parts.slice(0, i).join("/"));

  const setMeta = (p: string, s: fs.BigIntStats, host: string, follow: boolean) => {
    if ((Number(s.mode) & S_IFMT) !== S_IFLNK) {
      core.chmod(p, Number(s.mode) & 0o7777, follow);
      for (const [n, v] of hostXattrs(host)) core.setxattr(p, n, v, 0, follow);
    }
    if (isRoot) core.chown(p, Number(s.uid), Number(s.gid), follow);
    core.utimes(p, s.atimeNs, s.mtimeNs, follow);
  };

  const copyFile = (host: string, p: string, s: fs.BigIntStats) => {
    const fd = core.openFile(p, C.O_WRONLY | C.O_CREAT | C.O_TRUNC, 0o600);
    try {
      const hfd = fs.openSync(host, "r");
      try {
        let pos = 0;
        for (;;) {
          const n = fs.readSync(hfd, buf, 0, IO_CHUNK, pos);
          if (n === 0) break;
          core.write(fd, buf, 0, n, pos);
          pos += n;
          prog.bytes += n;
        }
        rep.bytes += pos;
      } finally {
        fs.closeSync(hfd);
      }
    } finally {
      core.close(fd);
    }
    setMeta(p, s, host, false);
  };

  const walk = (hdir: string, sdir: string) => {
    const entries = fs.readdirSync(hdir).sort();
    const dirs: Array<[string, string, fs.BigIntStats]> = [];
    const one = (name: string) => {
      const host = join(hdir, name);
      const p = storeJoin(sdir, name);
      const s = fs.lstatSync(host, { bigint: true });
      const type = Number(s.mode) & S_IFMT;
      prog.entries++;
      if (type === S_IFDIR) {
        mkdirp(p);
        dirs.push([host, p, s]);
        rep.dirs++;
      } else if (type === S_IFREG) {
        const key = `${s.dev}:${s.ino}`;
        const first = s.nlink > 1n ? links.get(key) : undefined;
        if (first) {
          core.link(first, p);
          rep.hardlinks++;
        } else {
          if (s.nlink > 1n) links.set(key, p);
          copyFile(host, p, s);
          rep.files++;
        }
      } else if (type === S_IFLNK) {
        core.symlink(fs.readlinkSync(host), p);
        setMeta(p, s, host, false);
        rep.symlinks++;
      } else if (isRoot || (type !== S_IFCHR && type !== S_IFBLK)) {
        // A FIFO, socket or device node: the node itself (a socket's listener does not come along, as with cp -a).
        core.mknod(p, type | 0o600, Number(s.rdev));
        setMeta(p, s, host, false);
        rep.specials++;
      } else {
        rep.skipped.push(host);
      }
      report();
    };
    // `batch` entries per write transaction.
    for (let i = 0; i < entries.length; i += batch) {
      core.batch(() => entries.slice(i, i + batch).forEach(one));
    }
    for (const [host, p] of dirs) walk(host, p);
    // Directory metadata last, so adding children does not disturb its times.
    core.batch(() => {
      for (const [host, p, s] of dirs) setMeta(p, s, host, true);
    });
  };
  walk(hostDir, dest === "" ? "/" : dest);
  opts.onProgress?.(prog);
  return rep;
}

/** Makes special file `host` (replacing what is there) with `mknod`; false when the host refuses a device node (EPERM: no CAP_MKNOD). */
function tryMknod(mknod: HostMknod, host: string, type: number, rdev: number): boolean {
  fs.rmSync(host, { force: true });
  try {
    mknod(host, type | 0o600, rdev);
    return true;
  } catch (e) {
    if ((type === S_IFCHR || type === S_IFBLK) && (e as NodeJS.ErrnoException).code === "EPERM") return false;
    throw e;
  }
}

/**
 * Copies the view's tree at `src` into host directory `hostDir` (created if
 * missing; with `overwrite` false it must be empty, else EEXIST). Preserves
 * contents, modes, owners (as root), times, symlinks, hard links and xattrs;
 * FIFOs, sockets and device nodes are made with `opts.mknod` (skipped and
 * listed without it). Times reach the host as whole microseconds
 * (`hostTimeSec`), not the store's ns.
 */
export function exportTree(core: FsCore, src: string, hostDir: string, opts: TreeOptions & { overwrite?: boolean } = {}): TreeReport {
  const s0 = core.stat(src, true);
  if ((s0.mode & S_IFMT) !== S_IFDIR) throw new FsError("ENOTDIR", "export", src);
  if (fs.existsSync(hostDir) && fs.readdirSync(hostDir).length > 0 && !opts.overwrite) {
    throw new FsError("EEXIST", "export", hostDir, undefined, "destination is not empty (use overwrite)");
  }
  fs.mkdirSync(hostDir, { recursive: true });
  const totals = { entries: 0, bytes: 0 };
  const scan = (dir: string) => {
    for (const e of core.readdir(dir)) {
      totals.entries++;
      const p = storeJoin(dir, e.name);
      if (e.type === S_IFDIR) scan(p);
      else if (e.type === S_IFREG) totals.bytes += core.stat(p, false).size;
    }
  };
  scan(src);
  const prog: TreeProgress = { phase: "copy", entries: 0, bytes: 0, totalEntries: totals.entries, totalBytes: totals.bytes };
  const rep: TreeReport = { files: 0, dirs: 0, symlinks: 0, hardlinks: 0, specials: 0, skipped: [], bytes: 0 };
  const links = new Map<number, string>();
  const buf = Buffer.allocUnsafe(IO_CHUNK);
  const report = throttled(prog, opts.onProgress);
  const setMeta = (sp: string, host: string, isLink: boolean) => {
    const st = core.stat(sp, false);
    if (!isLink) {
      fs.chmodSync(host, st.mode & 0o7777);
      for (const n of core.listxattr(sp, false)) {
        try {
          setAttributeSync(host, n, core.getxattr(sp, n, false));
        } catch {
          rep.skipped.push(`${host} (xattr ${n})`);
        }
      }
    }
    if (isRoot) fs.lchownSync(host, st.uid, st.gid);
    const at = hostTimeSec(st.atimeNs);
    const mt = hostTimeSec(st.mtimeNs);
    if (isLink) fs.lutimesSync(host, at, mt);
    else fs.utimesSync(host, at, mt);
  };
  const walk = (sdir: string, hdir: string) => {
    const dirs: Array<[string, string]> = [];
    for (const e of core.readdir(sdir)) {
      const sp = storeJoin(sdir, e.name);
      const host = join(hdir, e.name);
      prog.entries++;
      if (e.type === S_IFDIR) {
        fs.mkdirSync(host, { recursive: true });
        dirs.push([sp, host]);
        rep.dirs++;
      } else if (e.type === S_IFLNK) {
        fs.rmSync(host, { force: true });
        fs.symlinkSync(core.readlink(sp), host);
        setMeta(sp, host, true);
        rep.symlinks++;
      } else if (e.type === S_IFREG) {
        const first = links.get(e.ino);
        fs.rmSync(host, { force: true });
        if (first) {
          fs.linkSync(first, host);
          rep.hardlinks++;
          continue;
        }
        const st = core.stat(sp, false);
        if (st.nlink > 1) links.set(e.ino, host);
        const fd = core.openFile(sp, C.O_RDONLY);
        const hfd = fs.openSync(host, "w", 0o600);
        try {
          let pos = 0;
          for (;;) {
            const n = core.read(fd, buf, 0, IO_CHUNK, pos);
            if (n === 0) break;
            fs.writeSync(hfd, buf, 0, n, pos);
            pos += n;
            prog.bytes += n;
          }
          if (pos < st.size) fs.ftruncateSync(hfd, st.size);
          rep.bytes += pos;
        } finally {
          fs.closeSync(hfd);
          core.close(fd);
        }
        setMeta(sp, host, false);
        rep.files++;
      } else if (opts.mknod && tryMknod(opts.mknod, host, e.type, core.stat(sp, false).rdev)) {
        setMeta(sp, host, false);
        rep.specials++;
      } else {
        rep.skipped.push(sp);
      }
      report();
    }
    for (const [sp, host] of dirs) {
      walk(sp, host);
      setMeta(sp, host, false);
    }
  };
  walk(src, hostDir);
  if (src === "/" || core.realpath(src) === "/") setMeta("/", hostDir, false);
  else setMeta(src, hostDir, false);
  opts.onProgress?.(prog);
  return rep;
}
