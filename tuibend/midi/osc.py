"""OSC remote control over UDP, for a tablet, a phone or another program.

Addresses (scenes and bends count from 1, as on screen):

- ``/tuibend/scene <int>``: recall scene N;
- ``/tuibend/scene/name <string>``: recall the scene of that name;
- ``/tuibend/bend/<n>/<param> <float>``: move parameter ``param`` (``proportion`` or a transform
  parameter) of bend n, in the parameter's own units, clamped to its range;
- ``/tuibend/panic``; ``/tuibend/bypass <0|1>``;
- ``/tuibend/gain <float>``: the output gain, dB (within +-24); ``/tuibend/gate/offset <float>``: the
  gate's threshold moved by that many dB (within +-30);
- ``/tuibend/transport/play``, ``/pause``, ``/toggle``; ``/tuibend/transport/seek <float>`` (seconds): a
  prepared file's transport.

Takes are not started from OSC: a datagram would name a file to write on this machine.

The server binds 127.0.0.1 unless a host is named: control from another machine is a choice.
A message that cannot be applied becomes a line in :attr:`OscServer.notices`, never an exception.
Every datagram's structure is checked before python-osc parses it (:func:`datagram_fault`): one
hostile bundle (an element size of -4) once sent its parser into an endless loop.
"""

from __future__ import annotations

import collections
import re
import struct
import threading

from pythonosc.dispatcher import Dispatcher
from pythonosc.osc_server import BlockingOSCUDPServer

from tuibend.control import TRANSPORT_ACTIONS, Panic, Recall, SetBypass, SetGain, SetGate, SetParam, Transport
from tuibend.midi.errors import OscError
from tuibend.midi.target import ControlTarget, parameter_range

DEFAULT_OSC_PORT = 8000  # what TouchOSC and most controller apps send to unless told otherwise
_BEND = re.compile(r"^/tuibend/bend/(\d+)/(\w+)$")
MAX_DATAGRAM = 8192  # far above any control message; a bigger one is refused unread
MAX_BUNDLE_DEPTH = 4
_TYPE_SIZES = {"i": 4, "f": 4, "s": None, "S": None, "b": None, "h": 8, "d": 8, "t": 8, "c": 4, "r": 4, "m": 4,
               "T": 0, "F": 0, "N": 0, "I": 0, "[": 0, "]": 0}


def _padded_string(data: bytes, start: int) -> int | None:
    """The offset after a NUL-terminated string padded to 4 bytes, or None if it does not fit."""
    end = data.find(b"\0", start)
    if end < 0:
        return None
    after = (end + 4) & ~3
    return after if after <= len(data) else None


def _is_utf8(data: bytes, start: int) -> bool:
    """Whether the NUL-terminated string at ``start`` is UTF-8 (python-osc decodes it so, and fails otherwise)."""
    try:
        data[start:data.index(b"\0", start)].decode("utf-8")
    except UnicodeDecodeError:
        return False
    return True


def _message_fault(data: bytes) -> str | None:
    after = _padded_string(data, 0)
    if after is None:
        return "an address that does not end"
    if not _is_utf8(data, 0):
        return "an address that is not UTF-8"
    if after == len(data):
        return None  # no type tags: an old-style message without arguments
    if data[after:after + 1] != b",":
        return "no type tag string"
    tags_end = _padded_string(data, after)
    if tags_end is None:
        return "a type tag string that does not end"
    offset = tags_end
    for tag in data[after + 1:data.index(b"\0", after)].decode("ascii", "replace"):
        if tag not in _TYPE_SIZES:
            return f"an unknown type tag {tag!r}"
        size = _TYPE_SIZES[tag]
        if size is None:
            if tag == "b":
                if offset + 4 > len(data):
                    return "a blob without its size"
                (length,) = struct.unpack(">i", data[offset:offset + 4])
                if length < 0 or offset + 4 + length > len(data):
                    return f"a blob of {length} bytes in a {len(data)}-byte datagram"
                offset += 4 + ((length + 3) & ~3)
            else:
                end = _padded_string(data, offset)
                if end is None:
                    return "a string argument that does not end"
                if not _is_utf8(data, offset):
                    return "a string argument that is not UTF-8"
                offset = end
        else:
            offset += size
        if offset > len(data):
            return "arguments longer than the datagram"
    return None


def datagram_fault(data: bytes, depth: int = 0) -> str | None:
    """Why a datagram is not a well-formed OSC message or bundle (None: it is), checked without
    trusting any size in it: sizes are bounded by the datagram, bundles nest at most four deep."""
    if len(data) > MAX_DATAGRAM:
        return f"{len(data)} bytes (at most {MAX_DATAGRAM})"
    if len(data) == 0 or len(data) % 4:
        return f"{len(data)} bytes, not a positive multiple of 4"
    if data.startswith(b"#bundle\0"):
        if depth >= MAX_BUNDLE_DEPTH:
            return f"bundles nested more than {MAX_BUNDLE_DEPTH} deep"
        offset = 16  # the tag and the time tag
        if len(data) < offset:
            return "a bundle without its time tag"
        while offset < len(data):
            if offset + 4 > len(data):
                return "a bundle element without its size"
            (size,) = struct.unpack(">i", data[offset:offset + 4])
            if size <= 0 or size % 4 or offset + 4 + size > len(data):
                return f"a bundle element of {size} bytes at byte {offset}"
            fault = datagram_fault(data[offset + 4:offset + 4 + size], depth + 1)
            if fault is not None:
                return fault
            offset += 4 + size
        return None
    if data[:1] != b"/":
        return "neither a message (an address starting with /) nor a bundle"
    return _message_fault(data)


class _CheckedServer(BlockingOSCUDPServer):
    """Hands python-osc only datagrams that :func:`datagram_fault` passes; reports, never prints."""

    def __init__(self, address, dispatcher, report):
        self.report = report
        super().__init__(address, dispatcher)

    def verify_request(self, request, client_address) -> bool:
        fault = datagram_fault(request[0])
        if fault is not None:
            self.report(f"OSC from {client_address[0]}:{client_address[1]}: refused a datagram of "
                        f"{len(request[0])} bytes ({fault})")
        return fault is None

    def handle_error(self, request, client_address) -> None:  # the standard one prints a traceback on screen
        import sys

        self.report(f"OSC from {client_address[0]}:{client_address[1]}: {sys.exc_info()[1]!r}")


class OscServer:
    """Listens on ``host``:``port`` (port 0: any free one; see :attr:`address`) on its own thread."""

    def __init__(self, target: ControlTarget, host: str = "127.0.0.1", port: int = DEFAULT_OSC_PORT):
        self.target = target
        self.notices: collections.deque[str] = collections.deque(maxlen=100)
        dispatcher = Dispatcher()
        for address, handler in (("/tuibend/scene", self._scene), ("/tuibend/scene/name", self._scene_name),
                                  ("/tuibend/panic", self._panic), ("/tuibend/bypass", self._bypass),
                                  ("/tuibend/gain", self._gain), ("/tuibend/gate/offset", self._gate),
                                  *((f"/tuibend/transport/{action}", self._transport) for action in TRANSPORT_ACTIONS)):
            dispatcher.map(address, self._guarded(handler))
        dispatcher.set_default_handler(self._guarded(self._other))
        if not 0 <= port <= 65535:
            raise OscError(f"OSC: port {port} is not a UDP port (0 to 65535)")
        try:
            self._server = _CheckedServer((host, port), dispatcher, self.notices.append)
        except (OSError, OverflowError) as error:
            raise OscError(f"OSC: cannot listen on {host}:{port} ({getattr(error, 'strerror', None) or error})") \
                from None
        self.address: tuple[str, int] = self._server.server_address[:2]
        self.status = f"OSC: listening on {self.address[0]}:{self.address[1]}"
        self._closing = False
        self._thread = threading.Thread(target=self._serve, name="tuibend-osc", daemon=True)
        self._thread.start()

    def _serve(self) -> None:
        """The listener; should it ever fail, it is reported and started again."""
        while not self._closing:
            try:
                self._server.serve_forever(poll_interval=0.2)
            except Exception as error:
                self.notices.append(f"OSC: the listener failed ({error!r}) and was restarted")

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
        if not self.target.apply(Recall(int(number) - 1), "osc"):
            return f"no scene {number} (scenes 1..{len(self.target.scenes)})"
        return None

    def _scene_name(self, address: str, name: str) -> str | None:
        names = [scene.name for scene in self.target.scenes]
        if name not in names:
            return f"no scene named {name!r}"
        self.target.apply(Recall(names.index(name)), "osc")
        return None

    def _panic(self, address: str, *args) -> None:
        self.target.apply(Panic(), "osc")

    def _bypass(self, address: str, on) -> None:
        self.target.apply(SetBypass(bool(float(on))), "osc")

    def _gain(self, address: str, db) -> None:
        self.target.apply(SetGain(float(db)), "osc")

    def _gate(self, address: str, db) -> None:
        self.target.apply(SetGate(float(db)), "osc")

    def _transport(self, address: str, *args) -> None:
        action = address.rsplit("/", 1)[1]
        seconds = float(args[0]) if action == "seek" else 0.0
        self.target.apply(Transport(action, seconds), "osc")

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
        self.target.apply(SetParam(bend, name, min(high, max(low, float(value)))), "osc")
        return None

    def retarget(self, target: ControlTarget) -> None:
        """Steers another engine from now on (the interface swapped models or inputs)."""
        self.target = target

    def close(self) -> None:
        self._closing = True
        self._server.shutdown()
        self._server.server_close()
        self._thread.join(timeout=5)

    def __enter__(self) -> OscServer:
        return self

    def __exit__(self, *exc) -> None:
        self.close()


class OscTelemetry:
    """Sends the performance's state as OSC to ``host``:``port`` (a controller's displays, motorised faders,
    another program), at most ten times a second and only what changed since the last send.

    Addresses (bends count from 1, as on screen): ``/tuibend/scene <string>``, ``/tuibend/bend/<n>/<param>
    <float>`` (the fader's target), ``/tuibend/level/in`` and ``/tuibend/level/out <float>`` (dBFS),
    ``/tuibend/f0 <float>`` (Hz, 0 when the gate is closed), ``/tuibend/gate <0|1>``, ``/tuibend/bypass <0|1>``.
    """

    def __init__(self, target, host: str = "127.0.0.1", port: int = DEFAULT_OSC_PORT + 1, seconds: float = 0.1):
        from pythonosc.udp_client import SimpleUDPClient

        if not 0 < port <= 65535:
            raise OscError(f"OSC out: port {port} is not a UDP port (1 to 65535)")
        try:
            self._client = SimpleUDPClient(host, port)
        except (OSError, ValueError) as error:
            raise OscError(f"OSC out: cannot send to {host}:{port} ({getattr(error, 'strerror', None) or error})") \
                from None
        self.address = (host, port)
        self.status = f"OSC out: telemetry to {host}:{port}"
        self.notices: collections.deque[str] = collections.deque(maxlen=100)
        self._sent: dict[str, object] = {}
        self._failed = False
        self.target = target
        self._closing = threading.Event()
        self._thread = threading.Thread(target=self._run, args=(seconds,), name="tuibend-osc-out", daemon=True)
        self._thread.start()

    def _run(self, seconds: float) -> None:
        while not self._closing.wait(seconds):
            try:
                self.send(self.target)
            except Exception as error:  # never into the thread's own report: said, and the next send tries again
                self.notices.append(f"OSC out: {type(error).__name__}: {error}")

    def values(self, engine) -> dict[str, object]:
        """Each address and its value, as the engine stands now."""
        telemetry = engine.telemetry
        values: dict[str, object] = {
            "/tuibend/scene": telemetry.scene, "/tuibend/level/in": round(telemetry.input_db, 1),
            "/tuibend/level/out": round(telemetry.output_db, 1),
            "/tuibend/f0": round(telemetry.f0_hz if telemetry.gate_open else 0.0, 1),
            "/tuibend/gate": int(telemetry.gate_open), "/tuibend/bypass": int(telemetry.bypass)}
        for (bend, name), (target, _) in engine.faders().items():
            values[f"/tuibend/bend/{bend + 1}/{name}"] = round(float(target), 4)
        return values

    def send(self, engine) -> int:
        """Sends what changed; how many messages went. A send that fails is said once, never raised."""
        changed = {address: value for address, value in self.values(engine).items()
                   if self._sent.get(address) != value}
        try:
            for address, value in changed.items():
                self._client.send_message(address, value)
        except OSError as error:
            if not self._failed:
                self.notices.append(f"OSC out: {self.address[0]}:{self.address[1]}: {error.strerror or error}")
            self._failed = True
            return 0
        self._sent.update(changed)
        self._failed = False
        return len(changed)

    def retarget(self, target) -> None:
        """Reports another engine from now on (the interface swapped models or inputs)."""
        self.target = target

    def close(self) -> None:
        self._closing.set()
        self._thread.join(timeout=5)
        self._client.close()
