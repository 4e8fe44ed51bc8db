"""The sharding layer's user error, importable without torch (`ray_jobs.core.errors` lists it
among the errors every entry point reports in one line)."""

from __future__ import annotations


class CheckpointError(ValueError):
    """A checkpoint is incomplete, corrupted, or does not belong to this model."""
