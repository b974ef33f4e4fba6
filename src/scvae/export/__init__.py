"""Export: trained models to ONNX (encoder: images -> codes, decoder: codes -> images)."""
from .onnx import export_onnx

__all__ = ["export_onnx"]
