"""A prepared project (prepared splits and a trained source model written as prepare + pretrain leave
them), for stage tests on small blob domains and for benchmarks/scale.py on digits."""

import sys
from pathlib import Path

from tasks.io import write_manifest
from tasks.paths import PREPARED_SOURCE, PREPARED_TARGET, PREPARED_TEST, SOURCE_MODEL
from transferlab.data import save_domain
from transferlab.models import save_model
from transferlab.training import TrainSettings, train_classifier

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "transferlab"))
from synthetic_domains import blob_data, blob_test, mlp  # noqa: E402


def write_prepared(root: Path, data, source_model, labels_per_class: int, kind: str = "t", test=None,
                   **manifest) -> None:
    """``data``'s source train/val and target labelled/unlabelled splits (and ``test``, when given) under
    the prepared folders, each with a manifest of ``kind``; ``source_model`` as the source model."""
    folders = [(PREPARED_SOURCE, {"train": data.source_train, "val": data.source_val}),
               (PREPARED_TARGET, {"labelled": data.target_labelled, "unlabelled": data.target_unlabelled})]
    if test is not None:
        folders.append((PREPARED_TEST, {"test": test}))
    for folder, parts in folders:
        (root / folder).mkdir(parents=True)
        for split, domain in parts.items():
            save_domain(domain, root / folder / f"{split}.npz")
        write_manifest(root / folder, kind, [], **manifest, classes=list(data.source_train.classes),
                       labels_per_class=labels_per_class)
    (root / SOURCE_MODEL).mkdir(parents=True, exist_ok=True)
    save_model(source_model, root / SOURCE_MODEL)


def write_blob_project(root: Path, source_epochs: int, labels_per_class: int = 10, unlabelled: int = 90,
                       with_test: bool = True) -> None:
    """Prepared source/target(/test) splits on blobs and an mlp source model trained ``source_epochs``."""
    data = blob_data(offset=3.0, labels_per_class=labels_per_class, unlabelled=unlabelled)
    source = train_classifier(mlp(seed=0), data.source_train, data.source_val,
                              TrainSettings(epochs=source_epochs, batch_size=32, seed=0)).model
    if with_test:
        write_prepared(root, data, source, labels_per_class, test=blob_test(offset=3.0), domain="blobs")
    else:
        write_prepared(root, data, source, labels_per_class)
