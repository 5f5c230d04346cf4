"""What a bend is, as plain data: the transforms' names, parameters and ranges, and :class:`Bend`.

Scenes, MIDI maps and the interface read these without TensorFlow; :mod:`tuibend.bend.transforms`
gives each transform its graph operation, :mod:`tuibend.bend.rig` runs them.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field

from tuibend.bend.selection import Selection
from tuibend.errors import TuibendError

MAX_SEED = 2**32 - 1  # what the unit selection's generator takes


@dataclass(frozen=True)
class TransformSpec:
    """A transform's name, its parameters with defaults and ranges, and what it does to the sound.

    ``derived`` names the per-frame rows its graph reads beyond its parameters (an oscillator's
    phase, a sample-and-hold's refresh frames); ``reads`` the rows its operation reads, in order (a
    parameter that only feeds a derived row is not read); ``memory`` transforms keep activations
    across frames.
    """

    name: str
    params: Mapping[str, tuple[float, float, float]]  # name -> (default, minimum, maximum)
    description: str
    derived: tuple[str, ...] = ()
    memory: bool = False
    reads: tuple[str, ...] = ()


SPECS: dict[str, TransformSpec] = {t.name: t for t in (
    TransformSpec("oscillate", {"freq": (2.0, 0.0, 60.0), "depth": (0.5, 0.0, 10.0)},
                  "an LFO on the units: a tremolo-like filter sweep at the rate, deeper with depth",
                  derived=("phase",), reads=("phase", "depth")),
    TransformSpec("threshold", {"thresh": (0.0, -10.0, 10.0)},
                  "binarises the units to the layer's extremes: buzzing, noisy artefacts; at fc2 it blows up into "
                  "noise with few units", reads=("thresh",)),
    TransformSpec("invert", {}, "1 - A: re-voices the spectrum; subtle on most layers"),
    TransformSpec("ablate", {}, "silences units: at fc1 a vibrato that deepens from 65% to 95%"),
    TransformSpec("scale", {"gain": (2.0, -10.0, 10.0)}, "multiplies the units: exaggerates (gain > 1), "
                  "flattens (< 1) or mirrors (< 0) what they encode", reads=("gain",)),
    TransformSpec("offset", {"amount": (1.0, -10.0, 10.0)}, "adds a constant: shifts brightness and balance "
                  "of harmonics and noise", reads=("amount",)),
    TransformSpec("clamp", {"low": (-1.0, -10.0, 10.0), "high": (1.0, -10.0, 10.0)},
                  "limits the units' range: tames and flattens dynamics of the timbre", reads=("low", "high")),
    TransformSpec("quantise", {"step": (0.5, 0.001, 10.0)}, "rounds the units to steps: stepped, "
                  "bit-crushed timbre changes", reads=("step",)),
    TransformSpec("noise", {"amount": (0.3, 0.0, 10.0)}, "adds fresh noise every frame: rough, breathy, "
                  "grainy", reads=("amount",)),
    TransformSpec("freeze", {"rate": (0.0, 0.0, 125.0)}, "sample-and-hold of the units (rate 0: held from the start): "
                  "a frozen or stepped timbre under a moving pitch", derived=("refresh",),
                  memory=True, reads=("refresh",)),
    TransformSpec("smooth", {"seconds": (0.3, 0.001, 10.0)}, "low-passes the units over time: the timbre lags "
                  "behind the playing, attacks blur", derived=("alpha",),
                  memory=True, reads=("alpha",)),
    TransformSpec("permute", {}, "units swap their activations: a scrambled, re-voiced timbre"),
)}


class BendError(TuibendError, ValueError):
    """A bend that this model cannot take (unknown point, transform or parameter)."""


@dataclass
class Bend:
    """One transform at one point on a proportion of its units."""

    point: str
    transform: str
    proportion: float = 0.5
    select: Selection = field(default_factory=Selection)
    seed: int = 0
    params: dict[str, float] = field(default_factory=dict)

    def parameter_names(self) -> list[str]:
        return ["proportion", *SPECS[self.transform].params]

    def value(self, name: str) -> float:
        if name == "proportion":
            return self.proportion
        return float(self.params.get(name, SPECS[self.transform].params[name][0]))


StructureKey = tuple


def structure_key(bends: list[Bend]) -> StructureKey:
    """What a compiled chain depends on: everything but fader and parameter values."""
    return tuple((bend.point, bend.transform, bend.select, bend.seed) for bend in bends)


def parameter_range(transform: str, name: str) -> tuple[float, float]:
    """A bend parameter's (minimum, maximum): the proportion's is [0, 1]."""
    if name == "proportion":
        return 0.0, 1.0
    return SPECS[transform].params[name][1:]


def check_bend(bend: Bend, widths: dict[str, int] | None, where: str = "bend") -> None:
    """Raises :class:`BendError` naming the first fault of a bend (its point only when ``widths`` are given)."""
    if widths is not None and bend.point not in widths:
        raise BendError(f"{where}.point: {bend.point!r} is not a bend point of this model "
                        f"(points: {', '.join(widths)})")
    if bend.transform not in SPECS:
        raise BendError(f"{where}.transform: {bend.transform!r} is unknown (allowed: {', '.join(SPECS)})")
    if not 0.0 <= bend.proportion <= 1.0:
        raise BendError(f"{where}.proportion: {bend.proportion} is outside [0, 1]")
    if not 0 <= bend.seed <= MAX_SEED:
        raise BendError(f"{where}.seed: {bend.seed} is outside 0..{MAX_SEED}")
    known = SPECS[bend.transform].params
    for name, value in bend.params.items():
        if name not in known:
            raise BendError(f"{where}.params.{name}: {bend.transform} takes "
                            f"{', '.join(known) if known else 'no parameters'}")
        low, high = known[name][1:]
        if not low <= value <= high:
            raise BendError(f"{where}.params.{name}: {value} is outside [{low}, {high}]")
