"""Layer families: one module per family, each owning its types' arithmetic per spatial axis
(shape, parameters, MACs, receptive-field step), their explain text and short settings.

``REGISTRY`` maps a spec ``type`` to its ``Family``; the engine walks the graph and asks each
node's family, knowing no type by name. The spec models (the fields of each type, as in
``torch.nn``) are in ``convcalc/spec.py``, so that this package, like the engine, needs neither
pydantic nor torch.
"""

from convcalc.layers import activation, conv, linear, merge, norm, pad, pool, resample, tensor  # noqa: F401  (register)
from convcalc.layers.base import REGISTRY, Family

__all__ = ["REGISTRY", "Family"]
