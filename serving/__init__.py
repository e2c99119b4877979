"""Model serving: a TensorFlow-Serving-compatible model server (`dcgan serve`), its Python client, version-label
rollouts, the infra check of the pipeline, and the serving commands of the dcgan CLI. See docs/serving.md.

Importing this package is free: TensorFlow and gRPC are imported by the modules that need them.
"""
