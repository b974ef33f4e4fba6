"""Models saved before every family got a bottleneck module of its own (tests/data/saved_before_bottlenecks,
written by the code of that time) still load, and encode and decode as they did then."""
from pathlib import Path

import pytest
import torch
from safetensors.torch import load_file

from scvae.models import AutoencoderModel

SAVED = Path(__file__).parent / "data" / "saved_before_bottlenecks"


@pytest.mark.parametrize("family", ["vqvae", "vqvae-strong", "fsq", "rvq", "ae", "vae"])
def test_a_model_saved_before_the_bottleneck_modules_loads_and_codes_as_it_did(family):
    model = AutoencoderModel.from_pretrained(SAVED / family)
    expected = load_file(str(SAVED / family / "expected.safetensors"))
    codes = model.encode(expected["images"]).codes
    if codes.is_floating_point():  # the same up to the thread count's summation order
        assert torch.allclose(codes, expected["codes"], atol=1e-5)
    else:
        assert torch.equal(codes, expected["codes"])
    assert torch.allclose(model.decode(codes).sample, expected["reconstruction"], atol=1e-5)
