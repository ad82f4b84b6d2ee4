"""Training on several devices or machines: through `tf.distribute` on Keras's TensorFlow backend (data
parallelism, synchronous all-reduce), through `keras.distribution` on its JAX backend
(`cxr_age.nets.jax_distribution`), under the same three names.

- `default`: one device (the first GPU, else the CPU).
- `mirrored`: `tf.distribute.MirroredStrategy` over every GPU of this machine (over the logical CPU devices
  when it has none), one replica per device.
- `multiworker`: `tf.distribute.MultiWorkerMirroredStrategy` over the machines listed in `TF_CONFIG`
  (Abadi et al., "TensorFlow: a system for large-scale machine learning", OSDI 2016; collective ring or NCCL
  all-reduce). Every machine runs the same command with its own `TF_CONFIG`.

`batch_size` is the global batch: each step's batch is split evenly among the replicas, batch
normalisation takes its statistics over the whole global batch (synchronised), and the gradients are
summed, so a step is the same computation as on one device up to floating-point rounding.
"""

from __future__ import annotations

import json
import os
from dataclasses import dataclass
from typing import TYPE_CHECKING

from cxr_age.errors import CxrAgeError
from cxr_age.nets.jax_distribution import JaxCluster, JaxDataParallel, jax_cluster

if TYPE_CHECKING:
    import tensorflow as tf

STRATEGIES = ("default", "mirrored", "multiworker")


@dataclass(frozen=True)
class ClusterTask:
    """This process's place in a `TF_CONFIG` cluster: task type and index, and the number of workers."""

    type: str
    index: int
    workers: int
    has_chief: bool = False

    @property
    def is_chief(self) -> bool:
        """The task that writes the run's model, metrics and figures: `chief`, else worker 0 when no chief
        is listed (TensorFlow's convention)."""
        return self.type == "chief" or (self.type == "worker" and self.index == 0 and not self.has_chief)

    @property
    def folder_suffix(self) -> str:
        """Appended to a non-chief worker's run folder, so that machines sharing a file system never write
        into the same folder: `""` for the chief, `-worker<i>` for the others."""
        return "" if self.is_chief else f"-{self.type}{self.index}"


def cluster_task(environ: dict[str, str] | None = None) -> ClusterTask:
    """Read and check `TF_CONFIG` (`{"cluster": {"worker": [host:port, ...]}, "task": {"type": "worker",
    "index": i}}`); a one-line error names what is wrong."""
    raw = (os.environ if environ is None else environ).get("TF_CONFIG")
    if not raw:
        raise CxrAgeError('the multiworker `strategy` needs TF_CONFIG, e.g. TF_CONFIG=\'{"cluster": {"worker": '
                          '["host1:12345", "host2:12345"]}, "task": {"type": "worker", "index": 0}}\' on the first '
                          'machine and "index": 1 on the second')
    try:
        config = json.loads(raw)
        cluster, task = config["cluster"], config["task"]
        kind, index = str(task["type"]), int(task["index"])
        members = {name: list(addresses) for name, addresses in cluster.items()}
    except (ValueError, TypeError, KeyError, AttributeError) as err:
        raise CxrAgeError(f"TF_CONFIG is not a cluster description ({type(err).__name__}: {err}); expected "
                          '{"cluster": {"worker": [...]}, "task": {"type": "worker", "index": N}}') from None
    unknown = sorted(set(members) - {"chief", "worker"})
    if unknown:
        raise CxrAgeError(f"TF_CONFIG lists {', '.join(unknown)}; synchronous multi-worker training takes only "
                          "chief and worker tasks")
    if kind not in members or not 0 <= index < len(members[kind]):
        raise CxrAgeError(f"TF_CONFIG task {kind} {index} is not in its cluster "
                          f"({', '.join(f'{k}: {len(v)}' for k, v in members.items())})")
    workers = sum(len(addresses) for addresses in members.values())
    return ClusterTask(kind, index, workers, has_chief="chief" in members)


def _cluster(name: str | None) -> ClusterTask | JaxCluster | None:
    """This process's place in a multi-worker run, from TF_CONFIG or, on JAX, Keras's distribution variables."""
    if name != "multiworker":
        return None
    return jax_cluster() if _keras_backend() == "jax" else cluster_task()


def is_chief(name: str | None) -> bool:
    """Whether this process writes the run's results: always, except on a non-chief multi-worker task."""
    cluster = _cluster(name)
    return cluster is None or cluster.is_chief


def run_folder_suffix(name: str | None) -> str:
    """`""`, or `-worker<i>` for a non-chief multi-worker task (see `ClusterTask.folder_suffix`)."""
    cluster = _cluster(name)
    return cluster.folder_suffix if cluster else ""


def make_strategy(name: str | None) -> tf.distribute.Strategy | JaxDataParallel | None:
    """The strategy called `name` (None means `default`). Create it before any other TensorFlow or JAX work
    in the process: `MultiWorkerMirroredStrategy` configures the collective operations at start-up, and JAX's
    distributed runtime must be joined before JAX computes anything. On the JAX backend `mirrored` and
    `multiworker` are `keras.distribution.DataParallel` (`cxr_age.nets.jax_distribution`); on another backend
    `default` is None (one device, placed by the backend) and the others a one-line error."""
    name = name or "default"
    if name not in STRATEGIES:
        raise CxrAgeError(f"unknown strategy {name!r}; choose one of {', '.join(STRATEGIES)}")
    backend = _keras_backend()
    if backend == "jax" and name != "default":
        return JaxDataParallel(jax_cluster() if name == "multiworker" else None)
    if backend != "tensorflow":
        if name == "default":
            return None
        raise CxrAgeError(f"`strategy` {name} runs on Keras's TensorFlow (tf.distribute) and JAX "
                          f"(keras.distribution) backends; this process runs {backend}")
    import tensorflow as tf

    if name == "default":
        return tf.distribute.get_strategy()
    if name == "mirrored":
        return tf.distribute.MirroredStrategy()
    cluster_task()
    return _multi_worker_strategy()


def _multi_worker_strategy() -> tf.distribute.Strategy:
    """`MultiWorkerMirroredStrategy` whose `reduce` accepts what Keras 3's `fit` passes it.

    Keras 3 (up to 3.15 at least) calls `strategy.reduce` with a whole (inputs, targets) structure to build
    the model, and with `axis=0` on scalar metrics; with more than one worker TensorFlow's collective reduce
    takes neither, and `fit` fails with "Attempt to convert a value (PerReplica ...)" (keras-team/keras#20585,
    tensorflow/tensorflow#72388). Reducing each value on its own, over its axis only where it has one, is
    what those calls mean and what `MirroredStrategy` does on one machine."""
    import tensorflow as tf

    class KerasMultiWorkerMirroredStrategy(tf.distribute.MultiWorkerMirroredStrategy):
        def reduce(self, reduce_op, value, axis=None):
            def one(item):
                rank = self.experimental_local_results(item)[0].shape.rank
                return super(KerasMultiWorkerMirroredStrategy, self).reduce(reduce_op, item, axis if rank else None)

            return tf.nest.map_structure(one, value)

    return KerasMultiWorkerMirroredStrategy()


def sum_over_replicas(value):
    """`value` summed over the replicas of the running strategy (itself on one device or outside a replica
    context): how a loss that is not a mean over images sees the whole global batch."""
    import tensorflow as tf

    context = tf.distribute.get_replica_context()
    if context is None or context.num_replicas_in_sync == 1:
        return value
    return context.all_reduce(tf.distribute.ReduceOp.SUM, value)


def replica_batch(replicas: int, batch_size: int) -> int:
    """The batch each of `replicas` computes: the global batch divided evenly, or a one-line error."""
    if batch_size % replicas:
        below, above = batch_size - batch_size % replicas, batch_size + replicas - batch_size % replicas
        sizes = f"{below} or {above}" if below else str(above)
        raise CxrAgeError(f"a global batch of {batch_size} does not divide among {replicas} replicas; choose "
                          f"`batch_size` {sizes}")
    return batch_size // replicas


def _keras_backend() -> str:
    # Imported here: the commands import this module for STRATEGIES before they quiet TensorFlow's start-up.
    import keras

    return keras.backend.backend()


def _backend_device() -> str:
    """The device a backend other than TensorFlow places a one-device run on."""
    backend = _keras_backend()
    if backend == "jax":
        import jax

        device = jax.devices()[0]
        return f"jax {device.platform}:{device.id} {device.device_kind}"
    return backend


def describe(strategy: tf.distribute.Strategy | JaxDataParallel | None, name: str | None, batch_size: int) -> str:
    """One line for the log: strategy, replicas, devices and the per-replica batch."""
    if strategy is None:
        return f"strategy default: 1 replica ({_backend_device()}), global batch {batch_size}"
    if isinstance(strategy, JaxDataParallel):
        where = strategy.where()
    else:
        where = _tf_devices(strategy, name)
    replicas = strategy.num_replicas_in_sync
    return (f"strategy {name or 'default'}: {replicas} replica{'s' * (replicas != 1)} ({where}), "
            f"global batch {batch_size} = {replica_batch(replicas, batch_size)} per replica")


def _tf_devices(strategy: tf.distribute.Strategy, name: str | None) -> str:
    import tensorflow as tf

    if name in (None, "default"):
        devices = (tf.config.list_logical_devices("GPU") or tf.config.list_logical_devices("CPU"))[:1]
        names = [device.name for device in devices]
    else:
        names = list(strategy.extended.worker_devices)
    where = ", ".join(device.split("/")[-1].replace("device:", "") for device in names)
    if name == "multiworker":
        task = cluster_task()
        where += f" here, {task.type} {task.index} of {task.workers} machines"
    return where
