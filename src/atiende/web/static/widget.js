/*
 * Atiende webchat widget. Embed with:
 *   <script src="https://YOUR-ATIENDE/widget.js" data-channel="WIDGET_KEY" async></script>
 *
 * Hand-written, no libraries, no build step. It draws a launcher and a chat panel inside a
 * shadow root (host page CSS does not leak in), talks to the visitor API of the server it was
 * loaded from (/webchat/v1/KEY/...) and listens on its websocket. The visitor token is kept in
 * localStorage per widget key, so the conversation survives page loads; unsent messages wait
 * in an outbox (also in localStorage) and are re-sent with the same client_id until the server
 * has them, so a flaky network never duplicates a message. "End chat" in the header ends the
 * conversation (after a confirmation) and offers to start a new one. See docs/webchat.md.
 */
(function () {
  "use strict";

  var script = document.currentScript || document.querySelector("script[data-channel][src*='widget.js']");
  if (!script) return;
  var KEY = script.getAttribute("data-channel");
  if (!KEY) return;
  var registry = (window.__atiendeWebchat = window.__atiendeWebchat || {});
  if (registry[KEY]) return; // the snippet was pasted twice
  registry[KEY] = true;

  var ORIGIN = new URL(script.src, location.href).origin;
  var API = ORIGIN + "/webchat/v1/" + encodeURIComponent(KEY);
  var STORE = "atiende.webchat." + KEY;
  var TYPING_EVERY_MS = 3000;
  var TYPING_SHOWN_MS = 6000;
  var MAX_BACKOFF_MS = 30000;
  var OPEN_STATUSES = ["queued", "offered", "assigned", "wrap_up"];

  // English fallbacks; the server sends the texts in the visitor's language with the config.
  var FALLBACK_TEXTS = {
    launcher: "Chat with us", title: "Chat with us", close: "Close chat", start: "Start chat",
    name: "Name", email: "E-mail", phone: "Phone", optional: "(optional)",
    required: "Please fill in this field.", placeholder: "Type a message…", send: "Send",
    attach: "Attach a file", attach_limits: "Allowed: {types}; up to {size}.",
    too_large: "This file is too large (up to {size}).", bad_type: "This type of file cannot be sent here.",
    sending: "Sending…", sent: "Sent", read: "Read", retrying: "Not sent yet; retrying…",
    typing: "The agent is typing…", joined: "An agent joined the conversation.",
    ended: "The conversation has ended. Write again whenever you need us.",
    reconnecting: "Reconnecting…", offline_title: "We are offline", you: "You", agent: "Agent",
    invalid_email: "Enter a valid e-mail address.", invalid_phone: "Enter a valid phone number.",
    rate_limited: "You are sending messages too fast; wait a moment.",
    unavailable: "The chat is not available right now.", attachment: "Attachment",
    end: "End chat", end_confirm: "End this conversation?", cancel: "Cancel",
    ended_by_you: "You ended the conversation.", new_chat: "Start a new conversation"
  };

  // --- storage ---------------------------------------------------------------------------

  function load(name, fallback) {
    try {
      var raw = window.localStorage.getItem(STORE + "." + name);
      return raw === null ? fallback : JSON.parse(raw);
    } catch (e) {
      return fallback;
    }
  }

  function save(name, value) {
    try {
      if (value === null || value === undefined) window.localStorage.removeItem(STORE + "." + name);
      else window.localStorage.setItem(STORE + "." + name, JSON.stringify(value));
    } catch (e) { /* private mode: the chat still works for this page */ }
  }

  function newClientId() {
    if (window.crypto && typeof window.crypto.randomUUID === "function") return window.crypto.randomUUID();
    var bytes = new Uint8Array(16);
    window.crypto.getRandomValues(bytes);
    bytes[6] = (bytes[6] & 0x0f) | 0x40;
    bytes[8] = (bytes[8] & 0x3f) | 0x80;
    var hex = Array.prototype.map.call(bytes, function (b) { return (b + 0x100).toString(16).slice(1); }).join("");
    return hex.slice(0, 8) + "-" + hex.slice(8, 12) + "-" + hex.slice(12, 16) + "-" + hex.slice(16, 20) + "-" + hex.slice(20);
  }

  // --- state -----------------------------------------------------------------------------

  var state = {
    config: null,
    texts: FALLBACK_TEXTS,
    token: load("token", null),
    profile: null,
    messages: {},          // id -> message as the API shows it
    outbox: load("outbox", []), // [{client_id, body, attachments:[{id,name,...}], failed?}]
    lastEventId: -1,
    status: null,          // status of the newest interaction ("ended": the visitor ended it)
    ending: false,         // an "end chat" request is on its way
    ended: false,          // the visitor ended the chat here and has not started a new one
    open: false,
    unread: 0,
    uploads: [],           // attachments chosen for the next message
    socket: null,
    socketAttempts: 0,
    socketTimer: null,
    watchdog: null,
    heartbeatSeconds: 20,
    flushing: false,
    flushTimer: null,
    flushAttempts: 0,
    lastTypingSent: 0,
    typingTimer: null,
    readTimer: null,
    stopped: false,
    blobUrls: {},
    notes: [],
    starting: false
  };

  function t(name, values) {
    var text = (state.texts && state.texts[name]) || FALLBACK_TEXTS[name] || name;
    if (values) {
      Object.keys(values).forEach(function (k) { text = text.split("{" + k + "}").join(values[k]); });
    }
    return text;
  }

  // --- HTTP --------------------------------------------------------------------------------

  function ApiError(status, body) {
    this.status = status;
    this.code = (body && body.code) || "http_" + status;
    this.body = body || {};
  }

  function request(method, path, body, options) {
    options = options || {};
    var headers = {};
    if (state.token && !options.anonymous) headers.Authorization = "Bearer " + state.token;
    var init = { method: method, headers: headers, mode: "cors", credentials: "omit" };
    if (body instanceof FormData) init.body = body;
    else if (body !== undefined) {
      headers["Content-Type"] = "application/json";
      init.body = JSON.stringify(body);
    }
    return fetch(API + path, init).then(function (response) {
      if (options.raw && response.ok) return response;
      return response.text().then(function (text) {
        var data = null;
        try { data = text ? JSON.parse(text) : null; } catch (e) { data = null; }
        if (!response.ok) throw new ApiError(response.status, data);
        return data;
      });
    });
  }

  function isNetworkError(error) {
    // fetch rejects with a TypeError when the network (or CORS) fails; 5xx and 429 are worth a retry too.
    return !(error instanceof ApiError) || error.status >= 500 || error.status === 429;
  }

  function backoff(attempt) {
    var base = Math.min(MAX_BACKOFF_MS, 1000 * Math.pow(2, attempt));
    return base / 2 + Math.random() * base / 2;
  }

  // --- DOM -----------------------------------------------------------------------------------

  var host = document.createElement("div");
  host.setAttribute("data-atiende-webchat", KEY);
  var root = host.attachShadow({ mode: "open" });
  var ui = {};

  function el(tag, attrs, children) {
    var node = document.createElement(tag);
    if (attrs) {
      Object.keys(attrs).forEach(function (name) {
        var value = attrs[name];
        if (value === null || value === undefined || value === false) return;
        if (name === "text") node.textContent = value;
        else if (name === "on") Object.keys(value).forEach(function (ev) { node.addEventListener(ev, value[ev]); });
        else node.setAttribute(name, value === true ? "" : value);
      });
    }
    (children || []).forEach(function (child) { if (child) node.appendChild(child); });
    return node;
  }

  function svg(path) {
    var ns = "http://www.w3.org/2000/svg";
    var icon = document.createElementNS(ns, "svg");
    icon.setAttribute("viewBox", "0 0 24 24");
    icon.setAttribute("aria-hidden", "true");
    icon.setAttribute("focusable", "false");
    var shape = document.createElementNS(ns, "path");
    shape.setAttribute("d", path);
    icon.appendChild(shape);
    return icon;
  }

  var ICONS = {
    chat: "M4 4h16a2 2 0 0 1 2 2v10a2 2 0 0 1-2 2H9l-5 4v-4H4a2 2 0 0 1-2-2V6a2 2 0 0 1 2-2z",
    close: "M6 6l12 12M18 6L6 18",
    send: "M3 20l18-8L3 4l3 8-3 8zm3-8h8",
    clip: "M16.5 6.5l-7.8 7.8a2 2 0 0 0 2.8 2.8l7.8-7.8a4 4 0 0 0-5.7-5.7l-7.8 7.8a6 6 0 0 0 8.5 8.5l6.4-6.4"
  };

  function build() {
    var link = el("link", { rel: "stylesheet", href: ORIGIN + "/widget.css" });
    var wrapper = el("div", { class: "atw", "data-part": "root" });
    wrapper.style.visibility = "hidden"; // until the styles are in
    link.addEventListener("load", function () { wrapper.style.visibility = ""; });
    link.addEventListener("error", function () { wrapper.style.visibility = ""; });

    ui.launcher = el("button", { type: "button", class: "launcher", "data-part": "launcher", "aria-expanded": "false", "aria-controls": "atw-panel", on: { click: toggle } }, [svg(ICONS.chat)]);
    ui.badge = el("span", { class: "badge", "data-part": "badge", hidden: true, "aria-hidden": "true" });
    ui.launcher.appendChild(ui.badge);

    ui.title = el("h2", { id: "atw-title", class: "title" });
    ui.close = el("button", { type: "button", class: "icon-button close", "data-part": "close", on: { click: function () { setOpen(false); } } }, [svg(ICONS.close)]);
    ui.end = el("button", { type: "button", class: "end-button", "data-part": "end", hidden: true, "aria-haspopup": "dialog", on: { click: askEnd } });
    ui.confirmText = el("p", { id: "atw-confirm-text", class: "confirm-text" });
    ui.confirmYes = el("button", { type: "button", class: "danger", "data-part": "end-yes", on: { click: endChat } });
    ui.confirmNo = el("button", { type: "button", class: "secondary", "data-part": "end-cancel", on: { click: cancelEnd } });
    ui.confirm = el("div", { class: "confirm", role: "alertdialog", "aria-labelledby": "atw-confirm-text", "data-part": "confirm-end", hidden: true }, [
      ui.confirmText, el("div", { class: "actions" }, [ui.confirmNo, ui.confirmYes])
    ]);
    ui.offline = el("div", { class: "banner offline", role: "status", "data-part": "offline", hidden: true });
    ui.connection = el("div", { class: "banner connection", role: "status", "data-part": "connection", hidden: true });
    ui.unavailable = el("div", { class: "banner unavailable", role: "alert", hidden: true });

    ui.greeting = el("p", { class: "greeting", "data-part": "greeting" });
    ui.prechatFields = el("div", { class: "fields" });
    ui.prechatError = el("p", { class: "error", role: "alert", hidden: true });
    ui.start = el("button", { type: "submit", class: "primary", "data-part": "start" });
    ui.prechat = el("form", { class: "prechat", "data-part": "prechat", novalidate: true, hidden: true, on: { submit: onPrechat } }, [ui.greeting, ui.prechatFields, ui.prechatError, ui.start]);

    ui.log = el("ol", { class: "log", role: "log", "aria-live": "polite", "data-part": "log" });
    ui.typing = el("div", { class: "typing", "data-part": "typing", hidden: true, "aria-live": "polite" }, [el("span", { class: "dots", "aria-hidden": "true" }, [el("i"), el("i"), el("i")]), el("span", { class: "typing-text" })]);
    ui.error = el("p", { class: "error", role: "alert", "data-part": "error", hidden: true });
    ui.chips = el("div", { class: "chips", "data-part": "uploads" });
    ui.file = el("input", { type: "file", class: "file", tabindex: "-1", "aria-hidden": "true", on: { change: onFileChosen } });
    ui.attach = el("button", { type: "button", class: "icon-button attach", "data-part": "attach", on: { click: function () { ui.file.click(); } } }, [svg(ICONS.clip)]);
    ui.input = el("textarea", { class: "input", rows: "1", "data-part": "input", on: { keydown: onKeyDown, input: onInput } });
    ui.send = el("button", { type: "submit", class: "icon-button send", "data-part": "send" }, [svg(ICONS.send)]);
    ui.limits = el("p", { class: "limits", "data-part": "limits" });
    ui.composer = el("form", { class: "composer", "data-part": "composer", on: { submit: onSend } }, [ui.chips, el("div", { class: "row" }, [ui.attach, ui.input, ui.send]), ui.file]);
    ui.endedText = el("p", { class: "ended-text" });
    ui.newChat = el("button", { type: "button", class: "primary", "data-part": "new-chat", on: { click: startNew } });
    ui.ended = el("div", { class: "ended", "data-part": "ended", role: "status", hidden: true }, [ui.endedText, ui.newChat]);
    ui.conversation = el("div", { class: "conversation", hidden: true }, [ui.log, ui.typing, ui.error, ui.composer, ui.limits, ui.ended]);

    ui.panel = el("section", { id: "atw-panel", class: "panel", role: "dialog", "aria-labelledby": "atw-title", "data-part": "panel", hidden: true, on: { keydown: onPanelKey } }, [
      el("header", { class: "head" }, [ui.title, el("div", { class: "head-actions" }, [ui.end, ui.close])]),
      ui.confirm, ui.offline, ui.connection, ui.unavailable, ui.prechat, ui.conversation
    ]);

    wrapper.appendChild(ui.panel);
    wrapper.appendChild(ui.launcher);
    root.appendChild(link);
    root.appendChild(wrapper);
    ui.root = wrapper;
    (document.body || document.documentElement).appendChild(host);
  }

  function applyConfig() {
    var config = state.config;
    ui.root.style.setProperty("--atw-accent", config.theme_color);
    ui.root.setAttribute("lang", config.locale);
    ui.launcher.setAttribute("aria-label", t("launcher"));
    ui.launcher.title = t("launcher");
    ui.title.textContent = t("title");
    ui.close.setAttribute("aria-label", t("close"));
    ui.close.title = t("close");
    ui.greeting.textContent = config.greeting;
    ui.start.textContent = t("start");
    ui.input.setAttribute("placeholder", t("placeholder"));
    ui.input.setAttribute("aria-label", t("placeholder"));
    ui.send.setAttribute("aria-label", t("send"));
    ui.send.title = t("send");
    ui.attach.setAttribute("aria-label", t("attach"));
    ui.typing.querySelector(".typing-text").textContent = t("typing");
    ui.connection.textContent = t("reconnecting");
    ui.end.textContent = t("end");
    ui.confirmText.textContent = t("end_confirm");
    ui.confirmYes.textContent = t("end");
    ui.confirmNo.textContent = t("cancel");
    ui.endedText.textContent = t("ended_by_you");
    ui.newChat.textContent = t("new_chat");
    var types = config.attachments.types;
    ui.attach.hidden = types.length === 0;
    ui.limits.hidden = types.length === 0 || state.ended;
    ui.file.setAttribute("accept", types.join(","));
    var limits = t("attach_limits", { types: types.map(shortType).join(", "), size: humanSize(config.attachments.max_bytes) });
    ui.limits.textContent = limits;
    ui.attach.title = t("attach") + " — " + limits;
    buildPrechatFields();
    showOpenState(config.open);
    ui.root.hidden = false;
  }

  function showOpenState(isOpen) {
    ui.offline.hidden = isOpen;
    ui.offline.textContent = "";
    if (!isOpen) {
      ui.offline.appendChild(el("strong", { text: t("offline_title") }));
      ui.offline.appendChild(el("span", { text: " " + state.config.offline_message }));
    }
  }

  function buildPrechatFields() {
    ui.prechatFields.textContent = "";
    ["name", "email", "phone"].forEach(function (field) {
      var mode = state.config.prechat[field];
      if (mode === "off") return;
      var input = el("input", {
        name: field,
        type: field === "email" ? "email" : field === "phone" ? "tel" : "text",
        autocomplete: field === "name" ? "name" : field === "email" ? "email" : "tel",
        required: mode === "required",
        "aria-required": mode === "required" ? "true" : "false",
        maxlength: field === "phone" ? "40" : "200"
      });
      var label = el("label", { class: "field" }, [
        el("span", { class: "label", text: t(field) + (mode === "optional" ? " " + t("optional") : "") }),
        input,
        el("span", { class: "field-error", role: "alert", hidden: true })
      ]);
      ui.prechatFields.appendChild(label);
    });
  }

  // --- opening and closing --------------------------------------------------------------------

  function toggle() { setOpen(!state.open); }

  function setOpen(open) {
    state.open = open;
    try { window.sessionStorage.setItem(STORE + ".open", open ? "1" : "0"); } catch (e) { /* ignore */ }
    ui.panel.hidden = !open;
    ui.root.classList.toggle("is-open", open);
    ui.launcher.setAttribute("aria-expanded", open ? "true" : "false");
    if (open) {
      state.unread = 0;
      renderBadge();
      showStage();
      if (state.token) refreshSession();
      focusFirst();
      scheduleRead();
    } else {
      ui.launcher.focus();
    }
  }

  function focusFirst() {
    window.setTimeout(function () {
      var target = !ui.prechat.hidden ? ui.prechat.querySelector("input") || ui.start : ui.input;
      if (target && !state.stopped) target.focus();
    }, 0);
  }

  function onPanelKey(event) {
    if (event.key === "Escape") {
      event.stopPropagation();
      if (!ui.confirm.hidden) cancelEnd();
      else setOpen(false);
    }
  }

  function showStage() {
    var needsForm = !state.token;
    var anyField = state.config && ["name", "email", "phone"].some(function (f) { return state.config.prechat[f] !== "off"; });
    if (needsForm && state.config && !anyField && state.open) {
      if (!state.starting) startSession({});
      return;
    }
    ui.prechat.hidden = !needsForm;
    ui.conversation.hidden = needsForm;
    renderEnd();
  }

  // --- ending the chat ----------------------------------------------------------------------

  function setStatus(status) {
    state.status = status;
    renderEnd();
  }

  // "End chat" is offered while a conversation is open (waiting or with an agent).
  function renderEnd() {
    var open = !!state.token && OPEN_STATUSES.indexOf(state.status) >= 0;
    ui.end.hidden = !open;
    if (!open) ui.confirm.hidden = true;
  }

  function askEnd() {
    ui.confirm.hidden = false;
    ui.confirmNo.focus();
  }

  function cancelEnd() {
    ui.confirm.hidden = true;
    ui.end.focus();
  }

  function endChat() {
    ui.confirm.hidden = true;
    if (!state.token || state.ending) return;
    state.ending = true;
    ui.confirmYes.disabled = true;
    showError(ui.error, "");
    // Waiting: the server abandons the conversation. With an agent: the agent is told and
    // finishes it. Either way the next message here opens a new conversation.
    request("POST", "/end").then(function (result) {
      hideTyping();
      setStatus(result.status);
      addNote(t("ended_by_you"));
      showEnded(true);
    }).catch(function (error) {
      if (error instanceof ApiError && error.status === 401) {
        forgetSession();
        return;
      }
      showError(ui.error, t("unavailable"));
    }).then(function () {
      state.ending = false;
      ui.confirmYes.disabled = false;
    });
  }

  function showEnded(ended) {
    state.ended = ended;
    ui.ended.hidden = !ended;
    ui.composer.hidden = ended || state.stopped;
    ui.limits.hidden = ended || !state.config || state.config.attachments.types.length === 0;
    if (ended) ui.newChat.focus();
  }

  function startNew() {
    showEnded(false);
    focusFirst();
  }

  // --- sessions ---------------------------------------------------------------------------

  function onPrechat(event) {
    event.preventDefault();
    var data = {};
    var missing = null;
    ui.prechat.querySelectorAll(".field-error").forEach(function (node) { node.hidden = true; });
    ui.prechat.querySelectorAll("input").forEach(function (input) {
      var value = input.value.trim();
      input.removeAttribute("aria-invalid");
      if (value) data[input.name] = value;
      else if (input.required && !missing) missing = input;
    });
    if (missing) {
      fieldError(missing.name, t("required"));
      missing.focus();
      return;
    }
    startSession(data);
  }

  function fieldError(field, message) {
    var input = ui.prechat.querySelector("input[name='" + field + "']");
    if (!input) {
      showError(ui.prechatError, message);
      return;
    }
    input.setAttribute("aria-invalid", "true");
    var node = input.parentNode.querySelector(".field-error");
    node.textContent = message;
    node.hidden = false;
  }

  function startSession(data) {
    data.locale = state.config.locale;
    data.page_url = location.href.slice(0, 2000);
    ui.start.disabled = true;
    state.starting = true;
    ui.prechatError.hidden = true;
    request("POST", "/session", data, { anonymous: true }).then(function (session) {
      state.token = session.token;
      save("token", session.token);
      state.profile = session;
      showOpenState(session.open);
      showStage();
      focusFirst();
      return loadHistory().then(connect);
    }).catch(function (error) {
      if (error instanceof ApiError && error.body.details && error.body.details.field) {
        var field = error.body.details.field;
        fieldError(field, error.code === "invalid_email" ? t("invalid_email") : error.code === "invalid_phone" ? t("invalid_phone") : t("required"));
      } else if (error instanceof ApiError && error.status === 429) {
        showError(ui.prechatError, t("rate_limited"));
      } else {
        showError(ui.prechatError, t("unavailable"));
      }
    }).then(function () {
      ui.start.disabled = false;
      state.starting = false;
    });
  }

  function refreshSession() {
    return request("GET", "/session").then(function (profile) {
      state.profile = profile;
      showOpenState(profile.open);
    }).catch(function (error) {
      if (error instanceof ApiError && error.status === 401) forgetSession();
    });
  }

  function forgetSession() {
    state.token = null;
    save("token", null);
    save("outbox", []);
    state.outbox = [];
    state.messages = {};
    setStatus(null);
    showEnded(false);
    if (state.socket) state.socket.close();
    renderLog();
    showStage();
  }

  // --- history and rendering --------------------------------------------------------------

  function loadHistory() {
    return request("GET", "/messages").then(function (history) {
      history.messages.forEach(function (message) { state.messages[message.id] = message; });
      setStatus(history.status);
      if (state.lastEventId < 0) state.lastEventId = history.last_event_id;
      forgetSent();
      renderLog();
      scheduleRead();
    });
  }

  function ordered() {
    return Object.keys(state.messages).map(function (id) { return state.messages[id]; }).sort(function (a, b) {
      return a.created_at < b.created_at ? -1 : a.created_at > b.created_at ? 1 : a.id < b.id ? -1 : 1;
    });
  }

  function renderLog() {
    ui.log.textContent = "";
    if (state.config && state.config.greeting) {
      ui.log.appendChild(el("li", { class: "msg out greeting-msg" }, [el("div", { class: "bubble", text: state.config.greeting })]));
    }
    var list = ordered();
    var lastAgentAt = "";
    list.forEach(function (m) { if (m.direction === "outbound" && m.created_at > lastAgentAt) lastAgentAt = m.created_at; });
    renderNotesAfter(null);
    list.forEach(function (message) {
      ui.log.appendChild(renderMessage(message, lastAgentAt));
      renderNotesAfter(message.id);
    });
    state.outbox.forEach(function (item) { ui.log.appendChild(renderPending(item)); });
    ui.log.scrollTop = ui.log.scrollHeight;
  }

  // Status notes ("an agent joined") sit after the message that was newest when they came.
  function renderNotesAfter(messageId) {
    state.notes.forEach(function (note) {
      if (note.after === messageId) ui.log.appendChild(el("li", { class: "note", "data-part": "note", text: note.text }));
    });
  }

  function timeOf(value) {
    try {
      return new Date(value).toLocaleTimeString(state.config ? state.config.locale : undefined, { hour: "2-digit", minute: "2-digit" });
    } catch (e) {
      return "";
    }
  }

  function renderMessage(message, lastAgentAt) {
    var mine = message.direction === "inbound";
    var item = el("li", { class: "msg " + (mine ? "in" : "out"), "data-id": message.id, "data-part": "message" });
    var bubble = el("div", { class: "bubble" });
    if (message.body) bubble.appendChild(el("span", { class: "body", text: message.body }));
    (message.attachments || []).forEach(function (file) { bubble.appendChild(renderAttachment(file)); });
    item.appendChild(el("span", { class: "sr-only", text: (mine ? t("you") : t("agent")) + ": " }));
    item.appendChild(bubble);
    var meta = el("div", { class: "meta" }, [el("time", { datetime: message.created_at, text: timeOf(message.created_at) })]);
    if (mine) {
      // Read when the agent marked it read, or answered after it.
      var read = message.status === "read" || (lastAgentAt && lastAgentAt > message.created_at);
      meta.appendChild(el("span", {
        class: "ticks " + (read ? "read" : "sent"),
        "data-part": "ticks",
        "data-status": read ? "read" : "sent",
        title: read ? t("read") : t("sent"),
        "aria-label": read ? t("read") : t("sent"),
        text: read ? "✓✓" : "✓"
      }));
    }
    item.appendChild(meta);
    return item;
  }

  function renderPending(item) {
    var node = el("li", { class: "msg in pending", "data-client-id": item.client_id, "data-part": "pending" });
    var bubble = el("div", { class: "bubble" });
    if (item.body) bubble.appendChild(el("span", { class: "body", text: item.body }));
    (item.attachments || []).forEach(function (file) { bubble.appendChild(el("span", { class: "file", text: "📎 " + file.name })); });
    node.appendChild(bubble);
    var label = item.failed ? item.failed : item.retrying ? t("retrying") : t("sending");
    node.appendChild(el("div", { class: "meta" }, [el("span", { class: "ticks pending", "data-part": "ticks", "data-status": item.retrying ? "retrying" : "sending", text: label })]));
    return node;
  }

  function renderAttachment(file) {
    var isImage = /^image\//.test(file.content_type);
    var button = el("button", { type: "button", class: "file", title: file.name, on: { click: function () { openAttachment(file); } } });
    if (isImage) {
      var img = el("img", { alt: file.name, class: "thumb" });
      button.appendChild(img);
      blobUrl(file).then(function (url) { img.src = url; }).catch(function () { img.alt = file.name; });
    } else {
      button.textContent = "📎 " + file.name + " (" + humanSize(file.size) + ")";
    }
    return button;
  }

  function blobUrl(file) {
    if (state.blobUrls[file.id]) return Promise.resolve(state.blobUrls[file.id]);
    return request("GET", "/attachments/" + file.id, undefined, { raw: true })
      .then(function (response) { return response.blob(); })
      .then(function (blob) {
        state.blobUrls[file.id] = URL.createObjectURL(blob);
        return state.blobUrls[file.id];
      });
  }

  function openAttachment(file) {
    blobUrl(file).then(function (url) {
      var link = el("a", { href: url, download: file.name, rel: "noopener" });
      root.appendChild(link);
      link.click();
      link.remove();
    });
  }

  function addNote(text) {
    var list = ordered();
    state.notes = state.notes.concat([{ text: text, after: list.length ? list[list.length - 1].id : null }]).slice(-5);
    renderLog();
  }

  function renderBadge() {
    ui.badge.hidden = state.unread === 0;
    ui.badge.textContent = state.unread > 9 ? "9+" : String(state.unread);
  }

  function showError(node, text) {
    node.textContent = text;
    node.hidden = !text;
  }

  // --- sending -----------------------------------------------------------------------------

  function onKeyDown(event) {
    if (event.key === "Enter" && !event.shiftKey && !event.isComposing) {
      event.preventDefault();
      onSend(event);
    }
  }

  function onInput() {
    ui.input.style.height = "auto";
    ui.input.style.height = Math.min(ui.input.scrollHeight, 120) + "px";
    var now = Date.now();
    // Only an open conversation has an agent side to tell (the first message opens one).
    var talking = OPEN_STATUSES.indexOf(state.status) >= 0;
    if (state.token && talking && ui.input.value.trim() && now - state.lastTypingSent > TYPING_EVERY_MS) {
      state.lastTypingSent = now;
      request("POST", "/typing", { typing: true }).catch(function () { /* best effort */ });
    }
  }

  function onSend(event) {
    event.preventDefault();
    var body = ui.input.value.trim();
    if (!body && state.uploads.length === 0) return;
    if (!state.token) return;
    state.outbox.push({ client_id: newClientId(), body: body, attachments: state.uploads.slice() });
    save("outbox", state.outbox);
    state.uploads = [];
    renderChips();
    ui.input.value = "";
    onInput();
    showError(ui.error, "");
    renderLog();
    flush();
  }

  // Send the outbox in order, one message at a time; a message stays (same client_id) until the
  // server has answered for it, so a retry after a lost answer returns the stored message.
  function flush() {
    if (state.flushing || !state.token || state.stopped) return;
    var item = state.outbox.find(function (entry) { return !entry.failed; });
    if (!item) return;
    state.flushing = true;
    window.clearTimeout(state.flushTimer);
    request("POST", "/messages", {
      body: item.body,
      client_id: item.client_id,
      attachment_ids: (item.attachments || []).map(function (file) { return file.id; })
    }).then(function (message) {
      state.flushAttempts = 0;
      state.messages[message.id] = message;
      removeFromOutbox(item.client_id);
      if (OPEN_STATUSES.indexOf(state.status) < 0) setStatus("queued"); // this message opened a new one
      renderLog();
      state.flushing = false;
      flush();
    }).catch(function (error) {
      state.flushing = false;
      if (error instanceof ApiError && error.status === 401) {
        forgetSession();
        return;
      }
      if (isNetworkError(error)) {
        item.retrying = true;
        renderLog();
        var wait = error instanceof ApiError && error.status === 429 ? 10000 : backoff(state.flushAttempts++);
        if (error instanceof ApiError && error.status === 429) showError(ui.error, t("rate_limited"));
        state.flushTimer = window.setTimeout(flush, wait);
        return;
      }
      // Refused for good (invalid): keep it visible, marked, and go on with the rest.
      item.failed = error.body.message || t("unavailable");
      save("outbox", state.outbox);
      renderLog();
      flush();
    });
  }

  function removeFromOutbox(clientId) {
    state.outbox = state.outbox.filter(function (entry) { return entry.client_id !== clientId; });
    save("outbox", state.outbox);
  }

  function forgetSent() {
    // After a reload, outbox entries the server already has arrive in the history.
    var known = {};
    Object.keys(state.messages).forEach(function (id) {
      var m = state.messages[id];
      if (m.client_id) known[m.client_id] = true;
    });
    state.outbox = state.outbox.filter(function (entry) { return !known[entry.client_id]; });
    save("outbox", state.outbox);
  }

  // --- attachments -------------------------------------------------------------------------

  function onFileChosen() {
    var file = ui.file.files && ui.file.files[0];
    ui.file.value = "";
    if (!file) return;
    var limits = state.config.attachments;
    if (limits.types.indexOf(file.type) < 0) {
      showError(ui.error, t("bad_type"));
      return;
    }
    if (file.size > limits.max_bytes) {
      showError(ui.error, t("too_large", { size: humanSize(limits.max_bytes) }));
      return;
    }
    showError(ui.error, "");
    var form = new FormData();
    form.append("file", file, file.name);
    var chip = { id: null, name: file.name, uploading: true };
    state.uploads.push(chip);
    renderChips();
    request("POST", "/attachments", form).then(function (stored) {
      chip.id = stored.id;
      chip.name = stored.name;
      chip.content_type = stored.content_type;
      chip.size = stored.size;
      chip.uploading = false;
      renderChips();
    }).catch(function (error) {
      state.uploads = state.uploads.filter(function (c) { return c !== chip; });
      renderChips();
      var code = error instanceof ApiError ? error.code : "";
      showError(ui.error, code === "attachment_too_large" ? t("too_large", { size: humanSize(limits.max_bytes) }) : code === "unsupported_media_type" ? t("bad_type") : t("unavailable"));
    });
  }

  function renderChips() {
    ui.chips.textContent = "";
    state.uploads.forEach(function (chip) {
      var remove = el("button", { type: "button", class: "chip-remove", "aria-label": "✕ " + chip.name, text: "✕", on: { click: function () {
        state.uploads = state.uploads.filter(function (c) { return c !== chip; });
        renderChips();
      } } });
      ui.chips.appendChild(el("span", { class: "chip" + (chip.uploading ? " uploading" : "") }, [el("span", { text: "📎 " + chip.name }), remove]));
    });
    ui.send.disabled = state.uploads.some(function (c) { return c.uploading; });
  }

  function shortType(type) {
    var known = { "image/jpeg": "JPG", "image/png": "PNG", "image/gif": "GIF", "image/webp": "WEBP", "application/pdf": "PDF", "text/plain": "TXT" };
    return known[type] || type.split("/").pop().toUpperCase();
  }

  function humanSize(bytes) {
    if (bytes >= 1024 * 1024) return (Math.round(bytes / 104857.6) / 10).toString().replace(/\.0$/, "") + " MB";
    if (bytes >= 1024) return Math.round(bytes / 1024) + " KB";
    return bytes + " B";
  }

  // --- reading -------------------------------------------------------------------------------

  function scheduleRead() {
    window.clearTimeout(state.readTimer);
    state.readTimer = window.setTimeout(markRead, 400);
  }

  function markRead() {
    if (!state.open || document.visibilityState === "hidden" || !state.token) return;
    var unread = ordered().some(function (m) { return m.direction === "outbound" && m.status !== "read"; });
    if (!unread) return;
    request("POST", "/read", {}).catch(function () { /* next time */ });
  }

  // --- realtime ----------------------------------------------------------------------------

  function connect() {
    if (!state.token || state.stopped) return;
    if (state.socket && state.socket.readyState <= 1) return;
    var url = API.replace(/^http/, "ws") + "/ws?token=" + encodeURIComponent(state.token) +
      (state.lastEventId >= 0 ? "&last_event_id=" + state.lastEventId : "");
    var socket;
    try {
      socket = new WebSocket(url);
    } catch (e) {
      scheduleReconnect();
      return;
    }
    state.socket = socket;
    var slow = window.setTimeout(function () { ui.connection.hidden = false; }, 2000);
    socket.onopen = function () { armWatchdog(); };
    socket.onmessage = function (event) {
      window.clearTimeout(slow);
      ui.connection.hidden = true;
      state.socketAttempts = 0;
      armWatchdog();
      var frame;
      try { frame = JSON.parse(event.data); } catch (e) { return; }
      onFrame(frame);
    };
    socket.onclose = function (event) {
      window.clearTimeout(slow);
      window.clearTimeout(state.watchdog);
      if (state.socket === socket) state.socket = null;
      if (event.code === 1008) {
        if (event.reason === "visitor_not_authenticated") { forgetSession(); return; }
        if (event.reason === "widget_not_found" || event.reason === "origin_not_allowed") { stop(); return; }
      }
      scheduleReconnect();
    };
    socket.onerror = function () { /* onclose follows */ };
  }

  function armWatchdog() {
    // A connection silent for three heartbeats is dead even if the browser has not noticed.
    window.clearTimeout(state.watchdog);
    state.watchdog = window.setTimeout(function () {
      if (state.socket) state.socket.close();
    }, state.heartbeatSeconds * 3000 + 2000);
  }

  function scheduleReconnect() {
    if (!state.token || state.stopped) return;
    var wait = backoff(state.socketAttempts++);
    if (state.socketAttempts > 1) ui.connection.hidden = false;
    window.clearTimeout(state.socketTimer);
    state.socketTimer = window.setTimeout(connect, wait);
  }

  function onFrame(frame) {
    if (frame.type === "hello") {
      state.heartbeatSeconds = frame.heartbeat_seconds || 20;
      state.lastEventId = Math.max(state.lastEventId, frame.last_event_id);
      armWatchdog();
      flush(); // the network is back: send what waits
      return;
    }
    if (frame.type === "heartbeat") {
      state.lastEventId = Math.max(state.lastEventId, frame.last_event_id);
      if (state.socket) state.socket.send(JSON.stringify({ type: "pong" }));
      return;
    }
    if (frame.type === "reset") {
      loadHistory();
      return;
    }
    if (frame.type !== "event") return;
    state.lastEventId = Math.max(state.lastEventId, frame.id);
    var data = frame.data || {};
    if (frame.event === "message.added" && data.message) {
      var message = data.message;
      var isNew = !state.messages[message.id];
      state.messages[message.id] = message;
      if (message.client_id) removeFromOutbox(message.client_id);
      if (message.direction === "outbound") {
        hideTyping();
        if (isNew && (!state.open || document.visibilityState === "hidden")) {
          state.unread += 1;
          renderBadge();
        }
        scheduleRead();
      }
      renderLog();
    } else if (frame.event === "message.status") {
      var known = state.messages[data.message_id];
      if (known) {
        known.status = data.status;
        renderLog();
      }
    } else if (frame.event === "interaction.typing") {
      showTyping();
    } else if (frame.event === "interaction.changed") {
      if (state.ending) return; // the answer to "end chat" says how it ended
      var before = state.status;
      setStatus(data.status);
      if (data.status === "assigned" && before !== "assigned") addNote(t("joined"));
      if ((data.status === "closed" || data.status === "abandoned") && before !== data.status) {
        hideTyping();
        addNote(t("ended"));
      }
    }
  }

  function showTyping() {
    ui.typing.hidden = false;
    window.clearTimeout(state.typingTimer);
    state.typingTimer = window.setTimeout(hideTyping, TYPING_SHOWN_MS);
  }

  function hideTyping() {
    window.clearTimeout(state.typingTimer);
    ui.typing.hidden = true;
  }

  function stop() {
    state.stopped = true;
    ui.unavailable.textContent = t("unavailable");
    ui.unavailable.hidden = false;
    ui.composer.hidden = true;
  }

  // --- start -------------------------------------------------------------------------------

  function loadConfig(attempt) {
    var locale = script.getAttribute("data-locale") || navigator.language || "";
    return request("GET", "/config?locale=" + encodeURIComponent(locale), undefined, { anonymous: true }).then(function (config) {
      state.config = config;
      state.texts = Object.assign({}, FALLBACK_TEXTS, config.texts || {});
      applyConfig();
    }).catch(function (error) {
      // A refused origin also looks like a network failure (no CORS headers): give up after a while.
      if (isNetworkError(error) && attempt < 8) {
        return new Promise(function (resolve) { window.setTimeout(resolve, backoff(attempt)); })
          .then(function () { return loadConfig(attempt + 1); });
      }
      host.remove(); // unknown key or a page that may not use it: show nothing
      throw error;
    });
  }

  function start() {
    build();
    ui.root.hidden = true;
    loadConfig(0).then(function () {
      if (!state.config) return;
      var reopen = false;
      try { reopen = window.sessionStorage.getItem(STORE + ".open") === "1"; } catch (e) { /* ignore */ }
      var ready = state.token ? refreshSession().then(function () {
        if (!state.token) return null;
        renderLog();
        return loadHistory().then(function () {
          connect();
          flush();
        });
      }) : Promise.resolve();
      return ready.then(function () {
        showStage();
        if (reopen) setOpen(true);
      });
    }).catch(function () { /* nothing to show */ });

    window.addEventListener("online", function () {
      state.socketAttempts = 0;
      state.flushAttempts = 0;
      if (!state.socket) connect();
      window.clearTimeout(state.flushTimer);
      flush();
    });
    document.addEventListener("visibilitychange", function () {
      if (document.visibilityState === "visible") scheduleRead();
    });
  }

  if (document.body) start();
  else document.addEventListener("DOMContentLoaded", start);
})();
