"""Sparse codes stored as they are: per position, the indices of its active atoms and their values.

A dense (B, K, h, w) float32 tensor spends 4 K bytes per position although only a few atoms are active; the
packed form spends 6 bytes per active atom (int16 index, float32 value), padded to the largest support in
the tensor::

    support, values = pack_codes(codes)           # (B, k, h, w) int16, -1 where unused; (B, k, h, w) float32
    codes = unpack_codes(support, values, n_atoms=256)
"""
from __future__ import annotations

import torch

from ..files import ordinary_mode


def pack_codes(codes: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """Codes (B, K, h, w) -> (support, values), both (B, k, h, w) with k the most active atoms at any position:
    support holds atom indices (int16; -1 in unused slots, ordered by index), values the codes there (0 in
    unused slots)."""
    if codes.shape[1] > torch.iinfo(torch.int16).max:
        raise ValueError(f"at most {torch.iinfo(torch.int16).max} atoms fit int16 indices, got {codes.shape[1]}")
    active = codes != 0
    k = max(int(active.sum(1).max()), 1) if codes.numel() else 1
    # sort the active atoms first (stable: in index order), then keep the first k slots
    order = torch.sort((~active).to(torch.uint8), dim=1, stable=True).indices[:, :k]
    used = torch.gather(active, 1, order)
    support = torch.where(used, order, torch.full_like(order, -1)).to(torch.int16)
    values = torch.where(used, torch.gather(codes, 1, order), torch.zeros((), dtype=codes.dtype))
    return support, values.float()


def unpack_codes(support: torch.Tensor, values: torch.Tensor, n_atoms: int) -> torch.Tensor:
    """The inverse of :func:`pack_codes`: (B, k, h, w) support and values -> dense codes (B, n_atoms, h, w)."""
    if support.shape != values.shape:
        raise ValueError(f"support {tuple(support.shape)} and values {tuple(values.shape)} differ in shape")
    if support.numel() and int(support.max()) >= n_atoms:
        raise ValueError(f"support names atom {int(support.max())} but the model has {n_atoms} atoms")
    b, _, h, w = support.shape
    used = support >= 0
    dense = values.new_zeros(b, n_atoms + 1, h, w)  # slot n_atoms takes the unused entries, then is dropped
    index = torch.where(used, support.long(), torch.full_like(support, n_atoms, dtype=torch.long))
    return dense.scatter_(1, index, torch.where(used, values, torch.zeros_like(values)))[:, :n_atoms]


def save_codes(path: str, codes: torch.Tensor | list[torch.Tensor], metadata: dict[str, str]) -> str:
    """Write codes as ``scvae encode`` does: one tensor as ``codes``, a list (whole images on their own grids)
    as ``codes.<i>``. Real-valued codes are packed (``support``/``values``, or ``support.<i>``/``values.<i>``)
    when that is smaller than dense float32; ``metadata["layout"]`` says which (``dense`` or ``packed``) and
    :func:`load_codes` reads either back. Returns the layout."""
    from safetensors.torch import save_file

    tensors = [codes] if isinstance(codes, torch.Tensor) else list(codes)
    names = ["codes"] if isinstance(codes, torch.Tensor) else [f"codes.{i}" for i in range(len(tensors))]
    packed = [pack_codes(c) if c.is_floating_point() else None for c in tensors]
    dense_bytes = sum(4 * c.numel() for c in tensors)
    use_packed = all(p is not None for p in packed) and sum(6 * p[0].numel() for p in packed) < dense_bytes
    out: dict[str, torch.Tensor] = {}
    for name, c, p in zip(names, tensors, packed):
        if use_packed:
            suffix = name[len("codes"):]
            out["support" + suffix], out["values" + suffix] = p[0].contiguous(), p[1].contiguous()
        else:
            out[name] = c.contiguous()
    meta = {**metadata, "layout": "packed" if use_packed else "dense"}
    if use_packed:
        meta["n_atoms"] = str(tensors[0].shape[1])
    save_file(out, path, metadata=meta)
    ordinary_mode(path)
    return meta["layout"]


def load_codes(path: str) -> torch.Tensor | list[torch.Tensor]:
    """The codes a :func:`save_codes` file holds, dense: one (N, K, h, w) tensor, or a list of them."""
    from safetensors import safe_open

    with safe_open(path, "pt") as f:
        meta, keys = f.metadata() or {}, set(f.keys())
        tensors = {k: f.get_tensor(k) for k in keys}
    if meta.get("layout") == "packed":
        n_atoms = int(meta["n_atoms"])
        dense = {"codes" + k[len("support"):]: unpack_codes(v, tensors["values" + k[len("support"):]], n_atoms)
                 for k, v in tensors.items() if k.startswith("support")}
    else:
        dense = tensors
    if "codes" in dense:
        return dense["codes"]
    return [dense[f"codes.{i}"] for i in range(len(dense))]
