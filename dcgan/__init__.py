"""DCGAN face generators: the ML library (models, training, export, metrics, data). No TFX, Beam or serving imports."""
__version__ = "0.1.0"
