"""DCGAN face generators: the ML library (models, training, export, metrics, data). No TFX, Beam or serving imports."""
from dcgan.runtime import enable_onednn

__version__ = "0.1.0"

enable_onednn()  # before any TensorFlow import: oneDNN's kernels on every x86 CPU (dcgan.runtime)
