"""The warm command server: Octopod's frequent scripts without Python's and Invoke's start (issue 17).

Why: a `check` costs ~100 ms, ~85 of them starting Python and importing Invoke, against ~40 ms
for one `kubectl get`; Octopod's status loop runs one check after another for every staging.
As Mercurial's `chg` does, a tiny C client (bundle/warm_client.c: the venv's
build/warm/octopod-warm, and the bundle's launcher) hands its whole call to this server, which
has everything a call needs already imported: argv, environment, working directory, umask,
signal dispositions and mask, and fds 0/1/2. Each call gets a fork of the server (made ahead of
it: a spare child waits for the next call, since a fork costs milliseconds on these VMs); the
child puts the call's state in place of its own and runs the same entry a cold run runs
(`python -m octopod_control`, or the bundle's `frozen.main`), ending as the interpreter ends;
the child's exit status goes back to the client, which reproduces it. Nothing is carried from
one call to the next (a fork each), and nothing of the cluster is cached: the child reads the
env files and the cluster afresh, exactly as a cold process.

The server imports everything but runs no task and reads no call state (module imports here
read no environment; `INVOKE_DEBUG`, read by Invoke at import, sends a call cold). It is
started by the client (detached, a minimal environment), one per user, code and start-up
context (the socket's name is a checksum of them, computed by the client), replaced when the
code or the Python changes (a stat signature checked before each call and every second) and
gone after `WARM_IDLE` seconds without calls. docs/warm.md has the whole design and what the
tests prove.

Imported only by the server (`python -m octopod_control.warm`, or `frozen.main` when the launcher
starts the bundle as a server): never on a cold path.
"""
from __future__ import annotations

import builtins
import fcntl
import gc
import io
import os
import selectors
import signal
import socket
import stat
import struct
import sys
import time
import types
from typing import Callable, NoReturn, TypeVar

T = TypeVar("T")
PROTOCOL = 2  # the client is built with it (octopod_dev/warm_client.py), and keys servers by it
# Octopod's frequent, read-only scripts (the client is built with this list: octopod_dev/warm_client.py).
WARM_TASKS = ("check", "info", "tag-check", "archive-check")
# Environment a cold start reads before any of our code runs (the interpreter, PyInstaller's
# bootloader, the C library, OpenSSL at import): part of the server's key, never per call.
STARTUP_PREFIXES = ("PYTHON", "PYINSTALLER_", "_PYI_", "_MEIPASS", "LC_", "LANG", "LD_", "OPENSSL_",
                    "MALLOC_", "GLIBC_TUNABLES")
SERVER_VARIABLE = "_OCTOPOD_WARM_SERVER"  # the socket path, set only by the client that starts us
SINCE_VARIABLE = "_OCTOPOD_WARM_SINCE"  # when that client started us (ns since the epoch)
SERVER_SETTINGS = ("WARM_IDLE", "WARM_LOG")  # passed on by that client
# Read at import by a preloaded module: a call that sets one runs cold.
COLD_ONLY = (b"INVOKE_DEBUG",)
# What check, info, tag_check and archive_check import, the lazily imported parts included.
PRELOAD = (
    "octopod_control.program", "octopod_control.tasks", "octopod_control.args",
    "octopod_control.settings", "octopod_control.target", "octopod_control.kube",
    "octopod_control.http1", "octopod_control.incluster", "octopod_control.manifest",
    "octopod_control.release_record", "octopod_control.workloads", "octopod_control.ownership",
    "octopod_control.process", "octopod_control.helm", "octopod_control.registry",
    "octopod_control.files", "octopod_control.locks", "octopod_control.kinds",
    "octopod_control.actions.check", "octopod_control.actions.info",
    "octopod_control.actions.tag_check", "octopod_control.actions.archive_check",
    "yaml", "dotenv", "tempfile", "ssl", "json", "base64", "gzip", "runpy", "atexit", "threading",
)
MAX_CHILDREN = 16  # calls running at once; one more is answered "run cold"
MAX_PENDING = 64  # connections still in their handshake
MAX_CALL = 4 << 20  # bytes of argv + environment
HANDSHAKE_TIMEOUT = 5.0  # for a connection to deliver its call and commit to it
GRACE = 3.0  # after a forwarded signal or a vanished client, SIGKILL for the call's process group
TICK = 1.0  # how often the socket is checked to still be ours, and the code unchanged
DEFAULT_IDLE = 600.0
BACKOFF = 60.0  # after a start that could not serve (<key>.failed), clients start none for this long
LOG_CAP = 1 << 20  # WARM_LOG's <key>.log is moved to <key>.log.1 at this size

HEADER = struct.Struct("<4sI")  # b"OCW" + protocol byte, length of the body
FIXED = struct.Struct("<32sIQQII")  # key, umask, ignored signals, blocked signals, argc, envc
HANDOVER = struct.Struct("<IIQQII")  # length, umask, ignored, blocked, argc, envc: server -> spare
STATUS = struct.Struct("<ci")  # b"X", the child's wait status
CHILD = struct.Struct("<ci")  # b"P", the PID (and process group) of the call's child; its pidfd rides on it
READY, COLD, STALE, GO, KILL = b"R", b"C", b"S", b"G", b"K"
FDS = 4  # stdin, stdout, stderr, the working directory


class Call:
    """One connection: its call as received, then the child running it."""

    __slots__ = ("sock", "state", "buf", "fds", "deadline", "pid", "kill_at", "peer", "argv",
                 "env", "umask", "ignored", "blocked", "started", "said", "conn")

    def __init__(self, sock: socket.socket, peer: int) -> None:
        self.sock, self.peer = sock, peer
        self.state = "receive"  # receive -> ready (answered R) -> run (child forked) -> done
        self.buf = bytearray()
        self.fds: list[int] = []
        self.deadline = time.monotonic() + HANDSHAKE_TIMEOUT
        self.pid = 0
        self.kill_at = 0.0
        self.argv: list[bytes] = []
        self.env: list[bytes] = []
        self.umask = 0o022
        self.ignored = self.blocked = 0
        self.started: socket.socket | None = None  # where the child says "1" started, "D" done
        self.said = b""  # what it said so far
        self.conn = -1  # in the child: the client's connection, for its early exit status

    def close_fds(self) -> None:
        for fd in self.fds:
            try:
                os.close(fd)
            except OSError:
                pass
        self.fds = []


class Log:
    """With WARM_LOG: one line per event in <socket dir>/<key>.log (the tests read it), moved to
    <key>.log.1 when it reaches cap bytes (two files at most: it never grows without bound)."""

    def __init__(self, path: str | None, cap: int = LOG_CAP) -> None:
        self.path, self.cap, self.fd = path, cap, -1
        self.open()

    def open(self) -> None:
        if self.path:
            try:
                self.fd = os.open(self.path, os.O_WRONLY | os.O_APPEND | os.O_CREAT | os.O_CLOEXEC
                                  | os.O_NOFOLLOW, 0o600)
            except OSError:
                self.fd = -1

    def __call__(self, event: str) -> None:
        if self.fd < 0:
            return
        try:
            self.rotate()
            os.write(self.fd, f"{time.time():.3f} server={os.getpid()} {event}\n".encode())
        except OSError:
            pass

    def rotate(self) -> None:
        ours = os.fstat(self.fd)
        if ours.st_size < self.cap or not self.path:
            return
        if _stat_of(self.path)[3] == ours.st_ino:  # not already moved by another server of the key
            os.replace(self.path, self.path + ".1")
        self.close()
        self.open()

    def close(self) -> None:
        if self.fd >= 0:
            os.close(self.fd)
            self.fd = -1


# -- start-up: one server per key, everything imported, a signature of what was imported
def is_startup_variable(name: str) -> bool:
    return name.startswith(STARTUP_PREFIXES)


def private_dir(path: str) -> bool:
    """A real directory of ours, mode 0700 exactly (the client made it so, or refused it)."""
    try:
        info = os.lstat(path)
    except OSError:
        return False
    return stat.S_ISDIR(info.st_mode) and info.st_uid == os.getuid() and stat.S_IMODE(info.st_mode) == 0o700


def take_lock(path: str) -> int | None:
    """The key's lock, held for the server's life (a client's probe holds it shared for an instant).
    The lock is the file at path when we got it: a holder before us removes the file as it lets go."""
    deadline = time.monotonic() + 0.5
    while True:
        try:
            fd = os.open(path, os.O_RDWR | os.O_CREAT | os.O_CLOEXEC | os.O_NOFOLLOW, 0o600)
        except OSError:
            return None
        info = os.fstat(fd)
        if not stat.S_ISREG(info.st_mode) or info.st_uid != os.getuid():
            os.close(fd)
            return None
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            os.close(fd)
            if time.monotonic() > deadline:
                return None
            time.sleep(0.01)
            continue
        if _stat_of(path)[3] == info.st_ino:
            break
        os.close(fd)  # removed by the holder before us as it let go: lock the file there now
    # Who serves this key, for people; programs ask the kernel's lock table (octopod_dev/warm_client.py).
    os.pwrite(fd, f"{os.getpid():<10}\n".encode(), 0)
    os.ftruncate(fd, 11)
    return fd


def release_lock(fd: int, path: str) -> None:
    """Let the key go, removing its lock file first (so lock files do not pile up, one per key)."""
    try:
        if _stat_of(path)[3] == os.fstat(fd).st_ino:
            os.unlink(path)
    except OSError:
        pass
    os.close(fd)


def mark_failed(path: str, why: str) -> None:
    """<key>.failed: this key's server could not serve; clients start none for BACKOFF seconds
    (its mtime), so a start that cannot serve is not paid for again by every call."""
    try:
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC | os.O_CLOEXEC | os.O_NOFOLLOW, 0o600)
    except OSError:
        return
    try:
        os.write(fd, f"{time.time():.3f} {why}\n".encode())
    except OSError:
        pass
    os.close(fd)


def idle_seconds() -> float:
    """WARM_IDLE through the schema; a bad value means the default (no server is worse)."""
    from .errors import ConfigError
    from .settings import Settings

    try:
        return Settings({"WARM_IDLE": os.environ.get("WARM_IDLE", "")}).seconds("WARM_IDLE")
    except ConfigError:
        return DEFAULT_IDLE


def server_flag(name: str) -> bool:
    """A flag the starting client passed on, through the schema; a bad value is off."""
    from .errors import ConfigError
    from .settings import Settings

    values = {name: os.environ[name]} if name in os.environ else {}
    try:
        return Settings(values).flag(name)
    except ConfigError:
        return False


def preload() -> None:
    """Import what a call needs."""
    import importlib

    for name in PRELOAD:
        importlib.import_module(name)


Signature = list[tuple[str, tuple[int, int, int, int]]]


def signature() -> Signature:
    """(path, (mtime, ctime, size, inode)) of every imported module's file and the Python
    executable: a call is served only while all are as they were when they were imported.
    (In the bundle the modules live in its archive, keyed by the payload's checksum: only the
    files that exist on disk are watched.) Not their directories: a cold run writing its
    `__pycache__` changes them (a fresh checkout's first calls), and a module added since is not
    loaded here, so the child imports it from disk as a cold run does."""
    files = {os.path.realpath(sys.executable)}
    prefix_cfg = os.path.join(sys.prefix, "pyvenv.cfg")
    if os.path.exists(prefix_cfg):
        files.add(prefix_cfg)
    for module in list(sys.modules.values()):
        path = getattr(module, "__file__", None)
        if isinstance(path, str) and os.path.isfile(path):
            files.add(path)
    return [(path, _stat_of(path)) for path in sorted(files)]


def _stat_of(path: str) -> tuple[int, int, int, int]:
    try:
        info = os.stat(path)
    except OSError:
        return (-1, -1, -1, -1)
    return (info.st_mtime_ns, info.st_ctime_ns, info.st_size, info.st_ino)


def changed(watched: Signature) -> str | None:
    for path, seen in watched:
        if _stat_of(path) != seen:
            return path
    return None


def changed_since(watched: Signature, since: int) -> str | None:
    """A module file changed after the server started (ctime: set by the kernel, never by
    touch): it may have been imported before the change and signed after it."""
    for path, seen in watched:
        if seen[1] >= since:
            return path
    return None


_IMPORTED = time.time_ns()  # when this module was imported


def started_at() -> int:
    """When the client started us (before the interpreter read any file); else our import, less
    a second for the interpreter's own start."""
    try:
        return int(os.environ.get(SINCE_VARIABLE, ""))
    except ValueError:
        return _IMPORTED - 1_000_000_000


def bind(path: str) -> tuple[socket.socket, int]:
    """Listen on path, replacing a stale socket file atomically (we hold the key's lock)."""
    temporary = os.path.join(os.path.dirname(path), f".bind-{os.getpid()}")
    try:
        os.unlink(temporary)
    except FileNotFoundError:
        pass
    listener = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    listener.bind(temporary)
    os.chmod(temporary, 0o600)
    listener.listen(MAX_PENDING)
    os.rename(temporary, path)
    listener.setblocking(False)
    return listener, os.stat(path).st_ino


def startup_additions(environ: dict[bytes, bytes]) -> dict[bytes, bytes]:
    """What start-up itself put in our environment (a PyInstaller runtime hook's variable),
    which a cold run's environment has too: not the client's start-up variables or settings."""
    passed = {SERVER_VARIABLE.encode(), SINCE_VARIABLE.encode(), *(s.encode() for s in SERVER_SETTINGS)}
    return {k: v for k, v in environ.items()
            if k not in passed and not is_startup_variable(k.decode("latin-1"))}


# -- the server
class Server:
    def __init__(self, path: str, lock: int, idle: float, log: Log, frozen: bool, watched: Signature) -> None:
        self.path, self.lock, self.idle, self.log, self.frozen = path, lock, idle, log, frozen
        self.key = os.path.basename(path)[:-len(".sock")].encode()
        self.lock_path = path[:-len(".sock")] + ".lock"
        self.watched = watched
        self.additions = startup_additions(dict(os.environb))
        self.listener, self.inode = bind(path)
        self.selector = selectors.DefaultSelector()
        self.wake_r, self.wake_w = os.pipe2(os.O_NONBLOCK | os.O_CLOEXEC)
        self.calls: dict[int, Call] = {}  # by connection fd
        self.children: dict[int, Call] = {}  # by pid
        self.doomed: dict[int, float] = {}  # process groups of reaped children: when to SIGKILL them
        self.last = time.monotonic()
        self.next_tick = self.last + TICK
        self.retiring = False
        self.stale_path: str | None = None
        self.spare: Spare | None = None  # a child forked ahead of the next call, waiting for it
        self.selector.register(self.listener, selectors.EVENT_READ, self.accept)
        self.selector.register(self.wake_r, selectors.EVENT_READ, self.drain)

    # lifecycle
    def run(self) -> None:
        signal.set_wakeup_fd(self.wake_w, warn_on_full_buffer=False)
        signal.signal(signal.SIGCHLD, _noop)
        for sig in (signal.SIGTERM, signal.SIGINT, signal.SIGHUP):
            signal.signal(sig, lambda *_: self.retire("signal"))
        gc.freeze()  # what is imported stays shared with the children (no collector writes to it)
        self.log(f"serving key={self.key.decode()} idle={self.idle:g}")
        while self.listener is not None or self.calls or self.children or self.doomed:
            if self.spare is None and not self.retiring and not self.children:
                # forked between calls, while the next client starts: off the call's path, and
                # not competing with a running call (and the API it waits for) for the CPU
                self.spare = self.new_spare()
            for key, _ in self.selector.select(self.timeout()):
                key.data()
            self.reap()
            self.expire()
        self.log("exit")

    def timeout(self) -> float:
        now = time.monotonic()
        deadlines = [self.next_tick] + [c.deadline for c in self.calls.values() if c.state != "run"]
        deadlines += [c.kill_at for c in self.children.values() if c.kill_at]
        deadlines += list(self.doomed.values())
        return max(0.0, min(deadlines) - now)

    def retire(self, why: str) -> None:
        """Stop taking calls: the socket goes (if still ours), the lock is released for a successor;
        calls already running are still seen to their end."""
        if self.retiring:
            return
        self.retiring = True
        self.log(f"retire: {why}")
        if self.listener is not None:
            self.selector.unregister(self.listener)
            try:
                if os.stat(self.path).st_ino == self.inode:
                    os.unlink(self.path)
            except OSError:
                pass
            self.listener.close()
            self.listener = None
        release_lock(self.lock, self.lock_path)
        self.lock = -1
        if self.spare is not None:
            self.spare.end()
            self.spare = None

    def expire(self) -> None:
        now = time.monotonic()
        for call in [c for c in self.calls.values() if c.state != "run" and c.deadline <= now]:
            self.drop(call)
        for call in list(self.children.values()):
            if call.kill_at and call.kill_at <= now:
                call.kill_at = 0.0
                self.signal_group(call, signal.SIGKILL)
        for group, at in list(self.doomed.items()):
            if at <= now:
                del self.doomed[group]
                self.kill_reaped_group(group)
        if now >= self.next_tick:
            self.next_tick = now + TICK
            if self.listener is not None and _stat_of(self.path)[3] != self.inode:
                self.retire("the socket is no longer ours")
            elif self.listener is not None and changed(self.watched):
                self.retire("code changed")  # without waiting for a call: a stale server frees its memory
        if (self.listener is not None and not self.calls and not self.children
                and now - self.last >= self.idle):
            self.retire("idle")

    # connections
    def accept(self) -> None:
        while self.listener is not None:
            try:
                sock, _ = self.listener.accept()
            except (BlockingIOError, InterruptedError):
                return
            except OSError:
                return
            pid, uid, _gid = struct.unpack("3i", sock.getsockopt(
                socket.SOL_SOCKET, socket.SO_PEERCRED, struct.calcsize("3i")))
            if uid != os.getuid() or len(self.calls) >= MAX_PENDING:
                self.log(f"refused connection from pid={pid} uid={uid}")
                sock.close()
                continue
            sock.setblocking(False)
            call = Call(sock, pid)
            self.calls[sock.fileno()] = call
            self.selector.register(sock, selectors.EVENT_READ, lambda call=call: self.readable(call))

    def readable(self, call: Call) -> None:
        try:
            if call.state == "ready":  # the commit carries the fds (a stray fd elsewhere is discarded)
                data, ancillary, flags, _ = call.sock.recvmsg(
                    16, socket.CMSG_SPACE((FDS + 1) * 4), socket.MSG_CMSG_CLOEXEC)
                self.collect_fds(call, ancillary, flags)
            else:
                data = call.sock.recv(65536)
        except (BlockingIOError, InterruptedError):
            return
        except OSError:
            data = b""
        if not data:
            self.hang_up(call)
            return
        call.buf += data
        if call.state == "receive":
            self.receive(call)
        elif call.state == "ready":
            if call.buf[:1] != GO:
                self.drop(call)
                return
            del call.buf[:1]
            why = self.unusable_fds(call)
            if why:
                self.log(f"cold pid={call.peer}: {why}")
                self.tell_cold(call)  # committed, but nothing ran: the client runs it cold
            else:
                self.start(call)
                self.forward(call)  # anything that came with the commit
        else:
            self.forward(call)

    def collect_fds(self, call: Call, ancillary: list, flags: int) -> None:
        for level, kind, data in ancillary:
            if level == socket.SOL_SOCKET and kind == socket.SCM_RIGHTS:
                fds = list(struct.unpack(f"{len(data) // 4}i", data[:len(data) // 4 * 4]))
                call.fds += [_above_stdio(fd) for fd in fds]
        if flags & socket.MSG_CTRUNC or len(call.fds) > FDS:
            call.fds.append(-1)  # marks the call malformed; closed with the rest

    def receive(self, call: Call) -> None:
        if len(call.buf) < HEADER.size:
            return
        magic, length = HEADER.unpack_from(call.buf)
        if length > MAX_CALL or length < FIXED.size:
            self.answer(call, COLD, "call too large or malformed")
            return
        if len(call.buf) < HEADER.size + length:
            return
        body = bytes(call.buf[HEADER.size:HEADER.size + length])
        del call.buf[:HEADER.size + length]
        if magic != b"OCW" + bytes([PROTOCOL]):
            self.answer(call, COLD, f"protocol {magic!r}")
            return
        key, call.umask, call.ignored, call.blocked, argc, envc = FIXED.unpack_from(body)
        strings = body[FIXED.size:].split(b"\0")
        if len(strings) != argc + envc + 1 or strings[-1]:
            self.answer(call, COLD, "malformed call")
            return
        call.argv, call.env = strings[:argc], strings[argc:argc + envc]
        why = self.refusal(call, key)
        if why == "stale":
            self.retire("code changed")  # first: the lock is free when the client starts a successor
            self.answer(call, STALE, f"stale: {self.stale_path} changed")
        elif why:
            self.answer(call, COLD, why)
        else:
            self.answer(call, READY, None)

    @staticmethod
    def unusable_fds(call: Call) -> str | None:
        if len(call.fds) != FDS or -1 in call.fds:
            return "file descriptors missing"
        if any(stat.S_ISDIR(os.fstat(fd).st_mode) for fd in call.fds[:3]):
            return "a standard stream is a directory"
        return None

    def refusal(self, call: Call, key: bytes) -> str | None:
        """Why this call must run cold (None: it may run here)."""
        if key != self.key:
            return "another key"
        names = {entry.partition(b"=")[0] for entry in call.env}
        if any(name in names for name in COLD_ONLY):
            return "a variable read at import is set"
        if self.retiring:
            return "retiring"
        if len(self.children) >= MAX_CHILDREN:
            return "busy"
        self.stale_path = changed(self.watched)
        if self.stale_path:
            return "stale"
        return None

    def answer(self, call: Call, reply: bytes, why: str | None) -> None:
        try:
            call.sock.send(reply)
        except OSError:
            self.drop(call)
            return
        if reply == READY:
            call.state = "ready"
            return
        self.log(f"cold pid={call.peer}: {why}")
        self.drop(call)

    def hang_up(self, call: Call) -> None:
        """The client's end closed: before the call started, forget it; while it runs, end it
        (unless the child has finished and only its exit is left: the client had its status)."""
        if call.state != "run":
            self.drop(call)
            return
        self.unregister(call)
        if b"D" in _said(call):
            return
        if call.pid in self.children and not call.kill_at:
            self.log(f"client gone: child={call.pid} SIGTERM")
            self.signal_group(call, signal.SIGTERM)
            call.kill_at = time.monotonic() + GRACE

    def forward(self, call: Call) -> None:
        """K + signal number: the client got it and gave it to the call's process group itself
        (so it reaches the call even when we are gone): the group is SIGKILLed after GRACE."""
        while call.state == "run" and len(call.buf) >= 2:
            kind, number = call.buf[0:1], call.buf[1]
            del call.buf[:2]
            if kind != KILL or number not in _FORWARDED:
                continue
            self.log(f"signalled child={call.pid} signal={number}")
            if not call.kill_at:
                call.kill_at = time.monotonic() + GRACE

    def kill_reaped_group(self, group: int) -> None:
        """SIGKILL a reaped child's process group (its grandchildren, a credential plugin say),
        as promised after a signal or a vanished client. The number stays the group's while it
        has members; an empty group is ESRCH (the PID is reused only once the PID space wraps);
        never one of ours forked since."""
        if group in self.children or (self.spare is not None and self.spare.pid == group):
            return
        try:
            os.killpg(group, signal.SIGKILL)
            self.log(f"killed the group of child={group}")
        except OSError:
            pass

    def signal_group(self, call: Call, sig: int) -> None:
        try:
            os.killpg(call.pid, sig)
        except ProcessLookupError:
            pass
        except PermissionError:
            try:
                os.kill(call.pid, sig)
            except OSError:
                pass

    def unregister(self, call: Call) -> None:
        fd = call.sock.fileno()
        if self.calls.pop(fd, None) is not None:
            self.selector.unregister(call.sock)
            call.sock.close()

    def drop(self, call: Call) -> None:
        call.close_fds()
        self.unregister(call)

    # calls
    def new_spare(self) -> "Spare | None":
        """Fork a child that waits for the next call (fork costs milliseconds here: the VM's page
        tables). It is a fork of the server as it is, nothing of any call in it."""
        for stream in (sys.stdout, sys.stderr):
            if stream is not None:
                stream.flush()  # nothing of ours may reach a call's streams from a buffer
        try:
            ours, theirs = socket.socketpair(socket.AF_UNIX, socket.SOCK_STREAM)
        except OSError as exc:
            self.log(f"socketpair failed: {exc}")
            return None
        try:
            pid = os.fork()
        except OSError as exc:
            self.log(f"fork failed: {exc}")
            ours.close()
            theirs.close()
            return None
        if pid == 0:
            ours.close()
            self.become_spare(theirs)
        theirs.close()
        try:
            os.setpgid(pid, pid)  # also done by the child: whichever runs first
        except OSError:
            pass
        return Spare(pid, ours)

    def start(self, call: Call) -> None:
        """The client has committed: the spare (or a child forked now) becomes the call.

        The child says "started" once the call's state is in place; a child that could not take
        it (or a fork or hand-over that failed) ran nothing of the call, and the client is told
        to run it cold ("C") instead of being given a status."""
        self.last = time.monotonic()
        spare, self.spare = self.spare, None
        if spare is None:
            spare = self.new_spare()
        if spare is not None and not self.name_child(call, spare.pid):
            self.spare = spare  # the client is gone: nothing was handed over, the spare waits on
            self.drop(call)
            return
        if spare is None or not spare.hand_over(call):
            if spare is not None:
                spare.end()
            self.log(f"cold pid={call.peer}: no child took the call")
            self.tell_cold(call)
            return
        call.close_fds()
        call.pid, call.state, call.started = spare.pid, "run", spare.sock
        self.children[spare.pid] = call
        self.log(f"call pid={call.peer} child={spare.pid} argv={_shown(call.argv)}")

    @staticmethod
    def name_child(call: Call, pid: int) -> bool:
        """Tell the client, before the child gets the call, which process runs it: "P", its PID
        (its process group) and a pidfd. The client signals the group itself on SIGINT, SIGTERM
        and SIGHUP, so a call is interrupted even when this server is gone meanwhile; the pidfd
        makes sure the PID is still the child's when it does."""
        fds = []
        try:
            fds.append(os.pidfd_open(pid))
        except (AttributeError, OSError):  # a kernel before 5.3: the client checks the process group
            pass
        try:
            call.sock.sendmsg([CHILD.pack(b"P", pid)],
                              [(socket.SOL_SOCKET, socket.SCM_RIGHTS, struct.pack("i", fd)) for fd in fds])
            return True
        except OSError:
            return False
        finally:
            for fd in fds:
                os.close(fd)

    def tell_cold(self, call: Call) -> None:
        try:
            call.sock.send(COLD)
        except OSError:
            pass
        self.drop(call)

    def become_spare(self, sock: socket.socket) -> NoReturn:
        """In the child: drop the server, wait for a call, take its process state, run it cold-like."""
        try:
            os.setpgid(0, 0)
            self.close_server()
            for sig in (signal.SIGTERM, signal.SIGINT, signal.SIGHUP, signal.SIGCHLD):
                signal.signal(sig, signal.SIG_DFL)
            call = Spare.receive(sock)
            if call is None:  # the server retired or ended: no call will come
                os._exit(0)
            child = Child(call, self.additions, self.frozen, sock.detach())
            child.take_state()
            os.write(child.said, b"1")
        except BaseException:
            os._exit(70)
        try:
            child.run()
        finally:  # nothing may unwind into the server's code, of which we are a copy
            os._exit(1)

    def close_server(self) -> None:
        signal.set_wakeup_fd(-1)
        self.selector.close()
        for fd in (self.wake_r, self.wake_w, self.lock):
            if fd >= 0:
                os.close(fd)
        if self.listener is not None:
            self.listener.close()
        for other in list(self.calls.values()):
            other.sock.close()
            other.close_fds()
        for running in self.children.values():
            if running.started is not None:
                running.started.close()
        self.log.close()

    def drain(self) -> None:
        try:
            while os.read(self.wake_r, 512):
                pass
        except (BlockingIOError, InterruptedError):
            pass

    def reap(self) -> None:
        while True:
            try:
                pid, status = os.waitpid(-1, os.WNOHANG)
            except ChildProcessError:
                return
            if pid == 0:
                return
            call = self.children.pop(pid, None)
            if call is not None and call.kill_at:
                self.doomed[pid] = call.kill_at  # the group may outlive the child: killed all the same
            if call is None:
                if self.spare is not None and self.spare.pid == pid:
                    self.log(f"spare {pid} ended (status {status})")
                    self.spare.sock.close()
                    self.spare = None
                continue
            self.last = time.monotonic()
            started = _read_started(call)
            self.log(f"done child={pid} status={status}" + ("" if started else " (not started)"))
            if call.sock.fileno() not in self.calls:
                continue
            if not started:
                self.tell_cold(call)
                continue
            try:
                call.sock.send(STATUS.pack(b"X", status))
            except OSError:
                pass
            self.unregister(call)


_FORWARDED = {int(signal.SIGINT), int(signal.SIGTERM), int(signal.SIGHUP)}


def _noop(*_: object) -> None:
    pass


def _said(call: Call) -> bytes:
    """What the child said on its socket so far: "1" (it took the call), "D" (it is done)."""
    if call.started is not None:
        try:
            call.started.setblocking(False)
            call.said += call.started.recv(16)
        except OSError:
            pass
    return call.said


def _read_started(call: Call) -> bool:
    """Whether the child (reaped) had taken the call's state and so run it."""
    started = b"1" in _said(call)
    if call.started is not None:
        call.started.close()
        call.started = None
    return started


class Spare:
    """A child forked ahead of a call, blocked on its end of a socketpair until the server hands
    it one: the call's state and its fds (stdin, stdout, stderr, cwd, the client's connection)."""

    def __init__(self, pid: int, sock: socket.socket) -> None:
        self.pid, self.sock = pid, sock

    def hand_over(self, call: Call) -> bool:
        strings = b"".join(s + b"\0" for s in [*call.argv, *call.env])
        head = HANDOVER.pack(HANDOVER.size + len(strings), call.umask, call.ignored, call.blocked,
                             len(call.argv), len(call.env))
        fds = [*call.fds, call.sock.fileno()]
        message = head + strings
        try:
            self.sock.settimeout(5.0)  # the spare reads at once; more is a stuck spare
            sent = self.sock.sendmsg([message], [(socket.SOL_SOCKET, socket.SCM_RIGHTS,
                                                  struct.pack(f"{len(fds)}i", *fds))])
            self.sock.sendall(message[sent:])
            return True
        except OSError:
            return False

    def end(self) -> None:
        """Kill a spare that took no call, and reap it."""
        try:
            os.killpg(self.pid, signal.SIGKILL)
            os.waitpid(self.pid, 0)
        except OSError:
            pass
        self.sock.close()

    @staticmethod
    def receive(sock: socket.socket) -> Call | None:
        """In the spare: the call the server hands over (blocking), or None at EOF."""
        data, ancillary, _, _ = sock.recvmsg(65536, socket.CMSG_SPACE((FDS + 1) * 4),
                                            socket.MSG_CMSG_CLOEXEC)
        fds: list[int] = []
        for level, kind, payload in ancillary:
            if level == socket.SOL_SOCKET and kind == socket.SCM_RIGHTS:
                fds += struct.unpack(f"{len(payload) // 4}i", payload[:len(payload) // 4 * 4])
        if not data:
            return None
        buf = bytearray(data)
        length = HANDOVER.unpack_from(buf)[0] if len(buf) >= HANDOVER.size else 0
        while len(buf) < max(length, HANDOVER.size):
            more = sock.recv(1 << 20)
            if not more:
                return None
            buf += more
        _, umask, ignored, blocked, argc, envc = HANDOVER.unpack_from(buf)
        strings = bytes(buf[HANDOVER.size:length]).split(b"\0")
        call = Call.__new__(Call)
        call.fds, call.conn = [_above_stdio(fd) for fd in fds[:FDS]], _above_stdio(fds[FDS])
        call.umask, call.ignored, call.blocked = umask, ignored, blocked
        call.argv, call.env = strings[:argc], strings[argc:argc + envc]
        return call


def _above_stdio(fd: int) -> int:
    """A received fd numbered 0-2 (our stdio was closed) would be clobbered by dup2: move it."""
    if fd > 2:
        return fd
    moved = fcntl.fcntl(fd, fcntl.F_DUPFD_CLOEXEC, 3)
    os.close(fd)
    return moved


def _shown(argv: list[bytes]) -> str:
    return " ".join(a.decode("utf-8", "backslashreplace") for a in argv[:2])


# -- the child: the call's state in place of the server's, then the cold entry
# bundle/entry.py, as PyInstaller compiles it (co_filename "entry.py"): a traceback of an exception
# nothing caught shows the frames a cold run shows (tests/test_warm.py keeps the two in step).
FROZEN_ENTRY = '''"""PyInstaller's script for the bundle: everything lives in octopod_control.frozen."""
from octopod_control.frozen import main

main()
'''


class Child:
    def __init__(self, call: Call, additions: dict[bytes, bytes], frozen: bool, said: int = -1) -> None:
        self.call, self.additions, self.frozen, self.said = call, additions, frozen, said

    def take_state(self) -> None:
        call = self.call
        self.signals(call.ignored, call.blocked)
        for target, fd in enumerate(call.fds[:3]):
            os.dup2(fd, target)
        os.fchdir(call.fds[3])
        call.close_fds()
        os.umask(call.umask)
        self.environment(call.env)
        self.stdio()
        sys.argv = [sys.argv[0], *(a.decode(sys.getfilesystemencoding(), "surrogateescape")
                                   for a in call.argv)]
        if not self.frozen and len(sys.orig_argv) >= 4:
            sys.orig_argv = [*sys.orig_argv[:-1], "octopod_control", *sys.argv[1:]]
        else:
            sys.orig_argv = list(sys.argv)
        main = types.ModuleType("__main__")
        main.__builtins__ = builtins  # type: ignore[attr-defined]
        sys.modules["__main__"] = main

    @staticmethod
    def signals(ignored: int, blocked: int) -> None:
        """The dispositions a cold interpreter starts with, over what the caller ignores and blocks."""
        for sig in signal.valid_signals():
            if sig in (signal.SIGKILL, signal.SIGSTOP):
                continue
            if ignored >> (sig - 1) & 1:
                handler = signal.SIG_IGN
            elif sig == signal.SIGINT:
                handler = signal.default_int_handler
            elif sig in (signal.SIGPIPE, signal.SIGXFSZ):
                handler = signal.SIG_IGN
            else:
                handler = signal.SIG_DFL
            try:
                signal.signal(sig, handler)
            except (OSError, ValueError):
                pass
        mask = {s for s in signal.valid_signals() if blocked >> (s - 1) & 1}
        signal.pthread_sigmask(signal.SIG_SETMASK, mask)

    def environment(self, entries: list[bytes]) -> None:
        """os.environ as a cold interpreter builds it (the first of a repeated name wins), with
        what start-up adds; then what depends on it at the C level (the time zone)."""
        env: dict[bytes, bytes] = {}
        for entry in entries:
            name, sep, value = entry.partition(b"=")
            if sep and name and name not in env:
                env[name] = value
        env.update(self.additions)
        os.environb.clear()
        os.environb.update(env)
        time.tzset()
        tempfile = sys.modules.get("tempfile")
        if tempfile is not None:
            tempfile.tempdir = None  # found again from this call's TMPDIR

    @staticmethod
    def stdio() -> None:
        """sys.stdin/stdout/stderr over fds 0-2 as the interpreter makes them at start-up
        (Python/pylifecycle.c create_stdio): same encoding and errors (the key fixes the
        locale), line buffering on a terminal (stderr always), the same buffer sizes."""
        old = sys.__stdout__
        encoding = old.encoding if old is not None else "utf-8"
        errors = old.errors if old is not None else "strict"
        buffered = not (old is not None and old.write_through)
        streams = []
        for fd, name in ((0, "<stdin>"), (1, "<stdout>"), (2, "<stderr>")):
            write = fd != 0
            buffering = -1 if buffered or not write else 0
            buf = io.open(fd, "wb" if write else "rb", buffering, closefd=False)
            raw = buf.raw if buffering else buf
            raw.name = name
            line = buffered and (raw.isatty() or fd == 2)
            stream = io.TextIOWrapper(buf, encoding, "backslashreplace" if fd == 2 else errors,
                                      "\n", line, not buffered)
            stream.mode = "w" if write else "r"
            streams.append(stream)
        sys.stdin, sys.stdout, sys.stderr = streams
        sys.__stdin__, sys.__stdout__, sys.__stderr__ = streams

    def run(self) -> NoReturn:
        """The cold entry, and the end of an interpreter: exit status as Py_RunMain makes it.
        The status goes to the client as soon as the streams are flushed and closed (a process's
        teardown costs milliseconds here); the server reports it again when it reaps us."""
        status, sigint = 1, False  # should reporting the end itself fail: an uncaught exception's 1
        try:
            status, sigint = self.outcome()
        except BaseException:  # noqa: BLE001 - a KeyboardInterrupt while printing, say
            pass
        _finish(status, sigint, self.call.conn, self.said)

    def outcome(self) -> tuple[int, bool]:
        """The entry's exit status, and whether it ended by an uncaught KeyboardInterrupt."""
        try:
            self.entry()
            return 0, False
        except SystemExit as exc:
            return _exit_status(exc), False
        except BaseException as exc:  # noqa: BLE001 - nothing caught it
            uncaught = exc
        # Printed outside the except clause, as the interpreter does: an exception the hook
        # raises is not chained to this one.
        sigint = not self.frozen and isinstance(uncaught, KeyboardInterrupt)
        try:
            status = _print_uncaught(uncaught)
        except BaseException:  # noqa: BLE001 - a broken stderr: the status stands
            status = 1
        if self.frozen:
            _flush(sys.stderr)
            try:
                os.write(2, f"[PYI-{os.getpid()}:ERROR] Failed to execute script 'entry' due to "
                            "unhandled exception!\n".encode())
            except OSError:
                pass
        return status, sigint

    def entry(self) -> None:
        if self.frozen:
            exec(compile(FROZEN_ENTRY, "entry.py", "exec"), sys.modules["__main__"].__dict__)
        else:
            import runpy

            runpy._run_module_as_main("octopod_control")  # type: ignore[attr-defined]


def _below_us(tb: types.TracebackType | None) -> types.TracebackType | None:
    """The traceback from the cold entry down: without this module's own frames."""
    while tb is not None and tb.tb_frame.f_globals is globals():
        tb = tb.tb_next
    return tb


def _print_uncaught(exc: BaseException) -> int:
    """As _PyErr_PrintEx: sys.excepthook prints it; when the hook itself raises, both are
    printed (a SystemExit from the hook is its exit status). The exit status: 1."""
    tb = _below_us(exc.__traceback__)
    exc = exc.with_traceback(tb)
    hook = getattr(sys, "excepthook", _MISSING)
    if hook is _MISSING:
        sys.stderr.write("sys.excepthook is missing\n")
        sys.__excepthook__(type(exc), exc, tb)
        return 1
    try:
        hook(type(exc), exc, tb)
    except SystemExit as raised:
        return _exit_status(raised)
    except BaseException as raised:  # noqa: BLE001
        sys.stderr.write("Error in sys.excepthook:\n")
        hook_tb = _below_us(raised.__traceback__)  # called from C, the hook's frames are all there is
        sys.__excepthook__(type(raised), raised.with_traceback(hook_tb), hook_tb)
        sys.stderr.write("\nOriginal exception was:\n")
        sys.__excepthook__(type(exc), exc, tb)
    return 1


_MISSING = object()


def _exit_status(exc: SystemExit) -> int:
    """As _Py_HandleSystemExit: None is 0, an int is itself, anything else is printed and 1."""
    code = exc.code
    if code is None:
        return 0
    if isinstance(code, int):
        return code
    try:
        sys.stderr.write(str(code))
        sys.stderr.write("\n")
    except BaseException:  # noqa: BLE001
        pass
    return 1


def _flush(stream: object) -> BaseException | None:
    """flush_std_files: any failure (a KeyboardInterrupt in a blocked write too) is reported."""
    try:
        if stream is not None and not stream.closed:  # type: ignore[attr-defined]
            stream.flush()  # type: ignore[attr-defined]
        return None
    except BaseException as exc:  # noqa: BLE001 - reported as the interpreter reports it
        return exc


def _finish(status: int, sigint: bool, conn: int = -1, said: int = -1) -> NoReturn:
    """Py_FinalizeEx's observable part, then the status to the client ourselves (the server may
    be gone; it reports it again when it reaps us) and the end. Nothing escapes from here."""
    try:
        status = _shut_down(status)
        if conn >= 0:
            _report(signal.SIGINT if sigint else (status & 0xFF) << 8, conn, said)
    finally:
        if sigint:
            signal.signal(signal.SIGINT, signal.SIG_DFL)
            signal.pthread_sigmask(signal.SIG_UNBLOCK, {signal.SIGINT})
            os.kill(os.getpid(), signal.SIGINT)
            status = 130
        os._exit(status & 0xFF)


def _shut_down(status: int) -> int:
    """Wait for threads, atexit, flush (120 when one cannot): the exit status it leaves."""
    import atexit
    import threading
    import traceback

    try:
        threading._shutdown()  # type: ignore[attr-defined]
    except BaseException:  # noqa: BLE001
        pass
    try:
        atexit._run_exitfuncs()
    except BaseException:  # noqa: BLE001
        pass
    failed = _flush(sys.stdout)
    if failed is not None:  # PyErr_WriteUnraisable's default output
        try:
            sys.stderr.write(f"Exception ignored in: {sys.stdout!r}\n")
            sys.stderr.write("".join(traceback.format_exception_only(type(failed), failed)))
        except BaseException:  # noqa: BLE001
            pass
        status = 120
    if _flush(sys.stderr) is not None:
        status = 120
    return status


def _report(wait_status: int, conn: int, said: int) -> None:
    """Close the caller's streams (its pipes end with the client, not with our teardown), tell
    the server we are done, then the client our wait status: each on its own, so a server gone
    (EPIPE) still leaves the client its status."""
    for fd in (0, 1, 2):
        try:
            os.close(fd)
        except OSError:
            pass
    try:
        os.write(said, b"D")  # first: the client's exit must not look like an interrupted call
    except OSError:
        pass
    try:
        os.write(conn, STATUS.pack(b"X", wait_status))
    except OSError:
        pass


# -- entry
def serve() -> NoReturn:
    """Run as the server for the socket named in the environment; exits when retired."""
    os._exit(_serve(os.environ.get(SERVER_VARIABLE, "")))


def _serve(path: str) -> int:
    directory, name = os.path.split(path)
    if not name.endswith(".sock") or not os.path.isabs(path) or not private_dir(directory):
        return 0
    key = os.path.join(directory, name[:-len(".sock")])
    since = started_at()
    started = _start(key)
    if started is None:
        return 0
    log, lock, idle, why = started
    watched = signature()
    moved = changed_since(watched, since) if why is None else None
    if moved:  # not a failure: the next call starts a server that imports the new code
        log(f"not serving: {moved} changed while the server started")
        release_lock(lock, key + ".lock")
        return 0
    try:
        server = Server(path, lock, idle, log, bool(getattr(sys, "frozen", False)), watched) if why is None else None
    except Exception as exc:  # noqa: BLE001 - whatever it is, calls run cold
        server, why = None, f"{type(exc).__name__}: {exc}"
    if server is None:
        log(f"not serving: {why}")
        mark_failed(key + ".failed", str(why))
        release_lock(lock, key + ".lock")
        return 0
    try:
        os.unlink(key + ".failed")
    except OSError:
        pass
    server.run()
    return 0


def _start(key: str) -> tuple[Log, int, float, str | None] | None:
    """The key's lock taken and everything imported; why this server must not serve (None: it
    may). None: another server holds the key. A warning any import raises, our own settings'
    modules included, would be printed by a cold run: caught with the filters the interpreter
    started with, a cold run's own (PYTHONWARNINGS and -W are part of the key)."""
    import warnings

    with warnings.catch_warnings(record=True) as caught:
        log = Log(key + ".log" if _quietly(server_flag, False, "WARM_LOG") else None)
        lock = take_lock(key + ".lock")
        if lock is None:
            log("another server holds the key")
            return None
        why = _imports()
        idle = _quietly(idle_seconds, DEFAULT_IDLE)
    if caught and why is None:
        why = f"importing warned: {caught[0].category.__name__}: {caught[0].message}"
    return log, lock, idle, why


def _imports() -> str | None:
    """Everything a call needs imported; why not (None: done)."""
    try:
        preload()
        return None
    except Exception as exc:  # noqa: BLE001 - whatever it is, calls run cold
        return f"{type(exc).__name__}: {exc}"


def _quietly(read: Callable[..., T], default: T, *args: str) -> T:
    """A server setting; its default when even importing the schema fails (then we do not serve)."""
    try:
        return read(*args)
    except Exception:  # noqa: BLE001
        return default


if __name__ == "__main__":
    serve()
