"""Seesaw's Ray jobs. Importing the package sets Ray's env-var defaults before Ray is imported
(`core.console`: a readable console; `--verbose` shows everything)."""

from ray_jobs.core.console import quiet_env_defaults

quiet_env_defaults()
