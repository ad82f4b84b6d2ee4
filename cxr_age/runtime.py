"""Whether this Python process has TensorFlow. Keras 3 also runs on JAX or PyTorch, and a GPU machine may
carry those alone: there training and evaluation read a prepared store through `keras.utils.PyDataset`
(`cxr_age.io.loader`), while what only TensorFlow provides (the tf.data pipeline over image files,
`tf.distribute`, tf-keras-vis saliency, TensorBoard's writers) ends in one line saying so."""

from __future__ import annotations

from cxr_age.errors import CxrAgeError


def has_tensorflow() -> bool:
    """TensorFlow can be imported (and now is: whoever asks is about to use it)."""
    try:
        import tensorflow  # noqa: F401
    except ImportError:
        return False
    return True


def tensorflow_missing(what: str) -> str:
    """The one line that says `what` needs TensorFlow and this process has none."""
    return (f"{what} needs TensorFlow, which this Python cannot import; install tensorflow (on Keras's JAX or "
            "PyTorch backend, training and evaluating from a prepared store need none)")


def require_tensorflow(what: str) -> None:
    """A one-line CxrAgeError unless TensorFlow can be imported: `what` needs it (e.g. "saliency maps
    (tf-keras-vis)")."""
    if not has_tensorflow():
        raise CxrAgeError(tensorflow_missing(what))
