"""Stage 2, shopping: examples from purchase histories, the choice prompt, one training run."""

from __future__ import annotations

import shutil
from pathlib import Path

import numpy as np
import torch
from safetensors.torch import load_file
from test_lm import EMBED, tiny_lm

from tastegraph.assistant.choice import (
    ANSWER_PREFIX,
    choice_prompt,
    choice_scores,
    choice_turn,
    item_token_prompt,
    text_ids,
)
from tastegraph.assistant.lm import load_item_lm
from tastegraph.assistant.projector import load_projector
from tastegraph.assistant.shopping import (
    ExampleConfig,
    HardNegatives,
    ItemTokens,
    ShoppingConfig,
    build_examples,
    shop_assistant,
    train_shopping,
)
from tastegraph.config import Settings
from tastegraph.graph.job import ItemDetails
from tastegraph.store import Event, SQLiteStore

COLOURS = ("Black", "White", "Red", "Blue")
KINDS = ("Dress", "Shirt", "Skirt", "Coat", "Scarf")
DAY = 86400.0


def catalog() -> tuple[list[str], dict[str, ItemDetails], np.ndarray]:
    """40 items with colour and type, 4 photo-only items; text features per item: items
    0-19 are orthogonal, and each is nearer to every item of 20-39 than to the others."""
    ids = [f"i{n:02d}" for n in range(44)]
    details = {}
    for n, item_id in enumerate(ids[:40]):
        colour, kind = COLOURS[n % 4], KINDS[n % 5]
        details[item_id] = ItemDetails(
            f"Item {n}", None, {"colour_group": colour, "product_type": kind}
        )
    details |= {item_id: ItemDetails(None, None, {}) for item_id in ids[40:]}
    features = np.zeros((len(ids), 20), dtype=np.float32)
    features[np.arange(20), np.arange(20)] = 1.0
    features[20:] = 1.0 / np.sqrt(20)
    features += 0.01 * np.random.default_rng(0).standard_normal(features.shape).astype(np.float32)
    return ids, details, features


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
    purchase("ann", "i40", 1),  # photo only: a recent item, never a target
    purchase("ann", "i01", 1),
    purchase("ann", "i02", 3),
    purchase("ann", "i03", 3),
    purchase("bob", "i05", 2),  # bob's first purchase: no recent items, no example
    purchase("bob", "i06", 4, basket=False),
    Event("bob-click", "bob", "i07", "click", 0.2, 5 * DAY),
]


def test_examples_come_from_real_purchases_with_hard_negatives() -> None:
    ids, details, features = catalog()
    negatives = HardNegatives(ids[:40], features[:40])
    config = ExampleConfig(candidates=6, recent_items=2, negatives_from=12)
    examples = build_examples(HISTORY, lambda e: True, details, negatives, config)

    assert [(e.user_id, e.bought) for e in examples] == [
        ("ann", "i01"),
        ("ann", "i02"),
        ("ann", "i03"),
        ("bob", "i06"),
    ]
    recent = {e.bought: e.recent for e in examples}
    assert recent["i01"] == ("i40",)  # the rest of its basket
    # its basket first, then earlier purchases (one day's order is unknown)
    assert recent["i02"][0] == "i03" and recent["i02"][1] in {"i01", "i40"}
    assert recent["i06"] == ("i05",)
    for example in examples:
        assert len(set(example.candidates)) == 6
        assert not set(example.candidates) & set(example.recent)
        looks = details[example.bought].attributes
        assert looks["colour_group"].lower() in example.request
        assert looks["product_type"].lower() in example.request
        # the negatives are among the 12 items nearest to the bought one by text
        unit = features[:40] / np.linalg.norm(features[:40], axis=1, keepdims=True)
        nearest = np.argsort(-(unit @ unit[ids.index(example.bought)]))[1:14]
        assert {ids.index(i) for i in example.candidates if i != example.bought} <= set(nearest)
    again = build_examples(HISTORY, lambda e: True, details, negatives, config)
    assert again == examples  # seeded
    assert len({e.answer for e in examples}) > 1  # the bought item moves between labels

    only_bob = build_examples(HISTORY, lambda e: e.user_id == "bob", details, negatives, config)
    assert [e.bought for e in only_bob] == ["i06"]
    assert len(build_examples(HISTORY, lambda e: True, details, negatives, config, limit=2)) == 2


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

    items = item_token_prompt(lm, 3, 1, "A red coat?")
    placeholders = [i for i, t in enumerate(items.ids) if t == lm.item_token_id]
    k = lm.projector.config.tokens
    assert items.candidate_ends == placeholders[k - 1 :: k][1:]  # after the recent item


def test_choice_scores_of_a_padded_batch_match_each_prompt_alone(default_lm_dir: Path) -> None:
    lm = tiny_lm(default_lm_dir)
    short = item_token_prompt(lm, 3, 0, "A red coat?")
    long = item_token_prompt(lm, 3, 1, "Something for the office, in black?")
    items = torch.randn(7, EMBED)
    with torch.inference_mode():
        batch = choice_scores(lm, [short, long], items)
        alone = [choice_scores(lm, [short], items[:3]), choice_scores(lm, [long], items[3:])]
    assert batch.shape == (2, 3)
    torch.testing.assert_close(batch, torch.cat(alone), atol=1e-4, rtol=1e-4)


def test_shopping_training_lowers_the_loss_with_the_lm_frozen(
    default_lm_dir: Path, tmp_path: Path
) -> None:
    ids, details, features = catalog()
    negatives = HardNegatives(ids[:40], features[:40])
    config = ExampleConfig(candidates=4, recent_items=1, negatives_from=8)
    history = [purchase(f"u{n}", ids[20 + n], 1) for n in range(12)]
    history += [purchase(f"u{n}", ids[n], 2) for n in range(12)]
    examples = build_examples(history, lambda e: True, details, negatives, config)
    assert len(examples) == 12
    vectors = np.random.default_rng(1).standard_normal((len(ids), EMBED)).astype(np.float32)
    lm = tiny_lm(default_lm_dir)
    frozen = {name: p.clone() for name, p in lm.model.named_parameters()}
    schedule = ShoppingConfig(epochs=8, batch_size=4, lr=3e-3, holdout=0, checkpoint_every=50)
    reader = ItemTokens(lm, ids, vectors)
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
    stage_one, _ = load_projector(workdir)
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

    served = load_item_lm(workdir)  # what chat and the server load
    assert served.lora == manifest["lora"] and manifest["lora"]["rank"] == 4
    saved = load_file(str(folder / "adapters.safetensors"))
    assert any(name.startswith("head.") for name in saved)
    assert all(name.startswith("head.") or "lora_" in name for name in saved)
    state = served.trainable_state()
    for name, weight in saved.items():
        assert torch.equal(state[name], weight), name
    assert any(w.abs().sum() > 0 for n, w in saved.items() if "lora_B" in n)  # trained
