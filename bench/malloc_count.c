/* Counts allocations (malloc, calloc, realloc, posix_memalign) in a process it is preloaded
 * into; SIGUSR1 prints "ALLOCS <n>" to stderr. Used by bench/harness.py to count allocations
 * per proxied call: gcc -shared -fPIC -O2 -o malloc_count.so malloc_count.c -ldl */
#define _GNU_SOURCE
#include <dlfcn.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <signal.h>
#include <string.h>
#include <unistd.h>
static atomic_long mallocs;
static void *(*real_malloc)(size_t);
static void *(*real_calloc)(size_t, size_t);
static void *(*real_realloc)(void *, size_t);
static int (*real_posix_memalign)(void **, size_t, size_t);
static void report(int sig) { char b[64]; int n = snprintf(b, sizeof b, "ALLOCS %ld\n", atomic_load(&mallocs)); write(2, b, n); }
__attribute__((constructor)) static void init(void) { signal(SIGUSR1, report); }
static char bootstrap[65536]; static size_t used;
void *malloc(size_t n) { if (!real_malloc) real_malloc = dlsym(RTLD_NEXT, "malloc"); atomic_fetch_add(&mallocs, 1); return real_malloc(n); }
void *calloc(size_t a, size_t b) { if (!real_calloc) { void *p = bootstrap + used; used += (a*b + 15) & ~15; return p; } atomic_fetch_add(&mallocs, 1); return real_calloc(a, b); }
void *realloc(void *p, size_t n) { if (!real_realloc) real_realloc = dlsym(RTLD_NEXT, "realloc"); atomic_fetch_add(&mallocs, 1); return real_realloc(p, n); }
int posix_memalign(void **p, size_t a, size_t n) { if (!real_posix_memalign) real_posix_memalign = dlsym(RTLD_NEXT, "posix_memalign"); atomic_fetch_add(&mallocs, 1); return real_posix_memalign(p, a, n); }
__attribute__((constructor(101))) static void init_calloc(void) { real_calloc = dlsym(RTLD_NEXT, "calloc"); }
static void (*real_free)(void *);
void free(void *p) { if ((char *)p >= bootstrap && (char *)p < bootstrap + sizeof bootstrap) return; if (!real_free) real_free = dlsym(RTLD_NEXT, "free"); real_free(p); }
