"""The engine's main loop: read requests from stdin, run jobs one at a time, stream events.

See ``protocol`` for the messages. A reader thread takes requests as they come, so a
cancel reaches a running job, which stops at its next ``ctx.progress`` call.
"""

import os
import queue
import sys
import threading
import time
import traceback

from ..errors import DPHMError
from .protocol import PROTOCOL, decode, encode


class Cancelled(Exception):
    """Raised inside a job when the client cancels it."""


class Context:
    """What a job sees: progress (which raises ``Cancelled`` once asked to stop), preview
    events, and the time since it started."""

    def __init__(self, server, job_id: int):
        self.server, self.id = server, job_id
        self.started = time.monotonic()
        self._last = 0.0

    @property
    def cancelled(self) -> bool:
        return self.id in self.server.cancelled

    @property
    def stopping(self) -> bool:
        """True once the client asked a streaming job to finish and keep its output."""
        return self.id in self.server.stopping

    def check(self) -> None:
        if self.cancelled:
            raise Cancelled()

    def progress(self, done, total=None, stage="", text="") -> None:
        """Report progress (at most 20 messages a second, always the last step)."""
        self.check()
        now = time.monotonic()
        if now - self._last >= 0.05 or (total and done >= total):
            self._last = now
            self.server.send(
                {
                    "event": "progress",
                    "id": self.id,
                    "done": done,
                    "total": total,
                    "stage": stage,
                    "text": text,
                }
            )

    def preview(self, path, **extra) -> None:
        self.server.send({"event": "preview", "id": self.id, "path": str(path), **extra})


class Server:
    def __init__(self, stdin, stdout, jobs, setup_error: str | None = None):
        self.stdin, self.stdout, self.jobs = stdin, stdout, jobs
        self.setup_error = setup_error  # e.g. the chosen device is absent: every job says so
        self.requests: queue.Queue = queue.Queue()
        self.cancelled: set[int] = set()
        self.stopping: set[int] = set()
        self._lock = threading.Lock()

    def send(self, message: dict) -> None:
        with self._lock:
            try:
                self.stdout.write(encode(message))
                self.stdout.flush()
            except (BrokenPipeError, ValueError):
                pass  # the client is gone; the reader sees EOF and the loop ends

    def _read(self) -> None:
        for line in self.stdin:
            message = decode(line)
            if message is None:
                continue
            op = message.get("op")
            if op == "cancel":
                self.cancelled.add(message.get("id"))
            elif op == "stop":
                self.stopping.add(message.get("id"))
            elif op == "run":
                self.requests.put(message)
            elif op == "quit":
                break
        self.requests.put(None)  # quit, or the client closed our stdin (it is gone)

    def serve(self) -> int:
        threading.Thread(target=self._read, daemon=True).start()
        self.send(
            {
                "event": "ready",
                "pid": os.getpid(),
                "protocol": PROTOCOL,
                "python": sys.version.split()[0],
            }
        )
        while (request := self.requests.get()) is not None:
            self.run(request)
        return 0

    def run(self, request: dict) -> None:
        job_id, cmd = request.get("id"), request.get("cmd")
        if job_id in self.cancelled:
            self.send({"event": "cancelled", "id": job_id})
            return
        self.send({"event": "started", "id": job_id, "cmd": cmd})
        try:
            fn = self.jobs.get(cmd)
            if self.setup_error and cmd != "ping":
                raise DPHMError(self.setup_error)
            if fn is None:
                raise DPHMError(f"unknown engine command {cmd!r}")
            value = fn(Context(self, job_id), **request.get("args", {}))
            self.send({"event": "result", "id": job_id, "value": value or {}})
        except Cancelled:
            self.send({"event": "cancelled", "id": job_id})
        except DPHMError as e:
            self.send({"event": "error", "id": job_id, "message": str(e)})
        except ModuleNotFoundError as e:
            self.send(
                {
                    "event": "error",
                    "id": job_id,
                    "message": (
                        f"{cmd}: {e.name} is not installed in the engine's Python"
                        f" ({sys.executable});"
                        " install it there or choose another interpreter in the DPHM preferences"
                        " (Check setup lists what is missing)"
                    ),
                }
            )
        except TypeError as e:
            traceback.print_exc()
            self.send({"event": "error", "id": job_id, "message": f"{cmd}: bad arguments ({e})"})
        except Exception as e:  # a bug or a library failure: report it, keep serving
            traceback.print_exc()
            self.send(
                {
                    "event": "error",
                    "id": job_id,
                    "message": f"{cmd} failed: {type(e).__name__}: {e}",
                }
            )
        finally:
            self.cancelled.discard(job_id)
            self.stopping.discard(job_id)


def main() -> int:
    """Serve on stdin/stdout. Anything else printing to stdout goes to stderr instead."""
    out = os.fdopen(os.dup(1), "wb")
    os.dup2(2, 1)
    sys.stdout = sys.stderr
    threads = os.environ.get("DPHM_ENGINE_THREADS")
    setup_error = None
    try:
        import torch
    except ModuleNotFoundError:
        pass  # the jobs that need it will say so
    else:
        if threads:
            torch.set_num_threads(int(threads))
        from ..device import use

        try:
            use()  # $DPHM_DEVICE, the preferences' Torch device
        except DPHMError as e:
            setup_error = f"{e} (DPHM preferences: Torch device)"
    from .jobs import JOBS

    return Server(sys.stdin.buffer, out, JOBS, setup_error).serve()
