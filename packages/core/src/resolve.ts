/**
 * Path resolution for `FsCore`, as the kernel's path walk: component by
 * component from the root, with search permission checked on every
 * directory passed, symlinks followed (up to MAX_SYMLINKS) and ".." popping
 * back to the parent (and staying at the root). Resolution reads the tree
 * through a `TreeView` (the visible inode rows and directory entries of one
 * branch or snapshot), so it needs no transaction of its own: `FsCore` calls
 * it inside the read or write transaction of each operation.
 *
 * Errors are `StoreError`s with the errno name as `code`.
 */
import { StoreError } from "./errors.js";
import { ROOT_INO, type InodeRow } from "./manifest.js";
import { checkName, joinParts, parsePath } from "./paths.js";
import { needAccess, X_OK, type Credentials } from "./access.js";
import { S_IFDIR, S_IFLNK, S_IFMT } from "./modes.js";

/** Most symlinks one resolution follows before ELOOP (as Linux's MAXSYMLINKS). */
export const MAX_SYMLINKS = 40;

/** What resolution reads of the tree, at the time of each call. */
export interface TreeView {
  /** The caller's identity for search (X_OK) permission on each directory passed. */
  readonly cred: Credentials;
  /** Whole-path length limit in bytes (`FsCoreOptions.pathMax`): ENAMETOOLONG at or above it. */
  readonly pathMax: number;
  /** The visible row of inode `ino`. Errors: ENOENT when it no longer exists. */
  node(ino: number): InodeRow;
  /** The visible entry `name` of directory `dir`: its inode and file type bits (S_IFMT part); undefined when absent. */
  lookup(dir: number, name: string): { ino: number; type: number } | undefined;
}

/** A resolved path: the inode, its visible row, and where it was found. */
export interface Resolved {
  /** Inode number. */
  ino: number;
  /** Its visible row. */
  row: InodeRow;
  /** Inode of the directory holding the final entry (ROOT_INO for the root itself). */
  parent: number;
  /** Name of the final entry ("" for the root). */
  name: string;
  /** Directory inodes from the root to the parent, for cycle checks and realpath. */
  ancestors: number[];
  /** Entry names from the root to the parent (so `[...names, name]` is the canonical path). */
  names: string[];
}

/** A resolved parent directory for operations that create or remove `name`. */
export interface ParentRef {
  /** Inode of the parent directory. */
  dir: number;
  /** Its visible row. */
  dirRow: InodeRow;
  /** The final component, a valid entry name (see `checkName`). */
  name: string;
  /** Directory inodes from the root to `dir` inclusive (empty when `dir` is the root). */
  ancestors: number[];
  /** Entry names from the root to `dir` (empty when `dir` is the root). */
  names: string[];
  /** The path ended in "/" (or "/."). */
  trailingSlash: boolean;
}

/** Whether the parent directory `p` is directory inode `ino` or lies inside it (moving `ino` there would put it into itself). */
export function isWithin(p: ParentRef, ino: number): boolean {
  return p.dir === ino || p.ancestors.includes(ino);
}

/** The target of a creating open: where the new file goes, or the existing entry it opens. */
export interface CreateTarget {
  /** Parent directory of the final entry. */
  parent: ParentRef;
  /** The existing entry; undefined when the file is to be created. */
  entry: { ino: number; type: number } | undefined;
  /** The path naming that entry: the given one, or the target of the dangling symlink(s) it led through. */
  path: string;
}

/** Resolves paths over a `TreeView` (see the module comment). */
export class PathResolver {
  /** `tree`: what resolution reads, at the time of each call. */
  constructor(private readonly tree: TreeView) {}

  /**
   * Resolves `path`; `follow` follows a final symlink (stat(2) vs lstat(2)).
   * A trailing "/" requires a directory and follows a final symlink. Errors:
   * ENOENT, ENOTDIR, ELOOP, EACCES (no search permission on a directory
   * passed), ENAMETOOLONG, EINVAL (a NUL byte).
   */
  resolve(path: string, follow: boolean): Resolved {
    const t = this.tree;
    const parsed = parsePath(path, t.pathMax);
    let parts = parsed.parts.slice();
    let ancestors: number[] = [];
    let names: string[] = [];
    let cur = ROOT_INO;
    let curRow = t.node(ROOT_INO);
    let links = 0;
    let parent = ROOT_INO;
    let name = "";
    let i = 0;
    while (i < parts.length) {
      const c = parts[i];
      if ((curRow.mode & S_IFMT) !== S_IFDIR) throw new StoreError("ENOTDIR", "not a directory");
      needAccess(t.cred, curRow, X_OK);
      if (c === "..") {
        if (ancestors.length) {
          cur = ancestors.pop()!;
          names.pop();
          curRow = t.node(cur);
        }
        i++;
        continue;
      }
      const d = t.lookup(cur, c);
      if (!d) throw new StoreError("ENOENT", "no such file or directory");
      const row = t.node(d.ino);
      const last = i === parts.length - 1;
      if ((row.mode & S_IFMT) === S_IFLNK && (!last || follow || parsed.trailingSlash)) {
        if (++links > MAX_SYMLINKS) throw new StoreError("ELOOP", "too many levels of symbolic links");
        const tp = parsePath(row.target ?? "");
        if (tp.absolute) {
          cur = ROOT_INO;
          curRow = t.node(ROOT_INO);
          ancestors = [];
          names = [];
        }
        parts = [...tp.parts, ...parts.slice(i + 1)];
        i = 0;
        if (parts.length === 0) {
          // Symlink to "/" or ".": the result is the directory we are in.
          break;
        }
        continue;
      }
      if (last) {
        parent = cur;
        name = c;
        if (parsed.trailingSlash && (row.mode & S_IFMT) !== S_IFDIR) throw new StoreError("ENOTDIR", "not a directory");
        return { ino: d.ino, row, parent, name, ancestors: [...ancestors, cur], names: [...names] };
      }
      ancestors.push(cur);
      names.push(c);
      cur = d.ino;
      curRow = row;
      i++;
    }
    // Ended on a directory reached via "..", "/", or a symlink.
    const p = ancestors.length ? ancestors[ancestors.length - 1] : ROOT_INO;
    const nm = names.length ? names[names.length - 1] : "";
    return { ino: cur, row: curRow, parent: p, name: nm, ancestors: ancestors.slice(0, -1), names: names.slice(0, -1) };
  }

  /**
   * Resolves the parent directory of `path` for an operation (`syscall`)
   * that creates or removes its final entry; the entry itself is not looked
   * up. Errors: as `resolve` for the directory part; ENOTDIR; for "/" EEXIST
   * (mkdir), EBUSY (rmdir) or EINVAL; for a final ".." ENOTEMPTY (rmdir),
   * EEXIST (mkdir) or EINVAL; EINVAL or ENAMETOOLONG for an invalid name.
   */
  resolveParent(path: string, syscall: string): ParentRef {
    const parsed = parsePath(path, this.tree.pathMax);
    const parts = parsed.parts;
    if (parts.length === 0) throw new StoreError(syscall === "mkdir" ? "EEXIST" : syscall === "rmdir" ? "EBUSY" : "EINVAL", "the root directory");
    const last = parts[parts.length - 1];
    if (last === "..") throw new StoreError(syscall === "mkdir" ? "EEXIST" : syscall === "rmdir" ? "ENOTEMPTY" : "EINVAL", "'..' is not a valid name here");
    const dirPath = parts.length === 1 ? "/" : joinParts(parts.slice(0, -1));
    const d = this.resolve(dirPath, true);
    if ((d.row.mode & S_IFMT) !== S_IFDIR) throw new StoreError("ENOTDIR", "not a directory");
    checkName(last);
    const ancestors = d.ino === ROOT_INO && parts.length === 1 ? [] : [...d.ancestors, d.ino];
    const names = d.ino === ROOT_INO && parts.length === 1 ? [] : [...d.names, d.name];
    return { dir: d.ino, dirRow: d.row, name: last, ancestors, names, trailingSlash: parsed.trailingSlash };
  }

  /**
   * The target of open(2) with O_CREAT (or a copy's destination): the parent
   * and entry of `path`, where a final symlink that dangles leads on to the
   * file it points at (as Linux creates the symlink's target). `follow`
   * false (O_NOFOLLOW) stops at a final symlink. `excl` (O_EXCL): an
   * existing entry at `path` itself fails. Errors: as `resolveParent`
   * (with `syscall`); EEXIST (`excl`); ELOOP after more than MAX_SYMLINKS
   * dangling links.
   */
  resolveCreate(path: string, syscall: string, follow: boolean, excl: boolean): CreateTarget {
    const t = this.tree;
    let p = this.resolveParent(path, syscall);
    let d = t.lookup(p.dir, p.name);
    let cur = path;
    if (d && excl) throw new StoreError("EEXIST", "file exists");
    for (let hops = 0; d && d.type === S_IFLNK && follow; hops++) {
      const target = t.node(d.ino).target ?? "";
      try {
        this.resolve(cur, true);
        break; // the link resolves: the caller opens what it points at
      } catch (e) {
        if (!(e instanceof StoreError && e.code === "ENOENT")) throw e;
      }
      if (hops >= MAX_SYMLINKS) throw new StoreError("ELOOP", "too many levels of symbolic links");
      cur = target.startsWith("/") ? target : `${joinParts(p.names)}/${target}`;
      p = this.resolveParent(cur, syscall);
      d = t.lookup(p.dir, p.name);
    }
    return { parent: p, entry: d, path: cur };
  }
}
