#!/usr/bin/env python3
"""Concurrent writers, renamers and readers in ONE directory, for agentfs's tests.

  onedir.py DIR --writers W --readers R --files F --versions V --seed S

Writer w owns the names f<w>_<k> (k < F). It publishes each of V versions
of each name, in a seeded random order, the atomic way: write the whole
content to .tmp.<w>.<k>.<v>, (sometimes fsync,) close, rename onto
f<w>_<k>. It also creates g<w>_<k> (same way) and unlinks it again later,
and moves each h<w>_<k> to h<w>_<k>.done with rename. A version's content is
self-describing: a header "<name> <version> <length>\\n" and then bytes
derived from name and version, so a reader can tell a complete version from
a partial or foreign one.

Readers list the directory over and over while the writers run and check:
  - a listing never holds a name twice;
  - every f name, h*.done name, and every name a reader has once opened
    completely stays listed in later listings (f names are only ever replaced
    by rename, never removed; h*.done only appear);
  - what a reader reads of a name is a complete version of exactly that
    name: never partial, never another file's;
  - opening a listed f or h*.done name never fails with ENOENT (a rename over
    a name never leaves it missing). These failures are listed apart, in
    "open_enoent", not in "problems": through agentfs's FUSE mount they do
    happen (libfuse 2's path-based API forgets the replaced inode's name, so
    an open that looked the name up just before the rename fails), see
    concurrency.test.ts;
  - the versions one reader reads of a name never go backwards.

At the end the directory must hold exactly every f<w>_<k> (with version V)
and every h<w>_<k>.done, nothing else (no .tmp, no g, no bare h). Prints one
JSON object {"problems": [...], "open_enoent": [...], "reads": n,
"listings": n, "renames": n}; exit 1 when there are problems.
"""
import argparse
import hashlib
import json
import os
import random
import sys


def content(name, version):
    """The bytes of `version` of `name`."""
    seed = hashlib.sha256(f"{name}:{version}".encode()).digest()
    size = int.from_bytes(seed[:4], "little") % 60000
    body = (seed * (size // 32 + 1))[:size]
    return f"{name} {version} {size}\n".encode() + body


def parse(data):
    """(name, version) if `data` is a complete version of some name, else None."""
    nl = data.find(b"\n")
    if nl < 0:
        return None
    try:
        name, version, size = data[:nl].decode().split(" ")
        version, size = int(version), int(size)
    except ValueError:
        return None
    return (name, version) if content(name, version) == data else None


def publish(d, tmpname, final, data, fsync):
    tmp = os.path.join(d, tmpname)
    fd = os.open(tmp, os.O_CREAT | os.O_EXCL | os.O_WRONLY, 0o644)
    try:
        # in a few pieces, so a reader that could see the tmp file half-written would
        for k in range(0, len(data), 20000):
            os.write(fd, data[k : k + 20000])
        if fsync:
            os.fsync(fd)
    finally:
        os.close(fd)
    os.rename(tmp, os.path.join(d, final))


def writer(d, w, files, versions, seed):
    rng = random.Random(seed * 100 + w)
    steps = [("f", k, v) for k in range(files) for v in range(1, versions + 1)]
    steps += [("g", k, 0) for k in range(files)] + [("h", k, 0) for k in range(files)]
    rng.shuffle(steps)
    # each name's versions in order, and g/h creation before their removal/move
    next_v = {k: 1 for k in range(files)}
    pending = list(steps)
    renames = 0
    made_g, made_h = set(), set()
    while pending:
        kind, k, _ = pending.pop()
        if kind == "f":
            v = next_v[k]
            next_v[k] += 1
            name = f"f{w}_{k}"
            publish(d, f".tmp.{w}.{k}.{v}", name, content(name, v), rng.random() < 0.3)
            renames += 1
        elif kind == "g":
            name = f"g{w}_{k}"
            if k in made_g:
                os.unlink(os.path.join(d, name))
            else:
                publish(d, f".tmp.g.{w}.{k}", name, content(name, 1), False)
                renames += 1
                made_g.add(k)
                pending.insert(rng.randint(0, len(pending)), ("g", k, 0))
        else:
            name = f"h{w}_{k}"
            if k in made_h:
                os.rename(os.path.join(d, name), os.path.join(d, name + ".done"))
            else:
                publish(d, f".tmp.h.{w}.{k}", name, content(name, 1), False)
                made_h.add(k)
                pending.insert(rng.randint(0, len(pending)), ("h", k, 0))
            renames += 1
    return renames


def reader(d, stop_path):
    problems, reads, listings, enoent = [], 0, 0, []
    sticky = set()  # names that must stay listed from now on
    seen_version = {}
    last_round = False
    while True:
        if os.path.exists(stop_path):
            if last_round:
                break
            last_round = True  # one more full pass after the writers finished
        names = os.listdir(d)
        listings += 1
        if len(names) != len(set(names)):
            problems.append(f"listing with duplicate names: {sorted(names)}")
        now = set(names)
        for gone in sorted(sticky - now):
            problems.append(f"{gone} vanished from a listing")
        sticky -= sticky - now  # report each once
        for n in names:
            if n.startswith(".tmp"):
                continue
            must_exist = n.startswith("f") or n.endswith(".done")
            try:
                with open(os.path.join(d, n), "rb") as f:
                    data = f.read()
            except FileNotFoundError:
                if must_exist:
                    enoent.append(n)
                continue
            except OSError as e:
                problems.append(f"{n}: {e}")
                continue
            reads += 1
            got = parse(data)
            base = n[:-5] if n.endswith(".done") else n
            if got is None or got[0] != base:
                problems.append(f"{n}: read {len(data)} bytes that are not a complete version of it: {data[:40]!r}")
                continue
            if got[1] < seen_version.get(n, 0):
                problems.append(f"{n}: version {got[1]} read after version {seen_version[n]}")
            seen_version[n] = got[1]
            if must_exist:
                sticky.add(n)
        if len(problems) > 50:
            break
    return problems, reads, listings, enoent


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("dir")
    ap.add_argument("--writers", type=int, default=3)
    ap.add_argument("--readers", type=int, default=2)
    ap.add_argument("--files", type=int, default=12)
    ap.add_argument("--versions", type=int, default=4)
    ap.add_argument("--seed", type=int, default=1)
    a = ap.parse_args()
    d = a.dir
    os.makedirs(d, exist_ok=True)
    stop = os.path.join(os.path.dirname(os.path.abspath(d)), f".onedir-stop-{os.getpid()}")
    if os.path.exists(stop):
        os.unlink(stop)
    kids = []
    for i in range(a.readers + a.writers):
        r, wfd = os.pipe()
        pid = os.fork()
        if pid == 0:
            os.close(r)
            try:
                if i < a.readers:
                    out = dict(zip(("problems", "reads", "listings", "open_enoent"), reader(d, stop)))
                else:
                    out = {"problems": [], "renames": writer(d, i - a.readers, a.files, a.versions, a.seed)}
            except BaseException as e:
                out = {"problems": [f"{'reader' if i < a.readers else 'writer'} {i}: {e!r}"]}
            os.write(wfd, json.dumps(out).encode())
            os._exit(0)
        os.close(wfd)
        kids.append((pid, r, i < a.readers))

    def collect(pid, r):
        chunks = []
        while True:
            c = os.read(r, 1 << 16)
            if not c:
                break
            chunks.append(c)
        os.close(r)
        os.waitpid(pid, 0)
        return json.loads(b"".join(chunks) or b'{"problems": ["child died"]}')

    results = [collect(pid, r) for pid, r, is_reader in kids if not is_reader]
    # writers done: let the readers make their last pass
    with open(stop, "w"):
        pass
    results += [collect(pid, r) for pid, r, is_reader in kids if is_reader]
    os.unlink(stop)
    problems = [p for res in results for p in res["problems"]]
    want = {f"f{w}_{k}" for w in range(a.writers) for k in range(a.files)} | {f"h{w}_{k}.done" for w in range(a.writers) for k in range(a.files)}
    have = set(os.listdir(d))
    for n in sorted(have - want):
        problems.append(f"left over at the end: {n}")
    for n in sorted(want - have):
        problems.append(f"missing at the end: {n}")
    for n in sorted(want & have):
        with open(os.path.join(d, n), "rb") as f:
            got = parse(f.read())
        exp = (n, a.versions) if n.startswith("f") else (n[:-5], 1)
        if got != exp:
            problems.append(f"{n}: final content is {got}, expected {exp}")
    summary = {
        "problems": problems,
        "reads": sum(r.get("reads", 0) for r in results),
        "listings": sum(r.get("listings", 0) for r in results),
        "renames": sum(r.get("renames", 0) for r in results),
        "open_enoent": [n for r in results for n in r.get("open_enoent", [])],
    }
    print(json.dumps(summary))
    sys.exit(1 if problems else 0)


if __name__ == "__main__":
    main()
