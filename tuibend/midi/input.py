"""MIDI input: ports opened by name, all of them, or a virtual port that a controller or DAW connects to.

One thread of ours reads every port's queue every 2 ms, decodes and hands each message to the
:class:`Router` (a dictionary look-up and a non-blocking engine call). rtmidi's callbacks are not used: they
call Python from the MIDI system's thread, and a close from a busy interface thread while a call waited for
the interpreter freed the callback that call then read, killing the process (reproduced in the tests). The
engine applies controls once a block (16 ms), so reading every 2 ms adds nothing audible; it costs about 1.4 %
of a core while idle (3 % reading every millisecond, measured).
About once a second the same thread checks the port list: a controller unplugged mid-performance is
reported in :attr:`MidiInput.status` and :attr:`MidiInput.notices` while the performance goes on, and it is
reconnected when a port of that name returns. It also saves the global map after a learn.
"""

from __future__ import annotations

import collections
import threading
import time
from pathlib import Path

import rtmidi

from tuibend.control import MonitorEntry
from tuibend.midi.errors import MidiError
from tuibend.midi.mapfile import save_mappings
from tuibend.midi.mapping import Mapping
from tuibend.midi.messages import decode
from tuibend.midi.ports import api_name, close_clients, describe_ports, match_port, open_client
from tuibend.midi.router import Router
from tuibend.midi.target import ControlTarget

ALL_PORTS = "all"
VIRTUAL_PORT = "tuibend"  # the name of the port tuibend offers when no port is named
CLIENT_NAME = "tuibend-midi"  # beside the audio client "tuibend" on a JACK server
READ_SECONDS = 0.002  # how often the ports' queues are read


class MidiInput:
    """Listens to ``port`` (a name, ``"all"``, or None for a virtual port named ``tuibend``) through ``api``
    (an ``rtmidi.API_*``) and plays what arrives into ``target`` with ``mappings`` (None: the default
    map) and per-scene ``overrides``. With ``save_to``, learned mappings are written there.

    Raises :class:`MidiError` naming the port and the ports there are when a named port is absent.
    """

    def __init__(self, target: ControlTarget, port: str | None = None, api: int = rtmidi.API_UNSPECIFIED,
                 mappings: list[Mapping] | None = None, overrides: dict[str, list[Mapping]] | None = None, *,
                 save_to: str | Path | None = None, client_name: str = CLIENT_NAME, poll_seconds: float = 1.0,
                 keyboard=None):
        """``keyboard`` (a :class:`~tuibend.keyboard.KeyboardVoice`): notes, pitch bend, pressure and the mod
        wheel play it instead of any mapping."""
        self.port, self.api, self.client_name = port, api, client_name
        self.keyboard = keyboard
        self.save_to = Path(save_to) if save_to is not None else None
        self.poll_seconds = poll_seconds
        self.notices: collections.deque[str] = collections.deque(maxlen=100)
        self.status = ""
        self.router = Router(target, mappings, overrides, "midi", self._notice, self._learned)
        # Port name -> the client listening to it; clients whose port went away, for reuse. Only the
        # reader changes them once it runs.
        self._clients: dict[str, rtmidi.MidiIn] = {}
        self._idle: list[rtmidi.MidiIn] = []
        self._stop = threading.Event()
        self._unsaved = False
        self._probe: rtmidi.MidiIn | None = None
        self._reader: threading.Thread | None = None
        try:
            if port is None:
                name = f"{client_name}:{VIRTUAL_PORT}"
                client = open_client(api, client_name)
                client.open_virtual_port(VIRTUAL_PORT)
                self._clients[name] = client
                self.status = f"MIDI: virtual port {name} open ({api_name(api)})"
            else:
                self._probe = open_client(api, f"{client_name}-ports")
                ports = self._probe.get_ports()
                if port != ALL_PORTS and match_port(port, ports) is None:
                    raise MidiError(f"MIDI port {port!r} not found through {api_name(api)} "
                                    f"(ports: {describe_ports(ports)})")
                self._connect(ports)
        except BaseException:
            self.close()
            raise
        self._reader = threading.Thread(target=self._run, name="tuibend-midi", daemon=True)
        self._reader.start()

    # ----- what the interface reads and calls -----------------------------------------------------

    @property
    def monitor(self) -> collections.deque[MonitorEntry]:
        """Recent messages, newest last."""
        return self.router.monitor

    @property
    def mappings(self) -> list[Mapping]:
        return self.router.mappings

    @property
    def ports(self) -> list[str]:
        """The ports listened to now."""
        return list(self._clients)

    @property
    def learning(self) -> tuple[int, str] | None:
        return self.router.learning

    def learn(self, bend: int, name: str) -> None:
        """Arms learn: the next CC (or 14-bit pair) becomes the control of ``name`` of ``bend`` (from 0)."""
        self.router.learn(bend, name)
        self._notice(f"MIDI learn: move a control for bend {bend + 1} {name}")

    def cancel_learn(self) -> None:
        self.router.cancel_learn()

    # ----- the reader thread ----------------------------------------------------------------------

    def _run(self) -> None:
        next_check = time.monotonic() + self.poll_seconds
        while not self._stop.is_set():
            for name, client in list(self._clients.items()):
                while (event := client.get_message()) is not None:
                    self._receive(event[0], name)
            if self._unsaved and self.save_to is not None:
                self._save()
            if time.monotonic() >= next_check:
                next_check = time.monotonic() + self.poll_seconds
                if self._probe is not None:
                    try:
                        self._poll()
                    except rtmidi.RtMidiError as error:
                        self._notice(f"MIDI: {error}")
            time.sleep(READ_SECONDS)

    def _receive(self, data: list[int], port: str) -> None:
        message = decode(data)
        if message is None:
            return
        try:
            if self.keyboard is not None and self.keyboard.receive(message.kind, message.number, message.value):
                self.router.record(message, port)
            else:
                self.router.handle(message, port)
        except Exception as error:  # a control that cannot apply: report, and play on
            self._notice(f"MIDI {message.kind} {message.number}: {type(error).__name__}: {error}")

    def _notice(self, text: str) -> None:
        self.notices.append(text)

    def _learned(self, mapping: Mapping) -> None:
        self._notice(f"MIDI learned: {mapping.describe()}")
        self._unsaved = True

    def _save(self) -> None:
        self._unsaved = False
        try:
            save_mappings(self.router.mappings, self.save_to)
        except (OSError, MidiError) as error:
            self._notice(f"MIDI map not saved to {self.save_to}: {error}")

    def _poll(self) -> None:
        ports = self._probe.get_ports()
        for name in [name for name in self._clients if name not in ports]:
            client = self._clients.pop(name)
            client.close_port()
            self._idle.append(client)
            self._notice(f"MIDI port {name!r} is gone; playing on, and listening for it to return")
        self._connect(ports, returning=True)

    def _connect(self, ports: list[str], returning: bool = False) -> None:
        """Opens what is wanted and not yet open among ``ports``, then updates the status.

        A client unplugged earlier is reused: making or deleting one (a JACK client) holds the
        interpreter for some 30 ms, long enough to starve the audio; reopening a port takes 2 ms."""
        if self.port == ALL_PORTS:
            wanted = [port for port in ports if port not in self._clients]
        else:
            found = match_port(self.port, ports)
            wanted = [found] if found is not None and not self._clients else []
        for name in wanted:
            client = self._idle.pop() if self._idle else open_client(self.api, self.client_name)
            try:
                client.open_port(ports.index(name), "in")
            except rtmidi.RtMidiError as error:  # gone again between listing and opening
                client.close_port()
                self._idle.append(client)
                self._notice(f"MIDI port {name!r} could not be opened: {error}")
                continue
            self._clients[name] = client
            if returning:
                self._notice(f"MIDI port {name!r} connected")
        self._update_status()

    def _update_status(self) -> None:
        listening = ", ".join(repr(name) for name in self._clients)
        if listening:
            self.status = f"MIDI: listening to {listening}"
        elif self.port == ALL_PORTS:
            self.status = f"MIDI: no ports yet ({api_name(self.api)}); waiting for one"
        else:
            self.status = f"MIDI: {self.port!r} is not there; waiting for it"

    def retarget(self, target: ControlTarget) -> None:
        """Steers another engine from now on (the interface swapped models or inputs)."""
        self.router.target = target

    def close(self) -> None:
        """Stops the reader, closes every port, ends held-note glides."""
        self._stop.set()
        if self._reader is not None:
            self._reader.join(timeout=5)
        clients = [*self._clients.values(), *self._idle, *([self._probe] if self._probe is not None else [])]
        self._clients, self._idle, self._probe = {}, [], None
        close_clients(clients)
        self.router.close()

    def __enter__(self) -> MidiInput:
        return self

    def __exit__(self, *exc) -> None:
        self.close()
