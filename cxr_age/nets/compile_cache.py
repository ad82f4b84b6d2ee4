"""XLA's persistent compilation cache, so that a resumed or repeated run on Keras's JAX backend loads the
compiled training step instead of compiling it again (minutes for a DenseNet at 256 px and more). The cache
lives in the user's cache folder (`cxr_age.paths.cache_dir() / "xla"`); JAX keys each entry by the program,
its shapes, the device and the JAX version, so a changed network or another chip compiles anew. TensorFlow
reads its own XLA cache folder from `TF_XLA_FLAGS` (`--tf_xla_persistent_cache_directory`) when the process
starts, which is left to the user."""

from __future__ import annotations

from pathlib import Path

import keras

from cxr_age.paths import cache_dir


def enable_compile_cache(folder: Path | None = None) -> Path | None:
    """Keep XLA's compiled programs in `folder` when the backend is JAX; without `folder`, in the one JAX is
    already given (`JAX_COMPILATION_CACHE_DIR`, or an earlier call), else in the user's cache. The folder, or
    None on another backend."""
    if keras.backend.backend() != "jax":
        return None
    import jax

    if folder is None and jax.config.jax_compilation_cache_dir:
        return Path(jax.config.jax_compilation_cache_dir)
    folder = Path(folder or cache_dir() / "xla")
    folder.mkdir(parents=True, exist_ok=True)
    jax.config.update("jax_compilation_cache_dir", str(folder))
    jax.config.update("jax_persistent_cache_min_compile_time_secs", 1.0)  # small programs compile faster than read
    return folder
