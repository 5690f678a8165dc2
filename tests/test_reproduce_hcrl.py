"""`python -m hkd_core reproduce hcrl --quick`: the digit grouping and the Table 2 rows."""
from __future__ import annotations

import json

import numpy as np

from hkd_core.cli import main
from hkd_core.reproduce_hcrl import METHODS, RecursiveGMM


def test_recursive_gmm_codes_follow_its_own_fit():
    rng = np.random.default_rng(0)
    X = np.concatenate([rng.normal(-5, 1, (40, 2)), rng.normal(5, 1, (60, 2))])
    model = RecursiveGMM(K=2, depth=2, seed=0).fit(X)
    codes = model.transform(X)
    assert codes.shape == (100, 2) and codes.min() >= 0 and codes.max() < 2
    # digit 0 = the larger component: the 60 rows around +5
    assert np.all(codes[40:, 0] == 0) and np.all(codes[:40, 0] == 1)


def test_reproduce_hcrl_quick(tmp_path, capsys):
    out = tmp_path / "hcrl.json"
    assert main(["reproduce", "hcrl", "--quick", "--json", str(out)]) == 0
    text = capsys.readouterr().out
    assert "paper's MNIST groups" in text and "order on digits" in text
    result = json.loads(out.read_text())
    for name in ("digits", "synthetic", "mammals"):
        rows = result["table2"][name]["rows"]
        assert set(rows) == set(METHODS)
        assert all(0.0 < rows[m]["mean"] <= 1.0 for m in METHODS)
    # every digit sits in exactly one first-level group
    groups = result["grouping"]["groups"]
    assert sorted(d for g in groups for d in g) == list(range(10))
