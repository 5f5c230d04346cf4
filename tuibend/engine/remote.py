"""An attached performance: the engine of another process, seen and steered through its control socket.

:class:`RemoteEngine` offers the interface what an :class:`~tuibend.engine.Engine` in its own process
does (the telemetry, the scene set, the faders, the control calls), so one interface drives either. A
call never waits for the engine, except the two that return what the engine made (a recorded lane, a
scene check's fault); what a call changes is shown at once and confirmed by the next state (0.1 s).
"""

from __future__ import annotations

import collections
import contextlib
import json
import socket
import threading
from dataclasses import dataclass
from pathlib import Path

from tuibend import __version__, control
from tuibend.bend.scene import Scene, scene_from_toml, scene_to_toml
from tuibend.engine.errors import EngineError
from tuibend.engine.telemetry import Telemetry
from tuibend.errors import TuibendError, describe

CONNECT_SECONDS = 5.0
REPLY_SECONDS = 5.0
STOP_SECONDS = 30.0


class NotPlaying(TuibendError, ConnectionError):
    """No performance answers on the control socket (or it went away)."""


@dataclass
class RemoteDevice:
    name: str
    sample_rate: int


class RemoteControlView:
    """An engine process's MIDI or OSC input as the interface shows it (status, recent messages, learn)."""

    def __init__(self, engine: RemoteEngine):
        self._engine = engine
        self.status = ""
        self.monitor: list[control.MonitorEntry] = []
        self.learning: tuple[int, str] | None = None
        self.notices: collections.deque[str] = collections.deque()  # reported through the performance's

    def learn(self, bend: int, name: str) -> None:
        self._engine.send(control.Learn(bend, name))

    def close(self) -> None:
        """The input belongs to the engine's process: it stays open."""


class RemoteEngine:
    """Connects to the performance at ``path`` and keeps its state up to date on a reader thread."""

    detachable = True  # the interface may end; the performance plays on

    def __init__(self, path: Path, timeout: float = CONNECT_SECONDS):
        self.path = Path(path)
        self._socket = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        self._socket.settimeout(timeout)
        try:
            self._socket.connect(str(path))
        except OSError as error:
            self._socket.close()
            raise NotPlaying(_not_playing(path, error)) from None
        self._reader = self._socket.makefile("rb")
        self._write_lock = threading.Lock()
        self._asked = 0
        self._replies: dict[int, dict] = {}
        self._replied = threading.Condition()
        self.connected = True
        self.ended: str | None = None  # why the connection ended
        self.scenes: list[Scene] = []
        self.scene_paths: list[Path | None] = []
        self.scene = Scene("unbent")
        self.notices: collections.deque[str] = collections.deque(maxlen=100)  # drained by the interface
        self.midi = self.osc = None
        self._state: dict = {}
        self._faders: dict[tuple[int, str], tuple[float, float]] = {}
        self._apply(self._read_state())  # the first state, before anything is shown
        self._socket.settimeout(None)
        self._thread = threading.Thread(target=self._read, name="tuibend-attached", daemon=True)
        self._thread.start()

    # ----- the connection ---------------------------------------------------------------------

    def _read_state(self) -> dict:
        try:
            line = self._reader.readline()
        except OSError as error:
            raise NotPlaying(_not_playing(self.path, error)) from None
        message = json.loads(line) if line else {}
        if "state" not in message:
            raise NotPlaying(f"{self.path}: {message.get('error', 'the performance closed the connection')}")
        if message["state"].get("version") != __version__:
            raise NotPlaying(f"{self.path}: the performance runs tuibend {message['state'].get('version')}, this is "
                             f"{__version__}; attach with the tuibend that started it, or stop it first")
        return message["state"]

    def _read(self) -> None:
        try:
            for line in self._reader:
                message = json.loads(line)
                if "state" in message:
                    self._apply(message["state"])
                elif "reply" in message:
                    with self._replied:
                        self._replies[message["reply"]] = message
                        self._replied.notify_all()
                elif "error" in message:
                    self.notices.append(f"the engine refused a message: {message['error']}")
        except (OSError, ValueError) as error:
            self.ended = str(error)
        except Exception as error:  # a state this interface cannot read: said, its traceback kept
            self.ended = describe(error)
        self.connected = False
        self.ended = self.ended or "the performance ended"
        with self._replied:
            self._replied.notify_all()

    def _apply(self, state: dict) -> None:
        if "scenes" in state:
            self.scenes[:] = [scene_from_toml(text, "the engine's scene") for text in state["scenes"]]
            self.scene_paths[:] = [Path(path) if path else None for path in state["scene_paths"]]
        if "scene" in state:
            scene = scene_from_toml(state["scene"], "the engine's scene")
            self.scene = next((each for each in self.scenes if each == scene), scene)
        self._faders = {(index, name): (target, value) for index, name, target, value in state["faders"]}
        self.telemetry = Telemetry(**state["telemetry"])
        self.notices.extend(state["notices"])
        self.midi = self._view(self.midi, state["midi"])
        self.osc = self._view(self.osc, state["osc"])
        self._state = state

    def _view(self, view: RemoteControlView | None, state: dict | None) -> RemoteControlView | None:
        if state is None:
            return None
        view = view or RemoteControlView(self)
        view.status = state["status"]
        view.monitor = [control.MonitorEntry(**entry) for entry in state.get("monitor", [])]
        learning = state.get("learning")
        view.learning = tuple(learning) if learning else None
        return view

    def send(self, message: control.Message, ask: int | None = None) -> None:
        if not self.connected:
            raise NotPlaying(f"the performance is gone ({self.ended})")
        with self._write_lock:
            try:
                self._socket.sendall(control.encode(message, ask))
            except OSError as error:
                self.connected = False
                raise NotPlaying(f"the performance is gone ({error.strerror or error})") from None

    def ask(self, message: control.Message, timeout: float = REPLY_SECONDS):
        """Sends ``message`` and waits for its reply's value; the engine's refusal as :class:`EngineError`."""
        with self._replied:
            self._asked += 1
            ask = self._asked
        self.send(message, ask)
        with self._replied:
            self._replied.wait_for(lambda: ask in self._replies or not self.connected, timeout)
            reply = self._replies.pop(ask, None)
        if reply is None:
            raise NotPlaying(f"the performance did not answer ({self.ended or 'no reply'})")
        if "error" in reply:
            raise EngineError(reply["error"])
        return reply["value"]

    def close(self) -> None:
        """Disconnects; the performance plays on."""
        self.connected = False
        with contextlib.suppress(OSError):
            self._socket.shutdown(socket.SHUT_RDWR)
        self._socket.close()

    # ----- what the interface reads -----------------------------------------------------------------

    @property
    def generation(self) -> int:
        return self._state["generation"]

    @property
    def labels(self) -> tuple[str, str]:
        return self._state["model"], self._state["source"]

    @property
    def sample_rate(self) -> int:
        return self._state["sample_rate"]

    @property
    def block(self) -> int:
        return self._state["block"]

    @property
    def device(self) -> RemoteDevice | None:
        device = self._state["device"]
        return RemoteDevice(**device) if device else None

    @property
    def widths(self) -> dict[str, int]:
        return self._state["widths"]

    @property
    def bypass(self) -> bool:
        return self._state["bypass"]

    @property
    def gain_db(self) -> float:
        return self._state["gain_db"]

    @property
    def gate_offset_db(self) -> float:
        return self._state["gate_offset_db"]

    @property
    def gate_threshold_db(self) -> float:
        return self._state["gate_threshold_db"]

    @property
    def take_path(self) -> Path | None:
        take = self._state["take"]
        return Path(take) if take else None

    @property
    def recording_take(self) -> bool:
        return self._state["take"] is not None

    @property
    def scene_seconds(self) -> float:
        return self._state["scene_seconds"]

    def faders(self) -> dict[tuple[int, str], tuple[float, float]]:
        return dict(self._faders)

    def target(self, bend: int, name: str) -> float:
        return self._faders[(bend, name)][0]

    # ----- what the interface asks (shown at once, confirmed by the next state) ------------------------------

    def _update(self, **values) -> None:
        self._state = {**self._state, **values}

    def set(self, bend: int, name: str, value: float, source: str = "tui") -> bool:
        if (bend, name) not in self._faders:
            return False
        self.send(control.SetParam(bend, name, float(value)))
        self._faders[(bend, name)] = (float(value), self._faders[(bend, name)][1])
        return True

    def recall(self, index: int, source: str = "tui", seconds: float | None = None) -> bool:
        if not 0 <= index < len(self.scenes):
            return False
        self.send(control.Recall(index, seconds))
        return True

    def load(self, scene: Scene, source: str = "tui", seconds: float | None = None) -> None:
        """Plays an edited scene; the engine checks it (its fault raised here as :class:`EngineError`)."""
        index = next((i for i, each in enumerate(self.scenes) if each is scene), None)
        morph = scene.morph_seconds if seconds is None else seconds
        self.ask(control.PlayScene(scene_to_toml(scene), index, morph))
        self.scene = scene

    def scene_saved(self, index: int, path: str | Path) -> bool:
        """Tells the performance where the scene at ``index`` was saved; a later attach finds it there."""
        if not 0 <= index < len(self.scene_paths):
            return False
        self.send(control.SceneSaved(index, str(path)))
        self.scene_paths[index] = Path(path)
        return True

    def panic(self, source: str = "tui") -> None:
        self.send(control.Panic())

    def set_bypass(self, on: bool, source: str = "tui") -> None:
        self.send(control.SetBypass(bool(on)))
        self._update(bypass=bool(on))

    def set_gain(self, db: float, source: str = "tui") -> None:
        self.send(control.SetGain(float(db)))
        self._update(gain_db=float(db))

    def set_gate_offset(self, db: float, source: str = "tui") -> None:
        self.send(control.SetGate(float(db)))
        moved = float(db) - self.gate_offset_db
        self._update(gate_offset_db=float(db), gate_threshold_db=self.gate_threshold_db + moved)

    def transport(self, action: str, source: str = "tui", seconds: float = 0.0) -> None:
        self.send(control.Transport(action, seconds))

    def record_lane(self, bend: int, name: str, source: str = "tui") -> None:
        self.send(control.RecordLane(bend, name))

    def stop_lane(self, bend: int, name: str, source: str = "tui"):
        """The lane the engine recorded (from the playing scene it sends back)."""
        scene = scene_from_toml(self.ask(control.StopLane(bend, name)), "the engine's scene")
        return scene.automation.get((bend, name))

    def start_take(self, path: str | Path) -> None:
        self.ask(control.StartTake(str(path)))
        self._update(take=str(path))

    def stop_take(self) -> None:
        self.send(control.StopTake())
        self._update(take=None)

    def switch(self, changes: dict) -> None:
        self.send(control.Switch(changes.get("model"), changes.get("input")))

    def stop(self, timeout: float = STOP_SECONDS) -> None:
        """Ends the performance and returns once the engine's process has finished the take and the log
        (it closes the socket last)."""
        self.ask(control.Stop())
        self._thread.join(timeout)
        if self._thread.is_alive():
            raise NotPlaying(f"the performance did not end within {timeout:.0f} s")

    def start(self) -> None:
        """The performance is already playing."""


def _not_playing(path: Path, error: OSError) -> str:
    if isinstance(error, PermissionError):
        return f"{path}: not yours to control ({error.strerror})"
    return f"no performance is playing here ({path}: {error.strerror or error}); start one with `tuibend play`"
