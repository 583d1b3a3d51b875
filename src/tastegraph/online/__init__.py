"""The online system: what a server holds and does between offline runs (live profiles,
new items embedded in the background, newly published artifacts swapped in, the
assistant's turns). `serve/` is its HTTP face; the CLI and the benchmarks use it too."""

from tastegraph.online.assistant import LiveAssistant
from tastegraph.online.system import EventsResult, OnlineSystem

__all__ = ["EventsResult", "LiveAssistant", "OnlineSystem"]
