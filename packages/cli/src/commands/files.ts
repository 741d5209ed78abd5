/**
 * File commands over one view: `ls`, `cat`, `write`, `rm`, `mv`, `mkdir`,
 * `chmod`, `ln`, `stat`. Paths are store paths ("/a/b"; relative paths are
 * taken from the root).
 */
import { FsError, S_IFDIR, S_IFLNK, S_IFMT, isErrno, kindOf, type EntryKind, type FsCore, type InodeStat } from "@agentfs/core";
import { constants as C } from "node:fs";
import { posix } from "node:path";
import type { Command } from "commander";
import { CliError, UsageError, out, printJson, withFs } from "../context.js";
import { isoFromNs, modeString, octalPerm, shortTime } from "../format.js";
import { applyMode } from "../modes.js";

const IO_CHUNK = 1 << 20;

/** `stat` "Type:" names by kind, as coreutils stat(1) prints them. */
const STAT_TYPE_NAMES: Record<EntryKind, string> = {
  file: "regular file", dir: "directory", symlink: "symbolic link", fifo: "fifo", socket: "socket",
  chardev: "character special file", blockdev: "block special file", other: "other",
};

/** One entry as `ls --json` and `stat --json` print it. Sizes in bytes; times ISO-8601 UTC plus exact ns as decimal strings. */
export interface EntryJson {
  name: string;
  path: string;
  type: EntryKind;
  mode: number;
  perm: string;
  modeString: string;
  ino: number;
  nlink: number;
  uid: number;
  gid: number;
  size: number;
  blocks: number;
  atime: string;
  mtime: string;
  ctime: string;
  birthtime: string;
  atimeNs: string;
  mtimeNs: string;
  ctimeNs: string;
  birthtimeNs: string;
  target?: string;
  xattrs?: Record<string, string>;
}

function norm(p: string): string {
  return posix.normalize("/" + p).replace(/(.)\/+$/, "$1");
}

function entryJson(core: FsCore, path: string, st: InodeStat, withXattrs = false, follow = false): EntryJson {
  const e: EntryJson = {
    name: path === "/" ? "/" : posix.basename(path),
    path,
    type: kindOf(st.mode),
    mode: st.mode,
    perm: octalPerm(st.mode),
    modeString: modeString(st.mode),
    ino: st.ino,
    nlink: st.nlink,
    uid: st.uid,
    gid: st.gid,
    size: st.size,
    blocks: st.blocks,
    atime: isoFromNs(st.atimeNs),
    mtime: isoFromNs(st.mtimeNs),
    ctime: isoFromNs(st.ctimeNs),
    birthtime: isoFromNs(st.birthtimeNs),
    atimeNs: st.atimeNs.toString(),
    mtimeNs: st.mtimeNs.toString(),
    ctimeNs: st.ctimeNs.toString(),
    birthtimeNs: st.birthtimeNs.toString(),
  };
  if ((st.mode & S_IFMT) === S_IFLNK) e.target = core.readlink(path);
  if (withXattrs) {
    e.xattrs = {};
    for (const n of core.listxattr(path, follow)) e.xattrs[n] = core.getxattr(path, n, follow).toString("base64");
  }
  return e;
}

function longLine(e: EntryJson, widths: { nlink: number; uid: number; gid: number; size: number }, label: string): string {
  const link = e.target !== undefined ? ` -> ${e.target}` : "";
  return `${e.modeString} ${String(e.nlink).padStart(widths.nlink)} ${String(e.uid).padStart(widths.uid)} ${String(e.gid).padStart(widths.gid)} ${String(e.size).padStart(widths.size)} ${shortTime(BigInt(e.mtimeNs))} ${label}${link}`;
}

/** Writes `buf` to stdout, waiting for the pipe to drain when it is full. */
async function writeOut(buf: Buffer): Promise<void> {
  if (!process.stdout.write(buf)) await new Promise<void>((res) => process.stdout.once("drain", () => res()));
}

function isDirMode(mode: number): boolean {
  return (mode & S_IFMT) === S_IFDIR;
}

function statOrUndefined(core: FsCore, p: string, follow: boolean): InodeStat | undefined {
  try {
    return core.stat(p, follow);
  } catch (e) {
    if (isErrno(e, "ENOENT")) return undefined;
    throw e;
  }
}

function removeTree(core: FsCore, p: string): void {
  for (const e of core.readdir(p)) {
    const c = p === "/" ? `/${e.name}` : `${p}/${e.name}`;
    if (e.type === S_IFDIR) removeTree(core, c);
    else core.unlink(c);
  }
  core.rmdir(p);
}

function chmodTree(core: FsCore, p: string, spec: string): void {
  const st = core.stat(p, false);
  if ((st.mode & S_IFMT) === S_IFLNK) return; // chmod -R does not follow or change symlinks
  core.chmod(p, applyMode(spec, st.mode, isDirMode(st.mode)), false);
  if (isDirMode(st.mode)) for (const e of core.readdir(p)) chmodTree(core, p === "/" ? `/${e.name}` : `${p}/${e.name}`, spec);
}

/** Registers the file commands on `program`. */
export function registerFileCommands(program: Command): void {
  program
    .command("ls")
    .description("list directory contents (or a file itself)")
    .argument("[paths...]", "store paths (default /)")
    .option("-l, --long", "long format: mode, links, uid, gid, size, mtime, name (-> target)")
    .option("-a, --all", "include entries whose names start with '.'")
    .option("-d, --directory", "list directories themselves, not their contents")
    .option("-R, --recursive", "list subdirectories recursively")
    .option("--json", "print a JSON array of entries (each with name, path, type, mode, size, times, ...)")
    .action(async (paths: string[], opts: { long?: boolean; all?: boolean; directory?: boolean; recursive?: boolean; json?: boolean }, cmd: Command) => {
      await withFs(cmd, (afs) => {
        const core = afs.core;
        const list = paths.length ? paths.map(norm) : ["/"];
        const json: EntryJson[] = [];
        const blocks: Array<{ header?: string; lines: string[] }> = [];
        const files: EntryJson[] = [];
        const dirs: string[] = [];
        for (const p of list) {
          let st = core.stat(p, false);
          if ((st.mode & S_IFMT) === S_IFLNK && !opts.long && !opts.directory) {
            const t = statOrUndefined(core, p, true);
            if (t && isDirMode(t.mode)) st = t;
          }
          if (isDirMode(st.mode) && !opts.directory) dirs.push(p);
          else files.push(entryJson(core, p, core.stat(p, false)));
        }
        const render = (entries: EntryJson[], label: (e: EntryJson) => string): string[] => {
          if (!opts.long) return entries.map(label);
          const w = { nlink: 1, uid: 1, gid: 1, size: 1 };
          for (const e of entries) {
            w.nlink = Math.max(w.nlink, String(e.nlink).length);
            w.uid = Math.max(w.uid, String(e.uid).length);
            w.gid = Math.max(w.gid, String(e.gid).length);
            w.size = Math.max(w.size, String(e.size).length);
          }
          return entries.map((e) => longLine(e, w, label(e)));
        };
        json.push(...files);
        if (files.length) blocks.push({ lines: render(files, (e) => e.path) });
        const queue = [...dirs];
        while (queue.length) {
          const d = queue.shift()!;
          const entries: EntryJson[] = [];
          const sub: string[] = [];
          for (const de of core.readdir(d)) {
            if (!opts.all && de.name.startsWith(".")) continue;
            const c = d === "/" ? `/${de.name}` : `${d}/${de.name}`;
            entries.push(entryJson(core, c, core.stat(c, false)));
            if (opts.recursive && de.type === S_IFDIR) sub.push(c);
          }
          json.push(...entries);
          blocks.push({ header: d, lines: render(entries, (e) => e.name) });
          queue.unshift(...sub);
        }
        if (opts.json) return printJson(json);
        const headers = list.length > 1 || opts.recursive || (files.length > 0 && dirs.length > 0);
        blocks.forEach((b, i) => {
          if (i > 0) out();
          if (headers && b.header !== undefined) out(`${b.header}:`);
          for (const l of b.lines) out(l);
        });
      });
    });

  program
    .command("cat")
    .description("write the contents of files to stdout")
    .argument("<paths...>", "store paths of files")
    .action(async (paths: string[], _opts: unknown, cmd: Command) => {
      await withFs(cmd, async (afs) => {
        const core = afs.core;
        for (const p of paths) {
          const fd = core.openFile(p, C.O_RDONLY);
          try {
            if (isDirMode(core.fstat(fd).mode)) throw new FsError("EISDIR", "read", p);
            for (let pos = 0; ; ) {
              const buf = Buffer.allocUnsafe(IO_CHUNK);
              const n = core.read(fd, buf, 0, IO_CHUNK, pos);
              if (n === 0) break;
              pos += n;
              await writeOut(buf.subarray(0, n));
            }
          } finally {
            core.close(fd);
          }
        }
      });
    });

  program
    .command("write")
    .description("write stdin to a file (created if missing, truncated unless --append)")
    .argument("<path>", "store path of the file")
    .option("-a, --append", "append instead of truncating")
    .option("-m, --mode <octal>", "permission bits for a new file (default 0666 less the umask)")
    .option("--json", "print {path, bytes} as JSON")
    .action(async (path: string, opts: { append?: boolean; mode?: string; json?: boolean }, cmd: Command) => {
      let mode = 0o666;
      if (opts.mode !== undefined) {
        if (!/^[0-7]{1,4}$/.test(opts.mode)) throw new UsageError(`invalid --mode '${opts.mode}' (expected octal, e.g. 0644)`);
        mode = parseInt(opts.mode, 8);
      }
      await withFs(
        cmd,
        async (afs) => {
          const core = afs.core;
          const existed = statOrUndefined(core, path, true) !== undefined;
          const fd = core.openFile(path, C.O_WRONLY | C.O_CREAT | (opts.append ? C.O_APPEND : C.O_TRUNC), mode);
          let bytes = 0;
          try {
            for await (const chunk of process.stdin) {
              const b = chunk as Buffer;
              core.write(fd, b, 0, b.length, null);
              bytes += b.length;
            }
          } finally {
            core.close(fd);
          }
          if (opts.mode !== undefined && !existed) core.chmod(path, mode);
          if (opts.json) printJson({ path: norm(path), bytes });
        },
        { writable: true },
      );
    });

  program
    .command("rm")
    .description("remove files, symlinks, and (with -r) directories")
    .argument("<paths...>", "store paths")
    .option("-r, --recursive", "remove directories and their contents")
    .option("-R", "same as -r")
    .option("-f, --force", "ignore paths that do not exist")
    .action(async (paths: string[], opts: { recursive?: boolean; R?: boolean; force?: boolean }, cmd: Command) => {
      if (opts.R) opts.recursive = true;
      await withFs(
        cmd,
        (afs) => {
          const core = afs.core;
          for (const raw of paths) {
            const p = norm(raw);
            if (p === "/") throw new CliError("EBUSY", "refusing to remove '/'");
            const st = statOrUndefined(core, p, false);
            if (!st) {
              if (opts.force) continue;
              throw new FsError("ENOENT", "rm", p);
            }
            if (isDirMode(st.mode)) {
              if (!opts.recursive) throw new FsError("EISDIR", "rm", p, undefined, "use -r to remove directories");
              core.batch(() => removeTree(core, p));
            } else core.unlink(p);
          }
        },
        { writable: true },
      );
    });

  program
    .command("mv")
    .description("rename SOURCE to DEST, or move SOURCEs into directory DEST")
    .argument("<paths...>", "SOURCE... DEST")
    .action(async (paths: string[], _opts: unknown, cmd: Command) => {
      if (paths.length < 2) throw new UsageError("mv needs a SOURCE and a DEST");
      await withFs(
        cmd,
        (afs) => {
          const core = afs.core;
          const dest = norm(paths[paths.length - 1]!);
          const sources = paths.slice(0, -1).map(norm);
          const dst = statOrUndefined(core, dest, true);
          const intoDir = dst !== undefined && isDirMode(dst.mode);
          if (sources.length > 1 && !intoDir) throw new FsError("ENOTDIR", "mv", dest, undefined, "moving several sources needs a directory destination");
          core.batch(() => {
            for (const s of sources) core.rename(s, intoDir ? posix.join(dest, posix.basename(s)) : dest);
          });
        },
        { writable: true },
      );
    });

  program
    .command("mkdir")
    .description("create directories")
    .argument("<paths...>", "store paths")
    .option("-p, --parents", "create missing parents; no error if the directory exists")
    .option("-m, --mode <octal>", "permission bits (default 0777 less the umask)")
    .action(async (paths: string[], opts: { parents?: boolean; mode?: string }, cmd: Command) => {
      let mode: number | undefined;
      if (opts.mode !== undefined) {
        if (!/^[0-7]{1,4}$/.test(opts.mode)) throw new UsageError(`invalid --mode '${opts.mode}' (expected octal, e.g. 0755)`);
        mode = parseInt(opts.mode, 8);
      }
      await withFs(
        cmd,
        (afs) => {
          const core = afs.core;
          const make = (p: string) => {
            core.mkdir(p, 0o777);
            if (mode !== undefined) core.chmod(p, mode);
          };
          core.batch(() => {
            for (const raw of paths) {
              const p = norm(raw);
              if (!opts.parents) {
                make(p);
                continue;
              }
              const parts = p.split("/").filter(Boolean);
              for (let i = 1; i <= parts.length; i++) {
                const q = "/" + parts.slice(0, i).join("/");
                const st = statOrUndefined(core, q, true);
                if (st === undefined) make(q);
                else if (!isDirMode(st.mode)) throw new FsError(i === parts.length ? "EEXIST" : "ENOTDIR", "mkdir", q);
              }
            }
          });
        },
        { writable: true },
      );
    });

  program
    .command("chmod")
    .description("change permission bits: octal (0644) or symbolic (u+x,go-w, a=rX)")
    .argument("<mode>", "octal or symbolic mode")
    .argument("<paths...>", "store paths")
    .option("-R, --recursive", "change directories' contents too (symlinks are skipped)")
    .action(async (spec: string, paths: string[], opts: { recursive?: boolean }, cmd: Command) => {
      applyMode(spec, 0, false); // validates: a bad mode is a usage error before anything changes
      await withFs(
        cmd,
        (afs) => {
          const core = afs.core;
          core.batch(() => {
            for (const p of paths) {
              if (opts.recursive) chmodTree(core, norm(p), spec);
              else {
                const st = core.stat(p, true);
                core.chmod(p, applyMode(spec, st.mode, isDirMode(st.mode)), true);
              }
            }
          });
        },
        { writable: true },
      );
    });

  program
    .command("ln")
    .description("make a hard link LINK to TARGET, or with -s a symbolic link LINK containing TARGET")
    .argument("<target>", "existing file (hard link) or any text (symlink)")
    .argument("<link>", "path of the new link; an existing directory receives TARGET's base name")
    .option("-s, --symbolic", "make a symbolic link")
    .option("-f, --force", "replace an existing LINK (not a directory)")
    .action(async (target: string, link: string, opts: { symbolic?: boolean; force?: boolean }, cmd: Command) => {
      await withFs(
        cmd,
        (afs) => {
          const core = afs.core;
          let dest = norm(link);
          const d = statOrUndefined(core, dest, true);
          if (d && isDirMode(d.mode)) dest = posix.join(dest, posix.basename(target));
          core.batch(() => {
            if (opts.force) {
              const e = statOrUndefined(core, dest, false);
              if (e && !isDirMode(e.mode)) core.unlink(dest);
            }
            if (opts.symbolic) core.symlink(target, dest);
            else core.link(target, dest);
          });
        },
        { writable: true },
      );
    });

  program
    .command("stat")
    .description("show an entry's metadata (symlinks themselves unless -L)")
    .argument("<paths...>", "store paths")
    .option("-L, --dereference", "follow symlinks")
    .option("--json", "print one JSON object per path (a JSON array when several paths are given); xattr values are base64")
    .action(async (paths: string[], opts: { dereference?: boolean; json?: boolean }, cmd: Command) => {
      await withFs(cmd, (afs) => {
        const core = afs.core;
        const follow = !!opts.dereference;
        const all = paths.map((p) => entryJson(core, norm(p), core.stat(p, follow), true, follow));
        if (opts.json) return printJson(all.length === 1 ? all[0] : all);
        all.forEach((e, i) => {
          if (i > 0) out();
          const tname = STAT_TYPE_NAMES[e.type];
          out(`  File: ${e.path}${e.target !== undefined ? ` -> ${e.target}` : ""}`);
          out(`  Size: ${e.size}\tBlocks: ${e.blocks}\tType: ${tname}`);
          out(` Inode: ${e.ino}\tLinks: ${e.nlink}`);
          out(`Access: (${e.perm}/${e.modeString})  Uid: ${e.uid}  Gid: ${e.gid}`);
          out(`Access: ${e.atime}`);
          out(`Modify: ${e.mtime}`);
          out(`Change: ${e.ctime}`);
          out(` Birth: ${e.birthtime}`);
          for (const [n, v] of Object.entries(e.xattrs ?? {})) {
            const b = Buffer.from(v, "base64");
            const text = /^[\x20-\x7e]*$/.test(b.toString("latin1")) ? JSON.stringify(b.toString("latin1")) : `base64:${v}`;
            out(` Xattr: ${n}=${text}`);
          }
        });
      });
    });
}
