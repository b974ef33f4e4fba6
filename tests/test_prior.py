"""The learned prior (scvae.prior): entry lists, the factorisation's causality, training, sampling, files."""
import json
import math
from dataclasses import replace

import pytest
import torch

from scvae.errors import ScvaeError
from scvae.prior import EntryLayout, LearnedPrior, PriorConfig, PriorNetwork, PriorTraining, sample_symbols
from scvae.prior.training import load_checkpoint, save_checkpoint, train_network

SMALL = PriorConfig(width=32, layers=1, heads=2, positions=16)


def _sparse_symbols(n=6, c=10, h=3, w=4, seed=0) -> torch.Tensor:
    g = torch.Generator().manual_seed(seed)
    values = torch.randint(-3, 4, (n, c, h, w), generator=g)
    return values * (torch.rand(n, c, h, w, generator=g) < 0.3)


def _sequential_bits(net: PriorNetwork, entries) -> torch.Tensor:
    """The same likelihood as forward(), one entry at a time as a sampler or a decoder sees it."""
    layout, nats = net.layout, torch.zeros(len(entries))
    context = net.contexts(entries)
    for b in range(len(entries)):
        for p in range(entries.channels.shape[1]):
            n = int(entries.lengths[b, p])
            for j in range(n + 1 if layout.sparse else n):
                state = net.states(context[b, p], entries.channels[b, p, :j], entries.values[b, p, :j])
                if layout.sparse:
                    target = entries.channels[b, p, j] if j < n else layout.n_channels
                    nats[b] -= net.channel_logits(state)[target]
                    if j == n:
                        break
                channel = entries.channels[b, p, j]
                nats[b] -= net.value_logits(state, channel)[entries.values[b, p, j]]
    return nats / math.log(2)


@pytest.mark.parametrize("sparse", [True, False])
def test_entries_round_trip_with_escapes(sparse):
    symbols = _sparse_symbols()
    layout = EntryLayout.fit(symbols[:4], sparse)
    held = symbols.clone()
    held[5, 2, 1, 1] = 40  # a value never seen in training
    entries = layout.pack(held)
    escaped = entries.values == layout.escape
    assert escaped.sum() == 1
    raw = torch.where(escaped, 40, 0)
    assert torch.equal(layout.unpack(entries, raw), held)
    with pytest.raises(ValueError, match="raw values"):
        layout.unpack(entries)
    if sparse:
        assert torch.equal(entries.lengths, (held != 0).sum(1).flatten(1))
        assert layout.max_entries == int((symbols[:4] != 0).sum(1).max())
    else:
        assert entries.channels.shape[-1] == symbols.shape[1]


def test_sparse_layout_refuses_a_position_over_its_cap():
    symbols = _sparse_symbols()
    layout = EntryLayout.fit(symbols, True, max_entries=3)
    assert layout.max_entries == int((symbols != 0).sum(1).max())  # never below what training holds
    with pytest.raises(ValueError, match="non-zero"):
        layout.pack(torch.ones(1, 10, 1, 1, dtype=torch.long).mul(2))


@pytest.mark.parametrize("binding", ["product", "sum"])
@pytest.mark.parametrize("sparse", [True, False])
def test_parallel_likelihood_equals_the_sequential_one(sparse, binding):
    torch.manual_seed(0)
    symbols = _sparse_symbols(n=3)
    layout = EntryLayout.fit(symbols, sparse)
    net = PriorNetwork(layout, replace(SMALL, binding=binding)).eval()
    entries = layout.pack(symbols)
    with torch.no_grad():
        assert torch.allclose(net(entries), _sequential_bits(net, entries), atol=1e-3, rtol=1e-5)


def test_a_position_reads_only_the_positions_before_it():
    torch.manual_seed(0)
    symbols = _sparse_symbols(n=2)
    layout = EntryLayout.fit(symbols, True)
    net = PriorNetwork(layout, SMALL).eval()
    changed = symbols.clone()
    changed[:, :, 2, :] = 0  # the last row of positions
    changed[:, 3, 2, 1] = 2
    with torch.no_grad():
        a, b = net.contexts(layout.pack(symbols)), net.contexts(layout.pack(changed))
    p = 2 * symbols.shape[3]  # the first changed position: its own context reads only earlier ones
    assert torch.allclose(a[:, :p + 1], b[:, :p + 1], atol=1e-6)
    assert not torch.allclose(a[:, p + 1:], b[:, p + 1:], atol=1e-6)


@pytest.mark.parametrize("binding", ["product", "sum"])
def test_only_the_product_binding_tells_which_channel_had_which_value(binding):
    # two images whose first position holds the values 1 and 2 in swapped channels; the second position
    # is the same in both, so only the binding can make its context (and entry 2's state) differ
    symbols = torch.tensor([[1, 2, 3], [2, 1, 3]]).reshape(2, 3, 1, 1).expand(2, 3, 1, 2).clone()
    layout = EntryLayout.fit(symbols, sparse=False)
    torch.manual_seed(0)
    net = PriorNetwork(layout, replace(SMALL, binding=binding)).eval()
    entries = layout.pack(symbols)
    with torch.no_grad():
        context = net.contexts(entries)[:, 1]
        state = net.states(context[:1].expand(2, -1), entries.channels[:, 0, :2], entries.values[:, 0, :2])
    told_apart = not torch.allclose(context[0], context[1], atol=1e-6)
    assert told_apart == (binding == "product")
    assert (not torch.allclose(state[0], state[1], atol=1e-6)) == (binding == "product")


def test_a_prior_saved_before_the_binding_option_loads_as_a_sum(tmp_path):
    torch.manual_seed(0)
    symbols = _sparse_symbols(n=4)
    layout = EntryLayout.fit(symbols, True)
    prior = LearnedPrior(PriorNetwork(layout, replace(SMALL, binding="sum")).eval(), 0.5, "scvae", "run", (3, 4))
    folder = prior.save(tmp_path / "old")
    config = json.loads((folder / "config.json").read_text())
    del config["network"]["binding"]  # as the first priors wrote it
    (folder / "config.json").write_text(json.dumps(config))
    loaded = LearnedPrior.load(folder)
    assert loaded.network.config.binding == "sum"
    assert torch.allclose(loaded.bits(symbols), prior.bits(symbols))
    with pytest.raises(ValueError, match="binding"):
        PriorConfig(binding="concat")


def test_training_learns_a_structured_source_and_resumes_exactly(tmp_path):
    # every position has atom 1 with value 2, and atom 4 with value -1 where the position before it has none
    n, c = 64, 6
    symbols = torch.zeros(n, c, 2, 2, dtype=torch.long)
    symbols[:, 1] = 2
    symbols[:, 4] = torch.randint(0, 2, (n, 2, 2), generator=torch.Generator().manual_seed(1)) * -1
    layout = EntryLayout.fit(symbols, True)
    entries = layout.pack(symbols)
    settings = PriorTraining(steps=60, batch_size=16, lr=3e-3, save_every=30)
    torch.manual_seed(0)
    net = PriorNetwork(layout, SMALL)
    untrained = float(net(entries).detach().mean())
    states = {}
    train_network(net, entries, settings, progress=False, checkpoint=lambda s, st: states.setdefault(s, st))
    trained = float(net(entries).detach().mean())
    # the source's entropy: 4 positions x 1 bit (atom 4 or not); uniform over 7 channels and 3 values costs far more
    assert trained < 0.5 * untrained and trained < 8, (untrained, trained)
    save_checkpoint(tmp_path, states[30], {"steps": 60})
    state, meta = load_checkpoint(tmp_path)
    assert meta == {"steps": 60}
    torch.manual_seed(123)
    resumed = PriorNetwork(layout, SMALL)
    train_network(resumed, entries, settings, resume=state, progress=False)
    for (k, v), w in zip(net.state_dict().items(), resumed.state_dict().values()):
        assert torch.allclose(v, w, atol=1e-6), k


@pytest.mark.parametrize("sparse", [True, False])
def test_samples_are_valid_reproducible_and_saved_priors_give_the_same_bits(tmp_path, sparse):
    torch.manual_seed(0)
    symbols = _sparse_symbols(n=8)
    layout = EntryLayout.fit(symbols, sparse)
    prior = LearnedPrior(PriorNetwork(layout, SMALL).eval(), 0.5, "scvae", "run", (3, 4))
    a = sample_symbols(prior, 5, seed=3, progress=False)
    assert a.shape == (5, 10, 3, 4)
    assert torch.equal(a, sample_symbols(prior, 5, seed=3, progress=False))
    assert not torch.equal(a, sample_symbols(prior, 5, seed=4, progress=False))
    assert set(a[a != 0].unique().tolist()) <= set(layout.values)
    if sparse:
        assert int((a != 0).sum(1).max()) <= layout.max_entries
    loaded = LearnedPrior.load(prior.save(tmp_path / "prior"))
    assert loaded.grid == (3, 4) and loaded.step == 0.5 and loaded.layout == layout
    assert torch.allclose(loaded.bits(a), prior.bits(a))


def test_loading_a_folder_that_is_no_prior_is_one_line(tmp_path):
    with pytest.raises(ScvaeError, match="not a trained prior"):
        LearnedPrior.load(tmp_path)
    (tmp_path / "config.json").write_text("{}")
    (tmp_path / "prior.safetensors").write_bytes(b"junk")
    with pytest.raises(ScvaeError, match="unreadable prior"):
        LearnedPrior.load(tmp_path)


# --- the commands, end to end on the tiny SC-VAE run -------------------------------------------------------
def test_prior_train_resumes_then_generate_samples_it(tiny_run, tmp_path, capsys, monkeypatch):
    from scvae.cli import main
    from scvae.prior import training

    out = tmp_path / "prior"
    argv = ["prior", "train", "--model", str(tiny_run), "--out", str(out), "--steps", "4", "--batch-size", "4",
            "--save-every", "2", "--no-progress"]
    calls = []
    real = training.save_checkpoint

    def stop_after_first(folder, state, meta):  # the run is stopped right after its first checkpoint
        real(folder, state, meta)
        calls.append(int(state["step"]))
        raise KeyboardInterrupt

    monkeypatch.setattr(training, "save_checkpoint", stop_after_first)
    assert main(argv) == 2
    assert calls == [2] and (out / training.CHECKPOINT).is_file() and not (out / training.CONFIG).exists()
    monkeypatch.setattr(training, "save_checkpoint", real)
    before = (out / training.CHECKPOINT).read_bytes()
    assert main(argv + ["--binding", "product"]) == 2  # a checkpoint of the sum binding is not resumed as a product
    assert "other settings (binding)" in capsys.readouterr().err
    assert (out / training.CHECKPOINT).read_bytes() == before
    assert main(argv) == 0
    printed = capsys.readouterr().out
    assert "resuming the prior" in printed and "from step 2" in printed and "bits per image" in printed
    prior = LearnedPrior.load(out)
    assert prior.layout.sparse and prior.info["held_out_bits"] > 0 and not (out / training.CHECKPOINT).exists()
    assert prior.network.config.binding == "sum" and prior.network.config.positions == math.prod(prior.grid)

    png = tmp_path / "samples.png"
    assert main(["generate", "--prior", str(out), "--n", "4", "--out", str(png), "--no-progress"]) == 0
    assert png.stat().st_size > 0 and "bits per sample" in capsys.readouterr().out
    report = tmp_path / "report.html"
    assert main(["report", str(tiny_run), "--prior", str(out), "--out", str(report), "--no-progress"]) == 0
    assert "samples of the learned prior" in report.read_text()
    assert (tmp_path / "report_files" / "prior_samples.png").stat().st_size > 0


@pytest.mark.parametrize("argv, message", [
    (["prior", "train", "--model", "MODEL", "--out", "OUT", "--steps", "0"], "--steps must be a positive integer"),
    (["prior", "train", "--model", "MODEL", "--out", "OUT/file.txt"], "is a file"),
    (["prior"], "choose an action"),
    (["generate", "--prior", "OUT", "--out", "OUT/s.png"], "not a trained prior"),
    (["generate", "--n", "2", "--out", "OUT/s.png"], "needs --model"),
])
def test_prior_errors_are_one_line_and_change_nothing(argv, message, tiny_run, tmp_path, capsys):
    from scvae.cli import main

    (tmp_path / "file.txt").write_text("mine")
    before = sorted(p.name for p in tmp_path.rglob("*"))
    argv = [a.replace("MODEL", str(tiny_run)).replace("OUT", str(tmp_path)) for a in argv]
    assert main(argv) == 2
    err = capsys.readouterr().err.strip()
    assert message in err and len(err.splitlines()) == 1
    assert sorted(p.name for p in tmp_path.rglob("*")) == before and (tmp_path / "file.txt").read_text() == "mine"


@pytest.mark.parametrize("sparse", [True, False])
def test_coding_with_the_prior_is_exact_and_as_long_as_its_likelihood(sparse):
    from scvae.coding.seal import payload_words
    from scvae.prior.coding import decode_with_prior, encode_with_prior

    torch.manual_seed(0)
    symbols = _sparse_symbols(n=8)
    layout = EntryLayout.fit(symbols[:6], sparse)
    prior = LearnedPrior(PriorNetwork(layout, SMALL).eval(), 0.5, "scvae", "run", (3, 4))
    one = symbols[6:7].clone()
    one[0, 2, 1, 1] = -300  # outside the alphabet: escaped
    payload = encode_with_prior(one, prior)
    assert torch.equal(decode_with_prior(payload_words(payload), (3, 4), prior), one)
    bits = float(prior.bits(one)[0])
    assert 8 * len(payload) <= bits * 1.02 + 10, (8 * len(payload), bits)


def test_compress_and_decompress_with_a_prior_round_trip_exactly(tiny_run, tmp_path, capsys):
    from scvae.cli import main

    prior, files, images = tmp_path / "prior", tmp_path / "files", sorted((tiny_run.parent / "images").glob("*.png"))[:2]
    assert main(["prior", "train", "--model", str(tiny_run), "--out", str(prior), "--steps", "3", "--batch-size", "4",
                 "--no-progress"]) == 0
    assert main(["compress", *map(str, images), "--model", str(tiny_run), "--prior", str(prior), "--out",
                 str(files)]) == 0
    printed = capsys.readouterr().out
    assert "the learned prior's rate" in printed and "the input files hold" in printed
    summary = __import__("json").loads((files / "compress.json").read_text())
    assert summary["coded_with"] == "the learned prior" and not (files / "entropy_model.safetensors").exists()
    for record in summary["files"]:
        assert record["bits"] - 128 <= 1.02 * record["ideal_bits"] + 10
    assert main(["decompress", str(files), "--model", str(tiny_run), "--out", str(tmp_path / "a")]) == 2
    assert "decompress it with --prior" in capsys.readouterr().err
    assert main(["decompress", str(files), "--model", str(tiny_run), "--prior", str(prior), "--out",
                 str(tmp_path / "png")]) == 0
    assert sorted(p.name for p in (tmp_path / "png").iterdir()) == [p.stem + ".png" for p in images]
