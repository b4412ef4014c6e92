"""Real service processes on loopback: gunicorn and Celery workers for tests, chaos and bench
runs, and what they cost in memory.

Each process runs in a process group of its own, so a kill takes a worker's whole pool at
once, and logs to a file that tells when it is ready. Whatever is still running when Python
exits is stopped then."""

import atexit
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
PYTHON = sys.executable
LOG_DIR = ROOT / "var" / "logs"
CELERY = [PYTHON, "-m", "celery", "-A", "newsletter", "worker"]

_started: list[subprocess.Popen] = []


def start(name: str, cmd: list[str], env: dict, ready: str | None = None, timeout: float = 60,
          log_dir: Path | None = None) -> subprocess.Popen:
    """Start `cmd` with its output in `<log_dir>/<name>.log`; with `ready`, wait until that
    text is in the log. The process carries its `log_path`."""
    log_dir = log_dir or LOG_DIR
    log_dir.mkdir(parents=True, exist_ok=True)
    log_path = log_dir / f"{name}.log"
    with open(log_path, "wb") as log:
        proc = subprocess.Popen(cmd, cwd=ROOT, env=env, stdout=log, stderr=subprocess.STDOUT, start_new_session=True)
    proc.log_path = log_path
    _started.append(proc)
    deadline = time.monotonic() + timeout
    while ready and ready.encode() not in log_path.read_bytes():
        if proc.poll() is not None or time.monotonic() > deadline:
            stop(proc)
            raise RuntimeError(f"{name} did not start:\n{log_path.read_text(errors='replace')[-3000:]}")
        time.sleep(0.1)
    return proc


def stop(proc: subprocess.Popen, sig=signal.SIGTERM, timeout: float = 20) -> None:
    """Signal the process's whole group; SIGKILL it if it is not gone after `timeout`."""
    if proc.poll() is None:
        try:
            os.killpg(proc.pid, sig)
            proc.wait(timeout)
        except ProcessLookupError:
            pass
        except subprocess.TimeoutExpired:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait()
    if proc in _started:
        _started.remove(proc)


@atexit.register
def _stop_all() -> None:
    for proc in list(_started):
        stop(proc, timeout=10)


def start_gunicorn(env: dict, port: int, workers: int = 4, threads: int = 4, log_dir: Path | None = None) -> subprocess.Popen:
    worker_class = "gthread" if threads > 1 else "sync"
    cmd = [PYTHON, "-m", "gunicorn", "newsletter.wsgi", f"--bind=127.0.0.1:{port}", f"--workers={workers}",
           f"--worker-class={worker_class}", f"--threads={threads}", "--error-logfile=-"]
    return start(f"gunicorn-{port}", cmd, env, ready="Booting worker", log_dir=log_dir)


class CeleryWorker:
    """A real `celery worker` on the broker of `env`. `start()` returns once it is ready;
    `kill()` SIGKILLs the main process and its pool at once (an OOM kill, a lost machine) and
    a later `start()` brings it back, each start logging to a file of its own.

    `command` replaces `celery -A newsletter worker` for a worker with hooks of its own (the
    digest bench counts SQL queries); it must log "ready." once ready, as Celery does at INFO."""

    def __init__(self, env: dict, name: str = "w1", concurrency: int = 2, queues: str | None = None,
                 log_dir: Path | None = None, loglevel: str = "INFO", command: list[str] | None = None,
                 extra_args: tuple[str, ...] = (), timeout: float = 120):
        self.env, self.name, self.concurrency, self.queues = env, name, concurrency, queues
        self.log_dir = log_dir or LOG_DIR
        self.loglevel, self.command, self.extra_args, self.timeout = loglevel, command or CELERY, extra_args, timeout
        self.incarnation = 0
        self.proc: subprocess.Popen | None = None
        self.log_paths: list[Path] = []

    def start(self) -> "CeleryWorker":
        self.incarnation += 1
        cmd = [*self.command, f"--loglevel={self.loglevel}", f"--concurrency={self.concurrency}",
               f"--hostname={self.name}@%h", "--without-gossip", "--without-mingle", *self.extra_args]
        if self.queues:
            cmd.append(f"--queues={self.queues}")
        # The pid keeps the logs of runs side by side (several test sessions) apart.
        self.proc = start(f"celery-{self.name}-{os.getpid()}-{self.incarnation}", cmd, self.env, ready="ready.",
                          timeout=self.timeout, log_dir=self.log_dir)
        self.log_paths.append(self.proc.log_path)
        return self

    def kill(self) -> None:
        stop(self.proc, sig=signal.SIGKILL)

    def stop(self) -> None:
        if self.proc is not None:
            stop(self.proc)

    def __enter__(self) -> "CeleryWorker":
        return self.start()

    def __exit__(self, *exc) -> None:
        self.stop()

    def output(self) -> str:
        """Everything every start of this worker logged."""
        return "\n".join(p.read_text(errors="replace") for p in self.log_paths if p.exists())

    def cpu_seconds(self) -> float:
        """CPU time (user + system) the running main process and its pool have used so far."""
        return sum(cpu_seconds(pid) for pid in [self.proc.pid, *children_of(self.proc.pid)])

    def peak_rss(self) -> dict[str, float]:
        """Peak RSS in MB of the running main process and of each pool process."""
        rss = {"parent": peak_rss_mb(self.proc.pid)}
        for n, child in enumerate(sorted(children_of(self.proc.pid)), start=1):
            rss[f"child{n}"] = peak_rss_mb(child)
        return rss


def start_worker(env: dict, name: str, concurrency: int = 2, queues: str | None = None,
                 log_dir: Path | None = None) -> CeleryWorker:
    return CeleryWorker(env, name, concurrency, queues, log_dir=log_dir).start()


def peak_rss_mb(pid: int) -> float:
    """The most memory `pid` has held (VmHWM), in MB; 0 once it is gone."""
    try:
        for line in Path(f"/proc/{pid}/status").read_text().splitlines():
            if line.startswith("VmHWM:"):
                return int(line.split()[1]) / 1024
    except OSError:
        pass
    return 0.0


def cpu_seconds(pid: int) -> float:
    """CPU time (user + system, in seconds) `pid` has used so far; 0 once it is gone."""
    try:
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    except OSError:
        return 0.0
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def children_of(pid: int) -> list[int]:
    kids = []
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            fields = stat.read_text().rsplit(")", 1)[1].split()
        except OSError:
            continue
        if int(fields[1]) == pid:
            kids.append(int(stat.parent.name))
    return kids
