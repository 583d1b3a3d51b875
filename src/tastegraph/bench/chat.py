"""Chat turns as served: time to the first words and to the whole reply, per kind of turn.

Plays scripted conversations (evaluate/conversations.py) through the assistant the server
holds. For each turn it times `answer` (understanding, candidates, the LM's choice: the
cards and the first line are ready to stream) and the whole reply (plus the LM writing the
pick's reason and its check). The baseline, in the same run, is the turn with a new need:
a constraint-only turn ("cheaper", "under 30") searches again but skips the text tower
(the need's embedding is kept). The last column is first words p50 against that turn's.
"""

from __future__ import annotations

import time
from collections import defaultdict
from dataclasses import dataclass

import numpy as np

from tastegraph.assistant.chat import Assistant
from tastegraph.assistant.conversation import ConversationState
from tastegraph.evaluate.conversations import INTENTS, Script

TARGET_FIRST_WORDS = 1.0  # seconds, p50
TARGET_WHOLE_REPLY = 4.0


@dataclass(frozen=True)
class TurnTimes:
    intent: str
    first_words: list[float]  # seconds: the cards and the first line
    whole: list[float]  # seconds: the reply with the LM's reason


def time_turns(assistant: Assistant, scripts: list[Script]) -> list[TurnTimes]:
    first: dict[str, list[float]] = defaultdict(list)
    whole: dict[str, list[float]] = defaultdict(list)
    for script in scripts:
        state: ConversationState | None = None
        for intent, message in zip(INTENTS, script.messages(), strict=True):
            start = time.perf_counter()
            answer = assistant.answer(script.user_id, message, state)
            first[intent].append(time.perf_counter() - start)
            if answer.picks:
                written = "".join(assistant.lm_reason(script.user_id, message, answer))
                assistant.with_lm_reason(answer, written)
            whole[intent].append(time.perf_counter() - start)
            state = answer.state
    return [TurnTimes(i, first[i], whole[i]) for i in INTENTS if first[i]]


def table(times: list[TurnTimes]) -> str:
    baseline = next(t for t in times if t.intent == "type")
    base_first = float(np.median(baseline.first_words))
    header = "| turn | turns | first words p50 | p95 | whole reply p50 | p95 | vs a new need |"
    lines = [header, "| --- | --- | --- | --- | --- | --- | --- |"]
    for t in times:
        first, whole = np.array(t.first_words), np.array(t.whole)
        lines.append(
            f"| {t.intent} | {len(first)} | {np.median(first):.2f} s | "
            f"{np.percentile(first, 95):.2f} s | {np.median(whole):.2f} s | "
            f"{np.percentile(whole, 95):.2f} s | {np.median(first) / base_first:.2f}x |"
        )
    every_first = np.concatenate([t.first_words for t in times])
    every_whole = np.concatenate([t.whole for t in times])
    verdict = (
        f"all turns: first words p50 {np.median(every_first):.2f} s (target "
        f"{TARGET_FIRST_WORDS:.0f} s: {_met(np.median(every_first), TARGET_FIRST_WORDS)}), whole "
        f"reply p50 {np.median(every_whole):.2f} s (target {TARGET_WHOLE_REPLY:.0f} s: "
        f"{_met(np.median(every_whole), TARGET_WHOLE_REPLY)})"
    )
    return "\n".join([*lines, "", verdict])


def _met(value: float, target: float) -> str:
    return "met" if value <= target else "NOT met"
