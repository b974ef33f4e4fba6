import json

import pytest
import torch

from scvae import SCVAE, AutoencoderModel, ScvaeError

from .tiny import TINY_BACKBONE, TINY_SCVAE

TINY = dict(TINY_SCVAE, num_res_blocks=1, n_iter=4, usage_weight=0.1, sparsity_weight=0.01)


def test_forward_shapes_and_loss_terms():
    torch.manual_seed(0)
    model = SCVAE(**TINY)
    x = torch.rand(3, 3, 16, 16) * 2 - 1
    out = model(x)
    assert out.reconstruction.shape == x.shape
    assert out.codes.shape == (3, 36, 8, 8)
    assert out.latent.shape == out.latent_hat.shape == (3, 16, 8, 8)
    assert set(out.losses) == {"recon", "latent", "l1", "usage_kl"}
    expected = out.losses["recon"] + model.config["latent_weight"] * out.losses["latent"] + 0.01 * out.losses["l1"] + 0.1 * out.losses["usage_kl"]
    assert torch.allclose(out.loss, expected)
    out.loss.backward()
    assert model.encoder.conv_in.weight.grad is not None


def test_encode_decode_agree_with_forward():
    torch.manual_seed(0)
    model = SCVAE(**TINY).eval()
    x = torch.rand(2, 3, 16, 16) * 2 - 1
    codes = model.encode(x).codes
    assert torch.allclose(model.decode(codes).sample, model(x).reconstruction, atol=1e-5)
    # the latent is scale-normalised: each position has unit RMS, so lam has a fixed meaning
    z = model.latent(x)
    assert torch.allclose(z.square().mean(1), torch.ones(2, 8, 8), atol=1e-4)


def test_fully_convolutional_on_other_sizes():
    model = SCVAE(**TINY).eval()
    codes = model.encode(torch.zeros(1, 3, 24, 40)).codes
    assert codes.shape == (1, 36, 12, 20)


@pytest.mark.parametrize("model_type, norm", [("scvae", "group"), ("ae", "group"), ("vqvae", "channel"),
                                              ("fsq", "channel")])
def test_circular_padding_makes_every_family_shift_equivariant(model_type, norm):
    """With ``padding_mode="circular"`` no layer can tell where the border is: shifting the image by one
    cell shifts the latent by one cell, exactly (the test fails if any layer still pads with zeros)."""
    from scvae.models.base import MODEL_REGISTRY

    torch.manual_seed(0)
    model = MODEL_REGISTRY[model_type](**TINY_BACKBONE, padding_mode="circular", norm=norm).eval()
    x = torch.randn(2, 3, 16, 24)
    f = model.downsampling_factor
    with torch.no_grad():
        z, z_shifted = (model.encoder(t) for t in (x, x.roll((f, -f), (2, 3))))
        y, y_shifted = (model.decoder(t) for t in (z, z.roll((1, -1), (2, 3))))
    assert torch.allclose(z_shifted, z.roll((1, -1), (2, 3)), atol=1e-5)
    assert torch.allclose(y_shifted, y.roll((f, -f), (2, 3)), atol=1e-5)
    zeros = MODEL_REGISTRY[model_type](**TINY_BACKBONE).eval()
    with torch.no_grad():
        assert not torch.allclose(zeros.encoder(x.roll((f, -f), (2, 3))), zeros.encoder(x).roll((1, -1), (2, 3)),
                                  atol=1e-3)


def test_padding_mode_is_saved_and_old_configs_load_with_zero_padding(tmp_path):
    model = SCVAE(**TINY, padding_mode="reflect")
    model.save_pretrained(tmp_path / "m")
    assert AutoencoderModel.from_pretrained(tmp_path / "m").config["padding_mode"] == "reflect"
    config = json.loads((tmp_path / "m" / "config.json").read_text())
    del config["padding_mode"]  # a model saved before the option existed
    (tmp_path / "m" / "config.json").write_text(json.dumps(config))
    assert AutoencoderModel.from_pretrained(tmp_path / "m").encoder.conv_in.padding_mode == "zeros"


def test_save_and_load_round_trip_is_bit_identical(tmp_path):
    torch.manual_seed(0)
    model = SCVAE(**TINY, learn_dictionary=True, per_iteration=True).eval()
    x = torch.rand(2, 3, 16, 16) * 2 - 1
    model.save_pretrained(tmp_path / "m")
    assert json.loads((tmp_path / "m" / "config.json").read_text())["model_type"] == "scvae"
    loaded = AutoencoderModel.from_pretrained(tmp_path / "m")
    assert isinstance(loaded, SCVAE)
    assert torch.equal(loaded(x).reconstruction, model(x).reconstruction)
    assert torch.equal(SCVAE.from_pretrained(tmp_path / "m").encode(x).codes, model.encode(x).codes)


def test_loading_broken_checkpoints_gives_clear_errors(tmp_path):
    model = SCVAE(**TINY)
    model.save_pretrained(tmp_path / "m")
    weights = tmp_path / "m" / "model.safetensors"
    data = weights.read_bytes()
    weights.write_bytes(data[: len(data) // 2])
    with pytest.raises(ScvaeError, match="truncated"):
        SCVAE.from_pretrained(tmp_path / "m")
    # a checkpoint of a differently-shaped model
    SCVAE(**{**TINY, "n_atoms": 49}).save_pretrained(tmp_path / "other")
    (tmp_path / "m" / "model.safetensors").write_bytes((tmp_path / "other" / "model.safetensors").read_bytes())
    with pytest.raises(ScvaeError, match="do not match"):
        SCVAE.from_pretrained(tmp_path / "m")
    (tmp_path / "m" / "config.json").write_text('{"model_type": "gan"}')
    with pytest.raises(ScvaeError, match="unknown model_type"):
        SCVAE.from_pretrained(tmp_path / "m")
    with pytest.raises(ScvaeError, match="not a model directory"):
        SCVAE.from_pretrained(tmp_path / "missing")


def test_invalid_model_options_are_rejected():
    with pytest.raises(ScvaeError, match="perfect square"):
        SCVAE(**{**TINY, "z_channels": 15})
    with pytest.raises(ValueError, match="recon_loss"):
        SCVAE(**{**TINY, "recon_loss": "huber"})
    with pytest.raises(ValueError, match="padding_mode must be one of zeros, reflect, replicate, circular"):
        SCVAE(**{**TINY, "padding_mode": "mirror"})
    with pytest.raises(ValueError, match="norm must be one of group, channel"):
        SCVAE(**{**TINY, "norm": "batch"})


def test_channel_norm_is_layer_norm_over_each_positions_channels():
    """``norm="channel"``: every GroupNorm becomes LayerNorm over the channels of each position, so a position's
    statistics do not depend on the field's size (checked against torch's layer_norm)."""
    torch.manual_seed(0)
    model = SCVAE(**TINY, norm="channel")
    norm = model.encoder.out[0]
    with torch.no_grad():
        norm.weight.normal_(), norm.bias.normal_()
    x = torch.randn(2, norm.num_channels, 5, 7) * 3 + 1
    ref = torch.nn.functional.layer_norm(x.permute(0, 2, 3, 1), (x.shape[1],), norm.weight, norm.bias, eps=1e-6)
    assert torch.allclose(norm(x), ref.permute(0, 3, 1, 2), atol=1e-5)
    assert torch.allclose(norm(x)[..., :3, :4], norm(x[..., :3, :4]), atol=1e-6)  # a sub-field: same values
    assert set(SCVAE(**TINY).state_dict()) == set(model.state_dict())  # the same parameters as GroupNorm


def test_channel_norm_models_work_channels_last_and_return_plain_layout():
    """With the channel norm the encoder and decoder run channels-last inside (every residual block's output),
    which is what spares a copy in and out of the norm's layout at each block, and hand back ordinary
    contiguous (B, C, H, W) tensors, equal to the same layers chained by hand on the plain (B, C, H, W) input
    (the computation before the layout change)."""
    torch.manual_seed(0)
    model = SCVAE(**TINY, norm="channel").eval()
    layouts: list[bool] = []
    for block in model.decoder.up[0]:
        block.register_forward_hook(lambda m, i, out: layouts.append(
            out.is_contiguous(memory_format=torch.channels_last)))
    x = torch.rand(2, 3, 16, 16) * 2 - 1
    with torch.no_grad():
        z, out = model.encoder(x), model(x).reconstruction
    assert layouts and all(layouts)
    assert z.is_contiguous() and out.is_contiguous()
    with torch.no_grad():
        enc = model.encoder
        assert torch.allclose(enc.out(enc.mid(enc.down(enc.conv_in(x)))), z, atol=1e-5)
    assert not SCVAE(**TINY, norm="group").encoder(x).is_contiguous(memory_format=torch.channels_last)


def test_presets_use_channel_norm_and_files_written_before_it_load_as_groupnorm(tmp_path):
    """The presets and the constructor normalise per position; a saved model's config.json or a run's
    config.yaml without the key (written before the option) still builds the GroupNorm model it trained."""
    from scvae import build_model, resolve_config
    from scvae.config import load_run_config, save_run_config

    assert build_model(resolve_config("small-32")).config["norm"] == SCVAE(**TINY).config["norm"] == "channel"
    torch.manual_seed(0)
    old = SCVAE(**TINY, norm="group").eval()
    old.save_pretrained(tmp_path / "m")
    config = json.loads((tmp_path / "m" / "config.json").read_text())
    del config["norm"]
    (tmp_path / "m" / "config.json").write_text(json.dumps(config))
    loaded = AutoencoderModel.from_pretrained(tmp_path / "m")
    x = torch.rand(2, 3, 16, 16) * 2 - 1
    assert loaded.config["norm"] == "group" and torch.equal(loaded.reconstruct(x), old.reconstruct(x))
    run = resolve_config("tiny")
    save_run_config(run, tmp_path / "config.yaml")
    text = (tmp_path / "config.yaml").read_text()
    assert "norm: channel" in text and load_run_config(tmp_path / "config.yaml").model["norm"] == "channel"
    (tmp_path / "config.yaml").write_text(text.replace("  norm: channel\n", ""))
    assert load_run_config(tmp_path / "config.yaml").model["norm"] == "group"


@pytest.mark.parametrize("preset, millions", [("paper-f16", 71.75), ("paper-f8", 64.72)])
def test_paper_presets_match_the_official_backbone_size(preset, millions):
    """Encoder + decoder parameters equal those of the official configs (research digest, section 2.2)."""
    from scvae import build_model, resolve_config

    model = build_model(resolve_config(preset))
    n = sum(p.numel() for p in model.encoder.parameters()) + sum(p.numel() for p in model.decoder.parameters())
    assert n / 1e6 == pytest.approx(millions, abs=0.005)
    assert model.lista.dictionary.shape == (256, 512) and model.lista.n_iter == 16


@pytest.mark.parametrize("model_type", ["scvae", "ae", "vae", "vqvae", "vqvae-strong", "fsq", "rvq"])
def test_every_inference_method_runs_without_autograd_in_eval_mode(model_type):
    from scvae.models import MODEL_REGISTRY

    model = MODEL_REGISTRY[model_type](**TINY_BACKBONE, **({"n_atoms": 36, "max_active": 6} if model_type == "scvae" else {}))
    model.train()(torch.rand(4, 3, 16, 16) * 2 - 1)  # initialised codebooks
    model.eval()
    x = torch.rand(2, 3, 16, 16) * 2 - 1
    codes = model.encode(x).codes
    vectors = model.code_vectors(codes)
    outputs = [codes, model.decode(codes).sample, model.reconstruct(x), vectors, model.nearest_codes(vectors)]
    assert not any(t.requires_grad for t in outputs)
