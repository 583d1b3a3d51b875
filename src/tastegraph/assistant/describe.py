"""Describe an item from its embedding (and its photo's colour signature): the stage-1
task, asked at request time.

Stage 1 of assistant training (`assistant/train.py`) teaches the LM to answer "Describe this
item: <k item tokens>" with the item's look ("Black Dress") and then its own text (title,
then "key: value" attributes), cut to the first 32 tokens; half of its items are read by
the embedding of their photo alone, as a photo-only item is. Asking the same question of an
item that has no text (about half of the H&M catalog is photo-only) gives a description
written from its embedding: the look, title and attributes the LM believes it would have.
It is a guess, and is shown as one.

Where stage 1 fitted a look head (`assistant/look.py`), the description is the look the
head reads off the embedding (and, for colour, the photo's colour signature stored beside
it), and the LM writes nothing. Measured on 200 held-out H&M items (`tastegraph evaluate
descriptions`), the head names the right colour 0.82 and type 0.72 of the time, the LM
choosing among the catalog's looks 0.39 and 0.41. What the LM
wrote after the look was chat-style prose that said nothing true and often something false
("A classic, yet unassuming, piece of clothing that has become a symbol of the wearer's
identity"; a white sweater "with a distinctive black stripe"), so it is not shown. Either
way one item always gets the same words from one projector (the LM decodes greedily).

Describing uses the stage-1 projector with the plain LM, as stage 1 trained them, not the
current projector: stage 2 goes on training the projector to pick among candidates, and it
forgets describing (on H&M, after stage 2 every description is the same chat-style prose
naming no colour; `tastegraph evaluate descriptions --projector current` measures it).
"""

from __future__ import annotations

import logging
import re
import threading
from collections.abc import Iterable, Mapping
from pathlib import Path
from typing import Any, Literal

import numpy as np
import torch
from safetensors.torch import load_file

from tastegraph import registry
from tastegraph.assistant.lm import ItemLM, load_item_lm
from tastegraph.assistant.look import LookHead
from tastegraph.assistant.models import DEFAULT_LM, cached_lm
from tastegraph.assistant.projector import (
    ItemProjector,
    ProjectorConfig,
    load_projector,
    projector_root,
)
from tastegraph.embeddings.store import EmbeddingStore, embeddings_root
from tastegraph.encoders.text import quiet_transformers_progress
from tastegraph.lru import LruMap

log = logging.getLogger(__name__)

PROMPT = "Describe this item: "  # stage 1 trains the LM to answer it from the item alone
DEFAULT_NEW_TOKENS = 32  # what stage 1 trained the answers to (AlignConfig.max_text_tokens)
Which = Literal["alignment", "current"]  # the stage-1 projector, or the current one


def describe_prompt(lm: ItemLM) -> torch.Tensor:
    """(1, T) token ids of the stage-1 question, in the chat template, ready for a reply:
    the same ids `train.encode_examples` trains on."""
    return lm.chat_ids([{"role": "user", "content": PROMPT + lm.item_placeholder}])


def clean_description(text: str) -> str:
    """The first line of a generation, whitespace collapsed and without a dangling field.

    Stage 1's answers are fields joined by ". " ("Black Dress. Tilly dress. colour_group:
    Black. department: ..."), so the first *sentence* would be the look alone: the whole first
    line is kept. Answers were cut at a token budget, so a generation often stops inside a
    field; a last field that is only a key ("garment_group:", "graphical_app") after
    "key: value" fields is dropped. A value cut short ("department: Jer") is kept."""
    lines = [line for line in text.strip().splitlines() if line.strip()]
    line = " ".join(lines[0].split()) if lines else ""
    parts = line.split(". ")
    fields = [re.fullmatch(r"[\w ]+: \S.*", part) is not None for part in parts]
    if len(parts) > 2 and any(fields[1:-1]) and not fields[-1]:
        parts = parts[:-1]
    return ". ".join(parts).strip().rstrip(".").strip()


def look_phrase(colour: str | None, kind: str | None) -> str:
    """How an item's look reads ("Black Dress"): its colour and kind values, where it has
    them; "" when it has neither."""
    return " ".join(v for value in (colour, kind) if value and (v := str(value).strip()))


class LookConstraint:
    """Descriptions start with a look the catalog has ("Black Dress.", as stage 1's answers
    do), so the LM chooses among real colours and kinds instead of inventing one ("Darker,
    Broadband Trousers"); after the look's full stop any token may follow. Greedy decoding
    under the constraint takes, token by token, the LM's best continuation that stays on
    some catalog look."""

    def __init__(self, tokenizer: Any, looks: Iterable[str]) -> None:
        self.next: dict[tuple[int, ...], set[int]] = {}
        self.complete: set[tuple[int, ...]] = set()
        for look in {look for look in looks if look}:
            ids = tuple(tokenizer(f"{look}.", add_special_tokens=False)["input_ids"])
            self.complete.add(ids)
            for n in range(len(ids)):
                self.next.setdefault(ids[:n], set()).add(ids[n])
        self.everything = list(range(len(tokenizer)))
        self._sorted = {prefix: sorted(ids) for prefix, ids in self.next.items()}

    def __call__(self, generated: list[int]) -> list[int]:
        prefix = tuple(generated)
        if any(prefix[:n] in self.complete for n in range(1, len(prefix) + 1)):
            return self.everything
        return self._sorted.get(prefix, self.everything)

    def __bool__(self) -> bool:
        return bool(self.complete)


def describe(
    lm: ItemLM,
    vector: np.ndarray,
    max_new_tokens: int = DEFAULT_NEW_TOKENS,
    looks: LookConstraint | None = None,
    head: LookHead | None = None,
    signature: np.ndarray | None = None,
) -> str:
    """What an item is, read from its embedding (d,) alone: where there is a look head, the
    look it reads ("Black Dress") off the embedding and the photo's colour signature (s,);
    else the LM's greedy decoding of the stage-1 prompt, starting with one of `looks` where
    given, cleaned by `clean_description`."""
    if head is not None:
        return look_phrase(*head.looks(np.asarray(vector, dtype=np.float32), signature)[0])
    items = torch.tensor(np.asarray(vector, dtype=np.float32).reshape(1, -1))  # a copy
    allowed = looks if looks else None
    return clean_description(lm.generate(describe_prompt(lm), items, max_new_tokens, allowed))


class Describer:
    """Descriptions by item id, kept for the most recently asked `size` items (about a
    second of CPU per new item for SmolLM2-135M). One generation runs at a time: the model
    is shared, and two requests for one item make one description."""

    def __init__(
        self,
        lm: ItemLM,
        embeddings: EmbeddingStore,
        size: int = 1024,
        max_new_tokens: int = DEFAULT_NEW_TOKENS,
        looks: Iterable[str] = (),
        head: LookHead | None = None,
    ) -> None:
        self.lm = lm
        self.embeddings = embeddings  # what the projector reads, with colour signatures
        self.looks = LookConstraint(lm.tokenizer, looks)  # the catalog's ("Black Dress")
        self.head = head  # where there is one, it chooses the look instead of the LM
        self.max_new_tokens = max_new_tokens
        self._cache: LruMap[str, str] = LruMap(size)
        self._lock = threading.Lock()

    def __call__(self, item_id: str) -> str:
        """The item's description; KeyError if the item has no embedding."""
        kept = self._cache.get_many([item_id])
        if item_id in kept:
            return kept[item_id]
        with self._lock:
            kept = self._cache.get_many([item_id])  # another request may have made it
            if item_id in kept:
                return kept[item_id]
            vector, signature = self.embeddings.vector(item_id), self.embeddings.colour(item_id)
            text = describe(self.lm, vector, self.max_new_tokens, self.looks, self.head, signature)
            self._cache.put_many({item_id: text})
        return text

    def __len__(self) -> int:
        return len(self._cache)


def projector_embeddings(workdir: Path) -> EmbeddingStore:
    """The embedding store version the current projector was trained on (the item tokens
    only mean something for it), or the current version if that one is gone. Raises
    FileNotFoundError when the workdir has no projector or no embeddings."""
    _, manifest = load_projector(workdir)
    folder = embeddings_root(workdir) / str(manifest.get("embeddings_version", ""))
    if manifest.get("embeddings_version") and (folder / "manifest.json").is_file():
        return EmbeddingStore(folder)
    log.warning(
        "the projector was trained on embeddings %s, which are gone; using the current ones",
        manifest.get("embeddings_version"),
    )
    return EmbeddingStore.open(workdir)


def alignment_manifest(workdir: Path, manifest: Mapping[str, Any]) -> dict[str, Any]:
    """The manifest (with "version" and "path") of the stage-1 (alignment) projector behind
    a projector's manifest: itself, or for a stage-2 projector the newest alignment version
    made before it for the same embeddings. ValueError if there is none."""
    if manifest.get("stage", "alignment") == "alignment" and "items" in manifest:
        return dict(manifest)
    root = projector_root(workdir)
    before = float(manifest.get("created_at", float("inf")))
    candidates = []
    for folder in (p for p in root.iterdir() if p.is_dir() and not p.name.startswith(".")):
        try:
            candidate = registry.read_manifest(folder, "projector")
        except (FileNotFoundError, ValueError):  # a half-written folder; another format
            continue
        candidates.append(candidate | {"version": folder.name, "path": str(folder)})
    for candidate in sorted(candidates, key=lambda c: float(c.get("created_at", 0)), reverse=True):
        if (
            candidate.get("stage") == "alignment"
            and "items" in candidate
            and candidate.get("embeddings_version") == manifest.get("embeddings_version")
            and float(candidate.get("created_at", 0)) <= before
        ):
            return candidate
    raise ValueError(
        f"no stage-1 (alignment) projector for embeddings {manifest.get('embeddings_version')} "
        f"in {root}; run `tastegraph train assistant` (both stages) again"
    )


def load_describe_lm(
    workdir: Path, which: Which = "alignment", share: ItemLM | None = None
) -> tuple[ItemLM, dict[str, Any]]:
    """The LM that describes, and its projector's manifest: the plain default LM with the
    stage-1 projector (`which="alignment"`), or the assistant as served (`"current"`: the
    current projector, with the LoRA adapters trained with it). `share`: an ItemLM already
    loaded (the chat assistant's) whose model and tokenizer the describer reuses, where it
    carries no LoRA, instead of loading a second copy."""
    _, current = load_projector(workdir)
    if which == "current":
        with quiet_transformers_progress():
            return load_item_lm(workdir), current
    manifest = alignment_manifest(workdir, current)
    folder = Path(manifest["path"])
    projector = ItemProjector(ProjectorConfig(**manifest["config"]))
    projector.load_state_dict(load_file(str(folder / "model.safetensors")))
    if share is not None and share.lora is None:
        lm = ItemLM(share.model, share.tokenizer, projector)
    else:
        with quiet_transformers_progress():
            lm = ItemLM.load(cached_lm(workdir, manifest.get("lm", DEFAULT_LM)), projector)
    lm.model.eval()
    lm.eval()
    return lm, manifest


def open_describer(
    workdir: Path,
    looks: Iterable[str],
    size: int = 1024,
    which: Which = "alignment",
    share: ItemLM | None = None,
) -> Describer:
    """A Describer over the workdir's describing LM (`load_describe_lm`) and the embeddings
    its projector reads, whose descriptions start with the look stage 1's look head reads,
    or, for a projector trained without one, one of the catalog's `looks` (`look_phrase` of
    each item's colour and kind)."""
    embeddings = projector_embeddings(workdir)
    lm, manifest = load_describe_lm(workdir, which, share)
    head = stage1_look_head(workdir, manifest)
    held = embeddings.colour_signature
    if head is not None and head.signature and head.signature != held:
        raise ValueError(
            f"the look head reads colour signatures {head.signature}, but embeddings "
            f"{embeddings.version} hold {held or 'none'}; run `tastegraph embed` and "
            "`tastegraph train assistant` again"
        )
    return Describer(lm, embeddings, size, looks=looks, head=head)


def stage1_look_head(workdir: Path, manifest: Mapping[str, Any]) -> LookHead | None:
    """The look head fitted with the stage-1 projector behind a projector's manifest; None
    for a projector trained before there was one."""
    return LookHead.load(Path(alignment_manifest(workdir, manifest)["path"]))
