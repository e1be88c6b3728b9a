/*
 * daemon/sd.h — mtld's side of the systemd service protocol: readiness and
 * status (sd_notify), the watchdog, and socket activation (sd_listen_fds).
 *
 * With libsystemd (MTLD_HAVE_SYSTEMD) these call it; without, sd.c speaks the
 * same documented protocols itself (a datagram per message to NOTIFY_SOCKET;
 * LISTEN_PID/LISTEN_FDS naming descriptors from 3 up), so a build without
 * libsystemd behaves the same under systemd. Outside systemd (none of the
 * variables set) every call is a no-op. Used by daemon/main.c only, from its
 * main thread.
 */
#ifndef MTLD_SD_H
#define MTLD_SD_H

#include <stddef.h>
#include <stdint.h>

/* Sends one notify message ("READY=1", "STATUS=...", "WATCHDOG=1",
 * "STOPPING=1"). Returns >0 sent, 0 when not under a supervisor, <0 -errno. */
int mtld_sd_notify(const char *state);

/* The watchdog period systemd expects pings within (WATCHDOG_USEC, for this
 * process), in microseconds; 0 when there is no watchdog. */
uint64_t mtld_sd_watchdog_usec(void);

/* Socket activation. When systemd (or any supervisor following the
 * LISTEN_PID/LISTEN_FDS protocol) passed this process exactly one listening
 * stream socket, stores it in *fd (owned by the caller from then on; close-on-
 * exec set) and returns 1. Returns 0 with *fd = -1 when none was passed.
 * Returns -1 with the reason in err when the passed descriptors are not
 * usable: more than one, or not a listening AF_INET/AF_INET6 stream socket.
 * Either way the LISTEN_* variables are removed from the environment. */
int mtld_sd_listen_fd(int *fd, char *err, size_t errlen);

#endif
