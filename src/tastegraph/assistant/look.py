"""The look head: an item's colour and kind read off its embedding, for the describer.

Stage 1 teaches the LM to open a description with the item's look ("Black Dress"), but the
LM reads the look back from its item tokens poorly: on H&M's held-out photos it named the
right colour 0.40 of the time, while a linear classifier on the very embedding the LM
reads named it 0.585 (`tastegraph evaluate descriptions`, probe (e)). So stage 1 also fits
that classifier, one logistic regression per attribute on the embeddings of the stage-1
items' photos alone (as a photo-only item is read), and a description is the look it reads
(`assistant/describe.py`). The kind head reads only the embedding, as the item tokens do.

The colour head also reads the photo's colour signature (`encoders/colour.py`), stored
beside the embedding by the embed job: the embedding keeps little colour (the fusion model
learns taste with colour variants as positives), and on 1,000 held-out H&M items (not the
evaluation's) a probe on the embedding alone named the colour 0.58 of the time, on the
embedding and the signature 0.78. Type does not gain from it (0.79 without, 0.78 with).

The head is saved beside the stage-1 projector as safetensors (weights, standardisation,
labels in the metadata): nothing is unpickled.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Self

import numpy as np
from safetensors.numpy import load_file, save_file

log = logging.getLogger(__name__)

LOOK_HEAD_FILE = "look_head.safetensors"
# Inverse regularisation of each logistic regression, chosen once with a throwaway script
# on a fifth of H&M's stage-1 items held out from the fit (never the evaluation's items):
# C 0.01 to 1 read colour 0.524 to 0.531 and type 0.737 to 0.771; 0.1 is in the middle.
REGULARISATION_C = 0.1
MIN_EXAMPLES = 20  # fewer labelled items than this: no head (the LM chooses the look)


@dataclass
class AttributeHead:
    """A multinomial logistic regression over standardised embeddings (d,)."""

    labels: list[str]  # (L,)
    mean: np.ndarray  # (d,)
    scale: np.ndarray  # (d,)
    weights: np.ndarray  # (L, d)
    bias: np.ndarray  # (L,)

    @classmethod
    def fit(cls, vectors: np.ndarray, labels: Sequence[str]) -> Self:
        from sklearn.linear_model import LogisticRegression

        mean = vectors.mean(axis=0)
        scale = vectors.std(axis=0)
        scale[scale == 0] = 1.0
        classes = sorted(set(labels))
        d = vectors.shape[1]
        if len(classes) == 1:
            return cls(classes, mean, scale, np.zeros((1, d), np.float32), np.zeros(1, np.float32))
        model = LogisticRegression(C=REGULARISATION_C, max_iter=500)
        model.fit((vectors - mean) / scale, list(labels))
        weights, bias = model.coef_, model.intercept_
        if len(classes) == 2:  # one row of weights, for the second class
            weights, bias = np.vstack([np.zeros_like(weights), weights]), np.r_[0.0, bias]
        return cls(
            [str(c) for c in model.classes_],
            mean.astype(np.float32),
            scale.astype(np.float32),
            weights.astype(np.float32),
            bias.astype(np.float32),
        )

    def predict(self, vectors: np.ndarray) -> list[str]:
        """The most likely label of each row of (n, d) vectors."""
        logits = ((vectors - self.mean) / self.scale) @ self.weights.T + self.bias  # (n, L)
        return [self.labels[i] for i in np.argmax(logits, axis=1)]


@dataclass
class LookHead:
    colour: AttributeHead  # reads the embedding, then the colour signature where it has one
    kind: AttributeHead  # reads the embedding
    # The colour signature ("name@version", the embedding store's manifest) the colour head
    # reads after the embedding; "" where it reads the embedding alone.
    signature: str = ""

    @property
    def reads_signature(self) -> bool:
        return bool(self.signature)

    @classmethod
    def fit(
        cls,
        vectors: np.ndarray,
        colours: Sequence[str],
        kinds: Sequence[str],
        *,
        signatures: np.ndarray | None = None,
        signature: str = "",
    ) -> Self | None:
        """Fitted on the rows of (n, d) embeddings, and of their (n, s) colour signatures
        of the version named `signature` where given, that have both a colour and a kind;
        None where fewer than MIN_EXAMPLES rows do."""
        if (signatures is None) != (not signature):
            raise ValueError("colour signatures and their version come together")
        if signatures is not None and len(signatures) != len(vectors):
            raise ValueError(f"{len(signatures)} colour signatures for {len(vectors)} vectors")
        rows = [i for i, (c, k) in enumerate(zip(colours, kinds, strict=True)) if c and k]
        if len(rows) < MIN_EXAMPLES:
            log.info("no look head: %d items have a colour and a kind", len(rows))
            return None
        x = np.asarray(vectors, dtype=np.float32)[rows]
        colour_x = x if signatures is None else np.hstack([x, signatures[rows]])
        return cls(
            AttributeHead.fit(colour_x, [colours[i] for i in rows]),
            AttributeHead.fit(x, [kinds[i] for i in rows]),
            signature,
        )

    def looks(
        self, vectors: np.ndarray, signatures: np.ndarray | None = None
    ) -> list[tuple[str, str]]:
        """(colour, kind) of each row of (n, d) embeddings with their (n, s) colour
        signatures, or of one embedding (d,) and signature (s,)."""
        x = np.atleast_2d(np.asarray(vectors, dtype=np.float32))
        d = self.kind.mean.shape[0]
        if x.ndim != 2 or x.shape[1] != d:
            raise ValueError(f"the look head reads vectors of {d} numbers, not {x.shape[1:]}")
        colour_x = x
        if self.reads_signature:
            if signatures is None:
                raise ValueError("the look head reads colour signatures; none were given")
            colour_x = np.hstack([x, np.atleast_2d(np.asarray(signatures, dtype=np.float32))])
            if colour_x.shape != (len(x), len(self.colour.mean)):
                raise ValueError(
                    f"the look head reads colour signatures of {len(self.colour.mean) - d} "
                    f"numbers, not {colour_x.shape[1] - d}"
                )
        return list(zip(self.colour.predict(colour_x), self.kind.predict(x), strict=True))

    def save(self, folder: Path) -> None:
        tensors, labels = {}, {}
        for name, head in (("colour", self.colour), ("kind", self.kind)):
            for part in ("mean", "scale", "weights", "bias"):
                tensors[f"{name}.{part}"] = np.ascontiguousarray(getattr(head, part))
            labels[name] = head.labels
        metadata = {"labels": json.dumps(labels), "signature": self.signature}
        save_file(tensors, str(folder / LOOK_HEAD_FILE), metadata=metadata)

    @classmethod
    def load(cls, folder: Path) -> Self | None:
        """The head saved in `folder`; None where there is none (a projector trained before
        the head existed, or a catalog without colours and kinds)."""
        path = folder / LOOK_HEAD_FILE
        if not path.is_file():
            return None
        from safetensors import safe_open

        with safe_open(str(path), framework="numpy") as handle:
            metadata = handle.metadata() or {}
        labels = json.loads(metadata.get("labels", "{}"))
        signature = metadata.get("signature", "")  # "" in heads saved before signatures
        tensors = load_file(str(path))

        def head(name: str) -> AttributeHead:
            try:
                mean, scale, weights, bias = (
                    tensors[f"{name}.{p}"] for p in ("mean", "scale", "weights", "bias")
                )
                names = [str(label) for label in labels[name]]
            except KeyError as missing:
                raise ValueError(f"{path} is not a look head: {missing} is missing") from None
            d = len(mean)
            if (
                scale.shape != (d,)
                or weights.shape != (len(names), d)
                or bias.shape != (len(names),)
            ):
                raise ValueError(f"{path} is not a look head: its {name} shapes disagree")
            return AttributeHead(names, mean, scale, weights, bias)

        colour, kind = head("colour"), head("kind")
        if (len(colour.mean) > len(kind.mean)) != bool(signature):
            raise ValueError(f"{path} is not a look head: its widths disagree with its metadata")
        return cls(colour, kind, signature)
