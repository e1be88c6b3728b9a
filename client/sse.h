/*
 * client/sse.h — an incremental parser of Server-Sent Events
 * (text/event-stream, the WHATWG rules): bytes go in as they arrive, in
 * chunks of any size; each complete event comes out through a callback.
 *
 * Lines end in LF, CRLF or CR; "field: value" (one optional space after the
 * colon); lines starting with ':' are comments (heartbeats); several "data"
 * lines join with '\n'; an empty line dispatches the event (one without
 * data is dropped, as browsers do); "id" persists across events; "retry"
 * is ignored here. A line longer than CLI_SSE_MAX_LINE is an error: what a
 * server sends is bounded like everything else read from it.
 */
#ifndef CLI_SSE_H
#define CLI_SSE_H

#include <stddef.h>

#define CLI_SSE_MAX_LINE (1u << 20)

/* One event. Strings are borrowed, valid during the callback only.
 * type is "message" when the event named none; id is "" if none was seen. */
typedef struct cli_sse_event {
    const char *type;
    const char *data;
    const char *id;
} cli_sse_event;

/* Returns 0 to go on, nonzero to stop (cli_sse_feed then returns it). */
typedef int (*cli_sse_cb)(void *ud, const cli_sse_event *ev);

typedef struct cli_sse {
    char *line;   /* the line being read */
    size_t len, cap;
    char *data;   /* data lines of the event so far, '\n'-joined */
    size_t dlen, dcap;
    int has_data;
    char type[64];
    char id[64];
    int after_cr; /* the last byte was CR: a following LF is part of it */
    cli_sse_cb cb;
    void *ud;
} cli_sse;

void cli_sse_init(cli_sse *s, cli_sse_cb cb, void *ud);
/* Feeds n bytes. Returns 0, the callback's nonzero value, or -1 when out
 * of memory or a line is too long (the parser is then unusable). */
int cli_sse_feed(cli_sse *s, const char *p, size_t n);
/* The last event id seen ("" if none). */
const char *cli_sse_last_id(const cli_sse *s);
void cli_sse_free(cli_sse *s);

#endif
