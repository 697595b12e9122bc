"""Layer kinds, one small file each, and the ``LAYERS`` registry (see :mod:`._base`)."""

from bnn_ppl.spec.layers._base import (
    LAYERS,
    ForwardContext,
    Layer,
    ParamBlock,
    ResolvedLayer,
    ResolvedParam,
    network_forward,
    values_per_row,
)
from bnn_ppl.spec.layers.batchnorm import BatchNorm
from bnn_ppl.spec.layers.conv import Conv2D
from bnn_ppl.spec.layers.dense import Dense
from bnn_ppl.spec.layers.layernorm import LayerNorm
from bnn_ppl.spec.layers.pool import AvgPool2D, MaxPool2D
from bnn_ppl.spec.layers.reshape import Flatten, Reshape

#: The layer kinds (re-exported by ``bnn_ppl.spec`` and ``bnn_ppl``).
LAYER_CLASSES = ["AvgPool2D", "BatchNorm", "Conv2D", "Dense", "Flatten", "LayerNorm", "MaxPool2D", "Reshape"]

__all__ = [*LAYER_CLASSES, "LAYERS", "LAYER_CLASSES", "ForwardContext", "Layer", "ParamBlock", "ResolvedLayer", "ResolvedParam",
           "network_forward", "values_per_row"]
