"""MIDI out: the pitch of what the player plays, as notes, to drive other instruments.

The engine hands each block's pitch, confidence and level to :meth:`PitchOut.observe` (an append on the model
thread); a thread of its own turns them into notes. A note starts when the noise gate is open and the
tracker's confidence reaches the threshold, at the nearest semitone, with pitch bend for the cents (over
``bend_range`` semitones, the receiver's default of 2); a pitch that moves more than three quarters of a
semitone from the note starts the next one; the note ends when the gate closes or the pitch is lost for
``release_frames`` frames. The velocity follows the player's loudness. On request the faders' values go out
as well, as the controls of the MIDI map that moves them (motorised faders follow, displays show them).
"""

from __future__ import annotations

import collections
import threading

import numpy as np
import rtmidi

from tuibend.dsp.plain import hz_to_midi
from tuibend.midi.errors import MidiError
from tuibend.midi.ports import api_name, describe_ports, match_port

OUT_CLIENT = "tuibend-midi-out"
VIRTUAL_OUT_PORT = "tuibend-out"
NOTE_CHANGE = 0.75  # semitones from the sounding note before the next note starts
FADER_SECONDS = 0.05  # the faders' values go out at most twenty times a second
LOUDNESS_FOR_FULL_VELOCITY = -6.0  # dB: the player's loudness that sends velocity 127; 60 dB under it, 1


class PitchOut:
    """Sends notes on ``channel`` (1-16) to ``port`` (a name, or None for a virtual port ``tuibend-out``)."""

    def __init__(self, target, port: str | None = None, api: int = rtmidi.API_UNSPECIFIED, channel: int = 1,
                 threshold: float = 0.5, bend_range: float = 2.0, release_frames: int = 3,
                 client_name: str = OUT_CLIENT, faders=None):
        """``target``: the engine whose blocks it hears (its ``observers``). ``faders`` (a
        :class:`~tuibend.midi.router.Router`): the faders' values are sent too, as the CCs its map reads."""
        self.faders = faders
        self._sent_controls: dict[tuple[int, int], int] = {}
        if not 1 <= channel <= 16:
            raise MidiError(f"MIDI out: channel {channel} (1 to 16)")
        self.channel, self.threshold, self.bend_range = channel - 1, threshold, bend_range
        self.release_frames = release_frames
        self.notices: collections.deque[str] = collections.deque(maxlen=100)
        try:
            self._out = rtmidi.MidiOut(api, client_name)
        except rtmidi.SystemError as error:
            raise MidiError(f"MIDI out: {api_name(api)} is not available ({error})") from None
        if port is None:
            self._out.open_virtual_port(VIRTUAL_OUT_PORT)
            self.status = f"MIDI out: virtual port {client_name}:{VIRTUAL_OUT_PORT} ({api_name(api)})"
        else:
            ports = self._out.get_ports()
            name = match_port(port, ports)
            if name is None:
                self._out.delete()
                raise MidiError(f"MIDI out: port {port!r} not found through {api_name(api)} "
                                f"(ports: {describe_ports(ports)})")
            self._out.open_port(ports.index(name))
            self.status = f"MIDI out: notes to {name}"
        self._frames: collections.deque[tuple[float, float, float, bool]] = collections.deque(maxlen=4096)
        self._wake = threading.Event()
        self._closing = False
        self._note: int | None = None
        self._bend = 8192
        self._unvoiced = 0
        self._thread = threading.Thread(target=self._run, name="tuibend-midi-out", daemon=True)
        self._thread.start()
        self.retarget(target)

    # ----- the model thread -------------------------------------------------------------------------

    def observe(self, block, gate_open: bool) -> None:
        """A block's frames: its player's pitch, confidence and loudness, and whether the gate is open."""
        pitches = block.pitch_hz if block.pitch_hz is not None else block.f0_hz
        for pitch, confidence, level in zip(pitches.tolist(), block.confidence.tolist(), block.level_db.tolist(),
                                            strict=True):
            self._frames.append((pitch, confidence, level, gate_open))
        self._wake.set()

    # ----- its own thread --------------------------------------------------------------------------------

    def _run(self) -> None:
        while not self._closing:
            self._wake.wait(FADER_SECONDS)
            self._wake.clear()
            try:
                while self._frames:
                    self._frame(*self._frames.popleft())
                if self.faders is not None:
                    self._send_faders()
            except Exception as error:  # reported; the next round tries again
                self.notices.append(f"MIDI out: {type(error).__name__}: {error}")
        self._end_note()

    def _send_faders(self) -> None:
        """Each fader's control where it now stands, when that changed (MSB and LSB for a 14-bit pair)."""
        for mapping, position in self.faders.positions():
            channel = (mapping.channel or 1) - 1
            if mapping.source == "cc14":
                value = round(position * 16383)
                controls = ((mapping.number, value >> 7), (mapping.number + 32, value & 0x7F))
            else:
                controls = ((mapping.number, round(position * 127)),)
            for number, value in controls:
                if self._sent_controls.get((channel, number)) != value:
                    self._sent_controls[(channel, number)] = value
                    self._out.send_message([0xB0 | channel, number, value])

    def _frame(self, pitch: float, confidence: float, level: float, gate_open: bool) -> None:
        voiced = gate_open and confidence >= self.threshold and pitch > 0
        if not voiced:
            self._unvoiced += 1
            if self._unvoiced >= self.release_frames:
                self._end_note()
            return
        self._unvoiced = 0
        midi = hz_to_midi(pitch)
        if self._note is not None and abs(midi - self._note) > NOTE_CHANGE:
            self._end_note()
        if self._note is None:
            self._note = int(np.clip(round(midi), 0, 127))
            self._send_bend(midi - self._note)
            velocity = int(np.clip(round(127 * (1 + (level - LOUDNESS_FOR_FULL_VELOCITY) / 60)), 1, 127))
            self._out.send_message([0x90 | self.channel, self._note, velocity])
        else:
            self._send_bend(midi - self._note)

    def _send_bend(self, semitones: float) -> None:
        value = int(np.clip(round(8192 + semitones / self.bend_range * 8192), 0, 16383))
        if value != self._bend:
            self._bend = value
            self._out.send_message([0xE0 | self.channel, value & 0x7F, value >> 7])

    def _end_note(self) -> None:
        if self._note is not None:
            self._out.send_message([0x80 | self.channel, self._note, 0])
            self._note = None

    def retarget(self, target) -> None:
        """Hears (and reports the faders of) another engine from now on (the interface swapped models or inputs)."""
        target.observers.append(self.observe)
        if self.faders is not None:
            self.faders.target = target

    def close(self) -> None:
        """Ends the note that sounds, then the port."""
        self._closing = True
        self._wake.set()
        self._thread.join(timeout=5)
        self._out.close_port()
        self._out.delete()
