"""Model serving, in rooms: `model_server/` (what `dcgan serve` is: a TensorFlow-Serving-compatible server and the
pipeline's infra check), `client.py` (its Python client), `rollout/` (version labels, fleets, canary analysis) and
`studio/` (the web studio). The modules at this level are what several rooms share. See docs/serving.md.
Importing this package is free: TensorFlow and gRPC are imported by the modules that need them.
"""
