// A spare server's socket (src/cli/spare.ts). A spare is a process that has started Node
// and loaded the CLI, then waits on a Unix socket for one `mount … --daemon` to take it
// over: most of a cold mount's start-up is spent before any of its requests can go out.
// The launcher's side is native/spare_client.c.
//
// listenSpare(path) → fd: binds and listens (the socket file is the caller's to remove).
// acceptClaim(fd) → Promise<{ fd, request }>: the first connection from this user that
//   sends a whole request (a big-endian uint32 length, then that many bytes). It blocks a
//   thread-pool thread while the spare waits, which is all a spare does.
// stopListening(fd): wakes acceptClaim, which then rejects with "stopped" (fd stays the
//   caller's to close).
//
// The claim's fd is blocking and close-on-exec: the server writes its status lines to it
// with fs.writeSync, as it does to the launcher's pipe (src/cli/ready.ts).
#include <napi.h>

#include <arpa/inet.h>
#include <cerrno>
#include <cstdint>
#include <cstring>
#include <string>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <unistd.h>

namespace stargzfs {
namespace {

constexpr uint32_t kMaxRequest = 1u << 20;

bool ReadAll(int fd, char* buf, size_t len) {
  while (len > 0) {
    ssize_t n = read(fd, buf, len);
    if (n < 0 && errno == EINTR) continue;
    if (n <= 0) return false;
    buf += n;
    len -= static_cast<size_t>(n);
  }
  return true;
}

class ClaimWorker : public Napi::AsyncWorker {
 public:
  ClaimWorker(Napi::Env env, int listen_fd)
      : Napi::AsyncWorker(env), listen_fd_(listen_fd), deferred_(Napi::Promise::Deferred::New(env)) {}

  Napi::Promise Promise() { return deferred_.Promise(); }

  void Execute() override {
    for (;;) {
      int fd = accept4(listen_fd_, nullptr, nullptr, SOCK_CLOEXEC);
      if (fd < 0) {
        if (errno == EINTR || errno == ECONNABORTED) continue;
        // shutdown() from stopListening lands here as EINVAL.
        SetError(errno == EINVAL ? "stopped" : std::string("accept: ") + std::strerror(errno));
        return;
      }
      // Only the user who runs the spare may hand it a command (and its environment).
      struct ucred cred {};
      socklen_t clen = sizeof cred;
      uint32_t be_len = 0;
      if (getsockopt(fd, SOL_SOCKET, SO_PEERCRED, &cred, &clen) != 0 || cred.uid != geteuid() ||
          !ReadAll(fd, reinterpret_cast<char*>(&be_len), sizeof be_len)) {
        close(fd);
        continue;
      }
      const uint32_t len = ntohl(be_len);
      std::string request(len, '\0');
      if (len > kMaxRequest || !ReadAll(fd, request.data(), len)) {
        close(fd);
        continue;
      }
      fd_ = fd;
      request_ = std::move(request);
      return;
    }
  }

  void OnOK() override {
    Napi::Env env = Env();
    Napi::Object result = Napi::Object::New(env);
    result.Set("fd", Napi::Number::New(env, fd_));
    result.Set("request", Napi::Buffer<char>::Copy(env, request_.data(), request_.size()));
    deferred_.Resolve(result);
  }

  void OnError(const Napi::Error& e) override { deferred_.Reject(e.Value()); }

 private:
  int listen_fd_;
  int fd_ = -1;
  std::string request_;
  Napi::Promise::Deferred deferred_;
};

Napi::Value ListenSpare(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  if (info.Length() < 1 || !info[0].IsString()) {
    Napi::TypeError::New(env, "listenSpare(path: string)").ThrowAsJavaScriptException();
    return env.Undefined();
  }
  const std::string path = info[0].As<Napi::String>().Utf8Value();
  struct sockaddr_un addr {};
  if (path.size() >= sizeof addr.sun_path) {
    Napi::Error::New(env, path + ": socket path too long").ThrowAsJavaScriptException();
    return env.Undefined();
  }
  addr.sun_family = AF_UNIX;
  std::memcpy(addr.sun_path, path.c_str(), path.size() + 1);
  int fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
  if (fd < 0 || bind(fd, reinterpret_cast<struct sockaddr*>(&addr), sizeof addr) != 0 ||
      chmod(path.c_str(), 0600) != 0 || listen(fd, 8) != 0) {
    const int err = errno;
    if (fd >= 0) close(fd);
    Napi::Error::New(env, path + ": " + std::strerror(err)).ThrowAsJavaScriptException();
    return env.Undefined();
  }
  return Napi::Number::New(env, fd);
}

Napi::Value AcceptClaim(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  if (info.Length() < 1 || !info[0].IsNumber()) {
    Napi::TypeError::New(env, "acceptClaim(fd: number)").ThrowAsJavaScriptException();
    return env.Undefined();
  }
  auto* worker = new ClaimWorker(env, info[0].As<Napi::Number>().Int32Value());
  Napi::Promise promise = worker->Promise();
  worker->Queue();
  return promise;
}

Napi::Value StopListening(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  if (info.Length() < 1 || !info[0].IsNumber()) {
    Napi::TypeError::New(env, "stopListening(fd: number)").ThrowAsJavaScriptException();
    return env.Undefined();
  }
  shutdown(info[0].As<Napi::Number>().Int32Value(), SHUT_RDWR);
  return env.Undefined();
}

}  // namespace

void RegisterSpare(Napi::Env env, Napi::Object exports) {
  exports.Set("listenSpare", Napi::Function::New(env, ListenSpare, "listenSpare"));
  exports.Set("acceptClaim", Napi::Function::New(env, AcceptClaim, "acceptClaim"));
  exports.Set("stopListening", Napi::Function::New(env, StopListening, "stopListening"));
}

}  // namespace stargzfs
