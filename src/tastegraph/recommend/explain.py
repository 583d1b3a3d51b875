"""Why an item is shown, in words for people: every recommendation carries one reason."""

from __future__ import annotations

from tastegraph.profiles import UserProfile

ACTION_VERBS = {"purchase": "bought", "save": "saved", "click": "opened", "view": "viewed"}


def verb(profile: UserProfile, item_id: str) -> str:
    """What the user did with the item, as a past-tense verb ("liked" when unknown)."""
    return ACTION_VERBS.get(profile.engaged.get(item_id, ""), "liked")


def because(profile: UserProfile, item_id: str, title: str) -> str:
    return f"Because you {verb(profile, item_id)} {title}"


def again(profile: UserProfile, item_id: str) -> str:
    return f"You {verb(profile, item_id)} this before"


POPULAR = "Popular right now"


def explored(label: str, next_to: str | None) -> str:
    """An item from interest `label`, next to the user's interest `next_to` (None: a first
    pick from an interest of its own)."""
    if next_to is None:
        return f"Something to start with: {label}"
    return f"Something new: {label}, next to {next_to}"


def related(title: str, *, same_product: bool, bought_together: bool) -> tuple[str, str]:
    """(source, reason) of a related item of the item titled `title`."""
    if same_product:
        return "similar", f"Another version of {title}"
    if bought_together:
        return "walk", f"Often bought with {title}"
    return "similar", f"Looks like {title}"


def searched(query: str) -> str:
    return f"Matches “{query}”" if query else "Matches your search"
