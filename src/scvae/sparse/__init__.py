"""Sparse coding: DCT dictionaries, reference lasso solvers (ISTA, FISTA), the learned LISTA layer and the
drop-in SparseCodingBottleneck built on it, its rate model, and packed storage of sparse codes."""
from .bottleneck import BottleneckOutput, SparseCodingBottleneck, rms_normalize, soft_usage_kl
from .dictionary import dct_dictionary, spectral_norm_sq
from .lista import LISTA, LISTAOutput, from_rows, keep_largest, to_rows
from .rate import SparseCodeRate
from .solvers import fista, ista, lasso_objective, soft_threshold
from .storage import load_codes, pack_codes, save_codes, unpack_codes

__all__ = ["dct_dictionary", "spectral_norm_sq", "LISTA", "LISTAOutput", "ista", "fista",
           "lasso_objective", "soft_threshold", "to_rows", "from_rows", "keep_largest", "SparseCodingBottleneck",
           "BottleneckOutput", "rms_normalize", "soft_usage_kl", "SparseCodeRate", "pack_codes", "unpack_codes",
           "save_codes", "load_codes"]
