"""`transferlab similarity`: distances between two datasets without running the pipeline.

Measured in the input space (after bringing both domains to one shape), since no source model
exists yet; the pipeline's similarity stage adds the per-layer view through the trained model.
"""

from __future__ import annotations

from pathlib import Path

from transferlab.data import DomainSpec, harmonise, load_domain
from transferlab.data.lazy import in_memory
from transferlab.similarity import coral_distance, mmd_test, proxy_a_distance


def similarity_table(source: str, target: str, *, source_path: str | None = None, target_path: str | None = None,
                     image_size: int = 28, permutations: int = 200, max_samples: int = 1000,
                     seed: int = 0, root: Path = Path(".")) -> list[tuple[str, str]]:
    from tasks.datasets import register_tracked

    register_tracked(root)  # the project's DVC-tracked datasets are named like built-ins
    src = load_domain(DomainSpec(name=source, path=source_path, max_samples=max_samples), seed=seed)
    tgt = load_domain(DomainSpec(name=target, path=target_path, max_samples=max_samples), seed=seed)
    channels = max(src.x.shape[1], tgt.x.shape[1]) if src.is_image and tgt.is_image else 1
    src, tgt = harmonise(src, image_size, channels), harmonise(tgt, image_size, channels)
    xs = in_memory(src.x).reshape(len(src), -1)  # subsampled to max_samples: small enough to hold
    xt = in_memory(tgt.x).reshape(len(tgt), -1)
    result = mmd_test(xs, xt, n_permutations=permutations, seed=seed)
    rows = [
        ("source", f"{src.name} ({len(src)} samples)"),
        ("target", f"{tgt.name} ({len(tgt)} samples)"),
        ("MMD² (input space)", f"{result.mmd2:.5g}"),
        ("p-value", f"{result.p_value:.4g} ({permutations} permutations)"),
        (f"{100 * 0.95:.0f} % CI of MMD²", f"[{result.ci[0]:.5g}, {result.ci[1]:.5g}]"),
        ("normalised MMD² (0..1)", f"{result.normalised:.4f}"),
        ("estimator", result.estimator),
        ("proxy A-distance", f"{proxy_a_distance(xs, xt, seed=seed):.4f}"),
        ("CORAL distance", f"{coral_distance(xs, xt):.5g}"),
    ]
    return rows

