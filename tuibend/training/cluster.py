"""Where a training run stands in its cluster: one machine, or several workers named by ``TF_CONFIG``.

TensorFlow users already describe a cluster with the ``TF_CONFIG`` environment variable (JSON: the
``cluster``'s workers, by host:port, and this process's ``task``); Kubernetes operators and Slurm
scripts set it. With it, training runs under ``tf.distribute.MultiWorkerMirroredStrategy``: every
worker holds a copy of the model, takes its share of each global batch, and the gradients are summed
across workers before every update. Without it, one machine trains as before (all its GPUs through
``MirroredStrategy`` when it has more than one).

The chief (the task called ``chief``, else worker 0) is the only one that writes the model folder; the
others keep what TensorFlow's checkpointing needs them to write in a temporary folder of their own.
"""

from __future__ import annotations

import json
import os
from dataclasses import dataclass

import tensorflow as tf

from tuibend.errors import TuibendError


class ClusterError(TuibendError, RuntimeError):
    """A cluster that cannot be formed or has lost a worker, with what to do."""


@dataclass(frozen=True)
class Placement:
    """This process's place: how many workers train together and whether this one writes."""

    strategy: str
    workers: int
    task: str
    chief: bool


def cluster_config() -> dict | None:
    """``TF_CONFIG`` parsed and checked, or None when it is unset (one machine)."""
    text = os.environ.get("TF_CONFIG", "").strip()
    if not text:
        return None
    try:
        config = json.loads(text)
    except json.JSONDecodeError as error:
        raise ClusterError(f"TF_CONFIG is not valid JSON ({error})") from None
    cluster, task = config.get("cluster") if isinstance(config, dict) else None, config.get("task", {})
    if not isinstance(cluster, dict) or not any(cluster.get(kind) for kind in ("worker", "chief")):
        raise ClusterError('TF_CONFIG must name a cluster: {"cluster": {"worker": ["host:port", ...]}, '
                           '"task": {"type": "worker", "index": 0}}')
    if not isinstance(task, dict) or task.get("type") not in cluster or not isinstance(task.get("index"), int) \
            or not 0 <= task["index"] < len(cluster[task["type"]]):
        raise ClusterError(f"TF_CONFIG's task {task!r} is not one of its cluster's tasks "
                           f"({', '.join(f'{kind} 0-{len(hosts) - 1}' for kind, hosts in cluster.items())})")
    return config


def make_strategy() -> tf.distribute.Strategy:
    """The strategy the environment asks for. Call it before any other TensorFlow work: the collective
    operations of several workers must be configured before TensorFlow's runtime starts."""
    if cluster_config() is not None:
        return tf.distribute.MultiWorkerMirroredStrategy()
    if len(tf.config.list_logical_devices("GPU")) > 1:
        return tf.distribute.MirroredStrategy()
    return tf.distribute.get_strategy()


def placement(strategy: tf.distribute.Strategy) -> Placement:
    """This process's place under ``strategy`` (one machine: one worker, the chief)."""
    resolver = getattr(strategy, "cluster_resolver", None)
    if not isinstance(strategy, tf.distribute.MultiWorkerMirroredStrategy) or resolver is None:
        return Placement(strategy=type(strategy).__name__, workers=1, task="chief", chief=True)
    spec = resolver.cluster_spec().as_dict()
    workers = sum(len(spec.get(kind, ())) for kind in ("chief", "worker"))
    kind, index = resolver.task_type, resolver.task_id
    chief = kind == "chief" or kind is None or (kind == "worker" and index == 0 and "chief" not in spec)
    return Placement(strategy="MultiWorkerMirroredStrategy", workers=workers, task=f"{kind} {index}", chief=chief)


LOST_WORKER_ERRORS = (tf.errors.UnavailableError, tf.errors.AbortedError, tf.errors.DeadlineExceededError,
                      tf.errors.CancelledError)
"""What a collective operation raises when a peer has stopped (TensorFlow's coordination service notices
a worker that stops sending heartbeats within about ten seconds and aborts every collective)."""
