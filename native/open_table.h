// How each inode's files are open, as the kernel sees them. The kernel fails an open
// (EIO to whoever opened) that answers passthrough for an inode with a file open through
// the page cache, or cached for one with a passthrough file open; so every open and
// release is counted here per inode, beside the backing file id a passthrough inode
// reads from. The table lives in a memfd the supervisor holds as well: files outlive the
// server that opened them, and a server started after a crash (or an upgrade) maps the
// same counts and the same backing ids (they belong to the connection, not the process).
#pragma once

#include <pthread.h>

#include <cstdint>
#include <functional>
#include <string>

namespace stargzfs {

class OpenTable {
 public:
  // A new table in a new memfd; nullptr (and why in `err`) if that fails.
  static OpenTable* Create(std::string* err);
  // The table in `fd` (a memfd from Create, handed over by the supervisor); takes the fd.
  static OpenTable* Adopt(int fd, std::string* err);
  ~OpenTable();

  int fd() const { return fd_; }

  // Counts an open of `ino` and says how to answer it: a backing id (> 0) for a
  // passthrough open, or 0: not decided here (JavaScript answers it; counted pending until
  // Settle). `candidate`: the file could be read from one backing file; `openBacking`
  // makes the id (<= 0 when it cannot). An inode with a passthrough file open gets
  // passthrough whatever `candidate` says (the kernel would refuse anything else); one
  // with a file open through the page cache never does.
  int32_t Open(uint64_t ino, bool candidate, const std::function<int32_t()>& openBacking);
  // The answer to a pending open, as JavaScript replies: passthrough (the backing id) if
  // the inode has a passthrough file open, or none through the page cache and `candidate`;
  // else 0, and it counts as a page-cache open. Opens that arrive together before the file
  // was known whole (after the kernel forgot the inode, say) all go passthrough so.
  int32_t Settle(uint64_t ino, bool candidate, const std::function<int32_t()>& openBacking, int* why = nullptr);
  // Why Settle answered an open through the page cache (`why`; kPassthrough: it did not).
  enum Why { kPassthrough = 0, kNotWhole, kOpenCached, kBackingRefused, kTableFull, kWhys };
  // A pending open that failed: no file.
  void Unpend(uint64_t ino);
  // A file closed. Returns the inode's backing id once no file of it is open (0 if none):
  // the caller closes it, so a chunk file the cache evicted meanwhile frees its disk space.
  int32_t Release(uint64_t ino, bool passthrough);
  // The kernel forgot the inode (no file of it is open): its backing id to close, or 0.
  int32_t Forget(uint64_t ino);

  // [opens answered passthrough, opens answered cached] since the mount began.
  uint64_t passthroughOpens() const;
  uint64_t cachedOpens() const;

 private:
  struct Slot {
    uint64_t ino;
    uint32_t cached;       // answered through the page cache
    uint32_t passthrough;  // answered passthrough
    uint32_t pending;      // handed to JavaScript, not answered yet
    int32_t backing;
    uint32_t state;  // 0 empty, 1 live, 2 forgotten
    uint32_t pad;
  };
  struct Header {
    uint32_t magic;
    uint32_t slots;
    uint32_t used;  // live + forgotten
    uint32_t overflowed;
    uint64_t passthroughOpens;
    uint64_t cachedOpens;
    pthread_mutex_t mu;
  };
  OpenTable(int fd, void* base, size_t size);
  void lock();
  void unlock();
  Slot* find(uint64_t ino);
  Slot* insert(uint64_t ino);
  void compact();

  int fd_;
  void* base_;
  size_t size_;
  Header* h_;
  Slot* slots_;
};

}  // namespace stargzfs
