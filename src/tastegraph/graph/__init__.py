"""The taste graph: weighted, decayed item-collection/user edges, walks and interests."""

from tastegraph.graph.graph import GraphConfig, TasteGraph, graph_root
from tastegraph.graph.interests import InterestConfig, InterestMap
from tastegraph.graph.walk import RandomWalker, WalkCache, WalkConfig

__all__ = [
    "GraphConfig",
    "InterestConfig",
    "InterestMap",
    "RandomWalker",
    "TasteGraph",
    "WalkCache",
    "WalkConfig",
    "graph_root",
]
