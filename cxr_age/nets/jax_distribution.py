"""Data parallelism on Keras's JAX backend through `keras.distribution` (the backend that trains without
TensorFlow): `DataParallel` over a device mesh of every device of every process, the variables replicated and
each global batch sharded along its first axis.

- `mirrored`: every local device (the GPUs, or the CPU devices that
  `XLA_FLAGS=--xla_force_host_platform_device_count=N` makes).
- `multiworker`: several processes, read the way Keras documents it: `KERAS_DISTRIBUTION_JOB_ADDRESSES` (the
  coordinator, process 0, first), `KERAS_DISTRIBUTION_NUM_PROCESSES`, `KERAS_DISTRIBUTION_PROCESS_ID`; JAX's
  distributed runtime connects them (`jax.distributed.initialize`, waiting at most
  `CXR_AGE_COORDINATOR_TIMEOUT` seconds, default 300), over Gloo's collectives on CPUs.

JAX computes on the global array, so batch normalisation's statistics and the R² loss cover the global batch
by construction, and a step is the same computation as on one device up to floating-point rounding. Each
process feeds its own contiguous part of every global batch (`cxr_age.io.store_batches.BatchShare`)."""

from __future__ import annotations

import contextlib
import os
import socket
import time
from collections.abc import Iterator
from dataclasses import dataclass

from cxr_age.errors import CxrAgeError

ADDRESSES = "KERAS_DISTRIBUTION_JOB_ADDRESSES"
PROCESSES = "KERAS_DISTRIBUTION_NUM_PROCESSES"
PROCESS_ID = "KERAS_DISTRIBUTION_PROCESS_ID"
TIMEOUT = "CXR_AGE_COORDINATOR_TIMEOUT"
# At exit every process waits for the others; a worker that finishes its share waits there while the chief
# evaluates the model alone, which on the full dataset takes far longer than JAX's default five minutes.
SHUTDOWN_WAIT = 24 * 3600
EXAMPLE = (f"{ADDRESSES}=host1:12345 {PROCESSES}=2 {PROCESS_ID}=0 on the first machine and {PROCESS_ID}=1 on the "
           "second")


@dataclass(frozen=True)
class JaxCluster:
    """This process's place among the processes of a multi-process run: process 0 is the chief."""

    host: str
    port: int
    processes: int
    process_id: int

    @property
    def coordinator(self) -> str:
        return f"{self.host}:{self.port}"

    @property
    def is_chief(self) -> bool:
        return self.process_id == 0

    @property
    def folder_suffix(self) -> str:
        """`""` for the chief, `-worker<i>` for the others, as for tf.distribute's workers."""
        return "" if self.is_chief else f"-worker{self.process_id}"


def _whole(environ: dict[str, str], name: str) -> int:
    text = environ.get(name, "").strip()
    if not text.isdigit():
        raise CxrAgeError(f"{name} must be a whole number, got {text!r}; e.g. {EXAMPLE}")
    return int(text)


def jax_cluster(environ: dict[str, str] | None = None) -> JaxCluster:
    """Read and check the Keras distribution variables; a one-line error names what is wrong."""
    environ = dict(os.environ if environ is None else environ)
    missing = [name for name in (ADDRESSES, PROCESSES, PROCESS_ID) if not environ.get(name, "").strip()]
    if missing:
        raise CxrAgeError(f"the multiworker `strategy` on the JAX backend needs {', '.join(missing)}: {EXAMPLE}")
    coordinator = environ[ADDRESSES].split(",")[0].strip()
    host, _, port = coordinator.rpartition(":")
    if not host or not port.isdigit():
        raise CxrAgeError(f"{ADDRESSES} must start with the coordinator's host:port, got {environ[ADDRESSES]!r}")
    processes, process_id = _whole(environ, PROCESSES), _whole(environ, PROCESS_ID)
    if processes < 1 or process_id >= processes:
        raise CxrAgeError(f"{PROCESS_ID}={process_id} is not one of the {processes} processes "
                          f"({PROCESS_ID} counts from 0)")
    return JaxCluster(host, int(port), processes, process_id)


def _gather(port: int, workers: int, timeout: float) -> None:
    """The coordinator's side of the rendezvous: wait until every other process has connected, tell each to
    go on, and let them hang up first (so that the port is free again for JAX's own service)."""
    deadline = time.monotonic() + timeout
    with socket.create_server(("", port), reuse_port=hasattr(socket, "SO_REUSEPORT")) as server:
        peers = []
        try:
            while len(peers) < workers:
                server.settimeout(max(deadline - time.monotonic(), 0.001))
                try:
                    peers.append(server.accept()[0])
                except TimeoutError:
                    raise CxrAgeError(f"only {len(peers)} of the {workers} other process(es) reached this coordinator "
                                      f"(port {port}) within {timeout:g} s ({TIMEOUT})") from None
            for peer in peers:
                peer.sendall(b"go")
            for peer in peers:
                peer.settimeout(timeout)
                peer.recv(1)
        finally:
            for peer in peers:
                peer.close()


def _reach(host: str, port: int, timeout: float) -> None:
    """A worker's side of the rendezvous: connect to the coordinator (retrying until `timeout`), wait for its
    word, hang up."""
    deadline = time.monotonic() + timeout
    while True:
        try:
            with socket.create_connection((host, port), timeout=max(deadline - time.monotonic(), 0.001)) as link:
                if link.recv(2) == b"go":
                    return
        except OSError:
            pass
        if time.monotonic() >= deadline:
            raise CxrAgeError(f"cannot reach the coordinator at {host}:{port} within {timeout:g} s ({TIMEOUT}); is "
                              "process 0 running?")
        time.sleep(0.2)


def _connect(cluster: JaxCluster) -> None:
    """Join the distributed runtime, or a one-line error after the timeout (never a hang). JAX's own client
    ends the process with a fatal log when the coordinator does not answer in time, so the processes first
    meet on the coordinator's port by plain TCP (`_gather`, `_reach`), where a timeout can be said in one
    line, and only then start JAX's service there."""
    import jax

    timeout = int(os.environ.get(TIMEOUT, "300"))
    if cluster.processes > 1:
        if cluster.is_chief:
            _gather(cluster.port, cluster.processes - 1, timeout)
        else:
            _reach(cluster.host, cluster.port, timeout)
    jax.config.update("jax_cpu_collectives_implementation", "gloo")  # CPU processes all-reduce through Gloo
    try:
        jax.distributed.initialize(coordinator_address=cluster.coordinator, num_processes=cluster.processes,
                                   process_id=cluster.process_id, initialization_timeout=timeout,
                                   shutdown_timeout_seconds=SHUTDOWN_WAIT)
    except Exception as err:  # noqa: BLE001 - JAX raises several types (XlaRuntimeError, RuntimeError, ValueError)
        first = (str(err).strip().splitlines() or [type(err).__name__])[0][:200]
        raise CxrAgeError(f"process {cluster.process_id} of {cluster.processes} could not join the coordinator at "
                          f"{cluster.coordinator} within {timeout} s ({TIMEOUT}): {first}") from None


class JaxDataParallel:
    """`keras.distribution.DataParallel` set for the process, with what the trainer asks of a strategy: the
    number of replicas, a scope, this process's share of the data, and `release` before evaluation."""

    def __init__(self, cluster: JaxCluster | None = None) -> None:
        import jax
        import keras

        if cluster is not None:
            _connect(cluster)
        self.cluster = cluster
        self.devices = jax.devices()
        self.local_devices = jax.local_devices()
        # Each process reads its own part of each batch (BatchShare), so Keras must not shard the data again.
        self.distribution = keras.distribution.DataParallel(devices=keras.distribution.list_devices(),
                                                            auto_shard_dataset=False)
        keras.distribution.set_distribution(self.distribution)

    @property
    def num_replicas_in_sync(self) -> int:
        return len(self.devices)

    @property
    def process_id(self) -> int:
        return self.cluster.process_id if self.cluster else 0

    @property
    def processes(self) -> int:
        return self.cluster.processes if self.cluster else 1

    @contextlib.contextmanager
    def scope(self) -> Iterator[None]:
        with self.distribution.scope():
            yield

    def release(self) -> None:
        """Back to one device in this process: what follows training (evaluation, on the chief alone) must not
        wait for the other processes."""
        import keras

        keras.distribution.set_distribution(None)

    def where(self) -> str:
        names = ", ".join(f"{d.platform}:{d.id}" for d in self.local_devices)
        if self.cluster is None:
            return f"jax {names}"
        return f"jax {names} here, process {self.process_id} of {self.processes}"
