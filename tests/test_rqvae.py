"""RQ-VAE coder (vector_quantize_pytorch's ResidualVQ inside an MLP autoencoder)."""
from __future__ import annotations

import numpy as np
import pytest

from hkd_core.models import MODEL_SPECS, load_model, make_model
from hkd_core.models.rqvae import RQVAE


@pytest.fixture(scope="module")
def X():
    rng = np.random.default_rng(0)
    centres = 4.0 * rng.standard_normal((6, 5))
    return (centres[rng.integers(0, 6, 300)] + 0.5 * rng.standard_normal((300, 5))).astype(np.float32)


@pytest.fixture(scope="module")
def fitted(X):
    return RQVAE(K=8, D=3, hidden=(32,), latent_dim=8, epochs=30, random_state=0, device="cpu").fit(X)


def test_registered():
    assert MODEL_SPECS["rqvae"][1] == "RQVAE"
    model = make_model("rqvae", K=4, D=2)
    assert model.model_name == "rqvae" and model.K == 4 and model.D == 2


def test_codes_have_shape_and_range_and_transform_agrees(fitted, X):
    codes = fitted.codes_
    assert codes.shape == (len(X), 3) and codes.dtype == np.int64
    assert codes.min() >= 0 and codes.max() < 8
    np.testing.assert_array_equal(fitted.transform(X), codes)
    # k-means init + dead-code resets keep every level's codebook in use on clustered data
    assert all(n >= 4 for n in fitted.history_[-1]["codewords_used"])


def test_loss_falls_and_reconstruction_beats_the_mean(fitted, X):
    losses = [h["loss"] for h in fitted.history_]
    assert losses[-1] < 0.5 * losses[0]
    X_hat = fitted.inverse_transform(fitted.codes_)
    assert X_hat.shape == X.shape
    mse = ((X_hat - X) ** 2).sum(1).mean()
    assert mse < 0.5 * ((X - X.mean(0)) ** 2).sum(1).mean()


def test_same_seed_same_codes_and_save_load_round_trip(fitted, X, tmp_path):
    again = RQVAE(K=8, D=3, hidden=(32,), latent_dim=8, epochs=30, random_state=0, device="cpu").fit(X)
    np.testing.assert_array_equal(again.codes_, fitted.codes_)
    fitted.save(str(tmp_path / "m"))
    loaded = load_model(str(tmp_path / "m"))
    np.testing.assert_array_equal(loaded.transform(X), fitted.codes_)
    np.testing.assert_allclose(loaded.inverse_transform(fitted.codes_),
                               fitted.inverse_transform(fitted.codes_), atol=1e-5)


@pytest.mark.parametrize("bad", [dict(K=1), dict(D=0), dict(ema_decay=1.0), dict(hidden=5),
                                 dict(commitment=-1.0)])
def test_bad_parameters_are_named(bad, X):
    name = next(iter(bad))
    with pytest.raises(ValueError, match=name if name != "hidden" else "hidden"):
        RQVAE(**bad).fit(X)
