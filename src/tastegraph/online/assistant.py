"""The shopping assistant as the server holds it: over whichever recommender is current at
each turn, one turn at a time, each written out in parts as it is produced."""

from __future__ import annotations

import threading
from collections.abc import Iterator
from dataclasses import dataclass
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from tastegraph.assistant.chat import Answer, Assistant
    from tastegraph.assistant.conversation import ConversationState
    from tastegraph.assistant.describe import Describer
    from tastegraph.online.system import OnlineSystem


class LiveAssistant:
    """The assistant over whichever recommender is current at each turn."""

    def __init__(self, service: OnlineSystem, assistant: Assistant) -> None:
        self.service = service
        self.assistant = assistant
        self.lock = threading.Lock()  # one conversation turn (or description) at a time
        self._describer: Describer | None = None

    @property
    def describer(self) -> Describer:
        """Descriptions from the stage-1 projector (stage 2 forgets describing), on the
        chat's LM; loaded on first use, under the lock."""
        from tastegraph.assistant.describe import look_phrase, open_describer

        if self._describer is None:
            facts = self.assistant.catalog.facts.values()
            looks = {look_phrase(f.colour, f.kind) for f in facts}
            self._describer = open_describer(self.service.workdir, looks, share=self.assistant.lm)
        return self._describer

    def __enter__(self) -> Assistant:
        self.lock.acquire()
        self.assistant.recommender = self.service.current()
        return self.assistant

    def __exit__(self, *exc: object) -> None:
        self.lock.release()

    def turn(
        self, user_id: str, message: str, state: ConversationState | None
    ) -> Iterator[ChatPart]:
        """One conversation turn as it is written: its items ([1] the pick first), the
        reply line by line, then the whole answer with the state to send back."""
        with self as assistant:
            answer = assistant.answer(user_id, message, state)
            yield ChatItems(answer.items)
            yield ChatText(answer.intro)
            if answer.picks:
                written = "".join(assistant.lm_reason(user_id, message, answer))
                answer = assistant.with_lm_reason(answer, written)
            for pick in answer.picks:
                yield ChatText("\n" + pick.line)
            yield ChatDone(answer)


@dataclass(frozen=True)
class ChatItems:
    item_ids: list[str]


@dataclass(frozen=True)
class ChatText:
    text: str


@dataclass(frozen=True)
class ChatDone:
    answer: Answer


ChatPart = ChatItems | ChatText | ChatDone
