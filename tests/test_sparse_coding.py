import math

import pytest
import torch
import torch.nn.functional as F
from sklearn.decomposition import sparse_encode

from scvae import LISTA, ScvaeError, dct_dictionary, fista, ista, lasso_objective, soft_threshold
from scvae.sparse import spectral_norm_sq


def test_paper_dictionary_matches_official_construction():
    d = dct_dictionary(256, 512)
    assert d.shape == (256, 512)
    assert torch.allclose(d.norm(dim=0), torch.ones(512), atol=1e-6)
    assert torch.allclose(d[:, 0], torch.full((256,), 1 / 16))  # atom 0 is constant
    # ||D||_2^2 of the official init_dct(16, 23)[:, :512] is 7.4172 (research digest, section 2.3)
    assert float(spectral_norm_sq(d)) == pytest.approx(7.4172, abs=1e-3)


def test_complete_dct_is_orthonormal():
    d = dct_dictionary(64, 64)
    assert torch.allclose(d.T @ d, torch.eye(64), atol=1e-5)
    assert torch.allclose(d[:, 0], torch.full((64,), 1 / 8))


@pytest.mark.parametrize("dim, n_atoms", [(15, 30), (16, 8)])
def test_invalid_dictionary_sizes(dim, n_atoms):
    with pytest.raises(ScvaeError):
        dct_dictionary(dim, n_atoms)


def _random_problem(seed, d, k, n=40):
    g = torch.Generator().manual_seed(seed)
    dictionary = F.normalize(torch.randn(d, k, generator=g, dtype=torch.float64), dim=0)
    z = torch.randn(n, d, generator=g, dtype=torch.float64)
    return z, dictionary


@pytest.mark.parametrize("seed, d, k, lam", [(0, 20, 40, 0.5), (1, 30, 20, 0.2), (2, 16, 64, 0.8)])
def test_ista_and_fista_match_sklearn_lasso(seed, d, k, lam):
    z, dictionary = _random_problem(seed, d, k)
    # sklearn minimises 1/(2 d) ||z - a D^T||^2 + alpha/d ||a||_1 with alpha scaled by 1/d internally,
    # i.e. the same minimiser as 1/2 ||z - D a||^2 + alpha ||a||_1: alpha = lam.
    ref = torch.from_numpy(sparse_encode(z.numpy(), dictionary.T.numpy(), algorithm="lasso_cd", alpha=lam,
                                         max_iter=100_000))
    for solver, iters in ((ista, 40_000), (fista, 4_000)):
        codes = solver(z, dictionary, lam, n_iter=iters)
        rel = float((codes - ref).norm() / ref.norm())
        assert rel < 1e-4, (solver.__name__, rel)


def test_fista_reaches_lasso_optimum_on_overcomplete_dct():
    # The 16 x 121 DCT is so coherent that the minimiser is not unique: compare objectives instead.
    dictionary = dct_dictionary(16, 121).double()
    z = torch.randn(30, 16, generator=torch.Generator().manual_seed(3), dtype=torch.float64)
    ref = torch.from_numpy(sparse_encode(z.numpy(), dictionary.T.numpy(), algorithm="lasso_cd", alpha=0.4,
                                         max_iter=100_000))
    ours = lasso_objective(z, dictionary, fista(z, dictionary, 0.4, n_iter=5000), 0.4)
    theirs = lasso_objective(z, dictionary, ref, 0.4)
    assert torch.all(ours <= theirs * (1 + 1e-5))


def test_lista_at_init_is_ista_from_zero():
    dictionary = dct_dictionary(16, 121)
    layer = LISTA(dictionary, n_iter=5, lam=0.4)
    z = torch.randn(32, 16, generator=torch.Generator().manual_seed(0))
    c = float(layer.step_constants(dictionary)[0].detach())
    lam = float(layer.thresholds()[0, 0].detach())
    assert c >= float(spectral_norm_sq(dictionary))
    # first iterate is soft(D^T z / c, lam / c): the official code's missing 1/c is fixed
    assert torch.allclose(LISTA(dictionary, 1, 0.4)(z), soft_threshold(z @ dictionary / c, lam / c), atol=1e-6)
    assert torch.allclose(layer(z), ista(z, dictionary, lam, n_iter=5, step=1 / c), atol=1e-5)


def test_lista_step_and_threshold_stay_safe_under_adversarial_training():
    dictionary = dct_dictionary(16, 36)
    layer = LISTA(dictionary, n_iter=4, lam=0.3, threshold_per_atom=True, per_iteration=True)
    opt = torch.optim.SGD(layer.parameters(), lr=100.0)
    z = torch.randn(64, 16)
    for _ in range(20):  # push step size up and thresholds down as hard as possible
        loss = layer.thresholds().sum() + layer.step_constants(dictionary).sum()
        opt.zero_grad()
        loss.backward()
        opt.step()
    assert torch.all(layer.thresholds() >= 0.3)
    assert torch.all(layer.step_constants(dictionary) >= spectral_norm_sq(dictionary) - 1e-6)
    assert torch.isfinite(layer(z * 1e3)).all()


def test_lista_runs_in_float32_under_autocast():
    layer = LISTA(dct_dictionary(16, 36), n_iter=3, lam=0.2)
    z = torch.randn(8, 16).bfloat16()
    with torch.autocast("cpu", dtype=torch.bfloat16):
        codes = layer(z)
    assert codes.dtype == torch.float32


def test_untied_lista_starts_as_tied():
    dictionary = dct_dictionary(16, 36)
    z = torch.randn(16, 16)
    tied, untied = LISTA(dictionary, 6, 0.3, learn_step=False), LISTA(dictionary, 6, 0.3, untied=True)
    untied.c0.fill_(float(tied.step_constants(dictionary)[0]))
    untied.W.data = (dictionary.T / untied.c0).repeat(6, 1, 1)
    untied.S.data = (torch.eye(36) - dictionary.T @ dictionary / untied.c0).repeat(6, 1, 1)
    assert torch.allclose(tied(z), untied(z), atol=1e-5)


def test_trained_lista_beats_ista_at_equal_iterations():
    """LISTA trained towards the lasso solution beats 16 plain ISTA steps in T=16 iterations.

    Trained on the lasso objective itself (Ablin et al. 2019), it ends both with a lower objective and
    closer to the exact lasso codes than ISTA. (Pure MSE regression onto the codes lowers the code error
    too, but raises the objective through small spurious non-zeros: measured 0.649 vs ISTA's 0.583.)
    """
    torch.manual_seed(0)
    dictionary, lam, T = dct_dictionary(16, 64), 0.2, 16

    def sample(n):  # 4-sparse signals plus noise
        a = torch.zeros(n, 64)
        a.scatter_(1, torch.randint(0, 64, (n, 4)), torch.randn(n, 4))
        return a @ dictionary.T + 0.05 * torch.randn(n, 16)

    pool = sample(1024)
    layer = LISTA(dictionary, T, lam, untied=True, per_iteration=True, threshold_per_atom=True)
    opt = torch.optim.Adam(layer.parameters(), lr=1e-3)
    for _ in range(300):
        z = pool[torch.randint(0, len(pool), (256,))]
        loss = lasso_objective(z, dictionary, layer(z), lam).mean()
        opt.zero_grad()
        loss.backward()
        opt.step()
    z = sample(2000)
    exact = fista(z, dictionary, lam, n_iter=2000)
    plain = ista(z, dictionary, lam, n_iter=T)
    with torch.no_grad():
        learned = layer(z)
    objective = {name: float(lasso_objective(z, dictionary, a, lam).mean())
                 for name, a in (("learned", learned), ("ista", plain), ("exact", exact))}
    assert objective["learned"] < objective["ista"], objective
    assert objective["learned"] - objective["exact"] < 0.5 * (objective["ista"] - objective["exact"]), objective
    assert F.mse_loss(learned, exact) < F.mse_loss(plain, exact)


def test_refit_gives_the_least_squares_values_on_the_kept_support():
    """The refit keeps LISTA's support and replaces the shrunk values by scikit-learn's ridge fit, with the
    refit's ridge."""
    from sklearn.linear_model import Ridge

    from scvae.sparse.refit import REFIT_RIDGE

    torch.manual_seed(0)
    dictionary = dct_dictionary(16, 36)
    z = torch.randn(40, 16)
    plain = LISTA(dictionary, n_iter=8, lam=0.1, max_active=4)
    refit = LISTA(dictionary, n_iter=8, lam=0.1, max_active=4, refit=True)
    a, b = plain(z).detach(), refit(z)
    assert torch.equal(a != 0, b != 0)  # the same support, chosen by the same iterations
    for row in range(5):
        support = (a[row] != 0).nonzero().flatten().numpy()
        fit = Ridge(alpha=REFIT_RIDGE, fit_intercept=False).fit(dictionary[:, support].numpy(), z[row].numpy())
        assert torch.allclose(b[row, support], torch.from_numpy(fit.coef_).float(), atol=1e-4)
    error = lambda layer, codes: (z - layer.synthesize(codes)).square().mean()
    assert error(refit, b) < 0.9 * error(plain, a)  # no shrinkage bias left
    z.requires_grad_(True)
    refit(z).sum().backward()
    assert z.grad.abs().sum() > 0  # differentiable in the latent ...
    assert not refit.threshold_raw.requires_grad and not refit.step_raw.requires_grad  # ... not in the support choice
    with pytest.raises(ValueError, match="max_active"):
        LISTA(dictionary, refit=True)


def test_the_exportable_solver_matches_torch_linalg_solve():
    from scvae.sparse.refit import spd_solve_plain

    torch.manual_seed(0)
    atoms = torch.randn(20, 9, 16)
    matrix = atoms @ atoms.transpose(1, 2) / 16 + 1e-4 * torch.eye(9)  # Gram matrices, as in the refit
    rhs = torch.randn(20, 9)
    expected = torch.linalg.solve(matrix, rhs[..., None]).squeeze(-1)
    assert torch.allclose(spd_solve_plain(matrix, rhs), expected, atol=1e-4, rtol=1e-4)


def test_the_refit_solve_and_its_hand_written_backward_match_autograd():
    """The Cholesky solve's backward (reusing the factor) against autograd through torch.linalg.solve, in
    float64 with gradcheck, and the float32 refit against a float64 reference on a coherent dictionary."""
    from scvae.sparse.lista import largest_indices
    from scvae.sparse.refit import REFIT_RIDGE, _SubGramSolve, refit_on_support

    torch.manual_seed(0)
    atoms = torch.randn(9, 12, dtype=torch.float64)
    matrix = (atoms @ atoms.T / 12 + 1e-2 * torch.eye(9, dtype=torch.float64)).requires_grad_(True)
    slots = torch.stack([torch.randperm(9)[:5] for _ in range(6)])  # (6, 5) distinct per row
    rhs = torch.randn(6, 5, dtype=torch.float64, requires_grad=True)
    assert torch.autograd.gradcheck(lambda m, b: _SubGramSolve.apply((m + m.T) / 2, slots, b), (matrix, rhs))

    dictionary = dct_dictionary(16, 64).double()  # 4x overcomplete: the coherent case
    z = torch.randn(50, 16, dtype=torch.float64)
    drive, gram = (z @ dictionary).requires_grad_(True), (dictionary.T @ dictionary).requires_grad_(True)
    a = torch.nn.functional.softshrink(drive.detach(), 1.0)
    a[:3, :] = 0
    a[:3, :2] = 1.0  # rows with fewer non-zeros than k: the padding slots
    keep = largest_indices(a, 6, dim=1)
    ours = refit_on_support(a.float(), drive.float(), gram.float(), keep)
    assert (ours[:3, 2:] == 0).all() and (ours[a == 0] == 0).all()
    on = (a.gather(1, keep) != 0).double()
    sub = gram[keep[:, :, None], keep[:, None, :]] * on[:, :, None] * on[:, None, :] + REFIT_RIDGE * torch.eye(6, dtype=torch.float64)
    reference = torch.zeros_like(a).scatter(1, keep, torch.linalg.solve(sub, drive.gather(1, keep) * on))
    assert torch.allclose(ours.double(), reference, atol=2e-3 * reference.abs().max().item())
    weights = torch.randn_like(a)
    g_ours = torch.autograd.grad((refit_on_support(a, drive, gram, keep) * weights).sum(), (drive, gram))
    g_ref = torch.autograd.grad((reference * weights).sum(), (drive, gram))
    for mine, theirs in zip(g_ours, g_ref):
        assert torch.allclose(mine, theirs, atol=1e-8 * theirs.abs().max().item() + 1e-10)


def test_the_refit_split_over_threads_is_bit_for_bit_one_call(monkeypatch):
    """The refit's systems solved in row blocks on two threads give exactly the values and gradients of
    one batched call (each matrix meets the same LAPACK routine either way)."""
    from scvae.sparse import refit
    from scvae.sparse.lista import largest_indices

    torch.manual_seed(0)
    dictionary = dct_dictionary(16, 64)
    drive = (torch.randn(700, 16) @ dictionary).requires_grad_(True)
    gram = (dictionary.T @ dictionary).requires_grad_(True)
    a = torch.nn.functional.softshrink(drive.detach(), 0.5)
    keep = largest_indices(a, 6, dim=1)
    weights = torch.randn_like(a)
    results = []
    monkeypatch.setattr(torch, "get_num_threads", lambda: 2)  # as on the 2-core CI, whatever this machine has
    for min_rows in (10**9, 100):  # one call, then blocks of 100+ rows
        monkeypatch.setattr(refit, "_MIN_ROWS_PER_THREAD", min_rows)
        with torch.no_grad():
            values = refit.refit_on_support(a, drive, gram, keep)
        grads = torch.autograd.grad((refit.refit_on_support(a, drive, gram, keep) * weights).sum(), (drive, gram))
        results.append((values, *grads))
    monkeypatch.setattr(torch, "get_num_threads", lambda: 3)
    values = refit.refit_on_support(a, drive.detach(), gram.detach(), keep)
    for one, split in zip(results[0], results[1]):
        assert torch.equal(one, split)
    assert torch.equal(values, results[0][0])
    with torch.no_grad():  # grad mode is thread-local: the worker's block must not record a graph either
        blocks = refit._map_row_blocks(lambda t: t * 2, drive.split([350, 350]))
    assert len(blocks) == 2 and not any(block.requires_grad for block in blocks)
