/*
 * daemon/svc_idem.c — Idempotency-Key bookkeeping for creating requests
 * (see svc.h). The records live in the store, so a retry after a restart
 * still finds the first reply. Each daemon process has an owner token
 * (its pid and start time): a reservation with another owner was left by a
 * process that stopped before it finished, and is reported as such rather
 * than as "in progress".
 */
#include <stdio.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "daemon/svc_internal.h"

static pthread_once_t owner_once = PTHREAD_ONCE_INIT;
static char owner[64];

static void make_owner(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    snprintf(owner, sizeof owner, "%ld-%lld.%09ld", (long)getpid(), (long long)ts.tv_sec,
             (long)ts.tv_nsec);
}

int svc_idem_begin(svc *s, const char *key, const char *fingerprint, json_t **replay,
                   svc_error *e)
{
    pthread_once(&owner_once, make_owner);
    store_idem r = {0};
    int reserved = 0;
    *replay = NULL;
    int rc = store_idem_begin(s->db, key, fingerprint, owner, &r, &reserved);
    if (rc != STORE_OK)
        return svc__store_fail(e, rc, "idempotency key", key);
    if (reserved)
        return SVC_OK;
    if (strcmp(r.fingerprint ? r.fingerprint : "", fingerprint) != 0) {
        store_idem_clear(&r);
        return svc__fail(e, SVC_EINVAL, "Idempotency-Key",
                         "this Idempotency-Key was used for a different request (another path "
                         "or body); use a new key for a new request");
    }
    if (r.status == 0) {
        int mine = r.owner && !strcmp(r.owner, owner);
        store_idem_clear(&r);
        if (mine)
            return svc__fail(e, SVC_ECONFLICT, "Idempotency-Key",
                             "a request with this Idempotency-Key is still in progress; retry "
                             "in a moment");
        return svc__fail(e, SVC_ECONFLICT, "Idempotency-Key",
                         "the first request with this Idempotency-Key was interrupted by a "
                         "restart before it answered; check whether the resource exists, then "
                         "use a new key");
    }
    *replay = json_pack("{s:i,s:s,s:s%}", "status", r.status, "content_type",
                        r.content_type ? r.content_type : "application/json", "body",
                        r.body ? r.body : "", r.body_len);
    store_idem_clear(&r);
    if (!*replay)
        return svc__fail(e, SVC_ENOMEM, NULL, "out of memory");
    return SVC_OK;
}

int svc_idem_finish(svc *s, const char *key, int status, const char *content_type,
                    const char *body, size_t len)
{
    return store_idem_finish(s->db, key, status, content_type, body, len) == STORE_OK
               ? SVC_OK
               : SVC_EIO;
}

void svc_idem_abort(svc *s, const char *key)
{
    (void)store_idem_abort(s->db, key);
}
