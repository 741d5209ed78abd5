#!/usr/bin/env python3
"""POSIX conformance matrix for differential testing of a filesystem.

Usage: posix_matrix.py DIR               run the matrix in DIR
       posix_matrix.py DIR --seed        create DIR/seed: one small tree per seeded operation
       posix_matrix.py DIR --on-seed     run the seeded operations on DIR/seed (e.g. through an
                                         overlay mounted over a copy made with --seed)
       posix_matrix.py DIR --describe    print one line describing every entry under DIR
       posix_matrix.py DIR --as-user     run the families that make sense without root as uid/gid 1000

Runs a large, deterministic matrix of system calls inside DIR (which must be
empty, owned by root and mode 0777, on the filesystem under test) and prints
one line per check to stdout:

    <key>\t<outcome>

`key` names the check (family/case/aspect) and is unique; `outcome` is a
return value, an errno name (ENOENT, EACCES, ...) or a summary of stat fields
that must not depend on the filesystem: file type, permission bits, nlink,
uid, gid, size (regular files and symlinks), contents of small files.
Fields that legitimately differ between filesystems are never printed:
st_dev, inode numbers (only "same inode as ..." relations), directory
sizes, blocks, atime (except right after an explicit utimensat) and
absolute times; times are printed relative to a value taken before the
operation ("changed"/"unchanged") or as one of the explicit values the
script set.

The same script is run on a reference filesystem (tmpfs) and on the
filesystem under test; the two outputs must be identical line by line.
Must run as root: the permission part forks children that drop to uid/gid
65534 (nobody) and 1000 with os.setgroups/os.setgid/os.setuid.

Exit status: 0 when the matrix ran to the end (whatever the outcomes),
2 on a usage error; any other status means the script itself failed.
"""
import ctypes
import ctypes.util
import errno
import json
import os
import socket
import stat
import sys
import time

OUT = []
SEEN = set()


def rec(key, value):
    """Records one check outcome; keys must be unique."""
    if key in SEEN:
        raise RuntimeError("duplicate key " + key)
    SEEN.add(key)
    OUT.append((key, str(value)))


def ename(e):
    """Errno name of an OSError (e.g. "ENOENT")."""
    return errno.errorcode.get(e.errno, "E%d" % e.errno)


def attempt(fn, *a, **k):
    """Runs fn; returns "ok" (or "ok:<value>" for a non-None result) or the errno name."""
    try:
        v = fn(*a, **k)
    except OSError as e:
        return ename(e)
    return "ok" if v is None else "ok:%s" % (v,)


KIND = {stat.S_IFREG: "reg", stat.S_IFDIR: "dir", stat.S_IFLNK: "lnk", stat.S_IFIFO: "fifo", stat.S_IFSOCK: "sock", stat.S_IFCHR: "chr", stat.S_IFBLK: "blk"}


def desc(path, follow=False, content=True):
    """Stat summary of `path` (type, mode bits, nlink, uid, gid, size, content), or the errno name."""
    try:
        st = os.stat(path, follow_symlinks=follow)
    except OSError as e:
        return ename(e)
    return desc_st(st, path if content else None)


def desc_st(st, path=None):
    """Stat summary of a stat result; reads up to 32 bytes of `path` when given and a regular file."""
    kind = KIND.get(stat.S_IFMT(st.st_mode), "?")
    s = "%s %04o n%d %d:%d" % (kind, st.st_mode & 0o7777, st.st_nlink, st.st_uid, st.st_gid)
    if kind != "dir":
        s += " sz%d" % st.st_size
    if kind in ("chr", "blk"):
        s += " dev%d:%d" % (os.major(st.st_rdev), os.minor(st.st_rdev))
    if kind == "lnk" and path is not None:
        try:
            s += " ->" + os.readlink(path)
        except OSError as e:
            s += " ->" + ename(e)
    if kind == "reg" and path is not None and st.st_size <= 64:
        try:
            with open(path, "rb") as f:
                s += " =" + repr(f.read(32))
        except OSError as e:
            s += " =" + ename(e)
    return s


def listing(path):
    """Sorted directory entries of `path`, or the errno name."""
    try:
        return ",".join(sorted(os.listdir(path)))
    except OSError as e:
        return ename(e)


def write_file(path, data=b"", mode=0o644):
    """Creates/truncates `path` with `data` and sets its mode."""
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, mode)
    try:
        if data:
            os.write(fd, data)
    finally:
        os.close(fd)
    os.chmod(path, mode)


_case_no = [0]


def fresh(group):
    """A new empty directory (mode 0777) for one case: <group>/<n>, relative to the work dir."""
    _case_no[0] += 1
    if not os.path.isdir(group):
        os.mkdir(group)
        os.chmod(group, 0o777)
    d = "%s/%d" % (group, _case_no[0])
    os.mkdir(d)
    os.chmod(d, 0o777)
    return d


def make(kind, path):
    """Creates a node of `kind` at `path` (targets of symlinks are siblings named <path>.tgt)."""
    if kind == "missing":
        return
    if kind == "file":
        write_file(path, b"F:" + os.path.basename(path).encode())
    elif kind == "empty":
        write_file(path, b"")
    elif kind == "dir":
        os.mkdir(path, 0o755)
    elif kind == "ndir":
        os.mkdir(path, 0o755)
        write_file(path + "/child", b"C")
    elif kind == "slf":
        write_file(path + ".tgt", b"T:" + os.path.basename(path).encode())
        os.symlink(os.path.basename(path) + ".tgt", path)
    elif kind == "sld":
        os.mkdir(path + ".tgt", 0o755)
        os.symlink(os.path.basename(path) + ".tgt", path)
    elif kind == "sln":
        os.symlink(os.path.basename(path) + ".nowhere", path)
    elif kind == "loop":
        os.symlink(os.path.basename(path), path)
    elif kind == "fifo":
        os.mkfifo(path, 0o644)
    elif kind == "sock":
        os.mknod(path, stat.S_IFSOCK | 0o644)
    elif kind == "chr":
        # (a device needs CAP_MKNOD: as another user the same name is a FIFO on both sides)
        os.mknod(path, (stat.S_IFCHR if os.geteuid() == 0 else stat.S_IFIFO) | 0o644, os.makedev(1, 3))
    else:
        raise ValueError(kind)


def tick():
    """Lets the clock advance past any timestamp already taken (ms-granular times in stat included)."""
    time.sleep(0.012)


def tstate(path, follow=False):
    """(mtime_ns, ctime_ns) of path, or None."""
    try:
        st = os.stat(path, follow_symlinks=follow)
    except OSError:
        return None
    return (st.st_mtime_ns, st.st_ctime_ns)


def tdiff(before, after):
    """"m=changed|same c=changed|same" from two tstate values (or "gone")."""
    if before is None or after is None:
        return "gone"
    m = "same" if after[0] == before[0] else ("later" if after[0] > before[0] else "earlier")
    c = "same" if after[1] == before[1] else ("later" if after[1] > before[1] else "earlier")
    return "m=%s c=%s" % (m, c)


# ---------------------------------------------------------------- utimensat via libc

_libc = ctypes.CDLL(ctypes.util.find_library("c"), use_errno=True)


class Timespec(ctypes.Structure):
    """struct timespec: seconds and nanoseconds (tv_nsec may be UTIME_NOW or UTIME_OMIT)."""
    _fields_ = [("tv_sec", ctypes.c_long), ("tv_nsec", ctypes.c_long)]


UTIME_NOW = (1 << 30) - 1
UTIME_OMIT = (1 << 30) - 2
AT_FDCWD = -100
AT_SYMLINK_NOFOLLOW = 0x100


def utimensat(path, atime, mtime, nofollow=False):
    """utimensat(2): times are (sec, nsec), "now", "omit"; both None passes a NULL times pointer. Raises OSError."""
    def ts(t):
        """One Timespec from (sec, nsec), "now" or "omit"."""
        if t == "now":
            return Timespec(0, UTIME_NOW)
        if t == "omit":
            return Timespec(0, UTIME_OMIT)
        return Timespec(t[0], t[1])
    if atime is None and mtime is None:
        arr = None
    else:
        arr = (Timespec * 2)(ts(atime), ts(mtime))
    r = _libc.utimensat(AT_FDCWD, os.fsencode(path), arr, AT_SYMLINK_NOFOLLOW if nofollow else 0)
    if r != 0:
        err = ctypes.get_errno()
        raise OSError(err, os.strerror(err), path)


# ---------------------------------------------------------------- running as another user

NOBODY = 65534
OTHER = 1000
EXTRA_GROUP = 100


def as_user(uid, gid, fn, groups=None):
    """Runs fn() in a forked child with the given uid/gid (supplementary groups `groups`, default none); returns its JSON result."""
    r, w = os.pipe()
    pid = os.fork()
    if pid == 0:
        code = 0
        try:
            os.close(r)
            os.setgroups(groups or [])
            os.setgid(gid)
            os.setuid(uid)
            res = fn()
            data = json.dumps(res).encode()
        except BaseException as e:  # report, never fall through into the parent's code
            data = json.dumps({"__error__": repr(e)}).encode()
            code = 1
        try:
            while data:
                n = os.write(w, data)
                data = data[n:]
        finally:
            os._exit(code)
    os.close(w)
    chunks = []
    while True:
        b = os.read(r, 65536)
        if not b:
            break
        chunks.append(b)
    os.close(r)
    os.waitpid(pid, 0)
    res = json.loads(b"".join(chunks) or b"null")
    if isinstance(res, dict) and "__error__" in res:
        raise RuntimeError("child failed: " + res["__error__"])
    return res


# ================================================================= open

FLAG_NAMES = [("CREAT", os.O_CREAT), ("EXCL", os.O_EXCL), ("TRUNC", os.O_TRUNC), ("APPEND", os.O_APPEND), ("DIRECTORY", os.O_DIRECTORY), ("NOFOLLOW", os.O_NOFOLLOW)]
ACC = [("RDONLY", os.O_RDONLY), ("WRONLY", os.O_WRONLY), ("RDWR", os.O_RDWR)]


def open_matrix():
    """open(2) with every combination of CREAT/EXCL/TRUNC/APPEND/DIRECTORY/NOFOLLOW and access mode on many kinds of path."""
    targets = [
        ("missing", "missing", "x"), ("file", "file", "x"), ("empty", "empty", "x"), ("dir", "dir", "x"),
        ("slf", "slf", "x"), ("sld", "sld", "x"), ("sln", "sln", "x"), ("loop", "loop", "x"),
        ("file/x", "file", "x/x"), ("missing/x", "missing", "x/x"), ("file/", "file", "x/"),
        ("dir/", "dir", "x/"), ("missing/", "missing", "x/"), ("sld/", "sld", "x/"),
        ("loop/x", "loop", "x/x"), ("sld/new", "sld", "x/new"), ("sln/x", "sln", "x/x"), ("dir/..", "dir", "x/.."),
    ]
    for acc_name, acc in ACC:
        for bits in range(64):
            flags = acc
            names = [acc_name]
            for i, (n, f) in enumerate(FLAG_NAMES):
                if bits & (1 << i):
                    flags |= f
                    names.append(n)
            fl = "|".join(names)
            for tname, kind, rel in targets:
                d = fresh("open")
                make(kind, d + "/x")
                p = d + "/" + rel
                key = "open[%s](%s)" % (fl, tname)
                try:
                    fd = os.open(p, flags, 0o640)
                except OSError as e:
                    rec(key, ename(e))
                    rec(key + ".after", desc(d + "/x"))
                    continue
                res = ["ok", desc_st(os.fstat(fd))]
                res.append("w=" + attempt(os.write, fd, b"W"))
                res.append("r=" + attempt(lambda: os.pread(fd, 16, 0)))
                os.close(fd)
                rec(key, " ".join(res))
                rec(key + ".after", desc(d + "/x"))


def open_modes():
    """Modes of files created by open(O_CREAT) for every permission combination and umask."""
    old = os.umask(0)
    try:
        d = fresh("creat-mode")
        for mode in list(range(0, 0o1000, 1)) + [0o1644, 0o2644, 0o4644, 0o7777, 0o6755, 0o2755]:
            p = "%s/f%o" % (d, mode)
            fd = os.open(p, os.O_CREAT | os.O_WRONLY, mode)
            os.close(fd)
            rec("creat.mode(%04o,umask=0)" % mode, desc(p))
        for um in (0o022, 0o077, 0o777, 0o002, 0o007, 0o027, 0o070, 0o700):
            os.umask(um)
            for mode in (0o777, 0o666, 0o644, 0o4777, 0o2777, 0o1777):
                p = "%s/u%o-%o" % (d, um, mode)
                os.close(os.open(p, os.O_CREAT | os.O_WRONLY, mode))
                rec("creat.mode(%04o,umask=%03o)" % (mode, um), desc(p))
                q = "%s/du%o-%o" % (d, um, mode)
                rec("mkdir.mode(%04o,umask=%03o)" % (mode, um), attempt(os.mkdir, q, mode) + " " + desc(q))
    finally:
        os.umask(old)


# ================================================================= mkdir / rmdir

def mkdir_matrix():
    """mkdir(2) on every kind of path, modes, parent nlink; rmdir(2) on every kind of path."""
    targets = [("missing", "missing", "x"), ("file", "file", "x"), ("dir", "dir", "x"), ("slf", "slf", "x"),
               ("sld", "sld", "x"), ("sln", "sln", "x"), ("loop", "loop", "x"), ("file/x", "file", "x/y"),
               ("missing/x", "missing", "x/y"), ("missing/", "missing", "x/"), ("sln/", "sln", "x/"),
               ("dir/x", "dir", "x/y"), ("dir/x/", "dir", "x/y/"), ("missing/.", "missing", "x/."), ("dir/..", "dir", "x/..")]
    for tname, kind, rel in targets:
        d = fresh("mkdir")
        make(kind, d + "/x")
        r = attempt(os.mkdir, d + "/" + rel, 0o755)
        rec("mkdir(%s)" % tname, r)
        rec("mkdir(%s).x" % tname, desc(d + "/x"))
        rec("mkdir(%s).parent" % tname, desc(d) + " [" + listing(d) + "]")
    old = os.umask(0)
    try:
        d = fresh("mkdir-mode")
        for mode in list(range(0, 0o1000, 1)) + [0o1755, 0o2755, 0o4755, 0o7777, 0o3777, 0o1000]:
            p = "%s/d%o" % (d, mode)
            rec("mkdir.mode(%04o)" % mode, attempt(os.mkdir, p, mode) + " " + desc(p))
        rec("mkdir.mode.parent", desc(d))
    finally:
        os.umask(old)
    # parent link counts grow and shrink with subdirectories
    d = fresh("mkdir-nlink")
    for i in range(6):
        os.mkdir("%s/s%d" % (d, i))
        rec("mkdir.nlink.after%d" % i, desc(d))
    write_file(d + "/f")
    rec("mkdir.nlink.file", desc(d))
    for i in range(6):
        os.rmdir("%s/s%d" % (d, i))
        rec("rmdir.nlink.after%d" % i, desc(d))

    rtargets = [("missing", "missing", "x"), ("file", "file", "x"), ("dir", "dir", "x"), ("ndir", "ndir", "x"),
                ("slf", "slf", "x"), ("sld", "sld", "x"), ("sln", "sln", "x"), ("file/", "file", "x/"),
                ("dir/", "dir", "x/"), ("sld/", "sld", "x/"), ("dir/.", "dir", "x/."), ("dir/..", "dir", "x/.."),
                ("file/x", "file", "x/y"), ("missing/x", "missing", "x/y"), ("dir//", "dir", "x//"), ("ndir/child", "ndir", "x/child")]
    for tname, kind, rel in rtargets:
        d = fresh("rmdir")
        make(kind, d + "/x")
        rec("rmdir(%s)" % tname, attempt(os.rmdir, d + "/" + rel))
        rec("rmdir(%s).x" % tname, desc(d + "/x"))
        rec("rmdir(%s).parent" % tname, desc(d) + " [" + listing(d) + "]")
    d = fresh("rmdir-dot")
    rec("rmdir(.)", attempt(os.rmdir, d + "/."))
    rec("rmdir(..)", attempt(os.rmdir, d + "/.."))


# ================================================================= rename

RSRC = ["file", "dir", "ndir", "slf", "sld", "sln", "missing", "fifo", "sock"]
RDST = ["missing", "file", "empty", "dir", "ndir", "slf", "sld", "sln", "fifo"]


def rename_state(d):
    """Listing of the case dir and its a/ b/ subdirs with their entries' summaries."""
    out = []
    for sub in ("", "/a", "/b"):
        p = d + sub
        try:
            names = sorted(os.listdir(p))
        except OSError as e:
            out.append("%s:%s" % (sub or ".", ename(e)))
            continue
        ents = []
        for n in names:
            if sub == "" and n in ("a", "b"):
                continue
            ents.append(n + "{" + desc(p + "/" + n) + ("" if not os.path.isdir(p + "/" + n) or os.path.islink(p + "/" + n) else " [" + listing(p + "/" + n) + "]") + "}")
        out.append("%s:%s|%s" % (sub or ".", desc(p).split(" sz")[0], ";".join(ents)))
    return " ".join(out)


def rename_matrix():
    """rename(2): every source kind onto every destination kind, within and across directories, with trailing slashes."""
    for place in ("same", "across"):
        for s in RSRC:
            for t in RDST + ["self", "hardlink", "subdir", "parent", "missing/x", "file/x", "dot", "dotdot"]:
                for slash in ("", "src/", "dst/", "both/"):
                    if slash and t in ("subdir", "parent", "missing/x", "file/x", "dot", "dotdot", "hardlink"):
                        continue
                    if t == "hardlink" and s not in ("file", "slf", "fifo"):
                        continue
                    d = fresh("rename")
                    os.mkdir(d + "/a")
                    os.mkdir(d + "/b")
                    src = d + "/a/s"
                    make(s, src)
                    dst_dir = d + ("/a" if place == "same" else "/b")
                    if t in RDST:
                        dst = dst_dir + "/t"
                        make(t, dst)
                    elif t == "self":
                        dst = src
                    elif t == "hardlink":
                        dst = dst_dir + "/t"
                        os.link(src, dst, follow_symlinks=False)
                    elif t == "subdir":
                        if s in ("dir", "ndir"):
                            os.mkdir(src + "/sub")
                        dst = src + "/sub/t"
                    elif t == "parent":
                        dst = d + "/a" if place == "same" else d
                    elif t == "missing/x":
                        dst = dst_dir + "/nope/t"
                    elif t == "file/x":
                        make("file", dst_dir + "/f")
                        dst = dst_dir + "/f/t"
                    elif t == "dot":
                        dst = dst_dir + "/."
                    elif t == "dotdot":
                        dst = dst_dir + "/.."
                    sp = src + ("/" if slash in ("src/", "both/") else "")
                    dp = dst + ("/" if slash in ("dst/", "both/") else "")
                    key = "rename[%s](%s->%s%s)" % (place, s, t, "," + slash if slash else "")
                    rec(key, attempt(os.rename, sp, dp))
                    rec(key + ".state", rename_state(d))
    # renaming the directory into its own descendants, and ancestors onto descendants
    d = fresh("rename-tree")
    os.makedirs(d + "/p/q/r")
    rec("rename(p->p/q/r/x)", attempt(os.rename, d + "/p", d + "/p/q/r/x"))
    rec("rename(p->p/q)", attempt(os.rename, d + "/p", d + "/p/q"))
    rec("rename(p/q->p)", attempt(os.rename, d + "/p/q", d + "/p"))
    rec("rename(p/q/r->p)", attempt(os.rename, d + "/p/q/r", d + "/p"))
    rec("rename(p->.)", attempt(os.rename, d + "/p", d + "/."))
    rec("rename(.->p)", attempt(os.rename, d + "/.", d + "/p"))
    rec("rename(p/q->p/q/.)", attempt(os.rename, d + "/p/q", d + "/p/q/."))
    rec("rename(p/..->x)", attempt(os.rename, d + "/p/..", d + "/x"))
    rec("rename.tree.state", desc(d + "/p") + " " + desc(d + "/p/q") + " " + desc(d + "/p/q/r"))
    # directory moves fix the link counts of both parents
    os.makedirs(d + "/m/sub")
    os.mkdir(d + "/n")
    rec("rename(m/sub->n/sub)", attempt(os.rename, d + "/m/sub", d + "/n/sub"))
    rec("rename.nlink.m", desc(d + "/m"))
    rec("rename.nlink.n", desc(d + "/n"))
    os.mkdir(d + "/m/e")
    rec("rename(n/sub->m/e)", attempt(os.rename, d + "/n/sub", d + "/m/e"))
    rec("rename.nlink.m2", desc(d + "/m"))
    rec("rename.nlink.n2", desc(d + "/n"))
    # a file keeps its content and links through renames; hard links to the same inode are a no-op
    write_file(d + "/h1", b"hard")
    os.link(d + "/h1", d + "/h2")
    rec("rename(h1->h2)", attempt(os.rename, d + "/h1", d + "/h2"))
    rec("rename(h1->h2).h1", desc(d + "/h1"))
    rec("rename(h1->h2).h2", desc(d + "/h2"))
    os.rename(d + "/h2", d + "/m/h3")
    rec("rename(h2->m/h3).h1", desc(d + "/h1"))
    rec("rename(h2->m/h3).h3", desc(d + "/m/h3"))
    rec("rename(h2->m/h3).same-inode", os.stat(d + "/h1").st_ino == os.stat(d + "/m/h3").st_ino)


# ================================================================= link / unlink / symlink

def exchange_matrix():
    """renameat2(2) with RENAME_EXCHANGE: every pair of kinds, within and across directories, nlink of the parents, times, and its errors."""
    renameat2 = _libc.renameat2

    def xchg(a, b, flags=2):
        if renameat2(AT_FDCWD, os.fsencode(a), AT_FDCWD, os.fsencode(b), flags) != 0:
            raise OSError(ctypes.get_errno(), os.strerror(ctypes.get_errno()))

    kinds = ["file", "empty", "dir", "ndir", "slf", "sld", "sln", "fifo", "missing"]
    for place in ("same", "across"):
        for s in kinds:
            for t in kinds:
                for slash in ("", "src/", "dst/"):
                    d = fresh("exchange")
                    os.mkdir(d + "/a")
                    os.mkdir(d + "/b")
                    src, dst = d + "/a/s", d + ("/a/t" if place == "same" else "/b/t")
                    make(s, src)
                    make(t, dst)
                    before = (tstate(d + "/a"), tstate(d + "/b"), tstate(src), tstate(dst))
                    tick()
                    key = "exchange.%s(%s<->%s%s)" % (place, s, t, "," + slash if slash else "")
                    out = attempt(xchg, src + ("/" if slash == "src/" else ""), dst + ("/" if slash == "dst/" else ""))
                    rec(key, out)
                    rec(key + ".state", desc(src) + " | " + desc(dst) + " | a:" + desc(d + "/a") + " [" + listing(d + "/a") + "] b:" + desc(d + "/b") + " [" + listing(d + "/b") + "]")
                    # each node compared with itself: after an exchange the old source is at dst
                    now = (tstate(d + "/a"), tstate(d + "/b")) + ((tstate(dst), tstate(src)) if out == "ok" else (tstate(src), tstate(dst)))
                    rec(key + ".times", " ".join(tdiff(x, y) for x, y in zip(before, now)))
                    if s in ("dir", "ndir") and t in ("dir", "ndir"):
                        rec(key + ".walk", listing(dst) + " / " + listing(src) + " / " + desc(dst + "/..") + " / " + desc(src + "/.."))
    d = fresh("exchange-edges")
    os.makedirs(d + "/p/q/r")
    write_file(d + "/h1", b"H")
    os.link(d + "/h1", d + "/h2")
    write_file(d + "/f", b"F")
    for name, a, b, flags in (("into-own-subdir", "p", "p/q/r", 2), ("with-own-parent", "p/q", "p", 2), ("hardlinks", "h1", "h2", 2),
                              ("self", "f", "f", 2), ("exchange|noreplace", "f", "h1", 3), ("dot", "p/q/.", "f", 2), ("parent-missing", "f", "nope/x", 2)):
        rec("exchange.%s" % name, attempt(xchg, d + "/" + a, d + "/" + b, flags) + " " + desc(d + "/p") + " " + desc(d + "/h1") + " [" + listing(d) + "]")
    # non-root callers: write access to both directories, and the sticky rule on both sides
    d = fresh("exchange-perm")
    for sub, mode in (("open", 0o777), ("closed", 0o755), ("sticky", 0o1777)):
        os.mkdir(d + "/" + sub)
        os.chmod(d + "/" + sub, mode)
        write_file(d + "/" + sub + "/root", b"r")
    os.chmod(d + "/open/root", 0o666)

    def user_exchanges():
        write_file(d + "/open/mine", b"m")
        write_file(d + "/sticky/mine", b"m")
        out = {}
        for name, a, b in (("open<->open", "open/mine", "open/root"), ("open<->closed", "open/mine", "closed/root"),
                           ("sticky-other", "sticky/root", "open/mine"), ("sticky-own", "sticky/mine", "open/root")):
            out[name] = attempt(xchg, d + "/" + a, d + "/" + b) + " " + desc(d + "/" + a) + " " + desc(d + "/" + b)
        return out

    for k, v in sorted(as_user(65534, 65534, user_exchanges).items()):
        rec("exchange.as-nobody." + k, v)


def link_matrix():
    """link(2) and unlink(2): every kind of source and destination, nlink counts, inode identity."""
    srcs = [("file", "file", "x"), ("dir", "dir", "x"), ("slf", "slf", "x"), ("sld", "sld", "x"), ("sln", "sln", "x"),
            ("fifo", "fifo", "x"), ("sock", "sock", "x"), ("chr", "chr", "x"), ("fifo/", "fifo", "x/"),
            ("missing", "missing", "x"), ("file/", "file", "x/"), ("file/x", "file", "x/y"), ("dir/", "dir", "x/")]
    dsts = [("missing", "missing", "y"), ("file", "file", "y"), ("dir", "dir", "y"), ("sln", "sln", "y"), ("fifo", "fifo", "y"),
            ("missing/y", None, "nope/y"), ("file/y", "file", "y/z"), ("missing/", "missing", "y/"), ("same", None, "x"),
            ("dir/y", "dir", "y/y")]
    for sname, skind, srel in srcs:
        for dname, dkind, drel in dsts:
            for follow in (False, True):
                d = fresh("link")
                make(skind, d + "/x")
                if dkind:
                    make(dkind, d + "/y")
                key = "link%s(%s->%s)" % ("[follow]" if follow else "", sname, dname)
                rec(key, attempt(os.link, d + "/" + srel, d + "/" + drel, follow_symlinks=follow))
                rec(key + ".x", desc(d + "/x"))
                rec(key + ".new", desc(d + "/" + drel))
                try:
                    same = os.stat(d + "/x", follow_symlinks=False).st_ino == os.stat(d + "/" + drel, follow_symlinks=False).st_ino
                except OSError as e:
                    same = ename(e)
                rec(key + ".same-inode", same)
    # link counts up to several links, then down through unlink; identity kept
    d = fresh("nlink")
    write_file(d + "/f0", b"multi")
    for i in range(1, 8):
        os.link(d + "/f0", "%s/f%d" % (d, i))
        rec("link.nlink.%d" % i, desc(d + "/f0") + " / " + desc("%s/f%d" % (d, i)))
    with open(d + "/f3", "ab") as f:
        f.write(b"+")
    rec("link.shared-write", " ".join(desc("%s/f%d" % (d, i)) for i in range(8)))
    os.chmod(d + "/f5", 0o600)
    rec("link.shared-chmod", " ".join(desc("%s/f%d" % (d, i)) for i in range(8)))
    for i in range(8):
        rec("unlink.nlink.%d" % i, attempt(os.unlink, "%s/f%d" % (d, i)) + " " + " ".join(desc("%s/f%d" % (d, j)) for j in range(8)))
    ukinds = [("file", "file", "x"), ("empty", "empty", "x"), ("dir", "dir", "x"), ("ndir", "ndir", "x"), ("slf", "slf", "x"),
              ("sld", "sld", "x"), ("sln", "sln", "x"), ("loop", "loop", "x"), ("missing", "missing", "x"),
              ("file/", "file", "x/"), ("dir/", "dir", "x/"), ("slf/", "slf", "x/"), ("sld/", "sld", "x/"),
              ("file/x", "file", "x/y"), ("missing/x", "missing", "x/y"), ("dir/.", "dir", "x/."), ("dir/..", "dir", "x/.."),
              ("fifo", "fifo", "x"), ("sock", "sock", "x"), ("chr", "chr", "x"), ("fifo/", "fifo", "x/")]
    for name, kind, rel in ukinds:
        d = fresh("unlink")
        make(kind, d + "/x")
        rec("unlink(%s)" % name, attempt(os.unlink, d + "/" + rel))
        rec("unlink(%s).state" % name, desc(d + "/x") + " [" + listing(d) + "]")


def symlink_matrix():
    """symlink(2)/readlink(2): targets of many shapes and lengths, existing names, following through chains and loops."""
    targets = ["a", "../a", "/nonexistent/abs", "a/b/c", ".", "..", "x" * 255, "y/" * 100, "a b", "\u00e9t\u00e9", "trailing/",
               "x" * 1000, "z" * 4095, "z" * 4096, "", "//double//slash"]
    for i, t in enumerate(targets):
        d = fresh("symlink")
        key = "symlink(target#%d len=%d)" % (i, len(t.encode()))
        rec(key, attempt(os.symlink, t, d + "/l"))
        st = desc(d + "/l", content=False)
        rec(key + ".lstat", st)
        try:
            rl = os.readlink(d + "/l")
            rec(key + ".readlink", "ok" if rl == t else "differs:%r" % rl[:40])
        except OSError as e:
            rec(key + ".readlink", ename(e))
    for name, kind in (("file", "file"), ("dir", "dir"), ("slf", "slf"), ("sln", "sln"), ("missing/x", None), ("file/x", "file"), ("missing/", None)):
        d = fresh("symlink-dst")
        if kind:
            make(kind, d + "/x")
        rel = {"missing/x": "nope/x", "file/x": "x/x", "missing/": "x/"}.get(name, "x")
        rec("symlink(->%s)" % name, attempt(os.symlink, "tgt", d + "/" + rel))
        rec("symlink(->%s).state" % name, desc(d + "/x") + " [" + listing(d) + "]")
    for name, kind in (("file", "file"), ("dir", "dir"), ("missing", "missing"), ("slf", "slf"), ("sld", "sld")):
        d = fresh("readlink")
        make(kind, d + "/x")
        rec("readlink(%s)" % name, attempt(os.readlink, d + "/x"))
        rec("readlink(%s/)" % name, attempt(os.readlink, d + "/x/"))
    # chains of symlinks: following limit (ELOOP after 40)
    d = fresh("chain")
    write_file(d + "/l0", b"end")
    for i in range(1, 45):
        os.symlink("l%d" % (i - 1), "%s/l%d" % (d, i))
    for i in (1, 2, 10, 39, 40, 41, 44):
        rec("chain.stat(l%d)" % i, desc("%s/l%d" % (d, i), follow=True))
        rec("chain.open(l%d)" % i, attempt(lambda: os.close(os.open("%s/l%d" % (d, i), os.O_RDONLY))))
    os.symlink("m1", d + "/m0")
    os.symlink("m0", d + "/m1")
    rec("loop.stat", desc(d + "/m0", follow=True))
    rec("loop.lstat", desc(d + "/m0", content=False))
    rec("loop.open-creat", attempt(lambda: os.close(os.open(d + "/m0", os.O_CREAT | os.O_WRONLY, 0o644))))
    os.mkdir(d + "/realdir")
    os.symlink("realdir", d + "/dl")
    write_file(d + "/realdir/inner", b"inner")
    rec("symlink.dir-walk", desc(d + "/dl/inner"))
    rec("symlink.dir-walk-dotdot", desc(d + "/dl/../l0"))
    os.symlink(os.path.abspath(d + "/realdir"), d + "/absl")
    rec("symlink.abs-walk", desc(d + "/absl/inner"))
    # the owner and mode of a symlink, chmod through it
    rec("symlink.mode", desc(d + "/dl", content=False))
    os.chmod(d + "/dl", 0o700)
    rec("symlink.chmod-follows", desc(d + "/realdir") + " " + desc(d + "/dl", content=False))


# ================================================================= chmod / chown

def chmod_matrix():
    """chmod(2) with special bits and permission combinations on files, directories and through symlinks."""
    d = fresh("chmod")
    write_file(d + "/f", b"m")
    os.mkdir(d + "/d")
    os.symlink("f", d + "/l")
    for special in range(8):
        for perm in range(0, 0o1000, 0o11):
            mode = (special << 9) | perm
            rec("chmod.file(%04o)" % mode, attempt(os.chmod, d + "/f", mode) + " " + desc(d + "/f", content=False))
    for special in range(8):
        for perm in range(0, 0o1000, 0o111):
            mode = (special << 9) | perm
            rec("chmod.dir(%04o)" % mode, attempt(os.chmod, d + "/d", mode) + " " + desc(d + "/d"))
    os.chmod(d + "/d", 0o755)
    for mode in (0o600, 0o4755, 0o1777):
        rec("chmod.via-symlink(%04o)" % mode, attempt(os.chmod, d + "/l", mode) + " " + desc(d + "/f", content=False) + " " + desc(d + "/l", content=False))
    for kind in ("fifo", "sock", "chr"):
        make(kind, d + "/" + kind)
        for mode in (0o000, 0o600, 0o4755, 0o2755, 0o1777, 0o7777):
            rec("chmod.%s(%04o)" % (kind, mode), attempt(os.chmod, d + "/" + kind, mode) + " " + desc(d + "/" + kind))
    rec("chmod(missing)", attempt(os.chmod, d + "/nope", 0o644))
    rec("chmod(f/)", attempt(os.chmod, d + "/f/", 0o644))
    rec("chmod(f/x)", attempt(os.chmod, d + "/f/x", 0o644))


def chown_matrix():
    """chown(2)/lchown(2) by root: ids, -1, set-user-ID/set-group-ID clearing on files but not directories."""
    modes = [0o6755, 0o6745, 0o4755, 0o2755, 0o2745, 0o0755, 0o6777, 0o6000, 0o7755]
    changes = [(1000, -1), (-1, 1000), (1000, 1000), (-1, -1), (0, 0), (0, -1), (-1, 0), (65534, 65534)]
    for kind in ("file", "dir", "fifo", "chr"):
        for mode in modes:
            for (u, g) in changes:
                d = fresh("chown")
                make(kind, d + "/x")
                os.chmod(d + "/x", mode)
                key = "chown.%s(%04o,%d:%d)" % (kind, mode, u, g)
                rec(key, attempt(os.chown, d + "/x", u, g) + " " + desc(d + "/x", content=False))
    d = fresh("lchown")
    write_file(d + "/f", b"x")
    os.chmod(d + "/f", 0o4755)
    os.symlink("f", d + "/l")
    rec("lchown(l,1000:1000)", attempt(os.chown, d + "/l", 1000, 1000, follow_symlinks=False) + " " + desc(d + "/l", content=False) + " " + desc(d + "/f", content=False))
    rec("chown(l,2000:2000)", attempt(os.chown, d + "/l", 2000, 2000) + " " + desc(d + "/l", content=False) + " " + desc(d + "/f", content=False))
    rec("chown(missing)", attempt(os.chown, d + "/nope", 1, 1))
    rec("chown(f/)", attempt(os.chown, d + "/f/", 1, 1))
    rec("chown(large ids)", attempt(os.chown, d + "/f", 4000000000, 4000000001) + " " + desc(d + "/f", content=False))


# ================================================================= truncate / write sizes

def truncate_matrix():
    """truncate(2)/ftruncate(2) growing and shrinking, zero fill, errors; write past EOF; O_APPEND writes."""
    sizes = [0, 1, 5, 10, 4095, 4096, 4097, 65536, 100000, 1 << 20]
    for start in (0, 10, 4096, 70000):
        for size in sizes:
            for how in ("path", "fd"):
                d = fresh("truncate")
                data = bytes((i * 7 + 3) % 251 for i in range(start))
                write_file(d + "/f", data)
                if how == "path":
                    r = attempt(os.truncate, d + "/f", size)
                else:
                    fd = os.open(d + "/f", os.O_RDWR)
                    r = attempt(os.ftruncate, fd, size)
                    os.close(fd)
                with open(d + "/f", "rb") as f:
                    got = f.read()
                expect = data[:size] + b"\0" * max(0, size - start)
                key = "truncate.%s(%d->%d)" % (how, start, size)
                rec(key, r + " " + desc(d + "/f", content=False))
                rec(key + ".content", "as-expected" if got == expect else "differs(len=%d)" % len(got))
    d = fresh("truncate-err")
    write_file(d + "/f", b"abc")
    os.mkdir(d + "/dir")
    os.symlink("f", d + "/l")
    rec("truncate(negative)", attempt(os.truncate, d + "/f", -1))
    rec("truncate(dir)", attempt(os.truncate, d + "/dir", 0))
    rec("truncate(missing)", attempt(os.truncate, d + "/nope", 0))
    rec("truncate(f/)", attempt(os.truncate, d + "/f/", 0))
    rec("truncate(symlink)", attempt(os.truncate, d + "/l", 2) + " " + desc(d + "/f") + " " + desc(d + "/l", content=False))
    fd = os.open(d + "/f", os.O_RDONLY)
    rec("ftruncate(rdonly fd)", attempt(os.ftruncate, fd, 0))
    os.close(fd)
    fd = os.open(d + "/dir", os.O_RDONLY | os.O_DIRECTORY)
    rec("ftruncate(dir fd)", attempt(os.ftruncate, fd, 0))
    os.close(fd)
    rec("truncate(huge)", attempt(os.truncate, d + "/f", 1 << 62))
    # pwrite beyond EOF leaves a zero-filled hole; O_APPEND ignores offsets
    for off in (0, 3, 10, 5000, 1 << 20):
        write_file(d + "/w", b"abc")
        fd = os.open(d + "/w", os.O_WRONLY)
        os.pwrite(fd, b"XY", off)
        os.close(fd)
        with open(d + "/w", "rb") as f:
            got = f.read()
        exp = bytearray(b"abc" + b"\0" * max(0, off + 2 - 3))
        exp[off:off + 2] = b"XY"
        rec("pwrite(@%d)" % off, desc(d + "/w", content=False) + (" as-expected" if got == bytes(exp) else " differs"))
    write_file(d + "/a", b"12345")
    fd = os.open(d + "/a", os.O_WRONLY | os.O_APPEND)
    os.lseek(fd, 0, os.SEEK_SET)
    os.write(fd, b"ab")
    rec("append.pos-after-write", os.lseek(fd, 0, os.SEEK_CUR))
    os.pwrite(fd, b"cd", 0)
    os.close(fd)
    rec("append.content", desc(d + "/a"))


# ================================================================= times

OLD = (500000000, 0)
T1 = (1000000000, 123000000)
T2 = (1600000000, 456000000)


def tclass(ns, start_ns):
    """Names a timestamp: one of the explicit values set by the script, or "now" (>= start of the call), else "other"."""
    for name, t in (("OLD", OLD), ("T1", T1), ("T2", T2)):
        if ns == t[0] * 10**9 + t[1]:
            return name
    if ns >= start_ns - 10**9 * 2:
        return "now"
    return "other"


def utimens_matrix():
    """utimensat(2): explicit times, UTIME_NOW, UTIME_OMIT, NULL, AT_SYMLINK_NOFOLLOW; ctime effects; permission rules for non-owners."""
    combos = [("now", "now"), ("omit", "omit"), ("now", "omit"), ("omit", "now"), (T1, T2), (T1, "omit"), ("omit", T2),
              (T1, "now"), ("now", T2), (None, None), (T2, T1)]

    def cname(t):
        """Short name of a time argument for check keys."""
        return t if isinstance(t, str) else ("T1" if t == T1 else "T2") if t else "NULL"
    for kind in ("file", "dir", "slf"):
        for nofollow in (False, True):
            for a, m in combos:
                d = fresh("utimens")
                make(kind, d + "/x")
                utimensat(d + "/x", OLD, OLD, nofollow=True)
                if kind == "slf":
                    utimensat(d + "/x.tgt", OLD, OLD)
                before = os.stat(d + "/x", follow_symlinks=not nofollow).st_ctime_ns
                tick()
                start = time.time_ns()
                key = "utimensat.%s%s(%s,%s)" % (kind, "[nofollow]" if nofollow else "", cname(a), cname(m))
                rec(key, attempt(utimensat, d + "/x", a, m, nofollow))
                st = os.stat(d + "/x", follow_symlinks=not nofollow)
                ctime = "later" if st.st_ctime_ns > before else "same" if st.st_ctime_ns == before else "earlier"
                rec(key + ".times", "a=%s m=%s c=%s" % (tclass(st.st_atime_ns, start), tclass(st.st_mtime_ns, start), ctime))
                if kind == "slf":
                    other = os.stat(d + "/x", follow_symlinks=nofollow)
                    rec(key + ".other", "m=%s" % tclass(other.st_mtime_ns, start))
    d = fresh("utimens-err")
    rec("utimensat(missing)", attempt(utimensat, d + "/nope", "now", "now"))
    rec("utimensat(missing/x)", attempt(utimensat, d + "/nope/x", "now", "now"))
    write_file(d + "/f")
    rec("utimensat(bad nsec)", attempt(utimensat, d + "/f", (1, 1000000000), "omit"))
    rec("utimensat(negative nsec)", attempt(utimensat, d + "/f", (1, -1), "omit"))
    rec("os.utime(f, (T1s, T2s))", attempt(os.utime, d + "/f", (T1[0], T2[0])) + " " + str(os.stat(d + "/f").st_mtime_ns == T2[0] * 10**9))


def times_matrix():
    """Which operations change mtime/ctime of the file and of the directories involved (relative comparisons)."""
    cases = []

    def case(name, setup, op, watch):
        """Adds a case: setup(dir), then op(dir) after the clock moved; watch(dir) names the paths (or (before, after) pairs) whose times are compared."""
        cases.append((name, setup, op, watch))

    def wr(d, data=b"x"):
        """Overwrites the start of d/f with data."""
        with open(d + "/f", "r+b") as f:
            f.write(data)

    def mkf(d):
        """Creates d/f with 5 bytes."""
        write_file(d + "/f", b"hello")

    case("write", mkf, lambda d: wr(d), lambda d: {"f": d + "/f", "dir": d})
    case("write-empty", mkf, lambda d: os.close(os.open(d + "/f", os.O_WRONLY)) or None, lambda d: {"f": d + "/f"})
    case("write-0-bytes", mkf, lambda d: wr(d, b""), lambda d: {"f": d + "/f"})
    case("read", mkf, lambda d: open(d + "/f", "rb").read() and None, lambda d: {"f": d + "/f", "dir": d})
    case("open-rdonly", mkf, lambda d: os.close(os.open(d + "/f", os.O_RDONLY)), lambda d: {"f": d + "/f", "dir": d})
    case("open-trunc-nonempty", mkf, lambda d: os.close(os.open(d + "/f", os.O_WRONLY | os.O_TRUNC)), lambda d: {"f": d + "/f", "dir": d})
    case("open-trunc-empty", lambda d: write_file(d + "/f"), lambda d: os.close(os.open(d + "/f", os.O_WRONLY | os.O_TRUNC)), lambda d: {"f": d + "/f"})
    case("open-creat-existing", mkf, lambda d: os.close(os.open(d + "/f", os.O_WRONLY | os.O_CREAT, 0o644)), lambda d: {"f": d + "/f", "dir": d})
    case("truncate-shrink", mkf, lambda d: os.truncate(d + "/f", 2), lambda d: {"f": d + "/f"})
    case("truncate-grow", mkf, lambda d: os.truncate(d + "/f", 20), lambda d: {"f": d + "/f"})
    case("truncate-same", mkf, lambda d: os.truncate(d + "/f", 5), lambda d: {"f": d + "/f"})
    case("ftruncate-same", mkf, lambda d: (lambda fd: (os.ftruncate(fd, 5), os.close(fd)))(os.open(d + "/f", os.O_RDWR)) and None, lambda d: {"f": d + "/f"})
    case("ftruncate-shrink", mkf, lambda d: (lambda fd: (os.ftruncate(fd, 1), os.close(fd)))(os.open(d + "/f", os.O_RDWR)) and None, lambda d: {"f": d + "/f"})
    case("chmod", mkf, lambda d: os.chmod(d + "/f", 0o600), lambda d: {"f": d + "/f", "dir": d})
    case("chmod-same", mkf, lambda d: os.chmod(d + "/f", 0o644), lambda d: {"f": d + "/f"})
    case("chown", mkf, lambda d: os.chown(d + "/f", 1000, 1000), lambda d: {"f": d + "/f", "dir": d})
    case("chown-noop", mkf, lambda d: os.chown(d + "/f", -1, -1), lambda d: {"f": d + "/f"})
    case("create", lambda d: None, lambda d: write_file(d + "/n"), lambda d: {"dir": d})
    case("mkdir", lambda d: None, lambda d: os.mkdir(d + "/n"), lambda d: {"dir": d})
    case("rmdir", lambda d: os.mkdir(d + "/n"), lambda d: os.rmdir(d + "/n"), lambda d: {"dir": d})
    case("symlink", lambda d: None, lambda d: os.symlink("t", d + "/n"), lambda d: {"dir": d})
    case("unlink", mkf, lambda d: os.unlink(d + "/f"), lambda d: {"dir": d})
    case("unlink-one-of-two", lambda d: (mkf(d), os.link(d + "/f", d + "/g")), lambda d: os.unlink(d + "/f"), lambda d: {"g": d + "/g", "dir": d})
    case("link", mkf, lambda d: os.link(d + "/f", d + "/g"), lambda d: {"f": d + "/f", "dir": d})
    case("rename-same-dir", mkf, lambda d: os.rename(d + "/f", d + "/g"), lambda d: {"dir": d})
    case("rename-file-moved", lambda d: (mkf(d), os.mkdir(d + "/s")), lambda d: os.rename(d + "/f", d + "/s/f"), lambda d: {"dir": d, "s": d + "/s"})
    case("rename-file-inode", mkf, lambda d: os.rename(d + "/f", d + "/g"), lambda d: {"f->g": (d + "/f", d + "/g")})
    case("rename-over-file", lambda d: (mkf(d), write_file(d + "/g", b"old"), os.link(d + "/g", d + "/g2")), lambda d: os.rename(d + "/f", d + "/g"), lambda d: {"victim": d + "/g2", "dir": d})
    case("rename-dir-moved", lambda d: (os.mkdir(d + "/s"), os.mkdir(d + "/t")), lambda d: os.rename(d + "/s", d + "/t/s"), lambda d: {"dir": d, "t": d + "/t", "s": (d + "/s", d + "/t/s")})
    case("rename-dir-same", lambda d: os.mkdir(d + "/s"), lambda d: os.rename(d + "/s", d + "/s2"), lambda d: {"dir": d, "s": (d + "/s", d + "/s2")})
    case("rename-noop-hardlink", lambda d: (mkf(d), os.link(d + "/f", d + "/g")), lambda d: os.rename(d + "/f", d + "/g"), lambda d: {"f": d + "/f", "dir": d})
    case("write-via-link", lambda d: (mkf(d), os.link(d + "/f", d + "/g")), lambda d: wr(d), lambda d: {"g": d + "/g"})
    case("chmod-via-link", lambda d: (mkf(d), os.link(d + "/f", d + "/g")), lambda d: os.chmod(d + "/f", 0o600), lambda d: {"g": d + "/g"})
    case("chmod-via-symlink", lambda d: (mkf(d), os.symlink("f", d + "/l")), lambda d: os.chmod(d + "/l", 0o600), lambda d: {"f": d + "/f", "l": d + "/l"})
    case("utime-via-symlink", lambda d: (mkf(d), os.symlink("f", d + "/l")), lambda d: os.utime(d + "/l"), lambda d: {"f": d + "/f", "l": d + "/l"})
    case("rename-over-dir", lambda d: (os.mkdir(d + "/s"), os.mkdir(d + "/t")), lambda d: os.rename(d + "/s", d + "/t"), lambda d: {"dir": d, "s": (d + "/s", d + "/t")})
    case("removexattr", lambda d: (mkf(d), os.setxattr(d + "/f", "user.k", b"v")), lambda d: os.removexattr(d + "/f", "user.k"), lambda d: {"f": d + "/f"})
    case("utime-now", mkf, lambda d: os.utime(d + "/f"), lambda d: {"dir": d})
    case("setxattr", mkf, lambda d: os.setxattr(d + "/f", "user.k", b"v"), lambda d: {"f": d + "/f", "dir": d})
    case("failed-mkdir-eexist", mkf, lambda d: attempt(os.mkdir, d + "/f"), lambda d: {"f": d + "/f", "dir": d})
    case("failed-unlink-enoent", mkf, lambda d: attempt(os.unlink, d + "/zz"), lambda d: {"dir": d})
    case("lchown-symlink", lambda d: os.symlink("t", d + "/l"), lambda d: os.chown(d + "/l", 1000, 1000, follow_symlinks=False), lambda d: {"l": d + "/l"})

    dirs = []
    befores = []
    for name, setup, op, watch in cases:
        d = fresh("times")
        setup(d)
        w = watch(d)
        befores.append({k: tstate(v[0] if isinstance(v, tuple) else v) for k, v in w.items()})
        dirs.append(d)
    tick()
    results = []
    for (name, setup, op, watch), d in zip(cases, dirs):
        try:
            op(d)
            results.append("ok")
        except OSError as e:
            results.append(ename(e))
    for (name, setup, op, watch), d, before, r in zip(cases, dirs, befores, results):
        rec("times(%s)" % name, r)
        for k, v in watch(d).items():
            rec("times(%s).%s" % (name, k), tdiff(before[k], tstate(v[1] if isinstance(v, tuple) else v)))


# ================================================================= name and path lengths

def name_lengths():
    """NAME_MAX (255 bytes) and PATH_MAX (4096 bytes incl. NUL) for every call that takes a name or path."""
    names = {"255": "n" * 255, "256": "n" * 256, "255mb": "\u00e9" * 127 + "n", "256mb": "\u00e9" * 128, "1": "n", "1000": "n" * 1000}
    for label, nm in names.items():
        d = fresh("names")
        p = d + "/" + nm
        ops = [
            ("creat", lambda: os.close(os.open(p, os.O_CREAT | os.O_WRONLY, 0o644))),
            ("stat", lambda: desc(p)),
            ("open", lambda: os.close(os.open(p, os.O_RDONLY))),
            ("chmod", lambda: os.chmod(p, 0o600)),
            ("chown", lambda: os.chown(p, 5, 5)),
            ("utime", lambda: os.utime(p, (1, 1))),
            ("truncate", lambda: os.truncate(p, 3)),
            ("access", lambda: os.access(p, os.R_OK)),
            ("setxattr", lambda: os.setxattr(p, "user.a", b"1")),
            ("link-from", lambda: os.link(p, d + "/hl")),
            ("rename-from", lambda: os.rename(p, d + "/rn")),
            ("rename-to", lambda: os.rename(d + "/rn", p)),
            ("unlink", lambda: os.unlink(p)),
            ("link-to", lambda: os.link(d + "/hl", p)),
            ("unlink2", lambda: os.unlink(p)),
            ("mkdir", lambda: os.mkdir(p)),
            ("chdir-stat", lambda: desc(p + "/.")),
            ("rmdir", lambda: os.rmdir(p)),
            ("symlink-at", lambda: os.symlink("target", p)),
            ("readlink", lambda: os.readlink(p)),
            ("unlink3", lambda: os.unlink(p)),
            ("symlink-to", lambda: os.symlink(nm, d + "/sl")),
            ("stat-via-symlink", lambda: desc(d + "/sl", follow=True)),
        ]
        for opname, fn in ops:
            rec("name(%s).%s" % (label, opname), attempt(fn))
        rec("name(%s).listing" % label, listing(d).replace(nm, "<NAME>"))
    # paths of up to and beyond PATH_MAX bytes, relative to a deep working directory
    d = fresh("pathmax")
    base = os.open(".", os.O_RDONLY | os.O_DIRECTORY)  # (by descriptor: a non-root caller may not search the absolute path)
    os.chdir(d)
    try:
        comps = ["c%03d" % i + "p" * 195 for i in range(20)]  # 20 components of 199 bytes
        deep = "/".join(comps)  # 3999 bytes
        for i in range(len(comps)):
            os.mkdir("/".join(comps[:i + 1]))
        for total in (4094, 4095, 4096, 4097, 5000):
            nm = "f" * (total - len(deep) - 1)
            p = deep + "/" + nm
            assert len(p) == total
            key = "path(%d)" % total
            rec(key + ".creat", attempt(lambda: os.close(os.open(p, os.O_CREAT | os.O_WRONLY, 0o644))))
            rec(key + ".stat", desc(p))
            rec(key + ".mkdir", attempt(os.mkdir, deep + "/" + "d" * len(nm)))
            rec(key + ".symlink", attempt(os.symlink, "t", deep + "/" + "s" * len(nm)))
            rec(key + ".rename", attempt(os.rename, p, deep + "/" + "r" * len(nm)))
            rec(key + ".unlink", attempt(os.unlink, deep + "/" + "r" * len(nm)))
            rec(key + ".listing", ",".join(sorted(n[0] + str(len(n)) for n in os.listdir(deep))))
            for n in os.listdir(deep):
                q = deep + "/" + n
                if os.path.isdir(q) and not os.path.islink(q):
                    os.rmdir(q)
                else:
                    os.unlink(q)
        # a symlink whose target is a long path, and walking the deep tree through it
        rec("path.symlink-long-target", attempt(os.symlink, os.path.abspath(deep), "deep-link"))
        rec("path.walk-symlink", desc("deep-link", follow=True).split(" ")[0])
        rec("path.chdir-deep", attempt(os.chdir, deep) + " " + desc(".").split(" ")[0])
        rec("path.deep-create-rel", attempt(lambda: os.close(os.open("x" * 200, os.O_CREAT | os.O_WRONLY, 0o600))))
        rec("path.deep-mkdir-rel", attempt(os.mkdir, "y" * 200))
        rec("path.deep-listing", listing("."))
    finally:
        os.fchdir(base)
        os.close(base)


# ================================================================= permissions as a non-root user

def perm_modes():
    """Yields (class, uid, gid, mode) for each permission class (owner/group/other) and each of its 8
    rwx values: the tested class gets that value and the other two classes its complement, so only
    the class whose ids uid 65534/gid 65534 match decides the outcome. uid/gid own the tested node."""
    classes = {"owner": (NOBODY, OTHER), "group": (OTHER, NOBODY), "other": (OTHER, OTHER)}
    shift = {"owner": 6, "group": 3, "other": 0}
    for cls, (uid, gid) in classes.items():
        for p in range(8):
            mode = 0
            for c2, s in shift.items():
                mode |= (p if c2 == cls else 7 - p) << s
            yield cls, uid, gid, mode


def perm_dirs():
    """Directory search/read/write permission for owner, group and other classes, checked by uid 65534."""
    for cls, uid, gid, mode in perm_modes():
        d = fresh("perm-dir")
        t = d + "/t"
        os.mkdir(t)
        write_file(t + "/f", b"data", 0o666)
        os.mkdir(t + "/sub")
        os.chmod(t + "/sub", 0o777)
        write_file(d + "/mine", b"m", 0o644)
        os.chown(d + "/mine", NOBODY, NOBODY)
        os.chown(t, uid, gid)
        os.chmod(t, mode)

        def body(t=t, d=d):
            res = {}
            res["stat"] = desc(t + "/f", content=False)
            res["listdir"] = listing(t)
            res["open-read"] = attempt(lambda: os.close(os.open(t + "/f", os.O_RDONLY)))
            res["access-R"] = attempt(os.access, t, os.R_OK)
            res["access-W"] = attempt(os.access, t, os.W_OK)
            res["access-X"] = attempt(os.access, t, os.X_OK)
            res["creat"] = attempt(lambda: os.close(os.open(t + "/new", os.O_CREAT | os.O_WRONLY, 0o644)))
            res["mkdir"] = attempt(os.mkdir, t + "/nd")
            res["symlink"] = attempt(os.symlink, "x", t + "/sl")
            res["link-in"] = attempt(os.link, d + "/mine", t + "/hl")
            res["rename-within"] = attempt(os.rename, t + "/f", t + "/g")
            res["rename-out"] = attempt(os.rename, t + "/sub", d + "/sub-out")
            res["rename-in"] = attempt(os.rename, d + "/mine", t + "/mine-in")
            res["unlink"] = attempt(os.unlink, t + "/g")
            res["unlink-f"] = attempt(os.unlink, t + "/f")
            res["rmdir-sub"] = attempt(os.rmdir, t + "/sub")
            res["chdir"] = attempt(os.chdir, t)
            res["utime-now"] = attempt(os.utime, t)
            res["utime-explicit"] = attempt(os.utime, t, (5, 5))
            res["chmod"] = attempt(os.chmod, t, mode)
            res["setxattr"] = attempt(os.setxattr, t, "user.p", b"1")
            return res
        res = as_user(NOBODY, NOBODY, body)
        key = "perm.dir[%s %03o]" % (cls, mode)
        for k, v in res.items():
            rec("%s.%s" % (key, k), v)
        os.chmod(t, 0o777)
        rec(key + ".after", listing(t) + " | " + listing(d))


def perm_files():
    """File read/write/execute permission for owner, group and other classes, checked by uid 65534; EACCES vs EPERM."""
    for cls, uid, gid, mode in perm_modes():
        d = fresh("perm-file")
        f = d + "/f"
        write_file(f, b"content", 0o644)
        os.chown(f, uid, gid)
        os.chmod(f, mode)

        def body(f=f, mode=mode):
            res = {}
            for an, a in ACC:
                res["open-" + an] = attempt(lambda: os.close(os.open(f, a)))
            res["open-WRONLY|TRUNC"] = attempt(lambda: os.close(os.open(f, os.O_WRONLY | os.O_TRUNC)))
            res["open-RDONLY|TRUNC"] = attempt(lambda: os.close(os.open(f, os.O_RDONLY | os.O_TRUNC)))
            res["open-APPEND"] = attempt(lambda: os.close(os.open(f, os.O_WRONLY | os.O_APPEND)))
            res["open-CREAT"] = attempt(lambda: os.close(os.open(f, os.O_RDONLY | os.O_CREAT, 0o600)))
            res["truncate"] = attempt(os.truncate, f, 3)
            for xn, x in (("R", os.R_OK), ("W", os.W_OK), ("X", os.X_OK), ("RW", os.R_OK | os.W_OK), ("F", os.F_OK)):
                res["access-" + xn] = attempt(os.access, f, x)
            res["utime-now"] = attempt(utimensat, f, "now", "now")
            res["utime-null"] = attempt(utimensat, f, None, None)
            res["utime-omit"] = attempt(utimensat, f, "omit", "omit")
            res["utime-explicit"] = attempt(utimensat, f, T1, T2)
            res["utime-now-omit"] = attempt(utimensat, f, "now", "omit")
            res["chmod"] = attempt(os.chmod, f, mode)
            res["chown-self"] = attempt(os.chown, f, NOBODY, -1)
            res["chown-noop"] = attempt(os.chown, f, -1, -1)
            res["chgrp-own"] = attempt(os.chown, f, -1, NOBODY)
            res["setxattr"] = attempt(os.setxattr, f, "user.p", b"1")
            res["getxattr"] = attempt(lambda: os.getxattr(f, "user.p"))
            res["link"] = attempt(os.link, f, f + ".hl")
            return res
        res = as_user(NOBODY, NOBODY, body)
        key = "perm.file[%s %03o]" % (cls, mode)
        for k, v in res.items():
            rec("%s.%s" % (key, k), v)
        rec(key + ".after", desc(f))
    # root: DAC override, but execute needs some x bit on files
    d = fresh("perm-root")
    for mode in (0o000, 0o100, 0o010, 0o001, 0o644, 0o400):
        f = "%s/r%o" % (d, mode)
        write_file(f, b"r", mode)
        rec("perm.root(%03o).open-RDWR" % mode, attempt(lambda: os.close(os.open(f, os.O_RDWR))))
        rec("perm.root(%03o).access-X" % mode, attempt(os.access, f, os.X_OK))
        rec("perm.root(%03o).access-RW" % mode, attempt(os.access, f, os.R_OK | os.W_OK))
    os.mkdir(d + "/d000", 0o000)
    rec("perm.root.dir000-create", attempt(lambda: os.close(os.open(d + "/d000/x", os.O_CREAT | os.O_WRONLY, 0o644))))
    rec("perm.root.dir000-list", listing(d + "/d000"))


def perm_owner_ops():
    """Non-root chown/chmod/utime rules: EPERM for non-owners, group changes only to own groups, set-group-ID stripping, privilege clearing on write/truncate/chown."""
    # chown/chgrp by the owner and by others
    for owner in ((NOBODY, NOBODY), (NOBODY, OTHER), (OTHER, NOBODY), (OTHER, OTHER)):
        for (u, g) in ((NOBODY, -1), (0, -1), (OTHER, -1), (-1, NOBODY), (-1, EXTRA_GROUP), (-1, OTHER), (-1, 0), (-1, -1), (NOBODY, EXTRA_GROUP)):
            for mode in (0o6755, 0o0644, 0o2745):
                d = fresh("perm-chown")
                write_file(d + "/f", b"x", mode)
                os.chown(d + "/f", *owner)
                os.chmod(d + "/f", mode)
                r = as_user(NOBODY, NOBODY, lambda d=d, u=u, g=g: attempt(os.chown, d + "/f", u, g), groups=[NOBODY, EXTRA_GROUP])
                rec("perm.chown[owner=%d:%d %04o](%d:%d)" % (owner[0], owner[1], mode, u, g), r + " " + desc(d + "/f", content=False))
    # chown(f, -1, -1) by a non-owner who may write the set-user-ID file (but has it open for nothing)
    d = fresh("perm-chown-writable")
    write_file(d + "/f", b"x", 0o6777)
    os.chown(d + "/f", OTHER, OTHER)
    os.chmod(d + "/f", 0o6777)
    r = as_user(NOBODY, NOBODY, lambda d=d: attempt(os.chown, d + "/f", -1, -1), groups=[NOBODY])
    rec("perm.chown-writable[owner=%d:%d 6777](-1:-1)" % (OTHER, OTHER), r + " " + desc(d + "/f", content=False))
    # chmod by owner / non-owner; setgid dropped when not in the file's group; sticky on files
    for owner in ((NOBODY, NOBODY), (NOBODY, OTHER), (OTHER, NOBODY)):
        for kind in ("file", "dir"):
            for mode in (0o755, 0o2755, 0o4755, 0o1755, 0o7777, 0o000):
                d = fresh("perm-chmod")
                make(kind, d + "/x")
                os.chown(d + "/x", *owner)
                r = as_user(NOBODY, NOBODY, lambda d=d, mode=mode: attempt(os.chmod, d + "/x", mode))
                rec("perm.chmod[%s owner=%d:%d](%04o)" % (kind, owner[0], owner[1], mode), r + " " + desc(d + "/x", content=False))
    # writes and truncates by non-root clear set-user-ID (and set-group-ID with group exec)
    for mode in (0o6777, 0o4777, 0o2777, 0o2767, 0o6766, 0o0777):
        for owner in ((NOBODY, NOBODY), (OTHER, OTHER)):
            for op in ("write", "truncate", "ftruncate", "write-0", "open-trunc", "fallocate", "fallocate-keep", "punch"):
                d = fresh("perm-killpriv")
                write_file(d + "/f", b"hello", mode)
                os.chown(d + "/f", *owner)
                os.chmod(d + "/f", mode)

                def body(d=d, op=op):
                    f = d + "/f"
                    if op == "write":
                        return attempt(lambda: (lambda fd: (os.write(fd, b"J"), os.close(fd)))(os.open(f, os.O_WRONLY)) and None)
                    if op == "write-0":
                        return attempt(lambda: (lambda fd: (os.write(fd, b""), os.close(fd)))(os.open(f, os.O_WRONLY)) and None)
                    if op == "truncate":
                        return attempt(os.truncate, f, 2)
                    if op == "ftruncate":
                        return attempt(lambda: (lambda fd: (os.ftruncate(fd, 2), os.close(fd)))(os.open(f, os.O_WRONLY)) and None)
                    if op in FALLOCATE_OPS:
                        return attempt(lambda: (lambda fd: (fallocate(fd, *FALLOCATE_OPS[op]), os.close(fd)))(os.open(f, os.O_WRONLY)) and None)
                    return attempt(lambda: os.close(os.open(f, os.O_WRONLY | os.O_TRUNC)))
                r = as_user(NOBODY, NOBODY, body)
                rec("perm.killpriv[%04o owner=%d](%s)" % (mode, owner[0], op), r + " " + desc(d + "/f", content=False))
    # a descriptor that wrote once, then its owner sets set-user-ID/set-group-ID: the next write clears them
    for mode in (0o6777, 0o4777, 0o2777):
        d = fresh("perm-killpriv-again")
        write_file(d + "/f", b"hello", 0o666)
        os.chown(d + "/f", NOBODY, NOBODY)
        os.chmod(d + "/f", 0o666)

        def again(d=d, mode=mode):
            fd = os.open(d + "/f", os.O_WRONLY)
            try:
                os.write(fd, b"J")
                os.chmod(d + "/f", mode)
                os.write(fd, b"K")
            finally:
                os.close(fd)
        r = as_user(NOBODY, NOBODY, lambda: attempt(again))
        rec("perm.killpriv-again[%04o]" % mode, r + " " + desc(d + "/f", content=False))
    # a writer in the file's group (supplementary) keeps a set-group-ID without group execute
    for mode in (0o2767, 0o2777, 0o6766):
        for op in ("write", "truncate", "fallocate"):
            d = fresh("perm-killpriv-grp")
            write_file(d + "/f", b"hello", mode)
            os.chown(d + "/f", OTHER, OTHER)
            os.chmod(d + "/f", mode)

            def body(d=d, op=op):
                f = d + "/f"
                if op == "write":
                    return attempt(lambda: (lambda fd: (os.write(fd, b"J"), os.close(fd)))(os.open(f, os.O_WRONLY)) and None)
                if op in FALLOCATE_OPS:
                    return attempt(lambda: (lambda fd: (fallocate(fd, *FALLOCATE_OPS[op]), os.close(fd)))(os.open(f, os.O_WRONLY)) and None)
                return attempt(os.truncate, f, 2)
            r = as_user(NOBODY, NOBODY, body, groups=[OTHER])
            rec("perm.killpriv-in-group[%04o](%s)" % (mode, op), r + " " + desc(d + "/f", content=False))
    # root writing does not clear set-user-ID
    d = fresh("perm-killpriv-root")
    write_file(d + "/f", b"hello", 0o6777)
    os.chown(d + "/f", OTHER, OTHER)
    os.chmod(d + "/f", 0o6777)
    with open(d + "/f", "r+b") as fh:
        fh.write(b"J")
    rec("perm.killpriv.root-write", desc(d + "/f", content=False))
    # new files and directories: owner is the caller; group from a set-group-ID parent
    for sgid in (False, True):
        for grp in (NOBODY, OTHER, EXTRA_GROUP):
            d = fresh("perm-create")
            os.chown(d, 0, grp)
            os.chmod(d, 0o2777 if sgid else 0o777)

            def body(d=d):
                res = {}
                res["creat"] = attempt(lambda: os.close(os.open(d + "/f", os.O_CREAT | os.O_WRONLY, 0o2755)))
                res["creat-suid"] = attempt(lambda: os.close(os.open(d + "/fs", os.O_CREAT | os.O_WRONLY, 0o4755)))
                res["creat-suid-sgid"] = attempt(lambda: os.close(os.open(d + "/fss", os.O_CREAT | os.O_WRONLY, 0o6711)))
                res["mknod-suid"] = attempt(os.mknod, d + "/mn", stat.S_IFREG | 0o4755)
                res["mkdir"] = attempt(os.mkdir, d + "/sd", 0o755)
                res["symlink"] = attempt(os.symlink, "f", d + "/sl")
                res["mkdir-nested-file"] = attempt(lambda: os.close(os.open(d + "/sd/g", os.O_CREAT | os.O_WRONLY, 0o644)))
                return res
            r = as_user(NOBODY, NOBODY, body, groups=[NOBODY, EXTRA_GROUP])
            key = "perm.create[%s gid=%d]" % ("sgid" if sgid else "plain", grp)
            for k, v in r.items():
                rec(key + "." + k, v)
            for n in ("f", "fs", "fss", "mn", "sd", "sl", "sd/g"):
                rec(key + ".stat(%s)" % n, desc(d + "/" + n, content=False))


def perm_sticky():
    """Sticky directories: only the owner of the entry, the owner of the directory or root may unlink or rename it."""
    for dmode in (0o1777, 0o0777):
        for downer in (0, NOBODY, OTHER):
            for vowner in (NOBODY, OTHER, 0):
                d = fresh("sticky")
                os.mkdir(d + "/t")
                os.chown(d + "/t", downer, downer)
                os.chmod(d + "/t", dmode)
                os.mkdir(d + "/out")
                os.chmod(d + "/out", 0o777)
                for n in ("v1", "v2", "v3", "v4"):
                    write_file(d + "/t/" + n, b"v", 0o666)
                    os.chown(d + "/t/" + n, vowner, vowner)
                for n in ("vd1", "vd2"):
                    os.mkdir(d + "/t/" + n)
                    os.chmod(d + "/t/" + n, 0o777)
                    os.chown(d + "/t/" + n, vowner, vowner)
                write_file(d + "/t/mine", b"m", 0o666)
                os.chown(d + "/t/mine", NOBODY, NOBODY)
                write_file(d + "/out/mine2", b"m", 0o666)
                os.chown(d + "/out/mine2", NOBODY, NOBODY)

                def body(d=d):
                    t = d + "/t"
                    res = {}
                    res["unlink"] = attempt(os.unlink, t + "/v1")
                    res["rename-away"] = attempt(os.rename, t + "/v2", d + "/out/v2")
                    res["rename-within"] = attempt(os.rename, t + "/v3", t + "/v3b")
                    res["rename-onto"] = attempt(os.rename, t + "/mine", t + "/v4")
                    res["rename-onto-from-out"] = attempt(os.rename, d + "/out/mine2", t + "/v4")
                    res["rmdir"] = attempt(os.rmdir, t + "/vd1")
                    res["rename-dir"] = attempt(os.rename, t + "/vd2", d + "/out/vd2")
                    res["create"] = attempt(lambda: os.close(os.open(t + "/new", os.O_CREAT | os.O_WRONLY, 0o644)))
                    res["unlink-own-new"] = attempt(os.unlink, t + "/new")
                    res["write-victim"] = attempt(lambda: os.close(os.open(t + "/v4", os.O_WRONLY)) if os.path.exists(t + "/v4") else None)
                    return res
                r = as_user(NOBODY, NOBODY, body)
                key = "sticky[%04o dir=%d victim=%d]" % (dmode, downer, vowner)
                for k, v in r.items():
                    rec(key + "." + k, v)
                rec(key + ".state", listing(d + "/t") + " | " + listing(d + "/out"))


def perm_misc():
    """Smaller permission rules: hard links by non-owners, EACCES on path prefixes, ENOTDIR vs EACCES order."""
    d = fresh("perm-misc")
    write_file(d + "/rootfile", b"r", 0o600)
    write_file(d + "/pub", b"p", 0o644)
    os.mkdir(d + "/closed", 0o700)
    write_file(d + "/closed/f", b"c", 0o644)
    os.mkdir(d + "/dir", 0o755)
    os.mkdir(d + "/w", 0o777)
    os.chmod(d + "/w", 0o777)

    def body():
        res = {}
        res["link-unreadable-rootfile"] = attempt(os.link, d + "/rootfile", d + "/w/l1")
        res["link-readable"] = attempt(os.link, d + "/pub", d + "/w/l2")
        res["stat-through-closed"] = attempt(os.stat, d + "/closed/f")
        res["open-through-closed"] = attempt(lambda: os.close(os.open(d + "/closed/f", os.O_RDONLY)))
        res["creat-in-closed"] = attempt(lambda: os.close(os.open(d + "/closed/new", os.O_CREAT | os.O_WRONLY, 0o644)))
        res["missing-in-closed"] = attempt(os.stat, d + "/closed/nope")
        res["closed-enotdir"] = attempt(os.stat, d + "/closed/f/x")
        res["creat-in-755"] = attempt(lambda: os.close(os.open(d + "/dir/new", os.O_CREAT | os.O_WRONLY, 0o644)))
        res["mkdir-existing-in-755"] = attempt(os.mkdir, d + "/dir")
        res["unlink-in-755"] = attempt(os.unlink, d + "/pub")
        res["rename-root-dir-in-w"] = attempt(os.rename, d + "/dir", d + "/w/dir")
        res["open-rootfile"] = attempt(lambda: os.close(os.open(d + "/rootfile", os.O_RDONLY)))
        res["chmod-rootfile"] = attempt(os.chmod, d + "/rootfile", 0o777)
        res["chown-rootfile"] = attempt(os.chown, d + "/rootfile", NOBODY, NOBODY)
        res["utime-rootfile"] = attempt(os.utime, d + "/rootfile", (1, 1))
        res["utime-now-rootfile"] = attempt(os.utime, d + "/rootfile")
        res["truncate-rootfile"] = attempt(os.truncate, d + "/rootfile", 0)
        res["own-file-0000-open"] = attempt(lambda: (write_file(d + "/w/z", b"z", 0o000), os.close(os.open(d + "/w/z", os.O_RDONLY))) and None)
        res["own-file-0000-chmod"] = attempt(os.chmod, d + "/w/z", 0o600)
        res["own-file-open-after"] = attempt(lambda: os.close(os.open(d + "/w/z", os.O_RDONLY)))
        res["mkdir-own-then-rename-into-closed"] = attempt(lambda: (os.mkdir(d + "/w/m"), os.rename(d + "/w/m", d + "/closed/m")) and None)
        return res
    r = as_user(NOBODY, NOBODY, body)
    for k, v in r.items():
        rec("perm.misc." + k, v)
    rec("perm.misc.state", listing(d) + " | " + listing(d + "/w"))


# ================================================================= readdir / misc

def mknod_matrix():
    """mknod(2)/mkfifo(3): every file type onto every kind of name, umask, times, I/O through FIFOs and sockets, rights of non-root callers."""
    types = [("fifo", stat.S_IFIFO, 0), ("sock", stat.S_IFSOCK, 0), ("chr", stat.S_IFCHR, os.makedev(1, 3)),
             ("blk", stat.S_IFBLK, os.makedev(7, 200)), ("reg", stat.S_IFREG, 0), ("none", 0, 0), ("dir", stat.S_IFDIR, 0),
             ("bad", 0o170000, 0), ("chr-big", stat.S_IFCHR, os.makedev(300, 70000))]
    places = [("new", None, "x"), ("file", "file", "x"), ("dir", "dir", "x"), ("fifo", "fifo", "x"), ("sln", "sln", "x"),
              ("slf", "slf", "x"), ("missing/x", None, "nope/x"), ("file/x", "file", "x/y"), ("new/", None, "x/")]
    for tname, tbits, dev in types:
        for pname, kind, rel in places:
            for perm in (0o644, 0o7777):
                d = fresh("mknod")
                if kind:
                    make(kind, d + "/x")
                key = "mknod.%s(%s,%04o)" % (tname, pname, perm)
                rec(key, attempt(os.mknod, d + "/" + rel, tbits | perm, dev))
                rec(key + ".state", desc(d + "/x") + " [" + listing(d) + "]")
    # the parent's times change; the node's own times are its creation time
    d = fresh("mknod-times")
    before = tstate(d)
    tick()
    os.mkfifo(d + "/p", 0o600)
    rec("mknod.parent-times", tdiff(before, tstate(d)))
    # FIFO I/O is the kernel's: non-blocking opens, a writer and a reader through the name
    d = fresh("fifo-io")
    os.mkfifo(d + "/p", 0o666)
    rec("fifo.open-wr-noreader", attempt(os.open, d + "/p", os.O_WRONLY | os.O_NONBLOCK))
    r = os.open(d + "/p", os.O_RDONLY | os.O_NONBLOCK)
    w = os.open(d + "/p", os.O_WRONLY | os.O_NONBLOCK)
    os.write(w, b"through the pipe")
    rec("fifo.read", os.read(r, 100))
    rec("fifo.fstat", desc_st(os.fstat(r)))
    rec("fifo.lseek", attempt(os.lseek, r, 0, os.SEEK_SET))
    os.close(w)
    os.close(r)
    rec("fifo.truncate", attempt(os.truncate, d + "/p", 0))
    rec("fifo.after", desc(d + "/p"))
    # unix socket bound to a name, then reached through it
    d = fresh("sock-io")
    srv = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    srv.bind(d + "/s")
    srv.listen(1)
    cli = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    rec("sock.connect", attempt(cli.connect, d + "/s"))
    conn, _ = srv.accept()
    cli.sendall(b"over a socket")
    rec("sock.recv", conn.recv(100))
    rec("sock.open", attempt(os.open, d + "/s", os.O_RDONLY))
    rec("sock.bind-again", attempt(socket.socket(socket.AF_UNIX).bind, d + "/s"))
    for x in (conn, cli, srv):
        x.close()
    rec("sock.after", desc(d + "/s"))
    rec("sock.unlink", attempt(os.unlink, d + "/s") + " [" + listing(d) + "]")
    # non-root callers: FIFOs and sockets where they may write, never devices; the new node is theirs
    d = fresh("mknod-user")
    os.mkdir(d + "/open")
    os.chmod(d + "/open", 0o777)
    os.mkdir(d + "/closed")
    os.chmod(d + "/closed", 0o755)

    def user_mknods():
        out = {}
        for tname, tbits, dev in types[:5]:
            for where in ("open", "closed"):
                p = "%s/%s/%s" % (d, where, tname)
                out["%s.%s" % (tname, where)] = attempt(os.mknod, p, tbits | 0o640, dev) + " " + desc(p)
        return out

    for k, v in sorted(as_user(65534, 65534, user_mknods).items()):
        rec("mknod.as-nobody." + k, v)


def readdir_matrix():
    """Directory listings after many creations and deletions; "." and ".." present; d_type matches lstat."""
    d = fresh("readdir")
    for i in range(300):
        write_file("%s/e%03d" % (d, i), b"")
    for i in range(0, 300, 3):
        os.unlink("%s/e%03d" % (d, i))
    for i in range(0, 60, 2):
        os.mkdir("%s/d%03d" % (d, i))
    os.symlink("e001", d + "/sym")
    for kind in ("fifo", "sock", "chr"):
        make(kind, d + "/" + kind)
    names = sorted(os.listdir(d))
    rec("readdir.count", len(names))
    rec("readdir.names", ",".join(names[:5]) + "..." + ",".join(names[-5:]))
    types = []
    with os.scandir(d) as it:
        for e in it:
            types.append("%s:%s" % (e.name, "d" if e.is_dir(follow_symlinks=False) else "l" if e.is_symlink() else "f" if e.is_file(follow_symlinks=False) else "o"))
    rec("readdir.types", ",".join(sorted(types)) == ",".join(sorted("%s:%s" % (n, {"dir": "d", "lnk": "l", "reg": "f"}.get(KIND.get(stat.S_IFMT(os.lstat(d + "/" + n).st_mode)), "o")) for n in names)))
    rec("readdir.special", ",".join(sorted("%s:%s" % (n, KIND.get(stat.S_IFMT(os.lstat(d + "/" + n).st_mode))) for n in ("fifo", "sock", "chr"))))
    rec("readdir.nlink", desc(d))
    fd = os.open(d, os.O_RDONLY | os.O_DIRECTORY)
    rec("readdir.fd-read", attempt(os.read, fd, 10))
    rec("readdir.fd-write-open", attempt(lambda: os.close(os.open(d, os.O_WRONLY))))
    os.close(fd)
    rec("readdir.file", attempt(os.listdir, d + "/e001"))
    rec("readdir.missing", attempt(os.listdir, d + "/nope"))


def xattr_matrix():
    """User extended attributes: set/get/list/remove with XATTR_CREATE/XATTR_REPLACE, sizes, on files/dirs/symlinks."""
    for kind in ("file", "dir", "slf"):
        d = fresh("xattr")
        make(kind, d + "/x")
        p = d + "/x"
        k = "xattr.%s" % kind
        rec(k + ".get-missing", attempt(os.getxattr, p, "user.a", follow_symlinks=False))
        rec(k + ".set", attempt(os.setxattr, p, "user.a", b"1", follow_symlinks=False))
        rec(k + ".set-create-existing", attempt(os.setxattr, p, "user.a", b"2", os.XATTR_CREATE, follow_symlinks=False))
        rec(k + ".set-replace-missing", attempt(os.setxattr, p, "user.b", b"2", os.XATTR_REPLACE, follow_symlinks=False))
        rec(k + ".set-replace", attempt(os.setxattr, p, "user.a", b"3", os.XATTR_REPLACE, follow_symlinks=False))
        rec(k + ".get", attempt(lambda: os.getxattr(p, "user.a", follow_symlinks=False)))
        rec(k + ".set-empty", attempt(os.setxattr, p, "user.e", b"", follow_symlinks=False))
        rec(k + ".get-empty", attempt(lambda: os.getxattr(p, "user.e", follow_symlinks=False)))
        rec(k + ".list", attempt(lambda: ",".join(sorted(os.listxattr(p, follow_symlinks=False)))))
        rec(k + ".remove", attempt(os.removexattr, p, "user.a", follow_symlinks=False))
        rec(k + ".remove-missing", attempt(os.removexattr, p, "user.a", follow_symlinks=False))
        rec(k + ".big", attempt(os.setxattr, p, "user.big", b"v" * 4000, follow_symlinks=False))
        rec(k + ".name-255", attempt(os.setxattr, p, "user." + "n" * 250, b"v", follow_symlinks=False))
        rec(k + ".name-256", attempt(os.setxattr, p, "user." + "n" * 251, b"v", follow_symlinks=False))
        rec(k + ".bad-namespace", attempt(os.setxattr, p, "bogus.a", b"v", follow_symlinks=False))
        rec(k + ".list-after", attempt(lambda: ",".join(sorted(n[:12] for n in os.listxattr(p, follow_symlinks=False)))))


def fuse_limits():
    """Calls whose outcome shows the limits of a libfuse 2 filesystem: special files, O_TMPFILE, renameat2 flags, ns timestamps, unlink while open. Each in its own directory."""
    for name, fn in (("mkfifo", lambda p: os.mkfifo(p, 0o644)), ("mknod(S_IFSOCK)", lambda p: os.mknod(p, stat.S_IFSOCK | 0o640)),
                     ("mknod(S_IFREG)", lambda p: os.mknod(p, stat.S_IFREG | 0o640)), ("mknod(S_IFREG|04750)", lambda p: os.mknod(p, stat.S_IFREG | 0o4750))):
        d = fresh("limits")
        rec(name, attempt(fn, d + "/n") + " " + desc(d + "/n"))
    d = fresh("limits")
    rec("open(O_TMPFILE)", attempt(lambda: os.close(os.open(d, os.O_TMPFILE | os.O_RDWR, 0o600))) + " [" + listing(d) + "]")
    # O_TMPFILE: no name (nlink 0) until linkat(AT_SYMLINK_FOLLOW) of /proc/self/fd/N names it; O_EXCL forbids that
    for name, flags in (("O_RDWR", os.O_RDWR), ("O_WRONLY", os.O_WRONLY), ("O_RDWR|O_EXCL", os.O_RDWR | os.O_EXCL), ("O_RDONLY", os.O_RDONLY)):
        d = fresh("limits")

        def cycle(d=d, flags=flags):
            fd = os.open(d, os.O_TMPFILE | flags, 0o640)
            try:
                os.write(fd, b"tmp-1|")
                out = desc_st(os.fstat(fd)) + " [" + listing(d) + "]"
                r = _libc.linkat(AT_FDCWD, os.fsencode("/proc/self/fd/%d" % fd), AT_FDCWD, os.fsencode(d + "/named"), 0x400)
                out += " linkat=" + ("ok" if r == 0 else errno.errorcode.get(ctypes.get_errno(), "?"))
                os.write(fd, b"tmp-2")
                out += " " + desc_st(os.fstat(fd))
            finally:
                os.close(fd)
            return out
        rec("O_TMPFILE(%s)" % name, attempt(cycle) + " " + desc(d + "/named") + " [" + listing(d) + "]")
    # written, its writer closed, then linked through a read-only reopen of /proc/self/fd/N
    d = fresh("limits")

    def relinked(d=d):
        fd = os.open(d, os.O_TMPFILE | os.O_WRONLY, 0o644)
        os.write(fd, b"written-then-closed")
        r = os.open("/proc/self/fd/%d" % fd, os.O_RDONLY)
        os.close(fd)
        try:
            if _libc.linkat(AT_FDCWD, os.fsencode("/proc/self/fd/%d" % r), AT_FDCWD, os.fsencode(d + "/named"), 0x400) != 0:
                return errno.errorcode.get(ctypes.get_errno(), "?")
        finally:
            os.close(r)
    rec("O_TMPFILE(linked after its writer closed)", attempt(relinked) + " " + desc(d + "/named") + " [" + listing(d) + "]")
    d = fresh("limits")
    write_file(d + "/f", b"x")
    for name in ("nope", "f"):
        rec("O_TMPFILE(%s)" % name, attempt(lambda name=name: os.close(os.open(d + "/" + name, os.O_TMPFILE | os.O_RDWR, 0o600))) + " [" + listing(d) + "]")
    renameat2 = _libc.renameat2
    for name, flag, dst in (("NOREPLACE-exists", 1, "b"), ("EXCHANGE", 2, "b"), ("NOREPLACE-free", 1, "c"), ("EXCHANGE-missing", 2, "c")):
        d = fresh("limits")
        write_file(d + "/a", b"A")
        write_file(d + "/b", b"B")
        r = renameat2(AT_FDCWD, os.fsencode(d + "/a"), AT_FDCWD, os.fsencode(d + "/" + dst), flag)
        rec("renameat2(%s)" % name, ("ok" if r == 0 else errno.errorcode.get(ctypes.get_errno(), "?")) + " " + desc(d + "/a") + " " + desc(d + "/b") + " " + desc(d + "/c"))
    d = fresh("limits")
    write_file(d + "/ns", b"")
    utimensat(d + "/ns", (1000000000, 123456789), (1000000000, 987654321))
    st = os.stat(d + "/ns")
    rec("utimensat(ns precision)", "%d %d" % (st.st_atime_ns, st.st_mtime_ns))
    d = fresh("limits")
    write_file(d + "/open", b"still")
    fd = os.open(d + "/open", os.O_RDWR)
    rec("unlink-open", attempt(os.unlink, d + "/open"))
    rec("unlink-open.fstat", desc_st(os.fstat(fd)))
    rec("unlink-open.read", attempt(lambda: os.pread(fd, 10, 0)))
    rec("unlink-open.listing", "[" + listing(d) + "]")
    os.close(fd)
    # the last close's release reaches a FUSE daemon asynchronously: allow it up to 5 s to finish
    deadline = time.time() + 5
    while listing(d) and time.time() < deadline:
        time.sleep(0.01)
    rec("unlink-open.listing-after-close", "[" + listing(d) + "]")

def fd_ops():
    """Calls on descriptors: fstat/fchmod/fchown/futimens/ftruncate/fsync, sizes and times visible before close, two descriptors on one file, dup, lseek."""
    d = fresh("fd")
    write_file(d + "/f", b"0123456789")
    fd = os.open(d + "/f", os.O_RDWR)
    rec("fd.fstat", desc_st(os.fstat(fd)))
    rec("fd.fchmod", attempt(os.fchmod, fd, 0o4711) + " " + desc(d + "/f", content=False))
    rec("fd.fchown", attempt(os.fchown, fd, 1000, 1001) + " " + desc(d + "/f", content=False))
    rec("fd.futimens", attempt(os.utime, fd, ns=(T1[0] * 10**9 + T1[1], T2[0] * 10**9 + T2[1])) + " " + str(os.stat(d + "/f").st_mtime_ns == T2[0] * 10**9 + T2[1]))
    os.lseek(fd, 0, os.SEEK_END)
    os.write(fd, b"abc")
    rec("fd.size-before-close(stat)", desc(d + "/f", content=False))
    rec("fd.size-before-close(fstat)", desc_st(os.fstat(fd)))
    rec("fd.mtime-before-close", "T2" if os.stat(d + "/f").st_mtime_ns == T2[0] * 10**9 + T2[1] else "changed")
    fd2 = os.open(d + "/f", os.O_RDONLY)
    rec("fd.second-reader", attempt(lambda: os.pread(fd2, 20, 0)))
    rec("fd.lseek-end", os.lseek(fd2, 0, os.SEEK_END))
    rec("fd.lseek-cur", os.lseek(fd2, -3, os.SEEK_CUR))
    rec("fd.read-at-pos", attempt(os.read, fd2, 10))
    rec("fd.lseek-negative", attempt(os.lseek, fd2, -100, os.SEEK_SET))
    rec("fd.lseek-beyond", attempt(os.lseek, fd2, 100, os.SEEK_SET))
    rec("fd.read-beyond", attempt(os.read, fd2, 10))
    rec("fd.write-on-rdonly", attempt(os.write, fd2, b"x"))
    rec("fd.ftruncate-on-rdonly", attempt(os.ftruncate, fd2, 1))
    fd3 = os.dup(fd)
    os.lseek(fd, 2, os.SEEK_SET)
    rec("fd.dup-shares-offset", os.lseek(fd3, 0, os.SEEK_CUR))
    os.write(fd3, b"ZZ")
    rec("fd.dup-write", attempt(lambda: os.pread(fd2, 20, 0)))
    rec("fd.ftruncate-grow", attempt(os.ftruncate, fd, 20) + " " + desc_st(os.fstat(fd2)))
    rec("fd.fsync", attempt(os.fsync, fd))
    rec("fd.fdatasync", attempt(os.fdatasync, fd))
    os.close(fd3)
    os.close(fd)
    os.close(fd2)
    rec("fd.after-close", desc(d + "/f"))
    rec("fd.closed", attempt(os.fstat, fd))
    # hard links: a change through one name is seen through the other, by path and by descriptor
    write_file(d + "/h1", b"one")
    os.link(d + "/h1", d + "/h2")
    fa = os.open(d + "/h1", os.O_RDWR)
    fb = os.open(d + "/h2", os.O_RDONLY)
    os.pwrite(fa, b"ONE+", 0)
    rec("fd.hardlink-read-other", attempt(lambda: os.pread(fb, 10, 0)))
    rec("fd.hardlink-fstat-other", desc_st(os.fstat(fb)))
    os.unlink(d + "/h1")
    rec("fd.hardlink-after-unlink", desc_st(os.fstat(fa)) + " " + desc_st(os.fstat(fb)) + " " + desc(d + "/h2"))
    os.close(fa)
    os.close(fb)
    # directory descriptors
    dfd = os.open(d, os.O_RDONLY | os.O_DIRECTORY)
    rec("fd.dir-fstat", desc_st(os.fstat(dfd)))
    rec("fd.dir-fchmod", attempt(os.fchmod, dfd, 0o751) + " " + desc(d))
    rec("fd.dir-read", attempt(os.read, dfd, 1))
    os.fchmod(dfd, 0o777)
    os.close(dfd)
    # O_PATH descriptors
    pfd = os.open(d + "/h2", os.O_PATH)
    rec("fd.opath-fstat", desc_st(os.fstat(pfd)))
    rec("fd.opath-read", attempt(os.read, pfd, 1))
    os.close(pfd)


_libc = ctypes.CDLL(None, use_errno=True)
_libc.fallocate.argtypes = [ctypes.c_int, ctypes.c_int, ctypes.c_long, ctypes.c_long]


# fallocate(2) calls of the killpriv checks: (mode, offset, length); 0x1 = FALLOC_FL_KEEP_SIZE, 0x3 = PUNCH_HOLE|KEEP_SIZE.
FALLOCATE_OPS = {"fallocate": (0, 0, 65536), "fallocate-keep": (0x1, 0, 65536), "punch": (0x3, 0, 2)}


def fallocate(fd, mode, off, length):
    """fallocate(2) through libc (Python's os has only posix_fallocate). Raises OSError."""
    if _libc.fallocate(fd, mode, off, length) != 0:
        e = ctypes.get_errno()
        raise OSError(e, os.strerror(e))


def zeros_between(fd, lo, hi):
    """True when bytes [lo, hi) of fd read as zero."""
    return os.pread(fd, hi - lo, lo) == bytes(hi - lo) if hi > lo else True


def sparse_matrix():
    """fallocate(2) modes and errors, hole punching, SEEK_DATA/SEEK_HOLE before and after close on 1 MiB-aligned layouts (hole
    granularity is the filesystem's own, so a SEEK_HOLE result is recorded as "at or after the data, zeros up to it")."""
    MiB = 1 << 20
    KEEP, PUNCH, ZERO, COLLAPSE = 0x01, 0x02, 0x10, 0x08
    d = fresh("sparse")
    write_file(d + "/f", b"a" * 300000)
    fd = os.open(d + "/f", os.O_RDWR)
    for name, mode, off, length in [("extend", 0, 0, 400000), ("inside", 0, 0, 100), ("keep-beyond", KEEP, 0, 900000),
                                    ("punch", KEEP | PUNCH, 4096, 8192), ("punch-past-eof", KEEP | PUNCH, 390000, 100000),
                                    ("punch-nokeep", PUNCH, 0, 4096), ("zero-range", ZERO, 0, 4096), ("zero-range-keep", ZERO | KEEP, 0, 4096),
                                    ("collapse", COLLAPSE, 0, 4096), ("negative-offset", 0, -1, 10), ("zero-length", 0, 0, 0)]:
        before = tstate(d + "/f")
        tick()
        r = attempt(fallocate, fd, mode, off, length)
        st = os.fstat(fd)
        rec("sparse.fallocate-" + name, r + " size=%d %s" % (st.st_size, tdiff(before, tstate(d + "/f"))))
    rec("sparse.punched-bytes", str(zeros_between(fd, 4096, 4096 + 8192)) + " " + repr(os.pread(fd, 4, 4092)) + repr(os.pread(fd, 4, 12288)))
    rec("sparse.grown-bytes", zeros_between(fd, 300000, 400000))
    ro = os.open(d + "/f", os.O_RDONLY)
    rec("sparse.fallocate-rdonly", attempt(fallocate, ro, 0, 0, 10))
    os.close(ro)
    os.close(fd)
    rec("sparse.after-close", desc(d + "/f", content=False) + " " + str(os.stat(d + "/f").st_size))
    # layout: 4 MiB, data in [1 MiB, 2 MiB) and [3 MiB, 3 MiB + 10)
    fd = os.open(d + "/s", os.O_RDWR | os.O_CREAT, 0o644)
    os.ftruncate(fd, 4 * MiB)
    os.pwrite(fd, os.urandom(MiB), MiB)
    os.pwrite(fd, b"x" * 10, 3 * MiB)

    def seeks(tag, fd):
        def hole_after(pos, data_end):
            h = os.lseek(fd, pos, os.SEEK_HOLE)
            return "hole>=%d zeros-to-it=%s" % (data_end, h >= data_end and zeros_between(fd, data_end, h))
        rec(tag + ".data-from-0", attempt(os.lseek, fd, 0, os.SEEK_DATA))
        rec(tag + ".data-from-2.5M", attempt(os.lseek, fd, 2 * MiB + MiB // 2, os.SEEK_DATA))
        rec(tag + ".hole-from-0", attempt(os.lseek, fd, 0, os.SEEK_HOLE))
        rec(tag + ".hole-in-data", hole_after(MiB, 2 * MiB))
        rec(tag + ".hole-in-tail", hole_after(3 * MiB, 3 * MiB + 10))
        rec(tag + ".data-after-last", attempt(os.lseek, fd, 3 * MiB + MiB // 2, os.SEEK_DATA))
        rec(tag + ".data-at-eof", attempt(os.lseek, fd, 4 * MiB, os.SEEK_DATA))
        rec(tag + ".hole-at-eof", attempt(os.lseek, fd, 4 * MiB, os.SEEK_HOLE))
        rec(tag + ".hole-last-byte", attempt(os.lseek, fd, 4 * MiB - 1, os.SEEK_HOLE))
        rec(tag + ".data-negative", attempt(os.lseek, fd, -1, os.SEEK_DATA))
        rec(tag + ".blocks-below-size", os.fstat(fd).st_blocks * 512 < os.fstat(fd).st_size)
    seeks("sparse.open", fd)
    # punch the first data MiB away again, then look before and after close
    rec("sparse.punch-data", attempt(fallocate, fd, KEEP | PUNCH, MiB, MiB))
    rec("sparse.punched-data-from-0", attempt(os.lseek, fd, 0, os.SEEK_DATA))
    os.close(fd)
    fd = os.open(d + "/s", os.O_RDONLY)
    rec("sparse.closed-punched-data-from-0", attempt(os.lseek, fd, 0, os.SEEK_DATA))
    rec("sparse.closed-contents", zeros_between(fd, 0, 3 * MiB) and os.pread(fd, 11, 3 * MiB) == b"x" * 10 + b"\0")
    os.close(fd)
    fd = os.open(d + "/t", os.O_RDWR | os.O_CREAT, 0o644)
    os.ftruncate(fd, 4 * MiB)
    os.pwrite(fd, os.urandom(MiB), MiB)
    os.pwrite(fd, b"x" * 10, 3 * MiB)
    os.close(fd)
    fd = os.open(d + "/t", os.O_RDONLY)
    seeks("sparse.closed", fd)
    os.close(fd)
    dfd = os.open(d, os.O_RDONLY | os.O_DIRECTORY)
    rec("sparse.dir-fallocate", attempt(fallocate, dfd, 0, 0, 10))
    os.close(dfd)


def perm_extra():
    """More rules for uid 65534: supplementary groups, moving a directory to another parent needs write permission on it, fd-based calls by non-owners, access(2) uses the real ids."""
    # a supplementary group (100) selects the group class
    for p in range(8):
        d = fresh("perm-supp")
        write_file(d + "/f", b"data", 0o644)
        os.chown(d + "/f", OTHER, EXTRA_GROUP)
        os.chmod(d + "/f", (p << 3) | ((7 - p) << 6) | (7 - p))

        def body(d=d):
            f = d + "/f"
            return {an: attempt(lambda a=a: os.close(os.open(f, a))) for an, a in ACC}
        r = as_user(NOBODY, NOBODY, body, groups=[EXTRA_GROUP])
        for k, v in r.items():
            rec("perm.supp[g=%o].open-%s" % (p, k), v)
    # renaming a directory into another parent needs write permission on the directory itself (its ".." changes)
    for dmode in (0o755, 0o777):
        for owner in (0, NOBODY):
            d = fresh("perm-dirmove")
            os.mkdir(d + "/a")
            os.mkdir(d + "/b")
            os.chmod(d + "/a", 0o777)
            os.chmod(d + "/b", 0o777)
            os.mkdir(d + "/a/m")
            os.chown(d + "/a/m", owner, owner)
            os.chmod(d + "/a/m", dmode)
            os.mkdir(d + "/a/n")
            os.chown(d + "/a/n", owner, owner)
            os.chmod(d + "/a/n", dmode)

            def body(d=d):
                return {"across": attempt(os.rename, d + "/a/m", d + "/b/m"), "within": attempt(os.rename, d + "/a/n", d + "/a/n2")}
            r = as_user(NOBODY, NOBODY, body)
            for k, v in r.items():
                rec("perm.dirmove[%03o owner=%d].%s" % (dmode, owner, k), v)
            rec("perm.dirmove[%03o owner=%d].state" % (dmode, owner), listing(d + "/a") + " | " + listing(d + "/b"))
    # descriptors opened for writing keep working after the mode changes; fchmod/fchown need ownership
    d = fresh("perm-fd")
    write_file(d + "/f", b"x", 0o666)
    os.chown(d + "/f", OTHER, OTHER)

    def body():
        res = {}
        fd = os.open(d + "/f", os.O_RDWR)
        res["fchmod"] = attempt(os.fchmod, fd, 0o600)
        res["fchown"] = attempt(os.fchown, fd, NOBODY, NOBODY)
        res["futimens-explicit"] = attempt(os.utime, fd, (1, 1))
        res["futimens-now"] = attempt(os.utime, fd, None)
        res["ftruncate"] = attempt(os.ftruncate, fd, 4)
        res["write"] = attempt(os.write, fd, b"w")
        res["fsetxattr"] = attempt(os.setxattr, fd, "user.q", b"1")
        os.close(fd)
        return res
    for k, v in as_user(NOBODY, NOBODY, body).items():
        rec("perm.fd." + k, v)
    rec("perm.fd.after", desc(d + "/f"))
    os.chmod(d + "/f", 0o666)

    # a descriptor opened for writing before chmod 000 still writes
    to_parent_r, to_parent_w = os.pipe()
    to_child_r, to_child_w = os.pipe()
    pid = os.fork()
    if pid == 0:
        code = 0
        try:
            os.setgroups([])
            os.setgid(NOBODY)
            os.setuid(NOBODY)
            fd = os.open(d + "/f", os.O_RDWR)
            os.write(to_parent_w, b"1")
            os.read(to_child_r, 1)
            os.write(to_parent_w, attempt(os.pwrite, fd, b"late", 0).encode())
        except BaseException:
            code = 1
        os._exit(code)
    os.read(to_parent_r, 1)
    os.chmod(d + "/f", 0o000)
    os.write(to_child_w, b"1")
    rec("perm.fd.write-after-chmod-000", os.read(to_parent_r, 64).decode())
    os.waitpid(pid, 0)
    for x in (to_parent_r, to_parent_w, to_child_r, to_child_w):
        os.close(x)
    rec("perm.fd.write-after-chmod-000.state", desc(d + "/f"))

# ================================================================= seeded trees (overlay over a host directory)

def seed_case(c):
    """The entries every seeded case starts with (created before the filesystem under test sees them when it is an overlay)."""
    os.mkdir(c, 0o755)
    write_file(c + "/f", b"F-data", 0o644)
    write_file(c + "/e", b"", 0o600)
    write_file(c + "/x", b"X", 0o755)
    os.chown(c + "/x", OTHER, OTHER)
    os.chmod(c + "/x", 0o4755)
    os.mkdir(c + "/d", 0o755)
    write_file(c + "/d/child", b"C", 0o644)
    os.mkdir(c + "/d/sub", 0o755)
    os.mkdir(c + "/de", 0o711)
    os.symlink("f", c + "/l")
    os.symlink("d", c + "/ld")
    os.symlink("nowhere", c + "/ln")
    write_file(c + "/h1", b"H", 0o640)
    os.link(c + "/h1", c + "/h2")
    write_file(c + "/xa", b"A", 0o644)
    os.setxattr(c + "/xa", "user.k", b"v")
    os.mkfifo(c + "/p", 0o640)


def describe_tree(c, xattrs=False):
    """Every entry under c (not following symlinks), sorted, with its stat summary; with `xattrs`, also the user xattrs (names and values) of files and directories."""
    out = []
    for root, dirs, files in os.walk(c):
        dirs.sort()
        rel = os.path.relpath(root, c)
        out.append("%s{%s%s}" % (rel, desc(root), _xattrs(root) if xattrs else ""))
        for n in sorted(files + [x for x in dirs if os.path.islink(os.path.join(root, x))]):
            p = os.path.join(root, n)
            out.append("%s/%s{%s%s}" % (rel, n, desc(p), _xattrs(p) if xattrs and not os.path.islink(p) else ""))
    return " ".join(out)


def _xattrs(p):
    """" x=name:value,..." for the xattrs of p (sorted), or " x=<errno name>"."""
    try:
        return " x=" + ",".join("%s:%r" % (n, os.getxattr(p, n)) for n in sorted(os.listxattr(p)))
    except OSError as e:
        return " x=" + ename(e)


def _w(path, data, flags=os.O_WRONLY, off=None):
    """Opens path with flags and writes data (at offset `off` with pwrite when given). Raises OSError."""
    fd = os.open(path, flags)
    try:
        if off is None:
            os.write(fd, data)
        else:
            os.pwrite(fd, data, off)
    finally:
        os.close(fd)


def _rd(path):
    """Whole contents of path as bytes. Raises OSError."""
    with open(path, "rb") as f:
        return f.read()


def _seq(*steps):
    """Runs (label, fn, args...) steps in order; returns "label=outcome" for each."""
    return " ".join("%s=%s" % (st[0], attempt(st[1], *st[2:])) for st in steps)


SEEDED_OPS = [
    ("none", lambda c: "ok"),
    ("read-all", lambda c: _seq(("f", _rd, c + "/f"), ("x", _rd, c + "/x"), ("child", _rd, c + "/d/child"), ("l", _rd, c + "/l"), ("h2", _rd, c + "/h2"))),
    ("getxattr", lambda c: _seq(("get", os.getxattr, c + "/xa", "user.k"), ("list", lambda: ",".join(os.listxattr(c + "/xa"))), ("missing", os.getxattr, c + "/f", "user.k"))),
    ("append", lambda c: _seq(("w", _w, c + "/f", b"+more", os.O_WRONLY | os.O_APPEND))),
    ("overwrite-middle", lambda c: _seq(("w", _w, c + "/f", b"ZZ", os.O_WRONLY, 2))),
    ("write-beyond", lambda c: _seq(("w", _w, c + "/f", b"end", os.O_WRONLY, 20))),
    ("open-trunc", lambda c: _seq(("o", _w, c + "/f", b"", os.O_WRONLY | os.O_TRUNC))),
    ("truncate-shrink", lambda c: _seq(("t", os.truncate, c + "/f", 2))),
    ("truncate-grow", lambda c: _seq(("t", os.truncate, c + "/f", 10))),
    ("write-via-symlink", lambda c: _seq(("w", _w, c + "/l", b"L", os.O_WRONLY | os.O_APPEND))),
    ("write-hardlink", lambda c: _seq(("w", _w, c + "/h1", b"++", os.O_WRONLY | os.O_APPEND), ("r2", _rd, c + "/h2"))),
    ("chmod-hardlink", lambda c: _seq(("m", os.chmod, c + "/h1", 0o600))),
    ("chmod-file", lambda c: _seq(("m", os.chmod, c + "/f", 0o4700))),
    ("chmod-dir", lambda c: _seq(("m", os.chmod, c + "/d", 0o700))),
    ("chmod-via-symlink", lambda c: _seq(("m", os.chmod, c + "/l", 0o444))),
    ("chown-file", lambda c: _seq(("o", os.chown, c + "/f", 1234, 5678))),
    ("chown-setuid", lambda c: _seq(("o", os.chown, c + "/x", 1001, -1))),
    ("chown-dir", lambda c: _seq(("o", os.chown, c + "/d", 1234, 5678))),
    ("lchown-symlink", lambda c: _seq(("o", lambda: os.chown(c + "/l", 1234, 5678, follow_symlinks=False)))),
    ("utime-file", lambda c: _seq(("u", utimensat, c + "/f", T1, T2)) + " m=" + str(os.stat(c + "/f").st_mtime_ns == T2[0] * 10**9 + T2[1])),
    ("utime-dir", lambda c: _seq(("u", utimensat, c + "/d", T1, T2)) + " m=" + str(os.stat(c + "/d").st_mtime_ns == T2[0] * 10**9 + T2[1])),
    ("setxattr", lambda c: _seq(("s", os.setxattr, c + "/f", "user.n", b"1"), ("g", os.getxattr, c + "/f", "user.n"))),
    ("setxattr-replace", lambda c: _seq(("s", os.setxattr, c + "/xa", "user.k", b"w", os.XATTR_REPLACE), ("g", os.getxattr, c + "/xa", "user.k"))),
    ("removexattr", lambda c: _seq(("r", os.removexattr, c + "/xa", "user.k"), ("g", os.getxattr, c + "/xa", "user.k"))),
    ("unlink-file", lambda c: _seq(("u", os.unlink, c + "/f"), ("again", os.unlink, c + "/f"), ("stat", os.stat, c + "/f"))),
    ("unlink-symlink", lambda c: _seq(("u", os.unlink, c + "/l"))),
    ("unlink-hardlink", lambda c: _seq(("u", os.unlink, c + "/h1"))),
    ("unlink-dir", lambda c: _seq(("u", os.unlink, c + "/d"))),
    ("rmdir-empty", lambda c: _seq(("r", os.rmdir, c + "/de"), ("again", os.rmdir, c + "/de"))),
    ("rmdir-nonempty", lambda c: _seq(("r", os.rmdir, c + "/d"))),
    ("empty-then-rmdir", lambda c: _seq(("u", os.unlink, c + "/d/child"), ("r1", os.rmdir, c + "/d"), ("rs", os.rmdir, c + "/d/sub"), ("r2", os.rmdir, c + "/d"))),
    ("unlink-recreate", lambda c: _seq(("u", os.unlink, c + "/f"), ("c", write_file, c + "/f", b"new"))),
    ("unlink-mkdir", lambda c: _seq(("u", os.unlink, c + "/f"), ("m", os.mkdir, c + "/f"), ("c", write_file, c + "/f/in", b"i"))),
    ("rmdir-recreate-file", lambda c: _seq(("r", os.rmdir, c + "/de"), ("c", write_file, c + "/de", b"now a file"))),
    ("rmdir-mkdir", lambda c: _seq(("r", os.rmdir, c + "/de"), ("m", os.mkdir, c + "/de", 0o700))),
    ("rename-file", lambda c: _seq(("r", os.rename, c + "/f", c + "/g"))),
    ("rename-file-over-file", lambda c: _seq(("r", os.rename, c + "/f", c + "/e"))),
    ("rename-file-over-dir", lambda c: _seq(("r", os.rename, c + "/f", c + "/de"))),
    ("rename-dir", lambda c: _seq(("r", os.rename, c + "/d", c + "/d2"), ("child", _rd, c + "/d2/child"))),
    ("rename-dir-over-empty", lambda c: _seq(("r", os.rename, c + "/d", c + "/de"))),
    ("rename-dir-over-nonempty", lambda c: _seq(("r", os.rename, c + "/de", c + "/d"))),
    ("rename-dir-into-itself", lambda c: _seq(("r", os.rename, c + "/d", c + "/d/sub/x"))),
    ("rename-into-dir", lambda c: _seq(("r", os.rename, c + "/f", c + "/d/sub/f"))),
    ("rename-out-of-dir", lambda c: _seq(("r", os.rename, c + "/d/child", c + "/child"))),
    ("rename-over-child", lambda c: _seq(("r", os.rename, c + "/f", c + "/d/child"))),
    ("rename-symlink", lambda c: _seq(("r", os.rename, c + "/ld", c + "/ld2"), ("walk", _rd, c + "/ld2/child"))),
    ("rename-hardlink-over-other", lambda c: _seq(("r", os.rename, c + "/h1", c + "/h2"))),
    ("rename-hardlink", lambda c: _seq(("r", os.rename, c + "/h1", c + "/d/h3"), ("w", _w, c + "/d/h3", b"3", os.O_WRONLY | os.O_APPEND), ("r2", _rd, c + "/h2"))),
    ("rename-back", lambda c: _seq(("a", os.rename, c + "/f", c + "/g"), ("b", os.rename, c + "/g", c + "/f"))),
    ("rename-dir-then-create", lambda c: _seq(("r", os.rename, c + "/d", c + "/d2"), ("m", os.mkdir, c + "/d"), ("c", write_file, c + "/d/child", b"fresh"))),
    ("rename-swap", lambda c: _seq(("a", os.rename, c + "/f", c + "/tmp"), ("b", os.rename, c + "/e", c + "/f"), ("c", os.rename, c + "/tmp", c + "/e"))),
    ("link-file", lambda c: _seq(("l", os.link, c + "/f", c + "/f2"), ("w", _w, c + "/f2", b"!", os.O_WRONLY | os.O_APPEND), ("r", _rd, c + "/f"))),
    ("link-hardlink", lambda c: _seq(("l", os.link, c + "/h1", c + "/d/h4"))),
    ("link-into-dir", lambda c: _seq(("l", os.link, c + "/f", c + "/d/sub/f"))),
    ("create-in-dir", lambda c: _seq(("c", write_file, c + "/d/new", b"n"), ("m", os.mkdir, c + "/d/sub/deeper"))),
    ("symlink-in-dir", lambda c: _seq(("s", os.symlink, "../f", c + "/d/up"), ("r", _rd, c + "/d/up"))),
    ("exists-errors", lambda c: _seq(("mkdir", os.mkdir, c + "/d"), ("mkdir-file", os.mkdir, c + "/f"), ("symlink", os.symlink, "x", c + "/f"),
                                     ("link", os.link, c + "/e", c + "/f"), ("excl", lambda: os.close(os.open(c + "/f", os.O_CREAT | os.O_EXCL | os.O_WRONLY))),
                                     ("notdir", os.stat, c + "/f/x"), ("rmdir-file", os.rmdir, c + "/f"))),
    ("perm-nobody", lambda c: (os.chmod(c + "/d", 0o777), json.dumps(as_user(NOBODY, NOBODY, lambda: _seq(
        ("read-f", _rd, c + "/f"), ("write-f", _w, c + "/f", b"n"), ("read-e", _rd, c + "/e"), ("create-d", write_file, c + "/d/nb", b"n"),
        ("unlink-child", os.unlink, c + "/d/child"), ("create-c", write_file, c + "/nb", b"n"), ("chmod-f", os.chmod, c + "/f", 0o777),
        ("utime-now-f", os.utime, c + "/f"))), sort_keys=True))[1]),
    ("sticky-nobody", lambda c: (os.chmod(c + "/d", 0o1777), os.chown(c + "/d/child", OTHER, OTHER), json.dumps(as_user(NOBODY, NOBODY, lambda: _seq(
        ("unlink-child", os.unlink, c + "/d/child"), ("rename-sub", os.rename, c + "/d/sub", c + "/d/sub2"),
        ("create", write_file, c + "/d/mine", b"m"), ("unlink-mine", os.unlink, c + "/d/mine"))), sort_keys=True))[2]),
    ("killpriv-write", lambda c: (os.chmod(c + "/x", 0o4777), json.dumps(as_user(NOBODY, NOBODY, lambda: _seq(("w", _w, c + "/x", b"w")))))[1]),
    ("dir-times-create", lambda c: (lambda before: (write_file(c + "/d/t", b""), tdiff(before, tstate(c + "/d")))[1])(tstate(c + "/d"))),
    ("file-times-write", lambda c: (lambda before: (_w(c + "/f", b"w"), tdiff(before, tstate(c + "/f")))[1])(tstate(c + "/f"))),
    ("file-times-chmod", lambda c: (lambda before: (os.chmod(c + "/f", 0o600), tdiff(before, tstate(c + "/f")))[1])(tstate(c + "/f"))),
    ("file-times-read", lambda c: (lambda before: (_rd(c + "/f"), tdiff(before, tstate(c + "/f")))[1])(tstate(c + "/f"))),
    ("fifo-io", lambda c: (lambda r: (lambda w: (os.write(w, b"lower fifo"), os.close(w), os.read(r, 64), os.close(r))[2])(
        os.open(c + "/p", os.O_WRONLY | os.O_NONBLOCK)))(os.open(c + "/p", os.O_RDONLY | os.O_NONBLOCK))),
    ("mkfifo-in-dir", lambda c: _seq(("m", os.mkfifo, c + "/d/q", 0o600), ("again", os.mkfifo, c + "/d/q"), ("r", os.rename, c + "/d/q", c + "/q2"))),
    ("readdir-after-changes", lambda c: (os.unlink(c + "/d/child"), write_file(c + "/d/zz", b""), os.rename(c + "/e", c + "/d/e"), listing(c + "/d"))[3]),
]

SEED_ENTRIES = ["f", "e", "x", "d", "de", "l", "ld", "ln", "h1", "xa", "p", "d/child", "d/sub"]


def _append(p):
    """Appends one byte ("+") to p with O_APPEND. Raises OSError."""
    _w(p, b"+", os.O_WRONLY | os.O_APPEND)


SEED_ENTRY_OPS = [
    ("unlink", os.unlink), ("rmdir", os.rmdir), ("chmod", lambda p: os.chmod(p, 0o700)), ("chown", lambda p: os.chown(p, 1234, 5678)),
    ("lchown", lambda p: os.chown(p, 1234, 5678, follow_symlinks=False)), ("truncate", lambda p: os.truncate(p, 1)), ("append", _append),
    ("link", lambda p: os.link(p, os.path.dirname(p) + "/lnk")), ("utime", lambda p: (utimensat(p, T1, T2, nofollow=True), os.lstat(p).st_mtime_ns == T2[0] * 10**9 + T2[1])[1]),
    ("read", lambda p: _rd(p)), ("listdir", lambda p: ",".join(sorted(os.listdir(p)))), ("readlink", os.readlink),
    ("access-W", lambda p: os.access(p, os.W_OK)), ("open-dir", lambda p: os.close(os.open(p, os.O_RDONLY | os.O_DIRECTORY))),
    ("creat-excl", lambda p: os.close(os.open(p, os.O_CREAT | os.O_EXCL | os.O_WRONLY, 0o644))), ("mkdir", os.mkdir),
]
for _src in SEED_ENTRIES:
    for _dst in SEED_ENTRIES + ["new", "d/new", "d/sub/new"]:
        SEEDED_OPS.append(("rename(%s->%s)" % (_src, _dst), lambda c, a=_src, b=_dst: _seq(("r", os.rename, c + "/" + a, c + "/" + b))))
    for _name, _fn in SEED_ENTRY_OPS:
        if _src == "p" and _name in ("append", "read"):
            continue  # a blocking open of a FIFO with nobody at the other end waits forever (fifo-io covers its I/O)
        SEEDED_OPS.append(("%s(%s)" % (_name, _src), lambda c, a=_src, fn=_fn: _seq(("op", fn, c + "/" + a))))


def seed(dir_):
    """Creates DIR/seed/<n> for every seeded operation."""
    os.mkdir(dir_ + "/seed", 0o777)
    os.chmod(dir_ + "/seed", 0o777)
    for i, (name, _) in enumerate(SEEDED_OPS):
        seed_case("%s/seed/%d" % (dir_, i))


def on_seed(dir_):
    """Runs every seeded operation on its case under DIR/seed and records the outcome and the case tree afterwards."""
    for i, (name, fn) in enumerate(SEEDED_OPS):
        c = "%s/seed/%d" % (dir_, i)
        try:
            r = fn(c)
        except OSError as e:
            r = "raised " + ename(e)
        rec("seeded(%s)" % name, r)
        rec("seeded(%s).tree" % name, describe_tree(c))


def main():
    """Command line entry: see the module docstring."""
    if len(sys.argv) not in (2, 3) or (len(sys.argv) == 3 and sys.argv[2] not in ("--seed", "--on-seed", "--describe", "--as-user")):
        sys.stderr.write("usage: posix_matrix.py DIR [--seed|--on-seed|--describe|--as-user]\n")
        sys.exit(2)
    os.chdir(sys.argv[1])
    os.umask(0o022)
    mode = sys.argv[2] if len(sys.argv) == 3 else ""
    fams = [open_matrix, open_modes, mkdir_matrix, rename_matrix, exchange_matrix, link_matrix, symlink_matrix, chmod_matrix, chown_matrix,
            truncate_matrix, utimens_matrix, times_matrix, name_lengths, perm_dirs, perm_files, perm_owner_ops, perm_sticky,
            perm_misc, mknod_matrix, readdir_matrix, xattr_matrix, fuse_limits, fd_ops, perm_extra, sparse_matrix]
    if mode == "--as-user":
        # everything as uid/gid 1000 (DIR must be theirs): every node is created by a caller that is not the daemon
        os.chown(".", OTHER, OTHER)
        os.setgroups([])
        os.setgid(OTHER)
        os.setuid(OTHER)
        fams = [open_matrix, open_modes, mkdir_matrix, rename_matrix, link_matrix, symlink_matrix, chmod_matrix, chown_matrix,
                truncate_matrix, utimens_matrix, times_matrix, name_lengths, readdir_matrix, xattr_matrix, fd_ops, sparse_matrix]
    if mode == "--seed":
        seed(".")
        return
    if mode == "--describe":
        sys.stdout.write("tree\t" + describe_tree(".", xattrs=True) + "\n")
        return
    if mode == "--on-seed":
        on_seed(".")
        for k, v in OUT:
            sys.stdout.write("%s\t%s\n" % (k, v.replace("\n", "\\n").replace("\t", "\\t")))
        return
    only = os.environ.get("POSIX_MATRIX_ONLY", "")
    timing = {}
    for fam in fams:
        if only and fam.__name__ not in only.split(","):
            continue
        t0 = time.time()
        fam()
        timing[fam.__name__] = round(time.time() - t0, 2)
    out = sys.stdout
    for k, v in OUT:
        out.write("%s\t%s\n" % (k, v.replace("\n", "\\n").replace("\t", "\\t")))
    sys.stderr.write(json.dumps(timing) + "\n")


if __name__ == "__main__":
    main()
