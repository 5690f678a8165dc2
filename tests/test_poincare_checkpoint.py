"""PoincareEmbedding: resumable checkpoints, their atomic writes, the row-sparse Riemannian SGD
step, and burn-in batches built exactly like main-phase batches."""
import json
import os

import numpy as np
import pytest

torch = pytest.importorskip("torch")
geoopt = pytest.importorskip("geoopt")

import hkd_core.poincare as P  # noqa: E402
from hkd_core.poincare import (PoincareEmbedding, poincare_distance_torch, read_checkpoint,  # noqa: E402
                               sample_negatives, write_checkpoint)


def _tree(branching=3, depth=3):
    """Closure of a complete tree: nodes 't', 't0', 't01', ... and (descendant, ancestor) pairs."""
    nodes, edges, frontier = ["t"], [], ["t"]
    for _ in range(depth):
        nxt = []
        for p in frontier:
            for i in range(branching):
                c = f"{p}{i}"
                nodes.append(c)
                nxt.append(c)
                edges += [(c, c[:j]) for j in range(1, len(c))]
        frontier = nxt
    return nodes, edges


NODES, EDGES = _tree()
PARAMS = dict(dim=3, epochs=6, burn_in=2, negatives=5, batch_size=8, lr=0.3, seed=3, device="cpu")


class Stop(Exception):
    pass


def _stop_after(k):
    def progress(rec):
        if rec["epoch"] == k:
            raise Stop
    return progress


def test_resume_after_interrupt_equals_uninterrupted_run(tmp_path):
    full = PoincareEmbedding(**PARAMS).fit(NODES, EDGES)
    ckpt = tmp_path / "ck"
    with pytest.raises(Stop):
        PoincareEmbedding(**PARAMS, checkpoint_dir=str(ckpt), checkpoint_every=1).fit(
            NODES, EDGES, progress=_stop_after(3))
    meta, arrays = read_checkpoint(ckpt)
    assert meta["epoch"] == 3 and arrays["weight"].shape == (len(NODES), 3)
    seen = []
    resumed = PoincareEmbedding(**PARAMS, checkpoint_dir=str(ckpt), checkpoint_every=1,
                                resume=True).fit(NODES, EDGES, progress=lambda r: seen.append(r["epoch"]))
    assert resumed.start_epoch_ == 4 and seen == [4, 5, 6]
    assert [h["epoch"] for h in resumed.history_] == list(range(1, 7))
    np.testing.assert_allclose(resumed.embedding_, full.embedding_, rtol=0, atol=1e-12)
    assert [h["loss"] for h in resumed.history_] == pytest.approx([h["loss"] for h in full.history_])


def test_checkpoint_every_k_epochs_and_at_the_end(tmp_path):
    epochs_written = []
    real = P.write_checkpoint

    def spy(directory, weight, meta, snapshots=None):
        epochs_written.append(meta["epoch"])
        real(directory, weight, meta, snapshots)

    P.write_checkpoint = spy
    try:
        PoincareEmbedding(**{**PARAMS, "epochs": 7}, checkpoint_dir=str(tmp_path), checkpoint_every=3).fit(NODES, EDGES)
    finally:
        P.write_checkpoint = real
    assert epochs_written == [3, 6, 7]


def test_resume_refuses_a_checkpoint_of_other_settings(tmp_path):
    PoincareEmbedding(**{**PARAMS, "epochs": 2}, checkpoint_dir=str(tmp_path)).fit(NODES, EDGES)
    with pytest.raises(ValueError, match="other settings"):
        PoincareEmbedding(**{**PARAMS, "lr": 0.1}, checkpoint_dir=str(tmp_path), resume=True).fit(NODES, EDGES)
    with pytest.raises(ValueError, match="other settings"):
        PoincareEmbedding(**PARAMS, checkpoint_dir=str(tmp_path), resume=True).fit(NODES, EDGES[:-1])


def test_resume_without_checkpoint_starts_at_epoch_one(tmp_path):
    m = PoincareEmbedding(**{**PARAMS, "epochs": 2}, checkpoint_dir=str(tmp_path / "none"), resume=True).fit(NODES, EDGES)
    assert m.start_epoch_ == 1 and len(m.history_) == 2


def test_checkpoint_write_is_atomic(tmp_path, monkeypatch):
    write_checkpoint(tmp_path, np.zeros((4, 2)), {"epoch": 1})
    before = (tmp_path / "checkpoint.npz").read_bytes()

    def crash(fh, **arrays):   # dies half-way through writing the new checkpoint
        fh.write(b"PK\x03\x04 half a zip")
        raise OSError("disk full")

    monkeypatch.setattr(P.np, "savez", crash)
    with pytest.raises(OSError, match="disk full"):
        write_checkpoint(tmp_path, np.ones((4, 2)), {"epoch": 2})
    monkeypatch.undo()
    assert (tmp_path / "checkpoint.npz").read_bytes() == before       # old one intact
    meta, arrays = read_checkpoint(tmp_path)
    assert meta["epoch"] == 1 and not arrays["weight"].any()
    assert sorted(os.listdir(tmp_path)) == ["checkpoint.json", "checkpoint.npz"]   # no temp left
    assert json.loads((tmp_path / "checkpoint.json").read_text())["epoch"] == 1


def test_checkpoint_is_read_without_pickle(tmp_path):
    np.save(tmp_path / "x.npy", np.array([object()], dtype=object), allow_pickle=True)
    with open(tmp_path / "checkpoint.npz", "wb") as fh:
        np.savez(fh, weight=np.array([{"a": 1}], dtype=object), meta=np.array("{}"))
    with pytest.raises(ValueError, match="pickle"):
        read_checkpoint(tmp_path)


def test_sparse_step_equals_geoopt_riemannian_sgd_on_the_full_table():
    # one epoch of one batch: the row-sparse update must match geoopt's dense RiemannianSGD step
    nodes, edges = NODES[:4], [("t0", "t"), ("t1", "t")]
    params = dict(dim=2, epochs=1, burn_in=0, negatives=2, batch_size=8, lr=0.5, seed=1,
                  device="cpu", init_scale=0.3, lr_schedule="constant")
    ours = PoincareEmbedding(**params).fit(nodes, edges)

    # replay the same draws against geoopt's optimizer on the whole table
    n = len(nodes)
    pairs = P._index_edges(nodes, edges)
    rng = np.random.default_rng(1)
    gen = torch.Generator().manual_seed(1)
    init = (torch.rand(n, 2, generator=gen, dtype=torch.float64) * 2 - 1) * 0.3
    forbidden = np.unique(np.concatenate([pairs[:, 0] * n + pairs[:, 1], pairs[:, 1] * n + pairs[:, 0],
                                          np.arange(n) * (n + 1)]))
    order = rng.permutation(len(pairs))
    b = pairs[order]
    negs, valid, _ = sample_negatives(b[:, 0], n, 2, forbidden, None, rng)
    w = geoopt.ManifoldParameter(init.clone(), manifold=geoopt.PoincareBall())
    opt = geoopt.optim.RiemannianSGD([w], lr=0.5, stabilize=None)
    targets = torch.from_numpy(np.concatenate([b[:, 1:2], negs], 1))
    mask = torch.from_numpy(np.concatenate([np.ones((len(b), 1), bool), valid], 1))
    dist = poincare_distance_torch(w[torch.from_numpy(b[:, 0])].unsqueeze(1), w[targets])
    loss = -torch.log_softmax((-dist).masked_fill(~mask, float("-inf")), 1)[:, 0].sum()
    loss.backward()
    opt.step()
    np.testing.assert_allclose(ours.embedding_, P._inside_ball(w.detach().numpy()), atol=1e-12)


def test_burn_in_batches_have_the_main_phase_structure():
    nodes, edges = _tree(4, 3)
    m = PoincareEmbedding(dim=2, epochs=4, burn_in=2, negatives=10, batch_size=16, device="cpu").fit(nodes, edges)
    burn = [h for h in m.history_ if h["phase"] == "burn-in"]
    main = [h for h in m.history_ if h["phase"] == "main"]
    assert len(burn) == 2 and len(main) == 2
    # same number of optimizer steps per edge (same batch size, every edge once per epoch) ...
    assert {h["steps"] for h in m.history_} == {-(-len(edges) // 16)}
    assert {h["edges"] for h in m.history_} == {len(edges)}
    # ... and degree-weighted draws hit closure pairs more often (the root is everyone's
    # ancestor), which is what made burn-in slow: those redraws are the only extra work
    assert sum(h["redraws"] for h in burn) > sum(h["redraws"] for h in main)


def test_redraw_checks_only_the_hits(monkeypatch):
    # each redraw round checks membership for the entries that hit, not the whole batch, and
    # never sorts the forbidden keys again (np.isin did, on every call)
    n = 50
    forbidden = np.unique(np.arange(n) * (n + 1))        # only self-pairs are forbidden
    calls = []
    real = P._is_forbidden

    def spy(keys, forb):
        calls.append(len(keys))
        return real(keys, forb)

    monkeypatch.setattr(P, "_is_forbidden", spy)
    monkeypatch.setattr(P.np, "isin", lambda *a, **k: pytest.fail("np.isin re-sorts the keys"))
    us = np.arange(20)
    cdf = np.cumsum(np.r_[np.ones(20) * 1000.0, np.ones(n - 20)])   # mostly draws u's own range
    negs, valid, redrawn = sample_negatives(us, n, 30, forbidden, cdf, np.random.default_rng(0))
    assert calls[0] == 20 * 30 and all(c < 20 * 30 for c in calls[1:])
    assert redrawn == sum(calls[1:])
    assert not np.any((negs == us[:, None]) & valid)
    assert valid.mean() > 0.99
