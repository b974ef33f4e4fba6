"""Training at scale on one machine: streamed data, decoding workers, gradient accumulation, threads."""
import shutil

import pytest
import torch
from PIL import Image
from safetensors.torch import load_file

from scvae.cli import main
from scvae.data import folder_datasets
from scvae.data.streaming import LazyImages, estimated_bytes, use_memory_cache

from .conftest import TINY, interrupted_then_resumed


def _weights(run):
    return load_file(str(run / "checkpoints/last/model.safetensors"))


def _same(a, b, atol=0.0):
    return a.keys() == b.keys() and all(torch.allclose(a[k], b[k], atol=atol, rtol=0) for k in a)


def _train(data, out, *extra):
    return main(["train", "--data", str(data), "--out", str(out), "--no-progress", *TINY, "val_ratio=0.25", *extra])


def test_streamed_and_in_memory_datasets_draw_the_same_crops(image_folder):
    memory = folder_datasets(image_folder, 16, 3, val_ratio=0.25, scale=2, cache="memory")
    stream = folder_datasets(image_folder, 16, 3, val_ratio=0.25, scale=2, cache="stream")
    assert isinstance(stream[0].images, LazyImages) and not isinstance(memory[0].images, LazyImages)
    for a, b in zip(memory, stream):
        assert a.names == b.names
        g1, g2 = torch.Generator().manual_seed(3), torch.Generator().manual_seed(3)
        assert torch.equal(a.batch(list(range(len(a))), g1), b.batch(list(range(len(b))), g2))


def test_auto_cache_switches_to_streaming_above_the_limit():
    assert use_memory_cache("auto", 1000, 64, 3)
    assert not use_memory_cache("auto", 1_300_000, 256, 3)  # ImageNet at 256 px
    assert estimated_bytes(70_000, 256, 3) > 13 * 2**30  # FFHQ: the 14 GB
    assert use_memory_cache("memory", 10**9, 256, 3) and not use_memory_cache("stream", 1, 8, 3)


def test_streaming_skips_a_file_that_breaks_after_listing(image_folder):
    images = LazyImages(sorted(image_folder.rglob("*.png")), 16)
    images.paths[0].write_bytes(b"not an image any more")
    with pytest.warns(UserWarning, match="unreadable"):
        first = images[0]
    assert first.shape[2] == 3 and (first == images[1]).all()  # the next file stands in


@pytest.mark.parametrize("extra", [["data_cache=stream", "num_workers=2"], ["num_workers=1"]])
def test_streamed_training_with_workers_equals_in_memory_training(image_folder, tmp_path, extra):
    assert _train(image_folder, tmp_path / "memory", "steps=3", "data_cache=memory", "num_workers=0") == 0
    assert _train(image_folder, tmp_path / "other", "steps=3", *extra) == 0
    assert _same(_weights(tmp_path / "memory"), _weights(tmp_path / "other"))


def test_gradient_accumulation_equals_the_large_batch(tmp_path, monkeypatch):
    """2 micro-batches of 4 = one batch of 8: the same images (whole 16 px images, no flip), the same
    gradients at every optimizer step (compared before Adam, which turns float noise in the zero gradients
    of biases under GroupNorm into full-size steps)."""
    import skimage.data

    data = tmp_path / "images"
    data.mkdir()
    photo = skimage.data.astronaut()
    for i in range(20):
        Image.fromarray(photo[i * 20:i * 20 + 16, i * 15:i * 15 + 16]).save(data / f"img{i:02d}.png")
    grads = {"big": [], "accum": []}
    step = torch.optim.Adam.step

    def recording_step(self, *args, **kwargs):
        grads[current].append([p.grad.clone() for g in self.param_groups for p in g["params"]])
        return step(self, *args, **kwargs)

    monkeypatch.setattr(torch.optim.Adam, "step", recording_step)
    common = ["steps=2", "flip=false", "model.balance_step=0", "grad_clip=0"]
    for current, batch in [("big", ["batch_size=8"]), ("accum", ["batch_size=4", "grad_accum=2"])]:
        assert _train(data, tmp_path / current, *common, *batch) == 0
    assert len(grads["big"]) == len(grads["accum"]) == 2
    for big, accum in zip(grads["big"], grads["accum"]):
        scale = max(float(a.abs().max()) for a in big)
        for a, b in zip(big, accum):
            assert torch.allclose(a, b, rtol=1e-4, atol=1e-5 * scale)


def test_num_threads_is_applied(image_folder, tmp_path):
    before = torch.get_num_threads()
    try:
        assert _train(image_folder, tmp_path / "run", "steps=1", "num_threads=1") == 0
        assert torch.get_num_threads() == 1
    finally:
        torch.set_num_threads(before)


@pytest.mark.parametrize("value", ["data_cache=disk", "num_workers=-2", "num_threads=-1", "grad_accum=0"])
def test_scale_settings_are_range_checked(image_folder, tmp_path, capsys, value):
    assert _train(image_folder, tmp_path / "run", "steps=1", value) == 2
    assert value.split("=")[0] in capsys.readouterr().err and not (tmp_path / "run").exists()


def test_weight_ema_formula():
    from scvae.training.ema import WeightEMA

    layer = torch.nn.BatchNorm1d(2)
    ema = WeightEMA(layer, decay=0.75)
    w0 = layer.weight.detach().clone()
    with torch.no_grad():
        layer.weight.add_(4.0)
        layer.running_mean.fill_(3.0)
    ema.update(layer)
    assert torch.allclose(ema.model.weight, w0 + 1.0) and torch.equal(ema.model.running_mean, layer.running_mean)
    assert not ema.model.weight.requires_grad and not ema.model.training


def test_ema_weights_are_validated_saved_as_best_and_resumed(image_folder, tmp_path, monkeypatch):
    from scvae.training.checkpoint import load_trainer_state

    assert _train(image_folder, tmp_path / "run", "steps=3", "ema_decay=0.9") == 0
    best = load_file(str(tmp_path / "run/checkpoints/best/model.safetensors"))
    ema = load_trainer_state(tmp_path / "run/checkpoints/last")["ema"]
    assert all(torch.equal(best[k], ema[k]) for k in best)  # the last step was validated: best holds the EMA
    assert not _same(best, _weights(tmp_path / "run"))
    interrupted_then_resumed(monkeypatch, lambda out: _train(image_folder, out, "steps=3", "ema_decay=0.9"),
                             tmp_path / "resumed", 2)
    resumed = load_trainer_state(tmp_path / "resumed/checkpoints/last")["ema"]
    assert all(torch.equal(ema[k], resumed[k]) for k in ema)  # the average was restored, not restarted


def test_compiled_training_equals_eager_training(image_folder, tmp_path):
    """torch.compile through dynamo (the 'eager' backend keeps the test free of a C++ toolchain)."""
    assert _train(image_folder, tmp_path / "eager", "steps=2") == 0
    assert _train(image_folder, tmp_path / "compiled", "steps=2", "compile=true", "compile_backend=eager") == 0
    assert _same(_weights(tmp_path / "eager"), _weights(tmp_path / "compiled"), atol=1e-6)


@pytest.mark.skipif(shutil.which("c++") is None and shutil.which("g++") is None, reason="inductor needs a C++ compiler")
def test_compiled_training_with_inductor_equals_eager_training(image_folder, tmp_path):
    """The default backend, inductor, generates and compiles C++ kernels; fused kernels sum in another
    order, so the weights agree to float tolerance after two steps (``adam_eps`` keeps Adam from scaling
    the float noise of near-zero gradients up to full steps). The plain AE keeps the compile short."""
    ae = ["--model-type", "ae", "steps=2", "adam_eps=1e-6"]
    from torch._dynamo.utils import counters

    counters.clear()
    tiny = [o for o in TINY if "n_atoms" not in o]
    for name, extra in (("eager", []), ("compiled", ["compile=true"])):
        assert main(["train", "--data", str(image_folder), "--out", str(tmp_path / name), "--no-progress", *tiny,
                     "val_ratio=0.25", *ae, *extra]) == 0
    assert counters["stats"]["unique_graphs"] >= 1 and counters["inductor"]  # inductor really compiled
    assert _same(_weights(tmp_path / "eager"), _weights(tmp_path / "compiled"), atol=1e-4)


def test_a_graph_the_compile_backend_rejects_runs_eagerly(caplog):
    """As inductor does on one of vector-quantize-pytorch's graphs under torch 2.13: the run goes on."""
    from scvae.errors import ScvaeError
    from scvae.training.compiling import compile_model

    def rejecting(graph, example_inputs):
        raise AssertionError("Node view was invalid, but is output")

    torch.manual_seed(0)
    model = torch.nn.Sequential(torch.nn.Linear(4, 3), torch.nn.Tanh())
    x = torch.randn(5, 4)
    compiled = compile_model(model, rejecting)
    with caplog.at_level("WARNING"):
        out = compiled(x)
    assert torch.equal(out, model(x)) and "runs eagerly" in caplog.text and "Node view" in caplog.text
    out.sum().backward()
    assert model[0].weight.grad is not None
    with pytest.raises(ScvaeError, match="not a torch.compile backend"):
        compile_model(model, "no-such-backend")
