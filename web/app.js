// LinkWithMentor's local web client: sign in, conversations, real-time chat.
//
// A plain ES module with no build step. REST calls go to the HTTP API that
// served this page; real-time frames go over one WebSocket (docs/websocket.md).
// User text reaches the page as text only (textContent), never as HTML.

const TYPING_TTL_MS = 6000; // someone's "start" with no refresh this long is over
const TYPING_IDLE_MS = 3000; // we say "stop" after this long without a keystroke
const TYPING_REFRESH_MS = 4000; // and repeat "start" this often while typing
const PING_EVERY_MS = 4 * 60_000; // the server closes sockets idle for 10 minutes
const PONG_WAIT_MS = 10_000; // no pong this long after a ping: the socket is dead
const BACKOFF_MS = [500, 1000, 2000, 4000, 8000, 15000, 30000];
const REFRESH_MARGIN_S = 60; // renew the access token this long before it expires
const PAGE_SIZE = 50;

const $ = (id) => document.getElementById(id);

/** An element with attributes, listeners (`onclick`) and children (strings become text nodes). */
function el(tag, attrs = {}, ...children) {
  const node = document.createElement(tag);
  for (const [key, value] of Object.entries(attrs)) {
    if (value === undefined || value === null || value === false) continue;
    if (key.startsWith("on")) node.addEventListener(key.slice(2), value);
    else node.setAttribute(key, value === true ? "" : value);
  }
  node.append(...children);
  return node;
}

// The server stores text HTML-safe: tags removed, `<` `>` `&` escaped as entities.
// Decode those entities for display; the result only ever goes into textContent.
const ENTITIES = new Map(Object.entries({ amp: "&", lt: "<", gt: ">", quot: '"', apos: "'", nbsp: "\u00a0" }));

export function decodeEntities(text) {
  return text.replace(/&(?:#(\d{1,7})|#x([0-9a-f]{1,6})|([a-z]+));/gi, (whole, dec, hex, name) => {
    if (name) return ENTITIES.get(name) ?? whole;
    const code = dec ? Number(dec) : parseInt(hex, 16);
    const valid = code > 0 && code <= 0x10ffff && (code < 0xd800 || code > 0xdfff);
    return valid ? String.fromCodePoint(code) : whole;
  });
}

function newClientId() {
  const bytes = crypto.getRandomValues(new Uint8Array(12));
  return "w" + Array.from(bytes, (b) => b.toString(16).padStart(2, "0")).join("");
}

function timeOf(iso) {
  return new Date(iso).toLocaleTimeString([], { hour: "2-digit", minute: "2-digit" });
}

function notice(text) {
  const box = $("notice");
  box.textContent = text;
  box.hidden = !text;
  clearTimeout(notice.timer);
  if (text) notice.timer = setTimeout(() => (box.hidden = true), 6000);
}

// --- session and REST ------------------------------------------------------------------

let config = { api: "", websocket: "" };

class ApiError extends Error {
  constructor(status, body) {
    super(body?.detail || body?.title || body?.message || `HTTP ${status}`);
    this.status = status;
    this.code = body?.code ?? null;
  }
}

class SignedOutError extends Error {}

/** The token pair of the signed-in user, kept for this tab and renewed before it expires. */
const session = {
  access: null,
  refresh: null,
  userId: null,
  expiresAt: 0,
  renewing: null,

  load() {
    const saved = JSON.parse(sessionStorage.getItem("lwm.session") ?? "null");
    if (saved) this.save(saved);
    return Boolean(saved);
  },

  save({ access_token, refresh_token }) {
    const claims = JSON.parse(atob(access_token.split(".")[1].replace(/-/g, "+").replace(/_/g, "/")));
    Object.assign(this, { access: access_token, refresh: refresh_token });
    Object.assign(this, { userId: claims.sub, expiresAt: claims.exp });
    sessionStorage.setItem("lwm.session", JSON.stringify({ access_token, refresh_token }));
  },

  clear() {
    Object.assign(this, { access: null, refresh: null, userId: null, expiresAt: 0 });
    sessionStorage.removeItem("lwm.session");
  },

  /** A valid access token, renewed first when it expires within a minute (or when forced). */
  async token({ force = false } = {}) {
    if (!this.access) throw new SignedOutError();
    if (force || Date.now() / 1000 > this.expiresAt - REFRESH_MARGIN_S) {
      this.renewing ??= this.renew().finally(() => (this.renewing = null));
      await this.renewing;
    }
    return this.access;
  },

  async renew() {
    const spent = this.refresh;
    try {
      this.save(await api("/auth/refresh", { method: "POST", body: { refresh_token: spent }, auth: false }));
    } catch (error) {
      if (error instanceof ApiError && error.status < 500 && this.refresh === spent) {
        signOut("Your session has ended: sign in again.");
        throw new SignedOutError();
      }
      throw error; // offline or a server fault: keep the tokens and try again later
    }
  },
};

/** Call the HTTP API; JSON in and out, problem+json errors thrown as ApiError. */
async function api(path, { method = "GET", body, auth = true, retried = false } = {}) {
  const headers = {};
  if (body !== undefined) headers["content-type"] = "application/json";
  if (auth) headers.authorization = `Bearer ${await session.token()}`;
  const response = await fetch(config.api + path, {
    method,
    headers,
    body: body === undefined ? undefined : JSON.stringify(body),
  });
  if (response.status === 401 && auth && !retried) {
    await session.token({ force: true }); // expired early (clock skew): renew once and retry
    return api(path, { method, body, auth, retried: true });
  }
  const type = response.headers.get("content-type") ?? "";
  const data = type.includes("json") ? await response.json() : null;
  if (!response.ok) throw new ApiError(response.status, data);
  return data;
}

// --- the socket ------------------------------------------------------------------------

/** One WebSocket that reconnects with backoff; `onOpen` runs after every (re)connect. */
class Realtime {
  constructor(url, { onOpen, onFrame, onState }) {
    Object.assign(this, { url, onOpen, onFrame, onState });
    this.ws = null;
    this.opening = false;
    this.stopped = true;
    this.attempt = 0;
    this.failedOpens = 0;
    this.timers = {};
  }

  get isOpen() {
    return this.ws?.readyState === WebSocket.OPEN;
  }

  start() {
    this.stopped = false;
    this.open();
  }

  stop() {
    this.stopped = true;
    this.detach();
  }

  /** Reconnect at once (the browser is back online), forgetting the backoff. */
  now() {
    this.attempt = 0;
    if (!this.ws) this.open();
  }

  /** Give up on the current socket (the browser went offline, or pings go unanswered). */
  drop() {
    this.detach();
    if (!this.stopped) this.retry();
  }

  send(frame) {
    if (!this.isOpen) return false;
    this.ws.send(JSON.stringify(frame));
    return true;
  }

  async open() {
    clearTimeout(this.timers.retry);
    if (this.stopped || this.ws || this.opening) return;
    this.opening = true;
    this.onState("connecting");
    let token;
    try {
      // A token refused twice at the handshake may be revoked early: renew it.
      token = await session.token({ force: this.failedOpens >= 2 });
    } catch (error) {
      this.opening = false;
      if (!(error instanceof SignedOutError)) this.retry();
      return;
    }
    this.opening = false;
    if (this.stopped || this.ws) return;
    const ws = (this.ws = new WebSocket(this.url, ["bearer", token]));
    let opened = false;
    ws.onopen = () => {
      opened = true;
      this.attempt = this.failedOpens = 0;
      this.onState("online");
      this.timers.ping = setInterval(() => this.ping(), PING_EVERY_MS);
      this.onOpen();
    };
    ws.onmessage = (event) => {
      let frame;
      try {
        frame = JSON.parse(event.data);
      } catch {
        return;
      }
      if (frame.type === "pong") clearTimeout(this.timers.pong);
      this.onFrame(frame);
    };
    ws.onclose = () => {
      if (this.ws !== ws) return;
      if (!opened) this.failedOpens += 1;
      this.drop();
    };
  }

  ping() {
    if (this.send({ action: "ping" })) this.timers.pong = setTimeout(() => this.drop(), PONG_WAIT_MS);
  }

  detach() {
    const ws = this.ws;
    this.ws = null;
    clearInterval(this.timers.ping);
    clearTimeout(this.timers.pong);
    clearTimeout(this.timers.retry);
    if (ws) {
      ws.onopen = ws.onmessage = ws.onclose = null; // frames after this are caught up over REST
      ws.close();
    }
    this.onState("offline");
  }

  retry() {
    const base = BACKOFF_MS[Math.min(this.attempt, BACKOFF_MS.length - 1)];
    this.attempt += 1;
    this.timers.retry = setTimeout(() => this.open(), base / 2 + Math.random() * (base / 2));
  }
}

// --- what is sent but not yet acknowledged ---------------------------------------------

/** Messages not yet acknowledged by the server, kept across reloads; resent with the same id. */
class Outbox {
  constructor(userId) {
    this.key = `lwm.outbox.${userId}`;
    this.items = new Map(JSON.parse(localStorage.getItem(this.key) ?? "[]"));
  }

  add(item) {
    this.items.set(item.client_message_id, item);
    this.save();
  }

  remove(clientId) {
    if (this.items.delete(clientId)) this.save();
  }

  of(conversationId) {
    return [...this.items.values()].filter((item) => item.conversation_id === conversationId);
  }

  save() {
    localStorage.setItem(this.key, JSON.stringify([...this.items]));
  }
}

// --- state -----------------------------------------------------------------------------

const state = {
  me: null,
  realtime: null,
  outbox: null,
  conversations: new Map(), // id → the summary of GET /conversations, kept current
  members: new Map(), // conversation id → its members (GET …/members)
  names: new Map(), // user id → display name
  presence: new Map(), // user id → online, away or offline
  thread: null, // the open conversation (a Thread)
};

async function nameOf(userId) {
  if (userId === state.me) return "You";
  if (!state.names.has(userId)) {
    // Mentors have a public profile; anyone else is shown by the end of their id.
    const fallback = `Member …${userId.slice(-4)}`;
    state.names.set(
      userId,
      api(`/mentors/${encodeURIComponent(userId)}`, { auth: false }).then(
        (mentor) => mentor.display_name,
        () => fallback,
      ),
    );
  }
  return state.names.get(userId);
}

async function membersOf(conversationId, { reload = false } = {}) {
  if (reload || !state.members.has(conversationId)) {
    state.members.set(conversationId, await api(`/conversations/${conversationId}/members`));
  }
  return state.members.get(conversationId);
}

async function titleOf(conversation) {
  if (conversation.title) return conversation.title;
  const others = (await membersOf(conversation.id)).filter((m) => m.user_id !== state.me);
  const names = await Promise.all(others.map((m) => nameOf(m.user_id)));
  return names.join(", ") || "Just you";
}

// --- conversations ---------------------------------------------------------------------

async function loadConversations() {
  const page = await api(`/conversations?limit=${PAGE_SIZE}`);
  state.conversations = new Map(page.items.map((c) => [c.id, c]));
  const open = state.conversations.get(state.thread?.id);
  if (open && !document.hidden) open.unread = 0;
  await renderConversations();
}

let renders = 0;

async function renderConversations() {
  const sorted = [...state.conversations.values()].sort((a, b) =>
    b.last_activity_at.localeCompare(a.last_activity_at),
  );
  const render = ++renders;
  const titles = await Promise.all(sorted.map((c) => titleOf(c).catch(() => "Conversation")));
  if (render !== renders) return; // a later call has newer state
  const rows = sorted.map((c, i) => {
    const last = c.last_message;
    const preview = !last ? "" : last.deleted ? "message deleted" : decodeEntities(last.text);
    return el(
      "li",
      {
        "data-id": c.id,
        "aria-current": state.thread?.id === c.id ? "true" : null,
        onclick: () => openThread(c.id),
      },
      el("span", { class: "title" }, titles[i]),
      c.unread ? el("span", { class: "unread", title: "unread messages" }, String(c.unread)) : "",
      el("span", { class: "preview" }, preview),
    );
  });
  $("conversations").replaceChildren(...rows);
  $("no-conversations").hidden = rows.length > 0;
}

/** A message arrived or changed: keep its conversation's preview, order and unread count. */
function noteInList(message, { isNew }) {
  const conversation = state.conversations.get(message.conversation_id);
  if (!conversation) return loadConversations(); // a conversation we did not know yet
  const last = conversation.last_message;
  if (!last || last.message_id <= message.id) {
    conversation.last_message = {
      message_id: message.id,
      author_id: message.author_id,
      text: message.text,
      created_at: message.created_at,
      deleted: message.deleted,
      attachments: message.attachments.length,
    };
  }
  if (isNew) {
    conversation.last_activity_at = message.created_at;
    const seen = state.thread?.id === message.conversation_id && !document.hidden;
    if (message.author_id !== state.me && !seen) conversation.unread = (conversation.unread ?? 0) + 1;
  }
  return renderConversations();
}

// --- mentorship requests ---------------------------------------------------------------

/** Pending requests to you (as a mentor), each with Accept and Decline. */
async function loadRequests() {
  const page = await api(`/chat/requests?box=incoming&limit=${PAGE_SIZE}`);
  const pending = page.items.filter((r) => r.status === "pending");
  const rows = await Promise.all(
    pending.map(async (r) =>
      el(
        "li",
        { "data-id": r.id },
        el("strong", {}, await nameOf(r.mentee_id)),
        el("span", {}, decodeEntities(r.text)),
        el(
          "span",
          { class: "actions" },
          el("button", { type: "button", onclick: () => answerRequest(r.id, "accept") }, "Accept"),
          el("button", { type: "button", onclick: () => answerRequest(r.id, "decline") }, "Decline"),
        ),
      ),
    ),
  );
  $("incoming").replaceChildren(...rows);
  $("requests").hidden = rows.length === 0;
}

async function answerRequest(id, answer) {
  try {
    const body = answer === "decline" ? {} : undefined;
    const result = await api(`/chat/requests/${id}/${answer}`, { method: "POST", body });
    await loadRequests();
    if (answer === "accept") {
      await loadConversations();
      await openThread(result.conversation.id);
    }
  } catch (error) {
    notice(`Could not ${answer} the request: ${error.message}`);
  }
}

/** Fill the mentor picker from the public directory (GET /mentors, newest first). */
async function loadMentors() {
  const page = await api(`/mentors?limit=100`, { auth: false });
  const label = (m) => (m.headline ? `${m.display_name} · ${m.headline}` : m.display_name);
  const others = page.items.filter((m) => m.id !== state.me);
  const options = others.map((m) => el("option", { value: m.id }, label(m)));
  for (const m of page.items) state.names.set(m.id, Promise.resolve(m.display_name));
  $("ask-form").mentor_id.replaceChildren(...options);
}

async function onAsk(event) {
  event.preventDefault();
  const form = event.target;
  const result = $("ask-result");
  try {
    await api("/chat/requests", {
      method: "POST",
      body: { mentor_id: form.mentor_id.value, text: form.text.value.trim() },
    });
    form.text.value = "";
    result.className = "muted";
    result.textContent = "Request sent: the conversation opens when the mentor accepts.";
  } catch (error) {
    result.className = "error";
    result.textContent = error.message;
  }
  result.hidden = false;
}

// --- the open conversation -------------------------------------------------------------

/** The conversation on screen: its messages in id order, pending sends last, receipts. */
class Thread {
  constructor(id) {
    this.id = id;
    this.ids = []; // confirmed message ids, ascending (ULIDs sort by time)
    this.messages = new Map(); // id → message
    this.nodes = new Map(); // message id or pending client id → <li>
    this.receipts = new Map(); // user id → { read, delivered }
    this.hasOlder = false;
    this.readUpTo = null;
    this.typing = new Map(); // user id → expiry timer
    // A list of its own: a conversation left while loading keeps writing to a detached list.
    this.list = el("ol", { id: "messages", class: "messages" });
    $("messages").replaceWith(this.list);
  }

  get newestId() {
    return this.ids.at(-1) ?? null;
  }

  async load() {
    const [page, members] = await Promise.all([
      api(`/conversations/${this.id}/messages?limit=${PAGE_SIZE}`),
      membersOf(this.id, { reload: true }),
    ]);
    this.setReceipts(members);
    this.hasOlder = page.has_more;
    for (const message of page.items.reverse()) this.upsert(message); // newest first → oldest first
    for (const item of state.outbox.of(this.id)) this.showPending(item);
    this.scrollToEnd();
  }

  async loadOlder() {
    const oldest = this.ids[0];
    if (!oldest) return;
    const height = this.list.scrollHeight;
    const page = await api(`/conversations/${this.id}/messages?before=${oldest}&limit=${PAGE_SIZE}`);
    this.hasOlder = page.has_more;
    for (const message of page.items) this.upsert(message);
    this.list.scrollTop += this.list.scrollHeight - height; // keep the reader's place
    $("older").hidden = !this.hasOlder;
  }

  /** After a reconnect: every message after `after` (the newest we had), page by page. */
  async catchUp(after) {
    if (!after) return this.load();
    this.setReceipts(await membersOf(this.id, { reload: true }));
    for (;;) {
      const page = await api(`/conversations/${this.id}/messages?after=${after}&limit=100`);
      for (const message of page.items) this.upsert(message);
      if (!page.has_more || page.items.length === 0) break;
      after = page.items.at(-1).id;
    }
    this.scrollToEnd();
  }

  /** Add or replace a confirmed message (deduplicated by id; replaces its pending copy). */
  upsert(message) {
    const pinned = this.isAtEnd();
    const known = this.messages.has(message.id);
    this.messages.set(message.id, message);
    if (message.client_message_id && message.author_id === state.me) {
      state.outbox.remove(message.client_message_id);
      this.nodes.get(message.client_message_id)?.remove();
      this.nodes.delete(message.client_message_id);
    }
    const node = this.render(message);
    if (known) {
      this.nodes.get(message.id).replaceWith(node);
    } else {
      let i = this.ids.length;
      while (i > 0 && this.ids[i - 1] > message.id) i -= 1;
      this.ids.splice(i, 0, message.id);
      const next = this.ids[i + 1] ? this.nodes.get(this.ids[i + 1]) : this.list.querySelector(".pending");
      this.list.insertBefore(node, next ?? null);
    }
    this.nodes.set(message.id, node);
    if (pinned) this.scrollToEnd();
  }

  showPending(item, failure = null) {
    const node = el(
      "li",
      {
        class: "message mine pending",
        "data-client-id": item.client_message_id,
        "data-status": failure ? "failed" : "sending",
      },
      el("span", { class: "text" }, item.text),
      el("span", { class: "meta" }, failure ? `not sent: ${failure} ` : "sending…"),
    );
    if (failure) {
      const retry = el("button", { class: "link", type: "button", onclick: () => send(item) }, "Retry");
      node.lastChild.append(retry);
    }
    const old = this.nodes.get(item.client_message_id);
    if (old) old.replaceWith(node);
    else this.list.append(node);
    this.nodes.set(item.client_message_id, node);
    this.scrollToEnd();
  }

  render(message) {
    const mine = message.author_id === state.me;
    const meta = el("span", { class: "meta" });
    nameOf(message.author_id).then((name) => meta.prepend(`${name} · `));
    meta.append(timeOf(message.created_at), message.edited_at ? " · edited" : "");
    const status = mine ? this.statusOf(message.id) : null;
    if (status) meta.append(el("span", { class: "status" }, ` · ${status}`));
    const reactions = Object.entries(message.reactions ?? {})
      .filter(([, users]) => users.length)
      .map(([emoji, users]) => `${emoji} ${users.length}`)
      .join("  ");
    return el(
      "li",
      {
        class: `message${mine ? " mine" : ""}${message.deleted ? " deleted" : ""}`,
        "data-id": message.id,
        "data-author": message.author_id,
        "data-status": status,
      },
      el("span", { class: "text" }, message.deleted ? "message deleted" : decodeEntities(message.text)),
      meta,
      reactions ? el("span", { class: "reactions" }, reactions) : "",
    );
  }

  /** sent, delivered or read: delivered/read once every other member got/read it. */
  statusOf(messageId) {
    const others = [...this.receipts.entries()].filter(([user]) => user !== state.me).map(([, r]) => r);
    const reached = (id) => id !== null && id >= messageId;
    if (others.length === 0) return "sent";
    if (others.every((r) => reached(r.read))) return "read";
    if (others.every((r) => reached(r.delivered) || reached(r.read))) return "delivered";
    return "sent";
  }

  setReceipts(members) {
    const receipt = (m) => ({ read: m.last_read_id, delivered: m.last_delivered_id });
    this.receipts = new Map(members.map((m) => [m.user_id, receipt(m)]));
    this.refreshStatuses();
  }

  receipt({ user_id, kind, message_id }) {
    const r = this.receipts.get(user_id) ?? { read: null, delivered: null };
    if (!r[kind] || r[kind] < message_id) r[kind] = message_id; // receipts never go backwards
    this.receipts.set(user_id, r);
    this.refreshStatuses();
  }

  refreshStatuses() {
    for (const id of this.ids) {
      const message = this.messages.get(id);
      if (message.author_id !== state.me) continue;
      const node = this.nodes.get(id);
      const status = this.statusOf(id);
      if (node.dataset.status === status) continue;
      node.dataset.status = status;
      node.querySelector(".status").textContent = ` · ${status}`;
    }
  }

  /** Tell the others we read up to the newest message (when the page is in view). */
  markRead() {
    const newest = this.newestId;
    if (!newest || document.hidden || (this.readUpTo && this.readUpTo >= newest)) return;
    this.readUpTo = newest;
    const sent = state.realtime.send({ action: "markRead", conversation_id: this.id, message_id: newest });
    if (!sent) {
      api(`/conversations/${this.id}/read`, { method: "POST", body: { up_to_message_id: newest } }).catch(
        () => (this.readUpTo = null),
      );
    }
    const conversation = state.conversations.get(this.id);
    if (conversation?.unread) {
      conversation.unread = 0;
      renderConversations();
    }
  }

  typingFrame({ user_id, state: typing }) {
    if (user_id === state.me) return;
    clearTimeout(this.typing.get(user_id));
    this.typing.delete(user_id);
    if (typing === "start") {
      this.typing.set(user_id, setTimeout(() => this.typingFrame({ user_id, state: "stop" }), TYPING_TTL_MS));
    }
    this.renderTyping();
  }

  async renderTyping() {
    const names = await Promise.all([...this.typing.keys()].map(nameOf));
    const box = $("typing");
    box.hidden = names.length === 0;
    const verb = names.length > 1 ? "are" : "is";
    box.textContent = names.length ? `${names.join(" and ")} ${verb} typing…` : "";
  }

  async renderPresence() {
    const others = [...this.receipts.keys()].filter((user) => user !== state.me);
    const parts = await Promise.all(
      others.map(async (user) => `${await nameOf(user)}: ${state.presence.get(user) ?? "offline"}`),
    );
    if (state.thread === this) $("presence").textContent = parts.join(", ");
  }

  isAtEnd() {
    return this.list.scrollHeight - this.list.scrollTop - this.list.clientHeight < 40;
  }

  scrollToEnd() {
    this.list.scrollTop = this.list.scrollHeight;
  }

  close() {
    for (const timer of this.typing.values()) clearTimeout(timer);
    $("typing").hidden = true;
  }
}

async function openThread(id) {
  state.thread?.close();
  const thread = (state.thread = new Thread(id));
  const conversation = state.conversations.get(id);
  $("thread-title").textContent = "";
  $("presence").textContent = "";
  $("older").hidden = true;
  $("composer").hidden = false;
  renderConversations();
  const title = conversation ? titleOf(conversation).catch(() => "Conversation") : "Conversation";
  Promise.resolve(title).then((text) => state.thread === thread && ($("thread-title").textContent = text));
  try {
    await thread.load();
  } catch (error) {
    notice(`Could not open the conversation: ${error.message}`);
    return;
  }
  if (state.thread !== thread) return;
  $("older").hidden = !thread.hasOlder;
  thread.markRead();
  state.realtime.send({ action: "getPresence", conversation_id: id });
  $("text").focus();
}

// --- sending ---------------------------------------------------------------------------

/** Queue a message ({client_message_id, conversation_id, text}: exactly sendMessage's fields). */
function send(item) {
  state.outbox.add(item);
  if (state.thread?.id === item.conversation_id) state.thread.showPending(item);
  // Not open: it stays in the outbox and goes out, with the same id, on reconnect.
  state.realtime.send({ action: "sendMessage", ...item });
}

function flushOutbox() {
  for (const item of state.outbox.items.values()) {
    state.realtime.send({ action: "sendMessage", ...item });
  }
}

/** Our own typing indicator: "start" while typing (refreshed), "stop" when idle or sent. */
const typingOut = {
  since: 0,
  conversationId: null,
  idle: null,
  keystroke(hasText) {
    const id = state.thread?.id;
    if (!id) return;
    clearTimeout(this.idle);
    if (!hasText || id !== this.conversationId) this.stop();
    if (!hasText) return;
    if (Date.now() - this.since > TYPING_REFRESH_MS) {
      this.since = Date.now();
      this.conversationId = id;
      state.realtime.send({ action: "typing", conversation_id: id, state: "start" });
    }
    this.idle = setTimeout(() => this.stop(), TYPING_IDLE_MS);
  },
  stop() {
    clearTimeout(this.idle);
    if (!this.since) return;
    state.realtime?.send({ action: "typing", conversation_id: this.conversationId, state: "stop" });
    this.since = 0;
    this.conversationId = null;
  },
};

// --- frames from the server ------------------------------------------------------------

function onFrame(frame) {
  const thread = state.thread;
  const here = (conversationId) => thread && thread.id === conversationId;
  switch (frame.type) {
    case "message.sent":
    case "message.new": {
      const message = frame.message;
      if (frame.client_message_id) state.outbox.remove(frame.client_message_id);
      if (here(message.conversation_id)) {
        const isNew = !thread.messages.has(message.id);
        thread.upsert(message);
        thread.typingFrame({ user_id: message.author_id, state: "stop" });
        // A member's own message is their read receipt up to it (the server records it so).
        thread.receipt({ user_id: message.author_id, kind: "read", message_id: message.id });
        if (isNew) noteInList(message, { isNew: true });
        thread.markRead();
      } else {
        noteInList(message, { isNew: true });
      }
      if (message.author_id !== state.me) {
        const receipt = { conversation_id: message.conversation_id, message_id: message.id };
        state.realtime.send({ action: "markDelivered", ...receipt });
      }
      break;
    }
    case "message.edited":
    case "message.deleted":
    case "message.reactions":
      if (here(frame.message.conversation_id) && thread.messages.has(frame.message.id)) {
        thread.upsert(frame.message);
      }
      noteInList(frame.message, { isNew: false });
      break;
    case "receipt":
      if (here(frame.conversation_id)) thread.receipt(frame);
      if (frame.user_id === state.me && frame.kind === "read") readElsewhere(frame.conversation_id);
      break;
    case "typing":
      if (here(frame.conversation_id)) thread.typingFrame(frame);
      break;
    case "presence": // a conversation's members, or a contact who changed
      for (const [user, status] of Object.entries(frame.users)) state.presence.set(user, status);
      thread?.renderPresence();
      break;
    case "request.answered":
      notice(`Your mentorship request was ${frame.status}.`);
    // falls through: an accepted request is a new conversation
    case "conversation.members":
      state.members.delete(frame.conversation_id);
      loadConversations().catch(() => {});
      if (here(frame.conversation_id)) membersOf(thread.id).then((m) => thread.setReceipts(m), () => {});
      break;
    case "request.new":
      loadRequests().catch(() => {});
      break;
    case "error":
      onError(frame);
      break;
    default:
      break; // pong, and anything newer than this page
  }
}

/** Another device of ours read the conversation: it has nothing unread here either. */
function readElsewhere(conversationId) {
  const conversation = state.conversations.get(conversationId);
  if (!conversation?.unread) return;
  conversation.unread = 0;
  renderConversations();
}

function onError(frame) {
  const item = frame.client_message_id && state.outbox.items.get(frame.client_message_id);
  if (item) {
    state.outbox.remove(item.client_message_id);
    if (state.thread?.id === item.conversation_id) state.thread.showPending(item, frame.detail ?? frame.code);
    return;
  }
  notice(`${frame.action ?? "socket"}: ${frame.detail ?? frame.code}`);
}

/** After every (re)connect: catch up over REST, then resend what is still unacknowledged. */
async function onOpen() {
  const thread = state.thread;
  // Taken before any live frame is handled: live messages must not move the catch-up's start.
  const newest = thread?.newestId ?? null;
  try {
    state.realtime.send({ action: "setPresence", status: document.hidden ? "away" : "online" });
    await Promise.all([loadConversations(), loadRequests(), thread?.catchUp(newest)]);
    if (thread && state.thread === thread) {
      thread.markRead();
      state.realtime.send({ action: "getPresence", conversation_id: thread.id });
    }
  } catch (error) {
    if (error instanceof SignedOutError) return;
    notice(`Could not catch up (${error.message}); reconnecting.`);
    state.realtime?.drop(); // the next connection tries again; the outbox waits for it
    return;
  }
  flushOutbox();
}

function onConnectionState(connection) {
  const badge = $("connection");
  badge.dataset.state = connection;
  badge.textContent = connection;
}

// --- signing in and out ----------------------------------------------------------------

async function start() {
  state.me = session.userId;
  state.outbox = new Outbox(state.me);
  $("sign-in").hidden = true;
  $("chat").hidden = false;
  $("sign-out").hidden = false;
  api("/me").then((me) => ($("who").textContent = me.display_name), () => {});
  state.realtime = new Realtime(config.websocket, { onOpen, onFrame, onState: onConnectionState });
  state.realtime.start();
  try {
    await Promise.all([loadConversations(), loadRequests()]);
  } catch (error) {
    if (!(error instanceof SignedOutError)) notice(`Could not load conversations: ${error.message}`);
  }
}

function signOut(reason = "") {
  const refresh = session.refresh;
  state.realtime?.stop();
  state.thread?.close();
  Object.assign(state, { me: null, realtime: null, thread: null });
  Object.assign(state, { conversations: new Map(), members: new Map(), presence: new Map() });
  session.clear();
  if (refresh) fetch(config.api + "/auth/logout", {
    method: "POST",
    headers: { "content-type": "application/json" },
    body: JSON.stringify({ refresh_token: refresh }),
  }).catch(() => {});
  $("chat").hidden = true;
  $("sign-out").hidden = true;
  $("who").textContent = "";
  $("conversations").replaceChildren();
  $("incoming").replaceChildren();
  $("requests").hidden = true;
  $("ask").open = false;
  $("ask-result").hidden = true;
  $("messages").replaceChildren();
  $("thread-title").textContent = "Pick a conversation";
  $("composer").hidden = true;
  $("sign-in").hidden = false;
  const error = $("sign-in-error");
  error.textContent = reason;
  error.hidden = !reason;
}

async function onSignIn(event) {
  event.preventDefault();
  const form = event.target;
  const error = $("sign-in-error");
  const button = form.querySelector("button");
  button.disabled = true;
  error.hidden = true;
  try {
    const tokens = await api("/auth/login", {
      method: "POST",
      body: { email: form.email.value.trim(), password: form.password.value },
      auth: false,
    });
    session.save(tokens);
    form.reset();
    await start();
  } catch (failure) {
    error.textContent =
      failure instanceof ApiError && failure.code === "validation_failed"
        ? "Enter your email address and password."
        : failure instanceof ApiError
          ? failure.message
          : "The platform cannot be reached.";
    error.hidden = false;
  } finally {
    button.disabled = false;
  }
}

function onCompose(event) {
  event.preventDefault();
  const input = $("text");
  const text = input.value.trim();
  if (!text || !state.thread) return;
  typingOut.stop();
  send({ client_message_id: newClientId(), conversation_id: state.thread.id, text });
  input.value = "";
}

async function boot() {
  config = await (await fetch("/web/config.json")).json();
  $("sign-in").addEventListener("submit", onSignIn);
  $("sign-out").addEventListener("click", () => signOut());
  $("composer").addEventListener("submit", onCompose);
  $("ask-form").addEventListener("submit", onAsk);
  $("ask").addEventListener("toggle", (event) => {
    if (event.target.open) loadMentors().catch((e) => notice(`Could not list mentors: ${e.message}`));
  });
  $("text").addEventListener("input", (event) => typingOut.keystroke(event.target.value.trim() !== ""));
  $("older").addEventListener("click", () => state.thread?.loadOlder().catch((e) => notice(e.message)));
  // The browser knows before the socket does: drop it when offline, reconnect when back.
  window.addEventListener("offline", () => state.realtime?.drop());
  window.addEventListener("online", () => state.realtime?.now());
  document.addEventListener("visibilitychange", () => {
    state.realtime?.send({ action: "setPresence", status: document.hidden ? "away" : "online" });
    if (!document.hidden) state.thread?.markRead();
  });
  if (session.load()) await start();
  document.body.dataset.ready = "true";
}

boot();
