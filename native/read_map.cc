// See read_map.h.
#include "read_map.h"

#include <algorithm>
#include <cerrno>
#include <cstring>
#include <fcntl.h>
#include <unistd.h>

namespace stargzfs {

namespace {
// Bounds: past this many parts the map starts over (JavaScript maps again what is read);
// past this many open chunk files the least recently used is closed.
constexpr size_t MAX_PARTS = 1 << 18;
constexpr size_t MAX_FDS = 512;
}  // namespace

ReadMap::Fd::~Fd() {
  if (fd >= 0) close(fd);
}

void ReadMap::Map(uint64_t ino, uint64_t size, const std::vector<uint64_t>& offs, const std::vector<uint64_t>& lens,
                  const std::vector<std::string>& paths) {
  std::lock_guard<std::mutex> lock(mu_);
  if (partCount_ + offs.size() > MAX_PARTS) {
    files_.clear();
    partCount_ = 0;
  }
  File& f = files_[ino];
  f.size = size;
  for (size_t i = 0; i < offs.size(); i++) {
    if (lens[i] == 0) continue;
    auto [it, added] = f.parts.insert_or_assign(offs[i], Part{lens[i], paths[i]});
    if (added) partCount_++;
  }
}

void ReadMap::Unmap(uint64_t ino) {
  std::lock_guard<std::mutex> lock(mu_);
  auto it = files_.find(ino);
  if (it == files_.end()) return;
  partCount_ -= it->second.parts.size();
  files_.erase(it);
}

void ReadMap::MapWhole(uint64_t ino, uint64_t size, const std::string& path) {
  std::lock_guard<std::mutex> lock(mu_);
  File& f = files_[ino];
  partCount_ -= f.parts.size();
  f.parts.clear();
  f.size = size;
  if (size == 0) return;
  f.parts.emplace(0, Part{size, path});
  partCount_++;
}

void ReadMap::Clear() {
  std::lock_guard<std::mutex> lock(mu_);
  files_.clear();
  partCount_ = 0;
}

bool ReadMap::Whole(uint64_t ino, std::string* path) {
  std::lock_guard<std::mutex> lock(mu_);
  auto it = files_.find(ino);
  if (it == files_.end() || it->second.size == 0 || it->second.parts.size() != 1) return false;
  const auto& [off, part] = *it->second.parts.begin();
  if (off != 0 || part.len != it->second.size || part.path.empty()) return false;
  *path = part.path;
  return true;
}

size_t ReadMap::parts() {
  std::lock_guard<std::mutex> lock(mu_);
  return partCount_;
}

void ReadMap::forget(uint64_t ino, uint64_t at) {
  std::lock_guard<std::mutex> lock(mu_);
  auto it = files_.find(ino);
  if (it == files_.end()) return;
  if (it->second.parts.erase(at) > 0) partCount_--;
}

std::shared_ptr<ReadMap::Fd> ReadMap::open(const std::string& path) {
  {
    std::lock_guard<std::mutex> lock(fdMu_);
    auto it = fds_.find(path);
    if (it != fds_.end()) {
      fdOrder_.splice(fdOrder_.end(), fdOrder_, it->second.second);
      return it->second.first;
    }
  }
  int fd = ::open(path.c_str(), O_RDONLY | O_CLOEXEC);
  if (fd < 0) return nullptr;
  auto h = std::make_shared<Fd>(fd);
  std::lock_guard<std::mutex> lock(fdMu_);
  auto it = fds_.find(path);
  if (it != fds_.end()) return it->second.first;  // another thread opened it meanwhile
  fdOrder_.push_back(path);
  fds_.emplace(path, std::make_pair(h, std::prev(fdOrder_.end())));
  while (fds_.size() > MAX_FDS) {
    fds_.erase(fdOrder_.front());
    fdOrder_.pop_front();
  }
  return h;
}

bool ReadMap::Read(uint64_t ino, uint64_t off, uint64_t size, std::vector<char>& out) {
  struct Piece {
    uint64_t key;   // the part's file offset
    uint64_t from;  // offset in the chunk file
    uint64_t n;
    std::string path;
  };
  std::vector<Piece> pieces;
  uint64_t end;
  {
    std::lock_guard<std::mutex> lock(mu_);
    auto fit = files_.find(ino);
    if (fit == files_.end()) return false;
    File& f = fit->second;
    if (off >= f.size) {
      out.clear();
      return true;
    }
    end = std::min(off + size, f.size);
    auto it = f.parts.upper_bound(off);
    if (it == f.parts.begin()) return false;
    --it;
    for (uint64_t pos = off; pos < end; ++it) {
      if (it == f.parts.end() || it->first > pos || it->first + it->second.len <= pos) return false;
      uint64_t n = std::min(end, it->first + it->second.len) - pos;
      pieces.push_back(Piece{it->first, pos - it->first, n, it->second.path});
      pos += n;
    }
  }
  out.resize(end - off);
  char* at = out.data();
  for (const Piece& p : pieces) {
    if (p.path.empty()) {
      std::memset(at, 0, p.n);
      at += p.n;
      continue;
    }
    std::shared_ptr<Fd> fd = open(p.path);
    uint64_t got = 0;
    while (fd != nullptr && got < p.n) {
      ssize_t r = pread(fd->fd, at + got, p.n - got, static_cast<off_t>(p.from + got));
      if (r < 0 && errno == EINTR) continue;
      if (r <= 0) break;
      got += static_cast<uint64_t>(r);
    }
    if (got < p.n) {
      // Gone (evicted before it was ever opened here) or shorter than mapped: JavaScript
      // reads it from now on, and checks what it finds.
      forget(ino, p.key);
      return false;
    }
    at += p.n;
  }
  reads_++;
  bytes_ += end - off;
  return true;
}

}  // namespace stargzfs
