// The FUSE session addon: libfuse3's low-level API on its own multithreaded loop, every
// request handed to JavaScript through a thread-safe function (the worker thread returns
// at once), answered from JavaScript with reply* calls that carry the request handle.
// It owns no filesystem logic, with four exceptions that save round trips: operations
// that would write get EROFS here, forget is answered here (and passed on), getxattr/
// listxattr of an inode JavaScript marked as having no xattrs are answered here (ls -l
// asks two per file; see DESIGN.md "Where the time goes"; ENOSYS for all of them when
// the image has none, so the kernel stops asking), and reads inside chunk files that
// JavaScript has verified are answered here from those files (read_map.h).
//
// JavaScript never holds a libfuse request pointer: it gets a number that names the
// request in a table here, and a reply takes the request out of the table first. So a
// request is answered exactly once whoever answers it (JavaScript, or stop() failing all
// that are left), and a late reply to a request already answered is dropped rather than
// written into whatever request reuses the freed memory.
#define FUSE_USE_VERSION 312
#include <fuse_lowlevel.h>
#include <napi.h>

#include "read_map.h"

#include <algorithm>
#include <atomic>
#include <cerrno>
#include <cstring>
#include <fcntl.h>
#include <mutex>
#include <string>
#include <sys/stat.h>
#include <thread>
#include <unistd.h>
#include <unordered_map>
#include <unordered_set>
#include <vector>

namespace stargzfs {
void RegisterStdio(Napi::Env env, Napi::Object exports);  // native/stdio.cc
void RegisterMemory(Napi::Env env, Napi::Object exports);  // native/memory.cc
void RegisterSocket(Napi::Env env, Napi::Object exports);  // native/socket.cc
}

namespace {

enum Op {
  OP_LOOKUP = 1, OP_FORGET, OP_GETATTR, OP_OPENDIR, OP_READDIR, OP_READDIRPLUS, OP_RELEASEDIR,
  OP_OPEN, OP_READ, OP_RELEASE, OP_READLINK, OP_GETXATTR, OP_LISTXATTR, OP_STATFS, OP_ACCESS,
  OP_INIT, OP_EXIT, OP_FORGET_MULTI, OP_CREATE, OP_RMDIR,
};

struct Request {
  int op;
  fuse_req_t req;
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

class Session;

struct Outstanding {
  fuse_req_t req;
  int op;
};

struct Shared {
  Napi::ThreadSafeFunction tsfn;
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
  unsigned maxRead = 1 << 20;
  unsigned maxBackground = 128;
  // The kernel keeps a symlink's target once read (an image never changes); off for a
  // filesystem whose readlink has work to do each time (the layer store's `diff`).
  bool cacheSymlinks = true;
  // Reads answered here from verified chunk files (read_map.h).
  stargzfs::ReadMap readMap;
};

Shared* shared(fuse_req_t req) { return static_cast<Shared*>(fuse_req_userdata(req)); }

// The answer to a request while the session stops: a release is done (the file is closed
// either way), anything else fails.
void replyStopping(fuse_req_t req, int op, int err) {
  fuse_reply_err(req, op == OP_RELEASE || op == OP_RELEASEDIR ? 0 : err);
}

// Takes the request out of the table: the caller is now the one that answers it.
fuse_req_t take(Shared* s, uint64_t id) {
  std::lock_guard<std::mutex> lock(s->reqMutex);
  auto it = s->outstanding.find(id);
  if (it == s->outstanding.end()) return nullptr;
  fuse_req_t req = it->second.req;
  s->outstanding.erase(it);
  return req;
}

void dispatch(Shared* s, Request* r) {
  r->id = 0;
  if (r->req != nullptr) {
    std::lock_guard<std::mutex> lock(s->reqMutex);
    if (s->stopping) {
      replyStopping(r->req, r->op, EIO);
      delete r;
      return;
    }
    r->id = s->nextId++;
    s->outstanding.emplace(r->id, Outstanding{r->req, r->op});
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
    if (r->id != 0) {
      fuse_req_t req = take(s, r->id);
      if (req != nullptr) fuse_reply_err(req, EIO);
    }
    delete r;
  }
}

Request* make(int op, fuse_req_t req, uint64_t ino) {
  auto* r = new Request();
  r->op = op;
  r->req = req;
  r->ino = ino;
  r->size = 0;
  r->off = 0;
  r->fh = 0;
  r->flags = 0;
  return r;
}

void op_init(void* userdata, struct fuse_conn_info* conn) {
  auto* s = static_cast<Shared*>(userdata);
  std::string refused;
  conn->max_read = s->maxRead;  // must equal the max_read mount option
  // The kernel's readahead, as a disk's: 128 KiB. At 1 MiB each random 4 KiB pread of a
  // cached file read a megabyte of chunk file (ops/s 4,000 against 6,300, p99 1.3 ms against
  // 0.27 ms); sequential reads lost nothing (they ask for max_read-sized reads themselves).
  conn->max_readahead = 128 << 10;
  conn->max_write = s->maxRead;  // libfuse derives max_pages (the largest read) from this
  conn->max_background = s->maxBackground;
  conn->congestion_threshold = s->maxBackground * 3 / 4;
  const unsigned wanted[] = {FUSE_CAP_READDIRPLUS, FUSE_CAP_ASYNC_READ, FUSE_CAP_EXPORT_SUPPORT, FUSE_CAP_CACHE_SYMLINKS};
  const char* names[] = {"readdirplus", "async_read", "export_support", "cache_symlinks"};
  for (size_t i = 0; i < sizeof wanted / sizeof wanted[0]; i++) {
    if (wanted[i] == FUSE_CAP_CACHE_SYMLINKS && !s->cacheSymlinks) continue;
    if (conn->capable & wanted[i]) conn->want |= wanted[i];
    else refused += std::string(refused.empty() ? "" : ",") + names[i];
  }
  conn->want &= ~FUSE_CAP_READDIRPLUS_AUTO;  // always readdirplus: one round trip for ls -l
  auto* r = make(OP_INIT, nullptr, 0);
  r->info = "max_read=" + std::to_string(s->maxRead) + " max_readahead=" + std::to_string(conn->max_readahead) +
            " max_background=" + std::to_string(conn->max_background) + " proto=" + std::to_string(conn->proto_major) + "." +
            std::to_string(conn->proto_minor) + (refused.empty() ? "" : " refused=" + refused);
  dispatch(s, r);
}

void op_lookup(fuse_req_t req, fuse_ino_t parent, const char* name) {
  auto* r = make(OP_LOOKUP, req, parent);
  r->name = name;
  dispatch(shared(req), r);
}

void op_forget(fuse_req_t req, fuse_ino_t ino, uint64_t nlookup) {
  auto* s = shared(req);
  fuse_reply_none(req);
  auto* r = make(OP_FORGET, nullptr, ino);
  r->size = nlookup;
  dispatch(s, r);
}

void op_forget_multi(fuse_req_t req, size_t count, struct fuse_forget_data* forgets) {
  auto* s = shared(req);
  auto* r = make(OP_FORGET_MULTI, nullptr, 0);
  for (size_t i = 0; i < count; i++) r->forgets.emplace_back(forgets[i].ino, forgets[i].nlookup);
  fuse_reply_none(req);
  dispatch(s, r);
}

void op_getattr(fuse_req_t req, fuse_ino_t ino, struct fuse_file_info*) { dispatch(shared(req), make(OP_GETATTR, req, ino)); }

void op_open_common(int op, fuse_req_t req, fuse_ino_t ino, struct fuse_file_info* fi) {
  if ((fi->flags & O_ACCMODE) != O_RDONLY || (fi->flags & O_TRUNC)) {
    fuse_reply_err(req, EROFS);
    return;
  }
  auto* r = make(op, req, ino);
  r->flags = fi->flags;
  dispatch(shared(req), r);
}

void op_opendir(fuse_req_t req, fuse_ino_t ino, struct fuse_file_info* fi) { op_open_common(OP_OPENDIR, req, ino, fi); }
void op_open(fuse_req_t req, fuse_ino_t ino, struct fuse_file_info* fi) { op_open_common(OP_OPEN, req, ino, fi); }

void op_read_common(int op, fuse_req_t req, fuse_ino_t ino, size_t size, off_t off, struct fuse_file_info* fi) {
  auto* r = make(op, req, ino);
  r->size = size;
  r->off = off;
  r->fh = fi != nullptr ? fi->fh : 0;
  dispatch(shared(req), r);
}

void op_readdir(fuse_req_t req, fuse_ino_t ino, size_t size, off_t off, struct fuse_file_info* fi) { op_read_common(OP_READDIR, req, ino, size, off, fi); }
void op_readdirplus(fuse_req_t req, fuse_ino_t ino, size_t size, off_t off, struct fuse_file_info* fi) { op_read_common(OP_READDIRPLUS, req, ino, size, off, fi); }
void op_read(fuse_req_t req, fuse_ino_t ino, size_t size, off_t off, struct fuse_file_info* fi) {
  thread_local std::vector<char> buf;
  if (shared(req)->readMap.Read(ino, static_cast<uint64_t>(off), size, buf)) {
    fuse_reply_buf(req, buf.data(), buf.size());
    return;
  }
  op_read_common(OP_READ, req, ino, size, off, fi);
}

void op_release_common(int op, fuse_req_t req, fuse_ino_t ino, struct fuse_file_info* fi) {
  auto* r = make(op, req, ino);
  r->fh = fi->fh;
  dispatch(shared(req), r);
}
void op_release(fuse_req_t req, fuse_ino_t ino, struct fuse_file_info* fi) { op_release_common(OP_RELEASE, req, ino, fi); }
void op_releasedir(fuse_req_t req, fuse_ino_t ino, struct fuse_file_info* fi) { op_release_common(OP_RELEASEDIR, req, ino, fi); }

void op_readlink(fuse_req_t req, fuse_ino_t ino) { dispatch(shared(req), make(OP_READLINK, req, ino)); }

bool knownWithoutXattrs(Shared* s, fuse_ino_t ino) {
  std::lock_guard<std::mutex> lock(s->xattrMutex);
  return s->hasXattrs.count(ino) == 0;
}

void op_getxattr(fuse_req_t req, fuse_ino_t ino, const char* name, size_t size) {
  auto* s = shared(req);
  if (s->noXattrs) {
    fuse_reply_err(req, ENOSYS);
    return;
  }
  if (knownWithoutXattrs(s, ino)) {
    fuse_reply_err(req, ENODATA);
    return;
  }
  auto* r = make(OP_GETXATTR, req, ino);
  r->name = name;
  r->size = size;
  dispatch(s, r);
}

void op_listxattr(fuse_req_t req, fuse_ino_t ino, size_t size) {
  auto* s = shared(req);
  if (s->noXattrs) {
    fuse_reply_err(req, ENOSYS);
    return;
  }
  if (knownWithoutXattrs(s, ino)) {
    if (size == 0) fuse_reply_xattr(req, 0);
    else fuse_reply_buf(req, nullptr, 0);
    return;
  }
  auto* r = make(OP_LISTXATTR, req, ino);
  r->size = size;
  dispatch(s, r);
}

void op_statfs(fuse_req_t req, fuse_ino_t ino) { dispatch(shared(req), make(OP_STATFS, req, ino)); }

void op_access(fuse_req_t req, fuse_ino_t ino, int mask) {
  if (mask & W_OK) {
    fuse_reply_err(req, EROFS);
    return;
  }
  auto* r = make(OP_ACCESS, req, ino);
  r->flags = mask;
  dispatch(shared(req), r);
}

// Everything that would change the filesystem.
void erofs_setattr(fuse_req_t req, fuse_ino_t, struct stat*, int, struct fuse_file_info*) { fuse_reply_err(req, EROFS); }
void erofs_mknod(fuse_req_t req, fuse_ino_t, const char*, mode_t, dev_t) { fuse_reply_err(req, EROFS); }
void erofs_mkdir(fuse_req_t req, fuse_ino_t, const char*, mode_t) { fuse_reply_err(req, EROFS); }
void erofs_unlink(fuse_req_t req, fuse_ino_t, const char*) { fuse_reply_err(req, EROFS); }
void erofs_symlink(fuse_req_t req, const char*, fuse_ino_t, const char*) { fuse_reply_err(req, EROFS); }
void erofs_rename(fuse_req_t req, fuse_ino_t, const char*, fuse_ino_t, const char*, unsigned) { fuse_reply_err(req, EROFS); }
void erofs_link(fuse_req_t req, fuse_ino_t, fuse_ino_t, const char*) { fuse_reply_err(req, EROFS); }
void erofs_write(fuse_req_t req, fuse_ino_t, const char*, size_t, off_t, struct fuse_file_info*) { fuse_reply_err(req, EROFS); }
void erofs_setxattr(fuse_req_t req, fuse_ino_t, const char*, const char*, size_t, int) { fuse_reply_err(req, EROFS); }
void erofs_removexattr(fuse_req_t req, fuse_ino_t, const char*) { fuse_reply_err(req, EROFS); }
// Handed on, not refused here: on a read-only mount the kernel refuses them itself, and a
// writable one (the layer store) gives them meaning (podman's `use` and release).
void op_create(fuse_req_t req, fuse_ino_t parent, const char* name, mode_t, struct fuse_file_info*) {
  auto* r = make(OP_CREATE, req, parent);
  r->name = name;
  dispatch(shared(req), r);
}
void op_rmdir(fuse_req_t req, fuse_ino_t parent, const char* name) {
  auto* r = make(OP_RMDIR, req, parent);
  r->name = name;
  dispatch(shared(req), r);
}
void erofs_fallocate(fuse_req_t req, fuse_ino_t, int, off_t, off_t, struct fuse_file_info*) { fuse_reply_err(req, EROFS); }

fuse_lowlevel_ops makeOps() {
  fuse_lowlevel_ops ops;
  std::memset(&ops, 0, sizeof ops);
  ops.init = op_init;
  ops.lookup = op_lookup;
  ops.forget = op_forget;
  ops.forget_multi = op_forget_multi;
  ops.getattr = op_getattr;
  ops.opendir = op_opendir;
  ops.readdir = op_readdir;
  ops.readdirplus = op_readdirplus;
  ops.releasedir = op_releasedir;
  ops.open = op_open;
  ops.read = op_read;
  ops.release = op_release;
  ops.readlink = op_readlink;
  ops.getxattr = op_getxattr;
  ops.listxattr = op_listxattr;
  ops.statfs = op_statfs;
  ops.access = op_access;
  ops.setattr = erofs_setattr;
  ops.mknod = erofs_mknod;
  ops.mkdir = erofs_mkdir;
  ops.unlink = erofs_unlink;
  ops.rmdir = op_rmdir;
  ops.symlink = erofs_symlink;
  ops.rename = erofs_rename;
  ops.link = erofs_link;
  ops.write = erofs_write;
  ops.setxattr = erofs_setxattr;
  ops.removexattr = erofs_removexattr;
  ops.create = op_create;
  ops.fallocate = erofs_fallocate;
  return ops;
}

uint64_t idOf(const Napi::Value& v) {
  bool lossless = false;
  return v.As<Napi::BigInt>().Uint64Value(&lossless);
}

// a: [mode, nlink, uid, gid, rdev, size, blocks, mtimeSec, mtimeNsec]
void fillStatFrom(const double* a, uint64_t ino, struct stat* st) {
  std::memset(st, 0, sizeof *st);
  st->st_ino = ino;
  st->st_mode = static_cast<mode_t>(a[0]);
  st->st_nlink = static_cast<nlink_t>(a[1]);
  st->st_uid = static_cast<uid_t>(a[2]);
  st->st_gid = static_cast<gid_t>(a[3]);
  st->st_rdev = static_cast<dev_t>(a[4]);
  st->st_size = static_cast<off_t>(a[5]);
  st->st_blocks = static_cast<blkcnt_t>(a[6]);
  st->st_blksize = 4096;
  st->st_mtim.tv_sec = st->st_atim.tv_sec = st->st_ctim.tv_sec = static_cast<time_t>(a[7]);
  st->st_mtim.tv_nsec = st->st_atim.tv_nsec = st->st_ctim.tv_nsec = static_cast<long>(a[8]);
}

void fillStat(const Napi::Value& v, uint64_t ino, struct stat* st) {
  Napi::Float64Array a = v.As<Napi::Float64Array>();
  fillStatFrom(a.Data(), ino, st);
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
      InstanceMethod("nativeReads", &Session::NativeReads),
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

  // new Session(mountpoint, options: string[], handler, { maxRead, maxBackground, threads })
  explicit Session(const Napi::CallbackInfo& info) : Napi::ObjectWrap<Session>(info) {
    Napi::Env env = info.Env();
    mountpoint_ = info[0].As<Napi::String>().Utf8Value();
    Napi::Array opts = info[1].As<Napi::Array>();
    Napi::Object tune = info[3].As<Napi::Object>();
    shared_.maxRead = tune.Get("maxRead").As<Napi::Number>().Uint32Value();
    shared_.maxBackground = tune.Get("maxBackground").As<Napi::Number>().Uint32Value();
    unsigned threads = tune.Get("threads").As<Napi::Number>().Uint32Value();
    Napi::Value cacheSymlinks = tune.Get("cacheSymlinks");
    if (cacheSymlinks.IsBoolean()) shared_.cacheSymlinks = cacheSymlinks.As<Napi::Boolean>().Value();
    std::vector<std::string> argvStore = {"stargzfs"};
    for (uint32_t i = 0; i < opts.Length(); i++) {
      argvStore.push_back("-o");
      argvStore.push_back(opts.Get(i).As<Napi::String>().Utf8Value());
    }
    std::vector<char*> argv;
    for (auto& s : argvStore) argv.push_back(s.data());
    struct fuse_args args = FUSE_ARGS_INIT(static_cast<int>(argv.size()), argv.data());
    shared_.tsfn = Napi::ThreadSafeFunction::New(env, info[2].As<Napi::Function>(), "stargzfs-fuse", 0, 1);
    fuse_lowlevel_ops ops = makeOps();
    se_ = fuse_session_new(&args, &ops, sizeof ops, &shared_);
    if (se_ == nullptr) {
      shared_.tsfn.Release();
      Napi::Error::New(env, "fuse_session_new failed (bad mount options?)").ThrowAsJavaScriptException();
      return;
    }
    if (fuse_session_mount(se_, mountpoint_.c_str()) != 0) {
      fuse_session_destroy(se_);
      se_ = nullptr;
      shared_.tsfn.Release();
      Napi::Error::New(env, "fuse_session_mount failed for " + mountpoint_).ThrowAsJavaScriptException();
      return;
    }
    mounted_ = true;
    thread_ = std::thread([this, threads]() {
      struct fuse_loop_config* cfg = fuse_loop_cfg_create();
      fuse_loop_cfg_set_max_threads(cfg, threads);
      fuse_loop_cfg_set_clone_fd(cfg, 0);
      int rc = fuse_session_loop_mt(se_, cfg);
      fuse_loop_cfg_destroy(cfg);
      // No thread reads /dev/fuse any more: letting go of it now aborts the connection, so
      // a request the kernel queued after the loop stopped fails at once instead of
      // waiting for a reply nobody will send.
      if (unmounting_) {
        if (callerDetaches_) AbortConnection();
        else if (mounted_.exchange(false)) fuse_session_unmount(se_);  // closes it, then detaches
      }
      auto* r = make(OP_EXIT, nullptr, 0);
      r->info = unmounting_ ? "unmounted" : "loop ended (rc " + std::to_string(rc) + "): the filesystem was unmounted";
      dispatch(&shared_, r);
    });
  }

  ~Session() {
    if (se_ != nullptr && thread_.joinable()) {
      // Finalized while still mounted (the process is exiting): end the loop and let go.
      RequestStop(EIO);
      thread_.detach();
    }
  }

 private:
  // Every request not answered yet, and every one that arrives from now on, gets `err`
  // (a release gets 0). The loop keeps running, so readers get that errno rather than a
  // connection abort. Returns how many requests it failed.
  size_t FailAll(int err) {
    std::vector<Outstanding> left;
    {
      std::lock_guard<std::mutex> lock(shared_.reqMutex);
      shared_.stopping = true;
      for (auto& e : shared_.outstanding) left.push_back(e.second);
      shared_.outstanding.clear();
    }
    for (auto& o : left) replyStopping(o.req, o.op, err);
    return left.size();
  }

  // Asks the loop to end, without waiting. libfuse's workers notice the end only when a
  // request arrives, so a retrieve notification makes the kernel send one. When the loop
  // has ended, the loop thread lets go of /dev/fuse (and detaches the mount unless the
  // caller does), then OP_EXIT arrives and destroy() frees the session. Unlike libfuse's
  // fuse_session_unmount alone, /dev/fuse stays open until no worker reads it: closed
  // while they still did, replies went nowhere and readers waited for good.
  void RequestEnd() {
    if (se_ == nullptr || unmounting_.exchange(true)) return;
    fuse_session_exit(se_);
    // -ENOENT once the kernel has let go of the mount: the loop ends by itself then.
    fuse_lowlevel_notify_retrieve(se_, FUSE_ROOT_ID, 0, 0, nullptr);
  }

  void RequestStop(int err) {
    FailAll(err);
    RequestEnd();
  }

  // /dev/fuse replaced by /dev/null under the same number: the connection is aborted
  // (this was its only descriptor) and fuse_session_destroy still has a descriptor to close.
  void AbortConnection() {
    int fd = fuse_session_fd(se_);
    int null = open("/dev/null", O_RDWR | O_CLOEXEC);
    if (fd >= 0 && null >= 0) dup2(null, fd);
    if (null >= 0) close(null);
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
    if (se_ == nullptr) return info.Env().Undefined();
    RequestStop(EIO);
    if (thread_.joinable()) thread_.join();
    if (mounted_.exchange(false)) {
      if (callerDetaches_) AbortConnection();
      else fuse_session_unmount(se_);
    }
    fuse_session_destroy(se_);
    se_ = nullptr;
    shared_.tsfn.Release();
    return info.Env().Undefined();
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

  Napi::Value UnmapFile(const Napi::CallbackInfo& info) {
    shared_.readMap.Unmap(static_cast<uint64_t>(info[0].As<Napi::Number>().Int64Value()));
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

  Napi::Value Pending(const Napi::CallbackInfo& info) {
    std::lock_guard<std::mutex> lock(shared_.reqMutex);
    return Napi::Number::New(info.Env(), static_cast<double>(shared_.outstanding.size()));
  }

  // The request named by info[0], taken out of the table; nullptr if it was answered already.
  fuse_req_t claim(const Napi::CallbackInfo& info) { return take(&shared_, idOf(info[0])); }

  Napi::Value ReplyErr(const Napi::CallbackInfo& info) {
    fuse_req_t req = claim(info);
    if (req != nullptr) fuse_reply_err(req, info[1].As<Napi::Number>().Int32Value());
    return info.Env().Undefined();
  }

  Napi::Value ReplyNone(const Napi::CallbackInfo& info) {
    fuse_req_t req = claim(info);
    if (req != nullptr) fuse_reply_none(req);
    return info.Env().Undefined();
  }

  void entryParam(const Napi::CallbackInfo& info, size_t at, struct fuse_entry_param* e) {
    // (ino, attr, timeoutSec, hasXattrs); ino 0 = a negative entry cached for timeoutSec
    std::memset(e, 0, sizeof *e);
    uint64_t ino = static_cast<uint64_t>(info[at].As<Napi::Number>().Int64Value());
    double timeout = info[at + 2].As<Napi::Number>().DoubleValue();
    e->ino = ino;
    e->generation = 1;
    e->attr_timeout = timeout;
    e->entry_timeout = timeout;
    if (ino != 0) {
      fillStat(info[at + 1], ino, &e->attr);
      std::lock_guard<std::mutex> lock(shared_.xattrMutex);
      if (info[at + 3].As<Napi::Boolean>().Value()) shared_.hasXattrs.insert(ino);
    }
  }

  Napi::Value ReplyEntry(const Napi::CallbackInfo& info) {
    struct fuse_entry_param e;
    entryParam(info, 1, &e);
    fuse_req_t req = claim(info);
    if (req != nullptr) fuse_reply_entry(req, &e);
    return info.Env().Undefined();
  }

  Napi::Value ReplyAttr(const Napi::CallbackInfo& info) {
    struct stat st;
    fillStat(info[2], static_cast<uint64_t>(info[1].As<Napi::Number>().Int64Value()), &st);
    fuse_req_t req = claim(info);
    if (req != nullptr) fuse_reply_attr(req, &st, info[3].As<Napi::Number>().DoubleValue());
    return info.Env().Undefined();
  }

  Napi::Value ReplyOpen(const Napi::CallbackInfo& info) {
    struct fuse_file_info fi;
    std::memset(&fi, 0, sizeof fi);
    fi.fh = static_cast<uint64_t>(info[1].As<Napi::Number>().Int64Value());
    fi.keep_cache = info[2].As<Napi::Boolean>().Value() ? 1 : 0;
    fi.cache_readdir = fi.keep_cache;
    fi.direct_io = info[3].As<Napi::Boolean>().Value() ? 1 : 0;
    fuse_req_t req = claim(info);
    if (req != nullptr) fuse_reply_open(req, &fi);
    return info.Env().Undefined();
  }

  Napi::Value ReplyBuf(const Napi::CallbackInfo& info) {
    fuse_req_t req = claim(info);
    if (req == nullptr) return info.Env().Undefined();
    if (info[1].IsBuffer()) {
      Napi::Buffer<char> b = info[1].As<Napi::Buffer<char>>();
      fuse_reply_buf(req, b.Data(), b.Length());
    } else {
      fuse_reply_buf(req, nullptr, 0);
    }
    return info.Env().Undefined();
  }

  Napi::Value ReplyReadlink(const Napi::CallbackInfo& info) {
    std::string target = info[1].As<Napi::String>().Utf8Value();
    fuse_req_t req = claim(info);
    if (req != nullptr) fuse_reply_readlink(req, target.c_str());
    return info.Env().Undefined();
  }

  Napi::Value ReplyXattrSize(const Napi::CallbackInfo& info) {
    fuse_req_t req = claim(info);
    if (req != nullptr) fuse_reply_xattr(req, static_cast<size_t>(info[1].As<Napi::Number>().Int64Value()));
    return info.Env().Undefined();
  }

  // replyDir(req, size, plus, names, inos, attrs, nextOffs, hasXattrs, timeout): as many
  // entries as fit in `size`; returns how many were taken (readdirplus counts a lookup for
  // each, so JavaScript must know). Flat arguments, one N-API value each rather than
  // several per entry: names each followed by a NUL (no name holds one), attrs 9 numbers per entry
  // (fillStat's order), hasXattrs one byte per entry.
  Napi::Value ReplyDir(const Napi::CallbackInfo& info) {
    // Claimed before the entries are built: fuse_add_direntry_plus reads the request.
    fuse_req_t req = claim(info);
    if (req == nullptr) return Napi::Number::New(info.Env(), 0);
    size_t size = static_cast<size_t>(info[1].As<Napi::Number>().Int64Value());
    bool plus = info[2].As<Napi::Boolean>().Value();
    std::string names = info[3].As<Napi::String>().Utf8Value();
    Napi::Float64Array inos = info[4].As<Napi::Float64Array>();
    Napi::Float64Array attrs = info[5].As<Napi::Float64Array>();
    Napi::Float64Array offs = info[6].As<Napi::Float64Array>();
    Napi::Uint8Array xattrs = info[7].As<Napi::Uint8Array>();
    double timeout = info[8].As<Napi::Number>().DoubleValue();
    size_t n = std::min({inos.ElementLength(), offs.ElementLength(), xattrs.ElementLength(), attrs.ElementLength() / 9});
    std::vector<char> buf(size);
    size_t used = 0;
    uint32_t taken = 0;
    size_t at = 0;
    for (size_t i = 0; i < n && at < names.size(); i++) {
      // Each name ends with its NUL, the string's own bytes.
      const char* name = names.data() + at;
      at += std::strlen(name) + 1;
      uint64_t ino = static_cast<uint64_t>(inos[i]);
      off_t next = static_cast<off_t>(offs[i]);
      struct stat st;
      fillStatFrom(attrs.Data() + i * 9, ino, &st);
      size_t len;
      if (plus) {
        struct fuse_entry_param e;
        std::memset(&e, 0, sizeof e);
        e.ino = ino;
        e.generation = 1;
        e.attr = st;
        e.attr_timeout = timeout;
        e.entry_timeout = timeout;
        len = fuse_add_direntry_plus(req, buf.data() + used, size - used, name, &e, next);
      } else {
        len = fuse_add_direntry(req, buf.data() + used, size - used, name, &st, next);
      }
      if (len > size - used) break;
      if (plus && xattrs[i] != 0) {
        std::lock_guard<std::mutex> lock(shared_.xattrMutex);
        shared_.hasXattrs.insert(ino);
      }
      used += len;
      taken++;
    }
    fuse_reply_buf(req, buf.data(), used);
    return Napi::Number::New(info.Env(), taken);
  }

  Napi::Value ReplyStatfs(const Napi::CallbackInfo& info) {
    // [bsize, blocks, bfree, bavail, files, ffree, namemax]
    Napi::Float64Array a = info[1].As<Napi::Float64Array>();
    struct statvfs sv;
    std::memset(&sv, 0, sizeof sv);
    sv.f_bsize = sv.f_frsize = static_cast<unsigned long>(a[0]);
    sv.f_blocks = static_cast<fsblkcnt_t>(a[1]);
    sv.f_bfree = static_cast<fsblkcnt_t>(a[2]);
    sv.f_bavail = static_cast<fsblkcnt_t>(a[3]);
    sv.f_files = static_cast<fsfilcnt_t>(a[4]);
    sv.f_ffree = static_cast<fsfilcnt_t>(a[5]);
    sv.f_namemax = static_cast<unsigned long>(a[6]);
    fuse_req_t req = claim(info);
    if (req != nullptr) fuse_reply_statfs(req, &sv);
    return info.Env().Undefined();
  }

  std::string mountpoint_;
  Shared shared_;
  struct fuse_session* se_ = nullptr;
  std::atomic<bool> mounted_{false};
  std::atomic<bool> unmounting_{false};
  // stop() was called: the mount at the path is the caller's to detach, never the session's.
  std::atomic<bool> callerDetaches_{false};
  std::thread thread_;
};

Napi::Object InitModule(Napi::Env env, Napi::Object exports) {
  exports.Set("Session", Session::Init(env));
  stargzfs::RegisterStdio(env, exports);
  stargzfs::RegisterMemory(env, exports);
  stargzfs::RegisterSocket(env, exports);
  return exports;
}

}  // namespace

NODE_API_MODULE(stargzfs_fuse, InitModule)
