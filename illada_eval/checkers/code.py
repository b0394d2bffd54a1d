"""Run model-written programs (HumanEval, MBPP) in a sandbox and report whether they passed.

``check_program(Program(solution, tests, calls))`` runs the model's solution in a fresh
``python -I`` process under the isolation described in docs/sandbox.md (namespaces, read-only
filesystem, unprivileged uid, resource limits) and the benchmark's tests in another process
that the solution cannot reach: the tests' calls of the solution's functions (``calls``) run
in the solution's process and only plain built-in values come back, and their ``==`` / ``!=``
accept plain values only (``strict.py``). Only the tests' process writes the verdict, so a
solution can pass only by returning the right values. Given a bare string, the program runs
alone and passes when it runs to its end without an exception, which the program itself
could fake: benchmarks pass their tests separately.

It is a sandbox, not a VM: run evaluations of untrusted code on a machine you can afford to
lose, and read docs/sandbox.md for what each layer does and does not stop.
"""
from __future__ import annotations

import contextlib
import fcntl
import logging
import marshal
import os
import selectors
import shutil
import signal
import site
import subprocess
import sys
import tempfile
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from typing import Iterable, Iterator

from . import _sandbox

logger = logging.getLogger(__name__)

# Sandboxed programs run as uids from this range when we are root: an otherwise unused block
# (systemd documents 0x70000000 up to its "foreign" range at 0x7FFE0000 as unused), one uid per
# concurrent run, so that RLIMIT_NPROC counts only that run and "kill every process of this uid"
# is exact.
_UID_BASE = 0x7A000000
_MAX_SLOTS = 4096
# machine-wide (not $TMPDIR) so that every evaluation on the machine sees the same slots; under
# /run, which only root can write, so no other user can plant files there
_SLOT_LOCK_DIR = "/run/illada-sandbox-slots"
_STARTUP_GRACE_S = 10.0  # interpreter start-up under load, on top of the program's own limit
_TAIL_BYTES = 4096  # kept of stdout / stderr for the report
_CHANNEL_BYTES = 65536  # kept of the result and control pipes: their lines are short


@dataclass(frozen=True)
class Program:
    """What to check: the untrusted ``solution``, the trusted ``tests`` (run in a process of
    their own) and the names of the solution that the tests call (``calls``, bound in the
    tests to stand-ins that run them in the solution's process)."""
    solution: str
    tests: str | None = None  # None: the solution runs alone (and its own word is the verdict)
    calls: tuple[str, ...] = ()


class SandboxError(RuntimeError):
    """The sandbox itself could not be set up (not the program's fault): results would be garbage."""


@dataclass(frozen=True)
class CodeResult:
    passed: bool
    status: str  # "passed" | "timed out" | "failed: <reason>"
    stdout: str = ""  # last few KiB
    stderr: str = ""  # last few KiB
    duration_s: float = 0.0


def check_program(program: Program | str, timeout: float = 10.0, *, memory_mb: int = 256,
                  max_processes: int = 7, disk_mb: int = 64,
                  max_output_bytes: int = 1 << 20) -> CodeResult:
    """Run ``program`` in the sandbox; passed only if its tests ran to their end without an
    exception (a bare string: if it ran to its end, on its own word).

    ``timeout`` bounds wall-clock seconds of the run, ``memory_mb`` the address space of each
    process, ``max_processes`` the processes and threads of the run (the tests' process
    included), ``disk_mb`` each file and each private scratch filesystem, ``max_output_bytes``
    what may be printed (stdout + stderr; more fails the run at once). The defaults keep
    ``max_processes * memory_mb`` under 2 GiB."""
    if sys.platform != "linux":
        raise SandboxError(f"the code sandbox needs Linux (namespaces, /proc); this is {sys.platform}")
    _validate_limits(timeout, memory_mb, max_processes, disk_mb, max_output_bytes)
    if isinstance(program, str):
        program = Program(program)
    _remove_stale_work_dirs()
    with _sandbox_uid() as uid, _throwaway_dir(uid) as workdir:
        job = {"timeout": float(timeout), "memory_mb": int(memory_mb),
               "max_processes": int(max_processes), "disk_mb": int(disk_mb),
               "uid": uid, "gid": uid, "workdir": workdir, "calls": list(program.calls)}
        return _execute(program, job, max_output_bytes)


def check_many(programs: Iterable[Program | str], timeout: float = 10.0, workers: int | None = None,
               **limits) -> list[CodeResult]:
    """``check_program`` over many programs, ``workers`` at a time; results in input order."""
    programs = list(programs)
    workers = workers or os.cpu_count() or 1
    if workers < 1:
        raise ValueError(f"workers must be >= 1, got {workers}")
    with ThreadPoolExecutor(max_workers=workers) as pool:
        return list(pool.map(lambda program: check_program(program, timeout, **limits), programs))


def _validate_limits(timeout: float, memory_mb: int, max_processes: int, disk_mb: int,
                     max_output_bytes: int) -> None:
    if not timeout > 0:
        raise ValueError(f"check_program: timeout must be > 0 seconds, got {timeout!r}")
    for name, value, least in (("memory_mb", memory_mb, 64), ("max_processes", max_processes, 2),
                               ("disk_mb", disk_mb, 1), ("max_output_bytes", max_output_bytes, 0)):
        if not value >= least:
            raise ValueError(f"check_program: {name} must be >= {least}, got {value!r}")


@contextlib.contextmanager
def _sandbox_uid() -> Iterator[int | None]:
    """A uid no other run (in any process) uses now, when root; None otherwise.

    Slots are held with flock on per-slot files, so concurrent evaluations on one machine never
    share a uid; a crashed holder releases its slot with its death."""
    if os.geteuid() != 0 or not _uid_range_mapped():
        yield None
        return
    os.makedirs(_SLOT_LOCK_DIR, mode=0o700, exist_ok=True)
    for slot in range(_MAX_SLOTS):
        fd = os.open(os.path.join(_SLOT_LOCK_DIR, str(slot)), os.O_CREAT | os.O_RDWR | os.O_NOFOLLOW, 0o600)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            os.close(fd)
            continue
        uid = _UID_BASE + slot
        try:
            _sandbox.kill_uid_processes(uid)  # leftovers of a holder that crashed
            yield uid
        finally:
            _sandbox.kill_uid_processes(uid)
            os.close(fd)
        return
    raise SandboxError(f"all {_MAX_SLOTS} sandbox slots are busy; lower the number of workers")


def _uid_range_mapped() -> bool:
    """Whether our user namespace maps the sandbox uids (it may not, e.g. in rootless podman)."""
    with open("/proc/self/uid_map") as fh:
        ranges = [tuple(map(int, line.split())) for line in fh if line.strip()]
    return any(inside <= _UID_BASE and _UID_BASE + _MAX_SLOTS <= inside + count
               for inside, _, count in ranges)


_WORK_DIR_PREFIX = "illada-sandbox-"


def _process_tag(pid: int) -> str | None:
    """``pid.start-time`` of a live process (pids are reused; the pair is unique), else None."""
    try:
        with open(f"/proc/{pid}/stat") as fh:
            return f"{pid}.{fh.read().rpartition(')')[2].split()[19]}"
    except (OSError, IndexError):
        return None


_swept: set[str] = set()
_sweep_lock = threading.Lock()


@contextlib.contextmanager
def _throwaway_dir(uid: int | None) -> Iterator[str]:
    # named after this process (looked up now: it may be a fork), so that a later evaluator can
    # tell the dir is stale if we get killed
    path = tempfile.mkdtemp(prefix=f"{_WORK_DIR_PREFIX}{_process_tag(os.getpid())}-")
    try:
        if uid is not None:
            os.chown(path, uid, uid)  # used as is when namespaces are refused
        yield path
    finally:
        _remove_tree(path)


def _remove_tree(path: str) -> None:
    def make_removable(function, failed_path, _error):  # a program may chmod its files
        os.chmod(os.path.dirname(failed_path), 0o700)
        function(failed_path)
    on_error = "onexc" if sys.version_info >= (3, 12) else "onerror"
    shutil.rmtree(path, **{on_error: make_removable})


def _remove_stale_work_dirs() -> None:
    """Remove the work dirs of evaluators that died without removing them (SIGKILL, power
    loss), once per temp dir and process. A dir whose owner still runs, or whose name is not
    one we write, stays."""
    root = tempfile.gettempdir()
    with _sweep_lock:
        if root in _swept:
            return
        _swept.add(root)
        try:
            entries = list(os.scandir(root))
        except OSError:  # unreadable: nothing of ours can be there
            return
        for entry in entries:
            owner = entry.name[len(_WORK_DIR_PREFIX):].split("-", 1)[0]
            pid, _, start = owner.partition(".")
            if not (entry.name.startswith(_WORK_DIR_PREFIX) and pid.isdigit() and start.isdigit()):
                continue
            try:
                # as root the dir belongs to a sandbox uid; otherwise only our own are ours (and
                # only our own processes are surely visible: /proc may hide other users')
                if (entry.is_dir(follow_symlinks=False) and os.geteuid() in (0, entry.stat(follow_symlinks=False).st_uid)
                        and _process_tag(int(pid)) != owner):
                    _remove_tree(entry.path)
            except OSError as exc:
                logger.warning("code sandbox: could not remove the stale work dir %s: %s", entry.path, exc)


def _execute(program: Program, job: dict, max_output_bytes: int) -> CodeResult:
    source = program.solution.encode("utf-8", "surrogatepass")
    tests = b"" if program.tests is None else program.tests.encode("utf-8", "surrogatepass")
    result_r, result_w = os.pipe()
    control_r, control_w = os.pipe()
    job.update(program_bytes=len(source), tests_bytes=-1 if program.tests is None else len(tests),
               result_fd=result_w, control_fd=control_w,
               site_packages=[path for path in site.getsitepackages() if os.path.isdir(path)])
    env = {"PATH": "/usr/local/bin:/usr/bin:/bin", "LANG": "C.UTF-8", "LC_ALL": "C.UTF-8",
           "HOME": job["workdir"], "TMPDIR": job["workdir"], "OMP_NUM_THREADS": "1"}
    started = time.monotonic()
    try:
        proc = subprocess.Popen(
            # -I: no PYTHON* variables, no user site; -S: no .pth processing (slow; site-packages
            # are added by the sandbox); -B: write no .pyc anywhere
            [sys.executable, "-I", "-S", "-B", "-X", "utf8", _sandbox.__file__],
            stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
            pass_fds=(result_w, control_w), cwd=job["workdir"], env=env, start_new_session=True)
    finally:
        os.close(result_w)
        os.close(control_w)
    try:
        try:  # stdin stays open: closing it asks the supervisor to stop the run
            header = marshal.dumps(job)  # read by _sandbox.read_job; the tests by the test runner
            proc.stdin.write(len(header).to_bytes(8, "little") + header + source + tests)
            proc.stdin.flush()
        except BrokenPipeError:
            pass
        streams = _read_streams(proc, {"stdout": proc.stdout.fileno(), "stderr": proc.stderr.fileno(),
                                       "result": result_r, "control": control_r},
                                started + job["timeout"] + _STARTUP_GRACE_S, max_output_bytes)
    finally:
        _stop(proc)
        os.close(result_r)
        os.close(control_r)
    return _verdict(streams, max_output_bytes, time.monotonic() - started)


@dataclass
class _Streams:
    data: dict[str, bytearray]
    printed: int = 0  # stdout + stderr bytes seen
    overflow: bool = False
    overdue: bool = False  # the supervisor outlived its own deadline (should never happen)


def _read_streams(proc: subprocess.Popen, fds: dict[str, int], deadline: float,
                  max_output_bytes: int) -> _Streams:
    """Read all pipes until they close, keeping bounded tails; stop the run on too much output."""
    streams = _Streams({name: bytearray() for name in fds})
    selector = selectors.DefaultSelector()
    for name, fd in fds.items():
        selector.register(fd, selectors.EVENT_READ, name)
    supervisor_done_at = None
    while selector.get_map():
        now = time.monotonic()
        if proc.poll() is not None:
            # Everything the supervisor started is dead; wait a moment for the last bytes only.
            supervisor_done_at = supervisor_done_at or now
            if now - supervisor_done_at > 0.5:
                break
        if now > deadline:
            streams.overdue = True
            break
        for key, _ in selector.select(timeout=min(0.1, max(deadline - now, 0))):
            chunk = os.read(key.fd, 65536)
            if not chunk:
                selector.unregister(key.fd)
                continue
            buffer = streams.data[key.data]
            buffer += chunk
            if key.data != "control":  # everything the program can write to counts
                streams.printed += len(chunk)
            if key.data in ("stdout", "stderr"):
                del buffer[:-_TAIL_BYTES]
            else:
                del buffer[_CHANNEL_BYTES:]
        if streams.printed > max_output_bytes and not streams.overflow:
            streams.overflow = True
            _request_stop(proc)
    selector.close()
    return streams


def _request_stop(proc: subprocess.Popen) -> None:
    with contextlib.suppress(OSError):
        proc.stdin.close()  # the supervisor sees EOF and kills the runner


def _stop(proc: subprocess.Popen) -> None:
    """Supervisor first asked to stop (it kills the runner), then killed; the uid sweep of
    ``_sandbox_uid`` catches whatever a killed supervisor could not."""
    _request_stop(proc)
    try:
        proc.wait(timeout=2.0)
    except subprocess.TimeoutExpired:
        with contextlib.suppress(ProcessLookupError, PermissionError):
            os.killpg(proc.pid, signal.SIGKILL)
        proc.wait()
    for stream in (proc.stdout, proc.stderr):
        stream.close()


def _verdict(streams: _Streams, max_output_bytes: int, duration: float) -> CodeResult:
    control = streams.data["control"].decode("utf-8", "replace").splitlines()
    for line in control:
        if line.startswith("note "):
            _note_once(line[5:])
    setup_failed = [line[len("setup-failed "):] for line in control if line.startswith("setup-failed ")]
    if setup_failed or "ready" not in control and not streams.overdue:
        reason = setup_failed[0] if setup_failed else _tail(streams.data["stderr"]) or "no output"
        raise SandboxError(f"the code sandbox could not start a program: {reason}")
    ended = control[-1] if control and control[-1] != "ready" else "unknown"
    # written by the test runner only; the solution's process never holds this pipe
    verdict = streams.data["result"].decode("utf-8", "replace").partition("\n")[0]
    if streams.overflow:
        status = f"failed: output limit exceeded (more than {max_output_bytes} bytes printed)"
    elif ended == "timeout" or streams.overdue:  # overdue: even start-up overran (overload)
        status = "timed out"
    elif verdict == "PASS" and ended == "exit 0":
        status = "passed"
    elif verdict.startswith("FAIL "):
        status = f"failed: {verdict[5:]}"
    elif verdict.startswith("ENDED "):  # the solution's process ended before the tests did
        status = _ending(verdict[6:])
    else:  # the test runner itself ended early
        status = _ending(ended)
    return CodeResult(passed=status == "passed", status=status, stdout=_tail(streams.data["stdout"]),
                      stderr=_tail(streams.data["stderr"]), duration_s=duration)


def _ending(how: str) -> str:
    """The status for a process that ended as ``how`` says ("signal N", "exit N") too early."""
    kind, _, number = how.partition(" ")
    if kind == "signal" and number.isdigit():
        return "timed out" if int(number) == signal.SIGXCPU else f"failed: killed by {signal_name(int(number))}"
    if kind == "exit" and number.isdigit():
        return f"failed: exited with code {number} before the tests finished"
    return f"failed: the run ended abnormally ({how})"


def signal_name(number: int) -> str:
    """SIGSEGV, SIGRTMIN+3, ...: ``signal.Signals`` has no members for real-time signals."""
    try:
        return signal.Signals(number).name
    except ValueError:
        if signal.SIGRTMIN <= number <= signal.SIGRTMAX:
            return f"SIGRTMIN+{number - signal.SIGRTMIN}"
        return f"signal {number}"


def _tail(data: bytearray) -> str:
    return data.decode("utf-8", "replace")[-_TAIL_BYTES:].strip()


_NOTED: set[str] = set()


def _note_once(note: str) -> None:
    if note not in _NOTED:
        _NOTED.add(note)
        logger.warning("code sandbox: %s (see docs/sandbox.md)", note)
