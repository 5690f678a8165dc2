"""Waiting on a test's server, and what it and its job processes are doing when a wait times out.

A browser test or a cold start that waits for a background job cannot tell a slow job from a hung
one; on a timeout these helpers say which: each process's state and command line and, when py-spy
is installed (requirements-test.txt), its Python and native stacks - so a hang says where it hangs.
"""
from __future__ import annotations

import os
import shutil
import socket
import subprocess
import time


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def wait_for(fn, timeout: float, what: str) -> None:
    end = time.time() + timeout
    while time.time() < end:
        if fn():
            return
        time.sleep(0.25)
    raise AssertionError(f"timed out after {timeout} s waiting for {what}")


def descendants(pid: int) -> list[int]:
    """Every process below pid (the server's forkserver and its jobs), read from /proc."""
    found, todo = [], [pid]
    while todo:
        parent = todo.pop()
        for task in os.listdir(f"/proc/{parent}/task") if os.path.isdir(f"/proc/{parent}/task") else []:
            try:
                with open(f"/proc/{parent}/task/{task}/children") as fh:
                    kids = [int(k) for k in fh.read().split()]
            except OSError:
                continue
            found += kids
            todo += kids
    return found


def _state_and_command(pid: int) -> tuple[str, str] | None:
    try:
        with open(f"/proc/{pid}/stat") as fh:
            state = fh.read().rsplit(")", 1)[1].split()[0]
        with open(f"/proc/{pid}/cmdline", "rb") as fh:
            cmd = fh.read().replace(b"\0", b" ").decode(errors="replace")[:160]
    except OSError:
        return None
    return state, cmd


def process_report(pid: int, python_only: bool = False) -> str:
    """pid and every process below it: state, command line and (py-spy) stacks. ``python_only``
    leaves out the browser and its driver (a dash_duo server runs inside the test process)."""
    lines = []
    for p in [pid] + descendants(pid):
        found = _state_and_command(p)
        if found is None:
            continue
        state, cmd = found
        if python_only and "python" not in cmd.split(" ", 1)[0]:
            continue
        lines.append(f"pid {p} state {state}: {cmd}")
        if shutil.which("py-spy"):
            try:
                dump = subprocess.run(["py-spy", "dump", "--native", "--pid", str(p)], capture_output=True,
                                      text=True, timeout=60)
                lines.append((dump.stdout or dump.stderr)[-4000:])
            except (OSError, subprocess.SubprocessError) as err:
                lines.append(f"py-spy dump failed: {err}")
    return "\n".join(lines)


def job_processes(pid: int) -> list[int]:
    """The background jobs below pid: the children of its forkserver(s)."""
    jobs = []
    for p in descendants(pid):
        found = _state_and_command(p)
        if found and "multiprocess.forkserver" in found[1]:
            jobs += [kid for kid in descendants(p) if _state_and_command(kid)]
    return jobs


def stop_jobs(pid: int, timeout: float = 10.0) -> list[int]:
    """Kill the background jobs below pid that are still running (a test's server is gone, so its
    jobs must not share the two cores with the next test); the pids killed."""
    import signal

    jobs = job_processes(pid)
    for job in jobs:
        try:
            os.kill(job, signal.SIGKILL)
        except OSError:
            pass

    def running(job):
        found = _state_and_command(job)
        return found is not None and found[0] != "Z"
    end = time.time() + timeout
    while time.time() < end and any(map(running, jobs)):
        time.sleep(0.1)
    return jobs


def track_requests(driver) -> None:
    """Keep the browser's record of every request from now on (its default buffer stops at 250)."""
    driver.execute_script("performance.setResourceTimingBufferSize(100000);")


def page_report(driver, selectors=("#status", "#progress-text", "#train-status", "#map-caption")) -> str:
    """What the page shows and does: the texts of ``selectors``, whether Train is disabled, the
    page's last requests (is Dash still polling?) and the browser console's messages."""
    lines = []
    try:
        for selector in selectors:
            found = driver.find_elements("css selector", selector)
            lines.append(f"{selector}: {found[0].text!r}" if found else f"{selector}: (absent)")
        lines.append("train button disabled: " + str(driver.execute_script(
            "var b = document.getElementById('train-button'); return b ? b.disabled : null;")))
        lines.append("page age and its last requests (ms since load: start - end, url):")
        recent = driver.execute_script(
            "return [Math.round(performance.now())].concat(performance.getEntriesByType('resource').slice(-12)"
            ".map(e => Math.round(e.startTime) + ' - ' + Math.round(e.responseEnd) + ' ' + e.name.split('/').pop()));")
        lines += [f"  {r}" for r in recent]
    except Exception as err:       # a page that cannot be asked is itself the finding
        lines.append(f"the page did not answer: {type(err).__name__}: {err}")
    try:
        for entry in driver.get_log("browser")[-20:]:
            lines.append(f"console {entry.get('level')}: {entry.get('message', '')[:500]}")
    except Exception as err:
        lines.append(f"no console log: {type(err).__name__}")
    return "\n".join(lines)
