/*
 * The warm path's client (docs/warm.md): one source for both homes. bundle/launcher.c includes
 * it (the bundle's octopod-control is the client); built alone with -DWARM_CLIENT_MAIN it is the
 * venv's build/warm/octopod-warm, which scripts/<name> execs (octopod_dev/warm_client.py builds
 * it, passing -DWARM_TASKS, -DWARM_FALSE_WORDS, -DWARM_TRUE_WORDS and -DWARM_STARTUP_VARS from
 * octopod_control/warm.py and the configuration schema, so neither list is written twice).
 *
 * Octopod runs `check` for every staging every 30 s; ~85 ms of each cold call is starting
 * Python and importing Invoke. As Mercurial's chg does, this client hands the whole call to a
 * command server (octopod_control/warm.py) that has all of that imported already: argv,
 * environment, the working directory (an fd), umask, ignored and blocked signals, and fds 0, 1
 * and 2 (SCM_RIGHTS). The server forks; the child runs the call as a cold process would; the
 * client gets the child's wait status and ends the same way (exit code, or the same signal).
 *
 * Rules:
 * - warm_try() returns when the call must run cold, and the caller then runs it exactly as
 *   before (exec). Nothing is printed on that path. A server is started in the background when
 *   none runs (double fork, setsid, stdio on /dev/null, every other fd closed, a minimal
 *   environment): the call that starts it pays what a cold call pays, the next one is warm.
 * - A call never runs twice: the client commits ("G") only after the server validated the call
 *   ("R") within WARM_HANDSHAKE_MS; any failure before that is a cold run, none after it is
 *   (except the server answering "C" after the commit, which it does only when no child took
 *   the call: a fork that failed).
 * - The fds travel with the commit, never before it: fds in a message nobody reads (a stalled
 *   server's backlog) would hold the caller's pipes open, and the caller would wait for an EOF.
 * - The socket is in <base>/octopod-control-warm-<uid>, base = $XDG_RUNTIME_DIR, else $TMPDIR,
 *   else /tmp (an absolute path; the bundle also tries <its cache root>/warm). The base must be
 *   ours or root's, and sticky if others may write it (else another user could rename our
 *   directory away and put theirs in its place); the directory is created 0700 and used only
 *   when it is a real directory of ours with exactly that mode: one that was ever open to others
 *   may hold what they planted, so it is refused, never tightened. The socket file must be ours,
 *   and the listener too (SO_PEERCRED, before a byte is sent: the call carries the environment);
 *   the server checks our uid as well.
 * - The socket's name is a checksum (two FNV-1a 64-bit sums: not a secret, only a name; the
 *   directory and the owner checks are the boundary) of the protocol version and of everything
 *   a cold start takes from the process that a call cannot change: the code (the venv's root
 *   and Python, or the bundle's cache entry, named by its payload's checksum), uid, gid, groups,
 *   rlimits, nice, CPU affinity, the root directory, and the environment variables the
 *   interpreter, the loader or OpenSSL read at start-up (WARM_STARTUP_VARS). A call differing in
 *   any of them meets another server.
 * - WARM=false (any false spelling of the schema's flag type; a value that is no flag counts as
 *   false) or a task outside WARM_TASKS: cold at once, no server contacted.
 * - Every wait is bounded: connect is non-blocking (a full backlog is a cold run), and the
 *   handshake has WARM_HANDSHAKE_MS in all. After the commit the client waits as it would for a
 *   cold child. The server names the child ("P": its PID, which is its process group, and a
 *   pidfd); SIGINT, SIGTERM and SIGHUP (unless ignored when the client started) are given to
 *   that group by the client itself, so they reach the call even when the server is gone, and
 *   the group is SIGKILLed WARM_GRACE_MS later if the call has not ended (the server, told "K",
 *   does that too, and kills the group when the client dies).
 * - A server that cannot serve leaves <key>.failed: no client starts one for WARM_BACKOFF_S.
 */
#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <poll.h>
#include <sched.h>
#include <signal.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/file.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <sys/time.h>
#include <sys/types.h>
#include <sys/un.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#if !defined(WARM_TASKS) || !defined(WARM_FALSE_WORDS) || !defined(WARM_TRUE_WORDS) || \
    !defined(WARM_STARTUP_VARS) || !defined(WARM_PROTOCOL) || !defined(WARM_GRACE_MS) || \
    !defined(WARM_BACKOFF_S)
#error "build through octopod_dev/warm_client.py: it passes the task list, flag words and numbers"
#endif

#define WARM_HANDSHAKE_MS 500
#define WARM_MAX_CALL (4u << 20)
#define WARM_KEY_HEX 32
#define WARM_SERVER_VAR "_OCTOPOD_WARM_SERVER"
#define WARM_SINCE_VAR "_OCTOPOD_WARM_SINCE"

static const char *const warm_tasks[] = {WARM_TASKS, NULL};
static const char *const warm_false_words[] = {WARM_FALSE_WORDS, NULL};
static const char *const warm_true_words[] = {WARM_TRUE_WORDS, NULL};
static const char *const warm_startup_vars[] = {WARM_STARTUP_VARS, NULL};  /* name prefixes */
static const char *const warm_server_settings[] = {"WARM_IDLE=", "WARM_LOG=", NULL};
static const int warm_forwarded[] = {SIGINT, SIGTERM, SIGHUP};

extern char **environ;

/* Starts the server (exec); returns only when that failed. The environment is prepared. */
typedef void (*warm_start_fn)(void *ctx);

enum warm_result { WARM_COLD, WARM_NO_SERVER, WARM_STALE };

/* -- the flag and the task */
static int warm_word_in(const char *word, const char *const *words) {
    for (int i = 0; words[i]; i++)
        if (!strcmp(word, words[i])) return 1;
    return 0;
}

/* WARM, read as the schema reads a flag (stripped, any case); unset is on, anything else off. */
static int warm_enabled(void) {
    const char *v = getenv("WARM");
    if (!v) return 1;
    while (*v && strchr(" \t\n\r\f\v", *v)) v++;
    char word[16];
    size_t n = strlen(v);
    while (n && strchr(" \t\n\r\f\v", v[n - 1])) n--;
    if (n >= sizeof word) return 0;
    for (size_t i = 0; i < n; i++) word[i] = (char)((v[i] >= 'A' && v[i] <= 'Z') ? v[i] + 32 : v[i]);
    word[n] = 0;
    if (warm_word_in(word, warm_false_words)) return 0;
    return warm_word_in(word, warm_true_words);
}

/* The call is `[--write-pyc] <task> ...` with a warm task. */
static int warm_task(int nargs, char **args) {
    int i = nargs > 0 && !strcmp(args[0], "--write-pyc") ? 1 : 0;
    return i < nargs && warm_word_in(args[i], warm_tasks);
}

static int warm_startup_var(const char *entry) {
    for (int i = 0; warm_startup_vars[i]; i++)
        if (!strncmp(entry, warm_startup_vars[i], strlen(warm_startup_vars[i]))) return 1;
    return 0;
}

/* -- the key */
struct warm_hash { uint64_t a, b; };

static void warm_hash_bytes(struct warm_hash *h, const void *data, size_t n) {
    const unsigned char *p = data;
    for (size_t i = 0; i < n; i++) {
        h->a = (h->a ^ p[i]) * 0x100000001b3ULL;
        h->b = (h->b ^ p[i] ^ (i & 0xff)) * 0x100000001b3ULL;
    }
    /* a separator, so that ("ab","c") and ("a","bc") differ */
    h->a = (h->a ^ 0x1f) * 0x100000001b3ULL;
    h->b = (h->b ^ 0x1e) * 0x100000001b3ULL;
}

static void warm_hash_u64(struct warm_hash *h, uint64_t v) { warm_hash_bytes(h, &v, sizeof v); }

static int warm_strcmp(const void *a, const void *b) {
    return strcmp(*(char *const *)a, *(char *const *)b);
}

static int warm_gidcmp(const void *a, const void *b) {
    gid_t x = *(const gid_t *)a, y = *(const gid_t *)b;
    return x < y ? -1 : x > y;
}

/* 32 hex digits naming this code and start-up context; 0, or -1 when it cannot be computed. */
static int warm_key(char out[WARM_KEY_HEX + 1], const char *code, size_t code_len) {
    struct warm_hash h = {0xcbf29ce484222325ULL, 0x84222325cbf29ce4ULL};
    warm_hash_u64(&h, WARM_PROTOCOL);
    warm_hash_bytes(&h, code, code_len);
    warm_hash_u64(&h, getuid());
    warm_hash_u64(&h, getgid());
    int ngroups = getgroups(0, NULL);
    if (ngroups < 0) return -1;
    gid_t *groups = calloc((size_t)ngroups + 1, sizeof *groups);
    if (!groups || (ngroups = getgroups(ngroups, groups)) < 0) { free(groups); return -1; }
    qsort(groups, (size_t)ngroups, sizeof *groups, warm_gidcmp);
    for (int i = 0; i < ngroups; i++) warm_hash_u64(&h, groups[i]);
    free(groups);
    for (int r = 0; r < RLIM_NLIMITS; r++) {
        struct rlimit lim;
        if (getrlimit(r, &lim) != 0) return -1;
        warm_hash_u64(&h, lim.rlim_cur);
        warm_hash_u64(&h, lim.rlim_max);
    }
    errno = 0;
    int nice = getpriority(PRIO_PROCESS, 0);
    if (errno) return -1;
    warm_hash_u64(&h, (uint64_t)(int64_t)nice);
    cpu_set_t cpus;
    if (sched_getaffinity(0, sizeof cpus, &cpus) == 0) warm_hash_bytes(&h, &cpus, sizeof cpus);
    struct stat root;
    if (stat("/", &root) != 0) return -1;
    warm_hash_u64(&h, root.st_dev);
    warm_hash_u64(&h, root.st_ino);
    size_t n = 0;
    for (char **e = environ; *e; e++) n++;
    char **vars = calloc(n + 1, sizeof *vars);
    if (!vars) return -1;
    size_t k = 0;
    for (char **e = environ; *e; e++)
        if (warm_startup_var(*e)) vars[k++] = *e;
    qsort(vars, k, sizeof *vars, warm_strcmp);
    for (size_t i = 0; i < k; i++) warm_hash_bytes(&h, vars[i], strlen(vars[i]));
    free(vars);
    snprintf(out, WARM_KEY_HEX + 1, "%016llx%016llx", (unsigned long long)h.a,
             (unsigned long long)h.b);
    return 0;
}

/* -- the socket's directory */
/* A base nobody else can swap our directory in: ours or root's, sticky if others may write it. */
static int warm_safe_base(const char *base) {
    struct stat st;
    if (stat(base, &st) != 0 || !S_ISDIR(st.st_mode)) return 0;
    if (st.st_uid != getuid() && st.st_uid != 0) return 0;
    return !(st.st_mode & (S_IWGRP | S_IWOTH)) || (st.st_mode & S_ISVTX);
}

/* Ours, a real directory, mode 0700 exactly: made so by us now, or refused (never tightened). */
static int warm_private_dir(const char *path) {
    if (mkdir(path, 0700) == 0) {
        if (chmod(path, 0700) != 0) return 0;  /* a umask may have taken bits; nobody else could enter */
    } else if (errno != EEXIST) {
        return 0;
    }
    struct stat st;
    return lstat(path, &st) == 0 && S_ISDIR(st.st_mode) && st.st_uid == getuid() &&
           (st.st_mode & 07777) == 0700;
}

static int warm_dir_in(char *out, size_t size, const char *base, const char *name) {
    return snprintf(out, size, "%s/%s", base, name) < (int)size && warm_safe_base(base) &&
           warm_private_dir(out);
}

static int warm_dir(char *out, size_t size, const char *fallback) {
    const char *base = getenv("XDG_RUNTIME_DIR");
    if (!base || base[0] != '/') base = getenv("TMPDIR");
    if (!base || base[0] != '/') base = "/tmp";
    char name[64];
    snprintf(name, sizeof name, "octopod-control-warm-%u", (unsigned)getuid());
    return warm_dir_in(out, size, base, name) || (fallback && warm_dir_in(out, size, fallback, "warm"));
}

/* -- the exchange */
static long warm_ms_left(const struct timespec *deadline) {
    struct timespec now;
    clock_gettime(CLOCK_MONOTONIC, &now);
    long ms = (deadline->tv_sec - now.tv_sec) * 1000 + (deadline->tv_nsec - now.tv_nsec) / 1000000;
    return ms > 0 ? ms : 0;
}

static int warm_wait(int fd, short events, const struct timespec *deadline) {
    for (;;) {
        struct pollfd p = {fd, events, 0};
        int n = poll(&p, 1, deadline ? (int)warm_ms_left(deadline) : -1);
        if (n > 0) return 0;
        if (n == 0) return -1;
        if (errno != EINTR) return -1;
    }
}

static void warm_put32(unsigned char *p, uint32_t v) {
    for (int i = 0; i < 4; i++) p[i] = (unsigned char)(v >> (8 * i));
}

static void warm_put64(unsigned char *p, uint64_t v) {
    for (int i = 0; i < 8; i++) p[i] = (unsigned char)(v >> (8 * i));
}

/* header "OCW"+protocol, u32 body length; body: key[32], u32 umask, u64 ignored signals,
 * u64 blocked signals, u32 argc, u32 envc, then argc + envc NUL-terminated strings. */
static unsigned char *warm_message(const char *key, int nargs, char **args, size_t *size) {
    size_t envc = 0, strings = 0;
    for (int i = 0; i < nargs; i++) strings += strlen(args[i]) + 1;
    for (char **e = environ; *e; e++, envc++) strings += strlen(*e) + 1;
    size_t body = 32 + 4 + 8 + 8 + 4 + 4 + strings;
    if (body > WARM_MAX_CALL) return NULL;
    unsigned char *m = malloc(8 + body), *p = m;
    if (!m) return NULL;
    memcpy(p, "OCW", 3);
    p[3] = WARM_PROTOCOL;
    warm_put32(p + 4, (uint32_t)body);
    p += 8;
    memcpy(p, key, 32);
    p += 32;
    mode_t mask = umask(0);
    umask(mask);
    warm_put32(p, (uint32_t)mask);
    uint64_t ignored = 0, blocked = 0;
    sigset_t set;
    sigprocmask(SIG_BLOCK, NULL, &set);
    for (int s = 1; s <= 64; s++) {
        struct sigaction sa;
        if (sigaction(s, NULL, &sa) == 0 && sa.sa_handler == SIG_IGN) ignored |= 1ULL << (s - 1);
        if (sigismember(&set, s) == 1) blocked |= 1ULL << (s - 1);
    }
    warm_put64(p + 4, ignored);
    warm_put64(p + 12, blocked);
    warm_put32(p + 20, (uint32_t)nargs);
    warm_put32(p + 24, (uint32_t)envc);
    p += 28;
    for (int i = 0; i < nargs; i++) p = (unsigned char *)stpcpy((char *)p, args[i]) + 1;
    for (char **e = environ; *e; e++) p = (unsigned char *)stpcpy((char *)p, *e) + 1;
    *size = 8 + body;
    return m;
}

/* Send the message (no fds: they go with the commit). */
static int warm_send(int s, const unsigned char *m, size_t size, const struct timespec *dl) {
    size_t sent = 0;
    while (sent < size) {
        ssize_t n = send(s, m + sent, size - sent, MSG_NOSIGNAL);
        if (n > 0) { sent += (size_t)n; continue; }
        if (n < 0 && errno == EINTR) continue;
        if (n < 0 && errno == EAGAIN && warm_wait(s, POLLOUT, dl) == 0) continue;
        return -1;
    }
    return 0;
}

/* One byte from the server within the deadline (NULL: no deadline); -1 on EOF, error or time. */
static int warm_byte(int s, const struct timespec *dl) {
    for (;;) {
        unsigned char b;
        ssize_t n = recv(s, &b, 1, 0);
        if (n == 1) return b;
        if (n == 0) return -1;
        if (errno == EINTR) continue;
        if (errno != EAGAIN || warm_wait(s, POLLIN, dl) != 0) return -1;
    }
}

static int warm_pipe[2] = {-1, -1};
static int warm_pending;  /* the last signal that came: still ours if the call comes back cold */
static pid_t warm_child_pid;  /* the call's child (and process group), as the server named it */
static int warm_child_fd = -1;  /* its pidfd (-1: none, a kernel without pidfd_open) */

static void warm_on_signal(int sig) {
    int saved = errno;
    unsigned char b = (unsigned char)sig;
    if (write(warm_pipe[1], &b, 1) < 0) {}
    errno = saved;
}

/* End as the child ended: its exit code, or death by its signal. */
static void warm_exit_as(int status) {
    if (WIFEXITED(status)) _exit(WEXITSTATUS(status));
    if (WIFSIGNALED(status)) {
        int sig = WTERMSIG(status);
        signal(sig, SIG_DFL);
        sigset_t one;
        sigemptyset(&one);
        sigaddset(&one, sig);
        sigprocmask(SIG_UNBLOCK, &one, NULL);
        kill(getpid(), sig);
        _exit(128 + sig);
    }
    _exit(70);
}

/* The child still runs after waiting up to ms for it to end, so its PID and the number of the
 * process group it leads are its own: its pidfd is not readable (without a pidfd, a weaker
 * check: the group it leads is there). */
static int warm_child_running(int ms) {
    if (warm_child_pid <= 0) return 0;
    if (warm_child_fd < 0) return getpgid(warm_child_pid) == warm_child_pid;
    struct pollfd p = {warm_child_fd, POLLIN, 0};
    int n;
    while ((n = poll(&p, 1, ms)) < 0 && errno == EINTR) {}
    return n == 0;
}

static int warm_child_alive(void) { return warm_child_running(0); }

static uint32_t warm_get32(const unsigned char *p) {
    return (uint32_t)p[0] | (uint32_t)p[1] << 8 | (uint32_t)p[2] << 16 | (uint32_t)p[3] << 24;
}

/* After the commit the signals that end a call go to its process group from here, not through
 * the server: they reach the call even when the server is gone. The server is told ("K") so it
 * SIGKILLs the group after the grace even when we are gone by then; so do we, meanwhile. */
struct warm_relay { int delivered, armed, spent; struct timespec kill_at; };

static void warm_deliver(int s, struct warm_relay *r, int sig) {
    if (!warm_child_alive()) return;
    kill(-warm_child_pid, sig);
    r->delivered = sig;
    unsigned char k[2] = {'K', (unsigned char)sig};
    if (send(s, k, 2, MSG_NOSIGNAL | MSG_DONTWAIT) < 0) {}
    if (!r->armed && !r->spent) {
        r->armed = 1;
        clock_gettime(CLOCK_MONOTONIC, &r->kill_at);
        r->kill_at.tv_sec += WARM_GRACE_MS / 1000;
        r->kill_at.tv_nsec += (WARM_GRACE_MS % 1000) * 1000000L;
        if (r->kill_at.tv_nsec >= 1000000000L) { r->kill_at.tv_sec++; r->kill_at.tv_nsec -= 1000000000L; }
    }
}

/* Data from the server or the child, with any fd riding on it (one kept in *held, others closed);
 * the bytes read, 0 at EOF, -1 to try again, -2 on an error. */
static ssize_t warm_receive(int s, unsigned char *buf, size_t room, int *held) {
    union { char buf[CMSG_SPACE(2 * sizeof(int))]; struct cmsghdr align; } control;
    struct iovec iov = {buf, room};
    struct msghdr msg = {0};
    msg.msg_iov = &iov;
    msg.msg_iovlen = 1;
    msg.msg_control = control.buf;
    msg.msg_controllen = sizeof control.buf;
    ssize_t n = recvmsg(s, &msg, MSG_CMSG_CLOEXEC);
    if (n < 0) return errno == EINTR || errno == EAGAIN ? -1 : -2;
    for (struct cmsghdr *c = CMSG_FIRSTHDR(&msg); c; c = CMSG_NXTHDR(&msg, c)) {
        if (c->cmsg_level != SOL_SOCKET || c->cmsg_type != SCM_RIGHTS) continue;
        size_t count = (c->cmsg_len - CMSG_LEN(0)) / sizeof(int);
        for (size_t i = 0; i < count; i++) {
            int fd;
            memcpy(&fd, CMSG_DATA(c) + i * sizeof fd, sizeof fd);
            if (*held < 0) *held = fd;
            else close(fd);
        }
    }
    return n;
}

/* Committed: relay signals, wait for the status. Returns only when the server answers "C"
 * (no child took the call: run it cold). Messages: "P" + PID (the child, its pidfd riding on
 * it), then "X" + wait status (from the child itself, then from the server) or "C". */
static void warm_follow(int s) {
    unsigned char buf[32];
    size_t got = 0;
    int held = -1;
    struct warm_relay relay = {0, 0, 0, {0, 0}};
    for (;;) {
        struct pollfd p[2] = {{s, POLLIN, 0}, {warm_pipe[0], POLLIN, 0}};
        int n = poll(p, 2, relay.armed ? (int)warm_ms_left(&relay.kill_at) : -1);
        if (n < 0 && errno == EINTR) continue;
        if (n < 0) break;
        if (n == 0) {  /* the grace is over and the call still runs */
            relay.armed = 0;
            relay.spent = 1;
            warm_deliver(s, &relay, SIGKILL);
            continue;
        }
        if (p[1].revents & POLLIN) {
            unsigned char sigs[16];
            ssize_t k = read(warm_pipe[0], sigs, sizeof sigs);
            for (ssize_t i = 0; i < k; i++) {
                warm_pending = sigs[i];
                warm_deliver(s, &relay, sigs[i]);  /* before "P": given when it comes */
            }
        }
        if (!(p[0].revents & (POLLIN | POLLHUP | POLLERR))) continue;
        ssize_t r = warm_receive(s, buf + got, sizeof buf - got, &held);
        if (r == -1) continue;
        if (r <= 0) break;
        got += (size_t)r;
        while (got > 0) {
            if (buf[0] == 'C') {
                if (held >= 0) close(held);
                return;
            }
            if (got < 5 || (buf[0] != 'P' && buf[0] != 'X')) break;
            if (buf[0] == 'X') warm_exit_as((int)warm_get32(buf + 1));
            if (warm_child_pid == 0) {
                warm_child_pid = (pid_t)warm_get32(buf + 1);
                warm_child_fd = held;
                held = -1;
                if (warm_pending) warm_deliver(s, &relay, warm_pending);
            }
            memmove(buf, buf + 5, got - 5);
            got -= 5;
        }
        if (got > 0 && buf[0] != 'P' && buf[0] != 'X') break;  /* not our protocol */
    }
    if (held >= 0) close(held);
    /* No status: the server is gone, and the child is ending (it held our connection to its
     * end; its exit is seen a moment after its files close). It ended by the signal we gave it,
     * as a cold process would have. */
    if (relay.delivered && !warm_child_running(1000)) warm_exit_as(relay.delivered);
    fprintf(stderr, "error: octopod-control: the warm command server ended during the call "
                    "(WARM=false runs every call cold)\n");
    _exit(70);
}

/* The commit: "G" with fds 0, 1, 2 and the working directory riding on it. */
static int warm_send_go(int s, int cwd) {
    int fds[4] = {0, 1, 2, cwd};
    union { char buf[CMSG_SPACE(sizeof fds)]; struct cmsghdr align; } control;
    memset(&control, 0, sizeof control);
    char go = 'G';
    struct iovec iov = {&go, 1};
    struct msghdr msg = {0};
    msg.msg_iov = &iov;
    msg.msg_iovlen = 1;
    msg.msg_control = control.buf;
    msg.msg_controllen = sizeof control.buf;
    struct cmsghdr *c = CMSG_FIRSTHDR(&msg);
    c->cmsg_level = SOL_SOCKET;
    c->cmsg_type = SCM_RIGHTS;
    c->cmsg_len = CMSG_LEN(sizeof fds);
    memcpy(CMSG_DATA(c), fds, sizeof fds);
    for (;;) {
        ssize_t n = sendmsg(s, &msg, MSG_NOSIGNAL);
        if (n == 1) return 0;
        if (n < 0 && errno == EINTR) continue;
        return -1;
    }
}

/* The committed part of the handshake; returns only when the call must run cold. */
static void warm_commit(int s, int cwd) {
    if (pipe2(warm_pipe, O_CLOEXEC | O_NONBLOCK) != 0) return;
    struct sigaction sa = {0};
    sa.sa_handler = warm_on_signal;
    sigemptyset(&sa.sa_mask);
    struct sigaction before[3];
    int installed[3] = {0};
    for (int i = 0; i < 3; i++) {
        if (sigaction(warm_forwarded[i], NULL, &before[i]) != 0 || before[i].sa_handler == SIG_IGN)
            continue;
        installed[i] = sigaction(warm_forwarded[i], &sa, NULL) == 0;
    }
    if (warm_send_go(s, cwd) == 0) warm_follow(s);
    /* not committed after all (the server was gone), or told "C": the cold run is ours again,
     * and so is a signal that came meanwhile (delivered again, as it would have been) */
    unsigned char sigs[16];
    for (ssize_t n; (n = read(warm_pipe[0], sigs, sizeof sigs)) > 0;) warm_pending = sigs[n - 1];
    for (int i = 0; i < 3; i++)
        if (installed[i]) sigaction(warm_forwarded[i], &before[i], NULL);
    close(warm_pipe[0]);
    close(warm_pipe[1]);
    if (warm_child_fd >= 0) close(warm_child_fd);
    warm_child_fd = -1;
    warm_child_pid = 0;
    if (warm_pending) raise(warm_pending);
}

/* Hand the call to the server at path; exits with the call's status when it ran there. */
static enum warm_result warm_call(const char *path, const char *key, int nargs, char **args) {
    for (int fd = 0; fd < 3; fd++)
        if (fcntl(fd, F_GETFD) < 0) return WARM_COLD;  /* a closed stdio stays the cold run's */
    struct stat st;
    if (lstat(path, &st) != 0) return errno == ENOENT ? WARM_NO_SERVER : WARM_COLD;
    if (!S_ISSOCK(st.st_mode) || st.st_uid != getuid()) return WARM_COLD;  /* not our server's */
    struct timespec dl;
    clock_gettime(CLOCK_MONOTONIC, &dl);
    dl.tv_sec += WARM_HANDSHAKE_MS / 1000;
    dl.tv_nsec += (WARM_HANDSHAKE_MS % 1000) * 1000000L;
    if (dl.tv_nsec >= 1000000000L) { dl.tv_sec++; dl.tv_nsec -= 1000000000L; }
    int s = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC | SOCK_NONBLOCK, 0);
    if (s < 0) return WARM_COLD;
    struct sockaddr_un addr = {.sun_family = AF_UNIX};
    snprintf(addr.sun_path, sizeof addr.sun_path, "%s", path);
    if (connect(s, (struct sockaddr *)&addr, sizeof addr) != 0) {
        int e = errno;
        close(s);
        return e == ENOENT || e == ECONNREFUSED ? WARM_NO_SERVER : WARM_COLD;
    }
    struct ucred peer;
    socklen_t peer_len = sizeof peer;
    if (getsockopt(s, SOL_SOCKET, SO_PEERCRED, &peer, &peer_len) != 0 || peer_len != sizeof peer ||
        peer.uid != getuid()) {  /* another user listens there: not one byte of the call for it */
        close(s);
        return WARM_COLD;
    }
    enum warm_result result = WARM_COLD;
    size_t size = 0;
    unsigned char *m = warm_message(key, nargs, args, &size);
    int cwd = open(".", O_PATH | O_DIRECTORY | O_CLOEXEC);
    if (m && cwd >= 0 && warm_send(s, m, size, &dl) == 0) {
        int answer = warm_byte(s, &dl);
        if (answer == 'R') {
            free(m);
            m = NULL;
            warm_commit(s, cwd);  /* returns only when the call is still ours to run cold */
        } else if (answer == 'S') {
            result = WARM_STALE;
        }
    }
    free(m);
    if (cwd >= 0) close(cwd);
    close(s);
    return result;
}

/* -- starting a server */
static void warm_close_from(int lowest) {
#ifdef SYS_close_range
    if (syscall(SYS_close_range, (unsigned)lowest, ~0U, 0) == 0) return;
#endif
    struct rlimit lim;
    long top = getrlimit(RLIMIT_NOFILE, &lim) == 0 && lim.rlim_cur < 65536 ? (long)lim.rlim_cur : 65536;
    for (long fd = lowest; fd < top; fd++) close((int)fd);
}

/* A server's environment: the start-up variables (its key), the two settings it reads, the socket,
 * and when it was started (before this instant the interpreter read no file: one changed after it
 * may have been imported before the change; the server then does not serve). */
static char **warm_server_environ(const char *path, char **self, char *since, size_t since_size) {
    size_t n = 0;
    for (char **e = environ; *e; e++) n++;
    char **env = calloc(n + 3, sizeof *env);
    *self = malloc(strlen(WARM_SERVER_VAR) + strlen(path) + 2);
    struct timespec now;
    if (!env || !*self || clock_gettime(CLOCK_REALTIME, &now) != 0) {
        free(env);
        free(*self);
        return NULL;
    }
    snprintf(since, since_size, "%s=%lld", WARM_SINCE_VAR,
             (long long)now.tv_sec * 1000000000LL + now.tv_nsec);
    size_t k = 0;
    for (char **e = environ; *e; e++) {
        int setting = 0;
        for (int i = 0; warm_server_settings[i]; i++)
            if (!strncmp(*e, warm_server_settings[i], strlen(warm_server_settings[i]))) setting = 1;
        if (setting || (warm_startup_var(*e) && strncmp(*e, WARM_SERVER_VAR "=", sizeof WARM_SERVER_VAR)))
            env[k++] = *e;
    }
    sprintf(*self, "%s=%s", WARM_SERVER_VAR, path);
    env[k++] = *self;
    env[k++] = since;
    env[k] = NULL;
    return env;
}

/* A server of this key could not serve less than WARM_BACKOFF_S ago (its <key>.failed). */
static int warm_backing_off(const char *dir, const char *key) {
    char failed[PATH_MAX];
    if (snprintf(failed, sizeof failed, "%s/%s.failed", dir, key) >= (int)sizeof failed) return 1;
    struct stat st;
    if (lstat(failed, &st) != 0) return errno != ENOENT;
    struct timespec now;
    clock_gettime(CLOCK_REALTIME, &now);
    long long age = (long long)now.tv_sec - (long long)st.st_mtim.tv_sec;
    return age > -WARM_BACKOFF_S && age < WARM_BACKOFF_S;  /* a clock set back far: try again */
}

/* Someone holds the key's lock: a server starting or serving (the file goes with its holder). */
static int warm_lock_held(const char *dir, const char *key) {
    char lock[PATH_MAX];
    if (snprintf(lock, sizeof lock, "%s/%s.lock", dir, key) >= (int)sizeof lock) return 1;
    int fd = open(lock, O_RDONLY | O_CLOEXEC | O_NOFOLLOW);
    if (fd < 0) return errno != ENOENT;
    int held = flock(fd, LOCK_SH | LOCK_NB) != 0;
    close(fd);
    return held;
}

/* Start a server for path unless one holds the key's lock, or one failed to serve just now. */
static void warm_spawn(const char *dir, const char *key, const char *path, warm_start_fn start,
                       void *ctx) {
    if (warm_backing_off(dir, key) || warm_lock_held(dir, key)) return;
    char *self = NULL, since[64];
    char **env = warm_server_environ(path, &self, since, sizeof since);
    if (!env) return;
    pid_t pid = fork();
    if (pid == 0) {
        if (setsid() < 0 || fork() != 0) _exit(0);
        int null = open("/dev/null", O_RDWR);
        if (null < 0) _exit(0);
        for (int i = 0; i < 3; i++) dup2(null, i);
        warm_close_from(3);
        if (chdir("/") != 0) _exit(0);
        umask(077);
        sigset_t none;
        sigemptyset(&none);
        sigprocmask(SIG_SETMASK, &none, NULL);
        for (int s = 1; s < 65; s++) signal(s, SIG_DFL);
        environ = env;
        start(ctx);
        _exit(0);
    }
    if (pid > 0) {
        while (waitpid(pid, NULL, 0) < 0 && errno == EINTR) {}
    }
    free(self);
    free(env);
}

/* Run the call warm and exit with its status; or return, and the caller runs it cold (after a
 * server was started when none runs). code names the code the server would run. */
static void warm_try(const char *code, size_t code_len, int nargs, char **args, const char *fallback,
                     warm_start_fn start, void *ctx) {
    if (!warm_enabled() || !warm_task(nargs, args)) return;
    char dir[PATH_MAX], key[WARM_KEY_HEX + 1], path[sizeof ((struct sockaddr_un *)0)->sun_path];
    if (!warm_dir(dir, sizeof dir, fallback) || warm_key(key, code, code_len) != 0) return;
    /* room for the server's temporary ".bind-<pid>" name too */
    if (snprintf(path, sizeof path, "%s/%s.sock", dir, key) >= (int)sizeof path - 8) return;
    enum warm_result r = warm_call(path, key, nargs, args);
    if (r == WARM_NO_SERVER || r == WARM_STALE) warm_spawn(dir, key, path, start, ctx);
}

#ifdef WARM_CLIENT_MAIN
/* build/warm/octopod-warm ROOT PYTHON ARGS...: what scripts/<name> runs (octopod_dev/wrappers.py);
 * cold, it execs exactly the wrapper's own line: PYTHON -P -m octopod_control ARGS... */
static const char *warm_python;

static void warm_start_venv(void *ctx) {
    (void)ctx;
    char *argv[] = {(char *)warm_python, "-P", "-m", "octopod_control.warm", NULL};
    execv(warm_python, argv);
}

int main(int argc, char **argv) {
    if (argc < 3) {
        fprintf(stderr, "usage: octopod-warm ROOT PYTHON [--write-pyc] TASK ARGS...\n");
        return 64;
    }
    const char *root = argv[1];
    warm_python = argv[2];
    if (root[0] == '/' && warm_python[0] == '/') {
        char real[PATH_MAX], code[3 * PATH_MAX + 8];
        if (!realpath(warm_python, real)) real[0] = 0;
        int n = snprintf(code, sizeof code, "venv%c%s%c%s%c%s", 0, root, 0, warm_python, 0, real);
        if (n > 0 && n < (int)sizeof code)
            warm_try(code, (size_t)n, argc - 3, argv + 3, NULL, warm_start_venv, NULL);
    }
    char **cold = calloc((size_t)argc + 2, sizeof *cold);
    if (!cold) return 70;
    int k = 0;
    cold[k++] = (char *)warm_python;
    cold[k++] = "-P";
    cold[k++] = "-m";
    cold[k++] = "octopod_control";
    for (int i = 3; i < argc; i++) cold[k++] = argv[i];
    cold[k] = NULL;
    execv(warm_python, cold);
    fprintf(stderr, "octopod-warm: cannot run %s: %s\n", warm_python, strerror(errno));
    return 127;
}
#endif
