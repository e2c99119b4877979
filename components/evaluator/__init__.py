"""The FID evaluator: a TFX component that evaluates a candidate generator against the eval split, compares it
with the latest blessed model, and writes the `ModelBlessing` the stock Pusher honours. Thin glue over
`dcgan.metrics.evaluate`; the component is in `components.evaluator.component` (importing this package is cheap).
"""
