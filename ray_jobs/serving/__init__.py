"""Serving: a trained run as a self-contained `torch.export` program, and batch prediction with it."""
