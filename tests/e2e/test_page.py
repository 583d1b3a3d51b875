"""The web page in a real browser (Debian's Chromium driven by playwright) against the
real server: a grid of product photos, item detail with more like this, a save that
changes the feed, search, and the assistant answering with item cards over two turns."""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

from browser import CHROMIUM, CHROMIUM_ARGS, TOKEN
from playwright.sync_api import Page, expect, sync_playwright


def feed_ids(page: Page) -> list[str]:
    ids: list[str] = page.locator("#feed .card").evaluate_all(
        "cards => cards.map(card => card.dataset.id)"
    )
    return ids


def photos_loaded(page: Page, selector: str) -> int:
    loaded: int = page.locator(selector).evaluate_all(
        "images => images.filter(img => img.complete && img.naturalWidth > 0).length"
    )
    return loaded


def chat_turn(page: Page, message: str) -> tuple[list[str], str, dict[str, Any]]:
    """Send one message; the reply's card ids, its text and the request body sent."""
    replies = page.locator("#chat-log .bubble.assistant")
    turn = replies.count()
    with page.expect_request("**/v1/assistant/chat") as request:
        page.fill("#chat-input", message)
        page.locator("#chat-input").press("Enter")
    reply = replies.nth(turn)
    expect(reply).to_be_visible()
    expect(reply).not_to_have_class(re.compile(r"\bstreaming\b"), timeout=120_000)
    expect(reply).not_to_have_class(re.compile(r"\berror\b"))
    ids: list[str] = reply.locator(".chat-items .card").evaluate_all(
        "cards => cards.map(card => card.dataset.id)"
    )
    body: dict[str, Any] = request.value.post_data_json
    return ids, reply.locator(".bubble-text").inner_text(), body


def test_discovery_page(live_server: tuple[str, Path]) -> None:
    url, workdir = live_server
    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
        page = browser.new_page(viewport={"width": 1280, "height": 900})
        page.goto(f"{url}/#token={TOKEN}")
        assert "token" not in page.url  # the token leaves the address bar

        # A grid of real product photos, each card with its reason.
        cards = page.locator("#feed .card")
        expect(cards.first).to_be_visible()
        assert cards.count() >= 6
        page.locator("#feed .card img").first.scroll_into_view_if_needed()
        page.wait_for_function(
            "document.querySelectorAll('#feed .card img').length > 0 && "
            "[...document.querySelectorAll('#feed .card img')].slice(0, 4)"
            ".every(img => img.complete && img.naturalWidth > 0)"
        )
        assert photos_loaded(page, "#feed .card img") >= 4
        expect(page.locator("#feed .card .reason").first).not_to_be_empty()
        # The badge is the item's own colour and type, not the taste cluster's name.
        expect(page.locator("#feed .card .label").first).not_to_be_empty()
        assert page.locator("#feed .card .interest").count() == 0

        # Item detail with more like this, labelled as its card is.
        labelled = page.locator("#feed .card", has=page.locator(".label")).first
        label = labelled.locator(".label").inner_text()
        labelled.locator("img").click()
        expect(page.locator("#detail")).to_be_visible()
        expect(page.locator("#related .card").first).to_be_visible()
        expect(page.locator("#detail-label")).to_have_text(label)
        page.locator("#detail-close").click()
        expect(page.locator("#detail")).to_be_hidden()

        # A new shopper saves an item: the feed changes.
        page.select_option("#user", "__new__")
        page.wait_for_function("document.querySelectorAll('#feed .card').length > 0")
        page.wait_for_load_state("networkidle")
        before = feed_ids(page)
        page.locator("#feed .card .save").nth(2).click()
        page.wait_for_function(
            "before => { const ids = [...document.querySelectorAll('#feed .card')]"
            ".map(c => c.dataset.id); return ids.length > 0 && ids.join() !== before.join(); }",
            arg=before,
        )
        expect(page.locator("#status")).to_contain_text("Saved")
        assert any("saved" in r.lower() for r in page.locator("#feed .reason").all_inner_texts())

        # Search.
        page.fill("#search", "black dress")
        page.locator("#search").press("Enter")
        expect(page.locator("#feed")).to_contain_text("black dress")
        expect(page.locator("#feed .card").first).to_be_visible()

        # The assistant answers with numbered item cards, one reply line per card...
        first, text, sent = chat_turn(page, "a dress for a summer party")
        assert first, text
        assert sent.get("state") is None and "history" not in sent
        expect(page.locator("#chat-log .chat-items .card").first).to_contain_text("[1]")
        assert "\n" in text  # the reply's lines keep their line breaks
        # ...and follows the conversation: the second turn sends the state back, and a new
        # need shows other cards.
        second, text, sent = chat_turn(page, "now a black top")
        assert isinstance(sent.get("state"), dict) and sent["state"]["shown"] == first
        assert second and set(second) != set(first), text
        page.wait_for_load_state("networkidle")

        page.evaluate("window.scrollTo(0, 0)")
        shots = workdir / "screenshots"
        shots.mkdir(exist_ok=True)
        page.screenshot(path=str(shots / "page.png"), full_page=False)
        phone = browser.new_page(viewport={"width": 375, "height": 800})
        phone.goto(url)
        expect(phone.locator("#feed .card").first).to_be_visible()
        width = phone.evaluate("document.documentElement.scrollWidth")
        assert width <= 375  # nothing wider than a phone screen
        phone.screenshot(path=str(shots / "phone.png"))
        browser.close()
    assert (shots / "page.png").stat().st_size > 10_000
