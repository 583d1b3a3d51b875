"""Text search: a query goes through the text tower and the fusion model's text head into
the item space, where the index finds the nearest items."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import torch

from tastegraph import registry
from tastegraph.config import Settings
from tastegraph.embeddings.fusion import load_fusion
from tastegraph.encoders import TextTower, load_text_tower

MAX_QUERY_CHARS = 500


class QueryEncoder:
    def __init__(self, workdir: Path, settings: Settings, tower: TextTower | None = None) -> None:
        self.model, manifest = load_fusion(registry.root(workdir, "fusion"))
        self.tower = tower or load_text_tower(settings.text_model)
        trained_on = manifest.get("towers", {}).get("text")
        loaded = f"{self.tower.name}@{self.tower.version}"
        if trained_on != loaded:
            raise ValueError(
                f"the fusion model was trained on text tower {trained_on}, but {loaded} is "
                "loaded; set text_model to the tower it was trained with or retrain"
            )

    def encode(self, query: str) -> np.ndarray:
        """(d,) float32, L2-normalised: the query in the item embedding space."""
        text = " ".join(query.split())
        if not text:
            raise ValueError("the search query is empty")
        if len(text) > MAX_QUERY_CHARS:
            raise ValueError(f"the search query is longer than {MAX_QUERY_CHARS} characters")
        features = torch.from_numpy(self.tower.encode([text]))  # (1, text_dim)
        with torch.inference_mode():
            vector: np.ndarray = self.model.embed_texts(features)[0].numpy()
        return vector.astype(np.float32)
