"""Training a timbre model: multi-scale spectral loss, Adam with exponential decay, clipped gradients.

The step is one compiled function; data streams from the dataset's shards; checkpoints
(weights, optimizer, step) make an interrupted run resume where it stopped, losing at most
the steps since the last checkpoint. Several GPUs, or several machines named by ``TF_CONFIG``
(:mod:`tuibend.training.cluster`), train through ``tf.distribute`` strategies: each replica takes its
share of the global batch, and only the chief writes the model folder.
"""

from __future__ import annotations

import contextlib
import json
import math
import os
import queue
import shutil
import tempfile
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import asdict, dataclass, field
from pathlib import Path

import numpy as np
import tensorflow as tf

from tuibend.atomic import atomic_path
from tuibend.dsp import core
from tuibend.dsp.spectral import spectral_loss
from tuibend.errors import InputError
from tuibend.model.config import SIZES, DecoderConfig, ModelConfig
from tuibend.model.decoder import initial_weights
from tuibend.model.store import save_model
from tuibend.model.timbre import TimbreModel
from tuibend.training.cluster import LOST_WORKER_ERRORS, ClusterError, Placement, make_strategy, placement
from tuibend.training.dataset import DatasetError, iterate_examples, read_manifest, read_statistics

FFT_SIZES = (2048, 1024, 512, 256, 128, 64)
PRECISIONS = {"float32": tf.float32, "mixed": tf.bfloat16}


@dataclass
class TrainingConfig:
    """A training recipe (the defaults are magenta-ddsp's solo-instrument recipe)."""

    size: str = "small"
    steps: int = 30000
    batch_size: int = 16
    learning_rate: float = 3e-4
    decay_steps: int = 10000
    decay_rate: float = 0.98
    clip_norm: float = 3.0
    checkpoint_every: int = 100
    eval_every: int = 500
    seed: int = 0
    jit: bool = True  # XLA: 1.1 to 1.3 times faster steps on this CPU (bench/bench_training.py)
    reverb: bool = True
    precision: str = "float32"  # "mixed": the decoder's dense products in bfloat16, all else in float32

    def __post_init__(self) -> None:
        if self.precision not in PRECISIONS:
            raise InputError(f"unknown precision {self.precision!r}: use one of {', '.join(PRECISIONS)}")


@dataclass
class TrainingLog:
    steps: list[int] = field(default_factory=list)
    losses: list[float] = field(default_factory=list)
    holdout_steps: list[int] = field(default_factory=list)
    holdout_losses: list[float] = field(default_factory=list)


def fresh_model(config: TrainingConfig, name: str, weights: dict[str, np.ndarray] | None = None) -> TimbreModel:
    """A new model of the recipe's size, its reverb starting as near silence (as ddsp's); ``weights``:
    an exported model's, to go on from."""
    if config.size not in SIZES:
        raise InputError(f"unknown size {config.size!r}: use one of {', '.join(SIZES)}")
    model_config = ModelConfig(name=name, decoder=DecoderConfig(**SIZES[config.size]), reverb=config.reverb,
                               source={"trainer": "tuibend", "size": config.size})
    if weights is None:
        weights = initial_weights(model_config.decoder, config.seed)
        if config.reverb:
            weights["reverb/ir"] = np.random.default_rng(config.seed).normal(0, 1e-6, 48000).astype(np.float32)
    return TimbreModel(model_config, weights)


def exported_start(output: Path, config: TrainingConfig) -> tuple[dict[str, np.ndarray] | None, int]:
    """The weights of a model exported by an earlier run into ``output`` and the step it reached.

    A checkpoint (weights and the optimizer's moments, 3x the weights) is kept on the machine that
    trains; a model folder that travels without it (a repository keeps the exported weights only)
    goes on from its weights at their step, the optimizer's moments starting afresh.
    """
    summary_path = output / "training.json"
    if not (output / "weights.npz").exists() or not summary_path.exists():
        return None, 0
    summary = json.loads(summary_path.read_text())
    if summary.get("recipe", {}).get("size") != config.size:
        return None, 0
    with np.load(output / "weights.npz", allow_pickle=False) as archive:
        return {name: archive[name] for name in archive.files}, int(summary.get("step", 0))


def trainable_variables(model: TimbreModel) -> list[tf.Variable]:
    variables = list(model.decoder.variables_by_name.values())
    return variables + ([model.reverb_ir] if model.reverb_ir is not None else [])


CACHE_SHARE_OF_MEMORY = 0.25  # a dataset up to this share of the machine's memory is read from its folder once


def fits_in_memory(folder: str) -> bool:
    """Whether the training examples fit in a quarter of this machine's memory."""
    manifest = read_manifest(folder)
    seconds = manifest["example_seconds"]
    example_bytes = 4 * (seconds * manifest["sample_rate"] + 2 * seconds * manifest["frame_rate"])
    try:
        memory = os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES")
    except (ValueError, OSError, AttributeError):
        return False
    return manifest["examples"]["train"] * example_bytes < CACHE_SHARE_OF_MEMORY * memory


def batches(folder: str | os.PathLike, split: str, batch_size: int, seed: int, skip_batches: int = 0,
            repeat: bool = True, cache: dict | None = None) -> Iterator[dict[str, np.ndarray]]:
    """Batches in a deterministic order (epoch e shuffled with seed + e), resumable at any batch."""
    examples = read_manifest(folder)["examples"][split]
    if examples < batch_size:
        raise DatasetError(f"{folder}: {examples} {split} examples cannot fill a batch of {batch_size}")
    per_epoch = examples // batch_size
    epoch, skip = divmod(skip_batches, per_epoch) if repeat else (0, skip_batches)
    while True:
        stream = iterate_examples(folder, split, shuffle=repeat, seed=seed + epoch, cache=cache)
        for index in range(per_epoch):
            group = [next(stream) for _ in range(batch_size)]
            if index >= skip:
                yield {key: np.stack([g[key] for g in group]) for key in group[0]}
        skip = 0
        epoch += 1
        if not repeat:
            return


def read_ahead(stream: Iterator[dict[str, np.ndarray]], depth: int = 2) -> Iterator[dict[str, np.ndarray]]:
    """``stream``'s batches read on a thread of their own, ``depth`` batches ahead of the step that takes them:
    a shard read from a slow disk or a bucket costs the step nothing while the step is the longer. An error in
    reading reaches the step that asks next; closing the iterator stops the thread.

    A plain thread rather than tf.data's prefetch: that shares TensorFlow's thread pools with the compiled step,
    and made a small step (batch 2) two to four times slower on two cores (measured)."""
    ready: queue.Queue = queue.Queue(depth)
    closed = threading.Event()
    end = object()

    def offer(item) -> bool:
        """Waits for room in the queue; False once the reader of the batches has gone."""
        while not closed.is_set():
            with contextlib.suppress(queue.Full):
                ready.put(item, timeout=0.1)
                return True
        return False

    def read() -> None:
        try:
            for batch in stream:
                if not offer(batch):
                    return
        except Exception as error:  # handed over: raised where the batch was wanted
            offer(error)
            return
        offer(end)

    threading.Thread(target=read, name="tuibend-read-ahead", daemon=True).start()
    try:
        while (item := ready.get()) is not end:
            if isinstance(item, Exception):
                raise item
            yield item
    finally:
        closed.set()


class Trainer:
    """Holds the model, the optimizer and the compiled, distributed train step."""

    def __init__(self, model: TimbreModel, config: TrainingConfig, strategy: tf.distribute.Strategy | None = None):
        import keras

        self.model = model
        self.config = config
        self.strategy = strategy or tf.distribute.get_strategy()
        model.decoder.compute_dtype = PRECISIONS[config.precision]
        with self.strategy.scope():
            schedule = keras.optimizers.schedules.ExponentialDecay(config.learning_rate, config.decay_steps,
                                                                   config.decay_rate)
            # Keras clips each replica's gradients before it sums them; the recipe clips the global batch's,
            # so with several replicas the step clips after its own sum (_train_replica).
            single = self.strategy.num_replicas_in_sync == 1
            self.optimizer = keras.optimizers.Adam(schedule, global_clipnorm=config.clip_norm if single else None)
            self.optimizer.build(trainable_variables(model))
        self.step = tf.Variable(0, dtype=tf.int64, trainable=False, name="step")
        self.checkpoint = tf.train.Checkpoint(step=self.step, optimizer=self.optimizer,
                                              **{f"w{i}": v for i, v in enumerate(trainable_variables(model))})
        # XLA compiles the whole step where it can. Collectives do not compile for CPUs (several workers on
        # CPUs): there, the loss and its gradients compile and the all-reduce and update run op by op. And
        # XLA cannot run one replica's step on a logical CPU device that another replica's variables share
        # (the two-replica test's set-up): there, the step runs op by op.
        cpu_replicas = (self.strategy.num_replicas_in_sync > 1
                        and all("CPU" in device.upper() for device in self.strategy.extended.worker_devices))
        several_workers = isinstance(self.strategy, tf.distribute.MultiWorkerMirroredStrategy)
        self._gradients = tf.function(self._loss_and_gradients,
                                      jit_compile=config.jit and (several_workers or not cpu_replicas))
        self._replica_step = tf.function(self._train_replica, jit_compile=config.jit and not cpu_replicas)
        self._loss = tf.function(self._batch_loss, jit_compile=config.jit and not cpu_replicas)

    def _batch_loss(self, audio: tf.Tensor, f0: tf.Tensor, loudness: tf.Tensor, noise: tf.Tensor) -> tf.Tensor:
        rendered = self.model._render(f0[..., tf.newaxis], loudness[..., tf.newaxis], noise)
        return spectral_loss(audio, rendered, FFT_SIZES)

    def _noise(self, shape, step: int) -> tf.Tensor:
        """The noise synth's input for a global batch: seeded by the step, so a resumed run repeats it."""
        return core.uniform_noise(shape, tf.constant([self.config.seed, step], tf.int64))

    def _loss_and_gradients(self, audio, f0, loudness, noise) -> tuple[tf.Tensor, list[tf.Tensor]]:
        replicas = self.strategy.num_replicas_in_sync
        with tf.GradientTape() as tape:
            loss = self._batch_loss(audio, f0, loudness, noise)
            scaled = loss / replicas  # the replicas' gradients are summed: together, the global batch's mean
        return loss, tape.gradient(scaled, trainable_variables(self.model))

    def _train_replica(self, audio, f0, loudness, noise):
        loss, gradients = self._gradients(audio, f0, loudness, noise)
        replicas = self.strategy.num_replicas_in_sync
        if replicas > 1:  # the global batch's gradients, clipped, shared out again for the optimizer's sum
            summed = tf.distribute.get_replica_context().all_reduce(tf.distribute.ReduceOp.SUM, gradients)
            clipped, _ = tf.clip_by_global_norm(summed, self.config.clip_norm)
            gradients = [gradient / replicas for gradient in clipped]
        self.optimizer.apply_gradients(zip(gradients, trainable_variables(self.model), strict=True))
        return loss

    def train_step(self, batch: dict[str, np.ndarray]) -> float:
        """One optimisation step on a global batch; returns its mean loss."""
        inputs = [tf.convert_to_tensor(batch[key]) for key in ("audio", "f0_hz", "loudness_db")]
        inputs.append(self._noise(inputs[0].shape, int(self.step.numpy())))
        replicas = self.strategy.num_replicas_in_sync
        if replicas == 1:
            loss = self._replica_step(*inputs)
        else:  # replica r of every worker takes slice r of the global batch, noise included
            share = len(batch["audio"]) // replicas
            if share * replicas != len(batch["audio"]):
                raise InputError(f"a batch of {len(batch['audio'])} cannot be shared by {replicas} replicas: "
                                 f"use a multiple of {replicas}")

            def my_slice(context: tf.distribute.experimental.ValueContext) -> list[tf.Tensor]:
                first = context.replica_id_in_sync_group * share
                return [tensor[first:first + share] for tensor in inputs]

            distributed = self.strategy.experimental_distribute_values_from_function(my_slice)
            losses = self.strategy.run(self._replica_step, args=distributed)
            loss = self.strategy.reduce(tf.distribute.ReduceOp.MEAN, losses, axis=None)
        self.step.assign_add(1)
        return float(loss)

    def state(self) -> list:
        """Everything a step depends on: the step count, the weights, the optimizer's moments and count."""
        return [self.step, *trainable_variables(self.model), *self.optimizer.variables]

    def take_chiefs_state(self, chief: bool) -> None:
        """Every worker takes the chief's state (after the chief alone restored a checkpoint)."""
        values = [tf.convert_to_tensor(variable) for variable in self.state()]
        for variable, value in zip(self.state(), chiefs_values(self.strategy, chief, values), strict=True):
            variable.assign(value)

    def evaluate(self, folder: str | os.PathLike, batch_size: int) -> float:
        """Mean loss over the held-out examples (fixed noise seed)."""
        losses = [float(self._loss(tf.constant(b["audio"]), tf.constant(b["f0_hz"]), tf.constant(b["loudness_db"]),
                                   self._noise(b["audio"].shape, 0)))
                  for b in batches(folder, "holdout", batch_size, 0, repeat=False)]
        return float(np.mean(losses)) if losses else math.nan


def chiefs_values(strategy: tf.distribute.Strategy, chief: bool, values: list[tf.Tensor]) -> list[tf.Tensor]:
    """The chief's ``values`` on every worker.

    A sum over all replicas in which only the chief's first replica counts: a broadcast through the
    collective operations the workers already share, so no worker needs to read the chief's folder.
    """
    local = len(strategy.extended.worker_devices)

    def first_of_chief(*values: tf.Tensor) -> list[tf.Tensor]:
        context = tf.distribute.get_replica_context()
        counts = tf.logical_and(tf.constant(chief), context.replica_id_in_sync_group % local == 0)
        masked = [value * tf.cast(counts, value.dtype) for value in values]
        floats = [index for index, value in enumerate(masked) if value.dtype.is_floating]
        # One all-reduce packs one dtype: the floats together, the few integer counts one by one.
        summed = dict(zip(floats, context.all_reduce(tf.distribute.ReduceOp.SUM, [masked[i] for i in floats]),
                          strict=True))
        return [summed[index] if index in summed else context.all_reduce(tf.distribute.ReduceOp.SUM, value)
                for index, value in enumerate(masked)]

    taken = strategy.run(tf.function(first_of_chief), args=values)
    return [strategy.experimental_local_results(value)[0] for value in taken]


def recipe_numbers(config: TrainingConfig) -> np.ndarray:
    """A recipe as numbers, field by field (a name as its place among those allowed)."""
    choices = {"size": list(SIZES), "precision": list(PRECISIONS)}
    return np.array([choices[name].index(value) if name in choices else float(value)
                     for name, value in asdict(config).items()], np.float64)


def check_same_recipe(strategy: tf.distribute.Strategy, chief: bool, config: TrainingConfig) -> None:
    """Refuses a cluster whose workers were started with different recipes, naming the options.

    Workers that disagree on the steps or the batch would wait on each other's collective operations
    for ever (a worker that stops early, a batch of another shape); every worker learns which
    fields differ from the chief's, so every one of them stops with the same message.
    """
    mine = recipe_numbers(config)
    with tf.device(strategy.extended.worker_devices[0]):  # this worker's own (a variable would take the chief's)
        (chiefs,) = chiefs_values(strategy, chief, [tf.constant(mine)])
        differs = tf.constant((mine != chiefs.numpy()).astype(np.float64))

    def count(value: tf.Tensor) -> tf.Tensor:  # (an argument reduced as it came has no device to reduce to)
        return tf.distribute.get_replica_context().all_reduce(tf.distribute.ReduceOp.SUM, tf.identity(value))

    counted = strategy.experimental_local_results(strategy.run(tf.function(count), args=(differs,)))[0].numpy()
    options = {"jit": "--no-xla"}  # the fields whose command-line option is named otherwise
    names = [options.get(name, f"--{name.replace('_', '-')}")
             for name, times in zip(asdict(config), counted, strict=True) if times]
    if names:
        raise InputError(f"the workers were started with different training options ({', '.join(names)}): "
                         "start the same command on every worker")


def train(data: str | Path, output: str | Path, config: TrainingConfig,
          report: Callable[[int, float, float], None] | None = None,
          strategy: tf.distribute.Strategy | None = None) -> TrainingLog:
    """Trains (or resumes training) a model from a dataset folder into a model folder.

    ``report(step, loss, steps_per_second)`` is called after every step. Ctrl-C saves a
    checkpoint before it stops the run; a run killed outright resumes from the last one. Under
    several workers (``TF_CONFIG``) only the chief reads and writes ``output``: it restores the
    checkpoint and the others take its state; a worker lost mid-run stops the others with a
    :class:`ClusterError`, and the same command started again on every worker resumes.
    """
    strategy = strategy or make_strategy()  # first: several workers must configure TensorFlow's runtime
    data, output = os.fspath(data), Path(output)
    read_manifest(data)
    place = placement(strategy)
    folder = output if place.chief else Path(tempfile.mkdtemp(prefix="tuibend-worker-"))
    try:
        return _train_in(data, output, folder, config, report, strategy, place)
    except LOST_WORKER_ERRORS as error:
        last = tf.train.latest_checkpoint(output / "training") if place.chief else None
        resume = f"from step {last.rsplit('-', 1)[1]}" if last else "from the chief's last checkpoint"
        lines = [line.strip() for line in str(error).splitlines() if line.strip()]
        lost = next((line for line in lines if line.startswith("/job:")), lines[0] if lines else "")
        raise ClusterError(f"{place.task} of {place.workers}: the cluster lost a worker ({type(error).__name__}: "
                           f"{lost}); start the same command on every worker to resume {resume}") from None
    finally:
        if not place.chief:
            shutil.rmtree(folder, ignore_errors=True)


def _train_in(data: str, output: Path, folder: Path, config: TrainingConfig,
              report: Callable[[int, float, float], None] | None, strategy: tf.distribute.Strategy,
              place: Placement) -> TrainingLog:
    """The run itself, writing checkpoints into ``folder`` (``output`` on the chief, a temporary folder on the
    other workers: TensorFlow's checkpointing asks every worker to save) and the model on the chief only."""
    has_checkpoint = tf.train.latest_checkpoint(folder / "training") is not None
    weights, start = (None, 0) if has_checkpoint or not place.chief else exported_start(output, config)
    with strategy.scope():
        model = fresh_model(config, output.name, weights)
    trainer = Trainer(model, config, strategy)
    if place.workers > 1:
        check_same_recipe(strategy, place.chief, config)
    trainer.step.assign(start)
    manager = tf.train.CheckpointManager(trainer.checkpoint, folder / "training", max_to_keep=2)
    log = TrainingLog()
    log_path = output / "training" / "log.json"
    if manager.latest_checkpoint:
        trainer.checkpoint.restore(manager.latest_checkpoint).assert_existing_objects_matched()
    if place.chief and (manager.latest_checkpoint or start) and log_path.exists():
        log = TrainingLog(**json.loads(log_path.read_text())["log"])
    if place.workers > 1:
        trainer.take_chiefs_state(place.chief)
    batch_size = config.batch_size
    stream = read_ahead(batches(data, "train", batch_size, config.seed, skip_batches=int(trainer.step.numpy()),
                                cache={} if fits_in_memory(data) else None))
    statistics = read_statistics(data)
    run = {"strategy": place.strategy, "workers": place.workers,
           "replicas": strategy.num_replicas_in_sync}

    def save() -> None:
        """A checkpoint to resume from, and the model as it stands, usable while training goes on."""
        manager.save(checkpoint_number=int(trainer.step.numpy()))
        if not place.chief:
            return
        with atomic_path(log_path) as temporary:
            temporary.write_text(json.dumps({"config": asdict(config), "log": asdict(log)}))
        save_model(output, model.config, model.weights(), statistics)
        write_report(output, config, log, run)

    started, first = time.perf_counter(), int(trainer.step.numpy())
    with _stopped_by_signals() as stop, contextlib.closing(stream):  # the reading thread ends with the run
        try:
            while (step := int(trainer.step.numpy())) < config.steps:
                loss = trainer.train_step(next(stream))
                log.steps.append(step + 1)
                log.losses.append(loss)
                if report is not None:
                    report(step + 1, loss, (step + 1 - first) / (time.perf_counter() - started))
                if place.chief and ((step + 1) % config.eval_every == 0 or step + 1 == config.steps):
                    log.holdout_steps.append(step + 1)
                    log.holdout_losses.append(trainer.evaluate(data, batch_size))
                if (step + 1) % config.checkpoint_every == 0 or step + 1 == config.steps:
                    save()
                if stop.is_set() and step + 1 < config.steps:  # asked to stop: at a step's end, never inside
                    raise KeyboardInterrupt
        except KeyboardInterrupt:
            save()
            raise
    save()
    return log


@contextlib.contextmanager
def _stopped_by_signals() -> Iterator[threading.Event]:
    """SIGTERM (a scheduler, `kill`) and SIGINT stop a run like Ctrl-C: a checkpoint first. The event is set by
    the first signal, and the loop stops at the end of the step in progress: raised from the handler, the
    interrupt could land in a finalizer (TensorFlow's executor), where Python ignores it and the run went on.
    A second signal interrupts at once. The handlers before the run come back after it.

    A background job started from a script ignores SIGINT unless asked; both are handled here.
    """
    import signal

    stop = threading.Event()
    if threading.current_thread() is not threading.main_thread():
        yield stop
        return

    def interrupt(signum, frame):
        if stop.is_set():
            raise KeyboardInterrupt
        stop.set()

    previous = {number: signal.signal(number, interrupt) for number in (signal.SIGTERM, signal.SIGINT)}
    try:
        yield stop
    finally:
        for number, handler in previous.items():
            signal.signal(number, handler)


def write_report(output: Path, config: TrainingConfig, log: TrainingLog, run: dict) -> None:
    """``training.json`` (recipe, how it ran, steps so far, held-out loss) and ``loss.png`` beside the model."""
    summary = {"recipe": asdict(config), **run, "step": log.steps[-1] if log.steps else 0,
               "holdout_loss": log.holdout_losses[-1] if log.holdout_losses else None,
               "train_loss_last_100": float(np.mean(log.losses[-100:])) if log.losses else None}
    with atomic_path(output / "training.json") as temporary:
        temporary.write_text(json.dumps(summary, indent=2) + "\n")
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    figure, axis = plt.subplots(figsize=(8, 4), constrained_layout=True)
    axis.plot(log.steps, log.losses, lw=0.5, alpha=0.5, label="training (per step)")
    if len(log.losses) >= 50:
        smooth = np.convolve(log.losses, np.ones(50) / 50, mode="valid")
        axis.plot(log.steps[49:], smooth, label="training (50-step mean)")
    axis.plot(log.holdout_steps, log.holdout_losses, "o-", label="held out")
    axis.set_xlabel("step")
    axis.set_ylabel("multi-scale spectral loss")
    axis.legend()
    with atomic_path(output / "loss.png") as temporary:
        figure.savefig(temporary, dpi=100)
    plt.close(figure)
