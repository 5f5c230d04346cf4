"""Turns a magenta-ddsp solo-instrument folder (the colab's download) into a tuibend model.

Reads the gin config as text (executing nothing), the TensorFlow checkpoint by variable
name, and ``dataset_statistics.pkl`` through a restricted unpickler.
"""

from __future__ import annotations

import ast
import re
from dataclasses import replace
from pathlib import Path

import numpy as np

from tuibend.model.config import DecoderConfig, ModelConfig, ModelFormatError
from tuibend.model.layout import weight_shapes
from tuibend.model.safe_pickle import UnsafePickleError, restricted_loads
from tuibend.model.statistics import DatasetStatistics

_GIN_BINDING = re.compile(r"^([A-Za-z_][\w.]*)\s*=\s*(.*)$", re.S)


def parse_gin(text: str) -> dict[str, object]:
    """Bindings ``Name.param = value`` of an operative gin config, values as Python literals.

    References (``@synths.Harmonic()``) and other non-literals stay as their text.
    """
    bindings: dict[str, object] = {}
    statement = ""
    for line in text.splitlines():
        stripped = line.split("#", 1)[0].rstrip() if not line.lstrip().startswith("'") else line.rstrip()
        if not stripped.strip() and not statement:
            continue
        statement += (" " if statement else "") + stripped.strip()
        if statement.endswith("\\"):
            statement = statement[:-1].rstrip()
            continue
        if statement.count("(") > statement.count(")") or statement.count("[") > statement.count("]"):
            continue
        match = _GIN_BINDING.match(statement)
        if match and not statement.startswith(("import ", "from ")):
            name, value = match.groups()
            try:
                bindings[name] = ast.literal_eval(value)
            except (ValueError, SyntaxError):
                bindings[name] = value.strip()
        statement = ""
    return bindings


def find_checkpoint(folder: Path) -> Path:
    """The newest ``ckpt-N`` prefix in a folder, found by its files (no ``checkpoint`` file needed)."""
    numbers = sorted((int(m.group(1)), m.group(0)) for p in folder.glob("ckpt-*.index")
                     if (m := re.fullmatch(r"ckpt-(\d+)\.index", p.name)))
    if not numbers:
        raise ModelFormatError(f"{folder}: no checkpoint (expected ckpt-N.index and ckpt-N.data-* files)")
    prefix = folder / f"ckpt-{numbers[-1][0]}"
    if not list(folder.glob(f"{prefix.name}.data-*")):
        raise ModelFormatError(f"{folder}: {prefix.name}.index has no {prefix.name}.data-* file beside it")
    return prefix


def _gin(bindings: dict, key: str, default=None):
    return bindings.get(key, default)


def config_from_gin(bindings: dict, where: str, name: str) -> ModelConfig:
    """Checks the gin describes the solo-instrument architecture and reads its sizes."""
    def refuse(fault: str) -> ModelFormatError:
        return ModelFormatError(f"{where}: {fault}; tuibend imports the solo-instrument model (F0LoudnessPreprocessor, "
                                "RnnFcDecoder with a GRU, Harmonic + FilteredNoise [+ Reverb])")

    decoder = _gin(bindings, "Autoencoder.decoder", "")
    if "RnnFcDecoder" not in str(decoder):
        raise refuse(f"Autoencoder.decoder is {decoder or 'not set'}")
    encoder = _gin(bindings, "Autoencoder.encoder")
    if encoder not in (None, "None"):
        raise refuse(f"the model has an encoder ({encoder}): latent z inputs are not supported")
    rnn_type = _gin(bindings, "RnnFcDecoder.rnn_type", "gru")
    if rnn_type != "gru":
        raise refuse(f"RnnFcDecoder.rnn_type is {rnn_type!r}")
    input_keys = tuple(_gin(bindings, "RnnFcDecoder.input_keys", ("ld_scaled", "f0_scaled")))
    if set(input_keys) - {"ld_scaled", "f0_scaled"}:
        raise refuse(f"RnnFcDecoder.input_keys are {input_keys}")
    splits = dict(_gin(bindings, "RnnFcDecoder.output_splits", (("amps", 1), ("harmonic_distribution", 40))))
    if set(splits) != {"amps", "harmonic_distribution", "noise_magnitudes"} or splits["amps"] != 1:
        raise refuse(f"RnnFcDecoder.output_splits are {splits}")
    dag = str(_gin(bindings, "ProcessorGroup.dag", ""))
    if "Harmonic" not in dag or "FilteredNoise" not in dag:
        raise refuse("ProcessorGroup.dag lacks Harmonic or FilteredNoise")
    if _gin(bindings, "FilteredNoise.window_size", 257) != 0:
        raise refuse("FilteredNoise.window_size is not 0")
    if not _gin(bindings, "Harmonic.normalize_below_nyquist", True):
        raise refuse("Harmonic.normalize_below_nyquist is False")
    for param, default in (("exponent", 10.0), ("max_value", 2.0), ("threshold", 1e-7)):
        if float(_gin(bindings, f"exp_sigmoid.{param}", default)) != default:
            raise refuse(f"exp_sigmoid.{param} differs from ddsp's default")
    sample_rate = int(_gin(bindings, "Harmonic.sample_rate", _gin(bindings, "F0LoudnessPreprocessor.sample_rate",
                                                                     16000)))
    frame_rate = int(_gin(bindings, "F0LoudnessPreprocessor.frame_rate", 250))
    # ddsp 2 added compute_loudness (and moved to v3 loudness, DB_RANGE 80); ddsp 1.x gins lack it.
    flavour = "v3" if "F0LoudnessPreprocessor.compute_loudness" in bindings else "v1"
    return ModelConfig(
        name=name,
        sample_rate=sample_rate,
        frame_rate=frame_rate,
        decoder=DecoderConfig(
            input_keys=input_keys,
            ch=int(_gin(bindings, "RnnFcDecoder.ch", 512)),
            layers_per_stack=int(_gin(bindings, "RnnFcDecoder.layers_per_stack", 3)),
            rnn_channels=int(_gin(bindings, "RnnFcDecoder.rnn_channels", 512)),
            n_harmonics=int(splits["harmonic_distribution"]),
            n_noise_bands=int(splits["noise_magnitudes"]),
        ),
        loudness=flavour,
        amp_resample_method=str(_gin(bindings, "Harmonic.amp_resample_method", "window")),
        noise_initial_bias=float(_gin(bindings, "FilteredNoise.initial_bias", -5.0)),
        reverb="Reverb" in dag,
        reverb_length=int(_gin(bindings, "Reverb.reverb_length", 48000)),
        source={"importer": "magenta-ddsp", "ddsp_loudness": flavour},
    ).validate(where)


def _numeric_path(name: str) -> tuple[int, ...]:
    return tuple(int(n) for n in re.findall(r"(?:-|/)(\d+)(?=/)", name))


def _stack_layers(variables: dict[str, np.ndarray], prefix: str) -> list[dict[str, np.ndarray]]:
    """The (Dense, LayerNorm) pairs under a Keras Sequential, in order, nested (ddsp 2+) or flat (1.x)."""
    under = {name: value for name, value in variables.items() if name.startswith(prefix + "/")}
    kernels = sorted((n for n in under if n.endswith("/kernel/.ATTRIBUTES/VARIABLE_VALUE")), key=_numeric_path)
    gammas = sorted((n for n in under if n.endswith("/gamma/.ATTRIBUTES/VARIABLE_VALUE")), key=_numeric_path)
    if not kernels or len(kernels) != len(gammas):
        raise ModelFormatError(f"checkpoint: {prefix} does not hold Dense + LayerNormalization layers")
    return [{"kernel": under[k], "bias": under[k.replace("/kernel/", "/bias/")],
             "gamma": under[g], "beta": under[g.replace("/gamma/", "/beta/")]}
            for k, g in zip(kernels, gammas, strict=True)]


def read_checkpoint(prefix: Path) -> dict[str, np.ndarray]:
    """The model's variables by checkpoint name (optimizer slots, if any, are left out)."""
    import tensorflow as tf

    try:
        reader = tf.train.load_checkpoint(str(prefix))
    except (tf.errors.OpError, ValueError) as error:
        raise ModelFormatError(f"{prefix}: unreadable checkpoint ({error.__class__.__name__})") from None
    return {name: reader.get_tensor(name) for name in reader.get_variable_to_shape_map()
            if name.startswith("model/") and "OPTIMIZER_SLOT" not in name}


DECODER = "model/decoder"
LEGACY_STACKS = {"f0_scaled": f"{DECODER}/f_stack", "ld_scaled": f"{DECODER}/l_stack"}  # ddsp 1.x


def is_legacy_layout(variables: dict[str, np.ndarray]) -> bool:
    """ddsp 1.x named its input stacks f_stack / l_stack (joined f0 first) instead of input_stacks/i."""
    return any(name.startswith(LEGACY_STACKS["f0_scaled"] + "/") for name in variables)


def weights_from_checkpoint(variables: dict[str, np.ndarray], config: ModelConfig,
                            where: Path) -> dict[str, np.ndarray]:
    """Maps checkpoint variables onto tuibend's weight names, checking every shape."""
    decoder = DECODER
    legacy = is_legacy_layout(variables)
    stack_prefixes = {key: LEGACY_STACKS[key] if legacy else f"{decoder}/input_stacks/{i}"
                      for i, key in enumerate(config.decoder.input_keys)}
    weights: dict[str, np.ndarray] = {}
    for key, stack_prefix in stack_prefixes.items():
        for layer, values in enumerate(_stack_layers(variables, stack_prefix)):
            weights.update({f"stack_{key}/{layer}/{k}": v for k, v in values.items()})
    for layer, values in enumerate(_stack_layers(variables, f"{decoder}/out_stack")):
        weights.update({f"out_stack/{layer}/{k}": v for k, v in values.items()})
    for leaf in ("kernel", "recurrent_kernel", "bias"):
        found = [v for n, v in variables.items()
                 if n.startswith(f"{decoder}/rnn/") and n.endswith(f"/{leaf}/.ATTRIBUTES/VARIABLE_VALUE")]
        if len(found) != 1:
            raise ModelFormatError(f"{where}: expected one GRU {leaf} under {decoder}/rnn, found {len(found)}")
        weights[f"gru/{leaf}"] = found[0]
    for leaf in ("kernel", "bias"):
        name = f"{decoder}/dense_out/{leaf}/.ATTRIBUTES/VARIABLE_VALUE"
        if name not in variables:
            raise ModelFormatError(f"{where}: no {decoder}/dense_out/{leaf}")
        weights[f"dense_out/{leaf}"] = variables[name]
    if config.reverb:
        irs = [v for n, v in variables.items() if "/reverb/" in n and n.endswith("/ir/.ATTRIBUTES/VARIABLE_VALUE")]
        if len(irs) != 1:
            raise ModelFormatError(f"{where}: the gin names a trained Reverb but the checkpoint holds no reverb ir")
        weights["reverb/ir"] = np.asarray(irs[0]).reshape(-1)
    for name, shape in weight_shapes(config.decoder).items():
        if name not in weights or tuple(weights[name].shape) != shape:
            got = tuple(weights[name].shape) if name in weights else "nothing"
            raise ModelFormatError(f"{where}: decoder weight {name} should be {shape} by the gin, found {got}")
    return {name: np.asarray(value, np.float32) for name, value in weights.items()}


def statistics_from_pickle(path: Path) -> DatasetStatistics:
    """Plain arrays from ``dataset_statistics.pkl``, read with the restricted unpickler."""
    try:
        data = restricted_loads(path.read_bytes())
    except UnsafePickleError as error:
        raise ModelFormatError(f"{path}: {error}") from None
    if not isinstance(data, dict):
        raise ModelFormatError(f"{path}: expected a dictionary of statistics")
    scalars = {k: float(v) for k, v in data.items() if np.ndim(v) == 0 and isinstance(v, (float, int, np.number))}
    transform = data.get("quantile_transform")
    quantiles = getattr(transform, "quantiles_", None)
    references = getattr(transform, "references_", None)
    if quantiles is not None:
        quantiles = np.asarray(quantiles, np.float64).reshape(-1)
        references = np.asarray(references, np.float64).reshape(-1)
    return DatasetStatistics(scalars, quantiles, references)


def import_ddsp(source: str | Path, destination: str | Path, name: str | None = None,
                loudness: str | None = None) -> Path:
    """Converts ``source`` (a magenta-ddsp model folder) into a tuibend model at ``destination``.

    ``loudness`` overrides the loudness flavour guessed from the gin ('v1' or 'v3').
    """
    from tuibend.model.store import save_model

    folder = Path(source)
    if not folder.is_dir():
        raise ModelFormatError(f"{folder}: no such folder")
    gins = sorted(folder.glob("operative_config-*.gin"),
                  key=lambda p: int(m.group(1)) if (m := re.search(r"-(\d+)\.gin$", p.name)) else -1)
    if not gins:
        raise ModelFormatError(f"{folder}: no operative_config-*.gin (the model's configuration)")
    prefix = find_checkpoint(folder)
    bindings = parse_gin(gins[-1].read_text(encoding="utf-8", errors="replace"))
    config = config_from_gin(bindings, str(gins[-1]), name or folder.name)
    if loudness is not None:
        config = replace(config, loudness=loudness).validate(str(gins[-1]))
    variables = read_checkpoint(prefix)
    if is_legacy_layout(variables) and "RnnFcDecoder.input_keys" not in bindings:
        config = replace(config, decoder=replace(config.decoder, input_keys=("f0_scaled", "ld_scaled")))
    weights = weights_from_checkpoint(variables, config, prefix)
    statistics_path = folder / "dataset_statistics.pkl"
    statistics = statistics_from_pickle(statistics_path) if statistics_path.exists() else None
    return save_model(destination, config, weights, statistics)
