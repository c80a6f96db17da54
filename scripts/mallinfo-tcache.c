/* What glibc's mallinfo2() counts as "in use" that a heap profiler counts as freed: chunks a
 * thread freed into its tcache (up to 7 of each size up to 1,032 bytes) stay allocated to the
 * allocator's arenas and are not counted free, until the thread ends. A service's threads that
 * live as long as it does (its executor, its sync thread, libzmq's and NIO's threads) can each
 * hold about 230 KB so, filled as rarer sizes are first freed (docs/soak.md, 2026-12-08).
 *
 *   cc -O1 -o /tmp/mallinfo-tcache scripts/mallinfo-tcache.c -lpthread && /tmp/mallinfo-tcache
 *   GLIBC_TUNABLES=glibc.malloc.tcache_count=0 /tmp/mallinfo-tcache     (no tcache: nothing held)
 */
#include <malloc.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>

static size_t in_use(void) {
    struct mallinfo2 m = mallinfo2();
    return m.uordblks + m.hblkhd;  /* what erp's HeapUsage.inUseBytes reads */
}

/* Allocates and frees 7 chunks of each size a tcache keeps: everything it allocates is freed. */
static void *churn(void *unused) {
    (void)unused;
    void *chunks[7];
    for (size_t size = 8; size <= 1024; size += 16) {
        for (int i = 0; i < 7; i++) chunks[i] = malloc(size);
        for (int i = 0; i < 7; i++) free(chunks[i]);
    }
    return NULL;
}

int main(void) {
    size_t before = in_use();
    pthread_t thread;
    pthread_create(&thread, NULL, churn, NULL);
    pthread_join(thread, NULL);
    size_t after_ended = in_use();
    churn(NULL);
    size_t after_living = in_use();
    printf("in use: %zu bytes at the start; %zu after a thread that freed all it allocated ended; "
           "%zu after the living main thread did the same (+%zu, all of it freed)\n",
           before, after_ended, after_living, after_living - after_ended);
    return 0;
}
