// Reads served without JavaScript: for each file, the parts whose bytes are in a chunk
// file that this process has verified (written after its sha256 matched, or hashed once
// when first opened), as JavaScript reports them after it served a read. A FUSE worker
// thread then answers a read wholly inside those parts with preads of the chunk files,
// no round trip through the event loop, no copy of the whole chunk, no hashing per read.
// Anything else (a part not mapped, a chunk file gone) goes to JavaScript as before.
//
// Chunk files are content-addressed and never rewritten in place (written to tmp/, then
// renamed), so an open descriptor keeps reading the verified bytes even after the cache
// evicts the file.
#pragma once

#include <atomic>
#include <cstdint>
#include <list>
#include <map>
#include <memory>
#include <mutex>
#include <string>
#include <unordered_map>
#include <vector>

namespace stargzfs {

class ReadMap {
 public:
  // Adds parts of a file: [offs[i], offs[i] + lens[i]) is the chunk file paths[i] from its
  // start (an empty path: zeros). `size` is the file's size.
  void Map(uint64_t ino, uint64_t size, const std::vector<uint64_t>& offs, const std::vector<uint64_t>& lens,
           const std::vector<std::string>& paths);
  void Unmap(uint64_t ino);
  // The whole file is the plain file `path` from its start (its parts before are dropped).
  void MapWhole(uint64_t ino, uint64_t size, const std::string& path);
  void Clear();

  // Fills `out` with bytes [off, min(off + size, file size)) of the file when every one of
  // them is mapped and read back whole; false (and nothing filled) otherwise. A part whose
  // file cannot be read is forgotten, so the next read of it goes to JavaScript.
  bool Read(uint64_t ino, uint64_t off, uint64_t size, std::vector<char>& out);

  // The one chunk file that holds the whole file, from its start (a file of one chunk,
  // verified): what a passthrough open reads from. False when there is no such file.
  bool Whole(uint64_t ino, std::string* path);

  uint64_t reads() const { return reads_; }
  uint64_t bytes() const { return bytes_; }
  size_t parts();

 private:
  struct Part {
    uint64_t len;
    std::string path;  // empty: zeros
  };
  struct File {
    uint64_t size = 0;
    std::map<uint64_t, Part> parts;  // by file offset
  };
  struct Fd {
    int fd;
    explicit Fd(int f) : fd(f) {}
    ~Fd();
  };
  std::shared_ptr<Fd> open(const std::string& path);
  void forget(uint64_t ino, uint64_t at);

  std::mutex mu_;
  std::unordered_map<uint64_t, File> files_;
  size_t partCount_ = 0;

  // Open chunk files, least recently used first out; a reader holds its own reference, so
  // a descriptor is closed only once no read uses it.
  std::mutex fdMu_;
  std::list<std::string> fdOrder_;
  std::unordered_map<std::string, std::pair<std::shared_ptr<Fd>, std::list<std::string>::iterator>> fds_;

  std::atomic<uint64_t> reads_{0};
  std::atomic<uint64_t> bytes_{0};
};

}  // namespace stargzfs
