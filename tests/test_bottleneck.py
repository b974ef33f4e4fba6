"""The drop-in SparseCodingBottleneck: SCVAE is encoder -> bottleneck -> decoder with unchanged numbers,
any channel layout, and old checkpoints (LISTA at ``lista.*``) still load."""
import torch

from scvae import SCVAE
from scvae.sparse import LISTA, SparseCodingBottleneck, dct_dictionary, from_rows, to_rows

from .tiny import TINY_SCVAE

TINY = dict(TINY_SCVAE, num_res_blocks=1, n_iter=4, max_active=6, usage_weight=0.1, sparsity_weight=0.01)


def test_scvae_numbers_are_the_unrolled_lista_path():
    torch.manual_seed(0)
    model = SCVAE(**TINY).eval()
    x = torch.rand(2, 3, 16, 16) * 2 - 1
    out = model(x)
    z = model.encoder(x)
    z = z * torch.rsqrt(z.square().mean(1, keepdim=True) + 1e-6)  # RMS normalisation per position
    rows = to_rows(z)
    codes = model.lista(rows)  # LISTA on every position, then D a
    latent_hat = from_rows(codes @ model.lista.dictionary.T, 2, 8, 8)
    assert torch.equal(out.codes, from_rows(codes, 2, 8, 8))
    assert torch.equal(out.latent_hat, latent_hat)
    assert torch.equal(out.reconstruction, model.decoder(latent_hat))
    latent = torch.nn.functional.mse_loss(codes @ model.lista.dictionary.T, rows)
    assert torch.allclose(out.losses["latent"], latent)


def test_sequences_and_feature_maps_get_the_same_codes():
    torch.manual_seed(0)
    sc = SparseCodingBottleneck(16, 36, max_active=4).eval()
    maps = torch.randn(2, 16, 3, 5)
    tokens = maps.flatten(2).transpose(1, 2)  # (B, N, d)
    a, b = sc(maps), sc(tokens)
    assert a.latent_hat.shape == maps.shape and b.latent_hat.shape == tokens.shape
    assert torch.allclose(a.codes.flatten(2).transpose(1, 2), b.codes, atol=1e-6)
    assert int((b.codes != 0).sum(-1).max()) <= 4


def test_training_forward_balances_usage_and_the_loss_trains_the_input():
    torch.manual_seed(0)
    sc = SparseCodingBottleneck(16, 36, max_active=2, balance_step=0.05, usage_floor=0.5).train()
    z = (torch.randn(64, 8) @ dct_dictionary(16, 36)[:, :8].T).requires_grad_(True)
    out = sc(z[None])
    out.loss.backward()
    assert z.grad is not None and z.grad.abs().sum() > 0
    assert sc.lista.selection_bias.max() > 0  # updated in the forward pass, like a running average


def test_checkpoints_from_before_the_bottleneck_load(tmp_path):
    torch.manual_seed(0)
    model = SCVAE(**TINY).eval()
    old_layout = {k.replace("bottleneck.lista.", "lista."): v for k, v in model.state_dict().items()}
    same = SCVAE(**TINY)
    same.load_state_dict(old_layout)
    x = torch.rand(1, 3, 16, 16) * 2 - 1
    assert torch.equal(same.eval()(x).reconstruction, model(x).reconstruction)
    assert isinstance(same.lista, LISTA)
