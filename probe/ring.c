/* A bounded lock-free queue of request records (Dmitry Vyukov's bounded MPMC queue, C11 atomics).
 *
 * Each slot carries a sequence number saying whose turn it is. For position pos (counting up
 * forever, the slot is pos & mask):
 *   seq == pos             free for the producer that claims pos,
 *   seq == pos + 1         published, ready for the consumer at pos,
 *   seq == pos + capacity  consumed, free for the producer one lap later.
 * A producer claims pos with one compare-and-swap on enqueue_pos, fills the slot in place and
 * publishes with a release store of seq; the consumer's acquire load of seq makes the record
 * visible. Producers never wait on each other beyond a failed CAS, and never on the consumer: a
 * slot still holding last lap's record means the ring is full and the caller drops.
 *
 * Rejected: a mutex-protected list (a syscall under contention, and it blocks the host's request
 * path while the agent drains); per-thread buffers (registration, and lost records when a host
 * thread exits); overwriting the oldest record when full (the agent could read a torn record,
 * and the count of lost records would be a guess). Positions are size_t and compared by signed
 * difference, so wrap-around is harmless while capacity << SIZE_MAX / 2.
 *
 * Layout: the read-only fields, enqueue_pos and dequeue_pos each get their own cache line, and
 * slots are cache-line aligned, so producers filling neighbouring slots do not share lines. */
#include "ring.h"

#include <errno.h>
#include <stdalign.h>
#include <stdatomic.h>
#include <stdlib.h>
#include <string.h>

#if ATOMIC_POINTER_LOCK_FREE != 2
#error "the request ring needs lock-free pointer-sized atomics"
#endif

#define CACHE_LINE 64

struct slot {
    alignas(CACHE_LINE) atomic_size_t seq;
    struct fp_ring_record rec;
};

struct fp_ring {
    /* read-only after fp_ring_new */
    alignas(CACHE_LINE) struct slot *slots;
    size_t mask; /* capacity - 1 */
    /* written by every producer */
    alignas(CACHE_LINE) atomic_size_t enqueue_pos;
    /* written by the consumer */
    alignas(CACHE_LINE) atomic_size_t dequeue_pos;
};

int fp_ring_new(size_t capacity, struct fp_ring **ret)
{
    struct fp_ring *r;

    if (capacity < FP_RING_MIN_RECORDS || capacity > FP_RING_MAX_RECORDS ||
        (capacity & (capacity - 1)) != 0)
        return -EINVAL;
    r = aligned_alloc(CACHE_LINE, sizeof(*r));
    if (r == NULL)
        return -ENOMEM;
    memset(r, 0, sizeof(*r));
    r->slots = aligned_alloc(CACHE_LINE, capacity * sizeof(*r->slots));
    if (r->slots == NULL) {
        free(r);
        return -ENOMEM;
    }
    r->mask = capacity - 1;
    for (size_t i = 0; i < capacity; i++) {
        /* Touch every page now: a first write fault on the host's request path is a syscall's
         * worth of latency. */
        memset(&r->slots[i].rec, 0, sizeof(r->slots[i].rec));
        atomic_init(&r->slots[i].seq, i);
    }
    atomic_init(&r->enqueue_pos, 0);
    atomic_init(&r->dequeue_pos, 0);
    *ret = r;
    return 0;
}

void fp_ring_destroy(struct fp_ring **rp)
{
    struct fp_ring *r = *rp;
    if (r == NULL)
        return;
    free(r->slots);
    free(r);
    *rp = NULL;
}

size_t fp_ring_capacity(const struct fp_ring *r)
{
    return r->mask + 1;
}

struct fp_ring_record *fp_ring_claim(struct fp_ring *r, size_t *ret_pos)
{
    size_t pos = atomic_load_explicit(&r->enqueue_pos, memory_order_relaxed);

    for (;;) {
        struct slot *s = &r->slots[pos & r->mask];
        size_t seq = atomic_load_explicit(&s->seq, memory_order_acquire);
        ptrdiff_t dif = (ptrdiff_t)(seq - pos);

        if (dif == 0) {
            /* Relaxed is enough: the slot's own seq orders the record, not enqueue_pos. A failed
             * CAS reloads pos and we look at the slot it names now. */
            if (atomic_compare_exchange_weak_explicit(&r->enqueue_pos, &pos, pos + 1,
                                                      memory_order_relaxed,
                                                      memory_order_relaxed)) {
                *ret_pos = pos;
                return &s->rec;
            }
        } else if (dif < 0) {
            return NULL; /* the slot still holds last lap's record: full */
        } else {
            pos = atomic_load_explicit(&r->enqueue_pos, memory_order_relaxed);
        }
    }
}

void fp_ring_publish(struct fp_ring *r, size_t pos)
{
    struct slot *s = &r->slots[pos & r->mask];
    atomic_store_explicit(&s->seq, pos + 1, memory_order_release);
}

bool fp_ring_pop(struct fp_ring *r, struct fp_ring_record *ret)
{
    size_t pos = atomic_load_explicit(&r->dequeue_pos, memory_order_relaxed);

    for (;;) {
        struct slot *s = &r->slots[pos & r->mask];
        size_t seq = atomic_load_explicit(&s->seq, memory_order_acquire);
        ptrdiff_t dif = (ptrdiff_t)(seq - (pos + 1));

        if (dif == 0) {
            if (atomic_compare_exchange_weak_explicit(&r->dequeue_pos, &pos, pos + 1,
                                                      memory_order_relaxed,
                                                      memory_order_relaxed)) {
                *ret = s->rec;
                /* Free for the producer one lap later. */
                atomic_store_explicit(&s->seq, pos + r->mask + 1, memory_order_release);
                return true;
            }
        } else if (dif < 0) {
            return false; /* empty, or the oldest slot is still being filled */
        } else {
            pos = atomic_load_explicit(&r->dequeue_pos, memory_order_relaxed);
        }
    }
}
