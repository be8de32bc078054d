"""Domains: the registry of datasets, shift transforms, harmonisation and splits."""

from transferlab.data.files import load_domain_file, save_domain
from transferlab.data.harmonise import harmonise
from transferlab.data.labels import (DOMAIN_ADAPTATION, TASK_TRANSFER, LabelSpaces, Road, label_spaces,
                                     reorder_classes, select_classes)
from transferlab.data.lazy import LazyArray
from transferlab.data.registry import (DatasetInfo, DomainRecipe, DomainSpec, build_domain, check_same_label_space,
                                       check_spec, list_datasets, load_domain, register_dataset)
from transferlab.data.shifts import ShiftSpec, apply_shift
from transferlab.data.splits import (TargetSplits, row_hashes, source_split_ids, split_source, split_target,
                                     stratified_subsample, target_split_ids)
from transferlab.data.types import Domain

__all__ = [
    "DOMAIN_ADAPTATION", "LabelSpaces", "Road", "TASK_TRANSFER", "label_spaces", "reorder_classes", "select_classes",
    "DatasetInfo", "Domain", "DomainRecipe", "DomainSpec", "LazyArray", "ShiftSpec", "TargetSplits", "apply_shift",
    "build_domain", "check_same_label_space", "check_spec", "harmonise", "list_datasets", "load_domain",
    "load_domain_file", "register_dataset", "row_hashes", "save_domain", "source_split_ids", "split_source",
    "split_target", "stratified_subsample", "target_split_ids",
]
