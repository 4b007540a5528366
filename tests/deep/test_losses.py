"""Multi-label / single-positive losses: direct formulas, gradients, stability, masks."""

from __future__ import annotations

import math

import numpy as np
import pytest

torch = pytest.importorskip("torch")

from mimlkit.deep import losses as L  # noqa: E402

torch.set_num_threads(1)


def _sig(x):
    return 1.0 / (1.0 + np.exp(-x))


S = np.array([[1.5, -0.5, 0.3, -2.0], [0.2, 0.7, -1.2, 2.5]])
T = np.array([[1, -1, -1, 0], [-1, 1, 1, -1]])  # 1 positive, 0 observed negative, -1 unobserved


def _t(a, dtype=torch.float32):
    return torch.tensor(a, dtype=dtype)


def _loss(name, **kw):
    return L.create_loss(name, **kw)


def _val(loss, s=S, t=T, **kw):
    return loss(_t(s), _t(t, torch.int8), **kw)


# ----------------------------------------------------------------------------- direct formulas
def _an_matrix(s, t):
    p = _sig(s)
    return np.where(t == 1, -np.log(p), -np.log(1 - p))


def test_bce_an_and_ignore():
    m = _an_matrix(S, T)
    assert np.isclose(_val(_loss("an")).item(), m.mean(), atol=1e-6)
    assert np.isclose(_val(_loss("bce")).item(), m.mean(), atol=1e-6)
    obs = T >= 0
    want = (np.where(obs, m, 0).sum(1) / 4).mean()
    assert np.isclose(_val(_loss("bce", unobserved="ignore")).item(), want, atol=1e-6)
    none = _val(_loss("bce", reduction="none"))
    assert none.shape == (2,) and np.allclose(none.numpy(), m.mean(1), atol=1e-6)
    assert np.isclose(_val(_loss("bce", reduction="sum")).item(), m.mean(1).sum(), atol=1e-5)


def test_wan_ls_nls():
    p = _sig(S)
    lp, ln = -np.log(p), -np.log(1 - p)
    w = np.where(T == 1, lp, np.where(T == 0, ln, ln / 3))
    assert np.isclose(_val(_loss("wan")).item(), w.mean(), atol=1e-6)
    e = 0.1
    ls = np.where(T == 1, (1 - e) * lp + e * ln, (1 - e) * ln + e * lp)
    assert np.isclose(_val(_loss("ls")).item(), ls.mean(), atol=1e-6)
    nls = np.where(T == 1, lp, (1 - e) * ln + e * lp)
    assert np.isclose(_val(_loss("nls")).item(), nls.mean(), atol=1e-6)


def test_focal_asl_formulas_and_nesting():
    p = _sig(S)
    g = 2.0
    f = np.where(T == 1, -(1 - p) ** g * np.log(p), -(p ** g) * np.log(1 - p))
    assert np.isclose(_val(_loss("focal")).item(), f.mean(), atol=1e-6)
    # ASL defaults (γ-=4, γ+=0, clip=0.05)
    pm = np.maximum(p - 0.05, 0)
    a = np.where(T == 1, -np.log(p), -(pm ** 4) * np.log(1 - pm))
    assert np.isclose(_val(_loss("asl")).item(), a.mean(), atol=1e-6)
    # BCE = focal(γ=0); focal = ASL(γ+=γ-, clip=0)
    assert torch.allclose(_val(_loss("focal", gamma=0.0)), _val(_loss("bce")), atol=1e-6)
    assert torch.allclose(_val(_loss("focal", gamma=1.5)),
                          _val(_loss("asl", gamma_pos=1.5, gamma_neg=1.5, clip=0.0)), atol=1e-6)


def _zlpr_ref(s, t):
    out = []
    for si, ti in zip(s, t):
        pos = ti == 1
        neg = ti != 1
        out.append(np.log(1 + np.exp(-si[pos]).sum()) + np.log(1 + np.exp(si[neg]).sum()))
    return np.array(out)


def _opml_ref(s, t, a, b):
    out = []
    for si, ti in zip(s, t):
        pos = ti == 1
        neg = ti != 1
        out.append(np.log(a + np.exp(-si[pos]).sum()) + np.log(b + np.exp(si[neg]).sum()))
    return np.array(out)


def test_zlpr_and_opml_formulas():
    assert np.isclose(_val(_loss("zlpr")).item(), _zlpr_ref(S, T).mean(), atol=1e-6)
    got = _val(_loss("opml", alpha=0.4, beta=2.5)).item()
    assert np.isclose(got, _opml_ref(S, T, 0.4, 2.5).mean(), atol=1e-6)
    # a/b through the odds map
    lo = _loss("opml", a=0.3, b=0.8)
    assert math.isclose(lo.alpha, 0.3 / 0.7) and math.isclose(lo.beta, 4.0)
    assert math.isclose(lo.decision_threshold, 0.5 * (math.log(4.0) - math.log(0.3 / 0.7)))


@pytest.mark.parametrize("t", [T, np.array([[1, 1, 0, 0], [0, 1, 1, 0]])])
def test_opml_unit_constants_equal_zlpr(t):
    g = torch.Generator().manual_seed(0)
    s = torch.randn(6, 4, generator=g) * 3
    tt = _t(np.resize(t, (6, 4)), torch.int8)
    a = L.OPMLLoss(alpha=1.0, beta=1.0)(s, tt)
    b = L.ZLPRLoss()(s, tt)
    assert torch.allclose(a, b, atol=1e-6)
    assert torch.allclose(L.OPMLLoss(a=0.5, b=0.5)(s, tt), b, atol=1e-6)


@pytest.mark.parametrize("full", [False, True])
def test_opml_analytic_gradients(full):
    """Eq. 9: ∂L/∂s_i = −e^{−s_i}/(α + Σ_pos e^{−s}), ∂L/∂s_k = e^{s_k}/(β + Σ_neg e^{s})."""
    g = torch.Generator().manual_seed(1)
    B, c = 5, 6
    s = (torch.randn(B, c, generator=g) * 2).double().requires_grad_(True)
    if full:
        t = (torch.rand(B, c, generator=g) < 0.4).to(torch.int8)
        t[:, 0] = 1
    else:
        t = torch.full((B, c), -1, dtype=torch.int8)
        t[torch.arange(B), torch.randint(0, c, (B,), generator=g)] = 1
    alpha, beta = 0.6, 1.7
    L.OPMLLoss(alpha=alpha, beta=beta, reduction="sum")(s, t).backward()
    sd = s.detach().double()
    pos = t == 1
    ep = torch.where(pos, torch.exp(-sd), torch.zeros_like(sd))
    en = torch.where(~pos, torch.exp(sd), torch.zeros_like(sd))
    want = torch.where(pos, -ep / (alpha + ep.sum(1, keepdim=True)),
                       en / (beta + en.sum(1, keepdim=True)))
    # the loss runs in float32: compare at float32 precision
    assert torch.allclose(s.grad, want, atol=1e-5)
    # negative gradient mass < 1 (no domination of negatives), positives in (−1, 0)
    assert (s.grad.clamp(min=0).sum(1) < 1).all() and (s.grad[pos] < 0).all()
    # with one positive and α = 1 the positive gradient equals BCE's σ(s) − 1
    if not full:
        s2 = sd.clone().requires_grad_(True)
        L.OPMLLoss(reduction="sum")(s2, t).backward()
        assert torch.allclose(s2.grad[pos], torch.sigmoid(sd)[pos] - 1, atol=1e-6)


def test_opml_lower_bound():
    g = torch.Generator().manual_seed(2)
    s = torch.randn(50, 5, generator=g) * 20
    t = (torch.rand(50, 5, generator=g) < 0.5).to(torch.int8)
    lo = L.OPMLLoss(alpha=0.3, beta=0.5, reduction="none")(s, t)
    assert (lo >= math.log(0.3) + math.log(0.5) - 1e-5).all()


def test_soft_opml_formula_and_reduction_to_opml():
    lo = L.SoftOPMLLoss(alpha=0.5, beta=1.5, gamma=2.0, warmup_epochs=0)
    base = L.OPMLLoss(alpha=0.5, beta=1.5)
    assert torch.allclose(_val(lo), _val(base))  # no AP yet -> plain OPML
    ap = np.array([0.9, 0.5, 0.2, 0.7])
    lo.label_ap = _t(ap)
    p = _sig(S)
    eps = (ap[None] * p) ** 2.0
    out = []
    for i in range(2):
        pos, u, ng = T[i] == 1, T[i] == -1, T[i] == 0
        a = 0.5 + np.exp(-S[i][pos]).sum() + (eps[i][u] * np.exp(-S[i][u])).sum()
        b = 1.5 + ((1 - eps[i][u]) * np.exp(S[i][u])).sum() + np.exp(S[i][ng]).sum()
        out.append(np.log(a) + np.log(b))
    assert np.isclose(_val(lo).item(), np.mean(out), atol=1e-5)
    # epoch_update computes per-label AP against the observed positives
    sc = torch.tensor([[3.0, 0.0], [2.0, 1.0], [1.0, 2.0]])
    lo.epoch_update(1, sc, torch.tensor([[1, -1], [-1, -1], [1, 1]]))
    assert np.allclose(lo.label_ap.numpy(), [(1 + 2 / 3) / 2, 1.0])


def test_high_rank_matches_svd():
    g = torch.Generator().manual_seed(3)
    for B, c in [(4, 7), (9, 3)]:
        s = torch.randn(B, c, generator=g)
        P = torch.sigmoid(s).double().numpy()
        sv = np.linalg.svd(P, compute_uv=False)
        want = -1e-2 * np.sum(np.log(sv ** 2 + 1e-3))
        got = L.HighRankRegularizer(lam=1e-2, delta=1e-3)(s)
        assert np.isclose(got.item(), want, rtol=1e-4)
    # OPML + HR adds it to every sample's value
    s = torch.randn(4, 7, generator=g)
    t = torch.full((4, 7), -1, dtype=torch.int8)
    t[:, 2] = 1
    hr = L.HighRankRegularizer(1e-2, 1e-6)(s)
    assert torch.allclose(L.OPMLLoss(hr_lambda=1e-2)(s, t), L.OPMLLoss()(s, t) + hr, atol=1e-5)


def test_epr_entmax_apl_formulas():
    p = _sig(S)
    k = 1.5
    m = np.where(T == 1, -np.log(p), np.where(T == 0, -np.log(1 - p), 0))
    want = m.mean() + (p.sum(1).mean() - k) ** 2 / 16
    assert np.isclose(_val(_loss("epr", expected_num_pos=k)).item(), want, atol=1e-6)
    H = -p * np.log(p) - (1 - p) * np.log(1 - p)
    em = np.where(T == -1, -0.2 * H, m)
    assert np.isclose(_val(_loss("entmax", alpha=0.2)).item(), em.mean(), atol=1e-6)
    apl = _loss("apl", n_samples=2, n_labels=4, alpha=0.2, beta=0.5, theta=1.0,
                warmup_epochs=0, total_epochs=1)
    apl.epoch_update(0, _t(S), _t(T))  # per label: all unobserved get pseudo labels
    pt = apl.pseudo.numpy()
    assert np.isnan(pt[T != -1]).all() and np.allclose(pt[T == -1], p[T == -1], atol=1e-6)
    ap = np.where(T == -1, 0.5 * (p * -np.log(p) + (1 - p) * -np.log(1 - p)), m)
    got = apl(_t(S), _t(T, torch.int8), index=torch.arange(2))
    assert np.isclose(got.item(), ap.mean(), atol=1e-6)
    # quota: ⌊θ·|U_j|/(T−T_warm)⌋ lowest-score samples of each label
    apl2 = L.APLLoss(n_samples=4, n_labels=1, theta=0.5, warmup_epochs=0, total_epochs=1)
    apl2.epoch_update(0, torch.tensor([[3.0], [-1.0], [0.0], [-2.0]]), torch.full((4, 1), -1))
    assert (~torch.isnan(apl2.pseudo[:, 0])).nonzero().flatten().tolist() == [1, 3]


def test_large_loss_rejection_schedule():
    s = torch.tensor([[3.0, 2.0, -1.0, 0.5], [1.0, -3.0, 4.0, 0.0]])
    t = torch.tensor([[1, -1, -1, -1], [-1, -1, -1, 1]], dtype=torch.int8)
    base = L.BCELoss()(s, t)
    r = L.LargeLossLoss(mode="r", delta_rel=0.2)
    r.train()
    r.set_epoch(0)
    assert torch.allclose(r(s, t), base)  # clean rate 1 in epoch 0
    r.set_epoch(1)  # rate 0.2 -> k = ceil(8 * 0.2) = 2 largest unobserved losses: 4.0 and 2.0
    m = torch.nn.functional.softplus(torch.where(t == 1, -s, s))
    m2 = m.clone()
    m2[1, 2] = 0
    m2[0, 1] = 0
    assert torch.allclose(r(s, t), m2.mean(), atol=1e-6)
    ct = L.LargeLossLoss(mode="ct", delta_rel=0.2)
    ct.set_epoch(1)
    m3 = m.clone()
    m3[1, 2] = torch.nn.functional.softplus(-s[1, 2])
    m3[0, 1] = torch.nn.functional.softplus(-s[0, 1])
    assert torch.allclose(ct(s, t), m3.mean(), atol=1e-6)
    r.eval()
    assert torch.allclose(r(s, t), base)  # plain AN outside training
    cp = L.LargeLossLoss(mode="cp", delta_rel=0.2, n_samples=2, n_labels=4)
    cp.set_epoch(1)
    cp(s, t, index=torch.tensor([0, 1]))
    assert cp.corrected.sum() == 2 and cp.corrected[1, 2] and cp.corrected[0, 1]
    assert r.rejection_rate(3) == pytest.approx(0.6)


def test_role_formula_and_index():
    n, c = 3, 4
    lo = L.ROLELoss(n_samples=n, n_labels=c, expected_num_pos=1.0)
    t = torch.tensor([[1, -1, -1, -1], [-1, 1, -1, -1], [-1, -1, -1, 1]], dtype=torch.int8)
    lo.reset_estimates(t.numpy())
    assert torch.allclose(torch.sigmoid(lo.estimates[t == 1]), torch.tensor(0.995))
    s = torch.randn(2, c, generator=torch.Generator().manual_seed(0))
    idx = torch.tensor([2, 0])
    got = lo(s, t[idx], index=idx)
    f, g = torch.sigmoid(s), torch.sigmoid(lo.estimates.detach()[idx])
    nl = lambda x: -torch.log(x)  # noqa: E731
    pos = t[idx] == 1
    m = 0.5 * torch.where(pos, nl(f) + nl(g), torch.zeros_like(f)) + 0.5 * (
        g * nl(f) + (1 - g) * nl(1 - f) + f * nl(g) + (1 - f) * nl(1 - g))
    reg = 0.5 * ((f.sum(1).mean() - 1) ** 2 + (g.sum(1).mean() - 1) ** 2) / c ** 2
    assert torch.allclose(got, (m.sum(1) / c).mean() + reg, atol=1e-5)
    got.backward()
    assert lo.estimates.grad[1].abs().sum() == 0 and lo.estimates.grad[0].abs().sum() > 0
    with pytest.raises(ValueError, match="index"):
        lo.train()
        lo(s, t[idx])


# ----------------------------------------------------------------------------- generic properties
def _all_losses(n=4, c=5):
    out = []
    for name in L.list_losses():
        kw = {"n_samples": n, "n_labels": c, "total_epochs": 3}
        if name in ("epr", "role"):
            kw["expected_num_pos"] = 1.5
        out.append((name, L.create_loss(name, **kw)))
    return out


@pytest.mark.parametrize("name,loss", _all_losses())
def test_extreme_logits_finite(name, loss):
    n = 4
    s = torch.tensor([[100.0, -100.0, 100.0, -100.0, 0.0]] * n).requires_grad_(True)
    t = torch.tensor([[1, -1, -1, 0, -1], [-1, 1, -1, -1, 0], [1, 1, 0, 0, -1],
                      [-1, -1, -1, -1, 1]], dtype=torch.int8)
    loss.train()
    loss.set_epoch(2)
    if getattr(loss, "needs_epoch_scores", False):
        loss.epoch_update(2, s.detach(), t)
    out = loss(s, t, index=torch.arange(n))
    assert torch.isfinite(out).all(), name
    out.backward()
    assert torch.isfinite(s.grad).all(), name
    for p in loss.parameters():
        assert p.grad is None or torch.isfinite(p.grad).all()


@pytest.mark.parametrize("name,loss", _all_losses())
def test_observed_mask_equals_minus_one(name, loss):
    g = torch.Generator().manual_seed(4)
    s = torch.randn(4, 5, generator=g)
    t = (torch.rand(4, 5, generator=g) < 0.4).to(torch.int8)
    t[:, 0] = 1
    obs = torch.rand(4, 5, generator=g) < 0.6
    obs[:, 0] = True
    t_minus = torch.where(obs, t, torch.full_like(t, -1))
    idx = torch.arange(4)
    a = loss(s, t, observed=obs, index=idx)
    b = loss(s, t_minus, index=idx)
    assert torch.allclose(a, b, atol=1e-6), name


def test_registry_and_errors():
    assert {"bce", "opml", "opml_soft", "zlpr", "asl", "ll_r", "apl", "role"} <= set(
        L.list_losses())
    with pytest.raises(KeyError):
        L.create_loss("nope")
    # context keywords are dropped for losses that do not take them
    assert isinstance(L.create_loss("opml", n_samples=10, total_epochs=3), L.OPMLLoss)
    with pytest.raises(ValueError):
        L.create_loss("bce", reduction="avg")
    with pytest.raises(ValueError):
        L.from_unit(1.0)
    assert L.from_unit(0.5) == 1.0 and L.from_unit(0.5, "tan") == pytest.approx(1.0)
    with pytest.raises(ValueError, match="shape"):
        L.BCELoss()(torch.zeros(2, 3), torch.zeros(2, 4))


def test_stateful_loss_state_dict_roundtrip():
    a = L.APLLoss(n_samples=3, n_labels=2, warmup_epochs=0, total_epochs=2)
    a.epoch_update(1, torch.randn(3, 2), torch.full((3, 2), -1))
    b = L.APLLoss(n_samples=3, n_labels=2, warmup_epochs=0, total_epochs=2)
    b.load_state_dict(a.state_dict())
    assert b.epoch == 1 and torch.equal(torch.isnan(a.pseudo), torch.isnan(b.pseudo))
    s = L.SoftOPMLLoss()
    s.epoch_update(3, torch.randn(5, 2), torch.tensor([[1, -1]] * 5))
    s2 = L.SoftOPMLLoss()
    s2.load_state_dict(s.state_dict())
    assert torch.equal(s2.label_ap, s.label_ap) and s2.epoch == 3
