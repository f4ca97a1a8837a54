#ifndef FERRY_NGHTTP2_MEMORY_H
#define FERRY_NGHTTP2_MEMORY_H

#include <nghttp2/nghttp2.h>

/// The allocator Ferry's nghttp2 sessions use: blocks up to 2 KiB come from per-thread free
/// lists in 64-byte size classes (each class keeps at most 128 KiB), larger ones from malloc.
/// nghttp2 allocates and frees several small blocks per stream (stream state, header buffers,
/// outbound items, copies of submitted headers); served from the thread's lists they skip
/// malloc's slower paths. Any thread may free any block: a block freed on another thread
/// joins that thread's lists (or goes back to malloc when its class is full).
nghttp2_mem *ferry_nghttp2_memory(void);

/// Blocks the calling thread's lists hold now (for tests).
size_t ferry_nghttp2_memory_cached_blocks(void);

#endif
