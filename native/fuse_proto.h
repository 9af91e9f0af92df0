// What the kernel's FUSE protocol (linux/fuse.h) has gained since the 7.38 header Debian
// installs, as the kernel defines it (6.9+, protocol 7.40): passthrough to a backing
// file, and resending the requests a dead server read but never answered. Everything
// else comes from the installed header.
#pragma once

#include <linux/fuse.h>
#include <sys/ioctl.h>

#include <cstdint>

namespace stargzfs {

// INIT flags (the upper 32 travel in flags2).
constexpr uint64_t kInitPassthrough = 1ULL << 37;
constexpr uint64_t kInitHasResend = 1ULL << 39;
// open_flags of fuse_open_out: reads and mmap of this file go to the backing file. The
// kernel fails the open (EIO) if any flag outside FOPEN_PASSTHROUGH_MASK comes with it
// (direct_io, parallel_direct_writes, noflush): no keep_cache.
constexpr uint32_t kOpenPassthrough = 1u << 7;
// A notification (fuse_out_header.error with unique 0): requeue every request read and not answered.
constexpr int32_t kNotifyResend = 7;
// Set in fuse_in_header.unique of a request the kernel sends again after a resend.
constexpr uint64_t kUniqueResend = 1ULL << 63;

// fuse_init_out as 7.40 lays it out: max_stack_depth is the first of 7.38's unused words.
struct InitOut {
  uint32_t major;
  uint32_t minor;
  uint32_t max_readahead;
  uint32_t flags;
  uint16_t max_background;
  uint16_t congestion_threshold;
  uint32_t max_write;
  uint32_t time_gran;
  uint16_t max_pages;
  uint16_t map_alignment;
  uint32_t flags2;
  uint32_t max_stack_depth;
  uint32_t unused[6];
};
static_assert(sizeof(InitOut) == sizeof(fuse_init_out), "fuse_init_out layout");

// fuse_open_out as 7.40 lays it out: the padding word is the backing file's id.
struct OpenOut {
  uint64_t fh;
  uint32_t open_flags;
  int32_t backing_id;
};
static_assert(sizeof(OpenOut) == sizeof(fuse_open_out), "fuse_open_out layout");

struct BackingMap {
  int32_t fd;
  uint32_t flags;
  uint64_t padding;
};

constexpr unsigned long kIocBackingOpen = _IOW(FUSE_DEV_IOC_MAGIC, 1, BackingMap);
constexpr unsigned long kIocBackingClose = _IOW(FUSE_DEV_IOC_MAGIC, 2, uint32_t);

}  // namespace stargzfs
