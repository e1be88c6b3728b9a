/*
 * daemon/sd.c — see sd.h. libsystemd when the build has it; otherwise the
 * protocols themselves (documented in sd_notify(3) and sd_listen_fds(3)),
 * which are small and stable: that keeps the daemon's behaviour under systemd
 * the same whichever way it was built.
 */
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include "daemon/sd.h"

#ifdef MTLD_HAVE_SYSTEMD
#include <systemd/sd-daemon.h>

int mtld_sd_notify(const char *state)
{
    return sd_notify(0, state);
}

uint64_t mtld_sd_watchdog_usec(void)
{
    uint64_t usec = 0;
    return sd_watchdog_enabled(0, &usec) > 0 ? usec : 0;
}

static int listen_fds(void)
{
    return sd_listen_fds(1);
}

#else
#include <stddef.h>
#include <sys/un.h>

#define SD_LISTEN_FDS_START 3

int mtld_sd_notify(const char *state)
{
    const char *path = getenv("NOTIFY_SOCKET");
    struct sockaddr_un sa;
    size_t n = path ? strlen(path) : 0;
    if (n < 2 || n >= sizeof sa.sun_path || (path[0] != '/' && path[0] != '@'))
        return 0;
    memset(&sa, 0, sizeof sa);
    sa.sun_family = AF_UNIX;
    memcpy(sa.sun_path, path, n);
    if (sa.sun_path[0] == '@') /* the abstract namespace */
        sa.sun_path[0] = 0;
    int fd = socket(AF_UNIX, SOCK_DGRAM | SOCK_CLOEXEC, 0);
    if (fd < 0)
        return -errno;
    ssize_t w = sendto(fd, state, strlen(state), MSG_NOSIGNAL | MSG_DONTWAIT, (struct sockaddr *)&sa,
                       (socklen_t)(offsetof(struct sockaddr_un, sun_path) + n));
    int e = errno;
    close(fd);
    return w < 0 ? -e : 1;
}

/* A positive decimal number, or -1. */
static long long parse_pos(const char *s)
{
    char *end = NULL;
    if (!s || !s[0])
        return -1;
    errno = 0;
    long long v = strtoll(s, &end, 10);
    return (*end || errno || v <= 0) ? -1 : v;
}

uint64_t mtld_sd_watchdog_usec(void)
{
    const char *pid = getenv("WATCHDOG_PID");
    if (pid && parse_pos(pid) != (long long)getpid())
        return 0;
    long long v = parse_pos(getenv("WATCHDOG_USEC"));
    return v > 0 ? (uint64_t)v : 0;
}

static int listen_fds(void)
{
    int n = 0;
    if (parse_pos(getenv("LISTEN_PID")) == (long long)getpid()) {
        long long v = parse_pos(getenv("LISTEN_FDS"));
        n = v > 0 && v < 1024 ? (int)v : (getenv("LISTEN_FDS") ? -EINVAL : 0);
        for (int fd = SD_LISTEN_FDS_START; fd < SD_LISTEN_FDS_START + n; fd++)
            if (fcntl(fd, F_SETFD, FD_CLOEXEC) != 0) {
                n = -errno;
                break;
            }
    }
    unsetenv("LISTEN_PID");
    unsetenv("LISTEN_FDS");
    unsetenv("LISTEN_FDNAMES");
    return n;
}
#endif

int mtld_sd_listen_fd(int *fd, char *err, size_t errlen)
{
    *fd = -1;
    int n = listen_fds();
    if (n == 0)
        return 0;
    if (n < 0) {
        snprintf(err, errlen, "cannot take the sockets passed by systemd (LISTEN_FDS): %s",
                 strerror(-n));
        return -1;
    }
    if (n > 1) {
        snprintf(err, errlen,
                 "systemd passed %d sockets; mtld listens on one (give mtld.socket a single "
                 "ListenStream=)",
                 n);
        return -1;
    }
    int s = SD_LISTEN_FDS_START, type = 0, acc = 0;
    struct sockaddr_storage ss;
    socklen_t tl = sizeof type, al = sizeof acc, sl = sizeof ss;
    if (getsockopt(s, SOL_SOCKET, SO_TYPE, &type, &tl) != 0 ||
        getsockopt(s, SOL_SOCKET, SO_ACCEPTCONN, &acc, &al) != 0 ||
        getsockname(s, (struct sockaddr *)&ss, &sl) != 0 || type != SOCK_STREAM || !acc ||
        (ss.ss_family != AF_INET && ss.ss_family != AF_INET6)) {
        snprintf(err, errlen,
                 "the socket systemd passed (fd %d) is not a listening TCP socket (mtld.socket "
                 "needs ListenStream=HOST:PORT)",
                 s);
        return -1;
    }
    *fd = s;
    return 1;
}
