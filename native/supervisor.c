/* stargzfs-supervisor CONTROL_FD -- PROGRAM ARG...: holds the /dev/fuse descriptors of the
 * mounts a Node server serves, so that the mounts outlive that server. A FUSE mount dies
 * when the last descriptor of its connection closes; while this process holds one, a
 * server killed by -9 or a crash leaves the mount waiting instead of broken, and a new
 * server started here picks it up. The same mechanism replaces a live server (upgrade)
 * without unmounting. It never does filesystem work itself, so it has little reason to die.
 *
 * The first server spawns it (detached) with CONTROL_FD, one end of an AF_UNIX
 * SOCK_SEQPACKET socketpair; each replacement (PROGRAM ARG..., our child) gets a fresh pair's
 * end as its fd 3, with STARGZFS_SUPERVISOR_FD=3 and STARGZFS_SUPERVISOR_PID set.
 * Messages are fields separated by one NUL, the verb first (native/supervisor_link.cc is
 * the server's side):
 *   HOLD\0key\0state + 1 or 2 fds  hold (or replace) the fds and opaque state of a mount -> OK
 *   STATE\0key\0state               replace the state of a held mount -> OK | ERR\0no such key
 *   DROP\0key                       the mount ended: close its fds -> OK
 *   DONE                            the server ends on purpose: release everything and exit 0
 *   UPGRADE                         start a replacement now (also SIGUSR2) -> OK
 *   READY                           a replacement has adopted everything and serves
 *   STANDBY                         a standby is loaded and waits for ADOPT (logged)
 * and to a replacement, before anything else: ADOPT\0key\0state + the key's fds for each
 * held mount, then END\0count.
 *
 * SIGTERM (systemd's stop when this is the unit's main process): passed on to the server,
 * which unmounts and says DONE; no replacement is started after it, whatever it does.
 * Under systemd (NOTIFY_SOCKET set, Type=notify): the first READY or hand-over tells it
 * READY=1 and MAINPID=this process, so the unit follows the process that outlives every
 * server, and `systemctl reload` (kill -USR2 $MAINPID) is an upgrade.
 *
 * Death: the current server's socket closing without DONE means it died (one that lingers
 * gets SIGKILL: two servers must not share a mount's queue by accident). Requests it had
 * read but not answered sit in the kernel's processing queue, so first every held
 * /dev/fuse gets FUSE_NOTIFY_RESEND (back to the pending queue; an unmounted one is
 * dropped), then a replacement starts and is sent ADOPT...END. More than 5 replacement
 * deaths in 30 s: give up, closing the fds (the mounts become dead, which the next mount
 * on the mountpoint clears), exit 1. No mounts left: exit 0.
 *
 * Standby: once the server has served for STANDBY_DELAY_MS, a second one is started and
 * waits, loaded, for its ADOPTs (STARGZFS_SUPERVISOR_STANDBY=1): a death is then a
 * hand-over to it, not a Node start-up (readers of the mounts wait a few tens of
 * milliseconds, not a few hundred). An upgrade stops it (it runs the old binary) and
 * starts a new one after.
 *
 * Upgrade: a replacement starts beside the live server; on its READY it becomes the
 * server, the old one gets SIGKILL, and once the old socket closes (its fds with it) a
 * RESEND hands what it had read to the new one. A replacement that dies before READY, or
 * that misses a mount the old server held after its ADOPTs, is dropped and the old server
 * stays in charge (a RESEND then re-queues what the dead one had read; the live server
 * may see a request again, with FUSE_UNIQUE_RESEND set, and answers it again).
 *
 * Never blocks: one poll(2) over the sockets and a signalfd; sends that would block queue. */
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <poll.h>
#include <signal.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/signalfd.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <sys/sysmacros.h>
#include <sys/types.h>
#include <sys/un.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#define MAX_MSG 65536
#define MAX_KEYS 1024
#define MAX_HELD_FDS 2
#define MAX_RECV_FDS 4
#define RESTART_LIMIT 5
#define RESTART_WINDOW_MS 30000
#define EXIT_WAIT_MS 5000
#define SPAWN_RETRY_MS 1000
#define SPARE_RETRY_MS 5000
/* A standby starts this long after a server becomes ready (the first one, a standby that
 * took over, an upgrade's replacement), not at once: its Node start-up is half a second of
 * CPU, and right after a mount or a hand-over is when the server is busiest (cold fetches,
 * a cold V8). Started at once, it made the slowest reads after a hand-over (0.3-0.8 s, up
 * to 2.5 s, on 2 cores under 32 readers); 3 s later, they stayed near the readers' own
 * (crash-survival bench). A death meanwhile costs a Node start-up, some 0.4 s of waiting. */
#define STANDBY_DELAY_MS 3000
#define SEND_RETRY_MS 20
#define RECV_BURST 64
#define SHOW_MAX 160

/* linux/fuse.h as installed predates FUSE_NOTIFY_RESEND (kernel 6.9). */
#define FUSE_NOTIFY_RESEND_CODE 7
#define FUSE_DEV_MAJOR 10
#define FUSE_DEV_MINOR 229
struct fuse_notify_header {
  uint32_t len;
  int32_t error;
  uint64_t unique;
};
_Static_assert(sizeof(struct fuse_notify_header) == 16, "struct fuse_out_header is 16 bytes");

struct held {
  char* key;
  size_t key_len;
  char* state;
  size_t state_len;
  int fds[MAX_HELD_FDS];
  int nfds;
  /* Held or re-held by someone other than the pending replacement after it was sent its
   * ADOPTs: it does not serve this mount, so making it the server would orphan it. */
  int unadopted;
};

/* A message that could not be sent at once; its fds are our own dups, so the held set can
 * change while it waits. */
struct out {
  struct out* next;
  size_t len;
  int nfds;
  int fds[MAX_HELD_FDS];
  char data[];
};

struct server {
  unsigned long id; /* poll results refer to servers by id: a slot may be reused meanwhile */
  int sock;
  int pidfd; /* signals go through it when the kernel has pidfds: no pid reuse races */
  pid_t pid; /* 0: unknown */
  int replacement; /* ours (a child): its deaths count for the crash-loop guard */
  int ready;
  int stopping; /* we killed it on purpose */
  int send_broken;
  struct out *head, *tail;
  int64_t deadline; /* old server: when to stop waiting for its socket to close */
  int64_t send_retry_at; /* queued sends wait for this time (short of memory), or -1: for POLLOUT */
};

static pid_t self;
static struct held held[MAX_KEYS];
static int nheld;
static struct server* cur;  /* the server */
static struct server* pend; /* a replacement started for an upgrade, until READY */
static struct server* old;  /* a server replaced by an upgrade, killed, until its socket closes */
static struct server* spare; /* a standby: started and loaded, waiting for ADOPT, so a death costs no start-up */
static int64_t spare_retry_at = -1;
static int standby_off; /* STARGZFS_SUPERVISOR_NO_STANDBY=1 in our environment: no standby (memory over a fast hand-over) */
static unsigned long next_id = 1;
static char** child_argv;
static char** child_env;
static char** spare_env; /* child_env and STARGZFS_SUPERVISOR_STANDBY=1 */
static struct rlimit orig_nofile;
static int64_t deaths[16];
static unsigned ndeaths;
static int finishing;
static int stop_asked; /* SIGTERM: the server was asked to stop; nobody replaces it */
static int told_systemd;
static int64_t finish_deadline = -1;
static int64_t retry_at = -1;
static int resend_unsupported_logged;
static char inbuf[MAX_MSG];
static char outbuf[MAX_MSG];

__attribute__((format(printf, 1, 2))) static void say(const char* fmt, ...) {
  int saved = errno;
  char line[2048];
  /* When, to the millisecond (UTC): a hand-over is a matter of milliseconds, and this log
   * sits beside the servers' JSON lines, which carry theirs. */
  struct timespec ts;
  struct tm tm;
  clock_gettime(CLOCK_REALTIME, &ts);
  gmtime_r(&ts.tv_sec, &tm);
  int n = snprintf(line, sizeof line, "%04d-%02d-%02dT%02d:%02d:%02d.%03ldZ stargzfs-supervisor[%ld]: ", tm.tm_year + 1900, tm.tm_mon + 1,
                   tm.tm_mday, tm.tm_hour, tm.tm_min, tm.tm_sec, ts.tv_nsec / 1000000L, (long)self);
  if (n < 0) n = 0;
  va_list ap;
  va_start(ap, fmt);
  int m = vsnprintf(line + n, sizeof line - (size_t)n, fmt, ap);
  va_end(ap);
  size_t len = (size_t)n + (m > 0 ? (size_t)m : 0);
  if (len > sizeof line - 2) len = sizeof line - 2;
  line[len++] = '\n';
  ssize_t w;
  do w = write(2, line, len);
  while (w < 0 && errno == EINTR);
  errno = saved;
}

/* Keys are mountpoints, but any bytes: one log line each, whatever they hold. */
static const char* show(const char* s, size_t n, char out[SHOW_MAX * 4 + 8]) {
  size_t o = 0;
  for (size_t i = 0; i < n; i++) {
    if (i == SHOW_MAX) {
      memcpy(out + o, "...", 3);
      o += 3;
      break;
    }
    unsigned char c = (unsigned char)s[i];
    if (c >= 0x20 && c < 0x7f && c != '\\') {
      out[o++] = (char)c;
    } else {
      static const char hex[] = "0123456789abcdef";
      out[o++] = '\\';
      out[o++] = 'x';
      out[o++] = hex[c >> 4];
      out[o++] = hex[c & 15];
    }
  }
  out[o] = '\0';
  return out;
}

static int64_t now_ms(void) {
  struct timespec t;
  clock_gettime(CLOCK_MONOTONIC, &t);
  return (int64_t)t.tv_sec * 1000 + t.tv_nsec / 1000000;
}

static void close_fds(const int* fds, int n) {
  for (int i = 0; i < n; i++)
    if (fds[i] >= 0) close(fds[i]);
}

static int pidfd_open_(pid_t pid) {
#ifdef SYS_pidfd_open
  return (int)syscall(SYS_pidfd_open, pid, 0);
#else
  (void)pid;
  errno = ENOSYS;
  return -1;
#endif
}

/* 0 when sent or already gone. */
static int kill_server(struct server* s) {
  int r;
  if (s->pidfd >= 0) {
#ifdef SYS_pidfd_send_signal
    r = (int)syscall(SYS_pidfd_send_signal, s->pidfd, SIGKILL, NULL, 0);
#else
    errno = ENOSYS;
    r = -1;
#endif
  } else if (s->pid > 0) {
    r = kill(s->pid, SIGKILL);
  } else {
    errno = ENOENT;
    return -1;
  }
  return r == 0 || errno == ESRCH ? 0 : -1;
}

/* The same open files (dups through SCM_RIGHTS are): kcmp when the kernel has it. */
static int same_files(const int* a, int na, const int* b, int nb) {
  if (na != nb) return 0;
#ifdef SYS_kcmp
  for (int i = 0; i < na; i++)
    if (syscall(SYS_kcmp, self, self, 0 /* KCMP_FILE */, a[i], b[i]) != 0) return 0;
  return 1;
#else
  return 0;
#endif
}

/* ---- the held set ---- */

static int find_key(const char* key, size_t len) {
  for (int i = 0; i < nheld; i++)
    if (held[i].key_len == len && memcmp(held[i].key, key, len) == 0) return i;
  return -1;
}

static void drop_at(int i) {
  close_fds(held[i].fds, held[i].nfds);
  free(held[i].key);
  free(held[i].state);
  held[i] = held[--nheld];
}

static void release_all(void) {
  while (nheld > 0) drop_at(nheld - 1);
}

static void clear_unadopted(void) {
  for (int i = 0; i < nheld; i++) held[i].unadopted = 0;
}

static int count_unadopted(void) {
  int n = 0;
  for (int i = 0; i < nheld; i++) n += held[i].unadopted;
  return n;
}

/* A /dev/fuse whose connection was aborted (unmounted) polls POLLERR. Other files are not
 * judged: they are not ours to interpret. */
static int fuse_conn_gone(int fd) {
  struct stat st;
  if (fstat(fd, &st) != 0 || !S_ISCHR(st.st_mode) || st.st_rdev != makedev(FUSE_DEV_MAJOR, FUSE_DEV_MINOR)) return 0;
  struct pollfd p = {fd, 0, 0};
  return poll(&p, 1, 0) == 1 && (p.revents & POLLERR) != 0;
}

static void resend_all(const char* why) {
  struct fuse_notify_header h = {sizeof h, FUSE_NOTIFY_RESEND_CODE, 0};
  int sent = 0, gone = 0;
  char kb[SHOW_MAX * 4 + 8];
  for (int i = nheld - 1; i >= 0; i--) {
    int fd = held[i].fds[0];
    if (fuse_conn_gone(fd)) {
      say("dropped %s: the mount is gone", show(held[i].key, held[i].key_len, kb));
      drop_at(i);
      gone++;
      continue;
    }
    ssize_t w;
    do w = write(fd, &h, sizeof h);
    while (w < 0 && errno == EINTR);
    if (w == (ssize_t)sizeof h) {
      sent++;
      continue;
    }
    int e = w < 0 ? errno : EIO;
    if (e == ENODEV) {
      say("dropped %s: the mount is gone", show(held[i].key, held[i].key_len, kb));
      drop_at(i);
      gone++;
    } else if (e == ENOSYS || e == EINVAL) {
      if (!resend_unsupported_logged)
        say("this kernel has no FUSE_NOTIFY_RESEND (%s): requests a dead server had read stay unanswered", strerror(e));
      resend_unsupported_logged = 1;
    } else {
      say("FUSE_NOTIFY_RESEND on %s: %s", show(held[i].key, held[i].key_len, kb), strerror(e));
    }
  }
  say("%s: FUSE_NOTIFY_RESEND on %d mount(s), %d gone, %d held", why, sent, gone, nheld);
}

/* ---- sending ---- */

static int send_now(int sock, const char* data, size_t len, const int* fds, int nfds) {
  struct iovec iov = {(void*)data, len};
  struct msghdr m;
  memset(&m, 0, sizeof m);
  m.msg_iov = &iov;
  m.msg_iovlen = 1;
  union {
    struct cmsghdr h;
    char b[CMSG_SPACE(sizeof(int) * MAX_HELD_FDS)];
  } ctl;
  if (nfds > 0) {
    memset(&ctl, 0, sizeof ctl);
    m.msg_control = ctl.b;
    m.msg_controllen = CMSG_SPACE(sizeof(int) * (size_t)nfds);
    struct cmsghdr* c = CMSG_FIRSTHDR(&m);
    c->cmsg_level = SOL_SOCKET;
    c->cmsg_type = SCM_RIGHTS;
    c->cmsg_len = CMSG_LEN(sizeof(int) * (size_t)nfds);
    memcpy(CMSG_DATA(c), fds, sizeof(int) * (size_t)nfds);
  }
  for (;;) {
    if (sendmsg(sock, &m, MSG_DONTWAIT | MSG_NOSIGNAL) >= 0) return 0;
    if (errno != EINTR) return errno;
  }
}

static void drop_outbox(struct server* s) {
  while (s->head != NULL) {
    struct out* o = s->head;
    s->head = o->next;
    close_fds(o->fds, o->nfds);
    free(o);
  }
  s->tail = NULL;
}

/* The peer is gone or broken: its socket's EOF, read after what it sent, says the rest. */
static void send_failed(struct server* s, int e) {
  say("cannot send to server pid %ld: %s", (long)s->pid, strerror(e));
  s->send_broken = 1;
  drop_outbox(s);
}

/* Short of memory, or of the fds a user may have in flight (ETOOMANYREFS, until the peer
 * reads its ADOPTs): POLLOUT would fire at once, so these wait on a timer instead. */
static int short_of_memory(int e) { return e == ENOBUFS || e == ENOMEM || e == ETOOMANYREFS; }

static int would_block(struct server* s, int e) {
  if (e == EAGAIN || e == EWOULDBLOCK) {
    s->send_retry_at = -1;
    return 1;
  }
  if (short_of_memory(e)) {
    s->send_retry_at = now_ms() + SEND_RETRY_MS;
    return 1;
  }
  return 0;
}

/* 0: sent or queued. */
static int send_msg(struct server* s, const char* data, size_t len, const int* fds, int nfds) {
  if (s->send_broken) return -1;
  if (s->head == NULL) {
    int e = send_now(s->sock, data, len, fds, nfds);
    if (e == 0) return 0;
    if (!would_block(s, e)) {
      send_failed(s, e);
      return -1;
    }
  }
  struct out* o = malloc(sizeof *o + len);
  if (o == NULL) {
    say("out of memory queueing a message to server pid %ld", (long)s->pid);
    return -1;
  }
  o->next = NULL;
  o->len = len;
  o->nfds = 0;
  memcpy(o->data, data, len);
  for (int i = 0; i < nfds; i++) {
    int d = fcntl(fds[i], F_DUPFD_CLOEXEC, 3);
    if (d < 0) {
      say("cannot queue a message to server pid %ld: dup: %s", (long)s->pid, strerror(errno));
      close_fds(o->fds, o->nfds);
      free(o);
      return -1;
    }
    o->fds[o->nfds++] = d;
  }
  if (s->tail != NULL) s->tail->next = o;
  else s->head = o;
  s->tail = o;
  return 0;
}

static void flush(struct server* s) {
  while (s->head != NULL) {
    struct out* o = s->head;
    int e = send_now(s->sock, o->data, o->len, o->fds, o->nfds);
    if (would_block(s, e)) return;
    if (e != 0) {
      send_failed(s, e);
      return;
    }
    s->head = o->next;
    if (s->head == NULL) s->tail = NULL;
    close_fds(o->fds, o->nfds);
    free(o);
  }
}

static void reply(struct server* s, const char* text) {
  size_t n = strlen(text);
  char m[128];
  /* "ERR:why" goes out as ERR\0why. */
  if (n >= sizeof m) n = sizeof m - 1;
  memcpy(m, text, n);
  if (n > 3 && memcmp(m, "ERR:", 4) == 0) m[3] = '\0';
  send_msg(s, m, n, NULL, 0);
}

/* ---- servers ---- */

static struct server* new_server(int sock, pid_t pid, int replacement) {
  struct server* s = calloc(1, sizeof *s);
  if (s == NULL) return NULL;
  s->id = next_id++;
  s->sock = sock;
  s->pid = pid;
  s->replacement = replacement;
  s->pidfd = -1;
  s->deadline = -1;
  s->send_retry_at = -1;
  if (pid > 0) {
    s->pidfd = pidfd_open_(pid);
    if (s->pidfd < 0 && errno != ENOSYS) say("pidfd_open(%ld): %s; signals go by pid", (long)pid, strerror(errno));
  }
  return s;
}

static void free_server(struct server* s) {
  drop_outbox(s);
  if (s->sock >= 0) close(s->sock);
  if (s->pidfd >= 0) close(s->pidfd);
  free(s);
}

static struct server* find_server(unsigned long id) {
  if (cur != NULL && cur->id == id) return cur;
  if (pend != NULL && pend->id == id) return pend;
  if (old != NULL && old->id == id) return old;
  if (spare != NULL && spare->id == id) return spare;
  return NULL;
}

static void note_death(void) { deaths[ndeaths++ % (sizeof deaths / sizeof deaths[0])] = now_ms(); }

static int recent_deaths(void) {
  int64_t now = now_ms();
  unsigned valid = ndeaths < sizeof deaths / sizeof deaths[0] ? ndeaths : (unsigned)(sizeof deaths / sizeof deaths[0]);
  int n = 0;
  for (unsigned i = 0; i < valid; i++)
    if (now - deaths[i] < RESTART_WINDOW_MS) n++;
  return n;
}

static void reap(void) {
  for (;;) {
    int st;
    pid_t p = waitpid(-1, &st, WNOHANG);
    if (p < 0 && errno == EINTR) continue;
    if (p <= 0) return;
    if (WIFEXITED(st)) say("server pid %ld exited with status %d", (long)p, WEXITSTATUS(st));
    else if (WIFSIGNALED(st)) say("server pid %ld killed by signal %d (%s)", (long)p, WTERMSIG(st), strsignal(WTERMSIG(st)));
  }
}

__attribute__((noreturn)) static void leave(int code) {
  reap();
  say("exit %d", code);
  exit(code);
}

__attribute__((noreturn)) static void child_exec(int sock, char** env) {
  self = getpid();
  sigset_t none;
  sigemptyset(&none);
  sigprocmask(SIG_SETMASK, &none, NULL);
  signal(SIGPIPE, SIG_DFL);
  signal(SIGINT, SIG_DFL);
  signal(SIGHUP, SIG_DFL);
  if (sock == 3) {
    int fl = fcntl(3, F_GETFD);
    if (fl < 0 || fcntl(3, F_SETFD, fl & ~FD_CLOEXEC) != 0) {
      say("fcntl of fd 3 in the new server: %s", strerror(errno));
      _exit(127);
    }
  } else if (dup2(sock, 3) != 3) {
    say("dup2 to fd 3 in the new server: %s", strerror(errno));
    _exit(127);
  }
  setrlimit(RLIMIT_NOFILE, &orig_nofile);
  if (strchr(child_argv[0], '/') != NULL) execve(child_argv[0], child_argv, env);
  else execvpe(child_argv[0], child_argv, env);
  say("cannot run %s: %s", child_argv[0], strerror(errno));
  _exit(127);
}

/* A new server process, told nothing yet; NULL if it could not start. */
/* A server that starts beside a live one (a standby, an upgrade's replacement) starts at
 * this niceness, so that its Node start-up does not take the CPU from the live server's
 * readers; it takes its normal priority back once it is handed the mounts. */
#define BACKGROUND_NICE 10

static struct server* start_process(int standby, int background) {
  int sv[2];
  if (socketpair(AF_UNIX, SOCK_SEQPACKET | SOCK_CLOEXEC, 0, sv) != 0) {
    say("socketpair: %s", strerror(errno));
    return NULL;
  }
  pid_t pid = fork();
  if (pid < 0) {
    say("fork: %s", strerror(errno));
    close(sv[0]);
    close(sv[1]);
    return NULL;
  }
  if (pid == 0) {
    if (background && setpriority(PRIO_PROCESS, 0, BACKGROUND_NICE) != 0) say("setpriority: %s", strerror(errno));
    child_exec(sv[1], standby ? spare_env : child_env);
  }
  close(sv[1]);
  struct server* s = new_server(sv[0], pid, 1);
  if (s == NULL) {
    say("out of memory: stopping the server pid %ld just started", (long)pid);
    kill(pid, SIGKILL); /* our unreaped child: the pid cannot have been reused */
    close(sv[0]);
    return NULL;
  }
  return s;
}

/* Sends a server its ADOPTs and END; a server missing a mount is stopped (its death is handled as any other). */
static void hand_over(struct server* s) {
  int failed = 0;
  for (int i = 0; i < nheld && !failed; i++) {
    struct held* h = &held[i];
    size_t n = 0;
    memcpy(outbuf, "ADOPT", 6); /* with its NUL */
    n = 6;
    memcpy(outbuf + n, h->key, h->key_len);
    n += h->key_len;
    outbuf[n++] = '\0';
    memcpy(outbuf + n, h->state, h->state_len);
    n += h->state_len;
    failed = send_msg(s, outbuf, n, h->fds, h->nfds) != 0;
  }
  if (!failed) {
    memcpy(outbuf, "END", 4);
    int n = snprintf(outbuf + 4, sizeof outbuf - 4, "%d", nheld);
    failed = send_msg(s, outbuf, 4 + (size_t)n, NULL, 0) != 0;
  }
  if (failed) {
    say("could not hand server pid %ld its mounts; stopping it", (long)s->pid);
    kill_server(s);
  }
}

/* A new server, sent its ADOPTs and END; NULL if it could not start. */
static struct server* spawn(int background) {
  struct server* s = start_process(0, background);
  if (s == NULL) return NULL;
  say("started server pid %ld, handing it %d mount(s)", (long)s->pid, nheld);
  hand_over(s);
  return s;
}

static void stop_spare(const char* why) {
  if (spare == NULL) return;
  say("stopping standby server pid %ld: %s", (long)spare->pid, why);
  spare->stopping = 1;
  kill_server(spare);
  free_server(spare);
  spare = NULL;
}

/* A standby once the server serves: a death then costs a hand-over, not a Node start-up. */
static void ensure_spare(void) {
  if (standby_off || stop_asked || spare != NULL || finishing || cur == NULL || !cur->ready || pend != NULL || old != NULL || nheld == 0) return;
  if (spare_retry_at >= 0 && now_ms() < spare_retry_at) return;
  spare_retry_at = -1;
  spare = start_process(1, 1);
  if (spare != NULL) say("standby server pid %ld started", (long)spare->pid);
  else spare_retry_at = now_ms() + SPARE_RETRY_MS;
}

__attribute__((noreturn)) static void give_up(int n) {
  say("giving up: %d restarts in 30 s; releasing %d mount(s)", n, nheld);
  release_all();
  leave(1);
}

static void restart(void) {
  int n = recent_deaths();
  if (n > RESTART_LIMIT) give_up(n);
  say("restarting the server (%d mount(s) held)", nheld);
  cur = spawn(0);
  if (cur == NULL) {
    note_death();
    retry_at = now_ms() + SPAWN_RETRY_MS;
  }
}

static void start_upgrade(const char* by) {
  if (stop_asked) {
    say("upgrade (%s) ignored: stopping", by);
    return;
  }
  if (finishing || cur == NULL) {
    say("upgrade (%s) ignored: no server running", by);
    return;
  }
  if (pend != NULL || old != NULL) {
    say("upgrade (%s) ignored: one is already running", by);
    return;
  }
  int n = recent_deaths();
  if (n > RESTART_LIMIT) {
    say("upgrade (%s) refused: %d servers died in the last 30 s", by, n);
    return;
  }
  say("upgrade (%s): starting a replacement for server pid %ld", by, (long)cur->pid);
  /* The standby runs the old binary. */
  stop_spare("an upgrade starts a new binary");
  clear_unadopted();
  pend = spawn(1);
  if (pend == NULL) say("upgrade failed: no replacement could start");
}

/* Under systemd (Type=notify, NotifyAccess=all): the unit is up, and its main process is
 * this one, which outlives every server; told once. */
static void tell_systemd(void) {
  const char* path = getenv("NOTIFY_SOCKET");
  if (told_systemd || path == NULL || path[0] == '\0') return;
  told_systemd = 1;
  struct sockaddr_un a;
  memset(&a, 0, sizeof a);
  a.sun_family = AF_UNIX;
  size_t n = strlen(path);
  if (n >= sizeof a.sun_path) {
    say("NOTIFY_SOCKET is longer than a socket path; systemd not told");
    return;
  }
  memcpy(a.sun_path, path, n);
  if (path[0] == '@') a.sun_path[0] = '\0'; /* an abstract socket */
  char msg[64];
  int m = snprintf(msg, sizeof msg, "READY=1\nMAINPID=%ld", (long)getpid());
  int fd = socket(AF_UNIX, SOCK_DGRAM | SOCK_CLOEXEC, 0);
  if (fd < 0 || sendto(fd, msg, (size_t)m, MSG_NOSIGNAL, (struct sockaddr*)&a, (socklen_t)(offsetof(struct sockaddr_un, sun_path) + n)) < 0)
    say("telling systemd READY=1 and MAINPID: %s", strerror(errno));
  else
    say("told systemd: READY=1, MAINPID=%ld (this supervisor)", (long)getpid());
  if (fd >= 0) close(fd);
}

/* SIGTERM: the server stops cleanly (unmounts, DONE) and is not replaced; with no server
 * running, the mounts are let go now. Again: passed on again. */
static void on_term(void) {
  int again = stop_asked;
  stop_asked = 1;
  if (!again) {
    stop_spare("stopping (SIGTERM)");
    if (pend != NULL && !pend->stopping) {
      pend->stopping = 1;
      kill_server(pend);
    }
  }
  if (cur == NULL || cur->pid <= 0) {
    say("SIGTERM: no server to stop; releasing %d mount(s)", nheld);
    release_all();
    leave(0);
  }
  say("SIGTERM: asking server pid %ld to unmount and stop; nobody replaces it", (long)cur->pid);
  if (kill(cur->pid, SIGTERM) != 0) say("SIGTERM to server pid %ld: %s", (long)cur->pid, strerror(errno));
}

static void on_ready(struct server* s) {
  if (s == cur) {
    tell_systemd();
    if (!s->ready) {
      say("server pid %ld is ready", (long)s->pid);
      spare_retry_at = now_ms() + STANDBY_DELAY_MS;
    }
    s->ready = 1;
    return;
  }
  if (s != pend || s->stopping) {
    say("READY from server pid %ld ignored", (long)s->pid);
    return;
  }
  int unadopted = count_unadopted();
  if (unadopted > 0) {
    say("upgrade failed: %d mount(s) came or changed during the upgrade and replacement pid %ld does not hold them; stopping it",
        unadopted, (long)s->pid);
    s->stopping = 1;
    if (kill_server(s) != 0) say("cannot stop server pid %ld: %s", (long)s->pid, strerror(errno));
    clear_unadopted();
    return;
  }
  struct server* o = cur;
  cur = s;
  pend = NULL;
  s->ready = 1;
  spare_retry_at = now_ms() + STANDBY_DELAY_MS;
  clear_unadopted();
  if (o == NULL) return; /* cannot be: a dead server's pending replacement takes over at once */
  tell_systemd();
  say("upgrade: server pid %ld is ready and takes over; stopping old server pid %ld", (long)s->pid, (long)o->pid);
  o->stopping = 1;
  if (kill_server(o) != 0) {
    /* Still alive, so still answering what it read: no RESEND; it just loses its supervisor. */
    say("cannot stop old server pid %ld: %s; closing its socket", (long)o->pid, o->pid > 0 ? strerror(errno) : "pid unknown");
    free_server(o);
    return;
  }
  o->deadline = now_ms() + EXIT_WAIT_MS;
  old = o;
}

static void server_gone(struct server* s) {
  if (s == spare) {
    say("standby server pid %ld died%s", (long)s->pid, s->stopping ? "" : "; another in 5 s");
    spare = NULL;
    if (!s->stopping) note_death();
    kill_server(s);
    free_server(s);
    spare_retry_at = now_ms() + SPARE_RETRY_MS;
    return;
  }
  if (s == old) {
    say("old server pid %ld is gone", (long)s->pid);
    old = NULL;
    free_server(s);
    resend_all("upgrade done");
    return;
  }
  if (s == pend) {
    pend = NULL;
    if (s->stopping) {
      say("replacement pid %ld stopped", (long)s->pid);
    } else {
      say("upgrade failed: replacement pid %ld died before READY; server pid %ld stays", (long)s->pid,
          cur != NULL ? (long)cur->pid : 0L);
      note_death();
    }
    kill_server(s);
    free_server(s);
    clear_unadopted();
    /* It may have read requests before it died; the live server answers them again. */
    resend_all("replacement gone");
    return;
  }
  if (s != cur) return;
  cur = NULL;
  if (finishing) {
    say("server pid %ld closed its socket after DONE", (long)s->pid);
    free_server(s);
    leave(0);
  }
  if (stop_asked) {
    say("server pid %ld ended after SIGTERM without DONE; releasing %d mount(s)", (long)s->pid, nheld);
    kill_server(s);
    free_server(s);
    release_all();
    leave(0);
  }
  say("server pid %ld died (its socket closed without DONE)%s", (long)s->pid, s->ready ? "" : " before READY");
  /* Closing the socket is dying, by the protocol: one that lingers must not serve beside its replacement. */
  kill_server(s);
  if (s->replacement) note_death();
  free_server(s);
  resend_all("server died");
  if (pend != NULL && !pend->stopping) {
    if (count_unadopted() == 0) {
      say("replacement pid %ld (started for an upgrade) takes over", (long)pend->pid);
      cur = pend;
      pend = NULL;
      return;
    }
    say("replacement pid %ld lacks mounts that came during the upgrade; stopping it", (long)pend->pid);
    pend->stopping = 1;
    kill_server(pend);
    clear_unadopted();
  }
  if (nheld == 0) {
    say("no mounts held: nothing to supervise");
    leave(0);
  }
  if (spare != NULL) {
    cur = spare;
    spare = NULL;
    say("standby server pid %ld takes over %d mount(s)", (long)cur->pid, nheld);
    hand_over(cur);
    return;
  }
  restart();
}

/* ---- messages ---- */

static int is_verb(const char* v, size_t n, const char* want) { return strlen(want) == n && memcmp(v, want, n) == 0; }

static void handle(struct server* s, const char* m, size_t n, int* fds, int nfds, int flags) {
  char kb[SHOW_MAX * 4 + 8];
  const char* z = memchr(m, '\0', n);
  size_t vlen = z != NULL ? (size_t)(z - m) : n;
  const char* rest = z != NULL ? z + 1 : m + n;
  size_t rlen = n - (size_t)(rest - m);
  const char* z2 = rlen > 0 ? memchr(rest, '\0', rlen) : NULL;
  size_t klen = z2 != NULL ? (size_t)(z2 - rest) : rlen;
  const char* tail = z2 != NULL ? z2 + 1 : rest + rlen;
  size_t tlen = rlen - (size_t)(tail - rest);
  int hold = is_verb(m, vlen, "HOLD");

  if (flags & (MSG_TRUNC | MSG_CTRUNC)) {
    say("message from server pid %ld %s", (long)s->pid, flags & MSG_TRUNC ? "longer than 64 KiB" : "with too many fds");
    close_fds(fds, nfds);
    reply(s, flags & MSG_TRUNC ? "ERR:message too long" : "ERR:too many fds");
    return;
  }
  if (nfds > 0 && !hold) {
    say("closed %d unexpected fd(s) sent with %s", nfds, show(m, vlen, kb));
    close_fds(fds, nfds);
    nfds = 0;
  }
  if (finishing) {
    close_fds(fds, nfds);
    reply(s, "ERR:exiting");
    return;
  }

  if (hold) {
    const char* err = NULL;
    int i = -1;
    if (klen == 0) err = "ERR:empty key";
    else if (nfds < 1 || nfds > MAX_HELD_FDS) err = "ERR:HOLD takes 1 or 2 fds";
    else if (6 + klen + 1 + tlen > MAX_MSG) err = "ERR:message too long"; /* its ADOPT must fit */
    else if ((i = find_key(rest, klen)) < 0 && nheld == MAX_KEYS) err = "ERR:too many keys";
    char* state = NULL;
    char* key = NULL;
    if (err == NULL) {
      state = malloc(tlen > 0 ? tlen : 1);
      key = i < 0 ? malloc(klen) : NULL;
      if (state == NULL || (i < 0 && key == NULL)) {
        free(state);
        free(key);
        err = "ERR:out of memory";
      }
    }
    if (err != NULL) {
      say("HOLD %s from server pid %ld refused: %s", show(rest, klen, kb), (long)s->pid, err + 4);
      close_fds(fds, nfds);
      reply(s, err);
      return;
    }
    memcpy(state, tail, tlen);
    int during_upgrade = pend != NULL && !pend->stopping;
    if (i < 0) {
      i = nheld++;
      memcpy(key, rest, klen);
      held[i].key = key;
      held[i].key_len = klen;
      held[i].unadopted = during_upgrade && s != pend;
      say("held %s (%d fd(s), %zu bytes of state) for server pid %ld", show(rest, klen, kb), nfds, tlen, (long)s->pid);
    } else {
      if (during_upgrade && s != pend && !same_files(held[i].fds, held[i].nfds, fds, nfds)) held[i].unadopted = 1;
      if (s == pend) held[i].unadopted = 0;
      close_fds(held[i].fds, held[i].nfds);
      free(held[i].state);
      say("held %s again (%d fd(s), %zu bytes of state) for server pid %ld", show(rest, klen, kb), nfds, tlen, (long)s->pid);
    }
    held[i].state = state;
    held[i].state_len = tlen;
    memcpy(held[i].fds, fds, sizeof(int) * (size_t)nfds);
    held[i].nfds = nfds;
    reply(s, "OK");
  } else if (is_verb(m, vlen, "STATE")) {
    int i = klen > 0 ? find_key(rest, klen) : -1;
    if (i < 0) {
      reply(s, "ERR:no such key");
      return;
    }
    char* state = malloc(tlen > 0 ? tlen : 1);
    if (state == NULL) {
      say("STATE %s: out of memory", show(rest, klen, kb));
      reply(s, "ERR:out of memory");
      return;
    }
    memcpy(state, tail, tlen);
    free(held[i].state);
    held[i].state = state;
    held[i].state_len = tlen;
    reply(s, "OK");
  } else if (is_verb(m, vlen, "DROP")) {
    int i = klen > 0 ? find_key(rest, klen) : -1;
    if (i >= 0) {
      drop_at(i);
      say("dropped %s for server pid %ld", show(rest, klen, kb), (long)s->pid);
    } else {
      say("DROP %s from server pid %ld: not held", show(rest, klen, kb), (long)s->pid);
    }
    reply(s, "OK");
  } else if (is_verb(m, vlen, "DONE")) {
    if (s != cur) {
      say("DONE from server pid %ld ignored: it is not the current server", (long)s->pid);
      return;
    }
    say("server pid %ld is done: releasing %d mount(s)", (long)s->pid, nheld);
    release_all();
    stop_spare("the server is done");
    if (pend != NULL) {
      kill_server(pend);
      free_server(pend);
      pend = NULL;
    }
    if (old != NULL) {
      free_server(old);
      old = NULL;
    }
    finishing = 1;
    finish_deadline = now_ms() + EXIT_WAIT_MS;
  } else if (is_verb(m, vlen, "UPGRADE")) {
    reply(s, "OK");
    if (s != cur) say("UPGRADE from server pid %ld ignored: it is not the current server", (long)s->pid);
    else start_upgrade("requested");
  } else if (is_verb(m, vlen, "READY")) {
    on_ready(s);
  } else if (is_verb(m, vlen, "STANDBY")) {
    if (s == spare) say("standby server pid %ld is loaded and waits", (long)s->pid);
    else say("STANDBY from server pid %ld ignored: it is not the standby", (long)s->pid);
  } else {
    say("unknown verb %s from server pid %ld", show(m, vlen, kb), (long)s->pid);
    reply(s, "ERR:unknown verb");
  }
}

static int peer_closed(int sock) {
  struct pollfd p = {sock, POLLIN, 0};
  return poll(&p, 1, 0) == 1 && (p.revents & (POLLHUP | POLLERR)) != 0;
}

/* 1: a message was handled (or worth trying again), 0: none waiting, -1: the server is gone. */
static int receive(struct server* s) {
  struct iovec iov = {inbuf, sizeof inbuf};
  union {
    struct cmsghdr h;
    char b[CMSG_SPACE(sizeof(int) * MAX_RECV_FDS)];
  } ctl;
  struct msghdr m;
  memset(&m, 0, sizeof m);
  m.msg_iov = &iov;
  m.msg_iovlen = 1;
  m.msg_control = ctl.b;
  m.msg_controllen = sizeof ctl.b;
  ssize_t n = recvmsg(s->sock, &m, MSG_DONTWAIT | MSG_CMSG_CLOEXEC);
  if (n < 0) {
    if (errno == EINTR) return 1;
    if (errno == EAGAIN || errno == EWOULDBLOCK) return 0;
    /* ECONNRESET: the peer died with our replies unread; what it sent before still follows. */
    if (errno == ECONNRESET) return 1;
    say("recvmsg from server pid %ld: %s", (long)s->pid, strerror(errno));
    server_gone(s);
    return -1;
  }
  int fds[MAX_RECV_FDS];
  int nfds = 0;
  for (struct cmsghdr* c = CMSG_FIRSTHDR(&m); c != NULL; c = CMSG_NXTHDR(&m, c)) {
    if (c->cmsg_level != SOL_SOCKET || c->cmsg_type != SCM_RIGHTS) continue;
    size_t count = (c->cmsg_len - CMSG_LEN(0)) / sizeof(int);
    for (size_t i = 0; i < count; i++) {
      int fd;
      memcpy(&fd, CMSG_DATA(c) + i * sizeof(int), sizeof fd);
      if (nfds < MAX_RECV_FDS) fds[nfds++] = fd;
      else close(fd);
    }
  }
  if (n == 0 && nfds == 0 && !(m.msg_flags & (MSG_TRUNC | MSG_CTRUNC))) {
    if (peer_closed(s->sock)) {
      server_gone(s);
      return -1;
    }
    say("empty message from server pid %ld ignored", (long)s->pid);
    return 1;
  }
  handle(s, inbuf, (size_t)n, fds, nfds, m.msg_flags);
  return 1;
}

static void service(struct server* s, short revents) {
  unsigned long id = s->id;
  if (revents & POLLNVAL) {
    say("socket of server pid %ld is not open", (long)s->pid);
    server_gone(s);
    return;
  }
  if (revents & POLLOUT) flush(s);
  if (!(revents & (POLLIN | POLLHUP | POLLERR))) return;
  for (int k = 0; k < RECV_BURST; k++) {
    int r = receive(s);
    if (find_server(id) != s || r <= 0) return;
  }
}

static void read_signals(int sigfd) {
  struct signalfd_siginfo si;
  for (;;) {
    ssize_t n = read(sigfd, &si, sizeof si);
    if (n < 0 && errno == EINTR) continue;
    if (n != (ssize_t)sizeof si) return;
    if (si.ssi_signo == SIGUSR2) start_upgrade("SIGUSR2");
    else if (si.ssi_signo == SIGTERM) on_term();
    else if (si.ssi_signo == SIGCHLD) reap();
  }
}

/* ---- start-up ---- */

/* Inherited fds would leak into every replacement server. */
static void cloexec_inherited(void) {
#ifdef SYS_close_range
  if (syscall(SYS_close_range, 3U, ~0U, 4U /* CLOSE_RANGE_CLOEXEC */) == 0) return;
#endif
  DIR* d = opendir("/proc/self/fd");
  if (d != NULL) {
    int dfd = dirfd(d);
    struct dirent* e;
    while ((e = readdir(d)) != NULL) {
      int fd = atoi(e->d_name);
      if (fd > 2 && fd != dfd) fcntl(fd, F_SETFD, fcntl(fd, F_GETFD) | FD_CLOEXEC);
    }
    closedir(d);
    return;
  }
  long max = sysconf(_SC_OPEN_MAX);
  if (max < 0 || max > 65536) max = 65536;
  for (int fd = 3; fd < max; fd++) {
    int fl = fcntl(fd, F_GETFD);
    if (fl >= 0) fcntl(fd, F_SETFD, fl | FD_CLOEXEC);
  }
}

static int build_env(void) {
  extern char** environ;
  size_t n = 0;
  while (environ[n] != NULL) n++;
  child_env = calloc(n + 3, sizeof *child_env);
  static char pid_var[64];
  if (child_env == NULL) return -1;
  size_t k = 0;
  for (size_t i = 0; i < n; i++)
    if (strncmp(environ[i], "STARGZFS_SUPERVISOR_FD=", 23) != 0 && strncmp(environ[i], "STARGZFS_SUPERVISOR_PID=", 24) != 0 &&
        strncmp(environ[i], "STARGZFS_SUPERVISOR_STANDBY=", 28) != 0 && strncmp(environ[i], "STARGZFS_SUPERVISOR_NO_STANDBY=", 31) != 0)
      child_env[k++] = environ[i];
  snprintf(pid_var, sizeof pid_var, "STARGZFS_SUPERVISOR_PID=%ld", (long)self);
  child_env[k++] = "STARGZFS_SUPERVISOR_FD=3";
  child_env[k++] = pid_var;
  child_env[k] = NULL;
  spare_env = calloc(k + 2, sizeof *spare_env);
  if (spare_env == NULL) return -1;
  for (size_t i = 0; i < k; i++) spare_env[i] = child_env[i];
  spare_env[k] = "STARGZFS_SUPERVISOR_STANDBY=1";
  spare_env[k + 1] = NULL;
  return 0;
}

int main(int argc, char** argv) {
  self = getpid();
  char* end = NULL;
  long control = argc >= 4 ? strtol(argv[1], &end, 10) : -1;
  if (argc < 4 || end == argv[1] || *end != '\0' || control < 3 || control > INT_MAX || strcmp(argv[2], "--") != 0) {
    say("usage: stargzfs-supervisor CONTROL_FD -- PROGRAM ARG...");
    return 2;
  }
  int type = 0;
  socklen_t tl = sizeof type;
  if (getsockopt((int)control, SOL_SOCKET, SO_TYPE, &type, &tl) != 0 || type != SOCK_SEQPACKET) {
    say("fd %ld is not a SOCK_SEQPACKET socket", control);
    return 2;
  }
  child_argv = argv + 3;
  const char* no_standby = getenv("STARGZFS_SUPERVISOR_NO_STANDBY");
  standby_off = no_standby != NULL && strcmp(no_standby, "1") == 0;

  /* A replacement's stdio is ours; a closed one would be taken by the next fd opened. */
  for (int fd = 0; fd <= 2; fd++)
    if (fcntl(fd, F_GETFD) < 0) {
      int nul = open("/dev/null", O_RDWR);
      if (nul >= 0 && nul != fd) {
        dup2(nul, fd);
        close(nul);
      }
    }
  cloexec_inherited();

  signal(SIGPIPE, SIG_IGN);
  signal(SIGINT, SIG_IGN);
  signal(SIGHUP, SIG_IGN);
  /* A process group of our own, so that a terminal's ^C or hang-up, meant for the server,
   * never reaches us; but the server's session, not a new one (setsid): with the kernel's
   * autogroups a session is one scheduling group, and a standby's or replacement's Node
   * start-up in a session of its own took half the CPU from the readers (nice counts only
   * within a group), their reads stalling 0.5-0.8 s each time. */
  if (setpgid(0, 0) != 0) say("setpgid: %s", strerror(errno));
  sigset_t mask;
  sigemptyset(&mask);
  sigaddset(&mask, SIGCHLD);
  sigaddset(&mask, SIGUSR2);
  sigaddset(&mask, SIGTERM);
  if (sigprocmask(SIG_BLOCK, &mask, NULL) != 0) {
    say("sigprocmask: %s", strerror(errno));
    return 1;
  }
  int sigfd = signalfd(-1, &mask, SFD_CLOEXEC | SFD_NONBLOCK);
  if (sigfd < 0) {
    say("signalfd: %s", strerror(errno));
    return 1;
  }

  /* Up to 2 fds a mount, 1024 mounts, and queued dups: more than the usual 1024. */
  if (getrlimit(RLIMIT_NOFILE, &orig_nofile) == 0 && orig_nofile.rlim_cur < 8192) {
    struct rlimit r = orig_nofile;
    r.rlim_cur = r.rlim_max == RLIM_INFINITY || r.rlim_max > 8192 ? 8192 : r.rlim_max;
    if (setrlimit(RLIMIT_NOFILE, &r) != 0) say("setrlimit(RLIMIT_NOFILE): %s", strerror(errno));
  }
  if (build_env() != 0) {
    say("out of memory");
    return 1;
  }

  struct ucred cred;
  socklen_t cl = sizeof cred;
  pid_t first = 0;
  if (getsockopt((int)control, SOL_SOCKET, SO_PEERCRED, &cred, &cl) == 0 && cred.pid > 0) first = cred.pid;
  else say("SO_PEERCRED: %s; the first server cannot be stopped on upgrade", strerror(errno));
  cur = new_server((int)control, first, 0);
  if (cur == NULL) {
    say("out of memory");
    return 1;
  }
  cur->ready = 1;
  spare_retry_at = now_ms() + STANDBY_DELAY_MS;
  say("supervising server pid %ld; replacements run %s", (long)first, child_argv[0]);

  for (;;) {
    struct pollfd p[5];
    unsigned long ids[5];
    int np = 0;
    p[np] = (struct pollfd){sigfd, POLLIN, 0};
    ids[np++] = 0;
    struct server* all[4] = {cur, pend, old, spare};
    for (int k = 0; k < 4; k++) {
      if (all[k] == NULL) continue;
      int out = all[k]->head != NULL && all[k]->send_retry_at < 0;
      p[np] = (struct pollfd){all[k]->sock, (short)(POLLIN | (out ? POLLOUT : 0)), 0};
      ids[np++] = all[k]->id;
    }
    int64_t now = now_ms(), next = -1;
    if (old != NULL && old->deadline >= 0) next = old->deadline;
    if (finishing && (next < 0 || finish_deadline < next)) next = finish_deadline;
    if (retry_at >= 0 && (next < 0 || retry_at < next)) next = retry_at;
    for (int k = 0; k < 4; k++)
      if (all[k] != NULL && all[k]->head != NULL && all[k]->send_retry_at >= 0 && (next < 0 || all[k]->send_retry_at < next))
        next = all[k]->send_retry_at;
    if (spare == NULL && spare_retry_at >= 0 && (next < 0 || spare_retry_at < next)) next = spare_retry_at;
    int timeout = next < 0 ? -1 : next <= now ? 0 : next - now > INT_MAX ? INT_MAX : (int)(next - now);

    int r = poll(p, (nfds_t)np, timeout);
    if (r < 0 && errno != EINTR) {
      say("poll: %s", strerror(errno));
      struct timespec pause = {0, 100 * 1000 * 1000};
      nanosleep(&pause, NULL);
    }
    if (r > 0) {
      if (p[0].revents) read_signals(sigfd);
      for (int i = 1; i < np; i++) {
        struct server* s = find_server(ids[i]);
        if (s != NULL && p[i].revents != 0) service(s, p[i].revents);
      }
    }

    now = now_ms();
    struct server* again[4] = {cur, pend, old, spare};
    for (int k = 0; k < 4; k++)
      if (again[k] != NULL && again[k]->head != NULL && again[k]->send_retry_at >= 0 && now >= again[k]->send_retry_at) {
        again[k]->send_retry_at = -1;
        flush(again[k]);
      }
    if (old != NULL && old->deadline >= 0 && now >= old->deadline) {
      say("old server pid %ld has not closed its socket %d s after SIGKILL; going on", (long)old->pid, EXIT_WAIT_MS / 1000);
      free_server(old);
      old = NULL;
      resend_all("upgrade done");
    }
    if (finishing && now >= finish_deadline) {
      say("server did not close its socket %d s after DONE", EXIT_WAIT_MS / 1000);
      leave(0);
    }
    if (retry_at >= 0 && now >= retry_at && cur == NULL) {
      retry_at = -1;
      restart();
    }
    if (cur == NULL && !finishing && retry_at < 0) {
      /* Not reachable by design; never sit here with nobody serving. */
      if (nheld == 0) leave(0);
      restart();
    }
    ensure_spare();
    reap();
  }
}
