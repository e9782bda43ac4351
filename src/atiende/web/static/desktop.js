/* Atiende agent desktop: hand-written, no dependencies, no build step.
 *
 * Loaded after atiende.js, whose helpers it uses through window.Atiende (strings, DOM, the
 * JSON API with CSRF, the websocket client with resume). It also defines window.AtiendeDesk,
 * the pieces the supervisor wallboard shares (channel icons, message rendering, durations,
 * the snapshot-then-events realtime loop, throttling).
 *
 * Realtime rule: after every (re)connection the page reloads its snapshot (my agent state, my
 * offers, my conversations, the open thread) and only then applies the events that arrived
 * after the hub's "hello", in order. Every handler converges (it upserts by id or refetches),
 * so an event the snapshot already reflects changes nothing.
 */
"use strict";

(() => {
  const A = window.Atiende;
  if (!A) return;
  const { t, h, $, $$, api, ApiError, errorMessage } = A;
  const LANG = document.documentElement.lang || undefined;

  // --- drawings ---------------------------------------------------------------------------

  const HANDSET =
    "M6.5 3.5h3l1.5 4-2 1.5a11 11 0 0 0 6 6l1.5-2 4 1.5v3a2 2 0 0 1-2 2A16.5 16.5 0 0 1 " +
    "4.5 5.5a2 2 0 0 1 2-2z";

  Object.assign(A.icons, {
    webchat: [
      "M4 5.5h16a1 1 0 0 1 1 1v9a1 1 0 0 1-1 1h-9l-5 4v-4H4a1 1 0 0 1-1-1v-9a1 1 0 0 1 1-1z",
    ],
    whatsapp: [
      "M4.5 19.5l1.2-3.6A8 8 0 1 1 8.3 18.6z",
      "M9 9.5c.3 2.5 2.4 4.7 5 5l1.3-1.3-1.8-1-1 .8c-.9-.4-1.6-1.1-2-2l.8-1-1-1.8z",
    ],
    telegram: ["M21 4 3 11l6 2.5L11.5 20l3-4.5L19 19z", "M9 13.5 21 4"],
    sms: ["M4 4.5h16v11H8l-4 4z", "M8 9h8M8 12h5"],
    voice: [HANDSET],
    api: ["M8.5 7 3.5 12l5 5", "M15.5 7l5 5-5 5"],
    paperclip: ["M20 11.5 12.5 19a5 5 0 0 1-7-7l8-8a3.5 3.5 0 0 1 5 5l-8 8a2 2 0 0 1-3-3l7-7"],
    send: ["M4 12 20 4l-4 16-4-6.5z", "M12 13.5 20 4"],
    lock: ["M6.5 11h11v9h-11z", "M8.5 11V8a3.5 3.5 0 0 1 7 0v3"],
    transfer: ["M4 8h14l-3.5-3.5", "M20 16H6l3.5 3.5"],
    check: ["M5 12.5l4.5 4.5L19 7.5"],
    checks: ["M2.5 12.5 6.5 16.5 15 8", "M10.5 15.5l1 1L20 8"],
    clock: ["M12 3.5a8.5 8.5 0 1 0 0 17 8.5 8.5 0 0 0 0-17z", "M12 7.5V12l3 2"],
    alert: ["M12 3.5 21 19.5H3z", "M12 10v4", "M12 16.5v.5"],
    x: ["M6 6l12 12M18 6 6 18"],
    pause: ["M9 6v12M15 6v12"],
    flag: ["M5 21V4", "M5 4.5h11l-2 4 2 4H5"],
    keyboard: ["M3 6.5h18v11H3z", "M7 10h.01M11 10h.01M15 10h.01M7 14h10"],
    eye: [
      "M2.5 12S6 5.5 12 5.5 21.5 12 21.5 12 18 18.5 12 18.5 2.5 12 2.5 12z",
      "M12 9a3 3 0 1 0 0 6 3 3 0 0 0 0-6z",
    ],
    user: ["M12 4a4 4 0 1 0 0 8 4 4 0 0 0 0-8z", "M4 20.5c0-3.9 3.6-6.5 8-6.5s8 2.6 8 6.5"],
    email: ["M3.5 6h17v12h-17z", "M3.5 6.5 12 13l8.5-6.5"],
    phone: [HANDSET],
    file: ["M6 3.5h8l4 4v13H6z", "M14 3.5v4h4"],
  });

  // --- shared with the wallboard ----------------------------------------------------------

  const CHANNELS = ["webchat", "whatsapp", "telegram", "sms", "voice", "api"];
  const shortTime = new Intl.DateTimeFormat(LANG, { hour: "2-digit", minute: "2-digit" });
  const shortDate = new Intl.DateTimeFormat(LANG, { dateStyle: "medium" });

  function readJson(id) {
    const node = document.getElementById(id);
    if (!node) return {};
    try {
      return JSON.parse(node.textContent || "{}") || {};
    } catch {
      return {};
    }
  }

  function channelLabel(channel) {
    const key = `channel_${channel}`;
    const label = t(key);
    return label === key ? channel : label;
  }

  /** The channel's drawing, with its name for screen readers and as a tooltip. */
  function channelIcon(channel) {
    return h(
      "span",
      { class: "channel-icon", "data-channel": channel, title: channelLabel(channel) },
      A.icon(CHANNELS.includes(channel) ? channel : "webchat"),
      h("span", { class: "visually-hidden" }, channelLabel(channel)),
    );
  }

  function statusLabel(status) {
    const key = `status_${status}`;
    const label = t(key);
    return label === key ? status : label;
  }

  /** 75 → "1:15", 3725 → "1:02:05". */
  function formatDuration(totalSeconds) {
    const seconds = Math.max(0, Math.floor(totalSeconds || 0));
    const hours = Math.floor(seconds / 3600);
    const minutes = Math.floor((seconds % 3600) / 60);
    const rest = String(seconds % 60).padStart(2, "0");
    return hours ? `${hours}:${String(minutes).padStart(2, "0")}:${rest}` : `${minutes}:${rest}`;
  }

  function formatSize(bytes) {
    if (bytes < 1024) return `${bytes} B`;
    if (bytes < 1024 * 1024) return `${(bytes / 1024).toFixed(0)} KB`;
    return `${(bytes / 1024 / 1024).toFixed(1)} MB`;
  }

  function clockTime(value) {
    const date = new Date(value);
    return Number.isNaN(date.getTime()) ? "" : shortTime.format(date);
  }

  /** fn at most once per `ms`: the first call runs at once, later ones once at the end. */
  function throttle(fn, ms) {
    let last = 0;
    let timer = null;
    let running = null;
    const run = async () => {
      timer = null;
      last = Date.now();
      running = Promise.resolve()
        .then(fn)
        .catch(() => {})
        .finally(() => {
          running = null;
        });
    };
    const call = () => {
      if (timer) return;
      const wait = Math.max(0, last + ms - Date.now());
      timer = setTimeout(run, wait);
    };
    call.now = () => {
      clearTimeout(timer);
      timer = null;
      return run().then(() => running);
    };
    return call;
  }

  /** Normalises a message from the API or from a message.added event. */
  function normaliseMessage(source) {
    const direction = source.direction;
    return {
      id: source.id || source.message_id,
      interaction_id: source.interaction_id,
      direction,
      author_kind: source.author_kind,
      author_user_id: source.author_user_id || source.agent_id || null,
      body: source.body || "",
      attachments: source.attachments || [],
      status:
        source.status ||
        (direction === "inbound" ? "received" : direction === "internal" ? "sent" : "pending"),
      error: source.error || null,
      created_at: source.created_at,
      client_id: source.client_id || null,
    };
  }

  const TICKS = {
    pending: "clock",
    sent: "check",
    delivered: "checks",
    read: "checks",
    failed: "alert",
  };

  function statusTick(message) {
    if (message.direction !== "outbound") return null;
    const name = TICKS[message.status] || "check";
    const label = t(`msg_${message.status}`);
    return h(
      "span",
      {
        class: `tick tick-${message.status}`,
        title: message.error ? `${label}: ${message.error}` : label,
        "data-testid": "message-status",
        "data-status": message.status,
      },
      A.icon(name),
      h("span", { class: "visually-hidden" }, label),
    );
  }

  function attachmentList(attachments) {
    if (!attachments || !attachments.length) return null;
    return h(
      "ul",
      { class: "msg-files" },
      attachments.map((file) => {
        const url = file.url || `/api/v1/attachments/${encodeURIComponent(file.id)}`;
        const isImage = String(file.content_type || "").startsWith("image/");
        return h(
          "li",
          {},
          h(
            "a",
            { href: url, target: "_blank", rel: "noopener", class: isImage ? "thumb" : "file" },
            isImage
              ? h("img", { src: url, alt: file.name || "", loading: "lazy" })
              : [A.icon("file"), h("span", {}, file.name || t("attachment"))],
            !isImage && file.size ? h("span", { class: "muted" }, formatSize(file.size)) : null,
          ),
        );
      }),
    );
  }

  /** One message of a thread: customer on the left, us on the right, notes set apart. */
  function messageNode(raw, { selfId, names } = {}) {
    const message = normaliseMessage(raw);
    const mine = message.author_user_id && message.author_user_id === selfId;
    let author;
    if (message.direction === "inbound") author = null;
    else if (message.author_kind === "system") author = t("system");
    else if (message.author_kind === "bot") author = t("bot_author");
    else if (mine) author = t("you");
    else author = (names && names[message.author_user_id]) || t("agent_author");
    const kind =
      message.direction === "internal"
        ? "note"
        : message.author_kind === "system"
          ? "system"
          : message.direction === "inbound"
            ? "in"
            : "out";
    const node = h(
      "li",
      {
        class: `msg msg-${kind}${message.status === "failed" ? " failed" : ""}`,
        "data-message-id": message.id,
        "data-direction": message.direction,
        "data-testid": "message",
      },
      kind === "note"
        ? h("span", { class: "msg-label" }, A.icon("lock"), t("note_label"))
        : null,
      h("div", { class: "msg-body" }, message.body),
      attachmentList(message.attachments),
      message.direction === "outbound" && message.status === "failed" && message.error
        ? h("div", { class: "msg-error", "data-testid": "delivery-error" }, A.icon("alert"), message.error)
        : null,
      h(
        "div",
        { class: "msg-meta" },
        author ? h("span", { class: "msg-author" }, author) : null,
        message.created_at
          ? h(
              "time",
              {
                datetime: message.created_at,
                title: A.formatDate(message.created_at, A.formats.precise),
              },
              clockTime(message.created_at),
            )
          : null,
        statusTick(message),
      ),
    );
    node.message = message;
    return node;
  }

  /** Inserts a message node into a thread list in time order (usually at the end). */
  function placeMessage(list, node) {
    const when = node.message.created_at || "";
    let before = null;
    for (let item = list.lastElementChild; item; item = item.previousElementSibling) {
      const other = item.message && item.message.created_at;
      if (!other || other <= when) break;
      before = item;
    }
    list.insertBefore(node, before);
  }

  /** The snapshot-then-events loop over atiende.js's websocket client.
   * load(): fetch the snapshot (throws to retry); apply(event): one event on top of it;
   * early(event): optional, for events replayed before the hello (the resume backlog), which
   * the snapshot already covers except for what it does not load. */
  function liveState({ status, load, apply, early }) {
    let helloSeen = false;
    let ready = false;
    let generation = 0;
    let buffer = [];
    let retry = null;

    const sync = async () => {
      const mine = ++generation;
      ready = false;
      clearTimeout(retry);
      try {
        await load();
      } catch (error) {
        if (mine !== generation) return;
        if (status) status.dataset.sync = "failed";
        retry = setTimeout(sync, 3000); // the events wait in the buffer meanwhile
        return;
      }
      if (mine !== generation) return;
      const pending = buffer;
      buffer = [];
      ready = true;
      if (status) status.dataset.sync = "ready";
      for (const event of pending) apply(event);
    };

    const client = A.connectRealtime({
      onStatus: (state, text) => {
        if (state !== "connected") helloSeen = false;
        if (status) {
          status.dataset.state = state;
          status.textContent = text;
        }
      },
      onHello: () => {
        helloSeen = true;
        buffer = [];
        sync();
      },
      onReset: () => {
        buffer = [];
        sync();
      },
      onEvent: (event) => {
        if (!helloSeen) {
          if (early) early(event);
          return;
        }
        if (ready) apply(event);
        else buffer.push(event);
      },
    });
    return { client, resync: sync };
  }

  // --- a short alert, made on the spot with the Web Audio API -----------------------------

  let audio = null;
  function audioContext() {
    if (audio) return audio;
    const Context = window.AudioContext || window.webkitAudioContext;
    if (!Context) return null;
    try {
      audio = new Context();
    } catch {
      audio = null;
    }
    return audio;
  }
  // Browsers start sound only after a gesture: the first click or key wakes the context.
  function wakeAudioOnGesture() {
    const wake = () => {
      const context = audioContext();
      if (context && context.state === "suspended") context.resume().catch(() => {});
    };
    document.addEventListener("pointerdown", wake, { capture: true });
    document.addEventListener("keydown", wake, { capture: true });
  }

  /** Two soft rising tones (~0.3 s). Returns whether the sound could be played. */
  function beep() {
    const context = audioContext();
    if (!context) return false;
    if (context.state === "suspended") context.resume().catch(() => {});
    const start = context.currentTime + 0.01;
    [
      [660, 0],
      [990, 0.16],
    ].forEach(([frequency, offset]) => {
      const oscillator = context.createOscillator();
      const gain = context.createGain();
      oscillator.type = "sine";
      oscillator.frequency.value = frequency;
      gain.gain.setValueAtTime(0.0001, start + offset);
      gain.gain.exponentialRampToValueAtTime(0.25, start + offset + 0.02);
      gain.gain.exponentialRampToValueAtTime(0.0001, start + offset + 0.14);
      oscillator.connect(gain).connect(context.destination);
      oscillator.start(start + offset);
      oscillator.stop(start + offset + 0.15);
    });
    return true;
  }

  function toast(box, kind, text) {
    if (!box) return;
    A.showMessage(box, kind, text);
    clearTimeout(box.toastTimer);
    if (kind === "success") box.toastTimer = setTimeout(() => A.showMessage(box, "", ""), 4000);
  }

  window.AtiendeDesk = Object.freeze({
    readJson,
    channelIcon,
    channelLabel,
    statusLabel,
    formatDuration,
    formatSize,
    clockTime,
    shortDate,
    throttle,
    normaliseMessage,
    messageNode,
    placeMessage,
    liveState,
    beep,
    toast,
  });

  // --- the desktop ------------------------------------------------------------------------

  const page = $('[data-page="desktop"]');
  if (!page) return;

  const selfId = page.dataset.userId;
  wakeAudioOnGesture();
  const directory = readJson("desk-directory");
  const queues = new Map((directory.queues || []).map((q) => [q.id, q]));
  const agents = new Map((directory.agents || []).map((a) => [a.id, a]));
  const breakReasons = new Map((directory.break_reasons || []).map((r) => [r.id, r]));
  const names = () => Object.fromEntries([...agents.values()].map((a) => [a.id, a.name]));

  const message = $("[data-desk-message]", page);
  const presenceBox = $("[data-presence-box]", page);
  const presenceSelect = $("[data-presence]", page);
  const presenceTime = $("[data-presence-time]", page);
  const breakOptions = $("[data-break-options]", page);
  const offersBox = $("[data-offers]", page);
  const list = $("[data-conversations]", page);
  const listEmpty = $("[data-conversations-empty]", page);
  const listCount = $("[data-count]", page);
  const tabBadge = $("[data-tab-unread]", page);
  const threadEmpty = $("[data-thread-empty]", page);
  const thread = $("[data-thread]", page);
  const threadTitle = $("[data-thread-title]", page);
  const threadMeta = $("[data-thread-meta]", page);
  const threadNotice = $("[data-thread-notice]", page);
  const messages = $("[data-messages]", page);
  const typing = $("[data-typing]", page);
  const composer = $("[data-composer]", page);
  const input = $("textarea", composer);
  const noteToggle = $("[data-note-toggle]", composer);
  const fileInput = $("[data-file-input]", composer);
  const attachButton = $("[data-attach]", composer);
  const pendingFiles = $("[data-pending-files]", composer);
  const cannedBox = $("[data-canned]", composer);
  const profile = $("[data-profile]", page);
  const transferDialog = $("[data-transfer-dialog]", page);
  const closeDialog = $("[data-close-dialog]", page);
  const help = $("#desk-help");

  const state = {
    agent: null,
    offers: new Map(), // offer id → { offer, node, details }
    briefs: new Map(), // interaction id → InteractionBrief (my work)
    details: new Map(), // interaction id → InteractionOut (contact, queue) cache
    openId: null,
    open: null, // InteractionOut of the open thread
    openGeneration: 0,
    drafts: new Map(),
    files: [], // { key, name, size, content_type, id?, failed? }
    sending: new Map(), // client id → { node, payload, path }
  };

  // --- presence ---------------------------------------------------------------------------

  for (const reason of breakReasons.values()) {
    breakOptions.append(h("option", { value: `break:${reason.id}` }, reason.name));
  }

  const presenceValue = (agent) =>
    agent.presence === "break" ? `break:${agent.break_reason_id}` : agent.presence;

  function renderPresence() {
    const agent = state.agent;
    if (!agent) return;
    const value = presenceValue(agent);
    if (agent.presence === "break" && !$(`option[value="${CSS.escape(value)}"]`, presenceSelect)) {
      // A reason the list does not have (since deactivated, or the automatic one).
      breakOptions.append(h("option", { value }, t("presence_break")));
    }
    presenceSelect.value = value;
    presenceBox.dataset.state = agent.presence;
    const reason = agent.break_reason_id && breakReasons.get(agent.break_reason_id);
    presenceBox.title =
      agent.presence === "break"
        ? t("presence_break_reason", { reason: reason ? reason.name : "" })
        : t(`presence_${agent.presence}`);
    tickPresence();
  }

  function tickPresence() {
    if (!state.agent) return;
    const since = Date.parse(state.agent.presence_since);
    presenceTime.textContent = formatDuration((Date.now() - since) / 1000);
  }

  presenceSelect.addEventListener("change", async () => {
    const [presence, reasonId] = presenceSelect.value.split(":");
    const body = { presence };
    if (reasonId) body.break_reason_id = reasonId;
    presenceSelect.disabled = true;
    try {
      state.agent = await api("PUT", "/api/v1/me/presence", body);
      renderPresence();
    } catch (error) {
      toast(message, "error", errorMessage(error));
      renderPresence();
    } finally {
      presenceSelect.disabled = false;
    }
  });

  // --- details of interactions (contact and queue names) ------------------------------------

  async function detailsOf(interactionId, { fresh = false } = {}) {
    if (!fresh && state.details.has(interactionId)) return state.details.get(interactionId);
    try {
      const details = await api("GET", `/api/v1/interactions/${interactionId}`);
      state.details.set(interactionId, details);
      return details;
    } catch {
      return state.details.get(interactionId) || null;
    }
  }

  const contactName = (details) => {
    const contact = details && details.contact;
    return (contact && (contact.name || contact.email || contact.phone)) || t("unknown_contact");
  };

  const queueName = (queueId, details) =>
    (details && details.queue && details.queue.name) ||
    (queueId && queues.get(queueId) && queues.get(queueId).name) ||
    t("unknown_queue");

  // --- offers -----------------------------------------------------------------------------

  function renderOfferCount() {
    const count = state.offers.size;
    offersBox.hidden = count === 0;
    document.title = count
      ? `(${count}) ${t("offer_title")} · ${page.dataset.title}`
      : `${page.dataset.title}`;
  }

  function addOffer(offer, { sound }) {
    if (state.offers.has(offer.id)) return;
    const entry = { offer, details: null };
    const countdown = h("span", { class: "offer-countdown", "data-countdown": "" });
    const bar = h("span", { class: "offer-bar" }, h("span", { class: "offer-bar-fill" }));
    const contact = h("strong", { class: "offer-contact" }, t("unknown_contact"));
    const channel = h("span", { class: "offer-channel" });
    const queue = h("span", { class: "offer-queue" });
    const accept = h(
      "button",
      { type: "button", class: "button primary small", "data-accept": "" },
      A.icon("check"),
      t("accept"),
    );
    const reject = h(
      "button",
      { type: "button", class: "button small", "data-reject": "" },
      A.icon("x"),
      t("reject"),
    );
    // A call is accepted by answering the phone (call control then accepts the offer); with
    // auto-answer on, the phone picks up by itself.
    const onPhoneLabel = h("span", {}, t("answer_on_phone"));
    const onPhone = h(
      "p",
      { class: "offer-phone", "data-testid": "answer-on-phone", hidden: true },
      A.icon("phone"),
      onPhoneLabel,
    );
    const title = h("span", { class: "offer-title" }, t("offer_title"));
    const node = h(
      "article",
      {
        class: "offer",
        role: "alertdialog",
        "aria-label": t("offer_title"),
        "data-offer-id": offer.id,
        "data-interaction-id": offer.interaction_id,
        "data-testid": "offer",
      },
      h("header", { class: "offer-head" }, title, countdown),
      h("div", { class: "offer-body" }, channel, h("div", { class: "offer-text" }, contact, queue)),
      bar,
      h("div", { class: "offer-actions" }, onPhone, reject, accept),
    );
    entry.node = node;
    entry.renderPhone = () => {
      onPhoneLabel.textContent = t(autoAnswer.on ? "answer_by_itself" : "answer_on_phone");
      onPhone.dataset.autoAnswer = String(autoAnswer.on);
    };
    entry.fill = (details) => {
      const channelName = offer.channel || (details && details.channel) || "webchat";
      channel.replaceChildren(channelIcon(channelName));
      const name = details ? contactName(details) : t("unknown_contact");
      contact.textContent = name;
      queue.textContent = `${channelLabel(channelName)} · ${queueName(offer.queue_id, details)}`;
      const voice = channelName === "voice";
      node.classList.toggle("offer-voice", voice);
      title.textContent = t(voice ? "offer_call_title" : "offer_title");
      onPhone.hidden = !voice;
      accept.hidden = voice;
      entry.renderPhone();
    };
    entry.fill(null);
    accept.addEventListener("click", () => respond(offer.id, "accept"));
    reject.addEventListener("click", () => respond(offer.id, "reject"));
    state.offers.set(offer.id, entry);
    offersBox.append(node);
    tickOffer(entry);
    renderOfferCount();
    detailsOf(offer.interaction_id).then((details) => {
      if (state.offers.get(offer.id) === entry && details) {
        entry.details = details;
        entry.fill(details);
      }
    });
    if (sound) page.dataset.beeps = String(Number(page.dataset.beeps || 0) + (beep() ? 1 : 0));
  }

  function removeOffer(offerId) {
    const entry = state.offers.get(offerId);
    if (!entry) return;
    state.offers.delete(offerId);
    entry.node.remove();
    renderOfferCount();
  }

  function tickOffer(entry) {
    const expires = Date.parse(entry.offer.expires_at);
    if (!entry.shownAt) entry.shownAt = Date.now();
    const created = Date.parse(entry.offer.created_at || "") || entry.shownAt;
    const left = Math.max(0, (expires - Date.now()) / 1000);
    const total = Math.max(1, (expires - created) / 1000);
    $("[data-countdown]", entry.node).textContent =
      left > 0 ? t("offer_expires", { seconds: Math.ceil(left) }) : t("offer_expired");
    $(".offer-bar-fill", entry.node).style.width = `${Math.min(100, (100 * left) / total)}%`;
    entry.node.classList.toggle("urgent", left <= 5);
    // The server closes it (offer.closed); if that never comes, stop showing it after a while.
    if (left <= 0 && Date.now() - expires > 5000) removeOffer(entry.offer.id);
  }

  async function respond(offerId, action) {
    const entry = state.offers.get(offerId);
    if (!entry) return;
    if (action === "accept" && entry.node.classList.contains("offer-voice")) return;
    for (const button of $$("button", entry.node)) button.disabled = true;
    try {
      const result = await api("POST", `/api/v1/offers/${offerId}/${action}`);
      removeOffer(offerId);
      if (action === "accept" && result) {
        state.briefs.set(result.id, result);
        await refreshList.now();
        openThread(result.id);
      }
    } catch (error) {
      toast(message, "error", errorMessage(error));
      if (error instanceof ApiError && [404, 409].includes(error.status)) removeOffer(offerId);
      else for (const button of $$("button", entry.node)) button.disabled = false;
    }
  }

  const oldestOffer = () => state.offers.values().next().value;

  // --- my conversations -------------------------------------------------------------------

  async function loadList() {
    const briefs = await api("GET", "/api/v1/me/interactions");
    const ids = new Set(briefs.map((b) => b.id));
    state.briefs = new Map(briefs.map((b) => [b.id, b]));
    await Promise.all(briefs.filter((b) => !state.details.has(b.id)).map((b) => detailsOf(b.id)));
    renderList();
    if (state.openId && !ids.has(state.openId)) leftMyWork(state.openId);
  }
  const refreshList = throttle(loadList, 300);

  function renderList() {
    const items = [...state.briefs.values()].map((brief) => {
      const details = state.details.get(brief.id);
      const unread = state.openId === brief.id && !document.hidden ? 0 : brief.unread_count;
      const preview = (details && details.last_preview) || "";
      return h(
        "li",
        {},
        h(
          "button",
          {
            type: "button",
            class: `conv${state.openId === brief.id ? " active" : ""}`,
            "data-interaction-id": brief.id,
            "data-status": brief.status,
            "aria-current": state.openId === brief.id ? "true" : null,
            onclick: () => openThread(brief.id),
          },
          channelIcon(brief.channel),
          h(
            "span",
            { class: "conv-text" },
            h("span", { class: "conv-name" }, contactName(details)),
            h(
              "span",
              { class: "conv-meta" },
              brief.status === "wrap_up"
                ? h("span", { class: "badge warn" }, statusLabel("wrap_up"))
                : null,
              h("span", {}, queueName(brief.queue_id, details)),
              preview ? h("span", { class: "conv-preview" }, preview) : null,
            ),
          ),
          h(
            "span",
            { class: "conv-side" },
            brief.last_message_at
              ? h("time", { datetime: brief.last_message_at }, clockTime(brief.last_message_at))
              : null,
            unread
              ? h(
                  "span",
                  {
                    class: "unread",
                    "data-testid": "unread",
                    title: t("unread", { count: unread }),
                  },
                  String(unread),
                )
              : null,
          ),
        ),
      );
    });
    const focused = document.activeElement?.closest("[data-interaction-id]");
    const focusedId = focused && list.contains(focused) ? focused.dataset.interactionId : null;
    list.replaceChildren(...items);
    if (focusedId) $(`[data-interaction-id="${CSS.escape(focusedId)}"]`, list)?.focus();
    listEmpty.hidden = items.length > 0;
    listCount.textContent = items.length ? String(items.length) : "";
    const unreadTotal = [...state.briefs.values()].reduce(
      (sum, b) => sum + (state.openId === b.id ? 0 : b.unread_count || 0),
      0,
    );
    tabBadge.textContent = unreadTotal ? String(unreadTotal) : "";
    tabBadge.hidden = !unreadTotal;
  }

  function move(step) {
    const ids = [...state.briefs.keys()];
    if (!ids.length) return;
    const at = ids.indexOf(state.openId);
    const next = ids[(at + step + ids.length) % ids.length];
    openThread(next);
  }

  // --- the thread -------------------------------------------------------------------------

  function setTab(tab) {
    page.dataset.tab = tab;
    for (const button of $$("[data-tab-button]", page)) {
      button.setAttribute("aria-selected", String(button.dataset.tabButton === tab));
    }
  }
  for (const button of $$("[data-tab-button]", page)) {
    button.addEventListener("click", () => setTab(button.dataset.tabButton));
  }

  function saveDraft() {
    if (state.openId) state.drafts.set(state.openId, input.value);
  }

  async function openThread(id, { quiet = false } = {}) {
    if (state.openId !== id) {
      saveDraft();
      hideCall();
      state.openId = id;
      state.open = null;
      messages.replaceChildren();
      input.value = state.drafts.get(id) || "";
      closeCanned();
    }
    const generation = ++state.openGeneration;
    threadEmpty.hidden = true;
    thread.hidden = false;
    thread.dataset.interactionId = id;
    renderList();
    if (!quiet) setTab("thread");
    try {
      const [details, history] = await Promise.all([
        api("GET", `/api/v1/interactions/${id}`),
        api("GET", `/api/v1/interactions/${id}/messages`),
      ]);
      if (generation !== state.openGeneration) return;
      state.details.set(id, details);
      state.open = details;
      renderThreadHead();
      syncCall(details);
      const known = new Set($$("[data-message-id]", messages).map((n) => n.dataset.messageId));
      for (const item of history) {
        if (known.has(String(item.id))) updateMessage(item);
        else placeMessage(messages, messageNode(item, { selfId, names: names() }));
      }
      scrollToEnd(true);
      markRead();
      loadProfile(details);
      renderList();
    } catch (error) {
      if (generation !== state.openGeneration) return;
      if (error instanceof ApiError && error.status === 404) leftMyWork(id);
      else toast(message, "error", errorMessage(error));
    }
  }

  function renderThreadHead() {
    const details = state.open;
    if (!details) return;
    const brief = state.briefs.get(details.id);
    const status = brief ? brief.status : details.status;
    threadTitle.replaceChildren(channelIcon(details.channel), h("span", {}, contactName(details)));
    const parts = [
      channelLabel(details.channel),
      queueName(details.queue && details.queue.id, details),
      statusLabel(status),
    ];
    threadMeta.replaceChildren(
      h("span", {}, parts.join(" · ")),
      h("span", { "data-wrap-left": "" }),
    );
    thread.dataset.status = status;
    const working = status === "assigned" || status === "wrap_up";
    showComposer(working);
    threadNotice.hidden = working;
    if (!working) {
      const ended = status === "closed" || status === "abandoned";
      threadNotice.textContent = t(ended ? "thread_closed" : "thread_left");
    }
    $("[data-action=wrap-up]", page).disabled = status !== "assigned";
    $("[data-action=transfer]", page).disabled = status !== "assigned";
    $("[data-action=close]", page).disabled = !working;
    tickWrapUp();
    if (call.data) renderCall();
  }

  function tickWrapUp() {
    const details = state.open;
    const holder = $("[data-wrap-left]", threadMeta);
    if (!details || !holder) return;
    const brief = state.briefs.get(details.id);
    const until = (brief && brief.wrap_up_until) || details.wrap_up_until;
    if ((brief ? brief.status : details.status) !== "wrap_up" || !until) {
      holder.textContent = "";
      return;
    }
    const left = (Date.parse(until) - Date.now()) / 1000;
    holder.textContent = ` · ${t("wrap_up_left", { time: formatDuration(left) })}`;
  }

  /** The open conversation is no longer mine (transferred, closed, taken back). */
  function leftMyWork(id) {
    if (state.openId !== id) return;
    const details = state.open;
    if (details && (details.status === "assigned" || details.status === "wrap_up")) {
      details.status = "left";
    }
    composer.hidden = true;
    picker.hidden = true;
    threadNotice.hidden = false;
    const ended = details && (details.status === "closed" || details.status === "abandoned");
    threadNotice.textContent = t(ended ? "thread_closed" : "thread_left");
    for (const action of $$("[data-action]", page)) action.disabled = true;
    if (!ended) hideCall(); // transferred or taken back: the call is someone else's now
  }

  function clearThread() {
    saveDraft();
    hideCall();
    state.openId = null;
    state.open = null;
    thread.hidden = true;
    threadEmpty.hidden = false;
    messages.replaceChildren();
    profileShow(null);
    renderList();
  }

  function scrollToEnd(force) {
    const nearEnd = messages.scrollHeight - messages.scrollTop - messages.clientHeight < 120;
    if (force || nearEnd) messages.scrollTop = messages.scrollHeight;
  }

  function updateMessage(raw) {
    const node = $(`[data-message-id="${CSS.escape(String(raw.id || raw.message_id))}"]`, messages);
    if (!node) return false;
    // A whole message (from the API) replaces what is shown; a status change only its tick.
    const merged = raw.direction
      ? normaliseMessage(raw)
      : Object.assign({}, node.message, { status: raw.status, error: raw.error || null });
    const fresh = messageNode(merged, { selfId, names: names() });
    node.replaceWith(fresh);
    return true;
  }

  function addThreadMessage(event) {
    const data = event.data;
    const id = String(data.message_id);
    if ($(`[data-message-id="${CSS.escape(id)}"]`, messages)) return;
    // My own message, still shown as "sending": adopt it instead of showing it twice.
    if (data.agent_id === selfId) {
      for (const [clientId, sending] of state.sending) {
        if (!sending.node.isConnected || sending.messageId) continue;
        const body = sending.body ?? sending.payload.body; // a template's: its rendered text
        if (body === data.body && sending.direction === data.direction) {
          sending.messageId = id;
          const node = messageNode(data, { selfId, names: names() });
          sending.node.replaceWith(node);
          sending.node = node;
          state.sending.delete(clientId);
          return;
        }
      }
    }
    placeMessage(messages, messageNode(data, { selfId, names: names() }));
    scrollToEnd(data.agent_id === selfId);
    if (data.direction === "inbound") typing.hidden = true;
  }

  const markRead = throttle(async () => {
    const id = state.openId;
    const brief = id && state.briefs.get(id);
    if (!brief || document.hidden) return;
    if (!brief.unread_count) return;
    await api("POST", `/api/v1/interactions/${id}/read`);
    brief.unread_count = 0;
    renderList();
  }, 1000);
  document.addEventListener("visibilitychange", () => markRead());

  // --- the customer panel -----------------------------------------------------------------

  function profileShow(contact, currentId) {
    const empty = $("[data-profile-empty]", profile);
    const body = $("[data-profile-body]", profile);
    empty.hidden = Boolean(contact);
    body.hidden = !contact;
    if (!contact) return;
    $("[data-profile-name]", profile).textContent = contactName({ contact });
    $("[data-profile-avatar]", profile).textContent = (contact.name || "?").slice(0, 1);
    const facts = [];
    if (contact.email) facts.push(h("li", {}, A.icon("email"), h("span", {}, contact.email)));
    if (contact.phone) {
      facts.push(
        h(
          "li",
          {},
          A.icon("phone"),
          h("span", {}, contact.phone),
          dialButton(contact.phone, contact.id),
        ),
      );
    }
    $("[data-profile-facts]", profile).replaceChildren(...facts);
    const identities = (contact.identities || []).map((identity) =>
      h(
        "li",
        { "data-kind": identity.kind },
        h("span", { class: "identity-kind" }, t(`identity_${identity.kind}`)),
        h(
          "span",
          { class: "identity-value" },
          identity.value,
          // The profile's own phone has its button above.
          identity.kind === "phone" && identity.value !== contact.phone
            ? dialButton(identity.value, contact.id)
            : null,
        ),
      ),
    );
    $("[data-identities]", profile).replaceChildren(
      ...(identities.length ? identities : [h("li", { class: "muted" }, t("none"))]),
    );
    const history = (contact.history || []).map((entry) =>
      h(
        "li",
        { class: entry.id === currentId ? "current" : "", "data-interaction-id": entry.id },
        channelIcon(entry.channel),
        h(
          "span",
          { class: "history-text" },
          h(
            "span",
            { class: "history-title" },
            entry.id === currentId
              ? t("history_current")
              : entry.subject || entry.queue_name || channelLabel(entry.channel),
          ),
          h(
            "span",
            { class: "muted" },
            [
              statusLabel(entry.status),
              entry.agent_name,
              shortDate.format(new Date(entry.created_at)),
            ]
              .filter(Boolean)
              .join(" · "),
          ),
        ),
      ),
    );
    $("[data-history]", profile).replaceChildren(
      ...(history.length ? history : [h("li", { class: "muted" }, t("none"))]),
    );
  }

  async function loadProfile(details) {
    const fallback = Object.assign({ identities: [], history: [] }, details.contact);
    try {
      const contact = await api("GET", `/api/v1/contacts/${details.contact.id}`);
      if (state.openId === details.id) profileShow(contact, details.id);
    } catch {
      if (state.openId === details.id) profileShow(fallback, details.id);
    }
  }

  // --- the composer -----------------------------------------------------------------------

  const newClientId = () =>
    window.crypto && typeof window.crypto.randomUUID === "function"
      ? window.crypto.randomUUID()
      : `${Date.now().toString(36)}-${Math.random().toString(36).slice(2, 12)}`;

  function setNoteMode(on) {
    noteToggle.checked = on;
    composer.classList.toggle("note-mode", on);
    input.placeholder = t(on ? "placeholder_note" : "placeholder_reply");
    attachButton.classList.toggle("disabled", on);
    fileInput.disabled = on;
  }
  noteToggle.addEventListener("change", () => setNoteMode(noteToggle.checked));

  async function upload(file) {
    const entry = { key: newClientId(), name: file.name, size: file.size, content_type: file.type };
    state.files.push(entry);
    renderFiles();
    const form = new FormData();
    form.append("file", file, file.name);
    try {
      const response = await fetch("/api/v1/attachments", {
        method: "POST",
        headers: { Accept: "application/json", "X-CSRF-Token": A.csrfToken() },
        credentials: "same-origin",
        body: form,
      });
      const body = await response.json().catch(() => null);
      if (!response.ok) throw new ApiError(response.status, body);
      Object.assign(entry, {
        id: body.id,
        name: body.name,
        size: body.size,
        content_type: body.content_type,
      });
    } catch (error) {
      entry.failed = true;
      toast(message, "error", `${t("upload_failed", { name: file.name })} ${errorMessage(error)}`);
      state.files = state.files.filter((f) => f !== entry);
    }
    renderFiles();
  }

  function renderFiles() {
    pendingFiles.replaceChildren(
      ...state.files.map((file) =>
        h(
          "span",
          { class: `file-chip${file.id ? "" : " uploading"}`, "data-testid": "pending-file" },
          A.icon("paperclip"),
          h("span", { class: "file-name" }, file.name),
          h("span", { class: "muted" }, file.id ? formatSize(file.size) : t("uploading")),
          h(
            "button",
            {
              type: "button",
              class: "chip-remove",
              title: t("remove"),
              "aria-label": t("remove"),
              onclick: () => {
                state.files = state.files.filter((f) => f !== file);
                renderFiles();
              },
            },
            A.icon("x"),
          ),
        ),
      ),
    );
    pendingFiles.hidden = state.files.length === 0;
  }

  fileInput.addEventListener("change", () => {
    for (const file of Array.from(fileInput.files || [])) upload(file);
    fileInput.value = "";
  });
  input.addEventListener("paste", (event) => {
    const files = Array.from((event.clipboardData && event.clipboardData.files) || []);
    if (!files.length || noteToggle.checked) return;
    event.preventDefault();
    for (const file of files) upload(file);
  });

  async function post(sending) {
    sending.node.classList.remove("failed");
    $(".msg-retry", sending.node)?.remove();
    try {
      const stored = await api("POST", sending.path, sending.payload);
      state.sending.delete(sending.payload.client_id);
      const existing = $(`[data-message-id="${CSS.escape(String(stored.id))}"]`, messages);
      if (existing && existing !== sending.node) sending.node.remove();
      else if (sending.node.isConnected) {
        // A template's answer is short (id, body, status): the local message fills the rest.
        const node = messageNode(Object.assign({}, sending.node.message, stored), {
          selfId,
          names: names(),
        });
        sending.node.replaceWith(node);
      }
    } catch (error) {
      if (
        error instanceof ApiError &&
        error.code === "whatsapp_window_closed" &&
        sending.interactionId &&
        !sending.template
      ) {
        // Nothing was stored: the text waits as the draft, the composer offers templates.
        sending.node.remove();
        state.sending.delete(sending.payload.client_id);
        if (state.openId === sending.interactionId) {
          if (!input.value) input.value = sending.payload.body;
        } else if (!state.drafts.get(sending.interactionId)) {
          state.drafts.set(sending.interactionId, sending.payload.body);
        }
        windowClosed(sending.interactionId);
        return;
      }
      sending.node.classList.add("failed");
      sending.node.append(
        h(
          "button",
          { type: "button", class: "msg-retry link", onclick: () => post(sending) },
          `${sendProblem(error)} ${t("retry")}`,
        ),
      );
    }
  }

  function send() {
    const id = state.openId;
    if (!id || composer.hidden) return;
    const note = noteToggle.checked;
    if (!note && state.files.some((f) => !f.id)) {
      toast(message, "error", t("wait_uploads"));
      return;
    }
    const body = input.value.trim();
    const files = note ? [] : state.files.filter((f) => f.id);
    if (!body && !files.length) return;
    const clientId = newClientId();
    const payload = note
      ? { body, client_id: clientId }
      : { body, attachment_ids: files.map((f) => f.id), client_id: clientId };
    const direction = note ? "internal" : "outbound";
    const node = messageNode(
      {
        id: `local-${clientId}`,
        direction,
        author_kind: "agent",
        author_user_id: selfId,
        body,
        attachments: files,
        status: "pending",
        created_at: new Date().toISOString(),
      },
      { selfId },
    );
    node.classList.add("sending");
    messages.append(node);
    scrollToEnd(true);
    const sending = {
      node,
      payload,
      direction,
      interactionId: id,
      path: `/api/v1/interactions/${id}/${note ? "notes" : "messages"}`,
    };
    state.sending.set(clientId, sending);
    input.value = "";
    state.drafts.delete(id);
    if (!note) {
      state.files = [];
      renderFiles();
    }
    closeCanned();
    post(sending);
  }

  composer.addEventListener("submit", (event) => {
    event.preventDefault();
    send();
  });

  async function refreshMessage(interactionId, messageId) {
    try {
      const stored = await api("GET", `/api/v1/interactions/${interactionId}/messages/${messageId}`);
      if (state.openId === interactionId) updateMessage(stored);
    } catch {
      // the tick already shows the failure; the reason comes with the next thread load
    }
  }

  // --- WhatsApp after 24 hours: approved templates only ---------------------------------------

  // WhatsApp accepts only approved templates once the customer has been silent for 24 hours;
  // the server answers a plain reply with 409 whatsapp_window_closed, and the composer turns
  // into a template picker for that conversation until the customer writes again.
  const TEMPLATE_STRINGS = readJson("i18n-templates");
  const tt = (key, values) =>
    key in TEMPLATE_STRINGS ? A.fillIn(TEMPLATE_STRINGS[key], values) : t(key, values);
  const picker = $("[data-template-picker]", page);
  const templateSelect = $("[data-testid=template-select]", picker);
  const templateParams = $("[data-template-params]", picker);
  const templatePreview = $("[data-template-preview]", picker);
  const pickerMessage = $("[data-form-message]", picker);
  const closedWindows = new Set(); // interaction ids
  const picking = { id: null, templates: [], generation: 0 };
  const PLACEHOLDER = /\{\{\s*(\d+)\s*\}\}/g;

  /** errorMessage, plus the sentences of the template errors. */
  function sendProblem(error) {
    const key = error instanceof ApiError ? `error_${error.code}` : "";
    return key in TEMPLATE_STRINGS ? tt(key) : errorMessage(error);
  }

  function showComposer(working) {
    const templates = working && closedWindows.has(state.openId);
    composer.hidden = !working || templates;
    picker.hidden = !templates;
    if (templates && picking.id !== state.openId) loadTemplates(state.openId);
  }

  function windowClosed(interactionId) {
    closedWindows.add(interactionId);
    picking.id = null; // load the list afresh
    if (state.openId === interactionId) renderThreadHead();
  }

  function windowReopened(interactionId) {
    if (!closedWindows.delete(interactionId)) return;
    if (state.openId === interactionId) {
      renderThreadHead();
      input.value = state.drafts.get(interactionId) || input.value;
    }
  }

  function chosenTemplate() {
    return picking.templates[Number(templateSelect.value)] || null;
  }

  function parameterValues() {
    return $$("[data-param]", templateParams).map((field) => field.value.trim());
  }

  function renderPreview() {
    const template = chosenTemplate();
    if (!template) {
      templatePreview.replaceChildren();
      return;
    }
    const values = parameterValues();
    const parts = [];
    let last = 0;
    for (const match of template.body.matchAll(PLACEHOLDER)) {
      parts.push(template.body.slice(last, match.index));
      const value = values[Number(match[1]) - 1];
      parts.push(value ? value : h("mark", {}, match[0]));
      last = match.index + match[0].length;
    }
    parts.push(template.body.slice(last));
    templatePreview.replaceChildren(...parts);
  }

  function renderParameters() {
    const template = chosenTemplate();
    const count = template ? template.parameter_count : 0;
    templateParams.replaceChildren(
      ...Array.from({ length: count }, (_, index) =>
        h(
          "label",
          { class: "field" },
          h("span", { class: "field-label" }, tt("parameter", { n: index + 1 })),
          h("input", {
            name: `param-${index + 1}`,
            "data-param": index + 1,
            "data-testid": "template-param",
            maxlength: 1000,
            required: true,
            autocomplete: "off",
            oninput: () => {
              A.clearFieldErrors(picker);
              A.showMessage(pickerMessage, "", "");
              renderPreview();
            },
          }),
        ),
      ),
    );
    renderPreview();
  }

  async function loadTemplates(interactionId) {
    const generation = ++picking.generation;
    picking.id = interactionId;
    picking.templates = [];
    A.showMessage(pickerMessage, "", "");
    templateSelect.replaceChildren(h("option", { value: "" }, tt("loading")));
    renderParameters();
    try {
      const templates = await api("GET", `/api/v1/interactions/${interactionId}/templates`);
      if (generation !== picking.generation) return;
      picking.templates = templates;
      templateSelect.replaceChildren(
        ...templates.map((template, index) =>
          h("option", { value: index }, `${template.name} (${template.language})`),
        ),
      );
      if (!templates.length) A.showMessage(pickerMessage, "error", tt("no_templates"));
    } catch (error) {
      if (generation !== picking.generation) return;
      picking.id = null;
      templateSelect.replaceChildren();
      A.showMessage(pickerMessage, "error", sendProblem(error));
    }
    renderParameters();
  }

  function sendTemplate() {
    const id = state.openId;
    const template = chosenTemplate();
    if (!id || picker.hidden || !template || picking.id !== id) return;
    A.showMessage(pickerMessage, "", "");
    const parameters = parameterValues();
    if (!A.checkForm(picker)) {
      A.showMessage(pickerMessage, "error", tt("fill_parameters"));
      return;
    }
    const clientId = newClientId();
    const node = messageNode(
      {
        id: `local-${clientId}`,
        direction: "outbound",
        author_kind: "agent",
        author_user_id: selfId,
        body: templatePreview.textContent,
        status: "pending",
        created_at: new Date().toISOString(),
      },
      { selfId },
    );
    node.classList.add("sending");
    messages.append(node);
    scrollToEnd(true);
    const sending = {
      node,
      payload: { name: template.name, language: template.language, parameters, client_id: clientId },
      direction: "outbound",
      interactionId: id,
      template: true,
      body: node.message.body,
      path: `/api/v1/interactions/${id}/template`,
    };
    state.sending.set(clientId, sending);
    for (const field of $$("[data-param]", templateParams)) field.value = "";
    renderPreview();
    post(sending);
  }

  picker.addEventListener("submit", (event) => {
    event.preventDefault();
    sendTemplate();
  });
  templateSelect.addEventListener("change", renderParameters);
  $("[data-template-cancel]", picker).addEventListener("click", () => {
    // The customer may have written meanwhile: the next reply finds out.
    windowReopened(state.openId);
    input.focus();
  });

  // --- canned responses: "/shortcut" ----------------------------------------------------------

  const canned = { items: [], active: 0, token: null, request: 0 };

  function cannedToken() {
    const before = input.value.slice(0, input.selectionStart);
    const found = before.match(/(?:^|\s)\/([^\s/]*)$/);
    return found ? found[1] : null;
  }

  function closeCanned() {
    canned.items = [];
    canned.token = null;
    cannedBox.hidden = true;
    cannedBox.replaceChildren();
    input.removeAttribute("aria-activedescendant");
  }

  function renderCanned() {
    if (!canned.items.length) {
      cannedBox.replaceChildren(h("p", { class: "muted canned-none" }, t("canned_none")));
      cannedBox.hidden = false;
      return;
    }
    cannedBox.replaceChildren(
      ...canned.items.map((item, index) =>
        h(
          "div",
          {
            id: `canned-${index}`,
            role: "option",
            class: `canned-item${index === canned.active ? " active" : ""}`,
            "aria-selected": String(index === canned.active),
            "data-testid": "canned-option",
            onmousedown: (event) => {
              event.preventDefault(); // keep the focus in the text
              insertCanned(index);
            },
          },
          h("code", {}, `/${item.shortcut}`),
          h("span", { class: "canned-body" }, item.body),
        ),
      ),
    );
    cannedBox.hidden = false;
    input.setAttribute("aria-activedescendant", `canned-${canned.active}`);
  }

  const lookUpCanned = throttle(async () => {
    const token = cannedToken();
    if (token === null) {
      closeCanned();
      return;
    }
    const request = ++canned.request;
    const query = new URLSearchParams({ q: `/${token}`, limit: "8" });
    const items = await api("GET", `/api/v1/canned-responses?${query}`).catch(() => []);
    if (request !== canned.request || cannedToken() !== token) return;
    // Shortcuts that start with what was typed first, then replies that only contain it.
    const starts = (item) => item.shortcut.toLowerCase().startsWith(token.toLowerCase());
    canned.items = items.filter(starts).concat(items.filter((item) => !starts(item)));
    canned.active = 0;
    canned.token = token;
    renderCanned();
  }, 150);

  function insertCanned(index) {
    const item = canned.items[index];
    if (!item) return;
    const caret = input.selectionStart;
    const before = input.value.slice(0, caret).replace(/\/[^\s/]*$/, "");
    const after = input.value.slice(caret);
    input.value = before + item.body + after;
    const at = (before + item.body).length;
    input.setSelectionRange(at, at);
    closeCanned();
    input.focus();
  }

  // The customer sees "the agent is typing" (webchat): a pulse at most every 3 s while the
  // agent types a reply (never for an internal note); a lost pulse only costs the indicator.
  let lastTypingPulse = 0;
  function pulseTyping() {
    const id = state.openId;
    if (!id || noteToggle.checked || !input.value.trim()) return;
    if (Date.now() - lastTypingPulse < 3000) return;
    lastTypingPulse = Date.now();
    api("POST", `/api/v1/interactions/${id}/typing`).catch(() => {});
  }

  input.addEventListener("input", () => {
    if (cannedToken() === null) closeCanned();
    else lookUpCanned();
    pulseTyping();
  });
  input.addEventListener("blur", () => setTimeout(closeCanned, 150));

  input.addEventListener("keydown", (event) => {
    const open = !cannedBox.hidden && canned.items.length > 0;
    if (open && (event.key === "ArrowDown" || event.key === "ArrowUp")) {
      event.preventDefault();
      const step = event.key === "ArrowDown" ? 1 : -1;
      canned.active = (canned.active + step + canned.items.length) % canned.items.length;
      renderCanned();
      return;
    }
    const plain = !event.ctrlKey && !event.metaKey;
    if (open && (event.key === "Enter" || event.key === "Tab") && plain) {
      event.preventDefault();
      insertCanned(canned.active);
      return;
    }
    if (event.key === "Escape" && !cannedBox.hidden) {
      event.preventDefault();
      event.stopPropagation();
      closeCanned();
      return;
    }
    if (event.key === "Enter" && !event.isComposing) {
      if (event.ctrlKey || event.metaKey || !event.shiftKey) {
        event.preventDefault();
        send();
      }
    }
  });

  // --- transfer, wrap-up, close -------------------------------------------------------------

  function agentOptionLabel(agent) {
    return t("agent_option", { name: agent.name, state: t(`presence_${agent.presence}`) });
  }

  /** Available agents first, then by name. */
  function availableFirst(a, b) {
    return (
      Number(b.presence === "available") - Number(a.presence === "available") ||
      a.name.localeCompare(b.name)
    );
  }

  function openTransfer() {
    const details = state.open;
    if (!details || thread.dataset.status !== "assigned") return;
    const form = $("form", transferDialog);
    form.reset();
    A.showMessage($("[data-form-message]", form), "", "");
    const digital = details.channel !== "voice";
    const candidates = [...agents.values()]
      .filter((a) => a.id !== selfId && (!digital || a.licence !== "voice"))
      .sort(availableFirst);
    const agentSelect = form.elements.namedItem("agent_id");
    agentSelect.replaceChildren(
      h("option", { value: "" }, t("choose_agent")),
      ...candidates.map((a) => h("option", { value: a.id }, agentOptionLabel(a))),
    );
    const queueSelect = form.elements.namedItem("queue_id");
    queueSelect.replaceChildren(
      h("option", { value: "" }, t("choose_queue")),
      ...[...queues.values()]
        .filter((q) => !q.channels.length || q.channels.includes(details.channel))
        .map((q) => h("option", { value: q.id }, q.name)),
    );
    syncTransferTarget();
    transferDialog.showModal();
    agentSelect.focus();
  }

  function syncTransferTarget() {
    const form = $("form", transferDialog);
    const target = form.elements.namedItem("target").value;
    $("[data-target-agent]", form).hidden = target !== "agent";
    $("[data-target-queue]", form).hidden = target !== "queue";
  }
  for (const radio of $$("input[name=target]", transferDialog)) {
    radio.addEventListener("change", syncTransferTarget);
  }

  $("form", transferDialog).addEventListener("submit", async (event) => {
    event.preventDefault();
    const form = event.currentTarget;
    const box = $("[data-form-message]", form);
    const target = form.elements.namedItem("target").value;
    const value = form.elements.namedItem(target === "agent" ? "agent_id" : "queue_id").value;
    if (!value) {
      A.showMessage(box, "error", t("error_transfer_target"));
      return;
    }
    const note = form.elements.namedItem("note").value.trim();
    const body = target === "agent" ? { agent_id: value } : { queue_id: value };
    if (note) body.note = note;
    const id = state.openId;
    const submit = $("button[type=submit]", form);
    submit.disabled = true;
    try {
      await api("POST", `/api/v1/interactions/${id}/transfer`, body);
      transferDialog.close();
      toast(message, "success", t("transfer_done"));
      state.briefs.delete(id);
      leftMyWork(id);
      refreshList();
    } catch (error) {
      A.showMessage(box, "error", errorMessage(error));
    } finally {
      submit.disabled = false;
    }
  });

  async function wrapUp() {
    const id = state.openId;
    if (!id || thread.dataset.status !== "assigned") return;
    try {
      const brief = await api("POST", `/api/v1/interactions/${id}/wrap-up`);
      state.briefs.set(id, brief);
      if (state.open) {
        state.open.status = brief.status;
        state.open.wrap_up_until = brief.wrap_up_until;
      }
      renderThreadHead();
      renderList();
      toast(message, "success", t("wrap_up_started"));
    } catch (error) {
      toast(message, "error", errorMessage(error));
    }
  }

  async function openClose() {
    const details = state.open;
    if (!details || !["assigned", "wrap_up"].includes(thread.dataset.status)) return;
    const form = $("form", closeDialog);
    form.reset();
    A.showMessage($("[data-form-message]", form), "", "");
    const select = form.elements.namedItem("disposition_code");
    const field = $("[data-dispositions-field]", form);
    const none = $("[data-no-dispositions]", form);
    select.replaceChildren(h("option", { value: "" }, t("loading")));
    field.hidden = false;
    none.hidden = true;
    closeDialog.showModal();
    let dispositions = [];
    if (details.queue) {
      try {
        dispositions = await api("GET", `/api/v1/queues/${details.queue.id}/dispositions`);
      } catch {
        dispositions = [];
      }
    }
    select.replaceChildren(
      h("option", { value: "" }, t("choose_disposition")),
      ...dispositions.map((d) => h("option", { value: d.code }, d.label || d.code)),
    );
    select.required = dispositions.length > 0;
    field.hidden = dispositions.length === 0;
    none.hidden = dispositions.length > 0;
    (dispositions.length ? select : $("button[type=submit]", form)).focus();
  }

  $("form", closeDialog).addEventListener("submit", async (event) => {
    event.preventDefault();
    const form = event.currentTarget;
    const box = $("[data-form-message]", form);
    const select = form.elements.namedItem("disposition_code");
    if (select.required && !select.value) {
      A.showMessage(box, "error", t("error_disposition_required"));
      select.focus();
      return;
    }
    const id = state.openId;
    const submit = $("button[type=submit]", form);
    submit.disabled = true;
    try {
      await api("POST", `/api/v1/interactions/${id}/close`, {
        disposition_code: select.value || null,
      });
      closeDialog.close();
      toast(message, "success", t("closed_done"));
      state.briefs.delete(id);
      state.drafts.delete(id);
      clearThread();
      refreshList();
    } catch (error) {
      A.showMessage(box, "error", errorMessage(error));
    } finally {
      submit.disabled = false;
    }
  });

  for (const button of $$("[data-dismiss]", page)) {
    button.addEventListener("click", () => button.closest("dialog").close());
  }
  $("[data-action=transfer]", page).addEventListener("click", openTransfer);
  $("[data-action=wrap-up]", page).addEventListener("click", wrapUp);
  $("[data-action=close]", page).addEventListener("click", openClose);

  // --- the phone call ---------------------------------------------------------------------

  // A voice interaction's call: who calls and which number they dialled, the controls, and
  // the recording once the call has ended. The panel follows call.updated events; every
  // button answers with the call as the server now has it.
  const callPanel = $("[data-call-panel]", page);
  const callState = $("[data-call-state]", callPanel);
  const callCaller = $("[data-call-caller]", callPanel);
  const callLine = $("[data-call-line]", callPanel);
  const callTimer = $("[data-call-timer]", callPanel);
  const keypadButton = $("[data-call-keypad]", callPanel);
  const keypad = $("[data-keypad]", callPanel);
  const recordingBox = $("[data-call-recording]", callPanel);
  const callAudio = $("[data-call-audio]", callPanel);
  // Transfers of the call itself: to an outside number (blind), or after consulting another
  // agent or a number (attended: the caller waits on hold meanwhile).
  const forwardForm = $("[data-call-forward-form]", callPanel);
  const consultForm = $("[data-call-consult-form]", callPanel);
  const CALL_FORMS = {
    forward: [$("[data-call-form=forward]", callPanel), forwardForm],
    consult: [$("[data-call-form=consult]", callPanel), consultForm],
  };
  const consultBox = $("[data-call-consult]", callPanel);
  const consultText = $("[data-call-consult-text]", callPanel);
  const forwardingNote = $("[data-call-forwarding]", callPanel);
  const call = { interactionId: null, data: null, generation: 0, busy: false };
  const TALKING = ["bridged", "on_hold"];
  // The recording button by recording state: its label and the action it asks for.
  const RECORD_BUTTON = {
    "": ["call_record", "start"],
    recording: ["call_pause_recording", "pause"],
    paused: ["call_resume_recording", "resume"],
  };

  function hideCall() {
    call.interactionId = null;
    call.data = null;
    call.generation += 1;
    callPanel.hidden = true;
    keypad.hidden = true;
    keypadButton.setAttribute("aria-expanded", "false");
    recordingBox.hidden = true;
    callAudio.removeAttribute("src");
    delete callAudio.dataset.for;
    setCallForm(null);
    consultBox.hidden = true;
    forwardingNote.hidden = true;
  }

  function syncCall(details) {
    if (details.channel !== "voice") {
      hideCall();
      return;
    }
    loadCall(details.id);
  }

  async function loadCall(interactionId) {
    const generation = ++call.generation;
    try {
      const data = await api("GET", `/api/v1/interactions/${interactionId}/call`);
      if (generation !== call.generation || state.openId !== interactionId) return;
      call.interactionId = interactionId;
      call.data = data;
      renderCall();
    } catch (error) {
      if (generation !== call.generation) return;
      if (error instanceof ApiError && error.status === 404) hideCall();
      else toast(message, "error", errorMessage(error));
    }
  }

  const refreshCall = throttle(async () => {
    const details = state.open;
    if (details && details.channel === "voice") await loadCall(details.id);
  }, 500);

  function callEnded(data) {
    return Boolean(data.ended_at) || data.state === "ended";
  }

  function callStateText(data) {
    // A call the agent placed says what it waits for (their phone, then the customer).
    const outbound = data.direction === "outbound" ? `call_state_out_${data.state}` : null;
    const key = outbound && t(outbound) !== outbound ? outbound : `call_state_${data.state}`;
    const parts = [t(key) === key ? data.state : t(key)];
    if (!callEnded(data) && data.muted) parts.push(t("call_muted"));
    if (data.recording === "recording") parts.push(t("call_recording_on"));
    if (data.recording === "paused") parts.push(t("call_recording_paused"));
    return parts.join(" · ");
  }

  function setCallButton(name, { label, action, pressed, disabled, hidden }) {
    const button = $(`[data-testid="call-${name}"]`, callPanel);
    if (label !== undefined) button.textContent = label;
    if (action !== undefined) button.dataset.callAction = action;
    if (pressed !== undefined) button.setAttribute("aria-pressed", String(pressed));
    button.disabled = Boolean(disabled) || call.busy;
    if (hidden !== undefined) button.hidden = hidden;
  }

  function renderCall() {
    const data = call.data;
    const details = state.open;
    if (!data || !details || call.interactionId !== details.id) return;
    const ended = callEnded(data);
    const talking = !ended && TALKING.includes(data.state);
    callPanel.hidden = false;
    callPanel.dataset.state = data.state;
    callPanel.dataset.onHold = String(data.on_hold);
    callPanel.dataset.muted = String(data.muted);
    callPanel.dataset.recording = data.recording || "";
    callState.textContent = callStateText(data);
    callCaller.textContent = data.caller_number || contactName(details);
    callLine.textContent =
      data.direction === "outbound"
        ? t("call_outbound")
        : [
            data.number ? t("call_called", { number: data.number }) : null,
            queueName(details.queue && details.queue.id, details),
          ]
            .filter(Boolean)
            .join(" · ");
    const consulting = !ended && data.consult ? data.consult : null;
    const assigned = thread.dataset.status === "assigned";
    const transferable = talking && !consulting && assigned;
    setCallButton("hold", {
      label: t(data.on_hold ? "call_resume" : "call_hold"),
      action: data.on_hold ? "resume" : "hold",
      pressed: data.on_hold,
      disabled: !talking || Boolean(consulting),
    });
    setCallButton("mute", {
      label: t(data.muted ? "call_unmute" : "call_mute"),
      action: data.muted ? "unmute" : "mute",
      pressed: data.muted,
      disabled: !talking,
    });
    keypadButton.disabled = ended || call.busy;
    if (ended) {
      keypad.hidden = true;
      keypadButton.setAttribute("aria-expanded", "false");
    }
    setCallButton("transfer", {
      disabled: ended || !assigned || Boolean(consulting) || data.state === "transferring",
    });
    setCallButton("forward", { disabled: !transferable });
    setCallButton("consult", { disabled: !transferable });
    if (!transferable) setCallForm(null);
    renderTransferState(data, consulting);
    setCallButton("hangup", { disabled: ended });
    const recordable = !ended && data.recording_policy !== "never";
    const record = RECORD_BUTTON[data.recording || ""];
    setCallButton("record", {
      label: record ? t(record[0]) : t("call_record"),
      hidden: !recordable || !record,
      disabled: !record || (record[1] === "start" && !data.can_start_recording),
    });
    if (record) $('[data-testid="call-record"]', callPanel).dataset.recordAction = record[1];
    // The finished recording, for those the server lets hear it (the request is audited).
    recordingBox.hidden = data.recording !== "done";
    if (data.recording === "done" && callAudio.dataset.for !== details.id) {
      callAudio.dataset.for = details.id;
      callAudio.src = `/api/v1/interactions/${encodeURIComponent(details.id)}/recording`;
    }
    tickCall();
  }

  /** A consultation under way (whom, ringing or talking, complete or cancel), or the
   * outside number the call is being sent to. */
  function renderTransferState(data, consulting) {
    consultBox.hidden = !consulting;
    if (consulting) {
      const agent = consulting.agent_id ? agents.get(consulting.agent_id) : null;
      const name = agent ? agent.name : consulting.number || "";
      const talkingTo = consulting.state === "talking";
      consultBox.dataset.state = consulting.state;
      consultText.textContent = t(talkingTo ? "call_consult_talking" : "call_consult_ringing", {
        name,
      });
      setCallButton("consult-complete", { disabled: !talkingTo });
      setCallButton("consult-cancel", {});
    }
    const forwarding = !callEnded(data) && data.state === "transferring" && data.forwarded_to;
    forwardingNote.hidden = !forwarding;
    forwardingNote.textContent = forwarding
      ? t("call_forwarding", { number: data.forwarded_to })
      : "";
  }

  /** Opens the named transfer form (closing the other one); null closes both. */
  function setCallForm(name) {
    for (const [key, [toggle, form]] of Object.entries(CALL_FORMS)) {
      const open = key === name;
      if (open && form.hidden) prepareCallForm(form);
      form.hidden = !open;
      toggle.setAttribute("aria-expanded", String(open));
    }
  }

  function prepareCallForm(form) {
    form.reset();
    for (const field of $$("[aria-invalid]", form)) field.removeAttribute("aria-invalid");
    if (form !== consultForm) return;
    const candidates = [...agents.values()].filter((a) => a.id !== selfId).sort(availableFirst);
    form.elements.namedItem("agent_id").replaceChildren(
      h("option", { value: "" }, t("choose_agent")),
      ...candidates.map((a) => h("option", { value: a.id }, agentOptionLabel(a))),
    );
    syncConsultTarget();
  }

  function syncConsultTarget() {
    const byNumber = consultForm.elements.namedItem("consult_target").value === "number";
    $("[data-consult-agent]", consultForm).hidden = byNumber;
    $("[data-consult-number]", consultForm).hidden = !byNumber;
  }

  function toggleCallForm(name) {
    const form = CALL_FORMS[name][1];
    setCallForm(form.hidden ? name : null);
    if (!form.hidden) $("select, input[type=tel]", form).focus();
  }

  /** Closes a transfer form (Cancel, Escape) and gives the focus back to its button. */
  function closeCallForm(form) {
    const [toggle] = Object.values(CALL_FORMS).find(([, f]) => f === form);
    setCallForm(null);
    if (!toggle.disabled) toggle.focus();
  }

  /** Marks the form's phone number field as wrong and puts the focus on it. */
  function badNumber(field) {
    field.setAttribute("aria-invalid", "true");
    field.focus();
  }

  const enoughDigits = (number) => number.replace(/\D/g, "").length >= 3;

  forwardForm.addEventListener("submit", async (event) => {
    event.preventDefault();
    const field = forwardForm.elements.namedItem("number");
    field.removeAttribute("aria-invalid");
    const number = field.value.trim();
    if (!enoughDigits(number)) {
      toast(message, "error", t("error_invalid_phone"));
      badNumber(field);
      return;
    }
    const refused = await callAction("forward", { number });
    if (refused === null) setCallForm(null);
    else if (refused === "invalid_phone") badNumber(field);
  });

  consultForm.addEventListener("submit", async (event) => {
    event.preventDefault();
    const byNumber = consultForm.elements.namedItem("consult_target").value === "number";
    const field = consultForm.elements.namedItem(byNumber ? "number" : "agent_id");
    field.removeAttribute("aria-invalid");
    const value = field.value.trim();
    if (!value || (byNumber && !enoughDigits(value))) {
      toast(message, "error", t(byNumber ? "error_invalid_phone" : "call_consult_choose"));
      badNumber(field);
      return;
    }
    const refused = await callAction("consult", byNumber ? { number: value } : { agent_id: value });
    if (refused === null) {
      setCallForm(null);
      const cancel = $('[data-testid="call-consult-cancel"]', consultBox);
      if (!consultBox.hidden) cancel.focus();
    } else if (refused === "invalid_phone" || refused === "agent_without_phone") badNumber(field);
  });

  for (const radio of $$("input[name=consult_target]", consultForm)) {
    radio.addEventListener("change", syncConsultTarget);
  }
  for (const form of [forwardForm, consultForm]) {
    form.addEventListener("keydown", (event) => {
      if (event.key !== "Escape") return;
      event.preventDefault();
      closeCallForm(form);
    });
  }

  function tickCall() {
    const data = call.data;
    if (!data || callPanel.hidden) return;
    const from = Date.parse(data.connected_at || data.answered_at || data.started_at);
    const to = callEnded(data) && data.ended_at ? Date.parse(data.ended_at) : Date.now();
    callTimer.textContent = Number.isNaN(from) ? "" : formatDuration((to - from) / 1000);
  }

  /** Resolves with null once the server has done it, else the refusal's code. */
  async function callAction(action, body) {
    const id = call.interactionId;
    if (!id || call.busy) return "busy";
    call.busy = true;
    renderCall();
    try {
      const data = await api("POST", `/api/v1/interactions/${id}/call/${action}`, body);
      if (call.interactionId === id && data) call.data = data;
      return null;
    } catch (error) {
      toast(message, "error", errorMessage(error));
      if (error instanceof ApiError && [404, 409].includes(error.status)) refreshCall();
      return error instanceof ApiError ? error.code : "error";
    } finally {
      call.busy = false;
      renderCall();
    }
  }

  callPanel.addEventListener("click", (event) => {
    const button = event.target.closest("button");
    if (!button || button.disabled || !callPanel.contains(button)) return;
    if (button.dataset.key) {
      callAction("dtmf", { digits: button.dataset.key });
      return;
    }
    if (button === keypadButton) {
      keypad.hidden = !keypad.hidden;
      keypadButton.setAttribute("aria-expanded", String(!keypad.hidden));
      return;
    }
    if (button.dataset.callForm) {
      toggleCallForm(button.dataset.callForm);
      return;
    }
    if (button.hasAttribute("data-call-form-close")) {
      closeCallForm(button.closest("form"));
      return;
    }
    const action = button.dataset.callAction;
    if (action === "transfer") openTransfer();
    else if (action === "record") callAction("recording", { action: button.dataset.recordAction });
    else if (action) callAction(action);
  });

  /** A call.updated event: show what it says at once, then read the call's times. */
  function callUpdated(data) {
    if (!state.open || state.open.id !== data.interaction_id) return;
    if (call.data && call.interactionId === data.interaction_id) {
      Object.assign(call.data, {
        state: data.state,
        on_hold: data.on_hold,
        muted: data.muted,
        recording: data.recording,
      });
      if ("forwarded_to" in data) call.data.forwarded_to = data.forwarded_to;
      if ("consult_state" in data) {
        call.data.consult = data.consult_state
          ? {
              agent_id: data.consult_agent_id,
              number: data.consult_number,
              state: data.consult_state,
            }
          : null;
      }
      renderCall();
    }
    refreshCall();
  }

  // --- placing calls (click-to-call) ------------------------------------------------------

  // An agent with a phone extension calls a number from the bar's dialer or from the
  // customer panel. The server rings the agent's own phone and dials the customer once it
  // is answered; the new conversation is the agent's at once and opens here.
  const dialer = $("[data-dialer]", page);
  const dialInput = $("input[name=number]", dialer);
  const dialSubmit = $("button[type=submit]", dialer);
  const dial = { canCall: false, busy: false };
  // Click-to-call's refusals speak of the agent themself (the shared sentences of another).
  const DIAL_ERRORS = new Set([
    "invalid_phone",
    "agent_without_phone",
    "pbx_not_configured",
    "pbx_choice_needed",
    "outbound_not_configured",
    "agent_at_capacity",
    "agent_unavailable",
  ]);

  function dialButton(number, contactId) {
    return h(
      "button",
      {
        type: "button",
        class: "button ghost small dial-number",
        title: t("dial_number", { number }),
        "aria-label": t("dial_number", { number }),
        "data-dial": number,
        "data-testid": "call-number",
        hidden: !dial.canCall,
        disabled: dial.busy,
        onclick: () => placeCall(number, contactId),
      },
      A.icon("phone"),
      h("span", {}, t("dial")),
    );
  }

  function renderDialing() {
    dialer.hidden = !dial.canCall;
    dialSubmit.disabled = dial.busy;
    for (const button of $$("[data-dial]", profile)) {
      button.hidden = !dial.canCall;
      button.disabled = dial.busy;
    }
  }

  /** Places the call; resolves with null when it is ringing, else the refusal's code. */
  async function placeCall(number, contactId) {
    const typed = String(number || "").trim();
    if (dial.busy) return "busy";
    if (typed.replace(/\D/g, "").length < 3) {
      toast(message, "error", t("dial_error_invalid_phone"));
      return "invalid_phone";
    }
    dial.busy = true;
    renderDialing();
    try {
      const body = { number: typed };
      if (contactId) body.contact_id = contactId;
      const placed = await api("POST", "/api/v1/calls", body);
      toast(message, "success", t("dial_answer_phone"));
      await refreshList.now();
      openThread(placed.interaction_id);
      return null;
    } catch (error) {
      const known = error instanceof ApiError && DIAL_ERRORS.has(error.code);
      toast(message, "error", known ? t(`dial_error_${error.code}`) : errorMessage(error));
      return error instanceof ApiError ? error.code : "error";
    } finally {
      dial.busy = false;
      renderDialing();
    }
  }

  dialer.addEventListener("submit", async (event) => {
    event.preventDefault();
    dialInput.removeAttribute("aria-invalid");
    const refused = await placeCall(dialInput.value);
    if (refused === null) dialInput.value = "";
    else if (refused === "invalid_phone") {
      dialInput.setAttribute("aria-invalid", "true");
      dialInput.focus();
    }
  });

  /** Only agents with a phone extension can place calls: the dialer shows for them. */
  async function loadPhone() {
    const asked = autoAnswer.changes;
    try {
      const mine = await api("GET", "/api/v1/voice/extensions/mine");
      dial.canCall = true;
      dialer.title = t("dial_from", { extension: mine.number });
      renderPhoneState(mine);
      // An answer asked for before the agent changed the setting no longer says it.
      if (asked === autoAnswer.changes && !autoAnswer.pending) renderAutoAnswer(mine);
    } catch (error) {
      // No extension (404): no dialer. Any other failure: let the server decide on a call.
      dial.canCall = !(error instanceof ApiError && error.status === 404);
      if (!dial.canCall) {
        renderPhoneState(null);
        renderAutoAnswer(null);
      }
    }
    dialer.dataset.canCall = String(dial.canCall);
    renderDialing();
  }

  // The header's phone indicator: whether the agent's extension is registered on the PBX
  // (asked again every half minute with the dialer's extension).
  const phoneState = $("[data-phone-state]", page);
  const PHONE_REFRESH_MS = 30000;

  function renderPhoneState(mine) {
    if (!phoneState) return;
    phoneState.hidden = !mine;
    if (!mine) return;
    phoneState.dataset.state = mine.state;
    phoneState.title = t("phone_extension", { extension: mine.number });
    $("[data-phone-label]", phoneState).textContent = t(`phone_${mine.state}`);
  }

  // Beside it, the agent's auto-answer setting: calls offered to them ask their phone to pick
  // up by itself (where the phone allows it), so the offer says so instead of "answer".
  const autoAnswerBox = $("[data-auto-answer-box]", page);
  const autoAnswerInput = autoAnswerBox && $("[data-auto-answer]", autoAnswerBox);
  // `on` is what the server has; `changes` counts the agent's changes, `pending` those unsaved.
  const autoAnswer = { on: false, changes: 0, pending: 0 };

  function renderAutoAnswer(mine) {
    autoAnswer.on = Boolean(mine && mine.auto_answer);
    if (autoAnswerBox) {
      autoAnswerBox.hidden = !mine;
      autoAnswerInput.checked = autoAnswer.on;
    }
    for (const entry of state.offers.values()) entry.renderPhone();
  }

  autoAnswerInput?.addEventListener("change", async () => {
    const change = ++autoAnswer.changes;
    autoAnswer.pending += 1;
    autoAnswerBox.setAttribute("aria-busy", "true");
    let mine = null;
    let failure = null;
    try {
      mine = await api("PUT", "/api/v1/voice/extensions/mine", {
        auto_answer: autoAnswerInput.checked,
      });
    } catch (error) {
      failure = error;
    }
    autoAnswer.pending -= 1;
    if (!autoAnswer.pending) autoAnswerBox.removeAttribute("aria-busy");
    if (mine) autoAnswer.on = Boolean(mine.auto_answer);
    // Only the agent's last change decides what the box shows.
    if (change !== autoAnswer.changes) return;
    if (mine) {
      renderPhoneState(mine);
      renderAutoAnswer(mine);
      return;
    }
    // Back to what the server still has, with the reason.
    renderAutoAnswer({ auto_answer: autoAnswer.on });
    toast(message, "error", errorMessage(failure));
    if (failure instanceof ApiError && failure.status === 404) loadPhone();
  });

  // --- keyboard ---------------------------------------------------------------------------

  const typingInField = (target) =>
    target instanceof HTMLElement &&
    (target.isContentEditable || ["INPUT", "TEXTAREA", "SELECT"].includes(target.tagName));

  document.addEventListener("keydown", (event) => {
    if (event.altKey && !event.ctrlKey && !event.metaKey) {
      const offer = oldestOffer();
      const actions = {
        KeyA: () => offer && respond(offer.offer.id, "accept"),
        KeyR: () => offer && respond(offer.offer.id, "reject"),
        KeyT: openTransfer,
        KeyW: wrapUp,
        KeyC: openClose,
        KeyN: () => {
          setNoteMode(!noteToggle.checked);
          input.focus();
        },
        ArrowDown: () => move(1),
        ArrowUp: () => move(-1),
      };
      const action = actions[event.code];
      if (action) {
        event.preventDefault();
        action();
      }
      return;
    }
    if (event.key === "?" && !typingInField(event.target) && help) {
      event.preventDefault();
      help.togglePopover();
    }
  });

  // --- realtime ---------------------------------------------------------------------------

  async function loadSnapshot() {
    const [agent, offers] = await Promise.all([
      api("GET", "/api/v1/me/agent"),
      api("GET", "/api/v1/me/offers"),
      loadList(),
    ]);
    state.agent = agent;
    renderPresence();
    const current = new Set(offers.map((o) => o.id));
    for (const id of [...state.offers.keys()]) if (!current.has(id)) removeOffer(id);
    for (const offer of offers) addOffer(offer, { sound: true });
    if (state.openId) await openThread(state.openId, { quiet: true });
  }

  function noteAgentState(data) {
    const agent = agents.get(data.agent_id);
    if (agent) agent.presence = data.presence;
  }

  let typingTimer = null;

  function apply(event) {
    const data = event.data || {};
    switch (event.type) {
      case "offer.created":
        if (data.agent_id === selfId) {
          addOffer(
            {
              id: data.offer_id,
              interaction_id: data.interaction_id,
              channel: data.channel,
              queue_id: data.queue_id,
              expires_at: data.expires_at,
              created_at: event.occurred_at,
            },
            { sound: true },
          );
        }
        break;
      case "offer.closed":
        if (data.agent_id === selfId) removeOffer(data.offer_id);
        break;
      case "interaction.changed":
        if (data.agent_id === selfId || state.briefs.has(data.interaction_id)) refreshList();
        if (state.openId === data.interaction_id) {
          const brief = state.briefs.get(data.interaction_id);
          if (brief) brief.status = data.status;
          if (state.open) state.open.status = data.status;
          if (data.agent_id === selfId) openThread(data.interaction_id, { quiet: true });
          else renderThreadHead();
        }
        break;
      case "message.added":
        if (data.direction === "inbound") windowReopened(data.interaction_id);
        if (state.openId === data.interaction_id) {
          addThreadMessage(event);
          if (data.direction === "inbound") markRead();
        }
        if (state.briefs.has(data.interaction_id)) {
          const brief = state.briefs.get(data.interaction_id);
          brief.last_message_at = data.created_at;
          const details = state.details.get(data.interaction_id);
          if (details && data.direction !== "internal") details.last_preview = data.body;
          renderList();
          if (data.direction === "inbound") refreshList();
        }
        break;
      case "message.status":
        if (state.openId === data.interaction_id) {
          updateMessage({ id: data.message_id, status: data.status });
          // The event carries no reason: the stored message has it.
          if (data.status === "failed") refreshMessage(data.interaction_id, data.message_id);
        }
        break;
      case "interaction.typing":
        if (state.openId === data.interaction_id && data.author_kind === "contact") {
          typing.hidden = false;
          clearTimeout(typingTimer);
          typingTimer = setTimeout(() => {
            typing.hidden = true;
          }, 5000);
        }
        break;
      case "call.updated":
        callUpdated(data);
        break;
      case "agent.state_changed":
        noteAgentState(data);
        if (data.agent_id === selfId && state.agent) {
          state.agent.presence = data.presence;
          state.agent.break_reason_id = data.break_reason_id;
          state.agent.presence_since = event.occurred_at;
          renderPresence();
        }
        break;
      default:
        break;
    }
  }

  page.dataset.title = document.title;
  loadPhone();
  setInterval(loadPhone, PHONE_REFRESH_MS);
  setNoteMode(false);
  renderFiles();
  setTab("list");
  liveState({
    status: $("[data-realtime-status]", page),
    load: loadSnapshot,
    apply,
    // Replayed before the hello: the snapshot covers all of it but the directory's presence.
    early: (event) => {
      if (event.type === "agent.state_changed") noteAgentState(event.data || {});
    },
  });

  setInterval(() => {
    tickPresence();
    for (const entry of [...state.offers.values()]) tickOffer(entry);
    tickWrapUp();
    tickCall();
  }, 1000);
})();
