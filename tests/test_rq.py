"""Residual quantisation codes (faiss ResidualQuantizer behind the CodeModel interface)."""
from __future__ import annotations

import numpy as np
import pytest

from hkd_core.models import MODEL_SPECS, load_model, make_model, model_class
from hkd_core.models.rq import ResidualQuantization


@pytest.fixture(scope="module")
def X():
    rng = np.random.default_rng(0)
    centres = 4.0 * rng.standard_normal((6, 5))
    return (centres[rng.integers(0, 6, 300)] + 0.5 * rng.standard_normal((300, 5))).astype(np.float32)


@pytest.fixture(scope="module")
def fitted(X):
    return ResidualQuantization(K=8, D=4, random_state=0).fit(X)


def test_registered_under_rq_with_defaults():
    assert "rq" in MODEL_SPECS
    assert model_class("rq") is ResidualQuantization
    model = make_model("rq")
    assert model.model_name == "rq"
    params = model.get_params()
    assert params["K"] == 16 and params["D"] == 16 and params["max_beam_size"] == 1
    assert params["metric"] == "euclidean" and "random_state" in params


def test_codes_shape_range_and_transform_of_training_rows(fitted, X):
    codes = fitted.codes_
    assert codes.shape == (len(X), 4) and codes.dtype == np.int64
    assert codes.min() >= 0 and codes.max() < 8
    assert fitted.n_features_in_ == 5
    assert fitted.codebooks_.shape == (4, 8, 5)
    np.testing.assert_array_equal(fitted.transform(X), codes)
    X_hat = fitted.inverse_transform(codes)
    assert X_hat.shape == X.shape and X_hat.dtype == np.float32


def test_inverse_transform_matches_faiss_decode(fitted, X):
    import faiss

    packed = faiss.pack_bitstrings(np.ascontiguousarray(fitted.codes_, dtype=np.int32), 3)
    np.testing.assert_allclose(fitted.inverse_transform(fitted.codes_), fitted._rq.decode(packed),
                               atol=1e-5)


def test_reconstruction_error_falls_with_depth(fitted, X):
    losses = [h["loss"] for h in fitted.history_]
    assert [h["level"] for h in fitted.history_] == [1, 2, 3, 4]
    assert losses[0] > losses[-1]
    assert all(a >= b - 1e-6 for a, b in zip(losses, losses[1:]))
    # the last record is the error of the full reconstruction
    full = float(((fitted.inverse_transform(fitted.codes_).astype(np.float64) - X) ** 2).sum(1).mean())
    assert losses[-1] == pytest.approx(full, rel=1e-4)
    # and the first level is at least as good as predicting the mean
    assert losses[0] < float(((X - X.mean(0)) ** 2).sum(1).mean())


def test_progress_gets_one_record_per_level(X):
    seen = []
    ResidualQuantization(K=4, D=3).fit(X, progress=seen.append)
    assert [r["level"] for r in seen] == [1, 2, 3]


def test_save_load_round_trip_gives_identical_codes(fitted, X, tmp_path):
    fitted.save(str(tmp_path / "rq"))
    loaded = load_model(str(tmp_path / "rq"))
    assert type(loaded) is ResidualQuantization
    assert loaded.get_params() == fitted.get_params()
    np.testing.assert_array_equal(loaded.codes_, fitted.codes_)
    X_new = X[::2] + np.float32(0.31)
    np.testing.assert_array_equal(loaded.transform(X_new), fitted.transform(X_new))
    np.testing.assert_array_equal(loaded.transform(X), fitted.codes_)
    other = np.roll(fitted.codes_[:20], 1, axis=1)
    np.testing.assert_array_equal(loaded.inverse_transform(other), fitted.inverse_transform(other))


def test_beam_search_model_round_trips_too(X, tmp_path):
    model = ResidualQuantization(K=4, D=3, max_beam_size=4, random_state=1).fit(X)
    model.save(str(tmp_path / "beam"))
    np.testing.assert_array_equal(load_model(str(tmp_path / "beam")).transform(X), model.transform(X))


@pytest.mark.parametrize("K", [3, 1, 0, 6, 8192, 2.0, True])
def test_bad_K_is_refused_naming_K(K, X):
    with pytest.raises(ValueError, match=r"K must be a power of two in \[2, 1024\]"):
        ResidualQuantization(K=K, D=2).fit(X)


@pytest.mark.parametrize("param, value, match", [
    ("D", 0, r"D must be in \[1, 256\]"),
    ("D", 257, r"D must be in \[1, 256\]"),
    ("max_beam_size", 0, "max_beam_size"),
    ("n_iter", 0, "n_iter"),
    ("n_init", 0, "n_init"),
    ("random_state", -1, "random_state"),
    ("metric", "cosine", "metric must be one of"),
])
def test_bad_params_are_refused(param, value, match, X):
    with pytest.raises(ValueError, match=match):
        ResidualQuantization(**{"K": 4, "D": 2, param: value}).fit(X)


def test_fewer_rows_than_K_is_refused(X):
    with pytest.raises(ValueError, match="at least K=16"):
        ResidualQuantization(K=16, D=2).fit(X[:10])


def test_transform_checks_features(fitted, X):
    with pytest.raises(ValueError, match="features"):
        fitted.transform(X[:, :3])
    with pytest.raises(ValueError, match="code values"):
        fitted.inverse_transform(np.full((2, 4), 8))


def test_deterministic_per_seed(X):
    a = ResidualQuantization(K=8, D=3, random_state=5).fit(X)
    b = ResidualQuantization(K=8, D=3, random_state=5).fit(X)
    c = ResidualQuantization(K=8, D=3, random_state=6).fit(X)
    np.testing.assert_array_equal(a.codes_, b.codes_)
    np.testing.assert_array_equal(a.codebooks_, b.codebooks_)
    assert not np.array_equal(a.codebooks_, c.codebooks_)


@pytest.mark.parametrize("seed", [0, 1, 2, 3])
def test_first_digit_separates_the_two_halves_of_a_hand_made_line(seed):
    # Two pairs far apart: level 1 must split {-10, -9} from {9, 11} (centroids -9.5 and 10);
    # the residuals are -.5, .5, -1, 1, so level 2 splits each pair by their sign (codewords
    # -+0.75). Errors: level 1 (.25 + .25 + 1 + 1)/4 = 5/8, level 2 (4 * .25^2)/4 = 1/16.
    X = np.array([[-10.0], [-9.0], [9.0], [11.0]], dtype=np.float32)
    model = ResidualQuantization(K=2, D=2, random_state=seed).fit(X)
    first = model.codes_[:, 0]
    assert first[0] == first[1] and first[2] == first[3] and first[0] != first[2]
    second = model.codes_[:, 1]
    assert second[0] == second[2] and second[1] == second[3] and second[0] != second[1]
    np.testing.assert_allclose(np.sort(model.codebooks_[0].ravel()), [-9.5, 10.0], atol=1e-4)
    np.testing.assert_allclose(np.sort(model.codebooks_[1].ravel()), [-0.75, 0.75], atol=1e-4)
    assert model.history_[0]["loss"] == pytest.approx(5 / 8, abs=1e-4)
    assert model.history_[1]["loss"] == pytest.approx(1 / 16, abs=1e-4)
