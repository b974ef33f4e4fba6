"""Downstream uses of the codes: interpolation, generation from a code prior, unsupervised and few-label
segmentation, and representation probes."""
from .features import FeatureExtractor, FeatureSpec, JoinedFeatures
from .few_label import FewLabelResult, few_label_segmentation
from .generation import CodePrior, GenerationResult, collect_code_vectors, fit_code_prior, generate
from .interpolation import Interpolation, interpolate, monotonicity_violation
from .probe import ProbeResult, ProbeRow, probe
from .region_merging import Hierarchy, MergeOptions, RegionMerging, build_hierarchy, segment_regions
from .segmentation import CodeFeatures, FeatureGrid, PixelFeatures, SegmentOptions, segment
from .segmentation_eval import comparison_methods, evaluate_segmentation
from .segmentation_metrics import SegmentationScorer, match_clusters, score_all

__all__ = ["CodePrior", "GenerationResult", "collect_code_vectors", "fit_code_prior", "generate", "Interpolation",
           "interpolate", "monotonicity_violation", "CodeFeatures", "FeatureGrid", "PixelFeatures", "SegmentOptions",
           "segment", "comparison_methods", "evaluate_segmentation", "SegmentationScorer", "match_clusters",
           "score_all", "Hierarchy", "MergeOptions", "RegionMerging", "build_hierarchy", "segment_regions",
           "FeatureExtractor", "FeatureSpec", "JoinedFeatures", "FewLabelResult", "few_label_segmentation", "ProbeResult", "ProbeRow",
           "probe"]
