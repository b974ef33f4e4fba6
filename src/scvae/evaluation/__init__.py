"""Evaluation: per-image metrics and representation diagnostics over whole datasets."""
from .metrics import psnr_per_image, ssim_per_image, to_unit
from .diagnostics import DIAGNOSTICS, CodebookDiagnostics, PosteriorDiagnostics, SparseCodeDiagnostics, hoyer
from .rate import RateReport, entropy_bits, estimate_rate
from .reconstruction import ReconstructionReport, evaluate_reconstruction

__all__ = ["psnr_per_image", "ssim_per_image", "to_unit",
           "ReconstructionReport", "evaluate_reconstruction", "DIAGNOSTICS", "CodebookDiagnostics",
           "PosteriorDiagnostics", "SparseCodeDiagnostics", "hoyer", "RateReport", "entropy_bits", "estimate_rate"]
