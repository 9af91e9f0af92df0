// redirectStdio(path): points this process's stdout and stderr at a file (appending).
// A `mount --daemon` server started by the shell launcher (src/cli/stargzfs.sh) inherits
// a pipe as stderr; everything it and libfuse print from then on belongs in its log file.
// Node has no dup2, and this must happen before Node first touches process.stderr.
#include <napi.h>

#include <cerrno>
#include <cstring>
#include <fcntl.h>
#include <string>
#include <unistd.h>

namespace stargzfs {

static Napi::Value RedirectStdio(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  if (info.Length() < 1 || !info[0].IsString()) {
    Napi::TypeError::New(env, "redirectStdio(path: string)").ThrowAsJavaScriptException();
    return env.Undefined();
  }
  const std::string path = info[0].As<Napi::String>().Utf8Value();
  int fd = open(path.c_str(), O_WRONLY | O_CREAT | O_APPEND | O_CLOEXEC, 0644);
  if (fd < 0 || dup2(fd, 1) < 0 || dup2(fd, 2) < 0) {
    const int err = errno;
    if (fd >= 0) close(fd);
    Napi::Error::New(env, path + ": " + std::strerror(err)).ThrowAsJavaScriptException();
    return env.Undefined();
  }
  close(fd);
  return env.Undefined();
}

void RegisterStdio(Napi::Env env, Napi::Object exports) {
  exports.Set("redirectStdio", Napi::Function::New(env, RedirectStdio, "redirectStdio"));
}

}  // namespace stargzfs
