"""Seesaw models: dataset specs, dense architectures and the full sparse + dense model.

Nothing here imports Ray or needs a process group, so every module is unit-testable in a
plain Python process.
"""
