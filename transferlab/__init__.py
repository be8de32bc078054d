"""transferlab: the core library of the transfer-learning pipeline.

Pure PyTorch/numpy. Nothing in this package knows about Prefect, DVC, MLflow or the
project's file layout; those live in ``tasks/`` and ``flows/``.
"""

__version__ = "0.1.0"
