/* Sending batches and matching acks.
 *
 * The queue is a FIFO of encoded batches. Up to `window` of them are in flight; each is removed
 * only when the collector acknowledges its (epoch, seq) — ok or duplicate mean stored, a refusal
 * means it never will be (counted, not retried), retry means send again later. A batch in
 * flight longer than ack_timeout_ms is sent again; the collector's dedup makes that safe.
 *
 * The link is our own ZMTP client (zmtp.c, a DEALER talking to the collector's libzmq ROUTER):
 * it reconnects by itself with exponential backoff from the first interval to RECONNECT_MAX_MS.
 * Each sender draws that first interval from [100, 200) ms and its ack timeout from
 * [1, 1.25) x the configured one: after a collector restart a fleet's reconnects and
 * retransmissions spread out instead of arriving in lockstep. A send while the link is down is
 * refused (as ZMQ_IMMEDIATE did), so "could not send" stays visible here instead of vanishing
 * into a buffer. */
#include "sender.h"

#include <errno.h>
#include <inttypes.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/random.h>

#include "batch.h"
#include "clock.h"
#include "log.h"
#include "zmtp.h"

#define RECONNECT_MIN_MS 100
#define RECONNECT_MAX_MS 30000
#define COMPLAIN_EVERY_MS 30000
/* What may wait in the link's buffer beyond the window: a few batches (the queue is the bound
 * that matters, and it holds the bytes until they are acknowledged). */
#define LINK_BUFFER_BYTES (4 * 1024 * 1024)
/* An Ack is a few dozen bytes; anything near this is not one of ours. */
#define MAX_ACK_BYTES (64 * 1024)

struct entry {
    struct entry *next;
    uint64_t seq;
    uint8_t *buf;
    size_t len;
    uint64_t samples;
    int64_t queued_mono_ms;
    int64_t sent_mono_ms; /* 0: not in flight */
    unsigned attempts;
};

struct fp_sender {
    struct fp_zmtp *link;
    struct fp_sender_options opts;
    char *endpoint;
    struct entry *head, *tail;
    size_t in_flight;
    struct fp_sender_stats st;
    int64_t complained_mono_ms; /* last "not answering" line; 0: collector answering */
    int64_t retry_after_mono_ms; /* after a RETRY ack, hold back until then */
    bool in_multipart;           /* the last frame received had MORE set */
};

int fp_sender_new(const struct fp_sender_options *opts, struct fp_sender **ret, char *err,
                  size_t err_size)
{
    struct fp_sender *s = calloc(1, sizeof(*s));
    struct fp_zmtp_options zo = {0};
    int ivl = RECONNECT_MIN_MS, r;
    uint32_t jitter = 0;

    if (s == NULL)
        return -ENOMEM;
    s->opts = *opts;
    if (getrandom(&jitter, sizeof(jitter), GRND_NONBLOCK) != (ssize_t)sizeof(jitter))
        jitter = (uint32_t)fp_clock_mono_ns();
    ivl += (int)(jitter % RECONNECT_MIN_MS);
    s->opts.ack_timeout_ms += s->opts.ack_timeout_ms * (int64_t)((jitter >> 8) % 256) / 1024;
    if (s->opts.window == 0)
        s->opts.window = 1;
    s->endpoint = strdup(opts->endpoint);
    if (s->endpoint == NULL) {
        r = -ENOMEM;
        goto fail;
    }
    s->opts.endpoint = s->endpoint;
    zo.endpoint = s->endpoint;
    zo.reconnect_ivl_ms = ivl;
    zo.reconnect_ivl_max_ms = RECONNECT_MAX_MS;
    zo.max_out_bytes = LINK_BUFFER_BYTES;
    zo.max_in_bytes = MAX_ACK_BYTES;
    r = fp_zmtp_new(&zo, &s->link, err, err_size);
    if (r < 0)
        goto fail;
    *ret = s;
    return 0;
fail:
    fp_sender_destroy(&s);
    return r;
}

void fp_sender_destroy(struct fp_sender **sp)
{
    struct fp_sender *s = *sp;
    struct entry *e, *next;

    if (s == NULL)
        return;
    for (e = s->head; e != NULL; e = next) {
        next = e->next;
        free(e->buf);
        free(e);
    }
    fp_zmtp_destroy(&s->link);
    free(s->endpoint);
    free(s);
    *sp = NULL;
}

static void unlink_entry(struct fp_sender *s, struct entry *prev, struct entry *e)
{
    if (prev == NULL)
        s->head = e->next;
    else
        prev->next = e->next;
    if (s->tail == e)
        s->tail = prev;
    if (e->sent_mono_ms != 0)
        s->in_flight--;
    s->st.batches_queued--;
    s->st.bytes_queued -= e->len;
    free(e->buf);
    free(e);
}

int fp_sender_enqueue(struct fp_sender *s, uint64_t seq, uint8_t *buf, size_t len,
                      uint64_t samples)
{
    struct entry *e = calloc(1, sizeof(*e));
    if (e == NULL) {
        free(buf);
        s->st.batches_dropped++;
        s->st.samples_dropped += samples;
        return -ENOMEM;
    }
    *e = (struct entry){.seq = seq, .buf = buf, .len = len, .samples = samples,
                        .queued_mono_ms = fp_clock_mono_ms()};
    if (s->tail != NULL)
        s->tail->next = e;
    else
        s->head = e;
    s->tail = e;
    s->st.batches_queued++;
    s->st.bytes_queued += len;
    /* Over the bound: the oldest data goes first, and every sample of it is counted. */
    while (s->st.bytes_queued > s->opts.max_queue_bytes && s->head != NULL && s->head != e) {
        s->st.batches_dropped++;
        s->st.samples_dropped += s->head->samples;
        unlink_entry(s, NULL, s->head);
    }
    return 0;
}

static void send_due(struct fp_sender *s, int64_t now)
{
    struct entry *prev = NULL, *next;

    if (now < s->retry_after_mono_ms)
        return;
    for (struct entry *e = s->head; e != NULL; prev = e, e = next) {
        bool timed_out = e->sent_mono_ms != 0 && now - e->sent_mono_ms >= s->opts.ack_timeout_ms;
        uint8_t *buf = e->buf;
        size_t len = e->len;
        int rc;

        next = e->next;
        if (e->sent_mono_ms != 0 && !timed_out)
            continue;
        if (e->sent_mono_ms == 0 && s->in_flight >= s->opts.window)
            break;
        if (buf == NULL) {
            /* Spooled: the bytes live on disk and are read only to be sent. */
            rc = s->opts.load(s->opts.userdata, e->seq, &buf, &len);
            if (rc == -ENOENT) {
                /* Dropped from the spool to respect its bound; counted there. */
                unlink_entry(s, prev, e);
                e = prev; /* prev stays where it is; next is already the one after */
                continue;
            }
            if (rc < 0)
                break;
        }
        rc = fp_zmtp_send(s->link, buf, len);
        if (buf != e->buf)
            free(buf);
        if (rc < 0)
            break; /* not connected or buffer full: try again next round */
        if (e->sent_mono_ms == 0)
            s->in_flight++;
        else
            s->st.retransmits++;
        e->sent_mono_ms = now;
        e->attempts++;
        s->st.batches_sent++;
    }
}

/* Says so when the oldest batch has waited longer than the ack timeout: the collector is down,
 * unreachable or too slow. Once per COMPLAIN_EVERY_MS; recovery is logged once in handle_ack. */
static void complain(struct fp_sender *s, int64_t now)
{
    if (s->head == NULL || now - s->head->queued_mono_ms < s->opts.ack_timeout_ms)
        return;
    if (s->complained_mono_ms != 0 && now - s->complained_mono_ms < COMPLAIN_EVERY_MS)
        return;
    fp_log_warn("probe",
                "collector %s not answering; %" PRIu64 " batches queued (%" PRIu64
                " bytes), retrying",
                s->endpoint, s->st.batches_queued, s->st.bytes_queued);
    s->complained_mono_ms = now;
}

static void handle_ack(struct fp_sender *s, const uint8_t *buf, size_t len, int64_t now)
{
    Fleetpulse__V1__Ack *ack;
    struct entry *prev = NULL, *e;
    const char *status;

    if (fp_ack_decode(buf, len, &ack) < 0) {
        fp_log_debug("probe", "undecodable ack of %zu bytes, ignoring", len);
        return;
    }
    status = fp_ack_status_name(ack->status);
    s->st.last_ack_mono_ms = now;
    if (s->complained_mono_ms != 0) {
        fp_log_info("probe", "collector %s answering again", s->endpoint);
        s->complained_mono_ms = 0;
    }
    if (ack->epoch != s->opts.epoch && ack->seq != 0) {
        fleetpulse__v1__ack__free_unpacked(ack, NULL);
        return;
    }
    for (e = s->head; e != NULL && e->seq != ack->seq; e = e->next)
        prev = e;
    if (e == NULL) {
        /* Acks for a batch we no longer hold (a late answer to a retransmission): harmless. */
        fleetpulse__v1__ack__free_unpacked(ack, NULL);
        return;
    }
    switch (ack->status) {
    case FLEETPULSE__V1__ACK_STATUS__ACK_STATUS_OK:
    case FLEETPULSE__V1__ACK_STATUS__ACK_STATUS_DUPLICATE:
        s->st.batches_acked++;
        s->st.samples_refused += ack->samples_refused;
        break;
    case FLEETPULSE__V1__ACK_STATUS__ACK_STATUS_RETRY:
        /* The collector could not store it now: send it again after a pause. */
        if (e->sent_mono_ms != 0)
            s->in_flight--;
        e->sent_mono_ms = 0;
        s->retry_after_mono_ms = now + 1000;
        fleetpulse__v1__ack__free_unpacked(ack, NULL);
        return;
    default:
        s->st.batches_refused++;
        s->st.samples_refused += e->samples;
        fp_log_warn("probe", "collector refused batch seq=%" PRIu64 " (%s): %s; dropping %" PRIu64
                             " samples",
                    e->seq, status, ack->detail, e->samples);
        break;
    }
    if (s->opts.on_ack != NULL)
        s->opts.on_ack(s->opts.userdata, e->seq, status, ack->detail);
    unlink_entry(s, prev, e);
    fleetpulse__v1__ack__free_unpacked(ack, NULL);
}

int fp_sender_poll(struct fp_sender *s, int64_t timeout_ms)
{
    int64_t now = fp_clock_mono_ms(), deadline = now + (timeout_ms > 0 ? timeout_ms : 0);

    for (;;) {
        int64_t wait;
        int rc;

        send_due(s, now);
        complain(s, now);
        wait = deadline - now;
        /* Wake up at least every 200 ms to resend what timed out or could not be sent. */
        if (wait > 200)
            wait = 200;
        rc = fp_zmtp_poll(s->link, wait > 0 ? wait : 0);
        if (rc < 0)
            return rc;
        now = fp_clock_mono_ms();
        if (rc > 0) {
            const uint8_t *data;
            size_t len;
            bool more;

            while (fp_zmtp_recv(s->link, &data, &len, &more) == 0) {
                /* An Ack is one frame; parts of a longer message are not ours. */
                if (more || s->in_multipart)
                    fp_log_debug("probe", "a multi-part message from the collector, ignoring");
                else
                    handle_ack(s, data, len, now);
                s->in_multipart = more;
            }
            send_due(s, now);
        }
        if (now >= deadline)
            return 0;
    }
}

void fp_sender_retry_now(struct fp_sender *s)
{
    fp_zmtp_retry_now(s->link);
}

void fp_sender_get_stats(const struct fp_sender *s, struct fp_sender_stats *ret)
{
    *ret = s->st;
}
