"""The hand-written backward of the unrolled ISTA iterations against autograd and finite differences."""
import pytest
import torch

from scvae.sparse import LISTA, dct_dictionary
from scvae.sparse.lista import keep_largest
from scvae.sparse.solvers import soft_threshold
from scvae.sparse.unrolled_ista import unrolled_ista
from scvae.sparse.unrolled_ista import unrolled_ista_autograd as autograd_ista


def problem(n_thr: int, dtype=torch.float64, n=40, d=16, k=25, n_iter=6, seed=0):
    g = torch.Generator().manual_seed(seed)
    dictionary = dct_dictionary(d, k).to(dtype)
    z = torch.randn(n, d, generator=g, dtype=dtype)
    c = float(torch.linalg.matrix_norm(dictionary, 2) ** 2)
    drive = (z @ dictionary).requires_grad_()
    gram = (dictionary.T @ dictionary).requires_grad_()
    inv_steps = (torch.rand(n_iter, generator=g, dtype=dtype) * 0.5 / c + 0.5 / c).requires_grad_()
    thresholds = (torch.rand(n_iter, n_thr, generator=g, dtype=dtype) * 0.05 + 0.02).requires_grad_()
    return drive, gram, inv_steps, thresholds


@pytest.mark.parametrize("n_thr", [1, 25])
def test_matches_autograd_values_and_gradients(n_thr):
    inputs = problem(n_thr)
    codes, pre = unrolled_ista(*inputs)
    ref_codes, ref_pre = autograd_ista(*inputs)
    assert torch.allclose(codes, ref_codes, atol=1e-12) and torch.allclose(pre, ref_pre, atol=1e-12)
    assert 0 < (codes != 0).float().mean() < 1  # the thresholds really cut: both branches are exercised
    weights = torch.randn_like(codes), torch.randn_like(pre)
    grads = torch.autograd.grad((codes * weights[0]).sum() + (pre * weights[1]).sum(), inputs)
    ref = torch.autograd.grad((ref_codes * weights[0]).sum() + (ref_pre * weights[1]).sum(), inputs)
    for name, g, r in zip(["drive", "gram", "inv_steps", "thresholds"], grads, ref):
        assert torch.allclose(g, r, rtol=1e-9, atol=1e-10), name


@pytest.mark.parametrize("options", [{}, {"recompute": True}, {"grad_iterations": 2}])
def test_products_through_the_atoms_give_the_same_iterates_and_gradients(options):
    """With 2 d < K the iterations multiply by D^T then D instead of by G = D^T D: the same values and the
    same gradients (to float64 rounding), in every backward mode, and still to ``gram``."""
    drive, gram, inv_steps, thresholds = inputs = problem(1, n=30, d=16, k=64, n_iter=5)
    atoms = dct_dictionary(16, 64).double()
    plain = unrolled_ista(*inputs, **options)
    through_atoms = unrolled_ista(*inputs, **options, atoms=atoms)
    weights = torch.randn_like(plain[0]), torch.randn_like(plain[1])
    grads = [torch.autograd.grad((out[0] * weights[0]).sum() + (out[1] * weights[1]).sum(), inputs)
             for out in (plain, through_atoms)]
    for mine, theirs in zip((*through_atoms, *grads[1]), (*plain, *grads[0])):
        assert torch.allclose(mine, theirs, rtol=1e-9, atol=1e-11)
    assert grads[1][1].abs().sum() > 0  # the dictionary's Gram still gets its gradient
    with torch.no_grad():
        assert torch.allclose(unrolled_ista(*inputs, atoms=atoms)[0], plain[0], atol=1e-11)
        assert not torch.allclose(unrolled_ista(*inputs, atoms=2 * atoms)[0], plain[0])  # the atoms are used


@pytest.mark.parametrize("n_thr", [1, 12])
def test_gradcheck(n_thr):
    assert torch.autograd.gradcheck(lambda *x: unrolled_ista(*x), problem(n_thr, n=6, d=9, k=12, n_iter=4))


def test_only_the_needed_gradients_are_computed():
    drive, gram, inv_steps, thresholds = problem(1)
    gram, inv_steps = gram.detach(), inv_steps.detach()  # a fixed dictionary
    codes, _ = unrolled_ista(drive, gram, inv_steps, thresholds)
    codes.sum().backward()
    assert drive.grad is not None and thresholds.grad is not None


def test_lista_layer_gradients_unchanged():
    """LISTA on the hand-written backward gives the gradients plain autograd gives through the same layer
    (LISTA iterates in float32 by design, hence the tolerances)."""
    torch.manual_seed(0)
    for kwargs in [{}, {"learn_dictionary": True, "per_iteration": True, "threshold_per_atom": True}]:
        layer = LISTA(dct_dictionary(16, 25), n_iter=5, lam=0.05, max_active=4, **kwargs)
        z = torch.randn(30, 16, requires_grad=True)
        codes = layer(z)
        params = [z] + [p for p in layer.parameters() if p.requires_grad]
        grads = torch.autograd.grad((codes * codes.detach().sign()).sum(), params)
        dictionary = layer.dictionary
        cs = layer.step_constants(dictionary)
        steps = cs[torch.arange(5).clamp(max=cs.shape[0] - 1)]
        lams = layer.thresholds()[torch.arange(5).clamp(max=layer.thresholds().shape[0] - 1)]
        ref_codes, _ = autograd_ista(z @ dictionary, dictionary.T @ dictionary, 1 / steps, lams / steps[:, None])
        ref_codes = keep_largest(ref_codes, 4, dim=1)
        assert torch.allclose(codes, ref_codes, atol=1e-6)
        ref = torch.autograd.grad((ref_codes * ref_codes.detach().sign()).sum(), params)
        for g, r in zip(grads, ref):
            assert torch.allclose(g, r, rtol=1e-4, atol=1e-5 * r.abs().max())


@pytest.mark.parametrize("m", [1, 3])
def test_truncated_backprop_matches_autograd_with_a_detached_warm_start(m):
    """grad_iterations = m: gradients of the last m iterations only, the earlier ones a constant."""
    inputs = problem(25)
    drive, gram, inv_steps, thresholds = inputs
    codes, pre = unrolled_ista(*inputs, grad_iterations=m)
    with torch.no_grad():
        warm, _ = autograd_ista(drive, gram, inv_steps[:-m], thresholds[:-m])
    a = warm
    for t in range(len(inv_steps) - m, len(inv_steps)):
        pre_ref = a + (drive - a @ gram) * inv_steps[t]
        a = soft_threshold(pre_ref, thresholds[t])
    assert torch.allclose(codes, a, atol=1e-12)
    grads = torch.autograd.grad(codes.square().sum() + pre.sum(), inputs)
    ref = torch.autograd.grad(a.square().sum() + pre_ref.sum(), inputs)
    for g, r in zip(grads, ref):
        assert torch.allclose(g, r, rtol=1e-9, atol=1e-10)
    assert grads[3][: len(inv_steps) - m].abs().sum() == 0  # no gradient to the truncated iterations


def test_truncation_is_validated():
    with pytest.raises(ValueError, match="grad_iterations"):
        LISTA(dct_dictionary(16, 25), n_iter=4, grad_iterations=5)


@pytest.mark.parametrize("n_thr", [1, 25])
def test_recomputed_backward_is_the_exact_gradient_at_t_30(n_thr):
    """recompute=True keeps only the inputs and recomputes the iterates a chunk of rows at a time: the same
    gradient as autograd through all 30 iterations (n = 40 rows, so chunks of 2 rows)."""
    inputs = problem(n_thr, n_iter=30)
    codes, pre = unrolled_ista(*inputs, recompute=True)
    ref_codes, ref_pre = autograd_ista(*inputs)
    assert torch.equal(codes, unrolled_ista(*inputs)[0]) and torch.allclose(codes, ref_codes, atol=1e-12)
    weights = torch.randn_like(codes), torch.randn_like(pre)
    grads = torch.autograd.grad((codes * weights[0]).sum() + (pre * weights[1]).sum(), inputs)
    ref = torch.autograd.grad((ref_codes * weights[0]).sum() + (ref_pre * weights[1]).sum(), inputs)
    for name, g, r in zip(["drive", "gram", "inv_steps", "thresholds"], grads, ref):
        assert torch.allclose(g, r, rtol=1e-9, atol=1e-10), name
    only_codes = torch.autograd.grad(unrolled_ista(*inputs, recompute=True)[0].sum(), inputs[0])[0]
    assert torch.allclose(only_codes, torch.autograd.grad(autograd_ista(*inputs)[0].sum(), inputs[0])[0], atol=1e-10)


def _saved_bytes(n_iter: int, **kwargs) -> int:
    drive, gram, inv_steps, thresholds = problem(1, dtype=torch.float32, n=64, n_iter=n_iter)
    saved = {}

    def pack(t):
        saved[t.untyped_storage().data_ptr()] = t.untyped_storage().nbytes()
        return t

    with torch.autograd.graph.saved_tensors_hooks(pack, lambda t: t):
        unrolled_ista(drive, gram, inv_steps, thresholds, **kwargs)
    return sum(saved.values())


def test_recomputed_backward_keeps_memory_flat_in_t():
    assert _saved_bytes(30, recompute=True) <= 1.5 * _saved_bytes(1, recompute=True)
    assert _saved_bytes(30, recompute=True) <= 1.5 * _saved_bytes(1)  # and against the stored backward at T = 1
    assert _saved_bytes(30) > 10 * _saved_bytes(1)  # the stored backward keeps every iterate


def test_lista_layer_recompute_backward_gives_the_same_gradients():
    torch.manual_seed(0)
    z = torch.randn(50, 16)
    grads = []
    for recompute in (False, True):
        layer = LISTA(dct_dictionary(16, 25), n_iter=30, lam=0.05, learn_dictionary=True, per_iteration=True,
                      recompute_backward=recompute)
        zz = z.clone().requires_grad_()
        codes = layer(zz)
        params = [zz] + [p for p in layer.parameters() if p.requires_grad]
        grads.append(torch.autograd.grad((codes * codes.detach().sign()).sum(), params))
    for g, r in zip(*grads):
        assert torch.allclose(g, r, rtol=1e-5, atol=1e-5 * r.abs().max())
    with pytest.raises(ValueError, match="recompute_backward"):
        LISTA(dct_dictionary(16, 25), n_iter=4, grad_iterations=2, recompute_backward=True)
    with pytest.raises(ValueError, match="grad_iterations"):
        unrolled_ista(*problem(1), grad_iterations=2, recompute=True)
