/*
 * tests/integration/test_api.h — helpers shared by the test_api_*.c suites:
 * requests that also return the response headers, raw sockets (to hold
 * connections open), and Server-Sent Events read to their end and parsed.
 */
#ifndef TEST_API_H
#define TEST_API_H

#include "tests/integration/harness.h"

/* Like h_req_headers, and the raw response header lines go to hdrs. */
h_resp t_req(const mtld_proc *p, const char *method, const char *path, const char *ctype,
             const void *body, size_t len, const char *const *headers, char *hdrs,
             size_t hdrs_len);
/* A TCP connection to the daemon (fd), or -1. */
int t_connect(const mtld_proc *p);

/* Sends req as it is over a new connection and reads the reply into out
 * (NUL-terminated) until the server closes, a whole reply has arrived, or
 * timeout_s seconds pass without a byte; returns the bytes read. For what
 * libcurl will not send: a body announced but never sent, bad framing. */
size_t t_raw(const mtld_proc *p, const char *req, size_t len, char *out, size_t n,
             int timeout_s);

typedef struct {
    long long id;       /* 0 when the event had no id line */
    char type[16];
    char data[1024];
} t_event;

/* GET /v1/jobs/{id}/events (with Last-Event-ID when last_id >= 0) until the
 * server ends the stream or timeout seconds pass; parses the events into
 * ev (at most max), returns how many, and the status into *status and
 * whether the server ended the stream itself into *ended. */
int t_events(const mtld_proc *p, long long job, long long last_id, double timeout, t_event *ev,
             int max, long *status, int *ended);

#endif
