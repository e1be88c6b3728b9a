/*
 * bench/bare_mhd.c — the yardstick for the API benchmark: a libmicrohttpd
 * server that answers every request with one fixed JSON body (the size of a
 * job's view), configured like mtld's (a thread pool over epoll, the same
 * pool size), and nothing else: no routing, no auth, no store, no JSON
 * building. bench/api_wrk.sh measures mtld's GET /v1/jobs/{id} against it.
 *
 * It includes microhttpd.h outside api/: bench/ is exempt from the layering
 * rule (it is not part of the daemon; it measures it).
 *
 * usage: bare_mhd PORT [THREADS]   (runs until SIGINT/SIGTERM)
 */
#include <microhttpd.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

static const char BODY[] =
    "{\"id\":1,\"name\":\"bench\",\"algorithm\":\"multitask\",\"state\":\"running\","
    "\"priority\":0,\"progress\":0.4213,\"step\":29491,\"steps\":7000000,"
    "\"created_at\":\"2026-12-03T20:00:00.000Z\",\"started_at\":\"2026-12-03T20:00:00.100Z\","
    "\"finished_at\":null,\"eta_seconds\":1234.5}\n";

static struct MHD_Response *resp;

static enum MHD_Result on_request(void *cls, struct MHD_Connection *c, const char *url,
                                  const char *method, const char *version,
                                  const char *upload_data, size_t *upload_data_size,
                                  void **con_cls)
{
    (void)cls;
    (void)url;
    (void)method;
    (void)version;
    (void)upload_data;
    if (*con_cls == NULL) { /* headers only: wait for the end of the request */
        *con_cls = (void *)1;
        return MHD_YES;
    }
    *upload_data_size = 0;
    return MHD_queue_response(c, MHD_HTTP_OK, resp);
}

int main(int argc, char **argv)
{
    if (argc < 2) {
        fprintf(stderr, "usage: %s PORT [THREADS]\n", argv[0]);
        return 2;
    }
    unsigned port = (unsigned)strtoul(argv[1], NULL, 10);
    unsigned threads = argc > 2 ? (unsigned)strtoul(argv[2], NULL, 10) : 4;
    resp = MHD_create_response_from_buffer(sizeof BODY - 1, (void *)BODY,
                                           MHD_RESPMEM_PERSISTENT);
    MHD_add_response_header(resp, MHD_HTTP_HEADER_CONTENT_TYPE, "application/json");
    sigset_t sigs;
    sigemptyset(&sigs);
    sigaddset(&sigs, SIGINT);
    sigaddset(&sigs, SIGTERM);
    pthread_sigmask(SIG_BLOCK, &sigs, NULL);
    struct MHD_Daemon *d = MHD_start_daemon(
        MHD_USE_INTERNAL_POLLING_THREAD | MHD_USE_AUTO | MHD_USE_ERROR_LOG, (uint16_t)port, NULL,
        NULL, &on_request, NULL, MHD_OPTION_THREAD_POOL_SIZE, threads,
        MHD_OPTION_CONNECTION_LIMIT, 256u, MHD_OPTION_CONNECTION_TIMEOUT, 60u, MHD_OPTION_END);
    if (!d) {
        fprintf(stderr, "cannot listen on port %u\n", port);
        return 1;
    }
    int sig = 0;
    sigwait(&sigs, &sig);
    MHD_stop_daemon(d);
    MHD_destroy_response(resp);
    return 0;
}
