"""`identity serve --workers N`: N server processes on the same listening sockets.

One Python process uses one core. The parent binds the sockets (so a port in use is reported
once, before anything starts), then forks N workers; each builds its own app (its own database
pool, its own key cache) and serves on the inherited sockets, the kernel handing each new
connection to one of them. The parent only supervises: a worker that dies is started again
(after a pause that grows while they keep dying), and SIGTERM or SIGINT is passed on to every
worker, each finishing its requests under way within `IDENTITY_SHUTDOWN_GRACE_SECONDS`, before
the parent exits.

Nothing is shared between workers but the database, which every correctness rule already
goes through (several replicas are the same case). What each worker keeps to itself: its
metrics (a scrape of `/metrics` reaches one worker; in Kubernetes run one worker per pod and
scale the replicas, docs/deploy.md) and its per-address limits on the login forms.
"""

from __future__ import annotations

import math
import os
import signal
import sys
import time
from collections.abc import Callable
from pathlib import Path

import structlog

log = structlog.get_logger("identity.workers")

RESTART_PAUSE_MAX = 30.0


def default_count(cpu_max: Path = Path("/sys/fs/cgroup/cpu.max")) -> int:
    """The cores this process may run on, and no more than its cgroup's CPU quota allows: in a
    container the affinity shows every core of the host, the quota what the container gets."""
    cores = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count()
    try:
        quota, period = cpu_max.read_text().split()[:2]
        if quota != "max":
            return max(1, min(cores or 1, math.ceil(int(quota) / int(period))))
    except (OSError, ValueError):
        pass  # no cgroup v2 quota here
    return cores or 1


def supervise(count: int, serve: Callable[[], None]) -> int:
    """Run `serve` in `count` forked workers until SIGTERM or SIGINT; 0 when all stopped. The
    listening sockets stay open here too, for the workers started again."""
    workers: dict[int, int] = {}  # pid -> worker number
    stopping = False
    pause = 0.5

    def fork(number: int) -> None:
        pid = os.fork()
        if pid == 0:  # the worker
            signal.signal(signal.SIGTERM, signal.SIG_DFL)
            signal.signal(signal.SIGINT, signal.SIG_DFL)
            code = 0
            try:
                serve()
            except BaseException:  # noqa: BLE001 - logged, then the parent starts another
                log.exception("serve.worker_failed", worker=number)
                code = 1
            finally:
                sys.stdout.flush()
                sys.stderr.flush()
                os._exit(code)
        workers[pid] = number

    def stop(signum: int, _frame: object) -> None:
        nonlocal stopping
        stopping = True
        for pid in workers:
            os.kill(pid, signum)

    signal.signal(signal.SIGTERM, stop)
    signal.signal(signal.SIGINT, stop)
    for number in range(count):
        fork(number)
    while workers:
        try:
            pid, status = os.wait()
        except ChildProcessError:
            break
        except InterruptedError:
            continue
        if pid not in workers:
            continue
        number = workers.pop(pid)
        if stopping:
            continue
        log.error("serve.worker_exited", worker=number, status=os.waitstatus_to_exitcode(status))
        time.sleep(pause)
        pause = min(pause * 2, RESTART_PAUSE_MAX)
        if not stopping:
            fork(number)
    return 0
