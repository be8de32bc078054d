"""A prepared project on small blob domains (source trained, prepared splits written), for stage tests."""

import sys
from pathlib import Path

from tasks.io import write_manifest
from tasks.paths import PREPARED_SOURCE, PREPARED_TARGET, PREPARED_TEST, SOURCE_MODEL
from transferlab.data import save_domain
from transferlab.models import save_model
from transferlab.training import TrainSettings, train_classifier

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "transferlab"))
from synthetic_domains import blob_data, blob_test, mlp  # noqa: E402


def write_blob_project(root: Path, source_epochs: int) -> None:
    """Prepared source/target/test splits (10 labels per class, 90 unlabelled) and a trained mlp source model."""
    data = blob_data(offset=3.0, labels_per_class=10, unlabelled=90)
    source = train_classifier(mlp(seed=0), data.source_train, data.source_val,
                              TrainSettings(epochs=source_epochs, batch_size=32, seed=0)).model
    for folder, parts in ((PREPARED_SOURCE, {"train": data.source_train, "val": data.source_val}),
                          (PREPARED_TARGET, {"labelled": data.target_labelled, "unlabelled": data.target_unlabelled}),
                          (PREPARED_TEST, {"test": blob_test(offset=3.0)})):
        (root / folder).mkdir(parents=True)
        for split, domain in parts.items():
            save_domain(domain, root / folder / f"{split}.npz")
        write_manifest(root / folder, "t", [], domain="blobs", classes=list(data.source_train.classes),
                       labels_per_class=10)
    save_model(source, root / SOURCE_MODEL)
