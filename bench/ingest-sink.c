/* bench/ingest's transport baseline: a ROUTER that decodes and validates every batch as the
 * collector does and acknowledges it at once, storing nothing. The simulator against this sink
 * measures what ZeroMQ, protobuf and the simulator itself allow on this machine, so the
 * collector's figures read as a fraction of that ceiling.
 * Usage: ingest-sink ENDPOINT (runs until SIGTERM). */
#include <errno.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <zmq.h>

#include "batch.h"

static volatile sig_atomic_t stop;

static void on_term(int sig)
{
    (void)sig;
    stop = 1;
}

int main(int argc, char **argv)
{
    struct fp_batch_limits lim;
    struct fp_batch_arena *arena;
    void *ctx, *sock;
    int zero = 0, hwm = 100000;

    if (argc != 2) {
        fprintf(stderr, "usage: ingest-sink ENDPOINT\n");
        return 2;
    }
    signal(SIGTERM, on_term);
    signal(SIGINT, on_term);
    fp_batch_limits_default(&lim);
    if (fp_batch_arena_new(&arena) != 0)
        return 1;
    ctx = zmq_ctx_new();
    sock = zmq_socket(ctx, ZMQ_ROUTER);
    (void)zmq_setsockopt(sock, ZMQ_LINGER, &zero, sizeof(zero));
    (void)zmq_setsockopt(sock, ZMQ_RCVHWM, &hwm, sizeof(hwm));
    (void)zmq_setsockopt(sock, ZMQ_SNDHWM, &hwm, sizeof(hwm));
    if (zmq_bind(sock, argv[1]) != 0) {
        fprintf(stderr, "ingest-sink: cannot bind %s: %s\n", argv[1], zmq_strerror(errno));
        return 1;
    }
    while (!stop) {
        zmq_msg_t id, body;
        Fleetpulse__V1__Batch *b = NULL;
        char err[160];
        uint8_t *ack;
        size_t ack_len, samples = 0;
        int more = 0;
        size_t more_len = sizeof(more);

        zmq_msg_init(&id);
        zmq_msg_init(&body);
        if (zmq_msg_recv(&id, sock, 0) < 0 || zmq_msg_recv(&body, sock, 0) < 0) {
            zmq_msg_close(&id);
            zmq_msg_close(&body);
            continue; /* EINTR from SIGTERM ends the loop */
        }
        (void)zmq_getsockopt(sock, ZMQ_RCVMORE, &more, &more_len);
        /* Decoded as the collector decodes: into an arena, freed in one go. */
        if (fp_batch_decode_in(arena, zmq_msg_data(&body), zmq_msg_size(&body), &lim, &b, err,
                               sizeof(err)) == 0) {
            for (size_t i = 0; i < b->n_series; i++)
                samples += b->series[i]->n_values;
            if (fp_ack_encode(b->epoch, b->seq, FLEETPULSE__V1__ACK_STATUS__ACK_STATUS_OK, NULL,
                              samples, 0, &ack, &ack_len) == 0) {
                (void)zmq_msg_send(&id, sock, ZMQ_SNDMORE);
                (void)zmq_send(sock, ack, ack_len, 0);
                free(ack);
            }
        }
        fp_batch_arena_reset(arena);
        zmq_msg_close(&id);
        zmq_msg_close(&body);
    }
    zmq_close(sock);
    zmq_ctx_term(ctx);
    fp_batch_arena_destroy(&arena);
    return 0;
}
