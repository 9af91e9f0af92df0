// reserveHeap(bytes) / releaseHeap(): the malloc heap a mount's start-up burst runs in.
//
// On the VMs this runs on (Firecracker-style, memory backed by the host on first touch),
// a page touched for the first time costs ~14 us: 3.5 ms per MiB, so a cold start that
// fetches 8 MB of landmark region and decodes it to 25 MB spent a quarter of a second in
// page faults on the main thread (bench/report/hello.md; minflt of the server in the
// note of issue 7). Freed memory is as good as new there once glibc returns it to the
// kernel, and glibc does so at every free of a buffer above 128 KiB (each one an mmap).
//
// reserveHeap keeps buffers below 64 MiB in the heap and the heap from being trimmed
// (freed memory is reused warm), then touches `bytes` of it on a pool thread and
// frees them: the burst that follows starts on warm pages. A server that has just
// started passes 0: a touching thread slowed the main thread's start by as much as it
// later saved (page faults and the JIT's mprotect calls contend for the process's memory
// map lock). releaseHeap, once the burst is over, gives the memory back.
#include <napi.h>

#include <malloc.h>
#include <unistd.h>

#include <cstdlib>
#include <vector>

namespace stargzfs {

static constexpr int kMmapThreshold = 64 << 20;
static constexpr int kReserveTrimThreshold = 512 << 20;
static constexpr size_t kPiece = 8 << 20;
// After release: glibc's own behaviour for a process this size, within a bound.
static constexpr int kSteadyTrimThreshold = 16 << 20;

// Touches the pieces on a pool thread, then frees them (into the main arena they came from).
class WarmWorker : public Napi::AsyncWorker {
 public:
  WarmWorker(Napi::Env env, std::vector<char*> pieces)
      : Napi::AsyncWorker(env), pieces_(std::move(pieces)), deferred_(Napi::Promise::Deferred::New(env)) {}

  Napi::Promise Promise() { return deferred_.Promise(); }

  void Execute() override {
    const size_t page = size_t(sysconf(_SC_PAGESIZE));
    for (char* p : pieces_) {
      for (size_t i = 0; i < kPiece; i += page) static_cast<volatile char*>(p)[i] = 0;
    }
    for (char* p : pieces_) std::free(p);
    pieces_.clear();
  }

  void OnOK() override { deferred_.Resolve(Napi::Boolean::New(Env(), true)); }
  void OnError(const Napi::Error& e) override { deferred_.Reject(e.Value()); }

 private:
  std::vector<char*> pieces_;
  Napi::Promise::Deferred deferred_;
};

static Napi::Value ReserveHeap(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  if (info.Length() < 1 || !info[0].IsNumber()) {
    Napi::TypeError::New(env, "reserveHeap(bytes: number)").ThrowAsJavaScriptException();
    return env.Undefined();
  }
  const double want = info[0].As<Napi::Number>().DoubleValue();
  if (!(want >= 0 && want <= double(kReserveTrimThreshold))) {
    Napi::RangeError::New(env, "reserveHeap: bytes must be 0 to 512 MiB").ThrowAsJavaScriptException();
    return env.Undefined();
  }
  const size_t bytes = size_t(want);
  auto done = Napi::Promise::Deferred::New(env);
  // The trim threshold must exceed what is freed at once, or the free gives it back.
  if (mallopt(M_MMAP_THRESHOLD, kMmapThreshold) != 1 || mallopt(M_TRIM_THRESHOLD, kReserveTrimThreshold) != 1) {
    done.Resolve(Napi::Boolean::New(env, false));
    return done.Promise();
  }
  // Allocated here, on the main thread, so the pieces belong to the main arena, the one
  // the JavaScript heap's buffers come from.
  std::vector<char*> pieces;
  for (size_t got = 0; got < bytes; got += kPiece) {
    char* p = static_cast<char*>(std::malloc(kPiece));
    if (p == nullptr) break;
    pieces.push_back(p);
  }
  if (pieces.empty()) {
    done.Resolve(Napi::Boolean::New(env, true));
    return done.Promise();
  }
  auto* worker = new WarmWorker(env, std::move(pieces));
  worker->Queue();
  return worker->Promise();
}

static Napi::Value ReleaseHeap(const Napi::CallbackInfo& info) {
  mallopt(M_TRIM_THRESHOLD, kSteadyTrimThreshold);
  malloc_trim(0);
  return info.Env().Undefined();
}

// Gives free malloc memory back to the kernel now, in every arena (a worker thread's too),
// whatever the trim threshold: after a TOC import on its own thread, whose SQLite page
// cache and buffers would otherwise stay in the process's RSS for good.
static Napi::Value TrimHeap(const Napi::CallbackInfo& info) {
  malloc_trim(0);
  return info.Env().Undefined();
}

void RegisterMemory(Napi::Env env, Napi::Object exports) {
  exports.Set("trimHeap", Napi::Function::New(env, TrimHeap, "trimHeap"));
  exports.Set("reserveHeap", Napi::Function::New(env, ReserveHeap, "reserveHeap"));
  exports.Set("releaseHeap", Napi::Function::New(env, ReleaseHeap, "releaseHeap"));
}

}  // namespace stargzfs
