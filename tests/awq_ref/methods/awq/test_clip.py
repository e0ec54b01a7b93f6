"""Clip search: matches a direct broadcast-and-sum oracle, never increases the group error."""
import torch

from awq_harness.awq_ref.methods.awq.clip import apply_clip, search_clip
from awq_harness.awq_ref.primitives.quant import QuantSpec, pseudo_quantize

SPEC = QuantSpec(4, 32)


def data(seed=0, n=96, k=128, t=300):
    gen = torch.Generator().manual_seed(seed)
    w = torch.randn(n, k, generator=gen)
    w[:, 5] *= 12  # an outlier weight column: clipping pays there
    x = torch.randn(t, k, generator=gen) * torch.exp(torch.randn(k, generator=gen))
    return w, x


def oracle(w, x, spec, grid=20, shrink=0.5, n_tokens=512):
    """Per (row, group) error of every shrink factor, by broadcasting [n, t, groups, G]."""
    g = spec.group_size
    xs = x[:: max(1, x.shape[0] // n_tokens)].reshape(1, -1, x.shape[1] // g, g)
    wg = w.reshape(w.shape[0], 1, -1, g)
    org_max = wg.abs().amax(dim=-1, keepdim=True)
    ref = (xs * wg).sum(-1)
    best_err, best = torch.full_like(org_max, float("inf")), org_max.clone()
    for i in range(int(shrink * grid)):
        m = org_max * (1 - i / grid)
        q = pseudo_quantize(torch.clamp(wg, -m, m).reshape(w.shape), spec).reshape(wg.shape)
        err = ((xs * q).sum(-1) - ref).pow(2).mean(dim=1, keepdim=True)[..., None]
        better = err < best_err
        best_err[better], best[better] = err[better], m[better]
    return best.reshape(w.shape[0], -1)


def test_matches_the_broadcast_oracle():
    w, x = data()
    torch.testing.assert_close(search_clip(w, x, SPEC), oracle(w, x, SPEC), rtol=0, atol=0)


def test_token_sampling_matches_the_oracle():
    w, x = data(seed=1, t=2000)
    torch.testing.assert_close(search_clip(w, x, SPEC, n_tokens=256), oracle(w, x, SPEC, n_tokens=256),
                               rtol=0, atol=0)


def group_errors(w, w_hat, x):
    g = SPEC.group_size
    d = (w_hat - w).reshape(w.shape[0], -1, g)
    xs = x.reshape(x.shape[0], -1, g)
    return torch.einsum("ngk,tgk->ngt", d, xs).pow(2).mean(-1)


def test_clipping_never_increases_any_group_error_and_shrinks_some():
    w, x = data(seed=2)
    best = search_clip(w, x, SPEC)
    org_max = w.abs().reshape(w.shape[0], -1, SPEC.group_size).amax(-1)
    assert (best <= org_max).all() and (best >= 0.5 * org_max).all() and (best < org_max).any()
    clipped = w.clone()
    apply_clip(clipped, best)
    before = group_errors(w, pseudo_quantize(w, SPEC), x)
    after = group_errors(w, pseudo_quantize(clipped, SPEC), x)
    assert (after <= before * (1 + 1e-5) + 1e-9).all() and after.sum() < before.sum()


def test_bfloat16_products_pick_nearly_the_same_clips():
    w, x = data(seed=3)
    exact = search_clip(w, x, SPEC)
    fast = search_clip(w, x, SPEC, dtype=torch.bfloat16)
    assert (fast == exact).float().mean() > 0.9
