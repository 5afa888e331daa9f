/*
 * octopod-control launcher: a static executable carrying a PyInstaller onedir build,
 * its shared libraries and the dynamic loader as a payload appended to itself.
 *
 * Octopod runs `check` for every deployment every 30 s inside an image with no
 * FHS loader, so unpacking tens of MB per call (PyInstaller onefile, staticx)
 * is not an option. The payload is unpacked once into a cache directory named
 * by its checksum key, verified (CRC-32 of the payload, zlib's check of every
 * file) before it is published by an atomic rename, and run from there through
 * the bundled loader (`ld.so --library-path`, so no LD_LIBRARY_PATH leaks into
 * helm or kubectl). When no cache directory is usable, or the cache entry is
 * broken, the payload goes to a private temporary directory that is removed
 * when the program exits.
 *
 * Layout written by octopod_control/bundle.py (keep in step):
 *   [launcher ELF][entries...][trailer]
 *   entry:   u8 type ('d','f','l'), u32 mode, u32 path_len, u64 raw_size,
 *            u64 stored_size, path, stored bytes (zlib stream for 'f', target for 'l')
 *   trailer: "OCTOPODB", u64 payload_offset, u64 payload_size, u32 crc32,
 *            u32 entries, char key[24], u64 reserved           (64 bytes, little-endian)
 *
 * Every size read from the file is checked against what is left of it before it is added
 * or used as a length (subtracting from the bytes left, never adding to an offset, so no
 * sum can wrap). Entry paths are relative without '..'; symlink targets likewise (neither
 * absolute nor with a '..' component), so nothing is written, or reachable through a
 * link, outside the unpack directory. A payload breaking these rules is refused with
 * exit 70 and one line, the partial directory removed: it is broken wherever we unpack.
 *
 * The warm path (docs/warm.md; the client is bundle/warm_client.c, included below): when the
 * program runs from the cache and the task is a warm one (check, info, tag-check,
 * archive-check) and WARM is not false, the launcher first hands the whole call (argv,
 * environment, working directory, umask, signal state, fds 0-2) to a command server: this
 * same program from the same cache entry, started once in the background (by the loader,
 * as exec_from runs it, with _OCTOPOD_WARM_SERVER naming its socket) with Python and the tool
 * already imported. The server forks a child per call that runs it as a cold run would; the
 * launcher exits with the child's status. Whenever that cannot be done (no server yet, a
 * stale or busy one, an unusable socket directory, a stalled handshake), nothing is printed
 * and the launcher goes on exactly as before: exec from the cache (having started a server
 * when none ran). The temporary-unpack fallback never goes warm. The launcher removes
 * _OCTOPOD_WARM_SERVER from its environment first, so only its own start of a server sets it.
 */
#define _GNU_SOURCE
#include <errno.h>
#include <dirent.h>
#include <fcntl.h>
#include <ftw.h>
#include <limits.h>
#include <signal.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <sys/types.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>
#include <zlib.h>

#define MAGIC "OCTOPODB"
#define TRAILER_SIZE 64
#define KEY_SIZE 24
#define LOADER "lib/ld-linux-x86-64.so.2"
#define LIBS "lib"
#define PROGRAM "app/octopod-control"
#define MARKER ".complete"

#include "warm_client.c"

struct trailer {
    uint64_t offset, size;
    uint32_t crc, entries;
    char key[KEY_SIZE + 1];
};

static const unsigned char *image;  /* our own file, mapped */
static size_t image_size;
static struct trailer tr;
static pid_t child;

static void fail(const char *what, const char *detail) {
    fprintf(stderr, "error: octopod-control launcher: %s%s%s\n", what, detail ? ": " : "",
            detail ? detail : "");
    exit(70);
}

static uint64_t le(const unsigned char *p, int n) {
    uint64_t v = 0;
    for (int i = n - 1; i >= 0; i--) v = (v << 8) | p[i];
    return v;
}

/* Our own file: /proc/self/exe when /proc is mounted, else argv[0] (the wrappers pass a path). */
static void map_self(const char *argv0) {
    int fd = open("/proc/self/exe", O_RDONLY | O_CLOEXEC);
    if (fd < 0 && strchr(argv0, '/')) fd = open(argv0, O_RDONLY | O_CLOEXEC);
    if (fd < 0) fail("cannot open own executable (no /proc, and argv[0] is not a path)", argv0);
    struct stat st;
    if (fstat(fd, &st) != 0 || st.st_size < TRAILER_SIZE) fail("cannot read own executable", NULL);
    image_size = (size_t)st.st_size;
    image = mmap(NULL, image_size, PROT_READ, MAP_PRIVATE, fd, 0);
    close(fd);
    if (image == MAP_FAILED) fail("cannot map own executable", strerror(errno));
    const unsigned char *t = image + image_size - TRAILER_SIZE;
    if (memcmp(t, MAGIC, 8) != 0) fail("no payload (a truncated or rebuilt file?)", NULL);
    tr.offset = le(t + 8, 8);
    tr.size = le(t + 16, 8);
    tr.crc = (uint32_t)le(t + 24, 4);
    tr.entries = (uint32_t)le(t + 28, 4);
    memcpy(tr.key, t + 32, KEY_SIZE);
    tr.key[KEY_SIZE] = 0;
    uint64_t body = (uint64_t)image_size - TRAILER_SIZE;  /* >= 0: checked above */
    if (tr.offset > body || tr.size != body - tr.offset) fail("payload size mismatch", NULL);
    for (int i = 0; i < KEY_SIZE; i++)
        if (!strchr("0123456789abcdef", tr.key[i]) || !tr.key[i]) fail("bad payload key", NULL);
}

static int remove_entry(const char *path, const struct stat *st, int flag, struct FTW *ftw) {
    (void)st; (void)flag; (void)ftw;
    remove(path);
    return 0;
}

static void remove_tree(const char *path) {
    nftw(path, remove_entry, 16, FTW_DEPTH | FTW_PHYS);
}

/* A directory we may trust: ours, a real directory, not writable by others. */
static int private_dir(const char *path) {
    struct stat st;
    return lstat(path, &st) == 0 && S_ISDIR(st.st_mode) && st.st_uid == getuid() &&
           !(st.st_mode & (S_IWGRP | S_IWOTH)) && access(path, W_OK | X_OK) == 0;
}

static int mkdirs(const char *path, mode_t mode) {
    char buf[PATH_MAX];
    if (snprintf(buf, sizeof buf, "%s", path) >= (int)sizeof buf) return -1;
    for (char *p = buf + 1; *p; p++) {
        if (*p != '/') continue;
        *p = 0;
        if (mkdir(buf, mode) != 0 && errno != EEXIST) return -1;
        *p = '/';
    }
    return (mkdir(buf, mode) == 0 || errno == EEXIST) ? 0 : -1;
}

/* Inflate stored bytes (fed to zlib in uInt-sized pieces) into fd, at most raw bytes:
 * 0 when they inflate to exactly raw bytes, -1 when they do not, -2 when writing failed. */
static int write_inflated(int fd, const unsigned char *data, uint64_t stored, uint64_t raw) {
    static unsigned char out[1 << 18];
    z_stream z = {0};
    if (inflateInit(&z) != Z_OK) return -1;
    uint64_t written = 0, fed = 0;
    int rc;
    do {
        if (z.avail_in == 0 && fed < stored) {
            uInt n = stored - fed > (1u << 30) ? (1u << 30) : (uInt)(stored - fed);
            z.next_in = (unsigned char *)data + fed;
            z.avail_in = n;
            fed += n;
        }
        z.next_out = out;
        z.avail_out = sizeof out;
        rc = inflate(&z, Z_NO_FLUSH);
        if (rc != Z_OK && rc != Z_STREAM_END) break;
        size_t n = sizeof out - z.avail_out;
        if (n > raw - written) { rc = Z_DATA_ERROR; break; }  /* more than the entry declares */
        if (n && write(fd, out, n) != (ssize_t)n) { rc = Z_ERRNO; break; }
        written += n;
    } while (rc != Z_STREAM_END);
    inflateEnd(&z);
    if (rc == Z_ERRNO) return -2;
    return (rc == Z_STREAM_END && written == raw && z.avail_in == 0 && fed == stored) ? 0 : -1;
}

/* Why the payload itself is unusable (set by corrupt()): no other directory would do better. */
static char payload_error[512];

static int corrupt(const char *what, const char *entry, const char *target) {
    char shown[2][160];
    const char *src[2] = {entry ? entry : "", target ? target : ""};
    for (int k = 0; k < 2; k++) {  /* one line: control characters shown as '?' */
        size_t i = 0;
        for (; src[k][i] && i < sizeof shown[k] - 1; i++)
            shown[k][i] = (unsigned char)src[k][i] < 0x20 || src[k][i] == 0x7f ? '?' : src[k][i];
        shown[k][i] = 0;
    }
    snprintf(payload_error, sizeof payload_error, "%s%s%s%s%s", what, entry ? ": " : "", shown[0],
             target ? " -> " : "", shown[1]);
    return -1;
}

/* A relative path with no '..' component: what stays under the directory it is resolved in. */
static int contained(const char *path) {
    if (path[0] == '/' || path[0] == 0) return 0;
    for (const char *c = path; c; c = strchr(c, '/')) {
        if (*c == '/') c++;
        if (c[0] == '.' && c[1] == '.' && (c[2] == '/' || c[2] == 0)) return 0;
    }
    return 1;
}

/* Unpack the payload under dir; 0 on success. The payload was checked against its CRC first.
 * A malformed payload sets payload_error; other failures (a full disk) leave it empty. */
static int unpack(const char *dir) {
    const unsigned char *p = image + tr.offset;
    uint64_t left = tr.size;  /* bytes of the payload after p */
    char path[PATH_MAX], name[PATH_MAX], target[PATH_MAX];
    for (uint32_t i = 0; i < tr.entries; i++) {
        if (left < 25) return corrupt("bad payload: truncated entry header", NULL, NULL);
        char type = (char)p[0];
        mode_t mode = (mode_t)le(p + 1, 4) & 07777;
        uint64_t len = le(p + 5, 4), raw = le(p + 9, 8), stored = le(p + 17, 8);
        p += 25;
        left -= 25;
        if (len == 0 || len >= sizeof name || len > left)
            return corrupt("bad payload: entry path length out of bounds", NULL, NULL);
        memcpy(name, p, len);
        name[len] = 0;
        p += len;
        left -= len;
        if (stored > left) return corrupt("bad payload: entry size out of bounds", name, NULL);
        if (strlen(name) != len || name[0] == '/' || strstr(name, ".."))
            return corrupt("bad payload: entry path is absolute or has '..'", name, NULL);
        if (snprintf(path, sizeof path, "%s/%s", dir, name) >= (int)sizeof path) return -1;
        if (type == 'd') {
            if (stored || raw) return corrupt("bad payload: directory entry with content", name, NULL);
            if (mkdir(path, 0700) != 0 && errno != EEXIST) return -1;
        } else if (type == 'l') {
            if (stored == 0 || stored >= sizeof target || raw != stored)
                return corrupt("bad payload: symlink target length out of bounds", name, NULL);
            memcpy(target, p, stored);
            target[stored] = 0;
            if (strlen(target) != stored || !contained(target))
                return corrupt("bad payload: symlink target is absolute or has '..'", name, target);
            if (symlink(target, path) != 0)
                return errno == EEXIST ? corrupt("bad payload: duplicate entry", name, NULL) : -1;
        } else if (type == 'f') {
            int fd = open(path, O_WRONLY | O_CREAT | O_EXCL | O_NOFOLLOW | O_CLOEXEC, 0600);
            if (fd < 0) return errno == EEXIST ? corrupt("bad payload: duplicate entry", name, NULL) : -1;
            int bad = write_inflated(fd, p, stored, raw);
            int io = bad == -2 || (!bad && fchmod(fd, mode & 0755) != 0);
            if (close(fd) != 0 || io) return -1;
            if (bad) return corrupt("bad payload: file does not inflate to its size", name, NULL);
        } else {
            return corrupt("bad payload: unknown entry type", name, NULL);
        }
        p += stored;
        left -= stored;
    }
    return left == 0 ? 0 : corrupt("bad payload: bytes after the last entry", NULL, NULL);
}

static int write_marker(const char *dir) {
    char path[PATH_MAX];
    snprintf(path, sizeof path, "%s/%s", dir, MARKER);
    int fd = open(path, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0400);
    if (fd < 0) return -1;
    int bad = write(fd, tr.key, KEY_SIZE) != KEY_SIZE;
    return (close(fd) != 0 || bad) ? -1 : 0;
}

/* An unpacked tree is usable when its marker names our key and the two files we exec exist. */
static int complete(const char *dir) {
    char path[PATH_MAX], key[KEY_SIZE];
    struct stat st;
    snprintf(path, sizeof path, "%s/%s", dir, MARKER);
    int fd = open(path, O_RDONLY | O_CLOEXEC | O_NOFOLLOW);
    if (fd < 0) return 0;
    ssize_t n = read(fd, key, KEY_SIZE);
    close(fd);
    if (n != KEY_SIZE || memcmp(key, tr.key, KEY_SIZE) != 0) return 0;
    snprintf(path, sizeof path, "%s/%s", dir, LOADER);
    if (stat(path, &st) != 0 || !S_ISREG(st.st_mode)) return 0;
    snprintf(path, sizeof path, "%s/%s", dir, PROGRAM);
    return stat(path, &st) == 0 && S_ISREG(st.st_mode);
}

static int crc_checked;
static int verify_payload(void) {
    if (!crc_checked) {
        uLong crc = crc32(0L, Z_NULL, 0);
        const unsigned char *p = image + tr.offset;
        for (uint64_t left = tr.size; left;) {  /* zlib takes uInt lengths */
            uInt n = left > (1u << 30) ? (1u << 30) : (uInt)left;
            crc = crc32(crc, p, n);
            p += n;
            left -= n;
        }
        crc_checked = crc == tr.crc ? 1 : -1;
    }
    if (crc_checked < 0) fail("payload checksum mismatch: the executable is corrupt", NULL);
    return 0;
}

/* Unpack into a fresh private directory "<parent>/<prefix>XXXXXX"; its path, or NULL. */
static char *unpack_fresh(const char *parent, const char *prefix) {
    static char dir[PATH_MAX];
    verify_payload();
    if (snprintf(dir, sizeof dir, "%s/%sXXXXXX", parent, prefix) >= (int)sizeof dir) return NULL;
    if (!mkdtemp(dir)) return NULL;
    if (unpack(dir) != 0 || write_marker(dir) != 0) {
        remove_tree(dir);
        if (payload_error[0]) fail(payload_error, NULL);
        return NULL;
    }
    return dir;
}

/* Entries of earlier images (other keys) and leftovers of killed unpacks, once a day old,
 * are removed after an install; a process still running from one keeps its mappings. */
static void prune(const char *root) {
    DIR *d = opendir(root);
    if (!d) return;
    char path[PATH_MAX];
    struct stat st;
    time_t now = time(NULL);
    for (struct dirent *e; (e = readdir(d));) {
        size_t len = strlen(e->d_name);
        int key_like = len == KEY_SIZE && strspn(e->d_name, "0123456789abcdef") == KEY_SIZE;
        int leftover = !strncmp(e->d_name, ".new-", 5) || !strncmp(e->d_name, ".stale-", 7);
        if ((!key_like && !leftover) || !strcmp(e->d_name, tr.key)) continue;
        if (snprintf(path, sizeof path, "%s/%s", root, e->d_name) >= (int)sizeof path) continue;
        if (lstat(path, &st) == 0 && S_ISDIR(st.st_mode) && now - st.st_mtime > 86400)
            remove_tree(path);
    }
    closedir(d);
}

static void exec_from(const char *dir, int argc, char **argv) {
    char loader[PATH_MAX], libs[PATH_MAX * 2], program[PATH_MAX];
    snprintf(loader, sizeof loader, "%s/%s", dir, LOADER);
    snprintf(libs, sizeof libs, "%s/%s:%s/app/_internal", dir, LIBS, dir);
    snprintf(program, sizeof program, "%s/%s", dir, PROGRAM);
    char **args = calloc((size_t)argc + 8, sizeof *args);
    if (!args) fail("out of memory", NULL);
    int n = 0;
    args[n++] = loader;
    args[n++] = "--inhibit-cache";
    args[n++] = "--library-path";
    args[n++] = libs;
    args[n++] = "--argv0";
    args[n++] = program;
    args[n++] = program;
    for (int i = 1; i < argc; i++) args[n++] = argv[i];
    args[n] = NULL;
    /* PyInstaller's onedir bootloader restarts itself once to apply LD_LIBRARY_PATH, through
     * /proc/self/exe (absent in a bare chroot) and without our --library-path. The loader
     * already has the library path, so announce the restart as done (PyInstaller 6.x, pinned
     * in requirements-bundle.txt): one exec less, and no LD_LIBRARY_PATH to leak. It trusts
     * that only for its own archive, named by its canonical path. */
    char archive[PATH_MAX];
    if (!realpath(program, archive)) { free(args); return; }
    setenv("_PYI_ARCHIVE_FILE", archive, 1);
    setenv("_PYI_PARENT_PROCESS_LEVEL", "-1", 1);
    execv(loader, args);
    free(args);  /* exec failed: the caller falls back */
    unsetenv("_PYI_ARCHIVE_FILE");
    unsetenv("_PYI_PARENT_PROCESS_LEVEL");
}

/* The cache root candidates, most persistent first. */
static int cache_root(int i, char *out, size_t size) {
    const char *v;
    switch (i) {
    case 0: v = getenv("OCTOPOD_BUNDLE_CACHE");
        return v && *v == '/' && snprintf(out, size, "%s", v) < (int)size;
    case 1: v = getenv("XDG_CACHE_HOME");
        return v && *v == '/' && snprintf(out, size, "%s/octopod-control", v) < (int)size;
    case 2: v = getenv("HOME");
        return v && *v == '/' && snprintf(out, size, "%s/.cache/octopod-control", v) < (int)size;
    case 3: v = getenv("TMPDIR");
        return v && *v == '/' &&
               snprintf(out, size, "%s/octopod-control-%u", v, (unsigned)getuid()) < (int)size;
    case 4: return snprintf(out, size, "/tmp/octopod-control-%u", (unsigned)getuid()) < (int)size;
    default: return -1;
    }
}

/* The warm server: this program from the cache entry, with no task (warm_try set its environment). */
static void start_server(void *dir) {
    char *argv[] = {PROGRAM, NULL};
    exec_from(dir, 1, argv);
}

/* The warm path for a call about to run from the cache entry dir (under root); returns when the
 * call is to run cold. The server is keyed by the entry, so by the payload's checksum. */
static void try_warm(const char *root, const char *dir, int argc, char **argv) {
    char code[PATH_MAX + 16];
    int n = snprintf(code, sizeof code, "bundle%c%s", 0, dir);
    if (n > 0 && n < (int)sizeof code)
        warm_try(code, (size_t)n, argc - 1, argv + 1, root, start_server, (void *)dir);
}

/* Run from the cache: exec, never returns, when a usable or installable entry exists. */
static void run_cached(int argc, char **argv) {
    char root[PATH_MAX], dir[PATH_MAX];
    for (int i = 0;; i++) {
        int ok = cache_root(i, root, sizeof root);
        if (ok < 0) return;
        if (!ok || mkdirs(root, 0700) != 0 || !private_dir(root)) continue;
        if (snprintf(dir, sizeof dir, "%s/%s", root, tr.key) >= (int)sizeof dir) continue;
        if (!complete(dir)) {
            struct stat st;
            if (lstat(dir, &st) == 0) {  /* a broken entry: move it aside, then remove it */
                char stale[PATH_MAX];
                snprintf(stale, sizeof stale, "%s/.stale-XXXXXX", root);
                if (!mkdtemp(stale)) continue;
                if (rename(dir, stale) != 0) { rmdir(stale); continue; }
                remove_tree(stale);
            }
            char *fresh = unpack_fresh(root, ".new-");
            if (!fresh) continue;  /* unwritable or full: try the next root */
            if (rename(fresh, dir) != 0) remove_tree(fresh);  /* lost a race: use the winner's */
            else prune(root);
            if (!complete(dir)) continue;
        }
        try_warm(root, dir, argc, argv);
        exec_from(dir, argc, argv);
    }
}

static void forward(int sig) {
    if (child > 0) kill(child, sig);
}

/* No usable cache: unpack privately, run as a child, remove afterwards. */
static int run_temporary(int argc, char **argv) {
    const char *bases[] = {getenv("TMPDIR"), "/tmp", getenv("HOME"), "/var/tmp", "/dev/shm"};
    char *dir = NULL;
    for (size_t i = 0; i < sizeof bases / sizeof *bases && !dir; i++)
        if (bases[i] && bases[i][0] == '/') dir = unpack_fresh(bases[i], "octopod-control-");
    if (!dir) fail("no writable directory to unpack into (tried $TMPDIR, /tmp, $HOME)", NULL);
    signal(SIGINT, forward);
    signal(SIGTERM, forward);
    signal(SIGHUP, forward);
    child = fork();
    if (child == 0) {
        exec_from(dir, argc, argv);
        fail("cannot run the unpacked program", strerror(errno));
    }
    int status = 0;
    while (child > 0 && waitpid(child, &status, 0) < 0 && errno == EINTR) {}
    remove_tree(dir);
    if (child < 0) fail("cannot fork", strerror(errno));
    return WIFEXITED(status) ? WEXITSTATUS(status) : 128 + WTERMSIG(status);
}

int main(int argc, char **argv) {
    unsetenv(WARM_SERVER_VAR);  /* plumbing: only our own start of a warm server sets it */
    map_self(argc > 0 ? argv[0] : "");
    if (!getenv("OCTOPOD_BUNDLE_NO_CACHE")) run_cached(argc, argv);
    return run_temporary(argc, argv);
}
