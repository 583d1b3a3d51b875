"""Stage 2, shopping: examples from purchase histories, the choice prompt, one training run."""

from __future__ import annotations

import shutil
from pathlib import Path

import numpy as np
import pytest
import torch
from safetensors.torch import load_file
from test_lm import EMBED, tiny_lm

from tastegraph.assistant.choice import (
    ANSWER_PREFIX,
    ItemView,
    choice_prompt,
    choice_scores,
    choice_turn,
    matrix_lookup,
    text_ids,
)
from tastegraph.assistant.facts import Catalog
from tastegraph.assistant.lm import load_item_lm
from tastegraph.assistant.projector import load_projector
from tastegraph.assistant.shopping import (
    CandidatePool,
    ExampleConfig,
    ShoppingConfig,
    build_examples,
    shop_assistant,
    train_shopping,
)
from tastegraph.config import Settings
from tastegraph.display import PriceDisplay
from tastegraph.graph.taste import ItemDetails
from tastegraph.store import Event, SQLiteStore

COLOURS = ("Black", "White", "Red", "Blue")
KINDS = ("Dress", "Shirt", "Skirt", "Coat", "Scarf")
DAY = 86400.0


def catalog() -> tuple[list[str], Catalog]:
    """40 items with title, colour, type, category (Dress/Skirt: Full body, the rest Upper
    body) and price; 10 photo-only items (no text, a product code only)."""
    ids = [f"i{n:02d}" for n in range(50)]
    details = {}
    for n, item_id in enumerate(ids[:40]):
        colour, kind = COLOURS[n % 4], KINDS[n % 5]
        group = "Full body" if kind in ("Dress", "Skirt") else "Upper body"
        attributes = {"colour_group": colour, "product_type": kind, "product_group": group}
        details[item_id] = ItemDetails(f"Item {n}", None, attributes, price=0.01 * (n + 1))
    details |= {item_id: ItemDetails(None, f"p{item_id}", {}, 0.02) for item_id in ids[40:]}
    return ids, Catalog(details, PriceDisplay("€", 1000.0))


def purchase(user: str, item: str, day: int, basket: bool = True) -> Event:
    return Event(
        f"{user}-{item}-{day}",
        user,
        item,
        "purchase",
        1.0,
        day * DAY,
        f"{user}-{day}" if basket else None,
    )


HISTORY = [
    purchase("ann", "i40", 1),  # photo only
    purchase("ann", "i01", 1),  # White Shirt
    purchase("ann", "i06", 3),  # Red Shirt: like i01, another colour
    purchase("ann", "i41", 3),  # photo only
    purchase("bob", "i05", 2),  # White Dress; bob's first purchase: no history, no example
    purchase("bob", "i15", 4, basket=False),  # Blue Dress
    Event("bob-click", "bob", "i07", "click", 0.2, 5 * DAY),
]


def test_examples_come_in_families_with_negatives_from_the_targets_slice() -> None:
    ids, shop = catalog()
    pool = CandidatePool(ids, shop)
    config = ExampleConfig(candidates=6, recent_items=2, history_items=3)
    examples = build_examples(HISTORY, lambda e: True, shop, pool, config)

    found = sorted((e.family, e.user_id, e.bought) for e in examples)
    assert found == [
        ("attribute", "ann", "i01"),
        ("attribute", "ann", "i06"),
        ("attribute", "bob", "i15"),
        ("for_me", "ann", "i01"),
        ("for_me", "ann", "i06"),
        ("for_me", "ann", "i40"),  # photo-only targets are asked for with history only
        ("for_me", "ann", "i41"),
        ("for_me", "bob", "i15"),
        ("like_this_but", "ann", "i06"),
        ("like_this_but", "bob", "i15"),
    ]
    for example in examples:
        assert len(set(example.candidates)) == 6
        bought = {e.item_id for e in HISTORY if e.user_id == example.user_id}
        assert set(example.candidates) & bought == {example.bought}  # never a negative
        target = shop.get(example.bought)
        assert target is not None
        for other in example.candidates:
            facts = shop.get(other)
            assert facts is not None
            assert (facts.title is None) == (target.title is None)  # the target's slice
            assert facts.category == target.category  # and its category
    like = next(e for e in examples if e.family == "like_this_but" and e.user_id == "ann")
    assert like.reference == "i01" and "i01" not in like.recent
    assert like.history == ("i41", "i40", "i01")  # what the head's cosines read: the reference too
    late = next(e for e in examples if e.family == "for_me" and e.bought == "i41")
    assert late.recent == ("i06", "i40")  # the rest of the basket, then newest first
    assert late.history == ("i06", "i40", "i01")  # deeper than the prompt shows
    assert "red" in like.request and "shirt" not in like.request.lower()
    attribute = next(e for e in examples if e.family == "attribute" and e.bought == "i15")
    assert "blue" in attribute.request and "dress" in attribute.request
    assert build_examples(HISTORY, lambda e: True, shop, pool, config) == examples  # seeded
    assert len({e.answer for e in examples}) > 1  # the bought item moves between labels
    only_bob = build_examples(HISTORY, lambda e: e.user_id == "bob", shop, pool, config)
    assert {e.bought for e in only_bob} == {"i15"}
    capped = build_examples(HISTORY, lambda e: True, shop, pool, config, per_family=1)
    assert sorted(e.family for e in capped) == ["attribute", "for_me", "like_this_but"]
    with pytest.raises(ValueError, match="negatives"):
        CandidatePool(ids[:3], shop).sample("i01", 5, set(), np.random.default_rng(0))


def test_the_choice_prompt_marks_each_candidates_last_token(default_lm_dir: Path) -> None:
    lm = tiny_lm(default_lm_dir)
    candidates = ["Tilly dress (black dress)", "Ann shirt (white shirt)", "Bo coat (red coat)"]
    prompt = choice_prompt(lm, "A red coat?", candidates, ["Cami top (blue top)"])

    turn = choice_turn("A red coat?", candidates, ["Cami top (blue top)"])
    assert prompt.ids == lm.chat_ids(turn)[0].tolist() + text_ids(lm, ANSWER_PREFIX)
    for n, (end, text) in enumerate(zip(prompt.candidate_ends, candidates, strict=True)):
        assert lm.tokenizer.decode(prompt.ids[: end + 1]).endswith(f"[{n + 1}] {text}")
        after = lm.tokenizer.decode(prompt.ids[end + 1 : end + 2])
        assert after.startswith("\n") or after == "<|im_end|>", after


def test_items_read_as_tokens_then_text_and_photo_only_items_as_tokens(
    default_lm_dir: Path,
) -> None:
    lm = tiny_lm(default_lm_dir)
    ids, shop = catalog()
    vectors = np.arange(len(ids) * EMBED, dtype=np.float32).reshape(len(ids), EMBED)
    view = ItemView(lm, "tokens_text", shop, matrix_lookup(ids, vectors))
    k = lm.projector.config.tokens
    # recent: a text item; reference: photo-only; candidates: photo-only, then text
    prompt, items = view.prompt("Like {item}, but in red?", ["i42", "i03"], ["i02"], "i41")

    text = lm.tokenizer.decode(prompt.ids)
    placeholder = lm.item_placeholder
    assert f"{placeholder} Item 2 (Red Skirt), €30.00" in text  # tokens, then its text line
    assert f"Like {placeholder}, but in red?" in text  # photo-only: its tokens alone
    assert f"[1] {placeholder}\n[2] {placeholder} Item 3 (Blue Coat), €40.00" in text
    assert "i41" not in text and "i42" not in text
    torch.testing.assert_close(items, torch.from_numpy(vectors[[2, 41, 42, 3]]))
    placeholders = [i for i, t in enumerate(prompt.ids) if t == lm.item_token_id]
    assert len(placeholders) == 4 * k
    assert prompt.candidate_ends[0] == placeholders[3 * k - 1]  # [1] ends on its tokens

    tokens = ItemView(lm, "tokens", shop, matrix_lookup(ids, vectors))
    assert "Item 3" not in lm.tokenizer.decode(tokens.prompt("?", ["i03"])[0].ids)
    words = ItemView(lm, "text", shop)
    prompt, items = words.prompt("?", ["i42", "i03"])
    text = lm.tokenizer.decode(prompt.ids)
    assert "[1] item i42, product pi42" in text and placeholder not in text
    assert items.shape[0] == 0


def test_choice_scores_of_a_padded_batch_match_each_prompt_alone(default_lm_dir: Path) -> None:
    lm = tiny_lm(default_lm_dir)
    ids, shop = catalog()
    vectors = np.random.default_rng(0).standard_normal((len(ids), EMBED)).astype(np.float32)
    view = ItemView(lm, "tokens_text", shop, matrix_lookup(ids, vectors))
    short, short_items = view.prompt("A red coat?", ["i01", "i40", "i02"])
    long, long_items = view.prompt("Something for the office?", ["i05", "i06", "i41"], ["i07"])
    with torch.inference_mode():
        batch = choice_scores(lm, [short, long], torch.cat([short_items, long_items]))
        alone = [choice_scores(lm, [short], short_items), choice_scores(lm, [long], long_items)]
    assert batch.shape == (2, 3)
    torch.testing.assert_close(batch, torch.cat(alone), atol=1e-4, rtol=1e-4)


def test_shopping_training_lowers_the_loss_with_the_lm_frozen(
    default_lm_dir: Path, tmp_path: Path
) -> None:
    ids, shop = catalog()
    pool = CandidatePool(ids, shop)
    config = ExampleConfig(candidates=4, recent_items=1, families=("for_me",))
    history = [purchase(f"u{n}", ids[20 + n], 1) for n in range(12)]
    history += [purchase(f"u{n}", ids[n], 2) for n in range(12)]
    examples = build_examples(history, lambda e: True, shop, pool, config)
    assert len(examples) == 12
    vectors = np.random.default_rng(1).standard_normal((len(ids), EMBED)).astype(np.float32)
    lm = tiny_lm(default_lm_dir)
    frozen = {name: p.clone() for name, p in lm.model.named_parameters()}
    schedule = ShoppingConfig(epochs=8, batch_size=4, lr=3e-3, holdout=0, checkpoint_every=50)
    reader = ItemView(lm, "tokens_text", shop, matrix_lookup(ids, vectors))
    result = train_shopping(reader, examples, tmp_path, schedule, show_progress=False)

    assert result.steps == 8 * 3
    assert np.mean(result.losses[-3:]) < np.mean(result.losses[:3])
    for name, p in lm.model.named_parameters():
        assert torch.equal(p, frozen[name]), name


def test_stage_two_goes_on_from_the_stage_one_projector_and_saves_its_lora(
    built_workdir: Path, small_catalog: Settings, tmp_path: Path
) -> None:
    workdir = tmp_path / "work"
    shutil.copytree(built_workdir, workdir)
    settings = small_catalog.model_copy(update={"workdir": workdir})
    stage_one, started_from = load_projector(workdir)
    config = ShoppingConfig(batch_size=4, holdout=2, lora_rank=4)
    with SQLiteStore(workdir / "store.db") as store:
        result, folder = shop_assistant(store, settings, config, max_examples=12)

    projector, manifest = load_projector(workdir)
    assert manifest["version"] == folder.name
    assert manifest["stages"] == ["alignment", "shopping"]
    assert result.examples == manifest["examples"] > 2 and result.steps >= 1
    changed = [
        name
        for name, weight in projector.state_dict().items()
        if not torch.equal(weight, stage_one.state_dict()[name])
    ]
    assert changed  # trained on from stage 1
    # Its checkpoints are kept per starting projector: after a new stage 1, training
    # starts again instead of resuming from the projector stage 1 replaced.
    training = workdir / "models" / "shopping-training" / manifest["embeddings_version"]
    assert [p.name for p in training.iterdir()] == [started_from["version"]]

    served = load_item_lm(workdir)  # what chat and the server load
    assert served.lora == manifest["lora"] and manifest["lora"]["rank"] == 4
    saved = load_file(str(folder / "adapters.safetensors"))
    assert any(name.startswith("head.") for name in saved)
    assert all(name.startswith("head.") or "lora_" in name for name in saved)
    state = served.trainable_state()
    for name, weight in saved.items():
        assert torch.equal(state[name], weight), name
    assert any(w.abs().sum() > 0 for n, w in saved.items() if "lora_B" in n)  # trained


def test_the_head_weighs_each_candidates_cosine_to_the_shoppers_items_and_the_request(
    default_lm_dir: Path,
) -> None:
    lm = tiny_lm(default_lm_dir)
    ids, shop = catalog()
    vectors = np.random.default_rng(2).standard_normal((len(ids), EMBED)).astype(np.float32)
    wanted = vectors[3] / np.linalg.norm(vectors[3])  # the request points at i03
    view = ItemView(lm, "tokens_text", shop, matrix_lookup(ids, vectors), lambda text: wanted)
    # i02 is shown; i01 is further back in the shopper's history, which only the head reads
    prompt, items = view.prompt(
        "A blue coat?", ["i01", "i02", "i03"], ["i02"], history=["i02", "i05", "i01"]
    )
    assert "Item 5" not in lm.tokenizer.decode(prompt.ids)

    assert prompt.affinity is not None and prompt.affinity.shape == (3, 3)
    assert prompt.affinity[1, 0] == pytest.approx(1.0)  # i02 is the shopper's own item
    assert prompt.affinity[2, 1] == pytest.approx(1.0)  # i03 is what the request asks for
    assert prompt.affinity[0, 2] == pytest.approx(1.0)  # i01 is in the history
    assert prompt.affinity[1, 2] == pytest.approx(1.0)
    assert np.abs(prompt.affinity[[0, 2], 0]).max() < 0.99
    assert prompt.affinity[2, 2] < 0.99
    scales = np.array([1.0, 3.0, 2.0], dtype=np.float32)
    with torch.no_grad():  # the LM's term off: the scores are the weighted cosines
        lm.head.query.weight.zero_()
        lm.head.query.bias.zero_()
        lm.head.affinity.copy_(torch.from_numpy(scales))
        scores = choice_scores(lm, [prompt], items)[0]
    torch.testing.assert_close(scores, torch.from_numpy(prompt.affinity @ scales))
    assert int(scores.argmax()) == 2

    without_history, _ = view.prompt("A blue coat?", ["i01", "i02", "i03"], ["i02"])
    assert without_history.affinity is not None  # the items shown stand in for the history
    np.testing.assert_allclose(without_history.affinity[:, 2], without_history.affinity[:, 0])

    text_prompt, _ = ItemView(lm, "text", shop).prompt("A blue coat?", ["i01", "i03"])
    assert text_prompt.affinity is None  # no vectors to compare: that term is 0


def test_an_older_head_loads_so_that_it_scores_as_it_was_trained(default_lm_dir: Path) -> None:
    trained = tiny_lm(default_lm_dir)
    state = trained.trainable_state()
    before_cosines = {k: v for k, v in state.items() if k != "head.affinity"}
    lm = tiny_lm(default_lm_dir)
    lm.load_trainable_state(before_cosines)
    assert torch.equal(lm.head.affinity, torch.zeros(3))
    assert torch.equal(lm.head.key.weight, trained.head.key.weight)

    two_cosines = before_cosines | {"head.affinity": torch.tensor([4.0, 6.0])}  # format 2
    lm.load_trainable_state(two_cosines)
    assert torch.equal(lm.head.affinity, torch.tensor([4.0, 6.0, 0.0]))
