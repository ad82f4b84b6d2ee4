"""Which mixed-precision policy fits the chip (Micikevicius et al. 2018, "Mixed Precision Training"):
bfloat16 where the GPU computes it natively (NVIDIA compute capability 8.0 and up: A100, H100, H200, L4,
RTX 30xx and later), which keeps float32's exponent range and so needs no loss scaling; float16 elsewhere,
with the dynamic loss scaling Keras adds when it compiles a `mixed_float16` model. Variables and the output
layer stay float32 under both. Detected through whichever Keras backend is running."""

from __future__ import annotations

import keras

from cxr_age.errors import CxrAgeError

POLICIES = ("float32", "mixed_float16", "mixed_bfloat16")
BFLOAT16_CAPABILITY = (8, 0)


def _tensorflow_capability() -> tuple[int, int] | None:
    import tensorflow as tf

    for gpu in tf.config.list_physical_devices("GPU"):
        capability = tf.config.experimental.get_device_details(gpu).get("compute_capability")
        if capability:
            return tuple(capability)
    return None


def _jax_capability() -> tuple[int, int] | None:
    import jax

    for device in jax.devices():
        capability = getattr(device, "compute_capability", None) if device.platform == "gpu" else None
        if capability:
            major, minor = str(capability).split(".")[:2]
            return int(major), int(minor)
    return None


def _torch_capability() -> tuple[int, int] | None:
    import torch

    return tuple(torch.cuda.get_device_capability(0)) if torch.cuda.is_available() else None


def gpu_capability() -> tuple[int, int] | None:
    """The compute capability of the first GPU the running Keras backend sees, or None without one."""
    probe = {"tensorflow": _tensorflow_capability, "jax": _jax_capability, "torch": _torch_capability}
    return probe[keras.backend.backend()]() if keras.backend.backend() in probe else None


def mixed_policy(capability: tuple[int, int] | None) -> str:
    """`mixed_bfloat16` on a GPU of compute capability 8.0 or more, else `mixed_float16`."""
    return "mixed_bfloat16" if capability is not None and capability >= BFLOAT16_CAPABILITY else "mixed_float16"


def check_policy(policy: str) -> str:
    if policy not in POLICIES:
        raise CxrAgeError(f"unknown precision policy {policy!r}; choose one of {', '.join(POLICIES)}")
    return policy
