"""OSC remote control over UDP, for a tablet, a phone or another program.

Addresses (scenes and bends count from 1, as on screen):

- ``/tuibend/scene <int>``: recall scene N;
- ``/tuibend/scene/name <string>``: recall the scene of that name;
- ``/tuibend/bend/<n>/<param> <float>``: move parameter ``param`` (``proportion`` or a transform
  parameter) of bend n, in the parameter's own units, clamped to its range;
- ``/tuibend/panic``; ``/tuibend/bypass <0|1>``.

The server binds 127.0.0.1 unless a host is named: control from another machine is a choice.
A message that cannot be applied becomes a line in :attr:`OscServer.notices`, never an exception.
"""

from __future__ import annotations

import collections
import re
import threading

from pythonosc.dispatcher import Dispatcher
from pythonosc.osc_server import BlockingOSCUDPServer

from tuibend.midi.errors import OscError
from tuibend.midi.target import ControlTarget, parameter_range

DEFAULT_OSC_PORT = 8000  # what TouchOSC and most controller apps send to unless told otherwise
_BEND = re.compile(r"^/tuibend/bend/(\d+)/(\w+)$")


class OscServer:
    """Listens on ``host``:``port`` (port 0: any free one; see :attr:`address`) on its own thread."""

    def __init__(self, target: ControlTarget, host: str = "127.0.0.1", port: int = DEFAULT_OSC_PORT):
        self.target = target
        self.notices: collections.deque[str] = collections.deque(maxlen=100)
        dispatcher = Dispatcher()
        for address, handler in (("/tuibend/scene", self._scene), ("/tuibend/scene/name", self._scene_name),
                                  ("/tuibend/panic", self._panic), ("/tuibend/bypass", self._bypass)):
            dispatcher.map(address, self._guarded(handler))
        dispatcher.set_default_handler(self._guarded(self._other))
        try:
            self._server = BlockingOSCUDPServer((host, port), dispatcher)
        except OSError as error:
            raise OscError(f"OSC: cannot listen on {host}:{port} ({error.strerror or error})") from None
        self.address: tuple[str, int] = self._server.server_address[:2]
        self.status = f"OSC: listening on {self.address[0]}:{self.address[1]}"
        self._thread = threading.Thread(target=self._server.serve_forever, kwargs={"poll_interval": 0.2},
                                        name="tuibend-osc", daemon=True)
        self._thread.start()

    def _guarded(self, handler):
        def handle(address: str, *args) -> None:
            try:
                problem = handler(address, *args)
            except (TypeError, ValueError) as error:
                problem = f"bad arguments {list(args)!r} ({error})"
            except Exception as error:  # never into the server's thread, whose report would garble the screen
                problem = f"{type(error).__name__}: {error}"
            if problem:
                self.notices.append(f"OSC {address}: {problem}")
        return handle

    def _scene(self, address: str, number) -> str | None:
        if not self.target.recall(int(number) - 1, "osc"):
            return f"no scene {number} (scenes 1..{len(self.target.scenes)})"
        return None

    def _scene_name(self, address: str, name: str) -> str | None:
        names = [scene.name for scene in self.target.scenes]
        if name not in names:
            return f"no scene named {name!r}"
        self.target.recall(names.index(name), "osc")
        return None

    def _panic(self, address: str, *args) -> None:
        self.target.panic("osc")

    def _bypass(self, address: str, on) -> None:
        self.target.set_bypass(bool(float(on)), "osc")

    def _other(self, address: str, *args) -> str | None:
        match = _BEND.match(address)
        if match is None:
            return "unknown address"
        bend, name = int(match[1]) - 1, match[2]
        (value,) = args
        try:
            low, high = sorted(parameter_range(self.target.scene, bend, name))
        except KeyError:
            return f"scene {self.target.scene.name!r} has no bend {bend + 1} with a parameter {name!r}"
        self.target.set(bend, name, min(high, max(low, float(value))), "osc")
        return None

    def close(self) -> None:
        self._server.shutdown()
        self._server.server_close()
        self._thread.join(timeout=5)

    def __enter__(self) -> OscServer:
        return self

    def __exit__(self, *exc) -> None:
        self.close()
