/** Helper programs the jobs write to scratch and run as separate processes. */

/**
 * Small files: create (open+write+close), stat, readdir, read, rename,
 * unlink of N files of 1 KiB in 100 directories; prints JSON timings (ms)
 * and exits 1 when anything read back or listed is wrong.
 */
/**
 * The round-trip job: argv = [dir, calls]. Times (ms, printed) \`calls\`
 * open(O_CREAT|O_EXCL) of one existing file, after 1,000 untimed ones: on
 * FUSE each is one LOOKUP (the kernel never trusts a cached dentry for an
 * exclusive create) answered EEXIST, so it is the time of one request.
 */
export const ROUNDTRIP_PY = String.raw`
import os, sys, time
d, n = sys.argv[1], int(sys.argv[2])
p = os.path.join(d, "x")
os.close(os.open(p, os.O_CREAT | os.O_WRONLY, 0o644))
flags = os.O_CREAT | os.O_EXCL | os.O_WRONLY
def calls(k):
    for _ in range(k):
        try:
            os.close(os.open(p, flags))
        except FileExistsError:
            pass
calls(1000)
t = time.perf_counter()
calls(n)
print((time.perf_counter() - t) * 1000)
`;

export const SMALLFILES_PY = String.raw`
import os, sys, time, json
n = int(sys.argv[1]); root = sys.argv[2]
D = 100
dirs = [os.path.join(root, 'd%03d' % i) for i in range(D)]
paths = [os.path.join(dirs[i % D], 'f%06d' % i) for i in range(n)]
def data(i): return (b'%08d' % i) * 128
res = {}
t = time.perf_counter()
for d in dirs: os.mkdir(d)
for i, p in enumerate(paths):
    with open(p, 'wb') as f: f.write(data(i))
res['create'] = (time.perf_counter() - t) * 1000
t = time.perf_counter()
for p in paths:
    if os.stat(p).st_size != 1024: sys.exit('bad size ' + p)
res['stat'] = (time.perf_counter() - t) * 1000
t = time.perf_counter()
total = 0
for d in dirs: total += len(os.listdir(d))
res['readdir'] = (time.perf_counter() - t) * 1000
if total != n: sys.exit('readdir saw %d of %d' % (total, n))
t = time.perf_counter()
for i, p in enumerate(paths):
    with open(p, 'rb') as f:
        if f.read() != data(i): sys.exit('bad content ' + p)
res['read'] = (time.perf_counter() - t) * 1000
t = time.perf_counter()
for p in paths: os.rename(p, p + '.r')
res['rename'] = (time.perf_counter() - t) * 1000
t = time.perf_counter()
for p in paths: os.unlink(p + '.r')
for d in dirs: os.rmdir(d)
res['unlink'] = (time.perf_counter() - t) * 1000
if os.listdir(root): sys.exit('left behind: %r' % os.listdir(root)[:5])
print(json.dumps(res))
`;

/** Prints "<count> <sha256>" over every entry of a tree: relative path, type, mode bits, size + sha256 of files, symlink targets. */
export const TREEHASH_PY = String.raw`
import os, sys, hashlib, stat
root = sys.argv[1]
lines = []
for dp, dns, fns in os.walk(root):
    for name in dns + fns:
        p = os.path.join(dp, name); rel = os.path.relpath(p, root)
        st = os.lstat(p)
        if stat.S_ISLNK(st.st_mode): lines.append('l %s %s' % (rel, os.readlink(p)))
        elif stat.S_ISDIR(st.st_mode): lines.append('d %s %o' % (rel, stat.S_IMODE(st.st_mode)))
        else:
            h = hashlib.sha256()
            with open(p, 'rb') as f:
                for b in iter(lambda: f.read(1 << 20), b''): h.update(b)
            lines.append('f %s %o %d %s' % (rel, stat.S_IMODE(st.st_mode), st.st_size, h.hexdigest()))
lines.sort()
print(len(lines), hashlib.sha256('\n'.join(lines).encode()).hexdigest())
`;

/** A C project of `n` files plus main.c and a Makefile; returns the files and the line the binary must print. */
export function cProject(n: number): { files: Record<string, string>; expected: string } {
  const files: Record<string, string> = {};
  let expected = 0n;
  const decls: string[] = [];
  for (let i = 0; i < n; i++) {
    files[`src/u${i}.c`] = `#include "all.h"
static long mix${i}(long x) { for (int k = 0; k < ${(i % 7) + 3}; k++) x = x * 31 + ${i} + k; return x % 1000003; }
struct s${i} { int a[${(i % 5) + 1}]; double d; };
long f${i}(long x) { struct s${i} s = {{0}, 1.5}; s.a[0] = (int)x; return mix${i}(s.a[0] + (long)s.d) + ${i}; }
`;
    decls.push(`long f${i}(long x);`);
  }
  // Expected value computed the same way in BigInt (the sum fits a 64-bit long).
  for (let i = 0; i < n; i++) {
    let x = BigInt(i) + 1n;
    for (let k = 0; k < (i % 7) + 3; k++) x = x * 31n + BigInt(i) + BigInt(k);
    expected += (x % 1000003n) + BigInt(i);
  }
  files["src/all.h"] = decls.join("\n") + "\n";
  const calls = Array.from({ length: n }, (_, i) => `  sum += f${i}(${i} + 0L);`).join("\n");
  files["src/main.c"] = `#include <stdio.h>\n#include "all.h"\nint main(void) {\n  long sum = 0;\n${calls}\n  printf("%ld\\n", sum);\n  return 0;\n}\n`;
  const objs = Array.from({ length: n }, (_, i) => `obj/u${i}.o`).join(" ") + " obj/main.o";
  files["Makefile"] = `CFLAGS ?= -O2 -Wall
OBJS = ${objs}
prog: $(OBJS)
\t$(CC) -o $@ $(OBJS)
obj/%.o: src/%.c src/all.h | obj
\t$(CC) $(CFLAGS) -Isrc -c -o $@ $<
obj:
\tmkdir -p obj
`;
  return { files, expected: expected.toString() };
}

/** The sqlite3 CLI script: WAL, 50k rows in `txns` transactions, an index, a query, integrity check. */
export function sqliteScript(rows: number, txns: number): string {
  const per = Math.floor(rows / txns);
  const parts = ["PRAGMA journal_mode=WAL;", "CREATE TABLE t(id INTEGER PRIMARY KEY, k INTEGER, v TEXT);"];
  for (let b = 0; b < txns; b++) {
    parts.push(
      `BEGIN; WITH RECURSIVE c(i) AS (SELECT ${b * per + 1} UNION ALL SELECT i+1 FROM c WHERE i<${(b + 1) * per}) INSERT INTO t(k,v) SELECT (i*7919)%50000, printf('row-%d-%s', i, hex(randomblob(24))) FROM c; COMMIT;`,
    );
  }
  parts.push("CREATE INDEX tk ON t(k);");
  parts.push("SELECT 'rows', count(*) FROM t;");
  parts.push("SELECT 'range', count(*), sum(k) FROM t WHERE k BETWEEN 1000 AND 20000;");
  parts.push("PRAGMA integrity_check;");
  return parts.join("\n") + "\n";
}
