"""Starting a performance's engine in a process of its own, apart from the terminal that asked for it.

The engine's process is ``tuibend play --headless`` in a new session: a terminal that closes (a dropped
SSH connection, a killed tmux session) hangs up its own processes, not this one. Its start-up lines go to a
log file, which :func:`wait_until_ready` follows until the control socket answers.
"""

from __future__ import annotations

import hashlib
import os
import subprocess
import sys
import time
from collections.abc import Callable, Sequence
from pathlib import Path

from tuibend.engine.errors import EngineError
from tuibend.engine.server import SOCKET_NAME, playing, socket_path
from tuibend.places import user_log

START_SECONDS = 300.0  # loading TensorFlow and compiling every scene on a slow machine, with room to spare
PREFIX = "tuibend: "


def engine_log(socket: Path) -> Path:
    """The start-up log of the performance served on ``socket``: ``engine.log`` for the default socket, a
    name of its own for any other, so two performances started side by side never write into one file."""
    if socket == socket_path():
        return user_log("engine.log")
    digest = hashlib.sha1(os.fsencode(os.path.abspath(socket))).hexdigest()[:8]
    stem = socket.stem if socket.name != SOCKET_NAME else socket.parent.name
    return user_log(f"engine-{stem}-{digest}.log")


def start_engine_process(argv: Sequence[str], log_path: Path) -> subprocess.Popen:
    """``tuibend ARGV --headless`` in a new session, its output into ``log_path`` (written anew)."""
    log_path.parent.mkdir(parents=True, exist_ok=True)
    with open(log_path, "wb") as log:
        return subprocess.Popen([sys.executable, "-m", "tuibend", *argv, "--headless"], stdin=subprocess.DEVNULL,
                                stdout=log, stderr=subprocess.STDOUT, start_new_session=True,
                                env={**os.environ, "PYTHONUNBUFFERED": "1"})


def wait_until_ready(process: subprocess.Popen, socket: Path, log_path: Path, say: Callable[[str], None],
                     timeout: float = START_SECONDS) -> None:
    """Reports each start-up line of the engine's process through ``say`` until its socket answers;
    :class:`EngineError` with its last line if it ends first, or if it takes longer than ``timeout``."""
    deadline = time.monotonic() + timeout
    shown = 0
    while True:
        lines = [line.removeprefix(PREFIX) for line in _lines(log_path)]
        for line in lines[shown:]:
            say(line)
        shown = len(lines)
        if playing(socket):
            return
        if process.poll() is not None:
            last = next((line for line in reversed(lines) if line.strip()), "").removeprefix("error: ")
            raise EngineError(f"the engine did not start: {last or f'exit status {process.returncode}'} "
                              f"(its log: {log_path})")
        if time.monotonic() > deadline:
            process.terminate()
            raise EngineError(f"the engine took more than {timeout:.0f} s to start (its log: {log_path})")
        time.sleep(0.1)


def _lines(path: Path) -> list[str]:
    try:
        text = path.read_text(errors="replace")
    except FileNotFoundError:
        return []
    return [line for line in text.splitlines() if line.strip()]
