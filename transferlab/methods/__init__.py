"""Transfer methods, one module each, registered by name.

``get_method(name)`` returns the class; ``list_methods()`` all of them. Every method trains
through the shared loop in :mod:`transferlab.training`.
"""

from transferlab.methods.base import AdaptationData, AdaptResult, Method, MethodConfig, UnsupervisedConfig
from transferlab.methods.registry import applicable_methods, get_method, list_methods, register

# Importing a method's module registers it.
from transferlab.methods import (  # noqa: E402,F401  isort: skip
    source_only,
    target_only,
    finetune,
    dann,
    linear_probe,
    layer_transfer,
    l2_sp,
    distill,
    progressive,
    multitask,
    mixed,
    dan,
    deep_coral,
    cdan,
    mcc,
    adamatch,
    mean_teacher,
    instance_weighting,
    multi_source,
    protonet,
    shot,
    tent,
    dap,
    eszsl,
    ensemble,
)

__all__ = ["AdaptResult", "AdaptationData", "Method", "MethodConfig", "UnsupervisedConfig",
           "applicable_methods", "get_method", "list_methods", "register"]
