// The server's side of the supervisor's socket (native/supervisor.c): messages on an
// AF_UNIX SOCK_SEQPACKET socket, with descriptors passed as SCM_RIGHTS, which Node's own
// sockets cannot send. Blocking calls: the supervisor answers at once, and the server
// talks to it only when a mount starts or ends and when it starts up.
#include <napi.h>

#include <fcntl.h>
#include <poll.h>
#include <sys/socket.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>
#include <vector>

namespace stargzfs {

namespace {

constexpr size_t kMaxMessage = 65536;
constexpr size_t kMaxFds = 8;

Napi::Value Fail(Napi::Env env, const char* what) {
  Napi::Error e = Napi::Error::New(env, std::string(what) + ": " + std::strerror(errno));
  e.Set("code", Napi::String::New(env, errno == EAGAIN ? "ETIMEDOUT" : "ESUPERVISOR"));
  e.ThrowAsJavaScriptException();
  return env.Undefined();
}

// socketPair(): [a, b], both close-on-exec (a child gets one through spawn's stdio).
Napi::Value SocketPair(const Napi::CallbackInfo& info) {
  int sv[2];
  if (socketpair(AF_UNIX, SOCK_SEQPACKET | SOCK_CLOEXEC, 0, sv) != 0) return Fail(info.Env(), "socketpair");
  Napi::Array a = Napi::Array::New(info.Env(), 2);
  a.Set(0u, sv[0]);
  a.Set(1u, sv[1]);
  return a;
}

// sendMessage(fd, data: Buffer, fds: number[])
Napi::Value SendMessage(const Napi::CallbackInfo& info) {
  int fd = info[0].As<Napi::Number>().Int32Value();
  Napi::Buffer<char> data = info[1].As<Napi::Buffer<char>>();
  Napi::Array fds = info[2].As<Napi::Array>();
  std::vector<int> pass;
  for (uint32_t i = 0; i < fds.Length() && i < kMaxFds; i++) pass.push_back(fds.Get(i).As<Napi::Number>().Int32Value());
  struct iovec iov = {data.Data(), data.Length()};
  struct msghdr m;
  std::memset(&m, 0, sizeof m);
  m.msg_iov = &iov;
  m.msg_iovlen = 1;
  alignas(struct cmsghdr) char ctl[CMSG_SPACE(sizeof(int) * kMaxFds)];
  if (!pass.empty()) {
    std::memset(ctl, 0, sizeof ctl);
    m.msg_control = ctl;
    m.msg_controllen = CMSG_SPACE(sizeof(int) * pass.size());
    struct cmsghdr* c = CMSG_FIRSTHDR(&m);
    c->cmsg_level = SOL_SOCKET;
    c->cmsg_type = SCM_RIGHTS;
    c->cmsg_len = CMSG_LEN(sizeof(int) * pass.size());
    std::memcpy(CMSG_DATA(c), pass.data(), sizeof(int) * pass.size());
  }
  ssize_t n;
  do n = sendmsg(fd, &m, MSG_NOSIGNAL);
  while (n < 0 && errno == EINTR);
  if (n < 0) return Fail(info.Env(), "sendmsg to the supervisor");
  return info.Env().Undefined();
}

// receiveMessage(fd, timeoutMs): { data: Buffer, fds: number[] }, or null at end of stream.
// The descriptors received are close-on-exec.
Napi::Value ReceiveMessage(const Napi::CallbackInfo& info) {
  int fd = info[0].As<Napi::Number>().Int32Value();
  int timeout = info[1].As<Napi::Number>().Int32Value();
  struct pollfd p = {fd, POLLIN, 0};
  int r;
  do r = poll(&p, 1, timeout);
  while (r < 0 && errno == EINTR);
  if (r == 0) {
    errno = EAGAIN;
    return Fail(info.Env(), "no answer from the supervisor");
  }
  if (r < 0) return Fail(info.Env(), "poll of the supervisor's socket");
  std::vector<char> buf(kMaxMessage);
  struct iovec iov = {buf.data(), buf.size()};
  struct msghdr m;
  std::memset(&m, 0, sizeof m);
  m.msg_iov = &iov;
  m.msg_iovlen = 1;
  alignas(struct cmsghdr) char ctl[CMSG_SPACE(sizeof(int) * kMaxFds)];
  m.msg_control = ctl;
  m.msg_controllen = sizeof ctl;
  ssize_t n;
  do n = recvmsg(fd, &m, MSG_CMSG_CLOEXEC);
  while (n < 0 && errno == EINTR);
  if (n < 0) return Fail(info.Env(), "recvmsg from the supervisor");
  Napi::Env env = info.Env();
  Napi::Array fds = Napi::Array::New(env);
  for (struct cmsghdr* c = CMSG_FIRSTHDR(&m); c != nullptr; c = CMSG_NXTHDR(&m, c)) {
    if (c->cmsg_level != SOL_SOCKET || c->cmsg_type != SCM_RIGHTS) continue;
    size_t count = (c->cmsg_len - CMSG_LEN(0)) / sizeof(int);
    const int* got = reinterpret_cast<const int*>(CMSG_DATA(c));
    for (size_t i = 0; i < count; i++) fds.Set(fds.Length(), got[i]);
  }
  if (n == 0 && fds.Length() == 0) return env.Null();
  Napi::Object out = Napi::Object::New(env);
  out.Set("data", Napi::Buffer<char>::Copy(env, buf.data(), static_cast<size_t>(n)));
  out.Set("fds", fds);
  return out;
}

Napi::Value CloseFd(const Napi::CallbackInfo& info) {
  close(info[0].As<Napi::Number>().Int32Value());
  return info.Env().Undefined();
}

}  // namespace

void RegisterSupervisor(Napi::Env env, Napi::Object exports) {
  exports.Set("socketPair", Napi::Function::New(env, SocketPair));
  exports.Set("sendMessage", Napi::Function::New(env, SendMessage));
  exports.Set("receiveMessage", Napi::Function::New(env, ReceiveMessage));
  exports.Set("closeFd", Napi::Function::New(env, CloseFd));
}

}  // namespace stargzfs
