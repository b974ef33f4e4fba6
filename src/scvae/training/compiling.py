"""``torch.compile`` for training, where a graph its backend cannot compile runs eagerly instead of stopping
the run.

Dynamo cuts a model into graphs at its breaks and hands each to the backend. On torch 2.13, inductor fails
on one graph of vector-quantize-pytorch's quantiser (the strong VQ-VAE): AOTAutograd's partitioner asserts
"Node view was invalid, but is output", and ``scvae train compile=true`` ended in a traceback. Each graph
the backend rejects now runs as traced, eagerly, the others stay compiled, and the log says so once per graph.
"""
from __future__ import annotations

import logging
from typing import Callable

import torch
from torch import nn

from ..errors import ScvaeError

log = logging.getLogger(__name__)


def compile_model(model: nn.Module, backend: str | Callable) -> nn.Module:
    """``torch.compile(model)`` with ``backend`` (a registered name or a compiler function), falling back to
    eager execution graph by graph where the backend raises."""
    if isinstance(backend, str):
        from torch._dynamo import list_backends, lookup_backend

        try:
            compiler = lookup_backend(backend)
        except Exception:
            raise ScvaeError(f"compile_backend {backend!r} is not a torch.compile backend; choose from: "
                             f"{', '.join(list_backends())}") from None
    else:
        compiler = backend
    name = backend if isinstance(backend, str) else getattr(backend, "__name__", "backend")

    def with_eager_fallback(graph: torch.fx.GraphModule, example_inputs):
        try:
            return compiler(graph, example_inputs)
        except Exception as exc:  # the backend's own failure, whatever its type: this graph runs as traced
            log.warning("torch.compile (%s) could not compile a graph of %d nodes (%s: %s); it runs eagerly",
                        name, len(graph.graph.nodes), type(exc).__name__, (str(exc).splitlines() or [""])[0][:120])
            return graph.forward

    return torch.compile(model, backend=with_eager_fallback)
