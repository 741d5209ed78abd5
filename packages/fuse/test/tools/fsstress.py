#!/usr/bin/env python3
"""fsstress-style namespace and data stress, written for agentfs's tests.

  fsstress.py run ROOT --procs N --ops K --seed S
      N worker processes at once do K seeded random operations each in the
      shared tree ROOT/t: create, write, mkdir, rename, link, unlink,
      symlink, truncate, rmdir, readdir, stat. Names come from a small pool so
      the workers collide constantly. Each worker also owns ROOT/own<i>, a
      file only it writes, whole, from time to time. Prints one JSON object:
      per-operation counts, the errnos seen, unexpected errors (anything but
      the errnos a racing namespace legitimately gives) and the sha256 each
      own<i> file must have at the end. With --progress FILE each worker
      appends one byte to FILE every 50 operations (to kill a daemon
      mid-run).

  fsstress.py check ROOT [--expect JSON]
      Checks the tree ROOT/t after a run, printing one JSON object with a
      "problems" list (exit 1 when not empty) and a "listing" (path, type,
      size, nlink, sha256) to compare across remounts:
        - every name readdir gives lstat()s, and no name appears twice;
        - a directory's st_nlink is 2 + its subdirectories;
        - a regular file's st_nlink equals the number of names found for its
          inode;
        - symlinks readlink;
        - every data block of every file is either zeros or an intact record
          that some worker wrote at exactly that offset (blocks are 64 bytes,
          written whole and aligned, so any torn, shifted or foreign byte is
          caught; a file cut by truncate may end in a prefix of a block);
        - with --expect (the run's JSON), each own<i> file has the sha256 of
          its last write.
"""
import argparse
import errno
import hashlib
import json
import os
import random
import stat
import sys

BLOCK = 64
MAGIC = b"FSST"
POOL = ["a", "b", "c", "d", "e", "f"]
# errnos that concurrent, random namespace operations legitimately produce
EXPECTED = {errno.ENOENT, errno.EEXIST, errno.ENOTDIR, errno.EISDIR, errno.ENOTEMPTY, errno.EINVAL, errno.EPERM, errno.ELOOP, errno.EXDEV}


def block(writer, seq, index):
    """The 64-byte record `writer` writes as its `seq`-th write at block `index` of a file."""
    head = MAGIC + writer.to_bytes(4, "little") + seq.to_bytes(4, "little") + index.to_bytes(8, "little")
    return head + hashlib.sha256(head).digest()[: BLOCK - len(head) - 12] + b"\n" * 12


def valid_block(data, index):
    """True when `data` (at most one block, read at block `index`) is zeros, or a prefix of an intact
    record for that index followed by zeros (truncate may cut a record and extend the file again)."""
    data = data.rstrip(b"\0")
    if not data:
        return True
    if len(data) < 20:
        return MAGIC.startswith(data[:4])  # a cut record: only its start is checkable
    if data[:4] != MAGIC or int.from_bytes(data[12:20], "little") != index:
        return False
    writer = int.from_bytes(data[4:8], "little")
    seq = int.from_bytes(data[8:12], "little")
    return block(writer, seq, index)[: len(data)] == data


def rand_path(rng, depth=3):
    """A path of 1..depth names from the pool, relative to the shared tree."""
    return "/".join(rng.choice(POOL) for _ in range(rng.randint(1, depth)))


def worker(root, wid, ops, seed, out_fd, progress=None):
    rng = random.Random(seed * 1000 + wid)
    t = os.path.join(root, "t")
    own = os.path.join(root, f"own{wid}")
    counts, errs, unexpected = {}, {}, []
    own_sha = None
    seq = 0

    def p(rel):
        return os.path.join(t, rel)

    prog_fd = os.open(progress, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o644) if progress else None
    for i in range(ops):
        if prog_fd is not None and i % 50 == 49:
            os.write(prog_fd, b".")
        kind = rng.choices(
            ["create", "write", "mkdir", "rename", "link", "unlink", "symlink", "truncate", "rmdir", "readdir", "stat", "own"],
            weights=[12, 14, 10, 12, 6, 8, 5, 6, 6, 8, 6, 3],
        )[0]
        counts[kind] = counts.get(kind, 0) + 1
        a, b = rand_path(rng), rand_path(rng)
        try:
            if kind == "create":
                fd = os.open(p(a), os.O_CREAT | os.O_EXCL | os.O_WRONLY, 0o644)
                try:
                    seq += 1
                    os.write(fd, b"".join(block(wid, seq, k) for k in range(rng.randint(0, 40))))
                finally:
                    os.close(fd)
            elif kind == "write":
                fd = os.open(p(a), os.O_WRONLY)
                try:
                    seq += 1
                    start = rng.randint(0, 80)
                    data = b"".join(block(wid, seq, start + k) for k in range(rng.randint(1, 300)))
                    if os.pwrite(fd, data, start * BLOCK) != len(data):
                        unexpected.append(f"{kind} {a}: short write")
                    if rng.random() < 0.2:
                        os.fsync(fd)
                finally:
                    os.close(fd)
            elif kind == "mkdir":
                os.mkdir(p(a))
            elif kind == "rename":
                os.rename(p(a), p(b))
            elif kind == "link":
                os.link(p(a), p(b), follow_symlinks=False)
            elif kind == "unlink":
                os.unlink(p(a))
            elif kind == "symlink":
                os.symlink(rand_path(rng) if rng.random() < 0.7 else "/nonexistent/" + a, p(a))
            elif kind == "truncate":
                os.truncate(p(a), rng.randint(0, 120 * BLOCK))
            elif kind == "rmdir":
                os.rmdir(p(a))
            elif kind == "readdir":
                for e in os.scandir(p(a) if rng.random() < 0.8 else t):
                    try:
                        e.stat(follow_symlinks=False)
                    except FileNotFoundError:
                        pass  # removed by another worker since the listing
            elif kind == "stat":
                os.lstat(p(a))
            elif kind == "own":
                seq += 1
                data = b"".join(block(wid, seq, k) for k in range(rng.randint(0, 200)))
                with open(own, "wb") as f:
                    f.write(data)
                own_sha = hashlib.sha256(data).hexdigest()
        except OSError as e:
            name = errno.errorcode.get(e.errno, str(e.errno))
            errs[name] = errs.get(name, 0) + 1
            if e.errno not in EXPECTED:
                unexpected.append(f"op {i} {kind} {a} {b}: {name} {e.strerror}")
            if e.errno in (errno.ENOTCONN, errno.ECONNABORTED):
                break  # the filesystem's daemon is gone: nothing more to do
    os.write(out_fd, json.dumps({"worker": wid, "counts": counts, "errnos": errs, "unexpected": unexpected, "own_sha": own_sha}).encode())
    os.close(out_fd)


def run(args):
    root = args.root
    os.makedirs(os.path.join(root, "t"), exist_ok=True)
    children = []
    for wid in range(args.procs):
        r, w = os.pipe()
        pid = os.fork()
        if pid == 0:
            os.close(r)
            code = 0
            try:
                worker(root, wid, args.ops, args.seed, w, args.progress)
            except BaseException as e:  # report, never hang the parent
                sys.stderr.write(f"worker {wid}: {e!r}\n")
                code = 3
            os._exit(code)
        os.close(w)
        children.append((pid, r))
    results, failed = [], []
    for pid, r in children:
        chunks = []
        while True:
            c = os.read(r, 65536)
            if not c:
                break
            chunks.append(c)
        os.close(r)
        _, status = os.waitpid(pid, 0)
        if status != 0:
            failed.append(pid)
        if chunks:
            results.append(json.loads(b"".join(chunks)))
    total = {}
    for res in results:
        for k, v in res["counts"].items():
            total[k] = total.get(k, 0) + v
    print(json.dumps({"seed": args.seed, "procs": args.procs, "ops": args.ops, "counts": total, "failed_workers": failed, "workers": results}))
    return 1 if failed else 0


def sha256_file(path):
    """Hex SHA-256 of the file at `path` (read through the filesystem under test)."""
    with open(path, "rb") as f:
        return hashlib.file_digest(f, "sha256").hexdigest()


def check(args):
    root = args.root
    t = os.path.join(root, "t")
    problems, listing = [], []
    names_of = {}  # inode -> list of paths
    nlink_of = {}
    stack = [t]
    while stack:
        d = stack.pop()
        try:
            names = os.listdir(d)
        except OSError as e:
            problems.append(f"listdir {d}: {e}")
            continue
        if len(names) != len(set(names)):
            problems.append(f"{d}: duplicate names in readdir: {sorted(names)}")
        subdirs = 0
        for n in sorted(set(names)):
            path = os.path.join(d, n)
            rel = os.path.relpath(path, root)
            try:
                st = os.lstat(path)
            except OSError as e:
                problems.append(f"readdir lists {rel} but lstat fails: {e}")
                continue
            if n.startswith(".fuse_hidden"):
                problems.append(f"{rel}: a .fuse_hidden file left after every process closed its files")
            if stat.S_ISDIR(st.st_mode):
                subdirs += 1
                stack.append(path)
                listing.append([rel, "d", 0, st.st_nlink, ""])
            elif stat.S_ISLNK(st.st_mode):
                try:
                    listing.append([rel, "l", st.st_size, st.st_nlink, os.readlink(path)])
                except OSError as e:
                    problems.append(f"readlink {rel}: {e}")
            elif stat.S_ISREG(st.st_mode):
                names_of.setdefault(st.st_ino, []).append(rel)
                nlink_of[st.st_ino] = st.st_nlink
                try:
                    with open(path, "rb") as f:
                        data = f.read()
                except OSError as e:
                    problems.append(f"read {rel}: {e}")
                    continue
                if len(data) != st.st_size:
                    problems.append(f"{rel}: read {len(data)} bytes, st_size {st.st_size}")
                for k in range(0, len(data), BLOCK):
                    if not valid_block(data[k : k + BLOCK], k // BLOCK):
                        problems.append(f"{rel}: bad data block at offset {k}: {data[k:k + BLOCK]!r}")
                        break
                listing.append([rel, "f", st.st_size, st.st_nlink, hashlib.sha256(data).hexdigest()])
            else:
                problems.append(f"{rel}: unexpected file type {oct(st.st_mode)}")
        st = os.lstat(d)
        if st.st_nlink != 2 + subdirs:
            problems.append(f"{os.path.relpath(d, root)}: st_nlink {st.st_nlink}, expected 2 + {subdirs} subdirectories")
    for ino, paths in names_of.items():
        if nlink_of[ino] != len(paths):
            problems.append(f"inode {ino}: st_nlink {nlink_of[ino]} but {len(paths)} names found: {sorted(paths)}")
        shas = {e[4] for e in listing if e[0] in paths}
        if len(shas) != 1:
            problems.append(f"inode {ino}: its names read different contents: {sorted(paths)}")
    if args.expect:
        with open(args.expect) as f:
            ran = json.load(f)
        for w in ran["workers"]:
            own = os.path.join(root, f"own{w['worker']}")
            if w["own_sha"] is None:
                continue
            try:
                got = sha256_file(own)
            except OSError as e:
                got = str(e)
            if got != w["own_sha"]:
                problems.append(f"own{w['worker']}: sha256 {got}, last write had {w['own_sha']}")
    listing.sort()
    print(json.dumps({"problems": problems, "files": len(names_of), "entries": len(listing), "listing": listing}))
    return 1 if problems else 0


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    sub = ap.add_subparsers(dest="cmd", required=True)
    r = sub.add_parser("run")
    r.add_argument("root")
    r.add_argument("--procs", type=int, default=4)
    r.add_argument("--ops", type=int, default=500)
    r.add_argument("--seed", type=int, default=1)
    r.add_argument("--progress", help="host file each worker appends a byte to every 50 operations")
    c = sub.add_parser("check")
    c.add_argument("root")
    c.add_argument("--expect")
    args = ap.parse_args()
    sys.exit(run(args) if args.cmd == "run" else check(args))


if __name__ == "__main__":
    main()
