"""Which published artifacts the main job trains again."""

from __future__ import annotations

from tastegraph.assistant.head import HEAD_FORMAT
from tastegraph.assistant.models import DEFAULT_LM
from tastegraph.pipeline import assistant_is_current


def test_the_assistant_is_trained_again_for_new_embeddings_an_lm_a_layout_or_an_older_head() -> (
    None
):
    served = {
        "stage": "shopping",
        "embeddings_version": "v3",
        "lm": DEFAULT_LM,
        "item_layout": "tokens_text",
        "head_format": HEAD_FORMAT,
    }
    assert assistant_is_current(served, "v3", DEFAULT_LM)
    assert not assistant_is_current(served, "v4", DEFAULT_LM)
    assert not assistant_is_current(served, "v3", "Qwen2.5-Coder-0.5B-Instruct")
    assert not assistant_is_current(served | {"item_layout": "tokens"}, "v3", DEFAULT_LM)
    older_head = {k: v for k, v in served.items() if k != "head_format"}
    assert not assistant_is_current(older_head, "v3", DEFAULT_LM)
    stage_one = {"stage": "alignment", "embeddings_version": "v3", "lm": DEFAULT_LM}
    assert assistant_is_current(stage_one, "v3", DEFAULT_LM)
