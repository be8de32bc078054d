"""How far apart are two domains? MMD with a permutation test, per-layer and per-class profiles,
proxy A-distance, CORAL and transferability scores: pure functions on arrays and tensors."""

from transferlab.similarity.distances import coral_distance, proxy_a_distance
from transferlab.similarity.mmd import MMDResult, median_bandwidth, mmd2_statistic, mmd_test
from transferlab.similarity.report import SimilarityConfig, block_features, similarity_report
from transferlab.similarity.sfda import sfda
from transferlab.similarity.sources import measure_model, measure_source, rank_sources
from transferlab.similarity.transferability import h_score, leep, logme, nce

__all__ = ["MMDResult", "SimilarityConfig", "block_features", "coral_distance", "h_score", "leep", "logme",
           "measure_source", "median_bandwidth", "mmd2_statistic", "mmd_test", "nce", "proxy_a_distance",
           "measure_model", "rank_sources", "sfda", "similarity_report"]
