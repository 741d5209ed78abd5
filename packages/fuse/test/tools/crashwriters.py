#!/usr/bin/env python3
"""Write-heavy workload to kill a filesystem daemon under, and its verifier.

  crashwriters.py run DIR LOG --procs N --seed S --tag T
      N writer processes write files under DIR/<T>w<i>/ until the first
      error (after the daemon is killed: ENOTCONN and friends). Each file is
      written in random pieces, fsync'ed half of the time, and closed; ONLY
      after close returned is "F <path> <sha256>" appended to LOG (a host
      file outside the mount, one O_APPEND write per line). Some already
      logged files are renamed ("m <old> <new>" before the call, "M <old>
      <new>" once rename returned and an fsync(2) of the directory made it
      durable) or unlinked ("d <path>", then "D <path>" after unlink and the
      directory's fsync). As on any POSIX filesystem, a rename or unlink is
      durable only after the directory's fsync: agentfs holds namespace
      changes for up to a few ms (`agentfs mount --hold-ms`). Sizes are mostly up to
      256 KiB; a few files are 9 MiB, past the daemon's 8 MiB auto-commit.
      Prints {"files": n, "errors": [...]} (the error that ended each
      writer) and exits 0.

  crashwriters.py verify DIR LOG...
      Replays the logs and checks that every logged file still exists with
      its logged sha256, and that every unlinked or renamed-away name is
      gone. A rename or unlink that was under way at the kill ("m"/"d"
      without its "M"/"D") may have happened or not: the file is then at
      exactly one of its two names (rename), or absent or intact (unlink).
      Prints {"checked": n, "gone": n, "undecided": n, "problems": [...]};
      exit 1 when there are problems.
"""
import errno
import hashlib
import json
import os
import random
import sys


def sha256_file(path):
    """Hex SHA-256 of the file at `path` (read through the filesystem under test)."""
    with open(path, "rb") as f:
        return hashlib.file_digest(f, "sha256").hexdigest()


def fsync_dir(path):
    """fsync(2) of the directory holding `path`: makes a rename or unlink in it durable."""
    fd = os.open(os.path.dirname(path), os.O_RDONLY | os.O_DIRECTORY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def writer(d, tag, wid, seed, log_fd, out_fd):
    rng = random.Random(seed * 1000 + wid)
    mine = []  # logged paths this writer may rename or unlink
    files, err = 0, None
    try:
        wdir = os.path.join(d, f"{tag}w{wid}")
        os.makedirs(wdir, exist_ok=True)
        n = 0
        while True:
            r = rng.random()
            if r < 0.08 and mine:
                old = mine.pop(rng.randrange(len(mine)))
                new = old + "r"
                os.write(log_fd, f"m {old} {new}\n".encode())
                os.rename(old, new)
                fsync_dir(new)
                os.write(log_fd, f"M {old} {new}\n".encode())
                mine.append(new)
            elif r < 0.16 and mine:
                victim = mine.pop(rng.randrange(len(mine)))
                os.write(log_fd, f"d {victim}\n".encode())
                os.unlink(victim)
                fsync_dir(victim)
                os.write(log_fd, f"D {victim}\n".encode())
            else:
                n += 1
                path = os.path.join(wdir, f"f{n}")
                size = 9 << 20 if rng.random() < 0.03 else rng.randint(0, 256 << 10)
                data = rng.randbytes(size)
                fd = os.open(path, os.O_CREAT | os.O_EXCL | os.O_WRONLY, 0o644)
                try:
                    k = 0
                    while k < size:
                        step = rng.randint(1, 128 << 10)
                        os.write(fd, data[k : k + step])
                        k += step
                    if rng.random() < 0.5:
                        os.fsync(fd)
                finally:
                    os.close(fd)
                os.write(log_fd, f"F {path} {hashlib.sha256(data).hexdigest()}\n".encode())
                mine.append(path)
                files += 1
    except OSError as e:
        err = errno.errorcode.get(e.errno, str(e.errno))
    os.write(out_fd, json.dumps({"files": files, "error": err}).encode())


def run(argv):
    import argparse

    ap = argparse.ArgumentParser()
    ap.add_argument("dir")
    ap.add_argument("log")
    ap.add_argument("--procs", type=int, default=3)
    ap.add_argument("--seed", type=int, default=1)
    ap.add_argument("--tag", default="r")
    a = ap.parse_args(argv)
    log_fd = os.open(a.log, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o644)
    kids = []
    for wid in range(a.procs):
        r, w = os.pipe()
        pid = os.fork()
        if pid == 0:
            os.close(r)
            try:
                writer(a.dir, a.tag, wid, a.seed, log_fd, w)
            finally:
                os._exit(0)
        os.close(w)
        kids.append((pid, r))
    files, errors = 0, []
    for pid, r in kids:
        chunks = []
        while True:
            c = os.read(r, 4096)
            if not c:
                break
            chunks.append(c)
        os.waitpid(pid, 0)
        res = json.loads(b"".join(chunks) or b'{"files": 0, "error": "writer died"}')
        files += res["files"]
        errors.append(res["error"])
    print(json.dumps({"files": files, "errors": errors}))
    return 0


def verify(argv):
    d, logs = argv[0], argv[1:]
    want, gone = {}, set()
    pending = {}  # path -> the "m"/"d" line of a call the kill may have cut
    for log in logs:
        with open(log) as f:
            for line in f:
                parts = line.split()
                if not parts:
                    continue
                if parts[0] in ("m", "d"):
                    pending[parts[1]] = parts
                    continue
                pending.pop(parts[1], None)
                if parts[0] == "F":
                    want[parts[1]] = parts[2]
                    gone.discard(parts[1])
                elif parts[0] == "M":
                    want[parts[2]] = want.pop(parts[1])
                    gone.add(parts[1])
                elif parts[0] == "D":
                    want.pop(parts[1], None)
                    gone.add(parts[1])
    problems = []
    undecided = 0
    for path, parts in pending.items():
        sha = want.pop(path)
        undecided += 1
        names = [path] + parts[2:]  # rename: old and new name; unlink: the name
        present = [n for n in names if os.path.lexists(n)]
        if parts[0] == "m" and len(present) != 1:
            problems.append(f"rename {path} -> {parts[2]} cut by the kill: the file is at {len(present)} of the two names")
        for n in present:
            try:
                got = sha256_file(n)
            except OSError as e:
                got = str(e)
            if got != sha:
                problems.append(f"{n}: sha256 {got}, logged {sha} (a {'rename' if parts[0] == 'm' else 'unlink'} was under way)")
    for path, sha in sorted(want.items()):
        try:
            got = sha256_file(path)
        except OSError as e:
            problems.append(f"{path}: logged as closed, now {errno.errorcode.get(e.errno, e.errno)}")
            continue
        if got != sha:
            problems.append(f"{path}: sha256 {got}, logged {sha} (size now {os.path.getsize(path)})")
    for path in sorted(gone):
        if os.path.lexists(path):
            problems.append(f"{path}: unlinked or renamed away, but still exists")
    print(json.dumps({"checked": len(want), "gone": len(gone), "undecided": undecided, "problems": problems}))
    return 1 if problems else 0


if __name__ == "__main__":
    if len(sys.argv) < 2 or sys.argv[1] not in ("run", "verify"):
        sys.stderr.write(__doc__)
        sys.exit(2)
    sys.exit(run(sys.argv[2:]) if sys.argv[1] == "run" else verify(sys.argv[2:]))
