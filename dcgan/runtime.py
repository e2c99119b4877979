"""Process-wide TensorFlow runtime settings, in one place (training, ingest workers and benchmarks set them)."""

from __future__ import annotations


def configure_tf_threads(intra_op: int = 0, inter_op: int = 0) -> bool:
    """Set TensorFlow's intra-/inter-op thread pools (0 = leave TF's default). They can only be set before the
    first TF op runs: returns False when TensorFlow was already initialised and the settings could not apply."""
    import tensorflow as tf

    try:
        if intra_op:
            tf.config.threading.set_intra_op_parallelism_threads(intra_op)
        if inter_op:
            tf.config.threading.set_inter_op_parallelism_threads(inter_op)
    except RuntimeError:
        return False
    return True
