"""What the model hears in a rest and how loud it answers: a noise gate and a level match.

A microphone never gives digital silence. Its floor has a loudness, and a timbre model fed that
loudness with the last note's pitch keeps a quiet drone of that note through every rest. The
:class:`NoiseGate` decides, frame by frame, whether the player is playing: its threshold follows
the input's measured floor (or is set by hand), it opens at once and closes only after a short
hold below a lower threshold (hysteresis: a note's tail does not chatter), and when it closes the
model hears its own silence (the loudness floor it was trained with) while the output fades over
the release. A scene that wants bends to sound through rests (a drone) skips the fade.

The :class:`LevelMatch` keeps the output at the player's level: a slow gain that follows the
ratio of the dry input's level to the output's while the player plays, so a model (or a loudness
map) that answers 10 dB low is heard at the player's level, and dynamics within a phrase pass;
the :class:`Ceiling` stops a trained attack burst from rising far above the player.

These are the reference and what an offline render runs; where the native kernel renders the engine's blocks it
runs their twin in C (:mod:`tuibend.native.dynamics`), held equal to them within float32 rounding by the tests.
"""

from __future__ import annotations

import collections
import math
from dataclasses import dataclass

import numpy as np

from tuibend.errors import InputError

# The analysis' loudness scale (v3: A-weighted power, dB) sits about 20 dB above dBFS: white noise at
# -60 dBFS RMS reads -37 dB, a sine at -20 dBFS RMS -1 dB (measured).
MAX_FLOOR_DB = -20.0  # no floor louder than white noise at about -43 dBFS: above that is playing
INITIAL_FLOOR_DB = -30.0  # the floor assumed until one is measured (a quiet room, about -53 dBFS)
FLOOR_WINDOW_S = 2.0  # the floor is the quietest 100 ms stretch (its median) of the last two seconds...
FLOOR_RISE_DB_PER_S = 3.0  # ...rising no faster than this once learned, so a long held note is not a floor
FLOOR_CHUNKS = round(FLOOR_WINDOW_S / 0.1)  # the 100 ms stretches the floor is the quietest of
GATE_LIMITS_DB = (-80.0, 20.0)  # a hand-set threshold must lie here
ATTACK_SAMPLES = 32  # the ceiling's gain falls within this many samples


@dataclass(frozen=True)
class GateSettings:
    """How the gate decides. ``threshold_db`` None: ``margin_db`` above the measured floor."""

    enabled: bool = True
    threshold_db: float | None = None  # a fixed opening threshold on the analysis' loudness scale
    margin_db: float = 10.0  # the automatic threshold's distance above the floor
    hysteresis_db: float = 6.0  # closes this far below where it opens
    hold_ms: float = 20.0
    release_ms: float = 80.0  # the output falls 60 dB over this, then to silence

    def __post_init__(self) -> None:
        for name in ("margin_db", "hysteresis_db", "hold_ms", "release_ms"):
            value = getattr(self, name)
            if not math.isfinite(value) or value < 0:
                raise InputError(f"gate {name.removesuffix('_db').removesuffix('_ms')}: {value} must be "
                                 f"a finite number of at least 0")
        low, high = GATE_LIMITS_DB
        if self.threshold_db is not None and not low <= self.threshold_db <= high:
            raise InputError(f"gate threshold {self.threshold_db} dB: allowed {low:g} to {high:g}")


def parse_gate(text: str) -> GateSettings:
    """'auto' (follow the floor), 'off', or a fixed threshold in dB ('-35')."""
    text = text.strip().lower()
    if text == "auto":
        return GateSettings()
    if text == "off":
        return GateSettings(enabled=False)
    try:
        value = float(text)
    except ValueError:
        raise InputError(f"gate {text!r}: use 'auto', 'off' or a threshold in dB such as -35") from None
    return GateSettings(threshold_db=value)


class NoiseGate:
    """Per-frame gate over the analysis' loudness: the model's loudness and an output gain per frame.

    Stateful, so a stream gated block by block equals the whole signal gated at once.
    """

    def __init__(self, settings: GateSettings, frame_rate: float, silence_db: float):
        self.frame_rate = frame_rate
        self.silence_db = silence_db  # the model's own silence: its loudness floor
        self.chunk_frames = max(1, round(0.1 * frame_rate))
        self.learning_frames = round(FLOOR_WINDOW_S * frame_rate)
        self.rise_per_frame = FLOOR_RISE_DB_PER_S / frame_rate
        self.offset_db = 0.0  # moved by a key: raises or lowers the threshold, whichever way it is set
        self.configure(settings)
        self.reset()

    def configure(self, settings: GateSettings) -> None:
        """New settings (a scene's); the measured floor and the gate's state carry on."""
        self.settings = settings
        self.hold_frames = round(settings.hold_ms * self.frame_rate / 1000.0)
        self.release_db_per_frame = 60.0 / max(settings.release_ms * self.frame_rate / 1000.0, 1.0)

    def reset(self) -> None:
        self.floor_db: float | None = None
        self._minima: collections.deque[float] = collections.deque(maxlen=FLOOR_CHUNKS)
        self._quietest = math.inf  # min(self._minima), kept as it changes (once a chunk, not every frame)
        self._chunk: list[float] = []
        self._frames = 0
        self.is_open = False
        self._below = 0
        self._gain_db = -math.inf

    @property
    def threshold_db(self) -> float:
        """Where the gate opens now (on the analysis' loudness scale)."""
        if self.settings.threshold_db is not None:
            return self.settings.threshold_db + self.offset_db
        floor = INITIAL_FLOOR_DB if self.floor_db is None else self.floor_db
        return floor + self.settings.margin_db + self.offset_db

    def _track_floor(self, level: float) -> None:
        """The first seconds learn the floor (up to a quiet room's, so a player who starts at once is not
        taken for it); after them it falls at once to a quieter floor and rises slowly to a louder one.
        Digital silence is no microphone's floor: from it (an input connected late, a file's silent
        start) the floor is learned afresh, as in the first seconds."""
        self._frames += 1
        self._chunk.append(level)
        if len(self._chunk) == self.chunk_frames:
            ordered = sorted(self._chunk)
            self._minima.append(ordered[len(ordered) // 2])  # the median: a stream's padded first frame is no floor
            self._quietest = min(self._minima)
            self._chunk = []
        if not self._minima:
            self.floor_db = INITIAL_FLOOR_DB
            return
        quietest = self._quietest
        if self._frames <= self.learning_frames or self.floor_db <= self.silence_db + 1.0:
            self.floor_db = min(quietest, INITIAL_FLOOR_DB)
        elif quietest < self.floor_db:
            self.floor_db = quietest
        else:
            self.floor_db = min(quietest, self.floor_db + self.rise_per_frame)
        self.floor_db = min(max(self.floor_db, self.silence_db), MAX_FLOOR_DB)

    def process(self, loudness_db: np.ndarray, levels_db: np.ndarray | None = None) -> tuple[np.ndarray, np.ndarray]:
        """(the loudness the model hears, the output gain) for each frame. ``levels_db``: the player's
        own loudness, which the gate listens to, where ``loudness_db`` was mapped into the model's range."""
        model_db, gains, _ = self.frames(loudness_db, levels_db)
        return model_db, np.array(gains, np.float32)

    def frames(self, loudness_db: np.ndarray, levels_db: np.ndarray | None = None
               ) -> tuple[np.ndarray, list[float], list[bool]]:
        """:meth:`process` with the gains as a list (each a float32's value), and whether the player played at each
        frame: a block's few frames are decided in plain floats (the engine's every numpy call pays for caches gone
        cold between blocks). A gate turned off still decides (the level match learns only from what is played,
        not from the room between notes) but changes nothing."""
        model_db = np.array(loudness_db, np.float32)
        levels = (model_db if levels_db is None else np.asarray(levels_db, np.float32)).tolist()
        gains, closed, played = [1.0] * len(levels), [], [True] * len(levels)
        hysteresis, enabled = self.settings.hysteresis_db, self.settings.enabled
        for i, level in enumerate(levels):
            if not math.isfinite(level):
                level = self.silence_db
            self._track_floor(level)
            threshold = self.threshold_db
            if level >= threshold:
                self.is_open, self._below = True, 0
            elif self.is_open and level < threshold - hysteresis:
                self._below += 1
                if self._below > self.hold_frames:
                    self.is_open = False
            if self.is_open:
                self._gain_db = 0.0
                continue  # gains[i] is 1 already
            played[i] = False
            if not enabled:
                continue
            closed.append(i)
            self._gain_db -= self.release_db_per_frame
            gains[i] = 0.0 if self._gain_db <= -60.0 else float(np.float32(10.0 ** (self._gain_db / 20.0)))
        if closed:
            model_db[closed] = self.silence_db
        return model_db, gains, played


def frame_gains_to_samples(gains: np.ndarray, previous: float, hop: int) -> np.ndarray:
    """Per-sample gains ramping linearly from each frame's gain to the next (no zipper, no click).

    The output of frame i is heard one hop after its input (the model's own delay), so the ramp
    into frame i's gain spans frame i's samples, starting from the gain before it.
    """
    if previous == 1.0 and gains.min() == 1.0:
        return np.ones(len(gains) * hop, np.float32)  # playing: nothing to shape
    points = np.concatenate([[previous], gains]).astype(np.float32)
    return (points[:-1, None] + (points[1:] - points[:-1])[:, None] * _ramp(hop)[None, :]).reshape(-1)


def rms_db(samples: np.ndarray) -> float:
    """RMS level in dBFS (-inf for silence)."""
    if not (isinstance(samples, np.ndarray) and samples.dtype == np.float32 and samples.ndim == 1):
        samples = np.asarray(samples, np.float32).reshape(-1)
    power = float(np.dot(samples, samples)) / len(samples) if len(samples) else 0.0
    return 10.0 * math.log10(power) if power > 0 else -math.inf


_RAMPS: dict[int, np.ndarray] = {}


def _ramp(length: int) -> np.ndarray:
    """(1..length) / length, kept per length: a gain glides across a block without allocating a new one."""
    ramp = _RAMPS.get(length)
    if ramp is None:
        ramp = _RAMPS[length] = np.arange(1, length + 1, dtype=np.float32) / length
    return ramp


def _glide(audio: np.ndarray, start: float, end: float, length: int | None = None) -> np.ndarray:
    """``audio`` times a gain moving linearly from ``start`` to ``end`` over ``length`` samples (all of them
    by default), then holding ``end``."""
    if start == end:
        return audio if end == 1.0 else audio * np.float32(end)
    length = len(audio) if length is None else min(length, len(audio))
    if length == len(audio):  # the whole block glides: no held part to fill
        return audio * (start + (end - start) * _ramp(length))
    gain = np.full(len(audio), end, np.float32)
    gain[:length] = start + (end - start) * _ramp(length)
    return audio * gain


class LevelMatch:
    """A slow gain that brings the output's level to the dry input's while the player plays.

    Updated only from blocks the player plays throughout (the gate's decision, which a gate turned off
    still makes) and where both levels are clearly above silence; moves with a time constant of a few
    seconds (a phrase's dynamics pass through) and stays within ``limit_db`` of 0 (a bend that silences
    the model is not boosted into its noise).
    """

    def __init__(self, sample_rate: float, initial_db: float = 0.0, time_constant_s: float = 2.0,
                 limit_db: float = 30.0, enabled: bool = True):
        self.sample_rate = sample_rate
        self.time_constant_s = time_constant_s
        self.limit_db = limit_db
        self.enabled = enabled
        self.initial_db = float(np.clip(initial_db, -limit_db, limit_db))
        self.reset()

    def reset(self) -> None:
        self.gain_db = self.initial_db if self.enabled else 0.0
        self._heard_s = 0.0
        self._applied = 10.0 ** (self.gain_db / 20.0)

    def process(self, dry: np.ndarray, audio: np.ndarray, playing: bool, dry_db: float | None = None) -> np.ndarray:
        """``audio`` at the matched level (a ramp from the last block's gain to this one's)."""
        if not self.enabled:
            return audio
        if playing:
            dry_db = rms_db(dry) if dry_db is None else dry_db
            out_db = rms_db(audio) + 20.0 * math.log10(self._applied) if self._applied > 0 else -math.inf
            if dry_db > -70.0 and out_db > -80.0:
                # quick while it has heard little (the first notes find the level), then slow
                self._heard_s += len(audio) / self.sample_rate
                time_constant = min(self.time_constant_s, max(0.25, self._heard_s))
                step = 1.0 - math.exp(-len(audio) / (time_constant * self.sample_rate))
                self.gain_db = min(max(self.gain_db + step * (dry_db - out_db), -self.limit_db), self.limit_db)
        target = 10.0 ** (self.gain_db / 20.0)
        start, self._applied = self._applied, target
        return _glide(audio, start, target)


class Ceiling:
    """Holds the output within ``headroom_db`` of the dry input's level, block by block.

    A model may answer an onset with a burst (a flute's trained chiff came out 8-10 dB over the
    held note); the level match's slow gain cannot catch that. Where the block's output rises more
    than the headroom above the input, it is brought down at once; the gain then recovers at
    ``recovery_db_per_s``, in a ramp across each block (no zipper). The headroom is 2 dB: a 10 ms
    frame can still peak above its block's level, and at 3 dB the bundled choir's attacks rose 3.2 dB
    over its held notes (measured, ``bench/sound.py``).
    """

    def __init__(self, sample_rate: float, headroom_db: float = 2.0, recovery_db_per_s: float = 40.0):
        self.sample_rate = sample_rate
        self.headroom_db = headroom_db
        self.recovery_db_per_s = recovery_db_per_s
        self.reset()

    def reset(self) -> None:
        self.reduction_db = 0.0
        self._applied = 1.0

    def onset(self) -> None:
        """A new note starts from no reduction (gliding up across its first block, from wherever the last
        note's release left it): a release the ceiling caught (the player's sound falls faster than the model's,
        so it reads as a burst) would otherwise hold the next note down for as long as it takes to recover."""
        self.reduction_db = 0.0

    def process(self, dry: np.ndarray, audio: np.ndarray, playing: bool, dry_db: float | None = None) -> np.ndarray:
        self.reduction_db = min(0.0, self.reduction_db + self.recovery_db_per_s * len(audio) / self.sample_rate)
        if playing:
            dry_db = rms_db(dry) if dry_db is None else dry_db
            excess = rms_db(audio) + self.reduction_db - dry_db - self.headroom_db
            if math.isfinite(excess) and excess > 0:
                self.reduction_db -= excess
        target = 10.0 ** (self.reduction_db / 20.0)
        start, self._applied = self._applied, target
        # down within 2 ms (a burst is caught as it starts), back up across the block
        return _glide(audio, start, target, ATTACK_SAMPLES if target < start else None)


class Dynamics:
    """The gate and the level match around a model step, as the engine and an offline render use them.

    :meth:`hear` turns a block's analysed loudness into what the model hears (and keeps the block's
    output gains); :meth:`shape` applies those gains (unless the scene is a drone) and the level match.
    """

    def __init__(self, gate: NoiseGate, level: LevelMatch, hop: int):
        self.gate = gate
        self.level = level
        self.ceiling = Ceiling(level.sample_rate)
        self.hop = hop
        self._gains: list[float] = []  # the output gain of each frame heard last
        self._played: list[bool] = []  # and whether the player played at it
        self._shaped = 0  # of the frames heard last, how many :meth:`shape` has taken
        self._last_gain, self._last_played = 0.0, False

    @classmethod
    def for_model(cls, config, gate: GateSettings | None = None, level_match: bool = True,
                  makeup_db: float = 0.0) -> Dynamics:
        """For a model's rates and loudness floor (``config``: a :class:`~tuibend.model.config.ModelConfig`)."""
        from tuibend.dsp.flavours import LOUDNESS_FLAVOURS

        silence = -LOUDNESS_FLAVOURS[config.loudness].range_db
        return cls(NoiseGate(gate or GateSettings(), config.frame_rate, silence),
                   LevelMatch(config.sample_rate, makeup_db, enabled=level_match), config.hop)

    def reset(self) -> None:
        self.gate.reset()
        self.level.reset()
        self.ceiling.reset()
        self._gains, self._played, self._shaped = [], [], 0
        self._last_gain, self._last_played = 0.0, False

    def hear(self, loudness_db: np.ndarray, levels_db: np.ndarray | None = None) -> np.ndarray:
        """What the model hears of ``loudness_db``; the gate listens to ``levels_db`` (the player's
        own loudness) where given."""
        model_db, self._gains, self._played = self.gate.frames(loudness_db, levels_db)
        self._shaped = 0
        return model_db

    def shape(self, audio: np.ndarray, dry: np.ndarray, drone: bool = False) -> np.ndarray:
        """The output of the frames heard last, or of their next ``len(audio)`` samples: a render whose
        model steps in long blocks shapes them in the engine's shorter ones (the level match and the
        ceiling act once a block)."""
        frames = max(1, len(audio) // self.hop)
        taken, self._shaped = slice(self._shaped, self._shaped + frames), self._shaped + frames
        gains, played = self._gains[taken], self._played[taken]
        playing = bool(played) and all(played)  # what the level match and the ceiling follow
        unity = bool(gains) and min(gains) >= 1.0 and self._last_gain == 1.0
        if not drone and not unity:  # fading, closed, or just opened
            audio = audio * frame_gains_to_samples(np.array(gains, np.float32), self._last_gain,
                                                   self.hop)[:len(audio)]
        if gains:
            if played[-1] and not (playing and self._last_played):
                self.ceiling.onset()  # the player started in this block
            self._last_gain, self._last_played = gains[-1], played[-1]
        dry_db = rms_db(dry) if playing and self.level.enabled else None
        audio = self.level.process(dry, audio, playing, dry_db)
        if self.level.enabled and not drone:
            audio = self.ceiling.process(dry, audio, playing, dry_db)
        return audio
