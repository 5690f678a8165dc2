from app.urlstate import parse_state, state_query

ARGS = (("mammals", "synthetic"), ("hkd", "hkm"), ("pca", "tsne"), ("hierarchical", "rank"))


def test_round_trip_and_bad_values_dropped():
    state = {"dataset": "mammals", "model": "hkm", "K": 2, "depth": 3, "projection": "tsne",
             "colour": "rank", "branch": "0.1", "entity": "dog.n.01"}
    assert parse_state(state_query(state), *ARGS) == state
    bad = ("dataset=../../etc/passwd&model=evil&K=2.7&D=999&depth=-7&projection=evil&colour=x"
           "&branch=<script>&entity=" + "a" * 400 + "&alpha=nan&epochs=10")
    assert parse_state(bad, *ARGS) == {"epochs": 10}
    assert parse_state("", *ARGS) == {}
    assert parse_state("branch=3.7.other&perplexity=12.5", *ARGS) == {"branch": "3.7.other", "perplexity": 12.5}


def test_a_metadata_column_colouring_passes_a_control_character_does_not():
    from urllib.parse import quote

    assert parse_state("colour=" + quote("column:year of birth"), *ARGS) == {"colour": "column:year of birth"}
    assert parse_state("colour=" + quote("column:a\nb"), *ARGS) == {}
    assert parse_state("colour=column:", *ARGS) == {}
    assert parse_state("colour=" + "column:" + "x" * 101, *ARGS) == {}
