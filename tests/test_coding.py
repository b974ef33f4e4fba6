"""Real bitstreams: every family's symbols range-coded and decoded back exactly, file sizes at the rate the
entropy model assumes, and the compress / decompress commands with their error paths."""
import json
import math

import numpy as np
import pytest
import torch

from scvae.cli import main
from scvae.coding import HEADER_BITS, ChannelEntropyModel, compress_image, decompress_image, fit_entropy_model
from scvae.data import CropDataset
from scvae.models import MODEL_REGISTRY

from .test_output_safety import _refused
from .tiny import TINY_BACKBONE

SMALL = TINY_BACKBONE


def test_the_model_counts_symbols_and_prices_them_by_their_frequencies(tmp_path):
    symbols = torch.tensor([[[[0, 0], [1, 2]]], [[[0, 1], [1, 1]]]])  # (N 2, C 1, 2, 2)
    model = ChannelEntropyModel.fit(symbols, None, "ae")
    assert model.alphabets[0].tolist() == [0, 1, 2] and model.counts[0].tolist() == [[3, 4, 1]]
    p = np.array([3, 4, 1, 1]) / 9  # the escape symbol's pseudo-count is 1
    assert np.allclose(model.probabilities(0), p)
    expected = -np.log2(p[[0, 0, 1, 2]]).sum()
    assert math.isclose(float(model.bits(symbols)[0]), expected, rel_tol=1e-12)
    unseen = torch.tensor([[[[7, 0], [0, 0]]]])
    assert math.isclose(float(model.bits(unseen)[0]), -np.log2(p[3]) + 16 - 3 * np.log2(p[0]), rel_tol=1e-12)
    loaded = ChannelEntropyModel.load(model.save(tmp_path / "m.safetensors"))
    assert loaded.fingerprint() == model.fingerprint() and loaded.step is None
    assert ChannelEntropyModel.fit(symbols + 1, None, "ae").fingerprint() != model.fingerprint()


def test_the_context_model_counts_each_neighbour_context_and_prices_symbols_by_it(tmp_path):
    from scvae.coding.entropy_model import neighbour_context

    symbols = torch.tensor([[[[0, 2, 2], [0, 0, 2]]], [[[0, 0, 0], [0, 0, 1]]]])  # (N 2, C 1, 2, 3), mode 0
    contexts = neighbour_context(symbols.numpy(), np.array([0]))
    # left + up neighbours that are not 0, outside the grid counting as 0
    assert contexts[0, 0].tolist() == [[0, 0, 1], [0, 1, 1]] and contexts[1, 0].tolist() == [[0, 0, 0], [0, 0, 0]]
    model = ChannelEntropyModel.fit(symbols, None, "scvae", context=True)
    assert model.modes.tolist() == [0] and model.alphabets[0].tolist() == [0, 1, 2]
    assert model.counts[0].tolist() == [[7, 1, 1], [1, 0, 2], [0, 0, 0]]
    overall = np.array([8, 1, 3]) / 12
    p = np.append(np.array([1, 0, 2]) + 3 * overall, 1.0)  # context 1: smoothed towards the channel
    assert np.allclose(model.probabilities(0, 1), p / p.sum())
    table = np.stack([model.probabilities(0, k) for k in range(3)])
    index = np.searchsorted([0, 1, 2], symbols.numpy()[0, 0])
    expected = -np.log2(table[contexts[0, 0], index]).sum()
    assert math.isclose(float(model.bits(symbols)[0]), expected, rel_tol=1e-12)
    loaded = ChannelEntropyModel.load(model.save(tmp_path / "c.safetensors"))
    assert loaded.fingerprint() == model.fingerprint() and loaded.counts[0].tolist() == model.counts[0].tolist()
    assert ChannelEntropyModel.fit(symbols, None, "scvae").fingerprint() != model.fingerprint()


def _crops(n: int = 12, size: int = 16, seed: int = 0) -> CropDataset:
    import skimage.data

    photo = skimage.data.astronaut()
    rng = np.random.default_rng(seed)
    images = [photo[y:y + 40, x:x + 40] for y, x in rng.integers(0, 400, (n, 2))]
    return CropDataset(images, size, [f"c{i}" for i in range(n)], random_crop=False)


SC_RATE = dict(n_atoms=36, max_active=6, quantize_step=0.7, rate_weight=0.01)  # learned step, adaptive support


FAMILIES = ["scvae", "scvae-rate", "ae", "vae", "vqvae", "vqvae-strong", "fsq", "rvq"]


# the context model on one family of each kind of symbol: sparse, dense, one index, several indices
@pytest.mark.parametrize("model_type,context", [(m, False) for m in FAMILIES] +
                         [(m, True) for m in ("scvae-rate", "ae", "vqvae", "rvq")])
def test_every_family_round_trips_exactly_at_the_models_rate(model_type, context):
    torch.manual_seed(0)
    extra = {"scvae": dict(n_atoms=36, max_active=6), "scvae-rate": SC_RATE}.get(model_type, {})
    model = MODEL_REGISTRY[model_type.removesuffix("-rate")](**SMALL, **extra)
    model.train()(torch.rand(8, 3, 16, 16) * 2 - 1)  # initialised codebooks
    model.eval()
    entropy_model = fit_entropy_model(model, _crops(), limit=None, context=context)
    assert entropy_model.contexts == (3 if context else 1)
    assert (entropy_model.step is None) == (model_type in ("vqvae", "vqvae-strong", "fsq", "rvq"))
    if model_type == "scvae-rate":
        assert entropy_model.step == pytest.approx(0.7)  # the model's own (learned) step
    images = torch.cat([x for _, x in _crops(6, 12, seed=1).eval_batches(6)])  # unseen, smaller than the grid
    payload, ideal = 0.0, 0.0
    for x in images:
        encoded = compress_image(model, entropy_model, x[None])
        reconstruction, symbols = decompress_image(model, entropy_model, encoded.data)
        assert torch.equal(symbols, encoded.symbols)
        # the decoded image against the public API on the original codes, not the coder's own decoder
        codes = model.encode(x[None]).codes
        if entropy_model.step is not None:  # continuous values: the codes on the entropy model's grid
            step = entropy_model.step
            on_grid = model.from_symbols(model.to_symbols(codes, step), step)
            assert (on_grid - codes).abs().max() <= step * (1 + 1e-5)  # a kept sparse value never rounds to 0
            codes = on_grid
        assert torch.allclose(reconstruction, model.decode(codes).sample.clamp(-1, 1), atol=1e-5)  # float order
        assert reconstruction.shape == (1, 3, 12, 12)
        payload += 8 * len(encoded.data) - HEADER_BITS
        ideal += float(entropy_model.bits(encoded.symbols)[0])
    # range coding's rounding and the bytes naming its final point (a few bits a file, at most 72)
    assert abs(payload - ideal) <= 0.02 * ideal + 10 * len(images)


@pytest.mark.parametrize("model_type", ["scvae", "vqvae"])
def test_an_image_larger_than_the_training_size_is_coded_as_the_tiles_reconstruct_runs(model_type):
    torch.manual_seed(0)
    model = MODEL_REGISTRY[model_type](**SMALL, **({"n_atoms": 36} if model_type == "scvae" else {}))
    # 40 steps on the crops, so the codes carry the image: an untrained per-position-normalised model's
    # codes hardly matter to its output, and any quantisation step then passes the fit's PSNR check
    images, optimizer = _crops().batch(list(range(12))), torch.optim.Adam(model.parameters(), 3e-3)
    model.train()
    for _ in range(40):
        optimizer.zero_grad()
        model(images).loss.backward()
        optimizer.step()
    model.eval()
    entropy_model = fit_entropy_model(model, _crops(), limit=None, max_psnr_loss=0.02)  # below the 0.1 dB asked
    x = _crops(1, 40, seed=2).batch([0])[..., :36]  # 40 x 36 px: tiles of 16 px, the last ones flush
    encoded = compress_image(model, entropy_model, x)
    reconstruction, symbols = decompress_image(model, entropy_model, encoded.data)
    assert symbols.shape[0] > 1 and torch.equal(symbols, encoded.symbols)
    assert torch.equal(reconstruction, encoded.reconstruction) and reconstruction.shape == x.shape

    def psnr(y):
        return float(10 * torch.log10(4 / ((y - x) ** 2).mean()))

    # the target: within 0.1 dB of reconstruct --size full (the same tiles, on unquantised codes)
    assert abs(psnr(reconstruction) - psnr(model.reconstruct_any_size(x))) <= 0.1
    # a file of an earlier version (whole little-endian words, no checksum), the whole image coded in one
    # pass (flag 0), still decodes as one grid
    from scvae.coding.bitstream import HEADER, MAGIC, VERSION, WHOLE_WORDS, encode_symbols
    from scvae.coding.seal import payload_words

    one_pass = model.to_symbols(model.encode_any_size(x).codes, entropy_model.step)
    words = payload_words(encode_symbols(one_pass[0].numpy(), entropy_model))
    old = HEADER.pack(MAGIC, WHOLE_WORDS[VERSION], 0, 40, 36, entropy_model.fingerprint(), 0)
    assert torch.equal(decompress_image(model, entropy_model, old + words.astype("<u4").tobytes())[1], one_pass)


def test_a_file_decoded_with_another_model_or_damaged_is_one_error():
    from scvae.errors import ScvaeError

    torch.manual_seed(0)
    model = MODEL_REGISTRY["ae"](**SMALL).eval()
    fitted = fit_entropy_model(model, _crops(), limit=None)
    data = compress_image(model, fitted, _crops(1).batch([0])).data
    other = fit_entropy_model(model, _crops(seed=3), limit=None, step=fitted.step / 2)
    with pytest.raises(ScvaeError, match="another entropy model"):
        decompress_image(model, other, data)
    with pytest.raises(ScvaeError, match="truncated or not an scvae bitstream"):
        decompress_image(model, fitted, data[:10])
    fine = fit_entropy_model(model, _crops(), limit=None, step=fitted.step / 64)  # the step above codes 0 bits
    data = compress_image(model, fine, _crops(1).batch([0])).data
    assert len(data) > 20
    for damaged in (data[:-1], data[:-1] + bytes([data[-1] ^ 4]), data + b"\0"):
        with pytest.raises(ScvaeError, match="truncated or damaged"):
            decompress_image(model, fine, damaged)
    with pytest.raises(ScvaeError, match="fitted for a ae model, not vqvae"):
        decompress_image(MODEL_REGISTRY["vqvae"](**SMALL).eval(), fitted, data)


def test_compress_and_decompress_commands(tiny_run, tmp_path, capsys):
    from PIL import Image

    import skimage.data

    photo = skimage.data.astronaut()
    images = []
    for i in range(3):
        images.append(tmp_path / f"p{i}.png")
        Image.fromarray(photo[i * 50:i * 50 + 20, :30]).save(images[-1])
    out, back = tmp_path / "z", tmp_path / "back"
    argv = ["compress", *map(str, images), "--model", str(tiny_run), "--out", str(out), "--fit-images", "8"]
    assert main(argv) == 0
    line = capsys.readouterr().out
    assert "3 file(s)" in line and "payload / rate" in line and "ms per image" in line
    summary = json.loads((out / "compress.json").read_text())
    assert summary["header_bits"] == HEADER_BITS and len(summary["files"]) == 3
    assert all(r["bits"] == 8 * (out / r["file"]).stat().st_size for r in summary["files"])
    files = sorted(map(str, out.glob("*.scvz")))
    assert main(["decompress", *files, "--model", str(tiny_run), "--out", str(back)]) == 0
    assert sorted(p.name for p in back.iterdir()) == ["p0.png", "p1.png", "p2.png"]
    # the round trip a user guesses: the folder compress wrote, or every file in it
    assert main(["decompress", str(out), "--model", str(tiny_run), "--out", str(tmp_path / "from_folder")]) == 0
    assert main(["decompress", *map(str, sorted(out.iterdir())), "--model", str(tiny_run), "--out",
                 str(tmp_path / "from_glob")]) == 0
    assert "skipped 2 file(s) that are not .scvz bitstreams" in capsys.readouterr().out
    for folder in ("from_folder", "from_glob"):
        assert sorted(p.name for p in (tmp_path / folder).iterdir()) == ["p0.png", "p1.png", "p2.png"]
    damaged = tmp_path / "damaged"
    damaged.mkdir()
    for i, name in enumerate(sorted(p.name for p in out.glob("*.scvz"))):
        data = (out / name).read_bytes()
        (damaged / name).write_bytes(data if i < 2 else data[:-3])  # the last file is cut short
    _refused(capsys, ["decompress", str(damaged), "--model", str(tiny_run), "--out", str(tmp_path / "partial"),
                      "--entropy-model", str(out / "entropy_model.safetensors")], tmp_path, "p2.scvz: truncated or damaged")
    assert Image.open(back / "p1.png").size == (30, 20)
    context_out = tmp_path / "zc"
    assert main([*argv[:-4], "--out", str(context_out), "--fit-images", "8", "--context"]) == 0
    files = sorted(map(str, context_out.glob("*.scvz")))
    assert main(["decompress", *files, "--model", str(tiny_run), "--out", str(tmp_path / "back_c")]) == 0
    assert np.array_equal(np.asarray(Image.open(tmp_path / "back_c" / "p1.png")),
                          np.asarray(Image.open(back / "p1.png")))  # the same codes, coded otherwise
    capsys.readouterr()
    _refused(capsys, argv, tmp_path, "already exists; pass --overwrite")
    (tmp_path / "junk.scvz").write_bytes(b"SCVZ\x01\x00" + bytes(30))
    _refused(capsys, ["decompress", str(tmp_path / "junk.scvz"), "--model", str(tiny_run), "--out", str(back / "j"),
                      "--entropy-model", str(out / "entropy_model.safetensors")], tmp_path, "another entropy model")
    _refused(capsys, ["decompress", files[0], "--model", str(tiny_run), "--out", str(back / "k"), "--entropy-model",
                      str(images[0])], tmp_path, "not an scvae entropy model")
