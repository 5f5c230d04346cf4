"""A keyboard voice: MIDI notes, pitch bend, velocity and pressure turned into the model's controls.

A DDSP model is played by two curves, f0 and loudness. :class:`KeyboardVoice` draws them from a keyboard
the way a monophonic synthesizer does: last-note priority with legato glide (portamento), pitch bend over a
settable range, vibrato (rate, delay, and depth from the mod wheel), and a loudness envelope (attack, decay,
sustain, release) whose level comes from the velocity, or from channel pressure or a breath or expression
controller once one moves. Levels are placed in the model's own trained range (:func:`loudness_range`):
a velocity of 127 reaches the loudness the model's training held at its 97th percentile, and each decade
of velocity under it takes :data:`VELOCITY_DB` off.

Messages arrive from the MIDI thread (:meth:`receive`: an append, never a wait); the model thread draws a
block of frames at a time (:meth:`render`), applying the messages queued before it. Plain numpy.
"""

from __future__ import annotations

import collections
import math
from dataclasses import dataclass

import numpy as np

from tuibend.dsp.plain import hz_to_midi, midi_to_hz
from tuibend.errors import InputError

MOD_WHEEL = 1
# Loudness per decade of velocity: a model's output moves about a third as much as its loudness input
# (measured on the bundled choir), so velocity 30 sits 31 dB under 127 on the way in and 8-10 dB on the way out.
VELOCITY_DB = 50.0


@dataclass(frozen=True)
class VoiceSettings:
    """How the keyboard plays the model (times in ms; the pitch bend's range in semitones)."""

    attack_ms: float = 10.0
    decay_ms: float = 300.0
    sustain_db: float = -3.0  # the held level, under the note's peak
    release_ms: float = 150.0  # the level falls 60 dB over this after note off
    glide_ms: float = 0.0  # portamento between legato notes (0: none)
    bend_range: float = 2.0
    vibrato_rate_hz: float = 5.5
    vibrato_depth_cents: float = 40.0  # at the mod wheel's top (the wheel at 0: none)
    vibrato_delay_ms: float = 250.0  # a held note's vibrato fades in after this
    pressure_cc: int | None = None  # a controller that sets the level once it moves (2 breath, 11 expression)

    def __post_init__(self) -> None:
        for name in ("attack_ms", "decay_ms", "release_ms", "glide_ms", "bend_range", "vibrato_rate_hz",
                     "vibrato_depth_cents", "vibrato_delay_ms"):
            value = getattr(self, name)
            if not math.isfinite(value) or value < 0:
                raise InputError(f"keyboard {name}: {value} must be a finite number of at least 0")
        if not math.isfinite(self.sustain_db) or self.sustain_db > 0:
            raise InputError(f"keyboard sustain_db: {self.sustain_db} must be at most 0")
        if self.pressure_cc is not None and not 0 <= self.pressure_cc <= 127:
            raise InputError(f"keyboard pressure_cc: {self.pressure_cc} is not a controller number (0 to 127)")


SETTING_NAMES = ("attack_ms", "decay_ms", "sustain_db", "release_ms", "glide_ms", "bend_range", "vibrato_rate_hz",
                 "vibrato_depth_cents", "vibrato_delay_ms", "pressure_cc")
# the short names of --keyboard "attack=5,release=300,cc=2"
SHORT_NAMES = {"attack": "attack_ms", "decay": "decay_ms", "sustain": "sustain_db", "release": "release_ms",
               "glide": "glide_ms", "bend": "bend_range", "vibrato": "vibrato_rate_hz",
               "depth": "vibrato_depth_cents", "delay": "vibrato_delay_ms", "cc": "pressure_cc"}


def settings_from_table(table: dict, where: str) -> VoiceSettings:
    """Voice settings from a scene's ``[keyboard]`` table (or parsed options): known names, numbers."""
    values = {}
    for name, value in table.items():
        field_name = name if name in SETTING_NAMES else SHORT_NAMES.get(name)
        if field_name is None:
            raise InputError(f"{where}: unknown setting {name!r} (settings: {', '.join(SETTING_NAMES)})")
        if isinstance(value, bool) or not isinstance(value, int | float):
            raise InputError(f"{where}.{name}: expected a number, got {value!r}")
        if field_name == "pressure_cc" and value != int(value):
            raise InputError(f"{where}.{name}: expected a controller number, got {value!r}")
        values[field_name] = int(value) if field_name == "pressure_cc" else float(value)
    try:
        return VoiceSettings(**values)
    except InputError as error:
        raise InputError(f"{where}: {error}") from None


def settings_table(settings: VoiceSettings) -> dict:
    """What :func:`settings_from_table` reads back: the settings that are not the defaults."""
    default = VoiceSettings()
    return {name: value for name in SETTING_NAMES if (value := getattr(settings, name)) != getattr(default, name)}


def parse_settings(text: str) -> VoiceSettings:
    """``"attack=5,release=300,cc=2"`` (short or full names) as settings."""
    table = {}
    for item in filter(None, (part.strip() for part in text.split(","))):
        name, equals, value = item.partition("=")
        try:
            table[name.strip()] = float(value)
        except ValueError:
            raise InputError(f"keyboard: {item!r} is not NAME=NUMBER") from None
        if not equals:
            raise InputError(f"keyboard: {item!r} is not NAME=NUMBER")
    return settings_from_table(table, "keyboard")


def loudness_range(statistics, floor_db: float) -> tuple[float, float]:
    """(softest, full): the loudness no note goes under (20 dB above the model's silence) and that of a
    velocity-127 note: the model's training loudness at its 97th percentile (-3 dB without statistics)."""
    quantiles, references = statistics.loudness_quantiles, statistics.quantile_references
    full = -3.0 if quantiles is None or references is None else float(np.interp(0.97, references, quantiles))
    return floor_db + 20.0, full


class KeyboardVoice:
    """One monophonic voice at ``frame_rate`` frames a second; silent (``floor_db``) until a note plays.

    ``resting_f0_hz`` is the pitch before the first note (the model's mean: its first note speaks at once)."""

    def __init__(self, frame_rate: int, floor_db: float, soft_db: float, full_db: float,
                 settings: VoiceSettings | None = None, resting_f0_hz: float = 220.0):
        self.frame_rate = frame_rate
        self.floor_db, self.soft_db, self.full_db = floor_db, soft_db, full_db
        self.settings = settings or VoiceSettings()
        self.resting_f0_hz = resting_f0_hz
        self._queue: collections.deque[tuple[str, int, int]] = collections.deque()
        self.reset()

    def reset(self) -> None:
        self._queue.clear()
        self._held: list[int] = []  # keys down, the last pressed last
        self._velocity = 100
        self._pressure: int | None = None  # from aftertouch or the pressure controller, once it moves
        self._pitch = float(hz_to_midi(self.resting_f0_hz))  # MIDI note number, gliding
        self._target = self._pitch
        self._glide_step = 0.0
        self._bend = 0.0  # semitones
        self._wheel = 0.0  # 0..1
        self._amplitude = 0.0  # the envelope, 0..1
        self._stage = "idle"  # attack, decay, sustain, release, idle
        self._frames_held = 0
        self._phase = 0.0

    # ----- the MIDI thread -----------------------------------------------------------------------

    def receive(self, kind: str, number: int, value: int) -> bool:
        """Queues a decoded channel message (:mod:`tuibend.midi.messages` kinds); False if the voice does
        not play it (the message is left for other uses, such as a fader)."""
        if kind in ("note_on", "note_off", "pitchbend", "pressure") or (
                kind == "cc" and number in (MOD_WHEEL, self.settings.pressure_cc)):
            self._queue.append((kind, number, value))
            return True
        return False

    # ----- the model thread ----------------------------------------------------------------------

    @property
    def sounding(self) -> bool:
        return self._stage != "idle"

    def render(self, frames: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """The next ``frames`` frames: f0 (Hz), loudness (dB) and confidence (1 while a note sounds)."""
        while self._queue:
            self._apply(*self._queue.popleft())
        f0 = np.empty(frames, np.float32)
        loudness = np.empty(frames, np.float32)
        confidence = np.empty(frames, np.float32)
        for index in range(frames):
            f0[index] = self._next_pitch()
            level = self._next_amplitude()
            loudness[index] = max(self.floor_db, self._level_db() + 20.0 * math.log10(level)) if level > 1e-6 \
                else self.floor_db
            confidence[index] = 1.0 if self.sounding else 0.0
        return f0, loudness, confidence

    def _apply(self, kind: str, number: int, value: int) -> None:
        if kind == "note_on":
            legato = bool(self._held) and self._stage != "release"
            if number in self._held:
                self._held.remove(number)
            self._held.append(number)
            self._velocity = max(1, value)
            self._glide_to(float(number), legato)
            if not legato:
                self._stage, self._frames_held = "attack", 0
        elif kind == "note_off":
            if number in self._held:
                self._held.remove(number)
            if self._held:  # back to the key still held (last-note priority)
                self._glide_to(float(self._held[-1]), True)
            elif self._stage != "idle":
                self._stage = "release"
        elif kind == "pitchbend":
            self._bend = (value - 8192) / 8192 * self.settings.bend_range
        elif kind == "pressure" or (kind == "cc" and number == self.settings.pressure_cc):
            self._pressure = value
        elif kind == "cc" and number == MOD_WHEEL:
            self._wheel = value / 127

    def _glide_to(self, note: float, legato: bool) -> None:
        self._target = note
        glide_frames = self.settings.glide_ms * self.frame_rate / 1000.0
        if not legato or glide_frames < 1.0:
            self._pitch = note
        else:
            self._glide_step = (note - self._pitch) / glide_frames

    def _level_db(self) -> float:
        """The note's peak loudness: velocity, or pressure once a pressure control has moved."""
        amount = (self._pressure if self._pressure is not None else self._velocity) / 127
        return max(self.soft_db, self.full_db + VELOCITY_DB * math.log10(max(amount, 1e-3)))

    def _next_pitch(self) -> float:
        settings = self.settings
        if self._pitch != self._target:  # a glide covers any interval in glide_ms, evenly
            self._pitch += self._glide_step
            if (self._target - self._pitch) * self._glide_step <= 0:
                self._pitch = self._target
        vibrato = 0.0
        if self._wheel > 0 and self.sounding:
            delay = settings.vibrato_delay_ms * self.frame_rate / 1000.0
            fade = min(1.0, max(0.0, (self._frames_held - delay) / max(delay, 1.0))) if delay > 0 else 1.0
            vibrato = fade * self._wheel * settings.vibrato_depth_cents / 100.0 * math.sin(self._phase)
        self._phase = (self._phase + 2 * math.pi * settings.vibrato_rate_hz / self.frame_rate) % (2 * math.pi)
        return midi_to_hz(self._pitch + self._bend + vibrato)

    def _next_amplitude(self) -> float:
        settings, rate = self.settings, self.frame_rate
        self._frames_held += 1
        if self._stage == "attack":
            self._amplitude += 1000.0 / max(settings.attack_ms * rate, 1.0)
            if self._amplitude >= 1.0:
                self._amplitude, self._stage = 1.0, "decay"
        elif self._stage == "decay":
            sustain = 10.0 ** (settings.sustain_db / 20.0)
            step = 1.0 - math.exp(-1000.0 / max(settings.decay_ms / 3.0 * rate, 1e-3))
            self._amplitude += (sustain - self._amplitude) * step
            if abs(self._amplitude - sustain) < 1e-3:
                self._amplitude, self._stage = sustain, "sustain"
        elif self._stage == "release":
            self._amplitude *= 10.0 ** (-3.0 * 1000.0 / max(settings.release_ms * rate, 1e-3))  # 60 dB in release
            if self._amplitude < 1e-3:
                self._amplitude, self._stage = 0.0, "idle"
        return self._amplitude
