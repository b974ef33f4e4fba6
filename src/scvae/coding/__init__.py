"""Entropy coding: every family's symbols into real files and back (constriction's range coder)."""
from .bitstream import HEADER_BITS, Encoded, compress_image, decompress_image
from .entropy_model import ChannelEntropyModel
from .fit import CodedCrops, code_symbols, fit_entropy_model

__all__ = ["ChannelEntropyModel", "CodedCrops", "Encoded", "HEADER_BITS", "code_symbols", "compress_image",
           "decompress_image", "fit_entropy_model"]
