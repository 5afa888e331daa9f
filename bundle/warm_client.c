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
 *   else /tmp (an absolute path; the bundle also tries <its cache root>/warm), created 0700 and
 *   used only when it is a real directory of ours that nobody else may use; the server checks
 *   the peer's uid too.
 * - The socket's name is a checksum (two FNV-1a 64-bit sums: not a secret, only a name; the
 *   directory is the boundary) of everything a cold start takes from the process that a call
 *   cannot change: the code (the venv's root and Python, or the bundle's cache entry, named by
 *   its payload's checksum), uid, gid, groups, rlimits, nice, CPU affinity, the root directory,
 *   and the environment variables the interpreter, the loader or OpenSSL read at start-up
 *   (WARM_STARTUP_VARS). A call differing in any of them meets another server.
 * - WARM=false (any false spelling of the schema's flag type; a value that is no flag counts as
 *   false) or a task outside WARM_TASKS: cold at once, no server contacted.
 * - Every wait is bounded: connect is non-blocking (a full backlog is a cold run), and the
 *   handshake has WARM_HANDSHAKE_MS in all. After the commit the client waits as it would for a
 *   cold child, forwarding SIGINT, SIGTERM and SIGHUP (unless they were ignored when it started)
 *   to the server, which signals the call's process group (and kills it if the client dies).
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
    !defined(WARM_STARTUP_VARS)
#error "build through octopod_dev/warm_client.py: it passes the task list and the flag words"
#endif

#define WARM_PROTOCOL 1
#define WARM_HANDSHAKE_MS 500
#define WARM_MAX_CALL (4u << 20)
#define WARM_KEY_HEX 32
#define WARM_SERVER_VAR "_OCTOPOD_WARM_SERVER"

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
static int warm_private_dir(const char *path) {
    if (mkdir(path, 0700) != 0 && errno != EEXIST) return 0;
    struct stat st;
    if (lstat(path, &st) != 0 || !S_ISDIR(st.st_mode) || st.st_uid != getuid()) return 0;
    if (st.st_mode & 077) {  /* ours but open to others (made by hand?): tighten it */
        if (chmod(path, 0700) != 0 || lstat(path, &st) != 0 || (st.st_mode & 077)) return 0;
    }
    return 1;
}

static int warm_dir(char *out, size_t size, const char *fallback) {
    const char *base = getenv("XDG_RUNTIME_DIR");
    if (!base || base[0] != '/') base = getenv("TMPDIR");
    if (!base || base[0] != '/') base = "/tmp";
    if (snprintf(out, size, "%s/octopod-control-warm-%u", base, (unsigned)getuid()) < (int)size &&
        warm_private_dir(out))
        return 1;
    return fallback && snprintf(out, size, "%s/warm", fallback) < (int)size && warm_private_dir(out);
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
static int warm_pending;  /* the last signal forwarded: still ours if the call comes back cold */

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

/* Committed: relay signals, wait for the status. Returns only when the server answers "C"
 * (no child took the call: run it cold). */
static void warm_follow(int s) {
    unsigned char status[5];
    size_t got = 0;
    for (;;) {
        struct pollfd p[2] = {{s, POLLIN, 0}, {warm_pipe[0], POLLIN, 0}};
        if (poll(p, 2, -1) < 0) {
            if (errno == EINTR) continue;
            break;
        }
        if (p[1].revents & POLLIN) {
            unsigned char sigs[16];
            ssize_t n = read(warm_pipe[0], sigs, sizeof sigs);
            for (ssize_t i = 0; i < n; i++) {
                unsigned char k[2] = {'K', sigs[i]};
                warm_pending = sigs[i];
                if (send(s, k, 2, MSG_NOSIGNAL) < 0) {}
            }
        }
        if (!(p[0].revents & (POLLIN | POLLHUP | POLLERR))) continue;
        ssize_t n = recv(s, status + got, sizeof status - got, 0);
        if (n < 0 && (errno == EINTR || errno == EAGAIN)) continue;
        if (n <= 0) break;
        if (got == 0 && status[0] == 'C') return;
        got += (size_t)n;
        if (got == sizeof status && status[0] == 'X') {
            int32_t st = (int32_t)((uint32_t)status[1] | (uint32_t)status[2] << 8 |
                                   (uint32_t)status[3] << 16 | (uint32_t)status[4] << 24);
            warm_exit_as(st);
        }
        if (got == sizeof status) break;
    }
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
    if (warm_pending) raise(warm_pending);
}

/* Hand the call to the server at path; exits with the call's status when it ran there. */
static enum warm_result warm_call(const char *path, const char *key, int nargs, char **args) {
    for (int fd = 0; fd < 3; fd++)
        if (fcntl(fd, F_GETFD) < 0) return WARM_COLD;  /* a closed stdio stays the cold run's */
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

/* A server's environment: the start-up variables (its key), the two settings it reads, the socket. */
static char **warm_server_environ(const char *path, char **self) {
    size_t n = 0;
    for (char **e = environ; *e; e++) n++;
    char **env = calloc(n + 2, sizeof *env);
    *self = malloc(strlen(WARM_SERVER_VAR) + strlen(path) + 2);
    if (!env || !*self) { free(env); free(*self); return NULL; }
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
    env[k] = NULL;
    return env;
}

/* Start a server for path unless one holds the key's lock (starting or serving). */
static void warm_spawn(const char *dir, const char *key, const char *path, warm_start_fn start,
                       void *ctx) {
    char lock[PATH_MAX];
    if (snprintf(lock, sizeof lock, "%s/%s.lock", dir, key) >= (int)sizeof lock) return;
    int fd = open(lock, O_RDWR | O_CREAT | O_CLOEXEC | O_NOFOLLOW, 0600);
    if (fd < 0) return;
    int busy = flock(fd, LOCK_SH | LOCK_NB) != 0;
    close(fd);
    if (busy) return;
    char *self = NULL;
    char **env = warm_server_environ(path, &self);
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
