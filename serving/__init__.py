"""Model serving, in rooms: `model_server/` (what `dcgan serve` is: a TensorFlow-Serving-compatible server and the
pipeline's infra check), `client.py` (its Python client), `rollout/` (version labels, fleets, canary analysis) and
`studio/` (the web studio). The modules at this level are what several rooms share. See docs/serving.md.
Importing this package is free: TensorFlow and gRPC are imported by the modules that need them; it only switches
TensorFlow's oneDNN kernels on first (dcgan.runtime).
"""
from dcgan.runtime import enable_onednn

enable_onednn()  # before any TensorFlow import of this package (dcgan.runtime)
