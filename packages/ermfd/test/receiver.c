/* Test client for the ermfd fd-passing protocol v1 (see README.md).
 * usage: receiver SOCKET PATH FLAGS [PATH FLAGS ...]
 * Sends one request per PATH on one connection and prints one line per reply:
 *   "status=N"                                   (error: no fd)
 *   "ok size=S mode=M pos=P seek_end=E hash=H mmap_hash=H2 seals=X write=R"
 * hash is FNV-1a 64 of the bytes read with read(2) from the fd's initial offset. */
#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <unistd.h>

static uint64_t fnv(uint64_t h, const unsigned char *p, size_t n) {
  for (size_t i = 0; i < n; i++) { h ^= p[i]; h *= 1099511628211ULL; }
  return h;
}

int main(int argc, char **argv) {
  if (argc < 4 || (argc - 2) % 2 != 0) { fprintf(stderr, "usage\n"); return 2; }
  signal(SIGPIPE, SIG_IGN);
  int s = socket(AF_UNIX, SOCK_STREAM, 0);
  struct sockaddr_un a = {0};
  a.sun_family = AF_UNIX;
  strncpy(a.sun_path, argv[1], sizeof a.sun_path - 1);
  if (connect(s, (struct sockaddr *)&a, sizeof a) < 0) { perror("connect"); return 2; }
  for (int i = 2; i + 1 < argc; i += 2) {
    const char *path = argv[i];
    uint32_t len = (uint32_t)strlen(path);
    unsigned char hdr[12] = {'A', 'G', 'F', 'D', 1, (unsigned char)atoi(argv[i + 1]), 0, 0};
    memcpy(hdr + 8, &len, 4); /* little-endian host */
    if (write(s, hdr, 12) != 12 || write(s, path, len) != (ssize_t)len) { perror("write"); return 2; }
    unsigned char rep[24];
    char cbuf[CMSG_SPACE(sizeof(int))];
    struct iovec iov = {rep, sizeof rep};
    struct msghdr msg = {0};
    msg.msg_iov = &iov;
    msg.msg_iovlen = 1;
    msg.msg_control = cbuf;
    msg.msg_controllen = sizeof cbuf;
    ssize_t n = recvmsg(s, &msg, MSG_WAITALL);
    if (n != 24 || memcmp(rep, "AGFD", 4) != 0 || rep[4] != 1) { fprintf(stderr, "bad reply (%zd)\n", n); return 3; }
    int32_t status;
    uint64_t size;
    uint32_t mode;
    memcpy(&status, rep + 8, 4);
    memcpy(&size, rep + 12, 8);
    memcpy(&mode, rep + 20, 4);
    int fd = -1;
    for (struct cmsghdr *c = CMSG_FIRSTHDR(&msg); c; c = CMSG_NXTHDR(&msg, c))
      if (c->cmsg_level == SOL_SOCKET && c->cmsg_type == SCM_RIGHTS) memcpy(&fd, CMSG_DATA(c), sizeof fd);
    if (status != 0) {
      printf("status=%d fd=%s\n", status, fd >= 0 ? "yes" : "no");
      if (fd >= 0) close(fd);
      fflush(stdout);
      continue;
    }
    if (fd < 0) { fprintf(stderr, "status 0 but no fd\n"); return 4; }
    struct stat st;
    fstat(fd, &st);
    off_t pos = lseek(fd, 0, SEEK_CUR);
    uint64_t h = 0xcbf29ce484222325ULL;
    unsigned char buf[65536];
    ssize_t r;
    while ((r = read(fd, buf, sizeof buf)) > 0) h = fnv(h, buf, (size_t)r);
    off_t end = lseek(fd, 0, SEEK_END);
    uint64_t h2 = 0xcbf29ce484222325ULL;
    if (st.st_size > 0) {
      void *m = mmap(NULL, (size_t)st.st_size, PROT_READ, MAP_SHARED, fd, 0);
      if (m == MAP_FAILED) { perror("mmap"); return 5; }
      h2 = fnv(h2, m, (size_t)st.st_size);
      munmap(m, (size_t)st.st_size);
    }
    int seals = fcntl(fd, F_GET_SEALS);
    const char *w = pwrite(fd, "x", 1, 0) == 1 ? "ok" : errno == EPERM ? "EPERM" : strerror(errno);
    printf("ok size=%lld rsize=%llu mode=%o rmode=%o pos=%lld seek_end=%lld hash=%016llx mmap_hash=%016llx seals=%d write=%s\n",
           (long long)st.st_size, (unsigned long long)size, st.st_mode & 07777, mode, (long long)pos, (long long)end,
           (unsigned long long)h, (unsigned long long)h2, seals, w);
    fflush(stdout);
    close(fd);
  }
  close(s);
  return 0;
}
