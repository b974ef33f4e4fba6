"""ONNX export: both graphs run in onnxruntime at other batch and image sizes and match PyTorch."""
import numpy as np
import pytest
import torch

from scvae.cli import main
from scvae.models import MODEL_REGISTRY

from .tiny import TINY_BACKBONE

ort = pytest.importorskip("onnxruntime")
SMALL = TINY_BACKBONE


@pytest.mark.parametrize("model_type", ["scvae", "scvae-no-refit", "ae", "ae-channel-norm", "vqvae-strong", "fsq",
                                        "rvq"])
def test_onnx_encoder_and_decoder_match_pytorch_at_any_size(model_type, tmp_path):
    from scvae.export import export_onnx

    torch.manual_seed(0)
    refit = model_type == "scvae"
    kwargs = dict(SMALL, n_atoms=36, max_active=6, refit=refit) if model_type.startswith("scvae") else dict(SMALL)
    if model_type.endswith("-channel-norm"):
        kwargs["norm"] = "channel"
    model = MODEL_REGISTRY[model_type.removesuffix("-no-refit").removesuffix("-channel-norm")](**kwargs)
    model.train()(torch.rand(8, 3, 16, 16) * 2 - 1)  # trained state (k-means init, usage statistics)
    paths = export_onnx(model.eval(), tmp_path)
    assert not model.training
    x = torch.rand(3, 3, 24, 40) * 2 - 1  # neither the export's batch nor its size
    codes = ort.InferenceSession(str(paths["encoder"])).run(None, {"images": x.numpy()})[0]
    reference = model.encode(x).codes
    assert codes.shape == tuple(reference.shape)
    if np.issubdtype(codes.dtype, np.integer):
        # nearest-code indices: a k-means init from fewer rows than codes leaves duplicate codes, and which of
        # two equal codes wins is the runtime's choice, so compare the vectors the indices stand for; float
        # near-ties may still pick a neighbour. A residual VQ's stages (B, S, h, w) have duplicates too; its
        # code vectors are the sum over the stages
        chosen, expected = (model.code_vectors(c).flatten(2) for c in (torch.from_numpy(codes), reference))
        assert ((chosen - expected).abs().amax(1) <= 1e-5).float().mean() >= 0.99
    elif refit:  # the ridge keeps the refit well conditioned: the same support and nearly the same values
        assert ((codes != 0) == (reference.numpy() != 0)).mean() >= 0.999
        assert np.abs(codes - reference.numpy()).max() <= 1e-3
    else:
        assert np.abs(codes - reference.numpy()).max() <= 1e-4
    images = ort.InferenceSession(str(paths["decoder"])).run(None, {"codes": codes})[0]
    with torch.no_grad():
        assert np.abs(images - model.decode(torch.from_numpy(codes)).sample.numpy()).max() <= 1e-4


@pytest.mark.parametrize("threads", [1, 2])
def test_onnx_agrees_with_pytorch_at_the_preset_size(threads, tmp_path):
    """SC-VAE's preset bottleneck (K 256, k 33, refit) at three input sizes, under one thread and two:
    the same support at >= 99.9 % of positions, codes within 1e-3 there (the refit's ridge bounds the
    systems' condition number), images within 1e-4. Where two atoms tie for the 33rd place, the two
    runtimes' float sums may pick different ones, and that position's refit differs."""
    from scvae.export import export_onnx
    from scvae.models import SCVAE

    torch.manual_seed(0)
    previous = torch.get_num_threads()
    torch.set_num_threads(threads)
    try:
        model = SCVAE(ch=8, ch_mult=[1, 2], z_channels=64, n_atoms=256, max_active=33)
        model.train()(torch.rand(8, 3, 32, 32) * 2 - 1)
        paths = export_onnx(model.eval(), tmp_path)
        options = ort.SessionOptions()
        options.intra_op_num_threads = threads
        encoder = ort.InferenceSession(str(paths["encoder"]), options)
        decoder = ort.InferenceSession(str(paths["decoder"]), options)
        for size in [(64, 64), (64, 96), (128, 128)]:
            x = torch.rand(2, 3, *size) * 2 - 1
            codes = encoder.run(None, {"images": x.numpy()})[0]
            reference = model.encode(x).codes.numpy()
            same = ((codes != 0) == (reference != 0)).all(axis=1)  # (B, h, w): positions with one support
            assert same.mean() >= 0.999
            assert np.abs(codes - reference).transpose(0, 2, 3, 1)[same].max() <= 1e-3
            images = decoder.run(None, {"codes": codes})[0]
            assert np.abs(images - model.decode(torch.from_numpy(codes)).sample.numpy()).max() <= 1e-4
    finally:
        torch.set_num_threads(previous)


def test_export_command_writes_both_graphs(tiny_run, tmp_path, capsys):
    assert main(["export", "--model", str(tiny_run), "--out", str(tmp_path / "onnx")]) == 0
    assert (tmp_path / "onnx" / "encoder.onnx").is_file() and (tmp_path / "onnx" / "decoder.onnx").is_file()
    assert main(["export", "--model", str(tiny_run), "--out", str(tmp_path / "onnx")]) == 2  # no silent overwrite
    assert "--overwrite" in capsys.readouterr().err
