"""`reproduce synthetic` prints both of the paper's tables from real (tiny) runs."""
import json

from hkd_core.cli import main


def test_reproduce_synthetic_prints_tables_1_and_2(tmp_path, monkeypatch, capsys):
    monkeypatch.setenv("HKD_CACHE_DIR", str(tmp_path / "cache"))
    out_json = tmp_path / "tables.json"
    assert main(["reproduce", "synthetic", "--epochs", "1", "--json", str(out_json)]) == 0
    text = capsys.readouterr().out
    assert "Table 1" in text and "Table 2" in text and "as published" in text
    for row in ("DCCL (Shu et al.)", "HKM (K=16)", "No reconstruction", "No KL divergence",
                "No decay weights"):
        assert row in text
    tables = json.loads(out_json.read_text())
    hkd = tables["table1"]["HKD"]
    # the same HKD run appears in both tables, and its numbers are what the CLI computed
    assert tables["table2"]["HKD"] == hkd
    assert len(hkd["reduction"]) == 8 and set(hkd["share"]) == {"5", "10", "15", "20"}
    # a second call reuses the cached runs and prints the same numbers
    assert main(["reproduce", "synthetic", "--epochs", "1"]) == 0
    assert capsys.readouterr().out.split("Table 1 as published")[0] == text.split("Table 1 as published")[0]
