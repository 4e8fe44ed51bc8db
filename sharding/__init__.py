"""Sharding: plans, DistributedModelParallel wrapping, optimizers and sharded state.

Depends on `modules` and torch/torchrec distributed; never on Ray.
"""
