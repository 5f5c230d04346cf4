"""The one control protocol: every change a client may ask of a performance, as a typed message.

The interface (attached over the control socket), the replayed events log and the socket's own clients
(``tuibend stop``, ``tuibend status``) all speak it; :func:`apply` turns a message into the engine call
that queues it for the model thread, which applies it between blocks. On the wire a message is one line
of JSON, ``{"op": "set", "bend": 0, "name": "proportion", "value": 0.5}``, with an optional ``"id"``
that the reply carries back. :func:`decode` checks every field's type: a line that is not a message is
refused with the reason, never half applied.
"""

from __future__ import annotations

import json
import math
from dataclasses import MISSING, asdict, dataclass, fields
from typing import ClassVar

from tuibend.errors import TuibendError

MAX_LINE = 1 << 20  # bytes: far above any message (a scene's TOML is a few kilobytes)


@dataclass(frozen=True)
class MonitorEntry:
    """A MIDI message as the monitor shows it (the engine's status carries the newest): when
    (``time.monotonic``), from which port."""

    t: float
    port: str
    channel: int
    kind: str
    number: int
    value: int


class ProtocolError(TuibendError, ValueError):
    """A line on the control socket that is not a message of the protocol."""


@dataclass(frozen=True)
class SetParam:
    """Moves parameter ``name`` of bend ``bend`` (from 0) of the playing chain."""

    op: ClassVar[str] = "set"
    bend: int
    name: str
    value: float


@dataclass(frozen=True)
class Recall:
    """Recalls scene ``index`` (from 0) of the set, over its morph time unless ``seconds`` is given."""

    op: ClassVar[str] = "recall"
    index: int
    seconds: float | None = None


@dataclass(frozen=True)
class PlayScene:
    """Plays an edited scene (its TOML); ``index``, where given, is its place in the set, which it takes."""

    op: ClassVar[str] = "play_scene"
    scene: str
    index: int | None = None
    seconds: float = 0.0


@dataclass(frozen=True)
class SceneSaved:
    """The scene at ``index`` was saved to ``path``: where the set finds it from now on (a later attach, a
    save without a name)."""

    op: ClassVar[str] = "scene_saved"
    index: int
    path: str


@dataclass(frozen=True)
class Panic:
    op: ClassVar[str] = "panic"


@dataclass(frozen=True)
class SetGain:
    op: ClassVar[str] = "gain"
    db: float


@dataclass(frozen=True)
class SetGate:
    """The noise gate's threshold moved by ``db`` from where it is set."""

    op: ClassVar[str] = "gate"
    db: float


@dataclass(frozen=True)
class SetBypass:
    op: ClassVar[str] = "bypass"
    on: bool


@dataclass(frozen=True)
class Transport:
    """play, pause, toggle, or seek to ``seconds`` (a prepared file)."""

    op: ClassVar[str] = "transport"
    action: str
    seconds: float = 0.0


@dataclass(frozen=True)
class RecordLane:
    op: ClassVar[str] = "record_lane"
    bend: int
    name: str


@dataclass(frozen=True)
class StopLane:
    """Ends a lane's recording; the reply is the playing scene's TOML, the new lane in it."""

    op: ClassVar[str] = "stop_lane"
    bend: int
    name: str


@dataclass(frozen=True)
class StartTake:
    op: ClassVar[str] = "start_take"
    path: str


@dataclass(frozen=True)
class StopTake:
    op: ClassVar[str] = "stop_take"


@dataclass(frozen=True)
class Learn:
    """MIDI learn: the next control moved steers this parameter."""

    op: ClassVar[str] = "learn"
    bend: int
    name: str


@dataclass(frozen=True)
class Switch:
    """Prepares another model or input while the current one plays, then swaps to it."""

    op: ClassVar[str] = "switch"
    model: str | None = None
    input: str | None = None


@dataclass(frozen=True)
class Stop:
    """Ends the performance: the take finished and renamed, the events log flushed."""

    op: ClassVar[str] = "stop"


Message = (SetParam | Recall | PlayScene | SceneSaved | Panic | SetGain | SetGate | SetBypass | Transport
           | RecordLane | StopLane | StartTake | StopTake | Learn | Switch | Stop)
MESSAGES: dict[str, type] = {kind.op: kind for kind in Message.__args__}
TRANSPORT_ACTIONS = ("play", "pause", "toggle", "seek")

# What each annotated field may hold on the wire (bool is not a number here, though Python says it is).
_KINDS = {"int": (int,), "float": (int, float), "str": (str,), "bool": (bool,)}


def _field(kind: str, value, where: str):
    optional = kind.endswith(" | None")
    if value is None and optional:
        return None
    base = kind.removesuffix(" | None")
    if (isinstance(value, bool) and base != "bool") or not isinstance(value, _KINDS[base]):
        raise ProtocolError(f"{where}: expected {base}, got {value!r}")
    if base == "float":
        value = float(value)
        if not math.isfinite(value):
            raise ProtocolError(f"{where}: expected a finite number, got {value!r}")
    return value


def from_dict(table: dict) -> Message:
    """The message a decoded JSON object holds (its ``op`` and fields, nothing else)."""
    op = table.get("op")
    kind = MESSAGES.get(op) if isinstance(op, str) else None
    if kind is None:
        raise ProtocolError(f"unknown op {op!r} (ops: {', '.join(MESSAGES)})")
    names = [f.name for f in fields(kind)]
    unknown = set(table) - set(names) - {"op", "id"}
    if unknown:
        raise ProtocolError(f"{op}: unknown field {sorted(unknown)[0]!r} (fields: {', '.join(names) or 'none'})")
    values = {}
    for item in fields(kind):
        if item.name in table:
            values[item.name] = _field(item.type, table[item.name], f"{op}.{item.name}")
        elif item.default is MISSING:
            raise ProtocolError(f"{op}: missing field {item.name!r}")
    message = kind(**values)
    if isinstance(message, Transport) and message.action not in TRANSPORT_ACTIONS:
        raise ProtocolError(f"transport: action {message.action!r} (actions: {', '.join(TRANSPORT_ACTIONS)})")
    return message


def decode(line: bytes) -> tuple[int | None, Message]:
    """``(id, message)`` from one line; :class:`ProtocolError` for anything else."""
    if len(line) > MAX_LINE:
        raise ProtocolError(f"a line of {len(line)} bytes (at most {MAX_LINE})")
    try:
        table = json.loads(line)
    except (UnicodeDecodeError, ValueError) as error:
        raise ProtocolError(f"not JSON ({error})") from None
    if not isinstance(table, dict):
        raise ProtocolError(f"not a JSON object: {type(table).__name__}")
    ask = table.get("id")
    if ask is not None and (isinstance(ask, bool) or not isinstance(ask, int)):
        raise ProtocolError(f"id: expected int, got {ask!r}")
    return ask, from_dict(table)


def encode(message: Message, ask: int | None = None) -> bytes:
    table = {"op": message.op, **asdict(message)}
    if ask is not None:
        table["id"] = ask
    return json.dumps(table).encode() + b"\n"


def from_event(target: str, value, scene_names: list[str]) -> Message | None:
    """The message a logged control change replays as (None: one that does not replay, such as a take)."""
    if target == "scene":
        return Recall(scene_names.index(value)) if value in scene_names else None
    if target.startswith("bend") and "." in target and not isinstance(value, str):
        number, name = target[4:].split(".", 1)
        return SetParam(int(number) - 1, name, float(value)) if number.isdigit() else None
    if target == "transport" and isinstance(value, str):
        action, _, seconds = value.partition(" ")
        return Transport(action, float(seconds)) if action == "seek" else Transport(action)
    simple = {"bypass": lambda: SetBypass(bool(value)), "gain": lambda: SetGain(float(value)),
              "gate": lambda: SetGate(float(value)), "panic": Panic}
    return simple[target]() if target in simple else None


def apply(engine, message: Message, source: str):
    """Queues ``message`` on ``engine`` (what the model thread applies before its next block); the reply's
    value, where the message has one. Messages above one engine (switch, stop, learn, takes by name) are
    the performance's (:class:`tuibend.engine.performance.Performance`)."""
    from tuibend.bend.scene import scene_from_toml, scene_to_toml

    match message:
        case SetParam(bend, name, value):
            return engine.set(bend, name, value, source)
        case Recall(index, seconds):
            return engine.recall(index, source, seconds)
        case PlayScene(text, index, seconds):
            scene = scene_from_toml(text, "the scene sent")
            if index is not None and 0 <= index < len(engine.scenes):
                engine.scenes[index] = scene
            engine.load(scene, source, seconds)
            return True
        case SceneSaved(index, path):
            return engine.scene_saved(index, path)
        case Panic():
            engine.panic(source)
        case SetGain(db):
            engine.set_gain(db, source)
        case SetGate(db):
            engine.set_gate_offset(db, source)
        case SetBypass(on):
            engine.set_bypass(on, source)
        case Transport(action, seconds):
            engine.transport(action, source, seconds)
        case RecordLane(bend, name):
            engine.record_lane(bend, name, source)
        case StopLane(bend, name):
            engine.stop_lane(bend, name, source)
            return scene_to_toml(engine.current_scene())
        case StartTake(path):
            engine.start_take(path)
            return path
        case StopTake():
            path = engine.take_path
            engine.stop_take()
            return str(path) if path is not None else None
        case _:
            raise ProtocolError(f"{message.op}: not an engine message")
    return None
