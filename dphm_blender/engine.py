"""The engine bridge: start the engine process, send it jobs, collect their events.

No bpy here, and nothing blocks: a reader thread moves the engine's stdout lines into a
queue, and ``Job.poll()`` drains it (the operators call it from a modal timer). If the
engine dies, its running jobs end with an error that quotes its exit code and the end of
its stderr; the next job starts a fresh engine. Protocol: ``core/engine/protocol.py``.
"""

import itertools
import os
import queue
import subprocess
import tempfile
import threading
import time
from pathlib import Path

from ..core.engine.protocol import TERMINAL, boot_command, decode, encode
from ..core.errors import DPHMError

PACKAGE_ROOT = Path(__file__).resolve().parent.parent
CANCEL_GRACE_S = 5.0  # a cancelled job that has not ended by then: the engine is stopped


class Job:
    """One command run by the engine. ``poll()`` returns its new events (dicts)."""

    def __init__(self, engine, job_id: int, cmd: str, args: dict):
        self.engine, self.id, self.cmd, self.args = engine, job_id, cmd, args
        self.state = "running"  # then "done", "error" or "cancelled"
        self.done, self.total, self.stage, self.text = 0, None, "", ""
        self.result: dict | None = None
        self.error: str | None = None
        self.started = time.monotonic()
        self.stage_started = self.started
        self.cancel_at: float | None = None
        self.inbox: list[dict] = []

    @property
    def finished(self) -> bool:
        return self.state != "running"

    def _handle(self, event: dict) -> None:
        kind = event.get("event")
        if kind == "progress":
            if event.get("stage") != self.stage:
                self.stage, self.stage_started = event.get("stage", ""), time.monotonic()
            self.done, self.total = event.get("done", 0), event.get("total")
            self.text = event.get("text", "")
        elif kind == "result":
            self.state, self.result = "done", event.get("value", {})
        elif kind == "error":
            self.state, self.error = "error", event.get("message", "engine error")
        elif kind == "cancelled":
            self.state = "cancelled"
        self.inbox.append(event)

    def poll(self) -> list[dict]:
        self.engine.pump()
        events, self.inbox = self.inbox, []
        return events

    def wait(self, timeout: float | None = None, on_event=None, interval: float = 0.05) -> None:
        """Block until the job ends (background mode and scripts); ``on_event(event)``."""
        deadline = None if timeout is None else time.monotonic() + timeout
        while True:
            for event in self.poll():
                if on_event:
                    on_event(event)
            if self.finished:
                return
            if deadline is not None and time.monotonic() > deadline:
                self.cancel()
                raise TimeoutError(f"engine job {self.cmd} took longer than {timeout:g} s")
            time.sleep(interval)

    def cancel(self) -> None:
        """Ask the engine to stop this job; it leaves no partial output."""
        if not self.finished and self.cancel_at is None:
            self.cancel_at = time.monotonic()
            self.engine.send({"op": "cancel", "id": self.id})

    def stop(self) -> None:
        """End a streaming job (live preview, recording) keeping what it has."""
        if not self.finished:
            self.engine.send({"op": "stop", "id": self.id})

    def fraction(self) -> float | None:
        return self.done / self.total if self.total else None

    def eta(self) -> float | None:
        """Seconds left in the current stage, from its rate so far."""
        f = self.fraction()
        if not f or f >= 1.0:
            return None
        elapsed = time.monotonic() - self.stage_started
        return elapsed * (1.0 - f) / f

    def status(self) -> str:
        """One line for the status bar: stage, count, percentage, ETA, detail."""
        parts = [f"DPHM {self.cmd}"]
        if self.stage:
            parts.append(self.stage)
        if self.total:
            parts.append(f"{self.done}/{self.total} ({100 * self.done / self.total:.0f}%)")
        elif self.done:
            parts.append(str(self.done))
        eta = self.eta()
        if eta is not None:
            parts.append(f"ETA {int(eta) // 60}:{int(eta) % 60:02d}")
        if self.text:
            parts.append(self.text)
        return " · ".join(parts) + " · Esc to cancel"


class Engine:
    """An engine process in ``python`` (its own interpreter by default)."""

    def __init__(self, python: str, threads: int | None = None, env: dict | None = None):
        self.python, self.threads, self.extra_env = python, threads, env or {}
        self.proc: subprocess.Popen | None = None
        self.jobs: dict[int, Job] = {}
        self.events: queue.Queue = queue.Queue()
        self.ids = itertools.count(1)
        self.ready: dict | None = None
        self.log_path: Path | None = None

    @property
    def alive(self) -> bool:
        return self.proc is not None and self.proc.poll() is None

    def start(self) -> None:
        env = dict(os.environ, PYTHONUNBUFFERED="1", **self.extra_env)
        threads = self.threads or max(1, (os.cpu_count() or 2) - 1)
        env.update(OMP_NUM_THREADS=str(threads), DPHM_ENGINE_THREADS=str(threads))
        fd, log = tempfile.mkstemp(prefix="dphm-engine-", suffix=".log")
        self.log_path = Path(log)
        try:
            self.proc = subprocess.Popen(
                boot_command(self.python, str(PACKAGE_ROOT)),
                stdin=subprocess.PIPE,
                stdout=subprocess.PIPE,
                stderr=fd,
                env=env,
                cwd=tempfile.gettempdir(),
            )
        except OSError as e:
            raise DPHMError(
                f"{self.python}: cannot start the DPHM engine ({e.strerror or e});"
                " check the Python interpreter in the DPHM preferences"
            ) from e
        finally:
            os.close(fd)
        self.events = queue.Queue()
        threading.Thread(target=self._read, args=(self.proc, self.events), daemon=True).start()

    @staticmethod
    def _read(proc, events) -> None:
        for line in proc.stdout:
            message = decode(line)
            if message is not None:
                events.put(message)
        events.put({"event": "exit", "code": proc.wait()})

    def send(self, message: dict) -> bool:
        if not self.alive:
            return False
        try:
            self.proc.stdin.write(encode(message))
            self.proc.stdin.flush()
            return True
        except (BrokenPipeError, OSError):
            return False

    def submit(self, cmd: str, **args) -> Job:
        """Start ``cmd`` (a name of ``core/engine/jobs.JOBS``); restarts a dead engine, and
        one still busy with a cancelled job (which would hold the new one back)."""
        self.pump()
        if any(j.cancel_at for j in self.jobs.values()):
            self.kill()
        if not self.alive:
            self.start()
        job = Job(self, next(self.ids), cmd, args)
        self.jobs[job.id] = job
        if not self.send({"op": "run", "id": job.id, "cmd": cmd, "args": args}):
            job._handle({"event": "error", "message": self._died_message()})
        return job

    def pump(self) -> None:
        """Deliver queued events to their jobs; never blocks."""
        while True:
            try:
                event = self.events.get_nowait()
            except queue.Empty:
                break
            kind = event.get("event")
            if kind == "ready":
                self.ready = event
            elif kind == "exit":
                message = self._died_message(event.get("code"))
                for job in self.jobs.values():
                    if not job.finished:
                        job._handle({"event": "error", "message": message})
                self.jobs.clear()
            elif (job := self.jobs.get(event.get("id"))) is not None:
                job._handle(event)
                if kind in TERMINAL:
                    self.jobs.pop(job.id, None)
        now = time.monotonic()
        if any(j.cancel_at and now - j.cancel_at > CANCEL_GRACE_S for j in self.jobs.values()):
            self.kill()  # a job ignored its cancel: the next submit starts a fresh engine

    def _died_message(self, code=None) -> str:
        tail = ""
        if self.log_path and self.log_path.is_file():
            lines = [x for x in self.log_path.read_text(errors="replace").splitlines() if x]
            tail = lines[-1] if lines else ""
        code = code if code is not None else (self.proc.poll() if self.proc else None)
        return (
            f"the DPHM engine ({self.python}) stopped (exit code {code})"
            + (f": {tail}" if tail else "")
            + (f"; log: {self.log_path}" if self.log_path else "")
        )

    def kill(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait()
        for job in self.jobs.values():
            if not job.finished:
                job._handle(
                    {
                        "event": "cancelled" if job.cancel_at else "error",
                        "message": "the engine was stopped",
                    }
                )
        self.jobs.clear()

    def close(self) -> None:
        """Quit gracefully (waits at most 2 s, then kills)."""
        if self.alive:
            self.send({"op": "quit"})
            try:
                self.proc.stdin.close()
                self.proc.wait(2.0)
            except (OSError, subprocess.TimeoutExpired):
                pass
        self.kill()


_engine: Engine | None = None


def get_engine(python: str, threads: int | None = None, env: dict | None = None) -> Engine:
    """The shared engine for this interpreter, thread count and extra environment (the
    checkpoint folder): a new one when any of them changed, so a changed preference takes
    effect with the next job."""
    global _engine
    key = (python, threads, env or {})
    if _engine is None or (_engine.python, _engine.threads, _engine.extra_env) != key:
        if _engine is not None:
            _engine.close()
        _engine = Engine(*key)
    return _engine


def shutdown() -> None:
    global _engine
    if _engine is not None:
        _engine.close()
        _engine = None


def job_statuses() -> list[str]:
    """One status line per job the engine is running, for the panels."""
    if _engine is None:
        return []
    return [job.status() for job in list(_engine.jobs.values())]
