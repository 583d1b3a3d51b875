import numpy as np
import pytest

from tastegraph.graph.complements import MAX_VALUES, Complements, categorical_values
from tastegraph.store import Event

T0 = 1_700_000_000.0


def basket(n: int, items: list[str], day: float = 0.0) -> list[Event]:
    return [
        Event(f"b{n}-{item}", f"u{n}", item, "purchase", 1.0, T0 + day * 86_400, f"b{n}")
        for item in items
    ]


def shop() -> tuple[dict[str, dict[str, object]], list[Event]]:
    """Tops are bought with bottoms, shoes alone; 'sku' is an id, 'rating' a number."""
    attributes: dict[str, dict[str, object]] = {}
    for kind in ("top", "bottom", "shoe"):
        for k in range(10):
            attributes[f"{kind}{k}"] = {"type": kind, "sku": f"{kind}-{k}", "rating": k}
    attributes["mystery"] = {}
    events = []
    for n in range(10):
        events += basket(n, [f"top{n}", f"bottom{(n + 3) % 10}"])
        events += basket(100 + n, [f"shoe{n}", f"shoe{(n + 1) % 10}"])
    return attributes, events


def test_values_bought_together_score_above_chance() -> None:
    attributes, events = shop()
    complements = Complements.fit(events, attributes, now=None)
    assert set(complements.values) == {"type", "sku"}  # a number is not a category
    items = list(attributes)
    score = complements.scorer(items, attributes)(np.array([items.index("top0")]))[0]
    by_item = dict(zip(items, score.tolist(), strict=True))
    assert by_item["bottom5"] > 0 > by_item["shoe5"]
    assert by_item["bottom5"] > by_item["top5"]
    assert by_item["mystery"] == 0.0  # no attributes: no evidence either way


def test_a_score_is_the_summed_pmi_of_the_attributes_both_items_have() -> None:
    attributes, events = shop()
    attributes["plain top"] = {"type": "top"}  # no sku: that attribute adds nothing
    complements = Complements.fit(events, attributes, now=None)
    items = list(attributes)
    scores = complements.scorer(items, attributes)(np.arange(len(items)))
    for q, query in enumerate(items):
        for r, item in enumerate(items):
            expected = sum(
                float(table[values.index(attributes[query][name]), values.index(value)])
                for name, values in complements.values.items()
                if name in attributes[query] and (value := attributes[item].get(name)) is not None
                for table in [complements.pmi[name]]
            )
            assert scores[q, r] == pytest.approx(expected, abs=1e-5)


def test_events_at_or_after_now_are_not_read() -> None:
    attributes, events = shop()
    later = basket(500, ["top1", "shoe1"], day=30)
    before = Complements.fit(events + later, attributes, now=T0 + 86_400)
    expected = Complements.fit(events, attributes, now=None)
    assert before.values == expected.values
    for name in expected.values:
        np.testing.assert_array_equal(before.pmi[name], expected.pmi[name])


def test_attributes_with_too_many_values_are_not_categories() -> None:
    attributes = {
        f"i{k}": {"code": f"c{k}", "colour": "red" if k % 2 else "blue"}
        for k in range(MAX_VALUES + 1)
    }
    assert categorical_values(attributes) == {"colour": ["blue", "red"]}


def test_saved_and_loaded_alike(tmp_path) -> None:  # type: ignore[no-untyped-def]
    attributes, events = shop()
    fitted = Complements.fit(events, attributes, now=None)
    fitted.save(tmp_path)
    loaded = Complements.load(tmp_path)
    assert loaded.values == fitted.values
    for name in fitted.values:
        np.testing.assert_allclose(loaded.pmi[name], fitted.pmi[name], atol=1e-4)
    (tmp_path / "complements.json").unlink()
    with pytest.raises(FileNotFoundError, match="tastegraph graph"):
        Complements.load(tmp_path)


def test_a_log_without_pairs_gives_no_preference() -> None:
    attributes, _ = shop()
    complements = Complements.fit([], attributes, now=None)
    items = list(attributes)
    scores = complements.scorer(items, attributes)(np.arange(3))
    np.testing.assert_array_equal(scores, np.zeros((3, len(items)), np.float32))
