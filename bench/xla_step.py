"""The live engine's compiled block step on a GPU: TensorFlow lowers it, XLA runs it through jaxlib.

Run in two steps, where TensorFlow cannot travel to the GPU machine (its wheels and CUDA libraries
are gigabytes; this project's GPU machines hold jaxlib with CUDA instead):

    python bench/xla_step.py export FOLDER      # here, in the project's venv: needs TensorFlow
    python3 bench/xla_step.py run FOLDER        # on the GPU machine: needs only jax and numpy

``export`` builds the same block step ``bench/realtime.py`` times (the bundled small model and the
imported full one, the five-bend chain, blocks of 64, 256 and 1024 samples), asks TensorFlow for its
XLA HLO module (``experimental_get_compiler_ir``), and saves it with its parameter values, the bend
values of 64 blocks as the controller writes them, and TensorFlow's own audio for those blocks.

``run`` compiles each module with XLA for every backend jaxlib has (the GPU and the CPU, one thread, in
the same run), plays the 64 blocks with the state fed back, compares the audio with TensorFlow's, and
times a block three ways: as an engine would drive it (the block's f0, loudness and changed bend values
uploaded one array each, the audio brought back to the host); with one packed upload instead; and the
step alone, its inputs already on the device. It prints a table of milliseconds and real-time factors.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import os
import re
import sys
import time
from collections.abc import Callable
from pathlib import Path

import numpy as np

REPO = Path(__file__).resolve().parents[1]
BLOCKS = (64, 256, 1024)
EXPORTED_BLOCKS = 64  # blocks of audio compared against TensorFlow's
SAMPLE_RATE = 16000


def export(folder: Path) -> None:
    """Saves ``{size}_{block}.npz`` per configuration and ``{size}_weights.npz`` per model."""
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
    import tensorflow as tf

    sys.path.insert(0, str(REPO))
    sys.path.insert(0, str(REPO / "bench"))
    from realtime import BENDS, MOVED_FADER, fader_positions, features, full_model

    import tuibend
    from tuibend.bend.rig import control_scene
    from tuibend.model.layout import point_widths
    from tuibend.places import bundled

    folder.mkdir(parents=True, exist_ok=True)
    models = {"small": tuibend.load_model(bundled("models", "choir")), "full": full_model(None)}
    for size, model in models.items():
        weights: dict[str, np.ndarray] = {}
        for block in BLOCKS:
            frames = block // model.config.hop
            controller = control_scene(BENDS, {}, point_widths(model.config.decoder), frames,
                                       model.config.frame_rate)
            stream = model.stream(frames, hook=controller.rig.hook)
            f0, loudness = features(EXPORTED_BLOCKS * frames / model.config.frame_rate + 1, model.config.frame_rate)
            shape = (EXPORTED_BLOCKS, 1, frames, 1)
            f0, loudness = (x[:EXPORTED_BLOCKS * frames].reshape(shape) for x in (f0, loudness))
            proto, kinds, read = _lowered_step(tf, stream, f0, loudness)
            reference, per_block = [], []
            for index, position in enumerate(fader_positions(EXPORTED_BLOCKS)):
                controller.set(*MOVED_FADER, float(position))
                controller.advance()
                per_block.append(read())
                reference.append(stream.step(f0[index].ravel(), loudness[index].ravel()))
            saved = {"proto": proto, "kinds": np.array(kinds), "f0": f0, "loudness": loudness,
                     "reference": np.stack(reference)}
            for index, value in enumerate(per_block[0]):
                if kinds[index] == "var" and any(not np.array_equal(value, values[index]) for values in per_block):
                    saved[f"changing{index}"] = np.stack([values[index] for values in per_block])
                elif value.nbytes > 100_000:  # weights: stored once per model
                    key = hashlib.sha1(value.tobytes()).hexdigest()[:16]
                    weights[key] = value
                    saved[f"weight{index}"] = np.array(key)
                else:
                    saved[f"value{index}"] = value
            np.savez_compressed(folder / f"{size}_{block}.npz", **saved)
            print(f"exported {size}, {block}-sample blocks: {proto.size} bytes of HLO, {len(kinds) + 2} parameters",
                  flush=True)
        np.savez(folder / f"{size}_weights.npz", **weights)


def _lowered_step(tf, stream, f0: np.ndarray, loudness: np.ndarray) -> tuple[np.ndarray, list[str], Callable]:
    """The stream's compiled step as HLO, the kind of each captured input, and a reader of their values.

    The module's parameters are f0, loudness, then the concrete function's captured inputs in order
    (variables as their values); its results are the audio, then each variable it writes."""
    inputs = (tf.constant(f0[0]), tf.constant(loudness[0]), None)
    concrete = stream._compiled.get_concrete_function(*inputs)
    proto = stream._compiled.experimental_get_compiler_ir(*inputs)(stage="hlo_serialized")
    variables = {id(variable.handle): variable for variable in concrete.variables}
    state = {id(variable.handle) for variable in tf.nest.flatten(stream._state)}
    captured = concrete.captured_inputs

    def read() -> list[np.ndarray]:
        return [np.asarray(variables[id(t)].numpy() if id(t) in variables else t.numpy()) for t in captured]

    kinds = ["const" if id(t) not in variables else "state" if id(t) in state else "var" for t in captured]
    return np.frombuffer(proto, np.uint8), kinds, read


def _compile(backend, proto: bytes, device):
    from jax._src.lib import xla_client

    # TensorFlow's HLO as MLIR; its copies (identities) become same-shape reshapes, since jaxlib 0.11's
    # GPU pipeline refuses mhlo.copy.
    text = xla_client._xla.mlir.xla_computation_to_mlir_module(xla_client.XlaComputation(proto))
    tensor = r"(tensor<(?:[^<>]|<[^<>]*>)*>)"
    text = re.sub(rf"(%[\w#]+) = mhlo\.copy (%[\w#]+) : {tensor}", r"\1 = stablehlo.reshape \2 : (\3) -> \3", text)
    return backend.compile_and_load(text, xla_client.DeviceList((device,)), xla_client.CompileOptions())


def measure(folder: Path, name: str, backend_name: str, blocks: int) -> dict:
    import jax
    import jax.extend

    size = name.split("_")[0]
    saved = np.load(folder / f"{name}.npz")
    weights = np.load(folder / f"{size}_weights.npz")
    kinds = [str(kind) for kind in saved["kinds"]]

    def first_value(index: int) -> np.ndarray:
        if f"weight{index}" in saved.files:
            return weights[str(saved[f"weight{index}"])]
        if f"changing{index}" in saved.files:
            return saved[f"changing{index}"][0]
        return saved[f"value{index}"]

    values = [first_value(index) for index in range(len(kinds))]
    changing = {index: saved[f"changing{index}"] for index in range(len(kinds)) if f"changing{index}" in saved.files}
    f0, loudness, reference = saved["f0"], saved["loudness"], saved["reference"]
    backend = jax.extend.backend.get_backend(backend_name)
    device = backend.local_devices()[0]
    executable = _compile(backend, bytes(saved["proto"]), device)

    def put(array):
        return jax.device_put(array, device)

    def run(arguments: list) -> list:
        return [out[0] for out in executable.execute_sharded(arguments).disassemble_into_single_device_arrays()]

    def upload(index: int, parameters: list) -> list:
        """The block's inputs and changed bend values, one transfer each."""
        for position, series in changing.items():
            parameters[position] = put(series[index % len(series)])
        return [put(f0[index % len(f0)]), put(loudness[index % len(loudness)]), *parameters]

    # Results after the audio are the written variables, in parameter order: matched by shape.
    shapes = [(out.shape, out.dtype) for out in run(upload(0, [put(value) for value in values]))[1:]]
    written = [index for index, kind in enumerate(kinds) if kind != "const"]
    matched = []
    for index in written:
        if len(matched) < len(shapes) and (values[index].shape, values[index].dtype) == shapes[len(matched)]:
            matched.append(index)
    if len(matched) != len(shapes):
        raise RuntimeError("the module's results do not line up with its variables")

    def play(count: int, mode: str) -> tuple[np.ndarray, np.ndarray]:
        parameters = [put(value) for value in values]
        resident = [put(f0[0]), put(loudness[0])]
        packed = np.concatenate([f0[0].ravel(), loudness[0].ravel()] +
                                [series[0].ravel() for series in changing.values()]).astype(np.float32)
        times, audio = np.empty(count), []
        for index in range(count):
            started = time.perf_counter()
            if mode == "engine":
                outs = run(upload(index, parameters))
                block = np.asarray(outs[0])
            elif mode == "packed":  # one upload's cost, then the step on resident inputs
                put(packed + index).block_until_ready()
                outs = run(resident + parameters)
                block = np.asarray(outs[0])
            else:
                outs = run(resident + parameters)
                block = outs[0].block_until_ready()
            times[index] = time.perf_counter() - started
            for position, new in zip(matched, outs[1:], strict=True):
                parameters[position] = new
            audio.append(np.asarray(block))
        return times, np.stack(audio)

    _, audio = play(len(reference), "engine")
    error = float(np.max(np.abs(audio.reshape(reference.shape) - reference)))
    if error > 0.01 * float(np.max(np.abs(reference))):  # e.g. a result fed back into the wrong variable
        raise RuntimeError(f"{name} on {backend_name}: the audio is {error:.2g} away from TensorFlow's")
    play(50, "engine")  # warm-up
    timings = {mode: 1e3 * float(np.median(play(blocks, mode)[0])) for mode in ("engine", "packed", "step")}
    return {"model": size, "backend": backend_name, "device": device.device_kind,
            "block_samples": int(reference.shape[-1]), **{f"{mode}_ms": ms for mode, ms in timings.items()},
            "error_vs_tensorflow": error, "peak": float(np.max(np.abs(reference)))}


def run_all(folder: Path, blocks: int) -> None:
    import jax

    jax.config.update("jax_enable_x64", True)  # the step carries float64 phases and int64 counters
    backends = sorted({device.platform for device in jax.devices()} | {"cpu"}, key=lambda name: name == "cpu")
    rows = []
    for backend in backends:
        for size in ("small", "full"):
            for block in BLOCKS:
                rows.append(measure(folder, f"{size}_{block}", backend, blocks))
                print(json.dumps(rows[-1]), file=sys.stderr, flush=True)
    print("\n| model | backend | block | engine-like: ms (x real time) | one packed upload: ms (x) "
          "| step alone: ms (x) | max error vs TensorFlow / peak |")
    print("| --- | --- | ---: | ---: | ---: | ---: | ---: |")
    for row in rows:
        seconds = row["block_samples"] / SAMPLE_RATE
        cells = [f"{row[f'{mode}_ms']:.2f} ({seconds / row[f'{mode}_ms'] * 1e3:.1f}x)"
                 for mode in ("engine", "packed", "step")]
        print(f"| {row['model']} | {row['backend']} ({row['device']}) | {row['block_samples']} | "
              f"{' | '.join(cells)} | {row['error_vs_tensorflow']:.1e} / {row['peak']:.3f} |")
    print(f"\njax {jax.__version__}; XLA_FLAGS={os.environ.get('XLA_FLAGS', '')}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("action", choices=["export", "run"])
    parser.add_argument("folder", type=Path)
    parser.add_argument("--blocks", type=int, default=1000, help="blocks timed per configuration (default 1000)")
    args = parser.parse_args()
    if args.action == "export":
        export(args.folder)
    else:
        # One CPU thread, as the engine's; the GPU's small kernels replayed as CUDA graphs (measured
        # faster than XLA's default of graphs of five or more).
        os.environ.setdefault("XLA_FLAGS", "--xla_cpu_multi_thread_eigen=false --xla_gpu_graph_min_graph_size=1")
        run_all(args.folder, args.blocks)


if __name__ == "__main__":
    main()
