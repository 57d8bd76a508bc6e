// Lia's built-in chat page: the same API the React web client uses (cookie auth, SSE over fetch).
"use strict";

const $ = (selector) => document.querySelector(selector);
const state = { user: null, conversationId: null, registering: false, controller: null };

async function api(path, options = {}) {
  const init = { credentials: "same-origin", ...options, headers: { ...(options.headers || {}) } };
  if (options.body !== undefined) {
    init.headers["Content-Type"] = "application/json";
    init.body = JSON.stringify(options.body);
  }
  const response = await fetch(path, init);
  const data = await response.json().catch(() => null);
  if (!response.ok) {
    const message = (data && data.error && data.error.message) || `Request failed (${response.status})`;
    throw Object.assign(new Error(message), { status: response.status });
  }
  return data;
}

function show(signedIn) {
  $("#auth").hidden = signedIn;
  $("#app").hidden = !signedIn;
  if (signedIn) $("#whoami").textContent = state.user.username;
}

function badge(sentiment, extraClass = "") {
  const span = document.createElement("span");
  span.className = `badge ${sentiment ? sentiment.label : ""} ${extraClass}`.trim();
  if (sentiment) {
    const emotion = sentiment.emotion ? `, ${sentiment.emotion}` : "";
    span.textContent = `${sentiment.label} ${Math.round(sentiment.score * 100)}${emotion}`;
  }
  return span;
}

function addMessage(role, content, { thoughts = null, sentiment = null, status = null } = {}) {
  const item = document.createElement("li");
  item.className = `msg ${role}`;
  const details = document.createElement("details");
  details.innerHTML = "<summary>Thinking</summary>";
  const thoughtText = document.createElement("div");
  details.append(thoughtText);
  details.hidden = !thoughts;
  thoughtText.textContent = thoughts || "";
  const text = document.createElement("div");
  text.className = "text";
  text.textContent = content;
  item.append(details, text);
  if (sentiment) item.append(badge(sentiment));
  if (status && status !== "complete") {
    const note = document.createElement("span");
    note.className = "status";
    note.textContent = status;
    item.append(note);
  }
  $("#messages").append(item);
  item.scrollIntoView({ block: "end" });
  return { item, text, thoughtText, details };
}

function setOverall(cumulative) {
  const overall = $("#overall");
  overall.className = `badge ${cumulative ? cumulative.label : ""}`;
  overall.textContent = cumulative ? `Overall: ${cumulative.label}${cumulative.summary ? ` (${cumulative.summary})` : ""}` : "";
}

async function loadHistory() {
  const conversations = await api("/api/v1/chat/history");
  const list = $("#history");
  list.replaceChildren();
  for (const conversation of conversations) {
    const item = document.createElement("li");
    item.textContent = conversation.title || "New conversation";
    item.dataset.id = conversation.id;
    item.classList.toggle("active", conversation.id === state.conversationId);
    if (conversation.id === state.conversationId) $("#title").textContent = item.textContent;
    item.addEventListener("click", () => openConversation(conversation.id));
    list.append(item);
  }
}

async function openConversation(id) {
  const detail = await api(`/api/v1/chat/conversation/${id}?limit=200`);
  state.conversationId = id;
  $("#title").textContent = detail.title || "New conversation";
  $("#messages").replaceChildren();
  let cumulative = null;
  for (const message of detail.messages) {
    const sentiment = message.sentiment_data && message.sentiment_data.message;
    if (message.sentiment_data && message.sentiment_data.cumulative) cumulative = message.sentiment_data.cumulative;
    const thoughts = message.model_info && message.model_info.thoughts ? message.model_info.thoughts.join("") : null;
    addMessage(message.role, message.content, { thoughts, sentiment, status: message.status });
  }
  setOverall(cumulative);
  await loadHistory();
}

function newChat() {
  state.conversationId = null;
  $("#title").textContent = "New conversation";
  $("#messages").replaceChildren();
  setOverall(null);
  loadHistory();
}

// Server-Sent Events over a POST: split on blank lines, read `event:` and `data:`.
async function* readEvents(response) {
  const reader = response.body.getReader();
  const decoder = new TextDecoder();
  let buffer = "";
  for (;;) {
    const { value, done } = await reader.read();
    if (done) return;
    buffer += decoder.decode(value, { stream: true });
    let boundary;
    while ((boundary = buffer.indexOf("\n\n")) >= 0) {
      const block = buffer.slice(0, boundary);
      buffer = buffer.slice(boundary + 2);
      let event = null;
      let data = null;
      for (const line of block.split("\n")) {
        if (line.startsWith("event: ")) event = line.slice(7);
        else if (line.startsWith("data: ")) data = line.slice(6);
      }
      if (event && data) yield { event, data: JSON.parse(data) };
    }
  }
}

async function send(text) {
  $("#chat-error").textContent = "";
  const userBubble = addMessage("user", text);
  const reply = addMessage("assistant", "");
  state.controller = new AbortController();
  $("#send").hidden = true;
  $("#stop").hidden = false;
  const body = { message: text, sentiment_method: $("#method").value };
  if (state.conversationId) body.conversation_id = state.conversationId;
  try {
    const response = await fetch("/api/v1/chat/stream", {
      method: "POST",
      credentials: "same-origin",
      headers: { "Content-Type": "application/json", Accept: "text/event-stream" },
      body: JSON.stringify(body),
      signal: state.controller.signal,
    });
    if (!response.ok) {
      const data = await response.json().catch(() => null);
      throw new Error((data && data.error && data.error.message) || `HTTP ${response.status}`);
    }
    for await (const { event, data } of readEvents(response)) {
      if (event === "start") {
        state.conversationId = data.conversation_id;
      } else if (event === "thought") {
        reply.details.hidden = false;
        reply.thoughtText.textContent += data.content;
      } else if (event === "chunk") {
        reply.text.textContent += data.content;
        reply.item.scrollIntoView({ block: "end" });
      } else if (event === "sentiment") {
        if (data.message) userBubble.item.append(badge(data.message));
        setOverall(data.cumulative);
      } else if (event === "error") {
        throw new Error(data.message || "Unknown error");
      }
    }
  } catch (error) {
    if (error.name !== "AbortError") $("#chat-error").textContent = error.message;
  } finally {
    state.controller = null;
    $("#send").hidden = false;
    $("#stop").hidden = true;
    if (state.conversationId) loadHistory();
  }
}

async function start() {
  try {
    state.user = await api("/api/v1/auth/me");
    show(true);
    await loadHistory();
  } catch {
    show(false);
  }
}

$("#auth-toggle").addEventListener("click", () => {
  state.registering = !state.registering;
  document.querySelectorAll("[data-register]").forEach((el) => (el.hidden = !state.registering));
  $("#auth-submit").textContent = state.registering ? "Create account" : "Sign in";
  $("#auth-toggle").textContent = state.registering ? "I have an account" : "Create an account";
});
document.querySelectorAll("[data-register]").forEach((el) => (el.hidden = true));

$("#auth-form").addEventListener("submit", async (event) => {
  event.preventDefault();
  const form = new FormData(event.target);
  const body = { email: form.get("email"), password: form.get("password") };
  if (state.registering) body.username = form.get("username");
  try {
    const result = await api(state.registering ? "/api/v1/auth/register" : "/api/v1/auth/login", {
      method: "POST",
      body,
    });
    state.user = result.user;
    $("#auth-error").textContent = "";
    show(true);
    newChat();
  } catch (error) {
    $("#auth-error").textContent = error.message;
  }
});

$("#composer").addEventListener("submit", (event) => {
  event.preventDefault();
  const text = $("#input").value.trim();
  if (!text || state.controller) return;
  $("#input").value = "";
  send(text);
});
$("#input").addEventListener("keydown", (event) => {
  if (event.key === "Enter" && !event.shiftKey) {
    event.preventDefault();
    $("#composer").requestSubmit();
  }
});
$("#stop").addEventListener("click", () => state.controller && state.controller.abort());
$("#new-chat").addEventListener("click", newChat);
$("#logout").addEventListener("click", async () => {
  await fetch("/api/v1/auth/logout", { method: "POST", credentials: "same-origin" }).catch(() => null);
  state.user = null;
  show(false);
});

start();
