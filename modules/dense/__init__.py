"""Dense architectures: they take pooled embeddings and return per-task logits.

Importing this package imports every module in it, which registers each architecture in
`registry.ARCHS` under its name.
"""

import importlib
import pkgutil

from modules.dense.base import ArchOutput, DenseArch, TableSet, embedding_key
from modules.dense.registry import ARCHS, build_arch, register

for _module in pkgutil.iter_modules(__path__):
    if not _module.name.startswith("_") and not _module.name.endswith("_test"):
        importlib.import_module(f"{__name__}.{_module.name}")

__all__ = ["ARCHS", "ArchOutput", "DenseArch", "TableSet", "build_arch", "embedding_key", "register"]
