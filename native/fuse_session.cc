// The FUSE session addon: our own loop on /dev/fuse (linux/fuse.h is the protocol), every
// request handed to JavaScript through a thread-safe function (the worker thread returns
// at once), answered from JavaScript with reply* calls that carry the request handle.
// libfuse is kept for one thing: mounting as a user who needs fusermount3. Why our own
// loop (README, "The FUSE session"): the kernel's passthrough (reads of a fully cached
// file go to its chunk file, never to us) and handing a live connection to a new
// process (a restarted or upgraded server answers what the dead one left) both need a
// protocol libfuse 3.14 does not speak.
//
// It owns no filesystem logic, with exceptions that save round trips: operations that
// would write get EROFS here, forget is answered here (and passed on), getxattr/listxattr
// of an inode JavaScript marked as having no xattrs are answered here (ls -l asks two per
// file; ENOSYS for all of them when the image has none, so the kernel stops asking),
// reads inside chunk files JavaScript has verified are answered here from those files
// (read_map.h), and an open of a file that one verified chunk file holds whole is answered
// here with that file as its passthrough backing (open_table.h).
//
// JavaScript never holds the kernel's request id: it gets a number that names the request
// in a table here, and a reply takes the request out of the table first. So a request is
// answered exactly once whoever answers it (JavaScript, or stop() failing all that are
// left), and a late reply to a request already answered is dropped rather than written
// as the answer to whatever request reuses the kernel's id.
#define FUSE_USE_VERSION 312
#include <fuse_lowlevel.h>
#include <napi.h>

#include "fuse_proto.h"
#include "open_table.h"
#include "read_map.h"

#include <algorithm>
#include <atomic>
#include <cerrno>
#include <cstdio>
#include <cstring>
#include <fcntl.h>
#include <mutex>
#include <poll.h>
#include <string>
#include <sys/eventfd.h>
#include <sys/mount.h>
#include <sys/stat.h>
#include <sys/uio.h>
#include <thread>
#include <unistd.h>
#include <unordered_map>
#include <unordered_set>
#include <vector>

namespace stargzfs {
void RegisterStdio(Napi::Env env, Napi::Object exports);       // native/stdio.cc
void RegisterMemory(Napi::Env env, Napi::Object exports);      // native/memory.cc
void RegisterSocket(Napi::Env env, Napi::Object exports);      // native/socket.cc
void RegisterSupervisor(Napi::Env env, Napi::Object exports);  // native/supervisor_link.cc
}  // namespace stargzfs

namespace {

using stargzfs::OpenTable;

// Operations as JavaScript sees them: the kernel's opcodes (linux/fuse.h, a fixed ABI),
// and one of ours. Exported to JavaScript as `ops`.
enum Op : int {
  OP_LOOKUP = FUSE_LOOKUP, OP_FORGET = FUSE_FORGET, OP_GETATTR = FUSE_GETATTR, OP_READLINK = FUSE_READLINK,
  OP_RMDIR = FUSE_RMDIR, OP_OPEN = FUSE_OPEN, OP_READ = FUSE_READ, OP_STATFS = FUSE_STATFS, OP_RELEASE = FUSE_RELEASE,
  OP_GETXATTR = FUSE_GETXATTR, OP_LISTXATTR = FUSE_LISTXATTR, OP_INIT = FUSE_INIT, OP_OPENDIR = FUSE_OPENDIR,
  OP_READDIR = FUSE_READDIR, OP_RELEASEDIR = FUSE_RELEASEDIR, OP_ACCESS = FUSE_ACCESS, OP_CREATE = FUSE_CREATE,
  OP_FORGET_MULTI = FUSE_BATCH_FORGET, OP_READDIRPLUS = FUSE_READDIRPLUS,
  // The loop ended (unmounted, or the connection went): no request, no reply.
  OP_EXIT = 0x10000,
};

const std::pair<const char*, int> kOpNames[] = {
    {"Lookup", OP_LOOKUP}, {"Forget", OP_FORGET}, {"Getattr", OP_GETATTR}, {"Opendir", OP_OPENDIR},
    {"Readdir", OP_READDIR}, {"Readdirplus", OP_READDIRPLUS}, {"Releasedir", OP_RELEASEDIR}, {"Open", OP_OPEN},
    {"Read", OP_READ}, {"Release", OP_RELEASE}, {"Readlink", OP_READLINK}, {"Getxattr", OP_GETXATTR},
    {"Listxattr", OP_LISTXATTR}, {"Statfs", OP_STATFS}, {"Access", OP_ACCESS}, {"Init", OP_INIT},
    {"Exit", OP_EXIT}, {"ForgetMulti", OP_FORGET_MULTI}, {"Create", OP_CREATE}, {"Rmdir", OP_RMDIR},
};

// The file handle of an open answered passthrough: reads never come to us for it, and the
// bit tells a release (from whichever server gets it) which count to take it from.
constexpr uint64_t kPassthroughFh = 1ULL << 63;
// Attribute numbers per node, in fillAttr's order (exported as `attrSlots`).
constexpr size_t kAttrSlots = 9;
// Protocol minor we speak (the layouts of fuse_proto.h).
constexpr uint32_t kOurMinor = 40;

struct Request {
  int op;
  uint64_t id;
  uint64_t ino;
  std::string name;
  uint64_t size;
  int64_t off;
  uint64_t fh;
  int flags;
  std::vector<std::pair<uint64_t, uint64_t>> forgets;
  std::string info;
};

struct Outstanding {
  uint64_t unique;
  int op;
  uint64_t ino;
  // An open counted as cached in the open table: a failed open gives the count back.
  bool counted;
};

struct Shared {
  Napi::ThreadSafeFunction tsfn;
  int fd = -1;
  // Written once to end the loop: every worker's poll wakes.
  int wake = -1;
  std::atomic<bool> initialized{false};
  uint32_t minor = 0;
  bool passthrough = false;
  bool wantPassthrough = true;
  std::string passthroughRefused;
  std::atomic<int> backingErrno{0};
  // Opens this server answered through the page cache, by why (OpenTable::Why; the last: status.json).
  uint64_t cachedWhy[stargzfs::OpenTable::kWhys + 1] = {};
  OpenTable* table = nullptr;
  std::mutex xattrMutex;
  std::unordered_set<uint64_t> hasXattrs;
  // No inode has xattrs: ENOSYS, and the kernel stops asking.
  std::atomic<bool> noXattrs{false};
  // Requests handed to JavaScript and not answered yet, by the number JavaScript holds.
  std::mutex reqMutex;
  std::unordered_map<uint64_t, Outstanding> outstanding;
  uint64_t nextId = 1;
  // Set by stop(): every request from then on is answered here, never handed on.
  bool stopping = false;
  int stopErr = EIO;
  unsigned maxRead = 1 << 20;
  unsigned maxBackground = 128;
  // The kernel keeps a symlink's target once read (an image never changes); off for a
  // filesystem whose readlink has work to do each time (the layer store's `diff`).
  bool cacheSymlinks = true;
  // Reads answered here from verified chunk files (read_map.h).
  stargzfs::ReadMap readMap;
};

// Requests are small (no writes come: EROFS); 128 KiB covers a setxattr's value too.
constexpr size_t kMaxWrite = 128 << 10;
constexpr size_t kBufSize = kMaxWrite + 4096 + sizeof(fuse_in_header) + sizeof(fuse_write_in);

// One reply (or an error with no payload). ENOENT from the kernel: the request was
// interrupted and is gone, which is fine.
void send(Shared* s, uint64_t unique, int err, const struct iovec* iov = nullptr, int n = 0) {
  fuse_out_header oh;
  struct iovec v[4];
  size_t len = sizeof oh;
  for (int i = 0; i < n; i++) {
    v[i + 1] = iov[i];
    len += iov[i].iov_len;
  }
  oh.len = static_cast<uint32_t>(len);
  oh.error = -err;
  oh.unique = unique;
  v[0] = {&oh, sizeof oh};
  if (err != 0) {
    oh.len = sizeof oh;
    n = 0;
  }
  while (writev(s->fd, v, n + 1) < 0 && errno == EINTR) {
  }
}

void sendBuf(Shared* s, uint64_t unique, const void* data, size_t len) {
  struct iovec v = {const_cast<void*>(data), len};
  send(s, unique, 0, &v, len > 0 ? 1 : 0);
}

void closeBacking(Shared* s, int32_t id);

// The answer to a request while the session stops: a release is done (the file is closed
// either way), anything else fails.
void replyStopping(Shared* s, const Outstanding& o, int err) {
  if (o.counted && s->table != nullptr) s->table->Unpend(o.ino);
  send(s, o.unique, o.op == OP_RELEASE || o.op == OP_RELEASEDIR ? 0 : err);
}

// Takes the request out of the table: the caller is now the one that answers it.
bool take(Shared* s, uint64_t id, Outstanding* out) {
  std::lock_guard<std::mutex> lock(s->reqMutex);
  auto it = s->outstanding.find(id);
  if (it == s->outstanding.end()) return false;
  *out = it->second;
  s->outstanding.erase(it);
  return true;
}

void dispatch(Shared* s, Request* r, uint64_t unique, bool counted = false) {
  r->id = 0;
  if (unique != 0) {
    std::lock_guard<std::mutex> lock(s->reqMutex);
    if (s->stopping) {
      replyStopping(s, Outstanding{unique, r->op, r->ino, counted}, s->stopErr);
      delete r;
      return;
    }
    r->id = s->nextId++;
    s->outstanding.emplace(r->id, Outstanding{unique, r->op, r->ino, counted});
  }
  auto status = s->tsfn.NonBlockingCall(r, [](Napi::Env env, Napi::Function fn, Request* r) {
    Napi::Value handle = r->id != 0 ? Napi::Value(Napi::BigInt::New(env, r->id)) : env.Null();
    std::vector<napi_value> args = {Napi::Number::New(env, r->op), handle, Napi::Number::New(env, static_cast<double>(r->ino))};
    switch (r->op) {
      case OP_LOOKUP: case OP_CREATE: case OP_RMDIR: args.push_back(Napi::String::New(env, r->name)); break;
      case OP_GETXATTR: args.push_back(Napi::String::New(env, r->name)); args.push_back(Napi::Number::New(env, static_cast<double>(r->size))); break;
      case OP_LISTXATTR: args.push_back(Napi::Number::New(env, static_cast<double>(r->size))); break;
      case OP_READDIR: case OP_READDIRPLUS: case OP_READ:
        args.push_back(Napi::Number::New(env, static_cast<double>(r->size)));
        args.push_back(Napi::Number::New(env, static_cast<double>(r->off)));
        args.push_back(Napi::Number::New(env, static_cast<double>(r->fh)));
        break;
      case OP_OPEN: case OP_OPENDIR: args.push_back(Napi::Number::New(env, r->flags)); break;
      case OP_RELEASE: case OP_RELEASEDIR: args.push_back(Napi::Number::New(env, static_cast<double>(r->fh))); break;
      case OP_ACCESS: args.push_back(Napi::Number::New(env, r->flags)); break;
      case OP_FORGET: args.push_back(Napi::Number::New(env, static_cast<double>(r->size))); break;
      case OP_FORGET_MULTI: {
        Napi::Array a = Napi::Array::New(env, r->forgets.size() * 2);
        for (size_t i = 0; i < r->forgets.size(); i++) {
          a.Set(i * 2, Napi::Number::New(env, static_cast<double>(r->forgets[i].first)));
          a.Set(i * 2 + 1, Napi::Number::New(env, static_cast<double>(r->forgets[i].second)));
        }
        args.push_back(a);
        break;
      }
      case OP_INIT: case OP_EXIT: args.push_back(Napi::String::New(env, r->info)); break;
      default: break;
    }
    delete r;
    fn.Call(args);
  });
  if (status != napi_ok) {
    // JavaScript is gone (shutting down): answer so the kernel does not wait forever.
    Outstanding o;
    if (r->id != 0 && take(s, r->id, &o)) replyStopping(s, o, EIO);
    delete r;
  }
}

Request* make(int op, uint64_t ino) {
  auto* r = new Request();
  r->op = op;
  r->ino = ino;
  r->size = 0;
  r->off = 0;
  r->fh = 0;
  r->flags = 0;
  return r;
}

void handleInit(Shared* s, const fuse_in_header* h, const char* p, size_t len) {
  if (len < 8) return send(s, h->unique, EINVAL);
  fuse_init_in in;
  std::memset(&in, 0, sizeof in);
  std::memcpy(&in, p, std::min(len, sizeof in));
  stargzfs::InitOut out;
  std::memset(&out, 0, sizeof out);
  out.major = FUSE_KERNEL_VERSION;
  out.minor = kOurMinor;
  if (in.major > FUSE_KERNEL_VERSION) {
    // The kernel asks again with our major.
    sendBuf(s, h->unique, &out, sizeof out);
    return;
  }
  if (in.major < FUSE_KERNEL_VERSION || in.minor < 31) return send(s, h->unique, EPROTO);
  uint64_t offered = in.flags;
  if (offered & FUSE_INIT_EXT) offered |= static_cast<uint64_t>(in.flags2) << 32;
  uint64_t want = FUSE_ASYNC_READ | FUSE_EXPORT_SUPPORT | FUSE_DO_READDIRPLUS | FUSE_PARALLEL_DIROPS | FUSE_ASYNC_DIO |
                  FUSE_MAX_PAGES | FUSE_BIG_WRITES | FUSE_INIT_EXT;
  std::string refused;
  if (s->cacheSymlinks) {
    if (offered & FUSE_CACHE_SYMLINKS) want |= FUSE_CACHE_SYMLINKS;
    else refused += "cache_symlinks";
  }
  if (s->wantPassthrough) {
    if (!(offered & stargzfs::kInitPassthrough)) s->passthroughRefused = "the kernel does not offer FUSE_PASSTHROUGH";
    else if (s->table == nullptr) s->passthroughRefused = "no open-file table";
    else want |= stargzfs::kInitPassthrough;
  } else {
    s->passthroughRefused = "off (--no-passthrough)";
  }
  want &= offered;
  s->minor = std::min<uint32_t>(in.minor, kOurMinor);
  s->passthrough = (want & stargzfs::kInitPassthrough) != 0;
  out.minor = s->minor;
  out.flags = static_cast<uint32_t>(want);
  out.flags2 = static_cast<uint32_t>(want >> 32);
  // The kernel's readahead, as a disk's: 128 KiB. At 1 MiB each random 4 KiB pread of a
  // cached file read a megabyte of chunk file (ops/s 4,000 against 6,300, p99 1.3 ms against
  // 0.27 ms); sequential reads lost nothing (they ask for max_read-sized reads themselves).
  out.max_readahead = std::min<uint32_t>(in.max_readahead, 128 << 10);
  out.max_background = static_cast<uint16_t>(std::min(s->maxBackground, 65535u));
  out.congestion_threshold = static_cast<uint16_t>(out.max_background * 3 / 4);
  out.max_write = kMaxWrite;
  out.time_gran = 1;
  out.max_pages = static_cast<uint16_t>(std::max(1u, s->maxRead / 4096));
  // Backing files sit on a disk filesystem (depth 0); 1 leaves overlayfs room on top of us.
  if (s->passthrough) out.max_stack_depth = 1;
  // Before the reply: the kernel lets waiting requests through the moment it has it, and
  // another thread may read one before this one got further.
  s->initialized = true;
  sendBuf(s, h->unique, &out, sizeof out);
  auto* r = make(OP_INIT, 0);
  r->info = "max_read=" + std::to_string(s->maxRead) + " max_readahead=" + std::to_string(out.max_readahead) +
            " max_background=" + std::to_string(out.max_background) + " proto=" + std::to_string(in.major) + "." +
            std::to_string(in.minor) + " passthrough=" + (s->passthrough ? "on" : "off (" + s->passthroughRefused + ")") +
            (refused.empty() ? "" : " refused=" + refused);
  dispatch(s, r, 0);
}

bool knownWithoutXattrs(Shared* s, uint64_t ino) {
  std::lock_guard<std::mutex> lock(s->xattrMutex);
  return s->hasXattrs.count(ino) == 0;
}

// The backing id of a chunk file, for passthrough opens of the inode that reads it; 0 when
// the kernel will not have it (its reason kept for status).
int32_t openBacking(Shared* s, const std::string& path) {
  int pfd = open(path.c_str(), O_RDONLY | O_CLOEXEC);
  if (pfd < 0) return 0;
  stargzfs::BackingMap m;
  std::memset(&m, 0, sizeof m);
  m.fd = pfd;
  int id = ioctl(s->fd, stargzfs::kIocBackingOpen, &m);
  int err = errno;
  close(pfd);
  if (id <= 0) {
    s->backingErrno = err;
    return 0;
  }
  return id;
}

void closeBacking(Shared* s, int32_t id) {
  if (id <= 0) return;
  uint32_t v = static_cast<uint32_t>(id);
  ioctl(s->fd, stargzfs::kIocBackingClose, &v);
}

void sendOpen(Shared* s, uint64_t unique, uint64_t fh, uint32_t flags, int32_t backing) {
  stargzfs::OpenOut o;
  o.fh = fh;
  o.open_flags = flags;
  o.backing_id = backing;
  sendBuf(s, unique, &o, sizeof o);
}

// An open the table says may go passthrough is answered here; otherwise it is counted as
// cached (only with passthrough on: without it the kernel has no modes to keep apart).
void handleOpen(Shared* s, const fuse_in_header* h, const char* p, size_t len) {
  const auto* in = reinterpret_cast<const fuse_open_in*>(p);
  if (len < sizeof *in) return send(s, h->unique, EINVAL);
  if ((in->flags & O_ACCMODE) != O_RDONLY || (in->flags & O_TRUNC)) return send(s, h->unique, EROFS);
  bool counted = false;
  if (s->passthrough) {
    std::string path;
    bool candidate = s->readMap.Whole(h->nodeid, &path);
    int32_t backing = s->table->Open(h->nodeid, candidate, [&]() { return openBacking(s, path); });
    if (backing > 0) return sendOpen(s, h->unique, kPassthroughFh, stargzfs::kOpenPassthrough, backing);
    counted = true;
  }
  auto* r = make(OP_OPEN, h->nodeid);
  r->flags = static_cast<int>(in->flags);
  dispatch(s, r, h->unique, counted);
}

void handle(Shared* s, const char* buf, size_t n) {
  if (n < sizeof(fuse_in_header)) return;
  const auto* h = reinterpret_cast<const fuse_in_header*>(buf);
  const char* p = buf + sizeof *h;
  size_t len = std::min<size_t>(n, h->len) - sizeof *h;
  uint64_t u = h->unique;
  uint64_t ino = h->nodeid;
  auto name = [&](size_t at) { return at < len ? std::string(p + at, strnlen(p + at, len - at)) : std::string(); };
  if (h->opcode == FUSE_INIT) return handleInit(s, h, p, len);
  if (!s->initialized) return send(s, u, EIO);
  switch (h->opcode) {
    case FUSE_LOOKUP: {
      auto* r = make(OP_LOOKUP, ino);
      r->name = name(0);
      return dispatch(s, r, u);
    }
    case FUSE_FORGET: {
      // No reply: the kernel waits for none.
      auto* r = make(OP_FORGET, ino);
      r->size = len >= sizeof(fuse_forget_in) ? reinterpret_cast<const fuse_forget_in*>(p)->nlookup : 0;
      return dispatch(s, r, 0);
    }
    case FUSE_BATCH_FORGET: {
      if (len < sizeof(fuse_batch_forget_in)) return;
      const auto* in = reinterpret_cast<const fuse_batch_forget_in*>(p);
      const auto* one = reinterpret_cast<const fuse_forget_one*>(p + sizeof *in);
      size_t count = std::min<size_t>(in->count, (len - sizeof *in) / sizeof *one);
      auto* r = make(OP_FORGET_MULTI, 0);
      for (size_t i = 0; i < count; i++) r->forgets.emplace_back(one[i].nodeid, one[i].nlookup);
      return dispatch(s, r, 0);
    }
    case FUSE_GETATTR: return dispatch(s, make(OP_GETATTR, ino), u);
    case FUSE_OPENDIR: {
      const auto* in = reinterpret_cast<const fuse_open_in*>(p);
      if (len < sizeof *in) return send(s, u, EINVAL);
      if ((in->flags & O_ACCMODE) != O_RDONLY) return send(s, u, EROFS);
      auto* r = make(OP_OPENDIR, ino);
      r->flags = static_cast<int>(in->flags);
      return dispatch(s, r, u);
    }
    case FUSE_OPEN: return handleOpen(s, h, p, len);
    case FUSE_READ: case FUSE_READDIR: case FUSE_READDIRPLUS: {
      const auto* in = reinterpret_cast<const fuse_read_in*>(p);
      if (len < sizeof *in) return send(s, u, EINVAL);
      if (h->opcode == FUSE_READ) {
        thread_local std::vector<char> data;
        if (s->readMap.Read(ino, in->offset, in->size, data)) return sendBuf(s, u, data.data(), data.size());
      }
      auto* r = make(h->opcode == FUSE_READ ? OP_READ : h->opcode == FUSE_READDIR ? OP_READDIR : OP_READDIRPLUS, ino);
      r->size = in->size;
      r->off = static_cast<int64_t>(in->offset);
      r->fh = in->fh;
      return dispatch(s, r, u);
    }
    case FUSE_RELEASE: {
      const auto* in = reinterpret_cast<const fuse_release_in*>(p);
      if (len < sizeof *in) return send(s, u, EINVAL);
      uint64_t fh = in->fh;
      // Answered here, before the open counts change: a server killed between the two has
      // taken nothing off them (a count too high only keeps an inode from passthrough),
      // and one killed before the answer gets the release again (RESEND) and takes it once.
      // Taken off first and answered later from JavaScript, a release resent after a kill
      // was taken twice: the counts said no file of the inode was open through the page
      // cache while one was, its next open went passthrough, and the kernel failed it (EIO).
      send(s, u, 0);
      if (s->passthrough) closeBacking(s, s->table->Release(ino, (fh & kPassthroughFh) != 0));
      // Opened passthrough here: nothing of it in JavaScript. Opened through JavaScript and
      // turned passthrough at its reply (ReplyOpen): JavaScript forgets its handle (no reply).
      if (fh & kPassthroughFh) {
        fh &= ~kPassthroughFh;
        if (fh == 0) return;
      }
      auto* r = make(OP_RELEASE, ino);
      r->fh = fh;
      return dispatch(s, r, 0);
    }
    case FUSE_RELEASEDIR: {
      const auto* in = reinterpret_cast<const fuse_release_in*>(p);
      if (len < sizeof *in) return send(s, u, EINVAL);
      auto* r = make(OP_RELEASEDIR, ino);
      r->fh = in->fh;
      return dispatch(s, r, u);
    }
    case FUSE_READLINK: return dispatch(s, make(OP_READLINK, ino), u);
    case FUSE_GETXATTR: case FUSE_LISTXATTR: {
      const auto* in = reinterpret_cast<const fuse_getxattr_in*>(p);
      if (len < sizeof *in) return send(s, u, EINVAL);
      if (s->noXattrs) return send(s, u, ENOSYS);
      bool list = h->opcode == FUSE_LISTXATTR;
      if (knownWithoutXattrs(s, ino)) {
        if (!list) return send(s, u, ENODATA);
        if (in->size > 0) return send(s, u, 0);
        fuse_getxattr_out out = {0, 0};
        return sendBuf(s, u, &out, sizeof out);
      }
      auto* r = make(list ? OP_LISTXATTR : OP_GETXATTR, ino);
      r->size = in->size;
      if (!list) r->name = name(sizeof *in);
      return dispatch(s, r, u);
    }
    case FUSE_STATFS: return dispatch(s, make(OP_STATFS, ino), u);
    case FUSE_ACCESS: {
      const auto* in = reinterpret_cast<const fuse_access_in*>(p);
      if (len < sizeof *in) return send(s, u, EINVAL);
      if (in->mask & W_OK) return send(s, u, EROFS);
      auto* r = make(OP_ACCESS, ino);
      r->flags = static_cast<int>(in->mask);
      return dispatch(s, r, u);
    }
    // Handed on, not refused here: on a read-only mount the kernel refuses them itself, and
    // a writable one (the layer store) gives them meaning (podman's `use` and release).
    case FUSE_CREATE: {
      auto* r = make(OP_CREATE, ino);
      r->name = name(sizeof(fuse_create_in));
      return dispatch(s, r, u);
    }
    case FUSE_RMDIR: {
      auto* r = make(OP_RMDIR, ino);
      r->name = name(0);
      return dispatch(s, r, u);
    }
    case FUSE_INTERRUPT: return;  // reads finish quickly or fail by their own deadline
    case FUSE_DESTROY: return send(s, u, 0);
    // Everything that would change the filesystem.
    case FUSE_SETATTR: case FUSE_WRITE: case FUSE_MKNOD: case FUSE_MKDIR: case FUSE_UNLINK: case FUSE_SYMLINK:
    case FUSE_RENAME: case FUSE_RENAME2: case FUSE_LINK: case FUSE_SETXATTR: case FUSE_REMOVEXATTR:
    case FUSE_FALLOCATE: case FUSE_COPY_FILE_RANGE:
      return send(s, u, EROFS);
    // ENOSYS: the kernel stops asking (flush, fsync, locks become local, lseek its own).
    default: return send(s, u, ENOSYS);
  }
}

// fuse_attr from a: [mode, nlink, uid, gid, rdev, size, blocks, mtimeSec, mtimeNsec]
void fillAttr(const double* a, uint64_t ino, fuse_attr* at) {
  std::memset(at, 0, sizeof *at);
  at->ino = ino;
  at->mode = static_cast<uint32_t>(a[0]);
  at->nlink = static_cast<uint32_t>(a[1]);
  at->uid = static_cast<uint32_t>(a[2]);
  at->gid = static_cast<uint32_t>(a[3]);
  // The kernel decodes it as new_encode_dev did, which is glibc's makedev for 32 bits.
  at->rdev = static_cast<uint32_t>(static_cast<uint64_t>(a[4]));
  at->size = static_cast<uint64_t>(a[5]);
  at->blocks = static_cast<uint64_t>(a[6]);
  at->blksize = 4096;
  at->mtime = at->atime = at->ctime = static_cast<uint64_t>(static_cast<int64_t>(a[7]));
  at->mtimensec = at->atimensec = at->ctimensec = static_cast<uint32_t>(a[8]);
}

void splitTimeout(double t, uint64_t* sec, uint32_t* nsec) {
  if (t < 0) t = 0;
  *sec = static_cast<uint64_t>(t);
  *nsec = static_cast<uint32_t>((t - static_cast<double>(*sec)) * 1e9);
}

void fillEntry(uint64_t ino, const double* attr, double timeout, fuse_entry_out* e) {
  std::memset(e, 0, sizeof *e);
  e->nodeid = ino;
  e->generation = 1;
  splitTimeout(timeout, &e->entry_valid, &e->entry_valid_nsec);
  splitTimeout(timeout, &e->attr_valid, &e->attr_valid_nsec);
  if (ino != 0) fillAttr(attr, ino, &e->attr);
}

uint64_t idOf(const Napi::Value& v) {
  bool lossless = false;
  return v.As<Napi::BigInt>().Uint64Value(&lossless);
}

// Mount options as JavaScript names them (libfuse's -o names) turned into mount(2)'s.
struct MountArgs {
  unsigned long flags = MS_NOSUID | MS_NODEV;
  std::string source = "stargzfs";
  std::string type = "fuse";
  std::string data;
};

bool parseOptions(const std::vector<std::string>& opts, MountArgs* m, std::string* err) {
  for (const auto& o : opts) {
    if (o == "ro") m->flags |= MS_RDONLY;
    else if (o == "default_permissions" || o == "allow_other") m->data += "," + o;
    else if (o.rfind("max_read=", 0) == 0) m->data += "," + o;
    else if (o.rfind("fsname=", 0) == 0) m->source = o.substr(7);
    else if (o.rfind("subtype=", 0) == 0) m->type = "fuse." + o.substr(8);
    else {
      *err = "unknown mount option " + o;
      return false;
    }
  }
  return true;
}

class Session : public Napi::ObjectWrap<Session> {
 public:
  static Napi::Function Init(Napi::Env env) {
    return DefineClass(env, "Session", {
      InstanceMethod("unmount", &Session::Unmount),
      InstanceMethod("stop", &Session::Stop),
      InstanceMethod("end", &Session::End),
      InstanceMethod("destroy", &Session::Destroy),
      InstanceMethod("setHasXattrs", &Session::SetHasXattrs),
      InstanceMethod("setNoXattrs", &Session::SetNoXattrs),
      InstanceMethod("mapFile", &Session::MapFile),
      InstanceMethod("unmapFile", &Session::UnmapFile),
      InstanceMethod("mapWhole", &Session::MapWhole),
      InstanceMethod("nativeReads", &Session::NativeReads),
      InstanceMethod("passthroughStats", &Session::PassthroughStats),
      InstanceMethod("handover", &Session::Handover),
      InstanceMethod("pending", &Session::Pending),
      InstanceMethod("replyErr", &Session::ReplyErr),
      InstanceMethod("replyNone", &Session::ReplyNone),
      InstanceMethod("replyEntry", &Session::ReplyEntry),
      InstanceMethod("replyAttr", &Session::ReplyAttr),
      InstanceMethod("replyOpen", &Session::ReplyOpen),
      InstanceMethod("replyBuf", &Session::ReplyBuf),
      InstanceMethod("replyReadlink", &Session::ReplyReadlink),
      InstanceMethod("replyXattrSize", &Session::ReplyXattrSize),
      InstanceMethod("replyDir", &Session::ReplyDir),
      InstanceMethod("replyStatfs", &Session::ReplyStatfs),
    });
  }

  // new Session(mountpoint, options: string[], handler, tuning): mounts, or with
  // tuning.adopt = { fd, tableFd, minor, passthrough } serves a connection another
  // process mounted and initialised (handed over by the supervisor).
  explicit Session(const Napi::CallbackInfo& info) : Napi::ObjectWrap<Session>(info) {
    Napi::Env env = info.Env();
    mountpoint_ = info[0].As<Napi::String>().Utf8Value();
    Napi::Array opts = info[1].As<Napi::Array>();
    Napi::Object tune = info[3].As<Napi::Object>();
    shared_.maxRead = tune.Get("maxRead").As<Napi::Number>().Uint32Value();
    shared_.maxBackground = tune.Get("maxBackground").As<Napi::Number>().Uint32Value();
    threads_ = std::max(1u, tune.Get("threads").As<Napi::Number>().Uint32Value());
    Napi::Value cacheSymlinks = tune.Get("cacheSymlinks");
    if (cacheSymlinks.IsBoolean()) shared_.cacheSymlinks = cacheSymlinks.As<Napi::Boolean>().Value();
    Napi::Value passthrough = tune.Get("passthrough");
    if (passthrough.IsBoolean()) shared_.wantPassthrough = passthrough.As<Napi::Boolean>().Value();
    Napi::Value adopt = tune.Get("adopt");
    std::string err;
    if (adopt.IsObject()) {
      Napi::Object a = adopt.As<Napi::Object>();
      shared_.fd = a.Get("fd").As<Napi::Number>().Int32Value();
      int tableFd = a.Get("tableFd").As<Napi::Number>().Int32Value();
      shared_.minor = a.Get("minor").As<Napi::Number>().Uint32Value();
      shared_.passthrough = a.Get("passthrough").As<Napi::Boolean>().Value();
      if (tableFd >= 0) shared_.table = OpenTable::Adopt(tableFd, &err);
      if (shared_.passthrough && shared_.table == nullptr) {
        // Without the counts, an open could be answered in the mode the kernel refuses.
        Napi::Error::New(env, "cannot serve the handed-over connection: " + err).ThrowAsJavaScriptException();
        return;
      }
      shared_.initialized = true;
      adopted_ = true;
    } else {
      std::vector<std::string> o;
      for (uint32_t i = 0; i < opts.Length(); i++) o.push_back(opts.Get(i).As<Napi::String>().Utf8Value());
      if (shared_.wantPassthrough) {
        shared_.table = OpenTable::Create(&err);
        if (shared_.table == nullptr) shared_.passthroughRefused = err;
      }
      if (!Mount(o, &err)) {
        delete shared_.table;
        shared_.table = nullptr;
        Napi::Error::New(env, err).ThrowAsJavaScriptException();
        return;
      }
    }
    int fl = fcntl(shared_.fd, F_GETFL);
    fcntl(shared_.fd, F_SETFL, fl | O_NONBLOCK);
    shared_.wake = eventfd(0, EFD_CLOEXEC);
    shared_.tsfn = Napi::ThreadSafeFunction::New(env, info[2].As<Napi::Function>(), "stargzfs-fuse", 0, 1);
    mounted_ = true;
    thread_ = std::thread([this]() { Run(); });
  }

  ~Session() {
    if (thread_.joinable()) {
      // Finalized while still mounted (the process is exiting): end the loop and let go.
      RequestStop(EIO);
      thread_.detach();
    }
  }

 private:
  // As root, mount(2) on a /dev/fuse we opened; otherwise libfuse (fusermount3).
  bool Mount(const std::vector<std::string>& opts, std::string* err) {
    if (geteuid() != 0) {
      std::vector<std::string> argvStore = {"stargzfs"};
      for (const auto& o : opts) {
        argvStore.push_back("-o");
        argvStore.push_back(o);
      }
      std::vector<char*> argv;
      for (auto& a : argvStore) argv.push_back(a.data());
      struct fuse_args args = FUSE_ARGS_INIT(static_cast<int>(argv.size()), argv.data());
      fuse_lowlevel_ops none;
      std::memset(&none, 0, sizeof none);
      se_ = fuse_session_new(&args, &none, sizeof none, nullptr);
      if (se_ == nullptr) {
        *err = "fuse_session_new failed (bad mount options?)";
        return false;
      }
      if (fuse_session_mount(se_, mountpoint_.c_str()) != 0) {
        fuse_session_destroy(se_);
        se_ = nullptr;
        *err = "fuse_session_mount failed for " + mountpoint_;
        return false;
      }
      shared_.fd = fuse_session_fd(se_);
      return true;
    }
    MountArgs m;
    if (!parseOptions(opts, &m, err)) return false;
    int fd = open("/dev/fuse", O_RDWR | O_CLOEXEC);
    if (fd < 0) {
      *err = std::string("open /dev/fuse: ") + std::strerror(errno);
      return false;
    }
    struct stat st;
    if (stat(mountpoint_.c_str(), &st) != 0) {
      *err = "mount point " + mountpoint_ + ": " + std::strerror(errno);
      close(fd);
      return false;
    }
    char rootmode[16];
    std::snprintf(rootmode, sizeof rootmode, "%o", static_cast<unsigned>(st.st_mode & S_IFMT));
    std::string data = "fd=" + std::to_string(fd) + ",rootmode=" + rootmode +
                       ",user_id=" + std::to_string(getuid()) + ",group_id=" + std::to_string(getgid()) + m.data;
    if (mount(m.source.c_str(), mountpoint_.c_str(), m.type.c_str(), m.flags, data.c_str()) != 0) {
      *err = "mount of " + mountpoint_ + " failed: " + std::strerror(errno);
      close(fd);
      return false;
    }
    shared_.fd = fd;
    return true;
  }

  void Detach() {
    if (se_ != nullptr) fuse_session_unmount(se_);
    else umount2(mountpoint_.c_str(), MNT_DETACH);
  }

  // The loop: this thread and threads_ - 1 more each poll /dev/fuse and read what comes.
  void Run() {
    std::vector<std::thread> workers;
    for (unsigned i = 1; i < threads_; i++) workers.emplace_back([this]() { Work(); });
    Work();
    for (auto& w : workers) w.join();
    // No thread reads /dev/fuse any more: letting go of it now aborts the connection (if
    // no supervisor holds it too), so a request the kernel queued after the loop stopped
    // fails at once instead of waiting for a reply nobody will send.
    bool byUs = ending_.load();
    if (!byUs) mounted_ = false;  // unmounted from outside: the path may hold another mount soon
    if (byUs && !callerDetaches_ && mounted_.exchange(false)) Detach();
    CloseFd();
    auto* r = make(OP_EXIT, 0);
    r->info = byUs ? "unmounted" : "loop ended: the filesystem was unmounted";
    dispatch(&shared_, r, 0);
  }

  void Work() {
    std::vector<char> buf(kBufSize);
    struct pollfd p[2] = {{shared_.fd, POLLIN, 0}, {shared_.wake, POLLIN, 0}};
    for (;;) {
      p[0].revents = p[1].revents = 0;
      if (poll(p, 2, -1) < 0) {
        if (errno == EINTR) continue;
        break;
      }
      if (p[1].revents != 0) break;
      ssize_t n = read(shared_.fd, buf.data(), buf.size());
      if (n < 0) {
        if (errno == EAGAIN || errno == EINTR || errno == ENOENT) continue;
        // ENODEV: unmounted, the connection is gone. Anything else: nothing more to read.
        Wake();
        break;
      }
      handle(&shared_, buf.data(), static_cast<size_t>(n));
    }
  }

  void Wake() {
    uint64_t one = 1;
    if (write(shared_.wake, &one, sizeof one) < 0) {
    }
  }

  // /dev/fuse let go of: replaced by /dev/null under the same number, not closed, so a
  // reply still being written from the main thread cannot land in a descriptor opened
  // since. destroy() closes the number (libfuse's own session closes it when destroyed).
  void CloseFd() {
    std::lock_guard<std::mutex> lock(fdMu_);
    if (fdClosed_) return;
    fdClosed_ = true;
    int null = open("/dev/null", O_RDWR | O_CLOEXEC);
    if (null >= 0) {
      dup3(null, shared_.fd, O_CLOEXEC);
      close(null);
    }
  }

  // Every request not answered yet, and every one that arrives from now on, gets `err`
  // (a release gets 0). The loop keeps running, so readers get that errno rather than a
  // connection abort. Returns how many requests it failed.
  size_t FailAll(int err) {
    std::vector<Outstanding> left;
    {
      std::lock_guard<std::mutex> lock(shared_.reqMutex);
      shared_.stopping = true;
      shared_.stopErr = err;
      for (auto& e : shared_.outstanding) left.push_back(e.second);
      shared_.outstanding.clear();
    }
    for (auto& o : left) replyStopping(&shared_, o, err);
    return left.size();
  }

  // Asks the loop to end, without waiting. When it has, /dev/fuse is let go (and the mount
  // detached unless the caller does), then OP_EXIT arrives and destroy() frees the session.
  void RequestEnd() {
    if (shared_.fd < 0 || ending_.exchange(true)) return;
    Wake();
  }

  void RequestStop(int err) {
    FailAll(err);
    RequestEnd();
  }

  // unmount(): everything left fails with EIO, the loop ends, the session detaches the mount.
  Napi::Value Unmount(const Napi::CallbackInfo& info) {
    RequestStop(EIO);
    return info.Env().Undefined();
  }

  // stop(errno): everything left fails with errno and the loop goes on failing what comes;
  // the caller detaches the mount itself. Returns how many requests it failed.
  Napi::Value Stop(const Napi::CallbackInfo& info) {
    int err = info.Length() > 0 ? info[0].As<Napi::Number>().Int32Value() : EIO;
    callerDetaches_ = true;
    return Napi::Number::New(info.Env(), static_cast<double>(FailAll(err)));
  }

  // end(): the loop ends now, and the connection with it (after stop(): a reader still
  // holding a file gets ENOTCONN from then on).
  Napi::Value End(const Napi::CallbackInfo& info) {
    RequestEnd();
    return info.Env().Undefined();
  }

  Napi::Value Destroy(const Napi::CallbackInfo& info) {
    if (destroyed_) return info.Env().Undefined();
    destroyed_ = true;
    RequestStop(EIO);
    if (thread_.joinable()) thread_.join();
    if (mounted_.exchange(false) && !callerDetaches_) Detach();
    CloseFd();
    // No thread is left to write to it, and every request was answered: the number goes.
    if (se_ != nullptr) fuse_session_destroy(se_);
    else if (shared_.fd >= 0) close(shared_.fd);
    se_ = nullptr;
    if (shared_.wake >= 0) close(shared_.wake);
    shared_.wake = -1;
    delete shared_.table;
    shared_.table = nullptr;
    shared_.tsfn.Release();
    return info.Env().Undefined();
  }

  // handover(): what another process needs to serve this connection:
  // { fd, tableFd, minor, passthrough } (the descriptors stay this session's).
  Napi::Value Handover(const Napi::CallbackInfo& info) {
    Napi::Object o = Napi::Object::New(info.Env());
    o.Set("fd", shared_.fd);
    o.Set("tableFd", shared_.table != nullptr ? shared_.table->fd() : -1);
    o.Set("minor", shared_.minor);
    o.Set("passthrough", shared_.passthrough);
    o.Set("initialized", shared_.initialized.load());
    o.Set("adopted", adopted_);
    return o;
  }

  Napi::Value SetHasXattrs(const Napi::CallbackInfo& info) {
    uint64_t ino = static_cast<uint64_t>(info[0].As<Napi::Number>().Int64Value());
    bool has = info[1].As<Napi::Boolean>().Value();
    std::lock_guard<std::mutex> lock(shared_.xattrMutex);
    if (has) shared_.hasXattrs.insert(ino);
    else shared_.hasXattrs.erase(ino);
    return info.Env().Undefined();
  }

  Napi::Value SetNoXattrs(const Napi::CallbackInfo& info) {
    shared_.noXattrs = info[0].As<Napi::Boolean>().Value();
    return info.Env().Undefined();
  }

  // mapFile(ino, size, offs: Float64Array, lens: Float64Array, paths: string[]); '' = zeros
  Napi::Value MapFile(const Napi::CallbackInfo& info) {
    uint64_t ino = static_cast<uint64_t>(info[0].As<Napi::Number>().Int64Value());
    uint64_t size = static_cast<uint64_t>(info[1].As<Napi::Number>().Int64Value());
    Napi::Float64Array o = info[2].As<Napi::Float64Array>();
    Napi::Float64Array l = info[3].As<Napi::Float64Array>();
    Napi::Array p = info[4].As<Napi::Array>();
    size_t n = std::min({o.ElementLength(), l.ElementLength(), static_cast<size_t>(p.Length())});
    std::vector<uint64_t> offs(n), lens(n);
    std::vector<std::string> paths(n);
    for (size_t i = 0; i < n; i++) {
      offs[i] = static_cast<uint64_t>(o[i]);
      lens[i] = static_cast<uint64_t>(l[i]);
      paths[i] = p.Get(static_cast<uint32_t>(i)).As<Napi::String>().Utf8Value();
    }
    shared_.readMap.Map(ino, size, offs, lens, paths);
    return info.Env().Undefined();
  }

  // mapWhole(ino, size, path): the whole file is that plain file (reads here, and a passthrough backing).
  Napi::Value MapWhole(const Napi::CallbackInfo& info) {
    uint64_t ino = static_cast<uint64_t>(info[0].As<Napi::Number>().Int64Value());
    uint64_t size = static_cast<uint64_t>(info[1].As<Napi::Number>().Int64Value());
    shared_.readMap.MapWhole(ino, size, info[2].As<Napi::String>().Utf8Value());
    return info.Env().Undefined();
  }

  // The kernel forgot the inode: its parts, and the backing file a passthrough open used.
  Napi::Value UnmapFile(const Napi::CallbackInfo& info) {
    uint64_t ino = static_cast<uint64_t>(info[0].As<Napi::Number>().Int64Value());
    shared_.readMap.Unmap(ino);
    if (shared_.table != nullptr && shared_.passthrough) closeBacking(&shared_, shared_.table->Forget(ino));
    return info.Env().Undefined();
  }

  // [reads answered here, their bytes, parts mapped]
  Napi::Value NativeReads(const Napi::CallbackInfo& info) {
    Napi::Float64Array a = Napi::Float64Array::New(info.Env(), 3);
    a[0] = static_cast<double>(shared_.readMap.reads());
    a[1] = static_cast<double>(shared_.readMap.bytes());
    a[2] = static_cast<double>(shared_.readMap.parts());
    return a;
  }

  // { enabled, reason, opens, cachedOpens, backingErrno, cachedWhy }
  Napi::Value PassthroughStats(const Napi::CallbackInfo& info) {
    Napi::Object o = Napi::Object::New(info.Env());
    o.Set("enabled", shared_.passthrough);
    o.Set("reason", shared_.passthroughRefused);
    bool t = shared_.table != nullptr && shared_.passthrough;
    o.Set("opens", static_cast<double>(t ? shared_.table->passthroughOpens() : 0));
    o.Set("cachedOpens", static_cast<double>(t ? shared_.table->cachedOpens() : 0));
    o.Set("backingErrno", shared_.backingErrno.load());
    // Counted by this server (the totals above are the mount's, kept in the open table).
    Napi::Object why = Napi::Object::New(info.Env());
    const char* names[] = {nullptr, "notWhole", "openThroughPageCache", "backingRefused", "openTableFull", "statusFile"};
    for (int i = 1; i <= stargzfs::OpenTable::kWhys; i++)
      why.Set(names[i], static_cast<double>(__atomic_load_n(&shared_.cachedWhy[i], __ATOMIC_RELAXED)));
    o.Set("cachedWhy", why);
    return o;
  }

  Napi::Value Pending(const Napi::CallbackInfo& info) {
    std::lock_guard<std::mutex> lock(shared_.reqMutex);
    return Napi::Number::New(info.Env(), static_cast<double>(shared_.outstanding.size()));
  }

  // The request named by info[0], taken out of the table; false if it was answered already.
  bool claim(const Napi::CallbackInfo& info, Outstanding* o) { return take(&shared_, idOf(info[0]), o); }

  Napi::Value ReplyErr(const Napi::CallbackInfo& info) {
    Outstanding o;
    if (claim(info, &o)) {
      int err = info[1].As<Napi::Number>().Int32Value();
      if (o.counted && shared_.table != nullptr) shared_.table->Unpend(o.ino);
      send(&shared_, o.unique, err);
    }
    return info.Env().Undefined();
  }

  // A request with no answer (there are none the kernel waits for): nothing is written.
  Napi::Value ReplyNone(const Napi::CallbackInfo& info) {
    Outstanding o;
    claim(info, &o);
    return info.Env().Undefined();
  }

  Napi::Value ReplyEntry(const Napi::CallbackInfo& info) {
    // (req, ino, attr, timeoutSec, hasXattrs); ino 0 = a negative entry cached for timeoutSec
    uint64_t ino = static_cast<uint64_t>(info[1].As<Napi::Number>().Int64Value());
    fuse_entry_out e;
    fillEntry(ino, info[2].As<Napi::Float64Array>().Data(), info[3].As<Napi::Number>().DoubleValue(), &e);
    if (ino != 0 && info[4].As<Napi::Boolean>().Value()) {
      std::lock_guard<std::mutex> lock(shared_.xattrMutex);
      shared_.hasXattrs.insert(ino);
    }
    Outstanding o;
    if (claim(info, &o)) sendBuf(&shared_, o.unique, &e, sizeof e);
    return info.Env().Undefined();
  }

  Napi::Value ReplyAttr(const Napi::CallbackInfo& info) {
    fuse_attr_out a;
    std::memset(&a, 0, sizeof a);
    fillAttr(info[2].As<Napi::Float64Array>().Data(), static_cast<uint64_t>(info[1].As<Napi::Number>().Int64Value()), &a.attr);
    uint32_t nsec;
    splitTimeout(info[3].As<Napi::Number>().DoubleValue(), &a.attr_valid, &nsec);
    a.attr_valid_nsec = nsec;
    Outstanding o;
    if (claim(info, &o)) sendBuf(&shared_, o.unique, &a, sizeof a);
    return info.Env().Undefined();
  }

  // (req, fh, keepCache, directIo). An open the table left to JavaScript is settled here:
  // passthrough if the file is whole in one plain file by now (JavaScript may just have
  // mapped it) and no file of it is open through the page cache, or if one of it is open
  // passthrough already.
  Napi::Value ReplyOpen(const Napi::CallbackInfo& info) {
    uint64_t fh = static_cast<uint64_t>(info[1].As<Napi::Number>().Int64Value());
    bool keep = info[2].As<Napi::Boolean>().Value();
    bool direct = info[3].As<Napi::Boolean>().Value();
    Outstanding o;
    if (!claim(info, &o)) return info.Env().Undefined();
    uint32_t flags = (keep ? FOPEN_KEEP_CACHE | FOPEN_CACHE_DIR : 0) | (direct ? FOPEN_DIRECT_IO : 0);
    if (o.op == OP_OPEN && o.counted && shared_.table != nullptr) {
      std::string path;
      bool candidate = !direct && shared_.readMap.Whole(o.ino, &path);
      int why = stargzfs::OpenTable::kPassthrough;
      int32_t backing = shared_.table->Settle(o.ino, candidate, [&]() { return openBacking(&shared_, path); }, &why);
      // status.json is read direct, never passthrough: counted apart from the files.
      __atomic_fetch_add(&shared_.cachedWhy[direct ? static_cast<int>(stargzfs::OpenTable::kWhys) : why], 1, __ATOMIC_RELAXED);
      if (backing > 0) {
        sendOpen(&shared_, o.unique, kPassthroughFh | fh, stargzfs::kOpenPassthrough, backing);
        return info.Env().Undefined();
      }
    }
    sendOpen(&shared_, o.unique, fh, flags, 0);
    return info.Env().Undefined();
  }

  Napi::Value ReplyBuf(const Napi::CallbackInfo& info) {
    Outstanding o;
    if (!claim(info, &o)) return info.Env().Undefined();
    if (info[1].IsBuffer()) {
      Napi::Buffer<char> b = info[1].As<Napi::Buffer<char>>();
      sendBuf(&shared_, o.unique, b.Data(), b.Length());
    } else {
      send(&shared_, o.unique, 0);
    }
    return info.Env().Undefined();
  }

  Napi::Value ReplyReadlink(const Napi::CallbackInfo& info) {
    std::string target = info[1].As<Napi::String>().Utf8Value();
    Outstanding o;
    if (claim(info, &o)) sendBuf(&shared_, o.unique, target.data(), target.size());
    return info.Env().Undefined();
  }

  Napi::Value ReplyXattrSize(const Napi::CallbackInfo& info) {
    fuse_getxattr_out out;
    out.size = static_cast<uint32_t>(info[1].As<Napi::Number>().Int64Value());
    out.padding = 0;
    Outstanding o;
    if (claim(info, &o)) sendBuf(&shared_, o.unique, &out, sizeof out);
    return info.Env().Undefined();
  }

  // replyDir(req, size, plus, names, inos, attrs, nextOffs, hasXattrs, timeout): as many
  // entries as fit in `size`; returns how many were taken (readdirplus counts a lookup for
  // each, so JavaScript must know). Flat arguments, one N-API value each rather than
  // several per entry: names each followed by a NUL (no name holds one), attrs kAttrSlots
  // numbers per entry (fillAttr's order), hasXattrs one byte per entry.
  Napi::Value ReplyDir(const Napi::CallbackInfo& info) {
    Outstanding o;
    if (!claim(info, &o)) return Napi::Number::New(info.Env(), 0);
    size_t size = static_cast<size_t>(info[1].As<Napi::Number>().Int64Value());
    bool plus = info[2].As<Napi::Boolean>().Value();
    std::string names = info[3].As<Napi::String>().Utf8Value();
    Napi::Float64Array inos = info[4].As<Napi::Float64Array>();
    Napi::Float64Array attrs = info[5].As<Napi::Float64Array>();
    Napi::Float64Array offs = info[6].As<Napi::Float64Array>();
    Napi::Uint8Array xattrs = info[7].As<Napi::Uint8Array>();
    double timeout = info[8].As<Napi::Number>().DoubleValue();
    size_t n = std::min({inos.ElementLength(), offs.ElementLength(), xattrs.ElementLength(), attrs.ElementLength() / kAttrSlots});
    std::vector<char> buf(size);
    size_t used = 0;
    uint32_t taken = 0;
    size_t at = 0;
    for (size_t i = 0; i < n && at < names.size(); i++) {
      // Each name ends with its NUL, the string's own bytes.
      const char* name = names.data() + at;
      size_t namelen = std::strlen(name);
      at += namelen + 1;
      uint64_t ino = static_cast<uint64_t>(inos[i]);
      const double* a = attrs.Data() + i * kAttrSlots;
      size_t head = plus ? sizeof(fuse_entry_out) + FUSE_NAME_OFFSET : FUSE_NAME_OFFSET;
      size_t len = FUSE_DIRENT_ALIGN(head + namelen);
      if (len > size - used) break;
      char* dst = buf.data() + used;
      std::memset(dst, 0, len);
      fuse_dirent* d;
      if (plus) {
        auto* dp = reinterpret_cast<fuse_direntplus*>(dst);
        fillEntry(ino, a, timeout, &dp->entry_out);
        d = &dp->dirent;
      } else {
        d = reinterpret_cast<fuse_dirent*>(dst);
      }
      d->ino = ino;
      d->off = static_cast<uint64_t>(offs[i]);
      d->namelen = static_cast<uint32_t>(namelen);
      d->type = (static_cast<uint32_t>(a[0]) & S_IFMT) >> 12;
      std::memcpy(d->name, name, namelen);
      if (plus && xattrs[i] != 0) {
        std::lock_guard<std::mutex> lock(shared_.xattrMutex);
        shared_.hasXattrs.insert(ino);
      }
      used += len;
      taken++;
    }
    sendBuf(&shared_, o.unique, buf.data(), used);
    return Napi::Number::New(info.Env(), taken);
  }

  Napi::Value ReplyStatfs(const Napi::CallbackInfo& info) {
    // [bsize, blocks, bfree, bavail, files, ffree, namemax]
    Napi::Float64Array a = info[1].As<Napi::Float64Array>();
    fuse_statfs_out out;
    std::memset(&out, 0, sizeof out);
    out.st.bsize = out.st.frsize = static_cast<uint32_t>(a[0]);
    out.st.blocks = static_cast<uint64_t>(a[1]);
    out.st.bfree = static_cast<uint64_t>(a[2]);
    out.st.bavail = static_cast<uint64_t>(a[3]);
    out.st.files = static_cast<uint64_t>(a[4]);
    out.st.ffree = static_cast<uint64_t>(a[5]);
    out.st.namelen = static_cast<uint32_t>(a[6]);
    Outstanding o;
    if (claim(info, &o)) sendBuf(&shared_, o.unique, &out, sizeof out);
    return info.Env().Undefined();
  }

  std::string mountpoint_;
  Shared shared_;
  unsigned threads_ = 16;
  // Mounted through libfuse (not root): libfuse unmounts and closes.
  struct fuse_session* se_ = nullptr;
  bool adopted_ = false;
  bool destroyed_ = false;
  std::atomic<bool> mounted_{false};
  std::atomic<bool> ending_{false};
  // stop() was called: the mount at the path is the caller's to detach, never the session's.
  std::atomic<bool> callerDetaches_{false};
  std::mutex fdMu_;
  bool fdClosed_ = false;
  std::thread thread_;
};

Napi::Object InitModule(Napi::Env env, Napi::Object exports) {
  exports.Set("Session", Session::Init(env));
  Napi::Object ops = Napi::Object::New(env);
  for (const auto& [name, op] : kOpNames) ops.Set(name, op);
  exports.Set("ops", ops);
  exports.Set("attrSlots", static_cast<double>(kAttrSlots));
  stargzfs::RegisterStdio(env, exports);
  stargzfs::RegisterMemory(env, exports);
  stargzfs::RegisterSocket(env, exports);
  stargzfs::RegisterSupervisor(env, exports);
  return exports;
}

}  // namespace

NODE_API_MODULE(stargzfs_fuse, InitModule)
