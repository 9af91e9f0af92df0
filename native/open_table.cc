// See open_table.h.
#include "open_table.h"

#include <sys/mman.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>
#include <vector>

namespace stargzfs {

namespace {
constexpr uint32_t kMagic = 0x53475a4f;  // "SGZO"
constexpr uint32_t kSlots = 1u << 17;
constexpr uint32_t kMagicV = 0x53475a32;  // "SGZ2": slots of 32 bytes
constexpr size_t kSize = sizeof(uint64_t) * 64 + sizeof(uint64_t) * 4 * kSlots;  // header page + slots (32 bytes each)

uint64_t hash(uint64_t x) {
  x ^= x >> 33;
  x *= 0xff51afd7ed558ccdULL;
  x ^= x >> 33;
  return x;
}
}  // namespace

OpenTable* OpenTable::Create(std::string* err) {
  int fd = memfd_create("stargzfs-open-files", MFD_CLOEXEC);
  if (fd < 0 || ftruncate(fd, static_cast<off_t>(kSize)) != 0) {
    *err = std::string("memfd for the open-file table: ") + std::strerror(errno);
    if (fd >= 0) close(fd);
    return nullptr;
  }
  void* base = mmap(nullptr, kSize, PROT_READ | PROT_WRITE, MAP_SHARED, fd, 0);
  if (base == MAP_FAILED) {
    *err = std::string("mmap of the open-file table: ") + std::strerror(errno);
    close(fd);
    return nullptr;
  }
  auto* t = new OpenTable(fd, base, kSize);
  t->h_->magic = kMagicV;
  t->h_->slots = kSlots;
  pthread_mutexattr_t a;
  pthread_mutexattr_init(&a);
  pthread_mutexattr_setpshared(&a, PTHREAD_PROCESS_SHARED);
  // A server killed while holding the lock must not stop its successor.
  pthread_mutexattr_setrobust(&a, PTHREAD_MUTEX_ROBUST);
  pthread_mutex_init(&t->h_->mu, &a);
  pthread_mutexattr_destroy(&a);
  return t;
}

OpenTable* OpenTable::Adopt(int fd, std::string* err) {
  void* base = mmap(nullptr, kSize, PROT_READ | PROT_WRITE, MAP_SHARED, fd, 0);
  if (base == MAP_FAILED) {
    *err = std::string("mmap of the handed-over open-file table: ") + std::strerror(errno);
    close(fd);
    return nullptr;
  }
  auto* t = new OpenTable(fd, base, kSize);
  if (t->h_->magic != kMagicV || t->h_->slots != kSlots) {
    *err = "the handed-over open-file table is not one this build knows";
    delete t;
    return nullptr;
  }
  return t;
}

OpenTable::OpenTable(int fd, void* base, size_t size) : fd_(fd), base_(base), size_(size) {
  h_ = static_cast<Header*>(base);
  slots_ = reinterpret_cast<Slot*>(static_cast<char*>(base) + sizeof(uint64_t) * 64);
  static_assert(sizeof(Header) <= sizeof(uint64_t) * 64, "header fits its page");
  static_assert(sizeof(Slot) == 32, "slot size");
}

OpenTable::~OpenTable() {
  munmap(base_, size_);
  close(fd_);
}

void OpenTable::lock() {
  if (pthread_mutex_lock(&h_->mu) == EOWNERDEAD) pthread_mutex_consistent(&h_->mu);
}
void OpenTable::unlock() { pthread_mutex_unlock(&h_->mu); }

OpenTable::Slot* OpenTable::find(uint64_t ino) {
  for (uint32_t i = 0, at = static_cast<uint32_t>(hash(ino)) & (kSlots - 1); i < kSlots; i++, at = (at + 1) & (kSlots - 1)) {
    Slot* s = &slots_[at];
    if (s->state == 0) return nullptr;
    if (s->ino == ino && s->state == 1) return s;
  }
  return nullptr;
}

OpenTable::Slot* OpenTable::insert(uint64_t ino) {
  if (h_->used + 1 > kSlots / 4 * 3) compact();
  if (h_->used + 1 > kSlots / 4 * 3) return nullptr;
  for (uint32_t i = 0, at = static_cast<uint32_t>(hash(ino)) & (kSlots - 1); i < kSlots; i++, at = (at + 1) & (kSlots - 1)) {
    Slot* s = &slots_[at];
    if (s->state == 1) continue;
    if (s->state == 0) h_->used++;
    *s = Slot{ino, 0, 0, 0, 0, 1, 0};
    return s;
  }
  return nullptr;
}

// Forgotten slots only lengthen probes: the live ones are put back without them.
void OpenTable::compact() {
  std::vector<Slot> live;
  for (uint32_t i = 0; i < kSlots; i++)
    if (slots_[i].state == 1) live.push_back(slots_[i]);
  std::memset(static_cast<void*>(slots_), 0, sizeof(Slot) * kSlots);
  h_->used = 0;
  for (const Slot& l : live) {
    for (uint32_t i = 0, at = static_cast<uint32_t>(hash(l.ino)) & (kSlots - 1); i < kSlots; i++, at = (at + 1) & (kSlots - 1)) {
      if (slots_[at].state != 0) continue;
      slots_[at] = l;
      h_->used++;
      break;
    }
  }
}

int32_t OpenTable::Open(uint64_t ino, bool candidate, const std::function<int32_t()>& openBacking) {
  lock();
  Slot* s = find(ino);
  if (s == nullptr) s = insert(ino);
  int32_t answer = 0;
  if (s == nullptr) {
    // Full of open inodes: an open not counted could later meet a passthrough open of the
    // same inode, so passthrough stops for good (page-cache opens always work).
    h_->overflowed = 1;
  } else if (s->passthrough > 0 && s->backing > 0) {
    answer = s->backing;
  } else if (s->cached == 0 && candidate && h_->overflowed == 0) {
    if (s->backing <= 0) s->backing = openBacking();
    if (s->backing > 0) answer = s->backing;
    else s->backing = 0;
  }
  if (answer > 0) {
    s->passthrough++;
    h_->passthroughOpens++;
  } else if (s != nullptr) {
    s->pending++;
  }
  unlock();
  return answer;
}

int32_t OpenTable::Settle(uint64_t ino, bool candidate, const std::function<int32_t()>& openBacking, int* why) {
  lock();
  Slot* s = find(ino);
  int32_t answer = 0;
  int w = kTableFull;
  if (s != nullptr) {
    if (s->pending > 0) s->pending--;
    if (s->passthrough > 0 && s->backing > 0) {
      answer = s->backing;
    } else if (!candidate) {
      w = kNotWhole;
    } else if (s->cached > 0) {
      w = kOpenCached;
    } else if (h_->overflowed == 0) {
      if (s->backing <= 0) s->backing = openBacking();
      if (s->backing > 0) answer = s->backing;
      else s->backing = 0;
      w = kBackingRefused;
    }
    if (answer > 0) s->passthrough++;
    else s->cached++;
  }
  if (why != nullptr) *why = answer > 0 ? kPassthrough : w;
  if (answer > 0) h_->passthroughOpens++;
  else h_->cachedOpens++;
  unlock();
  return answer;
}

void OpenTable::Unpend(uint64_t ino) {
  lock();
  Slot* s = find(ino);
  if (s != nullptr && s->pending > 0) s->pending--;
  unlock();
}

int32_t OpenTable::Release(uint64_t ino, bool passthrough) {
  lock();
  Slot* s = find(ino);
  int32_t backing = 0;
  if (s != nullptr) {
    uint32_t& n = passthrough ? s->passthrough : s->cached;
    if (n > 0) n--;
    if (s->passthrough == 0 && s->cached == 0 && s->pending == 0 && s->backing > 0) {
      backing = s->backing;
      s->backing = 0;
    }
  }
  unlock();
  return backing;
}

int32_t OpenTable::Forget(uint64_t ino) {
  lock();
  Slot* s = find(ino);
  int32_t backing = 0;
  if (s != nullptr && s->cached == 0 && s->passthrough == 0 && s->pending == 0) {
    backing = s->backing;
    s->state = 2;
  }
  unlock();
  return backing;
}

uint64_t OpenTable::passthroughOpens() const { return __atomic_load_n(&h_->passthroughOpens, __ATOMIC_RELAXED); }
uint64_t OpenTable::cachedOpens() const { return __atomic_load_n(&h_->cachedOpens, __ATOMIC_RELAXED); }

}  // namespace stargzfs
