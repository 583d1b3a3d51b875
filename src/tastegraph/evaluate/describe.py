"""Does the assistant describe an item it never read the text of? Colour and type, scored.

The LM describes an item from its embedding (`assistant/describe.py`), which is what
it does for photo-only items. To score that, the test items are items that do have text
and attributes, read as photo-only items are: by the embedding of their photo alone (the
fusion model's image side; their stored embedding has their text fused in), and that
stage 1 did not train on: stage 1 trains on the first
`manifest["items"]` embedded items with text, in the embedding store's id order (the stage-1
projector's manifest names the count and the embeddings version), and every other embedded
item with text, a colour and a type is held out. N of them are drawn at random (seeded).

Scoring (`DescriptionScorer`), case-insensitive, on words (runs of letters: "T-shirt" is
"t shirt"):
- colour: each colour value has base words, the last word of each "/" alternative with
  nameless words ("other", "unknown") dropped: "Dark Blue" -> blue, "Off White" -> white,
  "Bronze/Copper" -> bronze or copper, "Other" -> none (such items are not test items). A
  description names the colour right when it holds one of the item's base words and no
  base word of any other colour in the catalog: "dark blue" and "light blue" both count
  for "Dark Blue" (the shade is not scored), "black and white" counts for neither.
- type: each type value is a phrase, or "/" alternatives ("Leggings/Tights"; a one-word
  alternative before a longer last one shares its last word: "Hair/alice band" -> "hair
  band" or "alice band"), nameless words dropped. A phrase matches consecutive words, its
  last word also with an "s" or "es" ("dresses"), or without a final "s". The type is right
  when one of its phrases matches and that match does not lie inside a longer match of
  another catalog type: "bikini top" counts for "Bikini top", not for "Top"; "shirt dress"
  counts for both "Shirt" and "Dress" (no catalog type spans both words).
Baselines are scored by the same rule, reading their predicted value as their text:
(a) the nearest stage-1 training item by cosine of raw image-tower features (no fusion, no
LM) -> its colour and type; (a2) the same, by the sum of that cosine and the cosine of the
photos' colour signatures (`encoders/colour.py`, which our colour head also reads); (b)
chance: the expected score of a value drawn from the training items' distribution of that
attribute (per item, sum over values v of p(v) * score(v, truth); exact, no random draw);
(c) the training items' most common value. Two linear probes show how much colour and type
the features hold at all: a logistic regression per attribute, fitted on the stage-1 items
(standardised features, C = 1, not tuned), reading (d) the raw image-tower features and (e)
the photo-side embeddings the LM reads. They are a rough bound on what any reader of those
features, the LM included, names right.
A reference row scores the item's own text cut as stage 1 cuts its answers (32 tokens):
what a perfect stage-1 model would say, so the rule's ceiling.
Ours is the description as `tastegraph describe` gives it: where stage 1 fitted a look
head (`assistant/look.py`: fitted on every stage-1 item with a photo, a colour and a type,
C = 0.1; probe (e) on those whose colour and type the rule can name, C = 1), the look it
reads off the embedding (and, for colour, the photo's colour signature). The row "LM
alone reads the embedding" is the LM's greedy description from the stage-1 projector,
opening with one of the catalog's looks (stage 2 makes the projector forget describing;
`projector="current"` measures the current one).
95% percentile bootstrap intervals resample items; ours / (a) and ours / (a2) are paired
ratios.
"""

from __future__ import annotations

import logging
import re
from collections import Counter
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

import numpy as np

from tastegraph.config import Settings
from tastegraph.evaluate.metrics import Estimate, bootstrap, clustered_bootstrap
from tastegraph.progress import Progress
from tastegraph.store import Store

log = logging.getLogger(__name__)

OURS = "ours: as tastegraph describe serves"
LM_ALONE = "LM alone reads the embedding"
NEAREST_IMAGE = "(a) nearest training item, raw image"
NEAREST_COLOUR = "(a2) nearest, image + colour signature"
CHANCE = "(b) chance: training distribution"
MAJORITY = "(c) most common training value"
PROBE_IMAGE = "(d) linear probe, raw image features"
PROBE_PHOTO = "(e) linear probe, what the LM reads"
OWN_TEXT = "(ref) the item's own text, 32 tokens"
NAMELESS = frozenset({"other", "unknown", "undefined", "none"})

Phrase = tuple[str, ...]


def words(text: str) -> list[str]:
    """Lower-case runs of letters: "T-shirt, Dark Blue" -> t, shirt, dark, blue."""
    return re.findall(r"[a-z]+", text.lower())


def colour_words(value: str) -> frozenset[str]:
    """Base words of a colour value: the last nameable word of each "/" alternative."""
    bases = set()
    for alternative in value.split("/"):
        named = [w for w in words(alternative) if w not in NAMELESS]
        if named:
            bases.add(named[-1])
    return frozenset(bases)


def kind_phrases(value: str) -> list[Phrase]:
    """Phrases that name a type value: its "/" alternatives, nameless words dropped."""
    alternatives = [tuple(w for w in words(part) if w not in NAMELESS) for part in value.split("/")]
    alternatives = [a for a in alternatives if a]
    if len(alternatives) > 1 and len(alternatives[-1]) > 1:
        tail = alternatives[-1][1:]  # "hair/alice band": "hair" shares "band"
        alternatives = [(*a, *tail) if len(a) == 1 else a for a in alternatives[:-1]] + [
            alternatives[-1]
        ]
    return list(dict.fromkeys(alternatives))


def _word_matches(word: str, wanted: str) -> bool:
    return word in (wanted, wanted + "s", wanted + "es") or (
        wanted.endswith("s") and len(wanted) > 2 and word == wanted[:-1]
    )


def phrase_spans(text_words: Sequence[str], phrase: Phrase) -> list[tuple[int, int]]:
    """(start, end) of each place the phrase matches; its last word is plural-tolerant."""
    n = len(phrase)
    spans = []
    for start in range(len(text_words) - n + 1):
        window = text_words[start : start + n]
        if list(window[:-1]) == list(phrase[:-1]) and _word_matches(window[-1], phrase[-1]):
            spans.append((start, start + n))
    return spans


class DescriptionScorer:
    """Whether a text names an item's colour and type, given every value in the catalog."""

    def __init__(self, colours: Iterable[str], kinds: Iterable[str]) -> None:
        self.colour_bases = {c: colour_words(c) for c in set(colours)}
        self.all_colour_words = frozenset().union(*self.colour_bases.values())
        self.kind_phrases = {k: kind_phrases(k) for k in set(kinds)}

    def colour_nameable(self, colour: str) -> bool:
        return bool(colour_words(colour))

    def kind_nameable(self, kind: str) -> bool:
        return bool(kind_phrases(kind))

    def colour_right(self, text: str, colour: str) -> bool:
        found = set(words(text)) & self.all_colour_words
        bases = colour_words(colour)
        return bool(found & bases) and not (found - bases)

    def kind_right(self, text: str, kind: str) -> bool:
        text_words = words(text)
        spans = {
            other: [s for p in phrases for s in phrase_spans(text_words, p)]
            for other, phrases in (self.kind_phrases | {kind: kind_phrases(kind)}).items()
        }
        every = [(s, other) for other, found in spans.items() for s in found]
        for start, end in spans[kind]:
            inside_longer = any(
                other != kind and s <= start and end <= e and (e - s) > (end - start)
                for (s, e), other in every
            )
            if not inside_longer:
                return True
        return False


@dataclass(frozen=True)
class DescribeEvalConfig:
    items: int = 200  # held-out items described (about a second each on 2 CPU cores)
    seed: int = 0  # which items, and the bootstrap resamples
    max_new_tokens: int = 32  # stage 1's answer length
    answer_tokens: int = 32  # how stage 1 cut the answers: the reference row cuts the same
    resamples: int = 1000
    # The projector that describes: "alignment" (stage 1, what `tastegraph describe` and the
    # server use) or "current" (after stage 2, as the chat assistant reads items).
    projector: Literal["alignment", "current"] = "alignment"


@dataclass
class HeldOutItem:
    item_id: str
    text: str  # the item's own text (not shown to the LM)
    colour: str
    kind: str
    product_in_training: bool  # another variant of its product is a stage-1 item


@dataclass
class DescriptionReport:
    projector: dict[str, Any]  # version, stages, embeddings version, stage-1 items
    held_out: int  # eligible held-out items, before drawing N
    n: int
    colour: dict[str, Estimate]
    kind: dict[str, Estimate]
    ours_over_nearest: dict[str, Estimate]  # attribute -> paired ratio ours / (a)
    ours_over_nearest_colour: dict[str, Estimate]  # attribute -> paired ratio ours / (a2)
    new_product_items: int  # test items none of whose product's variants stage 1 read
    new_products: dict[str, dict[str, Estimate]]  # attribute -> method -> on those items
    rules: dict[str, str]
    rows: list[dict[str, Any]] = field(default_factory=list)  # per item: texts and scores


def stage1_training_ids(
    ids: Sequence[str], texts: Mapping[str, str], count: int
) -> tuple[list[str], list[str]]:
    """(stage-1 training items, the other items with text), as `align_assistant` picks
    them: the first `count` items with text in the embedding store's order."""
    with_text = [i for i in ids if texts.get(i)]
    return with_text[:count], with_text[count:]


def paired_ratio(ours: np.ndarray, baseline: np.ndarray, resamples: int, seed: int) -> Estimate:
    """mean(ours) / mean(baseline) over items resampled together; nan when the baseline
    never scores."""
    if not np.any(baseline):
        return Estimate(float("nan"), float("nan"), float("nan"), len(ours))
    return clustered_bootstrap(ours, np.arange(len(ours)), resamples, seed, baseline=baseline)


def _unit(rows: np.ndarray) -> np.ndarray:
    norms = np.linalg.norm(rows, axis=1, keepdims=True)
    unit: np.ndarray = (rows / np.maximum(norms, 1e-12)).astype(np.float32)
    return unit


def score_descriptions(
    scorer: DescriptionScorer,
    tests: Sequence[HeldOutItem],
    texts: Mapping[str, Sequence[str]],
) -> dict[str, dict[str, np.ndarray]]:
    """method -> attribute -> per-item 0/1, for each method's text of each test item."""
    return {
        method: {
            "colour": np.array(
                [scorer.colour_right(t, it.colour) for t, it in zip(said, tests, strict=True)],
                dtype=np.float64,
            ),
            "type": np.array(
                [scorer.kind_right(t, it.kind) for t, it in zip(said, tests, strict=True)],
                dtype=np.float64,
            ),
        }
        for method, said in texts.items()
    }


def chance_scores(
    scorer: DescriptionScorer,
    tests: Sequence[HeldOutItem],
    colours: Counter[str],
    kinds: Counter[str],
) -> dict[str, np.ndarray]:
    """Per item, the expected score of a value drawn from the training distribution."""

    def expected(counts: Counter[str], right: Any, truth: str) -> float:
        total = sum(counts.values())
        return sum(n * float(right(value, truth)) for value, n in counts.items()) / total

    return {
        "colour": np.array([expected(colours, scorer.colour_right, t.colour) for t in tests]),
        "type": np.array([expected(kinds, scorer.kind_right, t.kind) for t in tests]),
    }


def probe_looks(
    train_x: np.ndarray,
    train_ids: Sequence[str],
    items: Mapping[str, tuple[str, str, str, str | None]],
    test_x: np.ndarray,
) -> list[str]:
    """ "Colour. Type" for each test row, by a logistic regression per attribute fitted on
    the training rows (standardised features, C = 1: a fixed default, not tuned)."""
    from sklearn.linear_model import LogisticRegression
    from sklearn.pipeline import make_pipeline
    from sklearn.preprocessing import StandardScaler

    predicted = []
    for column in (1, 2):  # colour, type
        labels = [items[i][column] for i in train_ids]
        if len(set(labels)) < 2:
            predicted.append(labels[:1] * len(test_x))
            continue
        probe = make_pipeline(StandardScaler(), LogisticRegression(C=1.0, max_iter=300))
        probe.fit(train_x, labels)
        predicted.append(list(probe.predict(test_x)))
    return [f"{colour}. {kind}" for colour, kind in zip(*predicted, strict=True)]


def evaluate_descriptions(
    workdir: Path,
    items: Mapping[str, tuple[str, str, str, str | None]],
    image_ids: Sequence[str],
    image_features: np.ndarray,
    photo_vectors: Mapping[str, np.ndarray],
    config: DescribeEvalConfig | None = None,
    *,
    show_progress: bool = True,
) -> DescriptionReport:
    """items: item id -> (its text, colour, type, product), for every item in the store
    ("" where it has none; product: the variant attribute, or None). image_ids and
    image_features: the raw image-tower features of the items that have a photo.
    photo_vectors: item id -> its embedding from its photo alone (what the LM reads of a
    test item, as it would of a photo-only item: its fused embedding holds its text)."""
    from tastegraph.assistant.describe import (
        LookConstraint,
        alignment_manifest,
        describe,
        load_describe_lm,
        look_phrase,
        stage1_look_head,
    )
    from tastegraph.assistant.projector import load_projector
    from tastegraph.embeddings.store import EmbeddingStore, embeddings_root

    config = config or DescribeEvalConfig()
    lm, manifest = load_describe_lm(workdir, config.projector)
    stage1 = alignment_manifest(workdir, manifest)
    _, current = load_projector(workdir)
    folder = embeddings_root(workdir) / str(manifest["embeddings_version"])
    if not (folder / "manifest.json").is_file():
        raise ValueError(
            f"the projector was trained on embeddings {manifest['embeddings_version']}, which "
            f"are gone from {workdir}; run `tastegraph train assistant` again"
        )
    embeddings = EmbeddingStore(folder)
    if embeddings.colours is None:
        raise ValueError(
            f"embeddings {embeddings.version} have no colour signatures; run `tastegraph "
            "embed` and `tastegraph train assistant` again"
        )
    texts = {item_id: text for item_id, (text, *_) in items.items()}
    training, rest = stage1_training_ids(embeddings.ids, texts, int(stage1["items"]))
    scorer = DescriptionScorer(
        (c for _, c, _, _ in items.values() if c), (k for _, _, k, _ in items.values() if k)
    )
    with_image = {item_id: row for row, item_id in enumerate(image_ids)}

    def usable(item_id: str) -> bool:
        _, colour, kind, _ = items[item_id]
        return (
            item_id in with_image and scorer.colour_nameable(colour) and scorer.kind_nameable(kind)
        )

    train_pool = [i for i in training if usable(i)]
    pool = [i for i in rest if usable(i)]
    if not pool or not train_pool:
        raise ValueError(
            f"{len(pool)} held-out and {len(train_pool)} stage-1 items have text, a photo, a "
            "nameable colour and a type; need at least one of each"
        )
    rng = np.random.default_rng(config.seed)
    chosen = sorted(rng.choice(len(pool), min(config.items, len(pool)), replace=False))
    products = {items[i][3] for i in training} - {None}
    tests = [
        HeldOutItem(pool[row], *items[pool[row]][:3], items[pool[row]][3] in products)
        for row in chosen
    ]

    # (a): nearest stage-1 item by raw image features
    train_unit = _unit(image_features[[with_image[i] for i in train_pool]])
    test_unit = _unit(image_features[[with_image[t.item_id] for t in tests]])
    nearest = [train_pool[j] for j in np.argmax(test_unit @ train_unit.T, axis=1)]
    # (a2): the same, plus the cosine of the colour signatures
    train_colour = _unit(embeddings.colour_rows(train_pool))
    test_colour = _unit(embeddings.colour_rows([t.item_id for t in tests]))
    both = test_unit @ train_unit.T + test_colour @ train_colour.T
    nearest_colour = [train_pool[j] for j in np.argmax(both, axis=1)]

    train_image = image_features[[with_image[i] for i in train_pool]]
    test_image = image_features[[with_image[t.item_id] for t in tests]]
    train_photo = np.stack([photo_vectors[i] for i in train_pool])
    test_photo = np.stack([photo_vectors[t.item_id] for t in tests])
    probes = {
        PROBE_IMAGE: probe_looks(train_image, train_pool, items, test_image),
        PROBE_PHOTO: probe_looks(train_photo, train_pool, items, test_photo),
    }

    looks = LookConstraint(lm.tokenizer, (look_phrase(c, k) for _, c, k, _ in items.values()))
    head = stage1_look_head(workdir, manifest)
    generated, lm_alone = [], []
    with Progress(len(tests), "describing items", "items", show=show_progress) as progress:
        for test in tests:
            vector = photo_vectors[test.item_id]
            lm_alone.append(describe(lm, vector, config.max_new_tokens, looks))
            signature = embeddings.colour(test.item_id)
            served = describe(lm, vector, head=head, signature=signature) if head else lm_alone[-1]
            generated.append(served)
            progress.update()

    tokenizer, cut = lm.tokenizer, config.answer_tokens
    own = [
        tokenizer.decode(tokenizer(t.text, add_special_tokens=False)["input_ids"][:cut])
        for t in tests
    ]
    colours = Counter(items[i][1] for i in train_pool)
    kinds = Counter(items[i][2] for i in train_pool)
    top_colour, top_kind = colours.most_common(1)[0][0], kinds.most_common(1)[0][0]
    said = {
        OURS: generated,
        LM_ALONE: lm_alone,
        NEAREST_IMAGE: [f"{items[i][1]}. {items[i][2]}" for i in nearest],
        NEAREST_COLOUR: [f"{items[i][1]}. {items[i][2]}" for i in nearest_colour],
        MAJORITY: [f"{top_colour}. {top_kind}"] * len(tests),
        **probes,
        OWN_TEXT: own,
    }
    values = score_descriptions(scorer, tests, said)
    values[CHANCE] = chance_scores(scorer, tests, colours, kinds)
    order = [
        OURS,
        LM_ALONE,
        NEAREST_IMAGE,
        NEAREST_COLOUR,
        CHANCE,
        MAJORITY,
        PROBE_IMAGE,
        PROBE_PHOTO,
        OWN_TEXT,
    ]

    def estimates(rows: np.ndarray) -> dict[str, dict[str, Estimate]]:
        return {
            attribute: {
                m: bootstrap(values[m][attribute][rows], config.resamples, config.seed)
                for m in order
            }
            for attribute in ("colour", "type")
        }

    def ratios(rows: np.ndarray, baseline: str) -> dict[str, Estimate]:
        return {
            attribute: paired_ratio(
                values[OURS][attribute][rows],
                values[baseline][attribute][rows],
                config.resamples,
                config.seed,
            )
            for attribute in ("colour", "type")
        }

    every = np.arange(len(tests))
    everything = estimates(every)
    new = np.array([not t.product_in_training for t in tests], dtype=bool)
    new_rows = np.flatnonzero(new)
    new_estimates, new_ratios = estimates(new_rows), ratios(new_rows, NEAREST_IMAGE)
    rows = [
        {
            "item": t.item_id,
            "colour": t.colour,
            "type": t.kind,
            "product_in_training": t.product_in_training,
            "description": generated[i],
            "lm_alone": lm_alone[i],
            "own_text": own[i],
            "nearest_image_item": nearest[i],
            "nearest_image": said[NEAREST_IMAGE][i],
            "right": {m: {a: bool(values[m][a][i]) for a in ("colour", "type")} for m in said},
        }
        for i, t in enumerate(tests)
    ]
    return DescriptionReport(
        projector={
            "described_with": config.projector,
            "current_version": current["version"],
            "version": manifest["version"],
            "stages": manifest.get("stages", [manifest.get("stage", "alignment")]),
            "embeddings_version": manifest["embeddings_version"],
            "stage1_version": stage1.get("version", manifest["version"]),
            "stage1_items": int(stage1["items"]),
        },
        held_out=len(pool),
        n=len(tests),
        colour=everything["colour"],
        kind=everything["type"],
        ours_over_nearest=ratios(every, NEAREST_IMAGE),
        ours_over_nearest_colour=ratios(every, NEAREST_COLOUR),
        new_product_items=int(new.sum()),
        new_products={
            "colour": new_estimates["colour"] | {"ours / (a)": new_ratios["colour"]},
            "type": new_estimates["type"] | {"ours / (a)": new_ratios["type"]},
        },
        rules=RULES,
        rows=rows,
    )


RULES = {
    "colour": "right when the text holds a base word of the item's colour (last word of each "
    "'/' alternative: 'Dark Blue' -> blue) and no base word of another catalog colour",
    "type": "right when one of the type's phrases ('/' alternatives; last word plural-"
    "tolerant) matches consecutive words, not inside a longer match of another catalog type",
    "chance": "expected score of a value drawn from the stage-1 items' distribution "
    "(sum of p(v) * score(v, truth)), not a random draw",
    "held_out": "embedded items with text, a photo, a nameable colour and type, not among "
    "the first `stage1_items` embedded items with text (stage 1's training items)",
}


def table(report: DescriptionReport) -> str:
    """The report as an aligned text table."""

    def cell(e: Estimate) -> str:
        return f"{e.mean:.3f} [{e.low:.3f}, {e.high:.3f}]"

    p = report.projector
    current = p.get("current_version", p["version"])
    lines = [
        f"{report.n} held-out items with text (of {report.held_out:,}), described from their "
        f"embeddings by projector {p['version']} ({' + '.join(p['stages'])})"
        + (f"; the current projector is {current}" if current != p["version"] else ""),
        f"stage 1 trained on the first {p['stage1_items']:,} items with text of embeddings "
        f"{p['embeddings_version']}",
        f"{'method':40} {'colour':22} {'type':22}",
    ]
    for method in report.colour:
        lines.append(f"{method:40} {cell(report.colour[method]):22} {cell(report.kind[method]):22}")
    for name, ratio in (
        ("(a)", report.ours_over_nearest),
        ("(a2)", report.ours_over_nearest_colour),
    ):
        colour, kind = cell(ratio["colour"]), cell(ratio["type"])
        lines.append(f"{'ours / ' + name + ', paired':40} {colour:22} {kind:22}")
    new = report.new_products
    if report.new_product_items == report.n:
        lines.append("every item is of a product none of whose variants stage 1 read")
    elif report.new_product_items:
        lines.append(f"items whose product has no stage-1 variant ({report.new_product_items}):")
        for method in (OURS, NEAREST_IMAGE, "ours / (a)"):
            colour, kind = cell(new["colour"][method]), cell(new["type"][method])
            lines.append(f"  {method:38} {colour:22} {kind:22}")
    return "\n".join(lines)


def evaluate_store(
    store: Store,
    settings: Settings,
    config: DescribeEvalConfig | None = None,
    *,
    show_progress: bool = True,
) -> DescriptionReport:
    """`evaluate_descriptions` on the store's items (colour and type from the settings'
    `colour_attribute` and `kind_attribute`) and the feature cache's image features."""
    from tastegraph.assistant.describe import projector_embeddings
    from tastegraph.embeddings.job import photo_embeddings, prepare_features
    from tastegraph.encoders import item_text

    table = prepare_features(store, settings).table
    items: dict[str, tuple[str, str, str, str | None]] = {}
    for item in store.iter_items():
        attributes = item.attributes
        product = attributes.get(settings.variant_attribute)
        items[item.id] = (
            item_text(item),
            str(attributes.get(settings.colour_attribute) or "").strip(),
            str(attributes.get(settings.kind_attribute) or "").strip(),
            str(product) if product is not None else None,
        )
    rows = np.flatnonzero(table.has_image)
    image_ids = [table.item_ids[r] for r in rows]
    photo_ids, photo_matrix = photo_embeddings(
        table, settings.workdir, projector_embeddings(settings.workdir)
    )
    return evaluate_descriptions(
        settings.workdir,
        items,
        image_ids,
        table.image[rows],
        dict(zip(photo_ids, photo_matrix, strict=True)),
        config,
        show_progress=show_progress,
    )
