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
