/* stargzfs-serve-client ARG...: hands `stargzfs ARG...` (a `mount` command line) to the
 * service on its state root (`stargzfs serve`, src/service/control.ts) and copies what it
 * says to stdout: the lines a launcher shows, then `ready`, `exit N` or `use-node`, as the
 * shell launcher (src/cli/stargzfs.sh) reads them from a server it started itself.
 *
 * Exit 0: the service answered. Exit 75: no service listens on that root (no socket, or
 * nobody behind it), so the launcher runs the mount itself.
 *
 * The root is the CLI's: `--root DIR` / `--root=DIR` if given, else /var/lib/stargzfs for
 * root, else $XDG_CACHE_HOME/stargzfs or $HOME/.cache/stargzfs (src/config.ts,
 * defaultRoot). The request is POST /v1/mounts with {"args": [...], "cwd": "..."}; the
 * service parses the arguments with the CLI's own options. C, not Node: this runs before
 * every mount a service takes, and a Node process takes a tenth of a second to start. */
#include <errno.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <unistd.h>

#define NO_SERVICE 75

struct buf {
  char* data;
  size_t len, cap;
};

static void grow(struct buf* b, size_t n) {
  if (b->len + n <= b->cap) return;
  b->cap = (b->len + n) * 2 + 256;
  b->data = realloc(b->data, b->cap);
  if (b->data == NULL) exit(NO_SERVICE);
}

static void put(struct buf* b, const char* s, size_t n) {
  grow(b, n);
  memcpy(b->data + b->len, s, n);
  b->len += n;
}

static void puts_(struct buf* b, const char* s) { put(b, s, strlen(s)); }

/* A JSON string: quotes, backslashes and control characters escaped; other bytes as they are. */
static void put_json(struct buf* b, const char* s) {
  puts_(b, "\"");
  for (const unsigned char* p = (const unsigned char*)s; *p != '\0'; p++) {
    char esc[8];
    if (*p == '"' || *p == '\\') {
      esc[0] = '\\';
      esc[1] = (char)*p;
      put(b, esc, 2);
    } else if (*p < 0x20) {
      snprintf(esc, sizeof esc, "\\u%04x", *p);
      puts_(b, esc);
    } else {
      put(b, (const char*)p, 1);
    }
  }
  puts_(b, "\"");
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

static int state_root(int argc, char** argv, char* out, size_t size) {
  for (int i = 1; i < argc; i++) {
    if (strcmp(argv[i], "--") == 0) break;
    if (strcmp(argv[i], "--root") == 0 && i + 1 < argc) return snprintf(out, size, "%s", argv[i + 1]) < (int)size ? 0 : -1;
    if (strncmp(argv[i], "--root=", 7) == 0) return snprintf(out, size, "%s", argv[i] + 7) < (int)size ? 0 : -1;
  }
  if (geteuid() == 0) return snprintf(out, size, "/var/lib/stargzfs") < (int)size ? 0 : -1;
  const char* xdg = getenv("XDG_CACHE_HOME");
  if (xdg != NULL && xdg[0] != '\0') return snprintf(out, size, "%s/stargzfs", xdg) < (int)size ? 0 : -1;
  const char* home = getenv("HOME");
  return snprintf(out, size, "%s/.cache/stargzfs", home != NULL ? home : "/tmp") < (int)size ? 0 : -1;
}

int main(int argc, char** argv) {
  char root[PATH_MAX], cwd[PATH_MAX];
  if (state_root(argc, argv, root, sizeof root) != 0 || getcwd(cwd, sizeof cwd) == NULL) return NO_SERVICE;
  struct sockaddr_un addr;
  memset(&addr, 0, sizeof addr);
  addr.sun_family = AF_UNIX;
  /* A relative root is the caller's: the service's is absolute. */
  int n = root[0] == '/' ? snprintf(addr.sun_path, sizeof addr.sun_path, "%s/serve.sock", root)
                         : snprintf(addr.sun_path, sizeof addr.sun_path, "%s/%s/serve.sock", cwd, root);
  if (n < 0 || n >= (int)sizeof addr.sun_path) return NO_SERVICE;
  int fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
  if (fd < 0) return NO_SERVICE;
  if (connect(fd, (struct sockaddr*)&addr, sizeof addr) != 0) {
    close(fd);
    return NO_SERVICE;
  }

  struct buf body = {NULL, 0, 0};
  puts_(&body, "{\"args\":[");
  for (int i = 1; i < argc; i++) {
    if (i > 1) puts_(&body, ",");
    put_json(&body, argv[i]);
  }
  puts_(&body, "],\"cwd\":");
  put_json(&body, cwd);
  puts_(&body, "}");
  char head[256];
  int h = snprintf(head, sizeof head,
                   "POST /v1/mounts HTTP/1.1\r\nHost: serve.sock\r\nAccept: text/plain\r\nContent-Type: application/json\r\n"
                   "Content-Length: %zu\r\nConnection: close\r\n\r\n",
                   body.len);
  if (write_all(fd, head, (size_t)h) != 0 || write_all(fd, body.data, body.len) != 0) {
    close(fd);
    return NO_SERVICE;
  }

  struct buf res = {NULL, 0, 0};
  char chunk[4096];
  for (;;) {
    ssize_t r = read(fd, chunk, sizeof chunk);
    if (r < 0 && errno == EINTR) continue;
    if (r <= 0) break;
    put(&res, chunk, (size_t)r);
  }
  close(fd);
  grow(&res, 1);
  res.data[res.len] = '\0';
  /* The body after the headers; a service that said nothing usable is as none. */
  char* sep = res.len > 0 ? strstr(res.data, "\r\n\r\n") : NULL;
  if (sep == NULL || strncmp(res.data, "HTTP/1.1 200", 12) != 0) return NO_SERVICE;
  char* text = sep + 4;
  if (*text == '\0') return NO_SERVICE;
  return write_all(1, text, strlen(text)) == 0 ? 0 : NO_SERVICE;
}
