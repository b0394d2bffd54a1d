"""The child side of the code sandbox: run one untrusted program under isolation.

``code.py`` starts this file by path as ``python -I -S -B -X utf8 _sandbox.py`` in a new
session, so nothing of the package (and no torch) is imported here, and start-up stays cheap:
standard library only, few imports (every millisecond is paid once per sample).

Three processes live here:

* the **supervisor** (trusted): reads the job from stdin, creates fresh PID, network and IPC
  namespaces (inside a new user namespace when not root), forks the runner, enforces the
  wall-clock limit, kills the runner when it ends or when the parent closes stdin, and reports
  how the runner ended on a control pipe that the runner never holds;
* the **test runner** (trusted code, unprivileged): PID 1 of the new PID namespace, so when it
  dies the kernel kills every process it left behind. It makes every mount read-only in a
  private mount namespace, mounts small private tmpfs on the work dir and the scratch dirs,
  forks the solution's process into a PID namespace of its own, sets resource limits, drops to
  an unprivileged uid (or drops all capabilities) and becomes non-dumpable. Only then does it
  read the tests (never in the solution's memory), and runs them: their calls of the solution's functions go to the solution's process and
  bring back plain values only, and writes the verdict to the result pipe;
* the **solution's process** (untrusted): runs the program, then answers the tests' calls. It
  holds nothing but stdio and two pipes to the test runner, cannot see the runner (no PID of
  it exists in its namespace), and never holds the result pipe: whatever it does, it cannot
  write a verdict.

A layer the kernel or the container refuses is reported as a ``note`` line to the parent,
which logs it once; a runner that cannot finish its set-up never runs the program.
See docs/sandbox.md for what each layer stops and what it does not.
"""
from __future__ import annotations

import builtins
import ctypes
import fcntl
import importlib.util
import io
import marshal
import os
import pickle
import resource
import select
import signal
import sys
import time

RESULT_FD = 3  # test runner -> parent: the verdict line
CONTROL_FD = 4  # supervisor -> parent: notes, "ready", then how the runner ended
SOLUTION_IN, SOLUTION_OUT = 3, 4  # in the solution's process: calls in, answers out

CLONE_NEWNS = 0x00020000
CLONE_NEWIPC = 0x08000000
CLONE_NEWUSER = 0x10000000
CLONE_NEWPID = 0x20000000
CLONE_NEWNET = 0x40000000

MS_RDONLY, MS_NOSUID, MS_NODEV, MS_NOEXEC = 1, 2, 4, 8
MS_REMOUNT, MS_NOATIME, MS_NODIRATIME, MS_BIND = 32, 1024, 2048, 4096
MS_REC, MS_PRIVATE, MS_RELATIME, MS_STRICTATIME = 16384, 1 << 18, 1 << 21, 1 << 24
# per-mount options a bind remount must repeat (a user namespace may not change them)
_KEPT_MOUNT_FLAGS = {
    "nosuid": MS_NOSUID, "nodev": MS_NODEV, "noexec": MS_NOEXEC, "noatime": MS_NOATIME,
    "nodiratime": MS_NODIRATIME, "relatime": MS_RELATIME, "strictatime": MS_STRICTATIME,
}
PR_SET_PDEATHSIG, PR_SET_DUMPABLE, PR_SET_NO_NEW_PRIVS = 1, 4, 38
_CAP_VERSION_3 = 0x20080522

# world-writable places programs use; each gets its own small private tmpfs
_SCRATCH_DIRS = ("/tmp", "/var/tmp", "/dev/shm")

_libc = ctypes.CDLL(None, use_errno=True)


def _load_strict():
    """strict.py, beside this file (not imported through the package: no torch here)."""
    path = os.path.join(os.path.dirname(os.path.abspath(__file__)), "strict.py")
    spec = importlib.util.spec_from_file_location("illada_strict", path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


strict = _load_strict()


def _check(ret: int, what: str) -> None:
    if ret != 0:
        err = ctypes.get_errno()
        raise OSError(err, f"{what}: {os.strerror(err)}")


def _mount(source: str | None, target: str, fstype: str | None, flags: int,
           data: str | None = None) -> None:
    args = [None if text is None else text.encode() for text in (source, target, fstype)]
    _check(_libc.mount(*args, ctypes.c_ulong(flags), None if data is None else data.encode()),
           f"mount {target}")


def kill_uid_processes(uid: int, rounds: int = 50) -> bool:
    """SIGKILL every live process whose real uid is ``uid``; True once none is left.

    Only for the per-run sandbox uids, which no other process ever uses. Reads
    /proc/*/status because a process that changed uid is not dumpable, so its /proc entry
    shows root as owner. Zombies are skipped: they hold nothing and get reaped."""
    wanted = f"\nUid:\t{uid}\t"
    for _ in range(rounds):
        found = False
        for entry in os.listdir("/proc"):
            if not entry.isdigit():
                continue
            try:
                with open(f"/proc/{entry}/status") as fh:
                    status = fh.read()
            except OSError:
                continue
            if wanted not in status or "\nState:\tZ" in status:
                continue
            found = True
            try:
                os.kill(int(entry), signal.SIGKILL)
            except ProcessLookupError:
                pass
        if not found:
            return True
        time.sleep(0.01)
    return False


def read_job(fd: int = 0) -> tuple[dict, bytes]:
    """The job as ``code.py`` writes it: 8-byte length, marshalled dict, program bytes. The
    tests follow; the test runner reads them after forking the solution's process, and reads
    here are unbuffered, so that no byte of the tests is ever in the solution's memory."""
    size = int.from_bytes(_read_exactly(fd, 8) or b"", "little")
    job = marshal.loads(_read_exactly(fd, size))
    return job, _read_exactly(fd, job["program_bytes"])


# --------------------------------------------------------------------------- supervisor

def main() -> None:
    job, program = read_job()
    sys.path.extend(job["site_packages"])  # started with -S: no .pth files, no editable installs
    # Fixed low numbers for the pipes let the runner's RLIMIT_NOFILE stay small.
    for fd, target in ((job["result_fd"], RESULT_FD), (job["control_fd"], CONTROL_FD)):
        if fd != target:
            os.dup2(fd, target)
            os.close(fd)

    def control(line: str) -> None:
        os.write(CONTROL_FD, (" ".join(line.split()) + "\n").encode())

    job["namespaces"] = _enter_namespaces(root=job["uid"] is not None)
    if not job["namespaces"]:
        control("note namespaces refused: no private network, PID space or read-only filesystem")
    if not job["namespaces"] and job["uid"] is None:
        # RLIMIT_NPROC then counts all our processes, not only the sandbox's (in a new user
        # namespace, kernels >= 5.14 count per namespace)
        job["max_processes"] += _count_tasks(os.getuid())

    setup_r, setup_w = os.pipe()
    pid = os.fork()
    if pid == 0:
        os.close(setup_r)
        _runner(job, program, setup_w)  # never returns
    os.close(setup_w)
    with os.fdopen(setup_r, "rb") as fh:  # EOF once the runner is set up, or has failed
        report = fh.read()
    setup = marshal.loads(report) if report else {"error": "the runner died during set-up", "notes": []}
    for note in setup["notes"]:
        control(f"note {note}")
    if "error" in setup:
        control(f"setup-failed {setup['error']}")
        verdict = "setup-failed"
    else:
        control("ready")
        verdict = _wait(pid, job["timeout"])
    _kill_runner(pid, reaped=verdict.startswith(("exit", "signal")))
    control(verdict)
    os._exit(0)


def _enter_namespaces(root: bool) -> bool:
    """New PID, network and IPC namespaces (owned by a new user namespace when not root)."""
    if root:
        return _unshare(CLONE_NEWPID | CLONE_NEWNET | CLONE_NEWIPC)
    # A user namespace can be created and then refused its uid map or mounts (e.g. Ubuntu's
    # AppArmor restriction), and there is no leaving it: try in a throw-away child first.
    pid = os.fork()
    if pid == 0:
        works = _enter_user_namespaces() and _unshare(CLONE_NEWNS)
        if works:
            try:
                _mount(None, "/", None, MS_REC | MS_PRIVATE)
            except OSError:
                works = False
        os._exit(0 if works else 1)
    if os.waitstatus_to_exitcode(os.waitpid(pid, 0)[1]) != 0:
        return False
    return _enter_user_namespaces()


def _enter_user_namespaces() -> bool:
    uid, gid = os.geteuid(), os.getegid()
    if not _unshare(CLONE_NEWUSER | CLONE_NEWPID | CLONE_NEWNET | CLONE_NEWIPC):
        return False
    try:  # map only ourselves, keeping the number: files keep their owner
        for name, text in (("setgroups", "deny"), ("uid_map", f"{uid} {uid} 1"), ("gid_map", f"{gid} {gid} 1")):
            with open(f"/proc/self/{name}", "w") as fh:
                fh.write(text)
    except OSError:
        return False
    return True


def _unshare(flags: int) -> bool:
    try:
        _check(_libc.unshare(flags), "unshare")
    except OSError:
        return False
    return True


def _count_tasks(uid: int) -> int:
    count = 0
    for entry in os.listdir("/proc"):
        try:
            if entry.isdigit() and os.stat(f"/proc/{entry}").st_uid == uid:
                count += len(os.listdir(f"/proc/{entry}/task"))
        except OSError:
            pass
    return count


def _wait(pid: int, timeout: float) -> str:
    """Wait for the runner; stop early when the parent closes our stdin (or dies)."""
    pidfd = os.pidfd_open(pid)
    deadline = time.monotonic() + timeout
    while True:
        remaining = deadline - time.monotonic()
        if remaining <= 0:
            return "timeout"
        ready, _, _ = select.select([pidfd, 0], [], [], remaining)
        if pidfd in ready:
            _, status = os.waitpid(pid, 0)
            if os.WIFSIGNALED(status):
                return f"signal {os.WTERMSIG(status)}"
            return f"exit {os.WEXITSTATUS(status)}"
        if ready:  # stdin readable means EOF: the parent asks us to stop
            return "stopped"


def _kill_runner(pid: int, reaped: bool) -> None:
    # In a PID namespace, killing its init (the runner) kills every process inside it; without
    # one, the process group is what we can reach (the parent also sweeps the run's uid). A
    # reaped runner's pid may already belong to someone else; its group id may not (the kernel
    # keeps a number in use while a group holds it).
    if not reaped:
        os.kill(pid, signal.SIGKILL)
        os.waitpid(pid, 0)
    try:
        os.killpg(pid, signal.SIGKILL)
    except (ProcessLookupError, PermissionError):
        pass


# --------------------------------------------------------------------------- test runner

def _runner(job: dict, program: bytes, setup_fd: int) -> None:
    """The trusted side: sets the sandbox up, starts the solution's process, runs the tests."""
    setup: dict = {"notes": []}
    try:
        os.setpgid(0, 0)
        os.close(CONTROL_FD)
        tests_in = fcntl.fcntl(0, fcntl.F_DUPFD, 10)  # the solution's process closes it
        devnull = os.open(os.devnull, os.O_RDONLY)
        os.dup2(devnull, 0)
        os.close(devnull)
        python_dirs = _python_dirs()
        if job["namespaces"]:
            setup["notes"] += _private_filesystem(job, python_dirs)
            if job["uid"] is not None:
                _expose_to_others(python_dirs)
            # the solution's own PID namespace, nested in ours: no PID of ours exists in it
            _check(_libc.unshare(CLONE_NEWPID), "unshare PID namespace")
        os.chdir(job["workdir"])
        solution = _Solution.start(job, program, python_dirs)
        if job["tests_bytes"] >= 0:  # now: the solution's process never had them in memory
            job["tests"] = _read_exactly(tests_in, job["tests_bytes"]).decode("utf-8", "surrogatepass")
        os.close(tests_in)
        setup["notes"] += solution.setup["notes"]
        if "error" in solution.setup:
            raise RuntimeError(f"the solution's process: {solution.setup['error']}")
        _set_limits(job)
        _drop_privileges(job)
        # no ptrace, no /proc/<pid>/mem or fd/ for processes of our uid without privileges
        _check(_libc.prctl(PR_SET_DUMPABLE, 0, 0, 0, 0), "prctl(DUMPABLE)")
        _require_readable(python_dirs)
    except BaseException as exc:  # the sandbox is not whole: never run the program then
        setup["error"] = f"{type(exc).__name__}: {exc}"
    os.write(setup_fd, marshal.dumps(setup))
    os.close(setup_fd)
    if "error" in setup:
        os._exit(70)
    line = _run_tests(job, solution)
    for stream in (sys.stdout, sys.stderr):
        stream.flush()
    os.write(RESULT_FD, (" ".join(line.split())[:600] + "\n").encode())
    os._exit(0)


def _run_tests(job: dict, solution: "_Solution") -> str:
    """The verdict line: PASS, FAIL <reason>, or ENDED <how the solution's process ended>."""
    try:
        loaded = solution.load()
        if loaded[0] != "loaded":
            return f"FAIL {loaded[1]}"
        if "tests" in job:
            namespace = {"__name__": "__main__", strict.COMPARE: strict.compare}
            namespace.update((name, _Remote(solution, name)) for name in job["calls"])
            exec(strict.tests_code(job["tests"]), namespace)
        return f"ENDED {solution.ended}" if solution.ended else "PASS"
    except _Ended:
        return f"ENDED {solution.ended}"
    except BaseException as exc:
        return f"FAIL {_describe(exc)}"


class _Ended(BaseException):
    """The solution's process is gone: no test can catch this and carry on."""


class SolutionError(Exception):
    """An exception of the solution that is no built-in one (its class stays in its process)."""


class _Solution:
    """The untrusted process, seen from the tests: it runs the program and then answers calls.

    Only plain built-in values come back (``_PlainValues``), so an object that is always equal,
    an ``int`` subclass or a proxy never reaches the tests."""

    def __init__(self, pid: int, requests: int, replies: int) -> None:
        self.pid, self.requests, self.replies = pid, requests, replies
        self.ended: str | None = None
        self.setup = marshal.loads(self._receive())

    @classmethod
    def start(cls, job: dict, program: bytes, python_dirs: list[str]) -> "_Solution":
        requests_r, requests_w = os.pipe()
        replies_r, replies_w = os.pipe()
        pid = os.fork()
        if pid == 0:
            _solution_process(job, program, python_dirs, requests_r, replies_w)  # never returns
        os.close(requests_r)
        os.close(replies_w)
        return cls(pid, requests_w, replies_r)

    def load(self) -> tuple:
        """Let the solution run its program (now that the tests are ready); its outcome."""
        self._send(pickle.dumps(("load",)))
        reply = self._reply()
        if reply == ("loaded",) or len(reply) == 2 and reply[0] == "failed" and type(reply[1]) is str:
            return reply
        return ("failed", "the solution's process answered out of protocol")

    def call(self, name: str, args: tuple, kwargs: dict):
        buffer = io.BytesIO()
        _Arguments(buffer, protocol=5).dump((name, args, kwargs))
        self._send(buffer.getvalue())
        reply = self._reply()
        if reply[:1] == ("return",) and len(reply) == 2:
            return reply[1]
        if reply[:1] == ("raise",) and len(reply) == 3 and type(reply[1]) is type(reply[2]) is str:
            raise _solution_exception(reply[1], reply[2])
        raise SolutionError("the solution's process answered out of protocol")

    def _reply(self) -> tuple:
        reply = _PlainValues(io.BytesIO(self._receive())).load()
        return reply if type(reply) is tuple else ()

    def _send(self, data: bytes) -> None:
        try:
            _write_all(self.requests, len(data).to_bytes(8, "little") + data)
        except BrokenPipeError:
            self._end()

    def _receive(self) -> bytes:
        header = _read_exactly(self.replies, 8)
        data = _read_exactly(self.replies, int.from_bytes(header, "little")) if header else None
        if data is None:
            self._end()
        return data

    def _end(self):
        if self.ended is None:
            _, status = os.waitpid(self.pid, 0)
            self.ended = (f"signal {os.WTERMSIG(status)}" if os.WIFSIGNALED(status)
                          else f"exit {os.WEXITSTATUS(status)}")
        raise _Ended(self.ended)


class _Remote:
    """A name of the solution in the tests: calling it runs the solution's object in its own
    process; passed as an argument, it arrives there as that object (MBPP's trees)."""

    __slots__ = ("solution", "name")

    def __init__(self, solution: _Solution, name: str) -> None:
        self.solution, self.name = solution, name

    def __call__(self, *args, **kwargs):
        return self.solution.call(self.name, args, kwargs)

    def __repr__(self) -> str:
        return f"<{self.name} of the solution>"


class _Arguments(pickle.Pickler):
    def persistent_id(self, obj):
        return obj.name if type(obj) is _Remote else None


class _PlainValues(pickle.Unpickler):
    """Unpickles only what pickle builds without naming a class (None, bool, int, float, str,
    bytes, bytearray, tuple, list, dict, set, frozenset), complex, and dict (which turns the
    solution's Counter into the plain dict it compares as)."""

    def find_class(self, module: str, name: str):
        if module == "builtins" and name in ("complex", "dict"):
            return getattr(builtins, name)
        raise pickle.UnpicklingError(f"the solution returned a value that is not a plain built-in one "
                                     f"(it needs {module}.{name}); only plain values reach the tests")


def _solution_exception(name: str, message: str) -> Exception:
    """The built-in exception the solution raised, so tests that expect one see it; others (and
    StopIteration, which would silently end the tests' loops) as SolutionError."""
    kind = getattr(builtins, name, None)
    if (isinstance(kind, type) and issubclass(kind, Exception)
            and not issubclass(kind, (StopIteration, StopAsyncIteration))):
        try:
            return kind(message)
        except Exception:
            pass
    return SolutionError(f"{name}: {message}" if message else name)


# os.write / os.read bound here: the program may rebind them in the solution's process
def _write_all(fd: int, data: bytes, write=os.write) -> None:
    view = memoryview(data)
    while view:
        view = view[write(fd, view):]


def _read_exactly(fd: int, size: int, read=os.read) -> bytes | None:
    """``size`` bytes, or None at end of file."""
    chunks, left = [], size
    while left:
        chunk = read(fd, min(left, 1 << 20))
        if not chunk:
            return None
        chunks.append(chunk)
        left -= len(chunk)
    return b"".join(chunks)


# --------------------------------------------------------------------------- solution

def _solution_process(job: dict, program: bytes, python_dirs: list[str], requests: int,
                      replies: int) -> None:
    """The untrusted process: PID 1 of a PID namespace of its own (when namespaces work), with
    nothing open but stdio and its two pipes; the verdict is never in its reach. Never returns
    (whatever the program raises or rebinds): returning would run the test runner's code."""
    exit_now = os._exit
    setup: dict = {"notes": []}
    try:
        high = [fcntl.fcntl(fd, fcntl.F_DUPFD, 10) for fd in (requests, replies)]
        os.dup2(high[0], SOLUTION_IN)
        os.dup2(high[1], SOLUTION_OUT)
        os.closerange(SOLUTION_OUT + 1, 1 << 20)
        if job["namespaces"]:
            _check(_libc.unshare(CLONE_NEWNS), "unshare mount namespace")
            _mount("proc", "/proc", "proc", MS_NOSUID | MS_NODEV | MS_NOEXEC)  # its namespace only
        _set_limits(job)
        _drop_privileges(job)
        _require_readable(python_dirs)
        _disable_escape_hatches(contained=job["namespaces"])
    except BaseException as exc:
        setup["error"] = f"{type(exc).__name__}: {exc}"
    try:
        data = marshal.dumps(setup)
        _write_all(SOLUTION_OUT, len(data).to_bytes(8, "little") + data)
        if "error" not in setup:
            _serve(program)
    finally:
        exit_now(70)


def _python_dirs() -> list[str]:
    """The interpreter's own directories, outermost first, each subtree listed once."""
    found: list[str] = []
    candidates = (sys.base_prefix, sys.base_exec_prefix, sys.prefix, sys.exec_prefix, *sys.path)
    for path in sorted({os.path.realpath(p) for p in candidates if p and os.path.isdir(p)}, key=len):
        if not any(path == outer or path.startswith(outer + os.sep) for outer in found):
            found.append(path)
    return found


def _unescape_mountinfo(field: str) -> str:
    """mountinfo writes space, tab, newline and backslash as three-digit octal escapes."""
    parts = field.split("\\")
    return parts[0] + "".join(chr(int(part[:3], 8)) + part[3:] for part in parts[1:])


def _private_filesystem(job: dict, python_dirs: list[str]) -> list[str]:
    """Read-only view of every mount, private tmpfs on the scratch dirs and the work dir, and
    a /proc of the new PID namespace. Interpreter directories under a scratch dir (a venv in
    /tmp, say) are bound back read-only. Returns notes on mounts that stay writable."""
    _check(_libc.unshare(CLONE_NEWNS), "unshare mount namespace")
    _mount(None, "/", None, MS_REC | MS_PRIVATE)  # nothing mounted here may reach the host
    notes = []
    with open("/proc/self/mountinfo") as fh:
        mounts = [line.split() for line in fh]
    for fields in mounts:
        target = _unescape_mountinfo(fields[4])
        flags = MS_BIND | MS_REMOUNT | MS_RDONLY  # MS_BIND: this mount only, not the filesystem
        for option in fields[5].split(","):
            flags |= _KEPT_MOUNT_FLAGS.get(option, 0)
        try:
            _mount(None, target, None, flags)
        except OSError as exc:
            if target == "/":
                raise
            notes.append(f"{target} stays writable ({exc})")
    _mount("proc", "/proc", "proc", MS_NOSUID | MS_NODEV | MS_NOEXEC)
    size = f"size={job['disk_mb']}m,nr_inodes=4096"
    hidden = [path for path in python_dirs
              if any(path.startswith(scratch + os.sep) for scratch in _SCRATCH_DIRS)]
    handles = {path: os.open(path, os.O_PATH) for path in hidden}
    for path in _SCRATCH_DIRS:
        if os.path.isdir(path):
            _mount("tmpfs", path, "tmpfs", MS_NOSUID | MS_NODEV, f"{size},mode=1777")
    _bind_back_read_only(handles)
    os.makedirs(job["workdir"], exist_ok=True)
    uid, gid = (job["uid"], job["gid"]) if job["uid"] is not None else (os.getuid(), os.getgid())
    _mount("tmpfs", job["workdir"], "tmpfs", MS_NOSUID | MS_NODEV,
           f"{size},mode=700,uid={uid},gid={gid}")
    return notes


def _expose_to_others(paths: list[str]) -> None:
    """Make ``paths`` reachable for the unprivileged sandbox uid at their usual place.

    When an ancestor is closed to other users (e.g. Python installed under /root by pyenv),
    a private tmpfs covers that ancestor and the needed directories are bind-mounted back,
    read-only: the sandbox reaches the interpreter and nothing else of that ancestor."""
    covered: dict[str, list[str]] = {}
    for path in paths:
        parts = path.split(os.sep)
        for depth in range(2, len(parts) + 1):
            ancestor = os.sep.join(parts[:depth])
            if not os.stat(ancestor).st_mode & 0o001:  # others may not pass through
                covered.setdefault(ancestor, []).append(path)
                break
    for ancestor, inside in covered.items():
        handles = {path: os.open(path, os.O_PATH) for path in inside}
        _mount("tmpfs", ancestor, "tmpfs", MS_NOSUID | MS_NODEV, "size=1m,mode=755")
        _bind_back_read_only(handles)


def _bind_back_read_only(handles: dict[str, int]) -> None:
    """Mount each directory (held open as an O_PATH handle from before it was covered) back at
    its own path, read-only."""
    for path, handle in handles.items():
        os.makedirs(path, mode=0o755, exist_ok=True)
        _mount(f"/proc/self/fd/{handle}", path, None, MS_BIND | MS_REC)
        _mount(None, path, None, MS_BIND | MS_REMOUNT | MS_RDONLY)
        os.close(handle)


def _set_limits(job: dict) -> None:
    mib = 1024 * 1024
    limits = {
        resource.RLIMIT_AS: job["memory_mb"] * mib,
        resource.RLIMIT_CPU: int(job["timeout"]) + 2,  # wall time normally ends it first
        resource.RLIMIT_FSIZE: job["disk_mb"] * mib,
        resource.RLIMIT_NPROC: job["max_processes"],
        resource.RLIMIT_NOFILE: 256,
        resource.RLIMIT_CORE: 0,
    }
    for which, soft in limits.items():
        hard = soft + 1 if which == resource.RLIMIT_CPU else soft  # SIGXCPU first, then SIGKILL
        resource.setrlimit(which, (soft, hard))


def _drop_privileges(job: dict) -> None:
    if job["uid"] is not None:  # root: become a uid that owns nothing on this machine
        os.setgroups([])
        os.setgid(job["gid"])
        os.setuid(job["uid"])
    else:  # keep our uid, give up every capability (those of a new user namespace included)
        header = (ctypes.c_uint32 * 2)(_CAP_VERSION_3, 0)
        _check(_libc.capset(header, (ctypes.c_uint32 * 6)()), "capset")
    _check(_libc.prctl(PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0), "prctl(NO_NEW_PRIVS)")
    # after the uid change, which clears it: the runner dies with its supervisor
    _check(_libc.prctl(PR_SET_PDEATHSIG, signal.SIGKILL, 0, 0, 0), "prctl(PDEATHSIG)")


def _refuse(name: str):
    def refused(*args, **kwargs):
        raise PermissionError(f"{name} is disabled in the code sandbox")
    return refused


def _disable_escape_hatches(contained: bool) -> None:
    """Defence in depth only: a program can get these back (``posix``, ``_socket``,
    ``ctypes``); the kernel-enforced layers are what hold. Patched where it costs no import
    (``subprocess`` goes through ``_posixsubprocess``). File deletion and sockets are blocked
    only when no namespaces contain the program: inside them the filesystem is read-only and
    there is no network anyway, and ``tempfile`` needs ``os.unlink``."""
    import _posixsubprocess

    names = ["system", "popen", "fork", "forkpty", "kill", "killpg", "execv", "execve",
             "posix_spawn", "posix_spawnp"]
    if not contained:
        names += ["remove", "unlink", "rmdir", "removedirs", "rename", "renames", "replace",
                  "truncate", "chmod", "chown", "lchown", "fchmod", "fchown", "chroot"]
    for name in names:
        if hasattr(os, name):
            setattr(os, name, _refuse(f"os.{name}"))
    _posixsubprocess.fork_exec = _refuse("subprocess")
    if not contained:
        import socket

        for name in ("socket", "create_connection", "create_server", "socketpair", "fromfd"):
            setattr(socket, name, _refuse(f"socket.{name}"))


def _serve(program: bytes) -> None:
    """Run the program when asked to, then answer the tests' calls until they are done."""
    import collections

    # Own references: the program may rebind anything in os, sys, pickle or builtins.
    write_all, read_exactly, exit_now = _write_all, _read_exactly, os._exit
    pickler, unpickler, new_buffer, streams = pickle.Pickler, pickle.Unpickler, io.BytesIO, (sys.stdout, sys.stderr)
    dict_types = (collections.Counter, collections.OrderedDict, collections.defaultdict)
    builtin_names, pristine = vars(builtins), dict(vars(builtins))
    main_module = type(sys)("__main__")  # so pickle and typing find the program's own classes
    sys.modules["__main__"] = main_module
    namespace = main_module.__dict__

    class Arguments(unpickler):
        def persistent_load(self, name):  # an object of ours that the tests pass back
            return namespace[name]

    class Answer(pickler):
        def reducer_override(self, obj):
            # the standard library's dicts travel as the dicts they compare as (Counter == dict
            # compares as dicts); the tests' process unpickles plain built-in values only
            return (dict, (dict(obj),)) if type(obj) in dict_types else NotImplemented

    def dumps(answer: tuple) -> bytes:
        buffer = new_buffer()
        Answer(buffer, protocol=5).dump(answer)
        return buffer.getvalue()

    def receive() -> bytes:
        header = read_exactly(SOLUTION_IN, 8)
        data = read_exactly(SOLUTION_IN, int.from_bytes(header, "little")) if header else None
        if data is None:  # the tests are done (or gone)
            exit_now(0)
        return data

    receive()  # "load"
    try:
        exec(compile(program, "<program>", "exec"), namespace)
        # Tests that ran against replaced builtins (abs, AssertionError, ...) prove nothing.
        replaced = sorted(name for name in pristine.keys() | builtin_names.keys()
                          if builtin_names.get(name) is not pristine.get(name))
        data = dumps(("loaded",) if not replaced else ("failed", f"the program replaced builtins: {replaced}"))
    except BaseException as exc:  # SystemExit too: exit(0) before the tests is no pass
        data = dumps(("failed", _describe(exc)))
    while True:
        for stream in streams:
            try:
                stream.flush()
            except BaseException:
                pass
        try:
            write_all(SOLUTION_OUT, len(data).to_bytes(8, "little") + data)
        except OSError:
            exit_now(0)
        try:
            name, args, kwargs = Arguments(new_buffer(receive())).load()
            if name not in namespace:
                raise NameError(f"name {name!r} is not defined")
            data = dumps(("return", namespace[name](*args, **kwargs)))
        except BaseException as exc:
            data = dumps(("raise", type(exc).__name__, _message(exc)))


def _require_readable(python_dirs: list[str]) -> None:
    for path in python_dirs:
        try:
            os.listdir(path)
        except OSError as exc:
            raise PermissionError(f"the sandbox cannot read the Python installation ({exc}); "
                                  "make it readable by all users") from None


def _message(exc: BaseException) -> str:
    try:
        return " ".join(str(exc).split())[:500]
    except BaseException:  # a hostile __str__
        return ""


def _describe(exc: BaseException) -> str:
    message = _message(exc)
    return f"{type(exc).__name__}: {message}" if message else type(exc).__name__


if __name__ == "__main__":
    main()
