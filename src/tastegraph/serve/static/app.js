// tastegraph web page: feed, search, item detail, saves and the shopping assistant.
// Plain DOM code; all data goes into the page through textContent, never innerHTML.
"use strict";

const FEED_SIZE = 24;
const RELATED_SIZE = 12;
const NEW_SHOPPER = "__new__";
const ID_PATTERN = /^[A-Za-z0-9_][A-Za-z0-9_.:@-]{0,127}$/;
const PLACEHOLDER = "data:image/svg+xml," + encodeURIComponent(
  '<svg xmlns="http://www.w3.org/2000/svg" width="192" height="288"><rect width="100%" height="100%" fill="#e9e6e1"/></svg>');
const PREFERRED_ATTRIBUTES = ["product_type", "colour_group", "graphical_appearance",
  "perceived_colour_value", "garment_group", "section", "index_group"];
const ATTRIBUTE_LIMIT = 6;

const state = {
  token: null,
  view: "feed", // "feed" or "search"
  viewRequest: 0, // guards against a slow, older response overwriting a newer one
  detailId: null,
  lastFocus: null,
  saved: new Set(), // "user|item" saved in this page session
  chatState: null, // the conversation state from the last `done` event; null on a new chat
  chatBusy: false,
  statusTimer: null,
  reloadTimer: null,
};

const $ = (id) => document.getElementById(id);

function el(tag, className, text) {
  const node = document.createElement(tag);
  if (className) node.className = className;
  if (text !== undefined && text !== null) node.textContent = text;
  return node;
}

// ---- status, storage, API -------------------------------------------------

function showStatus(message, isError = false) {
  const box = $("status");
  box.textContent = message;
  box.classList.toggle("error", isError);
  box.hidden = false;
  clearTimeout(state.statusTimer);
  state.statusTimer = setTimeout(() => { box.hidden = true; }, isError ? 8000 : 4000);
}

function showError(error, prefix = "") {
  showStatus(prefix + (error && error.message ? error.message : String(error)), true);
}

function readStored(storage, key) {
  try { return storage.getItem(key); } catch { return null; }
}

function writeStored(storage, key, value) {
  try { storage.setItem(key, value); } catch { /* storage off: keep it for this page only */ }
}

/** The write token: from `#token=...` on first load, then from sessionStorage. */
function readToken() {
  const fromHash = new URLSearchParams(location.hash.slice(1)).get("token");
  if (fromHash) {
    writeStored(sessionStorage, "tastegraph.token", fromHash);
    history.replaceState(null, "", location.pathname + location.search);
    return fromHash;
  }
  return readStored(sessionStorage, "tastegraph.token");
}

/** A stable anonymous id for the "New shopper" option, kept in localStorage. */
function anonymousId() {
  let id = readStored(localStorage, "tastegraph.anon");
  if (!id || !ID_PATTERN.test(id)) {
    const bytes = crypto.getRandomValues(new Uint8Array(8));
    id = "anon-" + Array.from(bytes, (b) => b.toString(16).padStart(2, "0")).join("");
    writeStored(localStorage, "tastegraph.anon", id);
  }
  return id;
}

function currentUser() {
  const value = $("user").value;
  return value === NEW_SHOPPER ? anonymousId() : value;
}

async function errorMessage(response) {
  try {
    const body = await response.json();
    if (body && body.error) return body.error;
  } catch { /* not JSON */ }
  return `the server answered ${response.status}`;
}

async function safeFetch(path, options) {
  try {
    return await fetch(path, options);
  } catch {
    throw new Error("network error: the server can't be reached");
  }
}

/** Fetch JSON; a network failure or a `{"error": ...}` answer becomes an Error. */
async function api(path, options = {}) {
  const response = await safeFetch(path, options);
  if (!response.ok) throw new Error(await errorMessage(response));
  try {
    return await response.json();
  } catch {
    throw new Error("the server sent something that is not JSON");
  }
}

// ---- cards ------------------------------------------------------------------

/** The price as shoppers read it; the raw number only when the server sent no text. */
function priceText(card) {
  if (card.price_text) return card.price_text;
  return typeof card.price === "number" ? card.price.toFixed(2) : "";
}

function photo(url, alt, lazy) {
  const img = document.createElement("img");
  if (lazy) img.loading = "lazy";
  img.alt = alt;
  img.src = url || PLACEHOLDER;
  img.addEventListener("error", () => { img.src = PLACEHOLDER; }, { once: true });
  return img;
}

const savedKey = (itemId) => `${currentUser()}|${itemId}`;

function markSaved(button) {
  button.textContent = "Saved";
  button.classList.add("saved");
}

function saveButton(itemId) {
  const button = el("button", "save", "Save");
  button.type = "button";
  button.dataset.id = itemId;
  if (state.saved.has(savedKey(itemId))) markSaved(button);
  return button;
}

/** The item's own colour and type as a badge; the taste cluster only as its tooltip. */
function labelBadge(card) {
  const badge = el("span", "label", card.label);
  if (card.interest) badge.title = `Your interest: ${card.interest}`;
  return badge;
}

/** One card; `compact` ones (in the chat) have no reason, label or save button. */
function renderCard(card, compact = false) {
  const article = el("article", compact ? "card compact" : "card");
  article.dataset.id = card.id;
  article.tabIndex = 0;
  article.append(photo(card.image_url, card.title || card.id, true));
  const body = el("div", "card-body");
  body.append(el("h3", card.title ? "title" : "title untitled", card.title || card.id));
  const price = priceText(card);
  if (price) body.append(el("p", "price", price));
  if (!compact) {
    if (card.reason) body.append(el("p", "reason", card.reason));
    if (card.label) body.append(labelBadge(card));
    body.append(saveButton(card.id));
  }
  article.append(body);
  return article;
}

/** A chat card with its number, so shoppers can say "the second one". */
function renderChatCard(card, position) {
  const article = renderCard(card, true);
  const number = el("span", "chat-number", `[${position + 1}]`);
  number.setAttribute("aria-label", `item ${position + 1}`);
  article.prepend(number);
  return article;
}

function renderCards(container, cards, emptyText) {
  container.replaceChildren(...cards.map((card) => renderCard(card)));
  if (!cards.length) container.append(el("p", "empty", emptyText));
}

// ---- feed and search ----------------------------------------------------------

function setHeading(text, showBack) {
  $("feed-title").textContent = text;
  $("back-to-feed").hidden = !showBack;
}

/** Load cards into the feed grid, dropping the answer if a newer load started meanwhile. */
async function loadView(path, emptyText) {
  const request = ++state.viewRequest;
  const feed = $("feed-grid");
  feed.setAttribute("aria-busy", "true");
  try {
    const data = await api(path);
    if (request === state.viewRequest) renderCards(feed, data.items, emptyText);
  } catch (error) {
    if (request !== state.viewRequest) return;
    showError(error, "Couldn't load: ");
    if (!feed.querySelector(".card")) renderCards(feed, [], "Nothing to show right now.");
  } finally {
    if (request === state.viewRequest) feed.removeAttribute("aria-busy");
  }
}

function loadFeed() {
  state.view = "feed";
  setHeading("For you", false);
  const params = new URLSearchParams({ n: FEED_SIZE, explore: $("explore").value, new_user: "true" });
  return loadView(`/v1/users/${encodeURIComponent(currentUser())}/feed?${params}`,
    "Nothing here yet — try another shopper or the search.");
}

function runSearch(query) {
  if (!query) return loadFeed();
  state.view = "search";
  setHeading(`Results for “${query}”`, true);
  const params = new URLSearchParams({ q: query, n: FEED_SIZE });
  return loadView(`/v1/search?${params}`, "No matches.");
}

function scheduleFeedReload() {
  $("explore-value").textContent = Number($("explore").value).toFixed(1);
  clearTimeout(state.reloadTimer);
  state.reloadTimer = setTimeout(loadFeed, 250);
}

async function loadUsers() {
  const select = $("user");
  try {
    const data = await api("/v1/users?n=50");
    for (const user of data.users) {
      const option = el("option", null, `${user.id.slice(0, 10)} · ${user.events} events`);
      option.value = user.id;
      select.append(option);
    }
    if (data.users.length) select.value = data.users[0].id;
  } catch (error) {
    showError(error, "Couldn't load shoppers: ");
  }
}

// ---- saving ---------------------------------------------------------------------

async function saveItem(itemId, button) {
  if (!state.token) {
    showStatus("Saving needs the API token: open the page with the link the server printed (…/#token=…).", true);
    return;
  }
  if (state.saved.has(savedKey(itemId))) {
    showStatus("Already saved");
    return;
  }
  const user = currentUser();
  const event = { event_id: `save-${user.slice(0, 16)}-${itemId}-${Date.now()}`,
    user_id: user, item_id: itemId, action: "save" };
  button.disabled = true;
  try {
    await api("/v1/events", {
      method: "POST",
      headers: { "Content-Type": "application/json", Authorization: `Bearer ${state.token}` },
      body: JSON.stringify({ events: [event] }),
    });
    state.saved.add(`${user}|${itemId}`);
    document.querySelectorAll("button.save").forEach((b) => { if (b.dataset.id === itemId) markSaved(b); });
    if (state.view === "feed") await loadFeed();
    showStatus("Saved — your feed is updated");
  } catch (error) {
    showError(error, "Couldn't save: ");
  } finally {
    button.disabled = false;
  }
}

// ---- item detail -------------------------------------------------------------------

/** A few attributes worth showing: the preferred ones when present, else the first few. */
function pickAttributes(attributes) {
  const keys = Object.keys(attributes || {});
  const preferred = PREFERRED_ATTRIBUTES.filter((key) => keys.includes(key));
  return (preferred.length ? preferred : keys)
    .filter((key) => ["string", "number", "boolean"].includes(typeof attributes[key]) && attributes[key] !== "")
    .slice(0, ATTRIBUTE_LIMIT)
    .map((key) => [key.replace(/_/g, " "), String(attributes[key])]);
}

function renderDetail(item) {
  const image = $("detail-image");
  image.src = item.image_url || PLACEHOLDER;
  image.alt = item.title || item.id;
  $("detail-title").textContent = item.title || item.id;
  $("detail-price").textContent = priceText(item);
  $("detail-label").textContent = item.label || "";
  $("detail-label").hidden = !item.label;
  $("detail-description").textContent = item.description
    || (item.generated_description ? `Generated from the photo's embedding and colours: “${item.generated_description}”` : "No description.");
  $("detail-description").classList.toggle("generated", !item.description && !!item.generated_description);
  $("detail-attributes").replaceChildren(...pickAttributes(item.attributes)
    .flatMap(([key, value]) => [el("dt", null, key), el("dd", null, value)]));
  const save = saveButton(item.id);
  save.id = "detail-save";
  $("detail-actions").replaceChildren(save);
}

async function openDetail(itemId) {
  const panel = $("detail");
  if (panel.hidden) state.lastFocus = document.activeElement;
  state.detailId = itemId;
  renderDetail({ id: itemId, title: "Loading…", price: null, label: null, image_url: null,
    description: "", attributes: {} });
  $("related").replaceChildren();
  panel.hidden = false;
  panel.scrollTop = 0;
  document.body.classList.add("detail-open");
  $("detail-close").focus();
  const [item, related] = await Promise.allSettled([
    api(`/v1/items/${encodeURIComponent(itemId)}`),
    api(`/v1/items/${encodeURIComponent(itemId)}/related?n=${RELATED_SIZE}`),
  ]);
  if (state.detailId !== itemId) return; // another item was opened meanwhile
  if (item.status === "rejected") {
    closeDetail();
    showError(item.reason, "Couldn't open the item: ");
    return;
  }
  renderDetail(item.value);
  if (related.status === "fulfilled") renderCards($("related"), related.value.items, "No similar items yet.");
  else renderCards($("related"), [], "Similar items aren't available for this one yet.");
}

function closeDetail() {
  $("detail").hidden = true;
  state.detailId = null;
  document.body.classList.remove("detail-open");
  if (state.lastFocus && document.contains(state.lastFocus)) state.lastFocus.focus();
}

// ---- assistant chat -----------------------------------------------------------------------

function resetChat() {
  state.chatState = null;
  $("chat-log").replaceChildren(el("p", "chat-hint", "Ask for something, e.g. “a warm jumper for winter” or “something like this but in red”."));
}

function addBubble(role, text) {
  const bubble = el("div", `bubble ${role}`);
  const body = el("p", "bubble-text", text);
  bubble.append(body);
  $("chat-log").append(bubble);
  return { bubble, body };
}

/** Split a server-sent-events stream into (event, data) pairs as the bytes arrive. */
async function readEvents(response, onEvent) {
  const reader = response.body.getReader();
  const decoder = new TextDecoder();
  let buffer = "";
  const dispatch = (block) => {
    let name = "message";
    const data = [];
    for (const line of block.split("\n")) {
      if (line.startsWith("event:")) name = line.slice(6).trim();
      else if (line.startsWith("data:")) data.push(line.slice(5).replace(/^ /, ""));
    }
    if (data.length) onEvent(name, JSON.parse(data.join("\n")));
  };
  for (;;) {
    const { value, done } = await reader.read();
    buffer += decoder.decode(value || new Uint8Array(), { stream: !done });
    buffer = buffer.replace(/\r\n?/g, "\n");
    let end;
    while ((end = buffer.indexOf("\n\n")) !== -1) {
      dispatch(buffer.slice(0, end));
      buffer = buffer.slice(end + 2);
    }
    if (done) break;
  }
  if (buffer.trim()) dispatch(buffer);
}

function setChatBusy(busy) {
  state.chatBusy = busy;
  $("chat-send").disabled = busy;
  $("chat-form").classList.toggle("busy", busy);
}

/** The reply's cards under its text, numbered [1], [2], ...; none is a normal answer. */
function showChatItems(bubble, cards) {
  if (!cards.length) return;
  const items = el("div", "chat-items");
  items.append(...cards.map(renderChatCard));
  bubble.append(items);
}

async function sendChat(message) {
  setChatBusy(true);
  const userId = currentUser();
  const question = addBubble("user", message).bubble;
  const { bubble, body } = addBubble("assistant", "");
  bubble.classList.add("streaming");
  const showTurn = () => { $("chat-log").scrollTop = question.offsetTop - 8; }; // question on top, reply below
  showTurn();
  let reply = "";
  try {
    const response = await safeFetch("/v1/assistant/chat", {
      method: "POST",
      headers: { "Content-Type": "application/json" },
      body: JSON.stringify({ user_id: userId, message, state: state.chatState }),
    });
    if (!response.ok) throw new Error(await errorMessage(response));
    let nextState = null;
    await readEvents(response, (name, data) => {
      if (name === "items") {
        showChatItems(bubble, data.items || []);
        showTurn();
      } else if (name === "token") {
        reply += data.text;
        body.textContent = reply;
      } else if (name === "done") {
        reply = data.text;
        body.textContent = reply;
        nextState = data.state || null;
      } else if (name === "error") {
        throw new Error(data.error);
      }
    });
    if (!reply) throw new Error("the assistant sent no answer");
    if (userId === currentUser()) state.chatState = nextState; // a shopper switch started a new chat
  } catch (error) {
    bubble.classList.add("error");
    body.textContent = `Sorry — ${error.message}`;
    showError(error, "Assistant: ");
  } finally {
    bubble.classList.remove("streaming");
    setChatBusy(false);
  }
}

// ---- wiring -------------------------------------------------------------------------------

function wireEvents() {
  $("user").addEventListener("change", () => { resetChat(); loadFeed(); });
  $("explore").addEventListener("input", scheduleFeedReload);
  $("explore").addEventListener("change", scheduleFeedReload);
  $("search-form").addEventListener("submit", (event) => {
    event.preventDefault();
    runSearch($("search").value.trim());
  });
  $("back-to-feed").addEventListener("click", () => { $("search").value = ""; loadFeed(); });
  $("chat-form").addEventListener("submit", (event) => {
    event.preventDefault();
    const message = $("chat-input").value.trim();
    if (!message || state.chatBusy) return;
    $("chat-input").value = "";
    sendChat(message);
  });
  // One click handler for every card and save button: feed, related, chat and detail.
  document.addEventListener("click", (event) => {
    const save = event.target.closest("button.save");
    if (save) { saveItem(save.dataset.id, save); return; }
    const card = event.target.closest(".card");
    if (card) openDetail(card.dataset.id);
  });
  document.addEventListener("keydown", (event) => {
    if (event.key === "Escape" && !$("detail").hidden) closeDetail();
    else if (event.key === "Enter" && event.target.classList && event.target.classList.contains("card")) {
      openDetail(event.target.dataset.id);
    }
  });
  $("detail-close").addEventListener("click", closeDetail);
  $("detail").addEventListener("click", (event) => { if (event.target === $("detail")) closeDetail(); });
  window.addEventListener("unhandledrejection", (event) => showError(event.reason, "Something went wrong: "));
}

// ---- what still trains beside the server ------------------------------------

const TRAINING_POLL_MS = 15000;
const STEP_NAMES = {
  "train feed": "feed weights",
  "train reranker": "related-items re-ranker",
  "train assistant": "assistant",
};

/** A line under the header while the feed weights, the re-ranker or the assistant still
 * train; hidden once everything is served. Polls /healthz, which the server answers from
 * memory. */
async function showTraining() {
  let health;
  try {
    health = await api("/healthz");
  } catch {
    setTimeout(showTraining, TRAINING_POLL_MS);
    return;
  }
  const pending = Object.entries(health.training || {})
    .filter(([, progress]) => progress.state === "waiting" || progress.state === "training")
    .map(([name, progress]) => `${STEP_NAMES[name] || name} (${progress.state === "training"
      ? `training, ${Math.round(progress.seconds / 60)} min so far` : "waiting"})`);
  const box = $("training");
  box.textContent = pending.length ? `Still learning in the background: ${pending.join(", ")}. `
    + "The page uses each one as soon as it is ready." : "";
  box.hidden = pending.length === 0;
  if (pending.length) setTimeout(showTraining, TRAINING_POLL_MS);
}

async function init() {
  state.token = readToken();
  wireEvents();
  resetChat();
  showTraining();
  await loadUsers();
  await loadFeed();
}

init();
