/* Counts heap allocations of the process it is preloaded into (LD_PRELOAD), for
 * loadtest/bench-allocations. Every malloc, calloc, realloc, posix_memalign, aligned_alloc and
 * memalign adds one and is passed to glibc's own implementation. On SIGUSR2 the count so far is
 * written, in decimal, to the file named by MALLOC_COUNT_FILE: the benchmark reads it before and
 * after a run and divides by the requests served. */
#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <stdatomic.h>
#include <stddef.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

extern void *__libc_malloc(size_t);
extern void *__libc_calloc(size_t, size_t);
extern void *__libc_realloc(void *, size_t);
extern void *__libc_memalign(size_t, size_t);

static atomic_ulong allocations;
static char path[4096];

void *malloc(size_t size) { atomic_fetch_add_explicit(&allocations, 1, memory_order_relaxed); return __libc_malloc(size); }
void *calloc(size_t n, size_t size) { atomic_fetch_add_explicit(&allocations, 1, memory_order_relaxed); return __libc_calloc(n, size); }
void *realloc(void *p, size_t size) { atomic_fetch_add_explicit(&allocations, 1, memory_order_relaxed); return __libc_realloc(p, size); }
void *memalign(size_t alignment, size_t size) { atomic_fetch_add_explicit(&allocations, 1, memory_order_relaxed); return __libc_memalign(alignment, size); }
void *aligned_alloc(size_t alignment, size_t size) { atomic_fetch_add_explicit(&allocations, 1, memory_order_relaxed); return __libc_memalign(alignment, size); }
int posix_memalign(void **out, size_t alignment, size_t size) {
    atomic_fetch_add_explicit(&allocations, 1, memory_order_relaxed);
    void *p = __libc_memalign(alignment, size);
    if (p == NULL) return ENOMEM;
    *out = p;
    return 0;
}

static void report(int signal) {
    (void)signal;
    char text[32];
    int n = 0;
    unsigned long value = atomic_load(&allocations);
    char digits[32];
    int d = 0;
    do { digits[d++] = (char)('0' + value % 10); value /= 10; } while (value > 0);
    while (d > 0) text[n++] = digits[--d];
    text[n++] = '\n';
    int fd = open(path, O_WRONLY | O_CREAT | O_TRUNC, 0644);
    if (fd >= 0) { (void)!write(fd, text, (size_t)n); close(fd); }
}

__attribute__((constructor)) static void start(void) {
    const char *file = getenv("MALLOC_COUNT_FILE");
    if (file == NULL || strlen(file) >= sizeof(path)) return;
    strcpy(path, file);
    struct sigaction action;
    memset(&action, 0, sizeof action);
    action.sa_handler = report;
    action.sa_flags = SA_RESTART;
    sigaction(SIGUSR2, &action, NULL);
}
