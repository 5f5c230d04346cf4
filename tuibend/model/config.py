"""The human-readable description of a timbre model: sizes, rates and scalings."""

from __future__ import annotations

import json
import math
from dataclasses import asdict, dataclass, field, fields
from pathlib import Path

from tuibend.dsp.flavours import LOUDNESS_FLAVOURS
from tuibend.errors import TuibendError

FORMAT_NAME = "tuibend-model"
FORMAT_VERSION = 1
INPUT_KEYS = ("ld_scaled", "f0_scaled")

SIZES = {
    # magenta-ddsp's solo_instrument.gin: 4.8 M parameters.
    "solo": {"ch": 512, "layers_per_stack": 3, "rnn_channels": 512},
    # ddsp-vst's real-time size: 1.9 M parameters.
    "small": {"ch": 256, "layers_per_stack": 1, "rnn_channels": 512},
}


class ModelFormatError(TuibendError, ValueError):
    """A model folder or its config is missing, unreadable or inconsistent."""


@dataclass(frozen=True)
class DecoderConfig:
    """The RnnFcDecoder: an FC stack per input, a GRU, an FC stack, a dense output."""

    input_keys: tuple[str, ...] = INPUT_KEYS
    ch: int = 512
    layers_per_stack: int = 3
    rnn_channels: int = 512
    n_harmonics: int = 60
    n_noise_bands: int = 65


# What a model may ask for: every published DDSP configuration fits well inside these.
SCALAR_LIMITS = {"sample_rate": (8000, 96000), "frame_rate": (10, 1000), "f0_range": (1.0, 1000.0),
                 "noise_initial_bias": (-100.0, 100.0), "reverb_length": (1, 4 * 96000),
                 "output_gain_db": (-40.0, 40.0)}
DECODER_LIMITS = {"ch": (1, 4096), "layers_per_stack": (1, 16), "rnn_channels": (1, 4096), "n_harmonics": (1, 512),
                  "n_noise_bands": (1, 1024)}


@dataclass(frozen=True)
class ModelConfig:
    """Everything needed to rebuild a model's graph; the weights live beside it."""

    name: str = "model"
    sample_rate: int = 16000
    frame_rate: int = 250
    decoder: DecoderConfig = field(default_factory=DecoderConfig)
    loudness: str = "v3"
    f0_range: float = 127.0
    amp_resample_method: str = "window"
    noise_initial_bias: float = -5.0
    reverb: bool = True
    reverb_length: int = 48000
    # The output's level, measured once the model is trained (``tuibend calibrate``): the median offset
    # of its renders' loudness against their inputs' over the training split, taken out.
    output_gain_db: float = 0.0
    source: dict = field(default_factory=dict)

    @property
    def hop(self) -> int:
        """Audio samples per model frame."""
        return self.sample_rate // self.frame_rate

    @property
    def output_gain(self) -> float:
        """The output gain as a factor on the synthesised audio."""
        return 10.0 ** (self.output_gain_db / 20.0)

    @property
    def ld_range(self) -> float:
        """dB range that maps loudness to the decoder's ``ld_scaled`` input."""
        return LOUDNESS_FLAVOURS[self.loudness].ld_range

    def validate(self, where: str = "config") -> ModelConfig:
        """Raises :class:`ModelFormatError` naming the inconsistent fields. Sizes and rates are bounded
        before anything is allocated from them (a hostile config asked for 10^9 layers, or 10^12 Hz)."""
        problems = []
        for name, (low, high) in SCALAR_LIMITS.items():
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value) \
                    or not low <= value <= high:
                problems.append(f"{name} {value!r} is outside {low:g}..{high:g}")
        for name, (low, high) in DECODER_LIMITS.items():
            value = getattr(self.decoder, name)
            if not low <= value <= high:
                problems.append(f"decoder.{name} {value} is outside {low}..{high}")
        if problems:
            raise ModelFormatError(f"{where}: " + "; ".join(problems))
        if self.sample_rate % self.frame_rate:
            problems.append(f"sample_rate {self.sample_rate} is not a multiple of frame_rate {self.frame_rate}")
        if self.loudness not in LOUDNESS_FLAVOURS:
            problems.append(f"loudness {self.loudness!r} is not one of {sorted(LOUDNESS_FLAVOURS)}")
        if self.amp_resample_method not in ("window", "linear"):
            problems.append(f"amp_resample_method {self.amp_resample_method!r} is not 'window' or 'linear'")
        if set(self.decoder.input_keys) - set(INPUT_KEYS) or not self.decoder.input_keys:
            problems.append(f"decoder.input_keys {list(self.decoder.input_keys)} must be drawn from {list(INPUT_KEYS)}")
        for name in ("ch", "layers_per_stack", "rnn_channels", "n_harmonics", "n_noise_bands"):
            if getattr(self.decoder, name) < 1:
                problems.append(f"decoder.{name} must be a positive integer")
        if problems:
            raise ModelFormatError(f"{where}: " + "; ".join(problems))
        return self

    def to_json(self) -> str:
        """The config file's text, with its format name and version."""
        body = {"format": FORMAT_NAME, "format_version": FORMAT_VERSION, **asdict(self)}
        body["decoder"]["input_keys"] = list(self.decoder.input_keys)
        return json.dumps(body, indent=2) + "\n"

    @classmethod
    def from_json(cls, text: str, where: str = "config.json") -> ModelConfig:
        """Parses and validates a config file; every fault names the file and the field."""
        try:
            body = json.loads(text)
        except json.JSONDecodeError as error:
            raise ModelFormatError(f"{where}: not valid JSON ({error})") from None
        if not isinstance(body, dict) or body.get("format") != FORMAT_NAME:
            raise ModelFormatError(f"{where}: field 'format' must be {FORMAT_NAME!r}")
        version = body.get("format_version")
        if version != FORMAT_VERSION:
            raise ModelFormatError(f"{where}: format_version {version!r} is not supported (this tuibend reads "
                                   f"{FORMAT_VERSION})")
        decoder = body.get("decoder", {})
        if not isinstance(decoder, dict):
            raise ModelFormatError(f"{where}: field 'decoder' must be a table of sizes")
        try:
            decoder_config = DecoderConfig(**{**_checked(decoder, DecoderConfig, f"{where}: decoder."),
                                              "input_keys": tuple(decoder.get("input_keys", INPUT_KEYS))})
            top = _checked({k: v for k, v in body.items() if k not in ("format", "format_version", "decoder")},
                           cls, f"{where}: ")
            return cls(**top, decoder=decoder_config).validate(where)
        except TypeError as error:
            raise ModelFormatError(f"{where}: {error}") from None

    @classmethod
    def read(cls, path: Path) -> ModelConfig:
        """Reads ``config.json`` from a file path."""
        try:
            text = Path(path).read_text(encoding="utf-8")
        except OSError as error:
            raise ModelFormatError(f"{path}: cannot read the model config ({error.strerror})") from None
        except UnicodeDecodeError as error:
            raise ModelFormatError(f"{path}: not UTF-8 text ({error.reason} at byte {error.start})") from None
        return cls.from_json(text, str(path))


def _checked(values: dict, cls: type, prefix: str) -> dict:
    """Keeps known fields, refusing unknown ones and values of the wrong type."""
    known = {f.name: f for f in fields(cls)}
    result = {}
    for key, value in values.items():
        if key not in known:
            raise ModelFormatError(f"{prefix}{key}: unknown field (known: {', '.join(sorted(known))})")
        if key in ("decoder", "input_keys"):
            continue
        expected = {"int": int, "float": (int, float), "str": str, "bool": bool, "dict": dict}.get(
            str(known[key].type).split("[")[0])
        if expected is not None and (not isinstance(value, expected) or (expected is int and isinstance(value, bool))):
            raise ModelFormatError(f"{prefix}{key}: expected {known[key].type}, got {value!r}")
        result[key] = value
    return result
