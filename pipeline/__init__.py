"""pipeline package."""
from dcgan.runtime import enable_onednn

enable_onednn()  # before any TensorFlow import of this package (dcgan.runtime)
