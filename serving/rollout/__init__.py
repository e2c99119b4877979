"""Rollouts on a fleet of model servers: version labels stable/canary/previous moved step by step (`labels`), the
replicas addressed as one (`fleet`), automated canary analysis (`canary`), the config of a Kubernetes rollout
(`manifest`) and the `dcgan rollout` commands (`cli`). The model config file itself lives in a `serving.config_store`.
"""
