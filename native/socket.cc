// quickAck(fd): sends a TCP socket's delayed ACK now (TCP_QUICKACK). A server that writes a
// response's headers and body apart without TCP_NODELAY (Python's http.server, the shaping
// proxy the reference comparisons run through) holds the body's last small segment until
// the headers are ACKed (Nagle); on a keep-alive connection Linux delays that ACK by up to
// 40 ms. Measured through that proxy: 40-50 ms added to most ranged GETs of 1 KB-150 KB,
// one per dependent read of a cold program start. Node has no setsockopt.
#include <napi.h>

#include <netinet/in.h>
#include <netinet/tcp.h>
#include <sys/socket.h>

namespace stargzfs {

static Napi::Value QuickAck(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  if (info.Length() < 1 || !info[0].IsNumber()) return Napi::Boolean::New(env, false);
  const int fd = info[0].As<Napi::Number>().Int32Value();
  const int on = 1;
  return Napi::Boolean::New(env, fd >= 0 && setsockopt(fd, IPPROTO_TCP, TCP_QUICKACK, &on, sizeof on) == 0);
}

void RegisterSocket(Napi::Env env, Napi::Object exports) {
  exports.Set("quickAck", Napi::Function::New(env, QuickAck, "quickAck"));
}

}  // namespace stargzfs
