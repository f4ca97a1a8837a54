#include "ferry_nghttp2_memory.h"

#include <pthread.h>
#include <sys/mman.h>
#include <unistd.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

// Every block starts with a 16-byte header (keeps malloc's 16-byte alignment): the size
// class, or LARGE for blocks from malloc of any size, and the usable size.
#define HEADER 16
#define CLASS_BYTES 64
#define CLASSES 32                        // classes hold 64 .. 2048 bytes including the header
#define CLASS_BUDGET (128 * 1024)         // bytes each class keeps at most, per thread
#define LARGE UINT32_MAX
#define MAPPED (UINT32_MAX - 1)
// Blocks this large get pages of their own: nghttp2's 16 KiB outbound frame buffer, one per
// session, is mostly untouched on an idle connection, and untouched mapped pages are not
// resident (from the heap they would be recycled pages, resident already).
#define MAP_THRESHOLD (16 * 1024)

typedef struct {
    uint32_t size_class;
    uint32_t reserved;
    uint64_t usable;
} block_header;

typedef struct free_block {
    struct free_block *next;
} free_block;

typedef struct {
    free_block *head[CLASSES];
    uint32_t count[CLASSES];
    int registered;
} thread_cache;

static __thread thread_cache cache;
static pthread_key_t cache_key;
static pthread_once_t cache_key_once = PTHREAD_ONCE_INIT;

static void release_cache(void *unused) {
    (void)unused;
    for (int c = 0; c < CLASSES; c++) {
        while (cache.head[c]) {
            free_block *b = cache.head[c];
            cache.head[c] = b->next;
            free(b);
        }
        cache.count[c] = 0;
    }
}

static void make_cache_key(void) { pthread_key_create(&cache_key, release_cache); }

static void register_cache(void) {
    pthread_once(&cache_key_once, make_cache_key);
    // Any non-null value: the destructor runs at thread exit and empties this thread's lists.
    pthread_setspecific(cache_key, &cache);
    cache.registered = 1;
}

static inline uint32_t class_limit(uint32_t c) { return CLASS_BUDGET / ((c + 1) * CLASS_BYTES); }

static void *memory_malloc(size_t size, void *user_data) {
    (void)user_data;
    if (size > SIZE_MAX - HEADER) return NULL;
    size_t total = size + HEADER;
    if (total <= (size_t)CLASSES * CLASS_BYTES) {
        uint32_t c = (uint32_t)((total - 1) / CLASS_BYTES);
        block_header *h;
        if (cache.head[c]) {
            free_block *b = cache.head[c];
            cache.head[c] = b->next;
            cache.count[c]--;
            h = (block_header *)b;
        } else {
            h = malloc((size_t)(c + 1) * CLASS_BYTES);
            if (!h) return NULL;
        }
        h->size_class = c;
        h->usable = (uint64_t)(c + 1) * CLASS_BYTES - HEADER;
        return (char *)h + HEADER;
    }
    if (total >= MAP_THRESHOLD) {
        size_t page = (size_t)sysconf(_SC_PAGESIZE);
        size_t mapped = (total + page - 1) / page * page;
        void *m = mmap(NULL, mapped, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
        if (m == MAP_FAILED) return NULL;
        block_header *h = m;
        h->size_class = MAPPED;
        h->usable = mapped - HEADER;
        return (char *)h + HEADER;
    }
    block_header *h = malloc(total);
    if (!h) return NULL;
    h->size_class = LARGE;
    h->usable = size;
    return (char *)h + HEADER;
}

static void memory_free(void *ptr, void *user_data) {
    (void)user_data;
    if (!ptr) return;
    block_header *h = (block_header *)((char *)ptr - HEADER);
    uint32_t c = h->size_class;
    if (c == MAPPED) {
        munmap(h, h->usable + HEADER);
        return;
    }
    if (c != LARGE && cache.count[c] < class_limit(c)) {
        if (!cache.registered) register_cache();
        free_block *b = (free_block *)h;
        b->next = cache.head[c];
        cache.head[c] = b;
        cache.count[c]++;
        return;
    }
    free(h);
}

static void *memory_calloc(size_t count, size_t size, void *user_data) {
    if (size && count > SIZE_MAX / size) return NULL;
    void *p = memory_malloc(count * size, user_data);
    // Fresh mappings are zero already (and stay untouched, so not resident).
    if (p && ((block_header *)((char *)p - HEADER))->size_class != MAPPED) memset(p, 0, count * size);
    return p;
}

static void *memory_realloc(void *ptr, size_t size, void *user_data) {
    if (!ptr) return memory_malloc(size, user_data);
    if (size == 0) {
        memory_free(ptr, user_data);
        return NULL;
    }
    block_header *h = (block_header *)((char *)ptr - HEADER);
    if (size <= h->usable) return ptr;
    void *bigger = memory_malloc(size, user_data);
    if (!bigger) return NULL;
    memcpy(bigger, ptr, h->usable);
    memory_free(ptr, user_data);
    return bigger;
}

static nghttp2_mem memory = {NULL, memory_malloc, memory_free, memory_calloc, memory_realloc};

nghttp2_mem *ferry_nghttp2_memory(void) { return &memory; }

size_t ferry_nghttp2_memory_cached_blocks(void) {
    size_t n = 0;
    for (int c = 0; c < CLASSES; c++) n += cache.count[c];
    return n;
}
