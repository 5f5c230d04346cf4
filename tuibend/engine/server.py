"""The control socket: a performance served to the interfaces that attach to it.

The engine's process listens on a Unix socket in the user's runtime folder (0700, the socket 0600,
and each peer's user checked with ``SO_PEERCRED`` where the system has it). A client sends messages of
the control protocol (:mod:`tuibend.control`), one JSON line each, and receives the
performance's state ten times a second: the telemetry, the faders, the scene set when it changes.
A client that sends something that is not a message is told why and disconnected; the performance
plays on. Nothing here touches the audio: messages are applied as any controller's are, queued for the
model thread.
"""

from __future__ import annotations

import contextlib
import json
import os
import select
import socket
import struct
import threading
import time
from dataclasses import asdict
from pathlib import Path

from tuibend import __version__, places
from tuibend.control import MAX_LINE, ProtocolError, decode
from tuibend.engine.errors import EngineError
from tuibend.engine.performance import Performance
from tuibend.errors import TuibendError, describe

SOCKET_NAME = "control.sock"
STATE_SECONDS = 0.1  # state reaches each client ten times a second
SEND_TIMEOUT = 2.0  # a client that stops reading for this long is disconnected
MAX_CLIENTS = 16


def socket_path() -> Path:
    return places.runtime() / SOCKET_NAME


def peer_uid(connection: socket.socket) -> int | None:
    """The user of the process at the other end (Linux's SO_PEERCRED; None where there is no such option)."""
    option = getattr(socket, "SO_PEERCRED", None)
    if option is None:
        return None
    _, uid, _ = struct.unpack("3i", connection.getsockopt(socket.SOL_SOCKET, option, struct.calcsize("3i")))
    return uid


def playing(path: Path) -> bool:
    """True when a performance answers on ``path``."""
    with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as probe:
        try:
            probe.connect(str(path))
        except OSError:
            return False
    return True


def _listen(path: Path) -> socket.socket:
    if len(os.fsencode(path)) >= 104:  # sun_path's size on macOS (108 on Linux)
        raise EngineError(f"{path}: too long a path for a control socket; set XDG_RUNTIME_DIR to a shorter folder")
    if playing(path):
        raise EngineError("a performance is already playing: `tuibend attach` shows it, `tuibend stop` ends it")
    with contextlib.suppress(FileNotFoundError):
        path.unlink()  # left by an engine that did not end cleanly
    listener = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    old_mask = os.umask(0o177)  # the socket is born 0600: no moment when another user could connect
    try:
        listener.bind(str(path))
    finally:
        os.umask(old_mask)
    listener.listen(MAX_CLIENTS)
    listener.settimeout(0.2)
    return listener


class ControlServer:
    """Serves ``performance`` on ``path`` (default: the user's runtime folder) from its own threads."""

    def __init__(self, performance: Performance, path: Path | None = None):
        self.performance = performance
        self.path = Path(path) if path is not None else socket_path()
        self._listener = _listen(self.path)
        self._closing = threading.Event()
        self._clients: set[socket.socket] = set()
        self._first_client = True
        self._thread = threading.Thread(target=self._accept, name="tuibend-control", daemon=True)
        self._thread.start()

    @property
    def clients(self) -> int:
        return len(self._clients)

    def _accept(self) -> None:
        while not self._closing.is_set():
            try:
                connection, _ = self._listener.accept()
            except TimeoutError:
                continue
            except OSError:
                return  # closed
            uid = peer_uid(connection)
            if (uid is not None and uid != os.getuid()) or len(self._clients) >= MAX_CLIENTS:
                self.performance.notify(
                    f"control socket: refused a connection from user {uid}" if uid != os.getuid()
                    else f"control socket: refused a connection (already {MAX_CLIENTS} clients)")
                connection.close()
                continue
            first, self._first_client = self._first_client, False
            self._clients.add(connection)
            threading.Thread(target=self._serve, args=(connection, first), name="tuibend-client", daemon=True).start()

    def _serve(self, connection: socket.socket, first: bool) -> None:
        view = ClientView(self.performance, first)
        connection.settimeout(SEND_TIMEOUT)
        pending = b""
        try:
            connection.sendall(view.state())
            next_state = time.monotonic() + STATE_SECONDS
            while not self._closing.is_set():
                readable, _, _ = select.select([connection], [], [], max(0.0, next_state - time.monotonic()))
                if readable:
                    data = connection.recv(65536)
                    if not data:
                        return  # the client left
                    pending += data
                    *lines, pending = pending.split(b"\n")
                    if len(pending) > MAX_LINE:
                        raise ProtocolError(f"a line of more than {MAX_LINE} bytes")
                    for line in lines:
                        if line.strip():
                            connection.sendall(self._answer(line))
                if time.monotonic() >= next_state:
                    connection.sendall(view.state())
                    next_state = time.monotonic() + STATE_SECONDS
        except ProtocolError as error:  # garbage: said, and the client is gone; the performance plays on
            with contextlib.suppress(OSError):
                connection.sendall(_line({"error": f"not a message of the protocol: {error}"}))
            self.performance.notify(f"control socket: a client sent {error}; disconnected")
        except OSError:
            pass  # the client vanished or stopped reading
        except Exception as error:  # a bug: that client goes, its traceback is kept, the performance plays on
            self.performance.notify(f"control socket: {describe(error)}")
        finally:
            self._clients.discard(connection)
            connection.close()

    def _answer(self, line: bytes) -> bytes:
        ask, message = decode(line)  # ProtocolError: the connection ends
        try:
            value = self.performance.apply(message, "tui")
        except TuibendError as error:
            return _line({"reply": ask, "error": str(error)})
        except Exception as error:  # a bug: its traceback kept in the log folder, the performance plays on
            return _line({"reply": ask, "error": describe(error)})
        return _line({"reply": ask, "value": value})

    def close(self) -> None:
        """Stops listening and disconnects every client (the performance itself is its owner's to stop)."""
        self._closing.set()
        self._listener.close()
        for connection in list(self._clients):
            with contextlib.suppress(OSError):
                connection.shutdown(socket.SHUT_RDWR)
        self._thread.join(timeout=2)
        with contextlib.suppress(FileNotFoundError):
            self.path.unlink()


def _line(table: dict) -> bytes:
    return json.dumps(table).encode() + b"\n"


def _midi_state(midi) -> dict | None:
    if midi is None:
        return None
    return {"status": midi.status, "monitor": [asdict(entry) for entry in list(midi.monitor)[-3:]],
            "learning": midi.learning}


class ClientView:
    """What one client has been sent: the scene set and scene are sent again only when they change."""

    def __init__(self, performance: Performance, first: bool):
        self.performance = performance
        self._scenes_key = None
        self._scene_key = None
        # the client that started the performance sees the notices of its start; one attaching later, new ones
        self._notices_seen = performance.notice_count - (len(performance.notices) if first else 0)

    def state(self) -> bytes:
        from tuibend.bend.scene import scene_to_toml

        performance = self.performance
        engine = performance.engine
        performance.collect_notices()
        state = {
            "version": __version__, "generation": performance.generation, "model": performance.model,
            "source": performance.source, "switching": performance.switching, "sample_rate": engine.sample_rate,
            "block": engine.block,
            "device": ({"name": engine.device.name, "sample_rate": engine.device.sample_rate}
                       if engine.device is not None else None),
            "widths": engine.widths, "telemetry": asdict(engine.telemetry),
            "faders": [[index, name, target, value] for (index, name), (target, value) in engine.faders().items()],
            "bypass": engine.bypass, "gain_db": engine.gain_db, "gate_offset_db": engine.gate_offset_db,
            "gate_threshold_db": engine.gate_threshold_db,
            "take": str(engine.take_path) if engine.take_path is not None else None,
            "scene_seconds": engine.scene_seconds, "notices": self._new_notices(),
            "midi": _midi_state(performance.midi),
            "osc": {"status": performance.osc.status} if performance.osc is not None else None,
        }
        scenes, scene = list(engine.scenes), engine.scene
        scenes_key = (performance.generation, tuple(map(id, scenes)))
        if scenes_key != self._scenes_key:
            self._scenes_key = scenes_key
            state["scenes"] = [scene_to_toml(each) for each in scenes]
            state["scene_paths"] = [str(path) if path is not None else None for path in engine.scene_paths]
        if (performance.generation, id(scene)) != self._scene_key:
            self._scene_key = (performance.generation, id(scene))
            state["scene"] = scene_to_toml(scene)
        return _line({"state": state})

    def _new_notices(self) -> list[str]:
        performance = self.performance
        fresh = min(performance.notice_count - self._notices_seen, len(performance.notices))
        self._notices_seen = performance.notice_count
        return list(performance.notices)[len(performance.notices) - fresh:]
