/*
 * store/version.c — a number that changes whenever anything is written, read
 * without taking the store's lock: a SQLite commit hook on the store's one
 * connection counts commits (every write, explicit transaction or not, ends
 * in one). The service layer uses it to serve job views from memory.
 *
 * Why a hook and not sqlite3_total_changes64: reading that needs the lock,
 * and the lock is held through every fsync'd commit, so each cached read
 * would wait for the disk — exactly what the cache is there to avoid.
 *
 * The hook runs as the commit begins, with the lock held: the count moves
 * before the new data can be read, so a reader that sees an old count may
 * keep what it has (the write has not finished, the read is ordered before
 * it), and one that sees a new count re-reads through the lock, after the
 * commit. A commit that then fails only costs a re-read. The store must not
 * set another commit hook on its connection (SQLite keeps one).
 */
#include "store/store_internal.h"

static int on_commit(void *arg)
{
    atomic_fetch_add((atomic_llong *)arg, 1);
    return 0; /* let the commit go on */
}

int64_t store_data_version(store *s)
{
    if (!atomic_load(&s->commits_hooked)) {
        store__lock(s);
        if (!atomic_load(&s->commits_hooked)) {
            sqlite3_commit_hook(s->db, on_commit, &s->commits);
            atomic_store(&s->commits_hooked, 1);
        }
        store__unlock(s);
    }
    return (int64_t)atomic_load(&s->commits);
}
