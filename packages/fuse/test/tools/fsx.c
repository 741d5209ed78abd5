/*
 * fsx: a data-integrity exerciser for one file, in the spirit of the
 * classic fsx (written afresh for agentfs's tests). A seeded random
 * sequence of operations — pwrite, pread, mmap read, mmap write + msync,
 * ftruncate (grow and shrink), fsync, close + reopen, and optionally
 * fallocate and hole punching — runs against the file while an in-memory
 * shadow copy records what the file must contain. Every read (pread and
 * mmap) and the file size after every operation are checked against the
 * shadow, and the whole file is compared every CHECK_EVERY operations and at
 * the end. On the first difference it prints the seed, the last operations
 * and the first differing offset, and exits 1.
 *
 * usage: fsx [-S seed] [-N ops] [-l maxlen] [-o maxoplen] [-M] [-F] [-Q] [-2] [-L LINK] [-w OUT] [-v] [-X n] FILE
 *   -M  no mmap operations         -F  also fallocate / punch hole
 *   -2  keep a second descriptor open on the file for the whole run and send
 *       half of the reads, writes, mappings and truncates through it (the
 *       first one is still closed and reopened)
 *   -L LINK  with -2: make LINK a hard link to the file and open the second
 *       descriptor through it
 *   -Q  also "seqwrite": reopen the first descriptor, then write a long run
 *       (up to the rest of the file) in consecutive pwrites of 4 KiB..1 MiB,
 *       so that a daemon committing every N bytes of sequential writing
 *       (agentfs: 8 MiB) does so in the middle of the run
 *   -w OUT  at the end, write the expected contents to OUT (to compare the
 *       file with after an unmount and a new mount)
 *   -v  print every operation as it runs
 *   -X n  self-test: after operation n, overwrite one byte of the file behind
 *         the shadow's back (the run must then fail with a mismatch)
 * exit: 0 all checks passed, 1 data mismatch, 2 usage or syscall failure.
 */
#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

#define LOG_SIZE 256
#define CHECK_EVERY 250

enum op { OP_READ, OP_WRITE, OP_MAPREAD, OP_MAPWRITE, OP_TRUNCATE, OP_FSYNC, OP_REOPEN, OP_FALLOC, OP_PUNCH, OP_SEQWRITE, OP_CHECKALL, N_OPS };
static const char *op_names[N_OPS] = {"read", "write", "mapread", "mapwrite", "truncate", "fsync", "reopen", "fallocate", "punch", "seqwrite", "checkall"};

struct logent {
  long n;
  enum op op;
  long off, len, size_before, size_after;
  int second; /* went through the second descriptor */
};

static struct logent oplog[LOG_SIZE];
static long opno;
static uint64_t rng_state;
static unsigned long long seed = 1;
static long numops = 5000, maxlen = 256 * 1024, maxoplen = 64 * 1024;
static int use_mmap = 1, use_falloc = 0, use_seq = 0, verbose = 0;
static long corrupt_at = -1;
static int use_two = 0, fd2 = -1;
static const char *expect_out, *link_name;
static const char *fname;
static int fd = -1;
static unsigned char *good, *temp;
static long file_size;
static long pagesize;

static uint64_t rnd(void) {
  /* xorshift64* */
  rng_state ^= rng_state >> 12;
  rng_state ^= rng_state << 25;
  rng_state ^= rng_state >> 27;
  return rng_state * 2685821657736338717ULL;
}

static long rnd_below(long n) { return n <= 0 ? 0 : (long)(rnd() % (uint64_t)n); }

static int cur_fd = -1; /* descriptor the current operation uses */

/* Chooses the descriptor for the next operation: the second one half of the time with -2. */
static void pick_fd(void) { cur_fd = use_two && (rnd() & 1) ? fd2 : fd; }

static void log_op(enum op op, long off, long len, long before, long after) {
  struct logent *e = &oplog[opno % LOG_SIZE];
  e->second = cur_fd == fd2;
  e->n = opno;
  e->op = op;
  e->off = off;
  e->len = len;
  e->size_before = before;
  e->size_after = after;
  if (verbose) fprintf(stderr, "%ld %s off=%ld len=%ld size %ld->%ld%s\n", opno, op_names[op], off, len, before, after, e->second ? " (fd2)" : "");
}

static void dump_log(void) {
  long first = opno - LOG_SIZE + 1;
  if (first < 0) first = 0;
  fprintf(stderr, "fsx: seed %llu, last %ld operations of %ld (0x offsets in hex too):\n", seed, opno - first + 1, opno + 1);
  for (long i = first; i <= opno; i++) {
    struct logent *e = &oplog[i % LOG_SIZE];
    fprintf(stderr, "  %6ld %-9s off=%ld (0x%lx) len=%ld end=%ld size %ld->%ld%s\n", e->n, op_names[e->op], e->off, e->off, e->len, e->off + e->len, e->size_before,
            e->size_after, e->second ? " (fd2)" : "");
  }
}

static void die_sys(const char *what) {
  int err = errno;
  fprintf(stderr, "fsx: %s: %s (op %ld)\n", what, strerror(err), opno);
  dump_log();
  exit(2);
}

/* Compares `got` (len bytes read at file offset off) with the shadow; on a difference prints it and exits 1. */
static void check(const char *how, const unsigned char *got, long off, long len) {
  if (memcmp(got, good + off, (size_t)len) == 0) return;
  long i = 0;
  while (got[i] == good[off + i]) i++;
  long bad = 0, last = i;
  for (long j = i; j < len; j++)
    if (got[j] != good[off + j]) {
      bad++;
      last = j;
    }
  fprintf(stderr, "fsx: DATA MISMATCH (%s) at op %ld: first differing offset %ld (0x%lx), last %ld, %ld bytes differ in [%ld, %ld)\n", how, opno, off + i, off + i,
          off + last, bad, off, off + len);
  fprintf(stderr, "fsx: offset    expected  got\n");
  for (long j = i; j < len && j < i + 16; j++) fprintf(stderr, "fsx: %-9ld 0x%02x      0x%02x\n", off + j, good[off + j], got[j]);
  dump_log();
  exit(1);
}

static void check_size(void) {
  struct stat st;
  if (fstat(fd, &st) != 0) die_sys("fstat");
  if (st.st_size != file_size) {
    fprintf(stderr, "fsx: SIZE MISMATCH at op %ld: fstat says %ld, expected %ld\n", opno, (long)st.st_size, file_size);
    dump_log();
    exit(1);
  }
}

static void fill(long off, long len) {
  /* random bytes, never all equal to what was there before */
  for (long i = 0; i < len; i++) good[off + i] = (unsigned char)(rnd() >> 56);
}

static void do_read(long off, long len) {
  long want = off >= file_size ? 0 : (off + len > file_size ? file_size - off : len);
  log_op(OP_READ, off, len, file_size, file_size);
  ssize_t n = pread(cur_fd, temp, (size_t)len, off);
  if (n < 0) die_sys("pread");
  if (n != want) {
    fprintf(stderr, "fsx: SHORT READ at op %ld: pread(off=%ld, len=%ld) returned %zd, expected %ld (size %ld)\n", opno, off, len, n, want, file_size);
    dump_log();
    exit(1);
  }
  check("pread", temp, off, want);
}

static void do_write(long off, long len) {
  long before = file_size;
  fill(off, len);
  if (off > file_size) memset(good + file_size, 0, (size_t)(off - file_size));
  if (off + len > file_size) file_size = off + len;
  log_op(OP_WRITE, off, len, before, file_size);
  ssize_t n = pwrite(cur_fd, good + off, (size_t)len, off);
  if (n < 0) die_sys("pwrite");
  if (n != len) {
    fprintf(stderr, "fsx: SHORT WRITE at op %ld: %zd of %ld\n", opno, n, len);
    dump_log();
    exit(1);
  }
}

static void do_truncate(long size) {
  long before = file_size;
  if (size > file_size)
    memset(good + file_size, 0, (size_t)(size - file_size));
  else
    memset(good + size, 0, (size_t)(file_size - size));
  file_size = size;
  log_op(OP_TRUNCATE, 0, size, before, size);
  if (ftruncate(cur_fd, size) != 0) die_sys("ftruncate");
}

static void do_mapread(long off, long len) {
  if (file_size == 0) return;
  off %= file_size;
  if (off + len > file_size) len = file_size - off;
  log_op(OP_MAPREAD, off, len, file_size, file_size);
  long pg = off & ~(pagesize - 1);
  long maplen = len + (off - pg);
  unsigned char *p = mmap(NULL, (size_t)maplen, PROT_READ, MAP_SHARED, cur_fd, pg);
  if (p == MAP_FAILED) die_sys("mmap (read)");
  memcpy(temp, p + (off - pg), (size_t)len);
  check("mmap read", temp, off, len);
  /* the rest of the last page past EOF must read as zeros */
  long end = pg + maplen;
  long pgend = (end + pagesize - 1) & ~(pagesize - 1);
  if (end == file_size)
    for (long i = end; i < pgend; i++)
      if (p[i - pg] != 0) {
        fprintf(stderr, "fsx: NONZERO PAST EOF via mmap at op %ld: offset %ld (size %ld) holds 0x%02x\n", opno, i, file_size, p[i - pg]);
        dump_log();
        exit(1);
      }
  if (munmap(p, (size_t)maplen) != 0) die_sys("munmap");
}

static void do_mapwrite(long off, long len) {
  long before = file_size;
  if (off + len > file_size) {
    /* like fsx: extend first with ftruncate, then store through the mapping */
    if (ftruncate(cur_fd, off + len) != 0) die_sys("ftruncate (mapwrite extend)");
    memset(good + file_size, 0, (size_t)(off + len - file_size));
    file_size = off + len;
  }
  fill(off, len);
  log_op(OP_MAPWRITE, off, len, before, file_size);
  long pg = off & ~(pagesize - 1);
  long maplen = len + (off - pg);
  unsigned char *p = mmap(NULL, (size_t)maplen, PROT_READ | PROT_WRITE, MAP_SHARED, cur_fd, pg);
  if (p == MAP_FAILED) die_sys("mmap (write)");
  memcpy(p + (off - pg), good + off, (size_t)len);
  if (msync(p, (size_t)maplen, MS_SYNC) != 0) die_sys("msync");
  if (munmap(p, (size_t)maplen) != 0) die_sys("munmap");
}

static void do_reopen(void) {
  log_op(OP_REOPEN, 0, 0, file_size, file_size);
  if (close(fd) != 0) die_sys("close");
  fd = open(fname, O_RDWR);
  if (fd < 0) die_sys("reopen");
}

static void do_falloc(long off, long len, int punch) {
  long before = file_size;
  int mode = punch ? FALLOC_FL_PUNCH_HOLE | FALLOC_FL_KEEP_SIZE : 0;
  if (punch) {
    if (off >= file_size) return;
    if (off + len > file_size) len = file_size - off;
  }
  log_op(punch ? OP_PUNCH : OP_FALLOC, off, len, before, punch ? file_size : (off + len > file_size ? off + len : file_size));
  if (fallocate(cur_fd, mode, off, len) != 0) die_sys(punch ? "fallocate (punch hole)" : "fallocate");
  if (punch)
    memset(good + off, 0, (size_t)len);
  else if (off + len > file_size) {
    memset(good + file_size, 0, (size_t)(off + len - file_size));
    file_size = off + len;
  }
}

static void do_seqwrite(long off) {
  long before = file_size;
  long len = 1 + rnd_below(maxlen - off);
  if (close(fd) != 0) die_sys("close (seqwrite)");
  if ((fd = open(fname, O_RDWR)) < 0) die_sys("reopen (seqwrite)");
  if (cur_fd != fd2) cur_fd = fd;
  fill(off, len);
  if (off > file_size) memset(good + file_size, 0, (size_t)(off - file_size));
  if (off + len > file_size) file_size = off + len;
  log_op(OP_SEQWRITE, off, len, before, file_size);
  for (long done = 0; done < len;) {
    long piece = 4096L << rnd_below(9);
    if (piece > len - done) piece = len - done;
    ssize_t n = pwrite(fd, good + off + done, (size_t)piece, off + done);
    if (n < 0) die_sys("pwrite (seqwrite)");
    if (n != piece) {
      fprintf(stderr, "fsx: SHORT WRITE at op %ld: %zd of %ld\n", opno, n, piece);
      dump_log();
      exit(1);
    }
    done += n;
  }
}

static void check_all(void) {
  log_op(OP_CHECKALL, 0, file_size, file_size, file_size);
  long done = 0;
  while (done < file_size) {
    ssize_t n = pread(fd, temp + done, (size_t)(file_size - done), done);
    if (n < 0) die_sys("pread (full check)");
    if (n == 0) {
      fprintf(stderr, "fsx: EARLY EOF in full check at op %ld: offset %ld of %ld\n", opno, done, file_size);
      dump_log();
      exit(1);
    }
    done += n;
  }
  check("full-file pread", temp, 0, file_size);
  unsigned char extra;
  if (pread(fd, &extra, 1, file_size) != 0) {
    fprintf(stderr, "fsx: DATA PAST EOF at op %ld: pread at size %ld returned a byte\n", opno, file_size);
    dump_log();
    exit(1);
  }
}

int main(int argc, char **argv) {
  int c;
  while ((c = getopt(argc, argv, "S:N:l:o:MFQ2L:w:vX:")) != -1) {
    switch (c) {
      case 'S': seed = strtoull(optarg, NULL, 0); break;
      case 'N': numops = strtol(optarg, NULL, 0); break;
      case 'l': maxlen = strtol(optarg, NULL, 0); break;
      case 'o': maxoplen = strtol(optarg, NULL, 0); break;
      case 'M': use_mmap = 0; break;
      case 'F': use_falloc = 1; break;
      case 'Q': use_seq = 1; break;
      case 'v': verbose = 1; break;
      case '2': use_two = 1; break;
      case 'w': expect_out = optarg; break;
      case 'L': link_name = optarg; break;
      case 'X': corrupt_at = strtol(optarg, NULL, 0); break;
      default: fprintf(stderr, "usage: fsx [-S seed] [-N ops] [-l maxlen] [-o maxoplen] [-M] [-F] [-Q] [-2] [-L LINK] [-w OUT] [-v] [-X n] FILE\n"); return 2;
    }
  }
  if (optind != argc - 1 || maxlen <= 0 || maxoplen <= 0) {
    fprintf(stderr, "usage: fsx [-S seed] [-N ops] [-l maxlen] [-o maxoplen] [-M] [-F] [-Q] [-2] [-L LINK] [-w OUT] [-v] [-X n] FILE\n");
    return 2;
  }
  fname = argv[optind];
  if (maxoplen > maxlen) maxoplen = maxlen;
  rng_state = seed * 0x9E3779B97F4A7C15ULL + 0x2545F4914F6CDD1DULL;
  if (rng_state == 0) rng_state = 1;
  pagesize = sysconf(_SC_PAGESIZE);
  good = calloc(1, (size_t)maxlen);
  temp = calloc(1, (size_t)maxlen);
  if (!good || !temp) die_sys("calloc");
  fd = open(fname, O_RDWR | O_CREAT | O_TRUNC, 0644);
  if (fd < 0) die_sys("open");
  if (link_name && (unlink(link_name), link(fname, link_name)) != 0) die_sys("link");
  if (use_two && (fd2 = open(link_name ? link_name : fname, O_RDWR)) < 0) die_sys("open (second descriptor)");

  /* weights per operation kind */
  int weights[N_OPS] = {[OP_READ] = 20, [OP_WRITE] = 20, [OP_MAPREAD] = 10, [OP_MAPWRITE] = 10, [OP_TRUNCATE] = 8,
                        [OP_FSYNC] = 3,  [OP_REOPEN] = 3, [OP_FALLOC] = 3,   [OP_PUNCH] = 3, [OP_SEQWRITE] = 2};
  if (!use_mmap) weights[OP_MAPREAD] = weights[OP_MAPWRITE] = 0;
  if (!use_falloc) weights[OP_FALLOC] = weights[OP_PUNCH] = 0;
  if (!use_seq) weights[OP_SEQWRITE] = 0;
  int total = 0;
  for (int i = 0; i < N_OPS; i++) total += weights[i];

  long counts[N_OPS] = {0};
  for (opno = 0; opno < numops; opno++) {
    long r = rnd_below(total);
    enum op op = 0;
    while (r >= weights[op]) r -= weights[op++];
    long off = rnd_below(maxlen);
    long len = 1 + rnd_below(maxoplen);
    /* a third of the operations are page aligned, and some are tiny, to hit both paths */
    if (rnd_below(3) == 0) off &= ~(pagesize - 1);
    if (rnd_below(8) == 0) len = 1 + rnd_below(16);
    if (off + len > maxlen) len = maxlen - off;
    if (len <= 0) len = 1, off = maxlen - 1;
    pick_fd();
    switch (op) {
      case OP_READ: do_read(off, len); break;
      case OP_WRITE: do_write(off, len); break;
      case OP_MAPREAD: do_mapread(off, len); break;
      case OP_MAPWRITE: do_mapwrite(off, len); break;
      case OP_TRUNCATE: do_truncate(rnd_below(maxlen + 1)); break;
      case OP_FSYNC:
        log_op(OP_FSYNC, 0, 0, file_size, file_size);
        if (fsync(cur_fd) != 0) die_sys("fsync");
        break;
      case OP_REOPEN: do_reopen(); break;
      case OP_FALLOC: do_falloc(off, len, 0); break;
      case OP_PUNCH: do_falloc(off, len, 1); break;
      case OP_SEQWRITE: do_seqwrite(off); break;
      default: break;
    }
    counts[op]++;
    if (opno == corrupt_at && file_size > 0) {
      long at = file_size / 2;
      unsigned char b = (unsigned char)~good[at];
      if (pwrite(fd, &b, 1, at) != 1) die_sys("pwrite (self-test corruption)");
      check_all();
    }
    check_size();
    if (opno % CHECK_EVERY == CHECK_EVERY - 1) check_all();
  }
  opno--;
  check_all();
  do_reopen();
  check_all();
  if (close(fd) != 0) die_sys("close");
  if (fd2 >= 0 && close(fd2) != 0) die_sys("close (second descriptor)");
  if (expect_out) {
    FILE *out = fopen(expect_out, "wb");
    if (!out || fwrite(good, 1, (size_t)file_size, out) != (size_t)file_size || fclose(out) != 0) die_sys("writing the expected contents");
  }
  printf("fsx: seed %llu: %ld operations passed (", seed, numops);
  const char *sep = "";
  for (int i = 0; i < N_OPS; i++)
    if (counts[i]) printf("%s%s %ld", sep, op_names[i], counts[i]), sep = ", ";
  printf("), final size %ld\n", file_size);
  return 0;
}
