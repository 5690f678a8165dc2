import numpy as np
import pytest

from app.find import find_entities

NAMES = ["dog.n.01", "hunting_dog.n.01", "cat.n.01", "wolf.n.01"]
LABELS = ["canine", "canine", "feline", "canine"]
CODES = np.array([[7, 13, 0], [7, 13, 1], [2, 0, 0], [7, 2, 5]])


def test_code_prefix_label_and_name():
    rows, text = find_entities("7 13", NAMES, LABELS, CODES, 16)
    assert rows.tolist() == [0, 1] and "code prefix 7 13" in text
    assert find_entities("code: 7", NAMES, LABELS, CODES, 16)[0].tolist() == [0, 1, 3]
    assert find_entities("code: 7d", NAMES, LABELS, CODES, 16)[0].tolist() == [0, 1]   # hex digits
    assert find_entities("Canine", NAMES, LABELS, CODES, 16)[0].tolist() == [0, 1, 3]
    assert find_entities("label: feline", NAMES, LABELS, CODES, 16)[0].tolist() == [2]
    assert find_entities("dog", NAMES, LABELS, CODES, 16)[0].tolist() == [0, 1]
    assert find_entities("  ", NAMES, LABELS, CODES, 16)[0].tolist() == []
    # 99 is no digit when K=16: read as a name
    assert "names containing" in find_entities("99", NAMES, LABELS, CODES, 16)[1]


def test_bad_searches_say_why():
    with pytest.raises(ValueError, match="not a code prefix"):
        find_entities("code: x y", NAMES, LABELS, CODES, 16)
    with pytest.raises(ValueError, match="codes have 3"):
        find_entities("7 13 0 1", NAMES, LABELS, CODES, 16)
    with pytest.raises(ValueError, match="longer"):
        find_entities("a" * 500, NAMES, LABELS, CODES, 16)
