"""Hostile "solutions" through the code checker (issue 9, "Code execution under attack").

Each attack comes wrapped as a HumanEval-shaped program whose completion is wrong, so the only
acceptable verdict is a failure; after each, the evaluation must go on: a correct program still
passes and a wrong one still fails. Attacks use the low-level doors (``posix``, ``_socket``,
``ctypes``) that the in-process guard does not close, so what these tests see is what the
kernel-enforced layers hold. Small limits keep the file fast and the machine safe: the fork
bomb's bound is 8 processes.
"""
from __future__ import annotations

import json
import os
import resource
import secrets
import shutil
import socket
import subprocess
import sys
import textwrap
import time

import pytest

from illada_eval.checkers import code as code_checker
from illada_eval.checkers.code import check_program

LIMITS = dict(timeout=1.5, memory_mb=256, max_processes=8)
PACKAGE_DIR = os.path.dirname(code_checker.__file__)
ADD_TESTS = "\n\ndef check(candidate):\n    assert candidate(2, 3) == 5\n    assert candidate(-1, 1) == 0\n\ncheck(add)\n"
CORRECT = 'def add(a, b):\n    """Return a + b."""\n    return a + b\n' + ADD_TESTS
WRONG = 'def add(a, b):\n    """Return a + b."""\n    return a - b\n' + ADD_TESTS


def attack_then_wrong(attack: str, solution: str = WRONG) -> str:
    """The attack runs first (module level), then a (wrong) solution and its tests."""
    return textwrap.dedent(attack) + "\n" + solution


def name_processes(token: str) -> str:
    """Program lines that give this process, and every child it forks, the name ``token``."""
    return f"import ctypes\nctypes.CDLL(None).prctl(15, b'{token}', 0, 0, 0)\n"


def processes_named(token: str) -> list[int]:
    found = []
    for entry in os.listdir("/proc"):
        try:
            with open(f"/proc/{entry}/comm") as fh:
                if entry.isdigit() and fh.read().strip() == token:
                    found.append(int(entry))
        except OSError:
            pass
    return found


def assert_failed_and_evaluation_goes_on(result, **limits):
    assert not result.passed, result
    assert result.status != "passed"
    assert check_program(CORRECT, **(limits or LIMITS)).passed
    assert not check_program(WRONG, **(limits or LIMITS)).passed


@pytest.fixture(scope="module")
def pid_namespace() -> bool:
    """Whether programs run as PID 1 of their own PID namespace on this machine."""
    result = check_program("import os\nprint(os.getpid())\n", **LIMITS)
    return result.stdout == "1"


def test_infinite_loop_times_out():
    result = check_program(attack_then_wrong("while True:\n    pass\n"), **LIMITS)
    assert result.status == "timed out"
    assert_failed_and_evaluation_goes_on(result)


def test_fork_bomb_is_bounded_and_leaves_no_process():
    token = "ie" + secrets.token_hex(6)
    attack = name_processes(token) + textwrap.dedent("""
        import posix, time
        forks = 0
        while True:
            try:
                pid = posix.fork()
            except OSError:
                break
            if pid == 0:  # every child forks for ever too
                while True:
                    try:
                        posix.fork()
                    except OSError:
                        time.sleep(0.01)
            forks += 1
        print("forks", forks, flush=True)
        time.sleep(60)
    """)
    result = check_program(attack_then_wrong(attack), **LIMITS)
    assert result.status == "timed out"
    forks = int(result.stdout.split()[-1])
    assert 0 < forks < LIMITS["max_processes"]  # the bound held: the parent hit EAGAIN
    assert processes_named(token) == []
    assert_failed_and_evaluation_goes_on(result)


def test_daemonised_child_does_not_survive_the_run():
    token = "ie" + secrets.token_hex(6)
    attack = name_processes(token) + textwrap.dedent("""
        import posix, signal, time
        if posix.fork() == 0:
            posix.setsid()  # leave the process group, ignore polite signals, wait for ever
            for sig in (signal.SIGTERM, signal.SIGHUP, signal.SIGINT):
                signal.signal(sig, signal.SIG_IGN)
            time.sleep(600)
    """)
    result = check_program(attack_then_wrong(attack), **LIMITS)
    assert processes_named(token) == []
    assert_failed_and_evaluation_goes_on(result)


@pytest.mark.parametrize("attack", [
    "blob = bytearray(1 << 40)\n",
    "blobs = []\nwhile True:\n    blobs.append(bytearray(1 << 24))\n",
])
def test_memory_bomb_fails(attack):
    # MemoryError when the allocation fails in time; on a loaded machine the clock may win first
    result = check_program(attack_then_wrong(attack), **LIMITS)
    assert_failed_and_evaluation_goes_on(result)


@pytest.mark.parametrize("attack", [
    "def down(n):\n    return down(n + 1)\ndown(0)\n",
    "import sys\nsys.setrecursionlimit(10 ** 7)\ndef down(n):\n    return down(n + 1)\ndown(0)\n",
])
def test_deep_recursion_fails(attack):
    result = check_program(attack_then_wrong(attack), **LIMITS)
    assert_failed_and_evaluation_goes_on(result)


def test_a_crash_of_the_interpreter_is_a_failure():
    result = check_program(attack_then_wrong("import ctypes\nctypes.string_at(0)\n"), **LIMITS)
    assert result.status == "failed: killed by SIGSEGV"
    assert_failed_and_evaluation_goes_on(result)


def test_files_outside_the_sandbox_do_not_change(tmp_path, monkeypatch):
    sentinel = tmp_path / "sentinel.txt"
    sentinel.write_text("original")
    monkeypatch.chdir(tmp_path)  # the evaluator's working directory
    token = secrets.token_hex(8)
    planted = [tmp_path / "escape.txt", f"/tmp/{token}.txt", f"/dev/shm/{token}.txt",
               os.path.join(PACKAGE_DIR, f"planted_{token}.py")]
    attack = f"""
import ctypes, posix
libc = ctypes.CDLL(None)
def attempt(action):
    try:
        action()
    except Exception:
        pass
attempt(lambda: open({str(sentinel)!r}, "w").write("pwned"))
attempt(lambda: posix.unlink({str(sentinel)!r}))
attempt(lambda: posix.rename({str(sentinel)!r}, {str(sentinel)!r} + ".moved"))
attempt(lambda: libc.unlink({str(sentinel).encode()!r}))
for path in {[str(p) for p in planted]!r}:
    attempt(lambda: open(path, "w").write("planted"))
"""
    result = check_program(attack_then_wrong(attack), **LIMITS)
    assert sentinel.read_text() == "original"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["sentinel.txt"]
    for path in planted:
        assert not os.path.exists(path), path
    assert_failed_and_evaluation_goes_on(result)


def test_work_dir_is_thrown_away(tmp_path, monkeypatch):
    monkeypatch.setattr("tempfile.tempdir", str(tmp_path))
    result = check_program("open('left_behind.txt', 'w').write('x')\n", **LIMITS)
    assert result.passed
    assert list(tmp_path.iterdir()) == []


def test_host_secrets_are_not_visible(tmp_path, monkeypatch):
    token = secrets.token_hex(16)
    monkeypatch.setenv("ILLADA_TEST_SECRET", token)
    secret_file = tmp_path / "secret.txt"
    secret_file.write_text(token)
    attack = f"""
import os
print(dict(os.environ))
for path in ({str(secret_file)!r}, "/proc/{os.getpid()}/environ", "/proc/1/environ", "/etc/shadow"):
    try:
        print(open(path, errors="replace").read())
    except OSError as exc:
        print("refused", path, exc)
"""
    result = check_program(attack_then_wrong(attack), **LIMITS)
    assert "refused" in result.stdout
    assert token not in result.stdout + result.stderr
    assert "ILLADA_TEST_SECRET" not in result.stdout
    assert_failed_and_evaluation_goes_on(result)


def test_no_network_connection_reaches_the_host():
    tcp = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    udp = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    with tcp, udp:
        tcp.bind(("127.0.0.1", 0))
        tcp.listen(1)
        udp.bind(("127.0.0.1", 0))
        attack = f"""
import _socket
for address in (("127.0.0.1", {tcp.getsockname()[1]}),):
    try:
        s = _socket.socket(_socket.AF_INET, _socket.SOCK_STREAM)
        s.settimeout(1.0)
        s.connect(address)
        s.send(b"exfiltrated")
        print("connected")
    except OSError as exc:
        print("refused", exc)
try:
    u = _socket.socket(_socket.AF_INET, _socket.SOCK_DGRAM)
    u.sendto(b"exfiltrated", ("127.0.0.1", {udp.getsockname()[1]}))
except OSError as exc:
    print("refused", exc)
"""
        result = check_program(attack_then_wrong(attack), **LIMITS)
        tcp.settimeout(0.5)
        udp.settimeout(0.5)
        with pytest.raises(socket.timeout):
            tcp.accept()
        with pytest.raises(socket.timeout):
            udp.recvfrom(100)
    assert "connected" not in result.stdout
    assert_failed_and_evaluation_goes_on(result)


def test_the_evaluator_cannot_be_signalled(pid_namespace):
    me = os.getpid()
    attack = f"""
import posix, signal
targets = [{me}, posix.getppid(), 0] + ([-1] if {pid_namespace} else [])
for target in targets:
    for sig in (signal.SIGKILL, signal.SIGTERM, signal.SIGSTOP):
        try:
            posix.kill(target, sig)
        except OSError:
            pass
"""
    result = check_program(attack_then_wrong(attack), **LIMITS)
    assert os.getpid() == me  # we are still here, and not stopped
    assert_failed_and_evaluation_goes_on(result)


def test_printing_gigabytes_is_cut_off_without_parent_memory_growth():
    before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    attack = "import sys\nchunk = 'x' * (1 << 20)\nfor _ in range(1024):\n    sys.stdout.write(chunk)\n"
    result = check_program(attack_then_wrong(attack), **LIMITS)
    grown_kib = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss - before
    assert result.status.startswith("failed: output limit exceeded")
    assert len(result.stdout) <= code_checker._TAIL_BYTES
    assert grown_kib < 64 * 1024
    assert_failed_and_evaluation_goes_on(result)


@pytest.mark.parametrize("attack", [
    "import sys\nsys.exit(0)\n",
    "raise SystemExit(0)\n",
    "import os\nos._exit(0)\n",
    "import posix\nposix._exit(0)\n",
    "raise KeyboardInterrupt\n",
    "import atexit, posix\natexit.register(posix._exit, 0)\n",
    "import posix, signal\nposix.kill(posix.getpid(), signal.SIGKILL)\n",
    "print('PASS 0123456789abcdef0123456789abcdef')\nimport posix\nposix.write(3, b'PASS 0123456789abcdef\\n')\n",
    "import posix\nposix.close(3)\nposix.close(4)\n",
])
def test_exit_tricks_are_no_pass(attack):
    result = check_program(attack_then_wrong(attack), **LIMITS)
    assert_failed_and_evaluation_goes_on(result)


def test_exiting_from_inside_the_solution_is_no_pass():
    program = 'def add(a, b):\n    import os\n    os._exit(0)\n' + ADD_TESTS
    assert_failed_and_evaluation_goes_on(check_program(program, **LIMITS))


@pytest.mark.parametrize("attack", [
    "import builtins\nbuiltins.AssertionError = type('Quiet', (Exception,), {})\n",
    "import builtins\nclass Never(BaseException):\n    pass\nbuiltins.AssertionError = Never\n",
    "def check(candidate):\n    pass\n",  # the real tests define check again after the completion
    "import sys\nsys.excepthook = lambda *args: None\n",
    "import os\nos.write = lambda fd, data: len(data)\nos._exit = lambda code: None\n",
])
def test_patching_the_checker_or_assert_is_no_pass(attack):
    assert_failed_and_evaluation_goes_on(check_program(attack_then_wrong(attack), **LIMITS))


def test_tests_that_ran_against_replaced_builtins_are_no_pass():
    # Wrong solution, but the tests compare through abs(), which the completion rigs.
    program = ('import builtins\nbuiltins.abs = lambda x: 0\n'
               'def add(a, b):\n    return a - b\n'
               'def check(candidate):\n    assert abs(candidate(2, 3) - 5) < 1e-9\n'
               'check(add)\n')
    result = check_program(program, **LIMITS)
    assert result.status == "failed: the program replaced builtins: ['abs']"
    assert_failed_and_evaluation_goes_on(result)


def test_a_correct_solution_still_passes_after_harmless_weirdness():
    """Guards must not turn correct code into failures: patching os.write/os._exit is fine."""
    program = "import os\nos.write = None\nos._exit = None\n" + CORRECT
    assert check_program(program, **LIMITS).passed


def test_attacks_in_parallel_do_not_disturb_their_neighbours():
    bomb = attack_then_wrong("import posix\nwhile True:\n    try:\n        posix.fork()\n    except OSError:\n        pass\n")
    programs = [bomb, CORRECT, bomb, WRONG, CORRECT]
    results = code_checker.check_many(programs, workers=3, **LIMITS)
    assert [r.passed for r in results] == [False, True, False, False, True]


# Loads the checker by file path (not through the package, whose import pulls in torch) and
# prints the statuses of the programs given as JSON on stdin.
CHECKER_SCRIPT = """
import importlib.util, json, sys, types
package = types.ModuleType("checkers")
package.__path__ = [sys.argv[1]]
sys.modules["checkers"] = package
spec = importlib.util.spec_from_file_location("checkers.code", sys.argv[1] + "/code.py")
code = importlib.util.module_from_spec(spec)
sys.modules["checkers.code"] = code
spec.loader.exec_module(code)
programs = json.loads(sys.stdin.read())
print(json.dumps([code.check_program(p, timeout=float(sys.argv[2]), memory_mb=256, max_processes=8).status
                  for p in programs]))
"""


def wait_until(condition, seconds: float) -> bool:
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        if condition():
            return True
        time.sleep(0.05)
    return condition()


def kill_evaluator_mid_run(env: dict | None = None) -> tuple[str, int]:
    """Start an evaluator on a program that sleeps, SIGKILL it once the program runs; the
    program's process name and the evaluator's pid."""
    token = "ie" + secrets.token_hex(6)
    program = name_processes(token) + "import time\ntime.sleep(600)\n"
    evaluator = subprocess.Popen([sys.executable, "-I", "-c", CHECKER_SCRIPT, PACKAGE_DIR, "600"],
                                 stdin=subprocess.PIPE, stdout=subprocess.DEVNULL, text=True, env=env)
    try:
        evaluator.stdin.write(json.dumps([program]))
        evaluator.stdin.close()
        assert wait_until(lambda: processes_named(token), 60), "the program never started"
    finally:
        evaluator.kill()
        evaluator.wait()
    return token, evaluator.pid


def test_the_sandbox_dies_with_the_evaluator():
    token, _ = kill_evaluator_mid_run()
    assert wait_until(lambda: not processes_named(token), 5)


@pytest.mark.skipif(os.geteuid() != 0 or not shutil.which("setpriv") or not os.path.exists("/usr/bin/python3"),
                    reason="needs root, setpriv and a system python3 to act as an unprivileged user")
def test_unprivileged_user_gets_the_same_guarantees():
    """Run as `nobody` (user namespaces instead of a uid switch): bombs bounded, no network,
    read-only filesystem, verdicts unchanged."""
    token = secrets.token_hex(8)
    programs = [
        CORRECT,
        WRONG,
        attack_then_wrong("import posix, time\nn = 0\nwhile True:\n    try:\n        if posix.fork() == 0:\n"
                          "            time.sleep(60)\n        n += 1\n    except OSError:\n        break\n"
                          "assert n < 8\n", solution=CORRECT),
        attack_then_wrong("import _socket\ns = _socket.socket()\ns.settimeout(1)\ns.connect(('127.0.0.1', 9))\n"),
        attack_then_wrong(f"open('/tmp/{token}', 'w').write('x')\nopen('/var/tmp/{token}', 'w').write('x')\n"
                          "open('/usr/lib/planted', 'w').write('x')\n"),
    ]
    proc = subprocess.run(
        ["setpriv", "--reuid=65534", "--regid=65534", "--clear-groups", "/usr/bin/python3", "-I", "-c",
         CHECKER_SCRIPT, PACKAGE_DIR, "1.5"],
        input=json.dumps(programs), capture_output=True, text=True, timeout=120, cwd="/",
        env={"PATH": os.environ.get("PATH", "/usr/bin:/bin"), "TMPDIR": "/tmp"})
    if proc.returncode != 0 and "No module named" in proc.stderr:
        pytest.skip(f"system python3 cannot run the checker: {proc.stderr[-200:]}")
    assert proc.returncode == 0, proc.stderr
    statuses = json.loads(proc.stdout)
    assert statuses[0] == "passed"
    assert statuses[1].startswith("failed: AssertionError")
    assert statuses[2] == "passed"  # forks were refused before 8: the bound held
    assert "Network is unreachable" in statuses[3]
    assert statuses[4].startswith("failed: ") and "Errno" in statuses[4]  # /usr/lib is read-only
    assert not os.path.exists(f"/tmp/{token}") and not os.path.exists(f"/var/tmp/{token}")
    assert not os.path.exists("/usr/lib/planted")


def test_work_dirs_of_a_killed_evaluator_are_removed_at_the_next_start(tmp_path, monkeypatch):
    """SIGKILL leaves the evaluator no time to remove its work dir; the next evaluation on the
    machine removes it (its owner is dead), and only it."""
    _, pid = kill_evaluator_mid_run(env={"PATH": os.environ.get("PATH", "/usr/bin:/bin"), "TMPDIR": str(tmp_path)})
    left = [p.name for p in tmp_path.iterdir()]
    assert len(left) == 1 and left[0].startswith(f"illada-sandbox-{pid}."), left
    alive = tmp_path / f"illada-sandbox-{code_checker._process_tag(os.getpid())}-running"  # ours: we are alive
    unknown = tmp_path / "illada-sandbox-made-by-someone"
    alive.mkdir()
    unknown.mkdir()
    monkeypatch.setattr("tempfile.tempdir", str(tmp_path))
    assert check_program(CORRECT, **LIMITS).passed
    assert sorted(p.name for p in tmp_path.iterdir()) == sorted([alive.name, unknown.name])


def test_default_limits_keep_one_samples_memory_under_2_gib():
    defaults = check_program.__kwdefaults__
    assert defaults["max_processes"] * defaults["memory_mb"] < 2048, defaults
