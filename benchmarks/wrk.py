"""HTTP load from wrk (Debian's `wrk`), a generator written in C that costs far less CPU per request
than the servers it measures, and the CPU a server process spent meanwhile.

`run` drives benchmarks/wrk.lua: one fixed request (method, Authorization, form body), or a pool
of rotating refresh tokens, one chain per connection. It returns wrk.lua's figures (requests,
duration, errors, latency percentiles) and wrk's own CPU, from its rusage.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
from pathlib import Path
from typing import Any

SCRIPT = Path(__file__).resolve().parent / "wrk.lua"


def installed() -> bool:
    return shutil.which("wrk") is not None


def cpu_seconds(pid: int) -> float:
    """utime + stime of a process, all its threads (/proc/PID/stat fields 14 and 15)."""
    stat = Path(f"/proc/{pid}/stat").read_text()
    fields = stat[stat.rindex(")") + 2 :].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def fixed(method: str = "GET", authorization: str = "", body: str = "") -> dict[str, str]:
    """wrk.lua's environment for one request sent again and again."""
    return {"WRK_METHOD": method, "WRK_AUTHORIZATION": authorization, "WRK_BODY": body}


def refreshing(authorization: str, tokens: list[str], threads: int) -> dict[str, str]:
    """wrk.lua's environment for refresh grants: one chain per token, `len(tokens) / threads`
    chains in each wrk thread."""
    return {
        "WRK_METHOD": "POST",
        "WRK_AUTHORIZATION": authorization,
        "WRK_REFRESH_TOKENS": ",".join(tokens),
        "WRK_CHAINS_PER_THREAD": str(len(tokens) // threads),
    }


def run(url: str, env: dict[str, str], connections: int, seconds: int, threads: int) -> Any:
    """One wrk run of `seconds` with `connections` open: wrk.lua's figures and wrk's CPU."""
    argv = ["wrk", f"-t{threads}", f"-c{connections}", f"-d{seconds}s", "-s", str(SCRIPT), url]
    process = subprocess.Popen(  # noqa: S603 - our own argv
        argv, env={**os.environ, **env}, stdout=subprocess.PIPE, stderr=subprocess.STDOUT
    )
    assert process.stdout is not None
    out = process.stdout.read()
    process.stdout.close()
    # wait4, not communicate(): wrk's own rusage is what shows it was not the bottleneck
    _, status, usage = os.wait4(process.pid, 0)
    process.returncode = os.waitstatus_to_exitcode(status)
    if process.returncode:
        raise RuntimeError(f"{argv} exited with {process.returncode}: {out.decode()}")
    figures = json.loads(out.decode().strip().splitlines()[-1])
    figures["generator_cpu_s"] = usage.ru_utime + usage.ru_stime
    return figures
