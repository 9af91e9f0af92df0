/* stargzfs-spare-client MAIN ARG...: hands `stargzfs ARG...` to a spare server
 * (src/cli/spare.ts, native/spare.cc) and copies what it says (the lines a launcher shows,
 * then `ready` or `exit N`, as on the launcher's pipe in src/cli/stargzfs.sh) to stdout.
 *
 * A spare takes the request only if it runs the same bundle (MAIN, as the launcher found
 * it); one that refuses, or is taken by another launcher first, closes without a word and
 * the next is tried. Exit 0: a spare answered. Exit 75: none did, so the launcher starts
 * the server itself, as with no spares at all.
 *
 * The request: a big-endian uint32 length, then NUL-terminated strings: the protocol
 * ("stargzfs-spare/1"), MAIN, the working directory, the argument count, the arguments,
 * then the environment. C, not Node: this runs before every spare-served mount, and a
 * Node process takes a tenth of a second to start. */
#include <arpa/inet.h>
#include <dirent.h>
#include <errno.h>
#include <limits.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <unistd.h>

#define NO_SPARE 75

extern char** environ;

struct buf {
  char* data;
  size_t len, cap;
};

static void put(struct buf* b, const char* s) {
  size_t n = strlen(s) + 1;
  if (b->len + n > b->cap) {
    b->cap = (b->len + n) * 2;
    b->data = realloc(b->data, b->cap);
    if (b->data == NULL) exit(NO_SPARE);
  }
  memcpy(b->data + b->len, s, n);
  b->len += n;
}

static int write_all(int fd, const char* p, size_t n) {
  while (n > 0) {
    ssize_t w = write(fd, p, n);
    if (w < 0 && errno == EINTR) continue;
    if (w <= 0) return -1;
    p += w;
    n -= (size_t)w;
  }
  return 0;
}

/* The spares' directory, as src/cli/spare.ts chooses it. */
static int spare_dir(char* out, size_t size) {
  const char* dir = getenv("STARGZFS_SPARE_DIR");
  if (dir != NULL && dir[0] != '\0') return snprintf(out, size, "%s", dir) < (int)size ? 0 : -1;
  if (geteuid() == 0) return snprintf(out, size, "/run/stargzfs/spares") < (int)size ? 0 : -1;
  const char* run = getenv("XDG_RUNTIME_DIR");
  if (run == NULL || run[0] == '\0') return -1;
  return snprintf(out, size, "%s/stargzfs/spares", run) < (int)size ? 0 : -1;
}

/* 1: the spare took the request and all it said is on stdout; 0: try another. */
static int try_spare(const char* path, const struct buf* req) {
  struct sockaddr_un addr;
  memset(&addr, 0, sizeof addr);
  if (strlen(path) >= sizeof addr.sun_path) return 0;
  addr.sun_family = AF_UNIX;
  strcpy(addr.sun_path, path);
  int fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
  if (fd < 0) return 0;
  if (connect(fd, (struct sockaddr*)&addr, sizeof addr) != 0) {
    /* Nobody listens: a spare that was killed left its socket file. */
    if (errno == ECONNREFUSED) unlink(path);
    close(fd);
    return 0;
  }
  uint32_t be_len = htonl((uint32_t)req->len);
  if (write_all(fd, (const char*)&be_len, sizeof be_len) != 0 || write_all(fd, req->data, req->len) != 0) {
    close(fd);
    return 0;
  }
  char chunk[4096];
  size_t said = 0;
  for (;;) {
    ssize_t n = read(fd, chunk, sizeof chunk);
    if (n < 0 && errno == EINTR) continue;
    if (n <= 0) break;
    said += (size_t)n;
    if (write_all(1, chunk, (size_t)n) != 0) break;
  }
  close(fd);
  return said > 0;
}

int main(int argc, char** argv) {
  if (argc < 2) {
    fprintf(stderr, "usage: stargzfs-spare-client MAIN [ARG...]\n");
    return 2;
  }
  char dir[PATH_MAX];
  if (spare_dir(dir, sizeof dir) != 0) return NO_SPARE;
  DIR* d = opendir(dir);
  if (d == NULL) return NO_SPARE;

  char cwd[PATH_MAX];
  if (getcwd(cwd, sizeof cwd) == NULL) return NO_SPARE;
  struct buf req = {NULL, 0, 0};
  char count[16];
  snprintf(count, sizeof count, "%d", argc - 2);
  put(&req, "stargzfs-spare/1");
  put(&req, argv[1]);
  put(&req, cwd);
  put(&req, count);
  for (int i = 2; i < argc; i++) put(&req, argv[i]);
  for (char** e = environ; *e != NULL; e++) put(&req, *e);

  struct dirent* ent;
  while ((ent = readdir(d)) != NULL) {
    size_t n = strlen(ent->d_name);
    if (n < 6 || strcmp(ent->d_name + n - 5, ".sock") != 0) continue;
    char path[PATH_MAX];
    if (snprintf(path, sizeof path, "%s/%s", dir, ent->d_name) >= (int)sizeof path) continue;
    if (try_spare(path, &req)) {
      closedir(d);
      return 0;
    }
  }
  closedir(d);
  return NO_SPARE;
}
