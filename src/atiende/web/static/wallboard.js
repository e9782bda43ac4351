/* Atiende supervisor wallboard: queues and agents live, and the supervisor's actions.
 *
 * Uses window.Atiende (atiende.js) and window.AtiendeDesk (desktop.js). The board is pulled
 * from GET /api/v1/wallboard after every (re)connection, on relevant events (at most once a
 * second) and every 10 s; between pulls the waiting and in-state times tick in the browser.
 * The phone calls (GET /api/v1/voice/calls) add each agent's call state (ringing, talking,
 * on hold, consulting someone during an attended transfer, transferring to an outside number)
 * and the calls now in each voice queue; call.updated events pull them again.
 * Next to an agent who is talking, Listen, Whisper and Barge ring the supervisor's own phone
 * into that call (POST /api/v1/interactions/{id}/call/supervise).
 */
"use strict";

(() => {
  const A = window.Atiende;
  const D = window.AtiendeDesk;
  if (!A || !D) return;
  const { t, h, $, $$, api, errorMessage } = A;

  const page = $('[data-page="wallboard"]');
  if (!page) return;

  const directory = D.readJson("desk-directory");
  const breakReasons = directory.break_reasons || [];
  const queueNames = new Map((directory.queues || []).map((q) => [q.id, q.name]));
  const voiceQueues = new Set(
    (directory.queues || []).filter((q) => (q.channels || []).includes("voice")).map((q) => q.id),
  );

  const message = $("[data-board-message]", page);
  const tiles = $("[data-queues]", page);
  const tilesEmpty = $("[data-queues-empty]", page);
  const agentsTable = $("[data-agents]", page);
  const agentsSummary = $("[data-agents-summary]", page);
  const liveTable = $("[data-live]", page);
  const liveCount = $("[data-live-count]", page);
  const updated = $("[data-updated]", page);
  const viewer = $("[data-viewer]", page);
  const reassignDialog = $("[data-reassign-dialog]", page);
  const REFRESH_EVERY = 10000;

  const state = {
    board: null,
    fetchedAt: 0,
    offset: 0, // server clock − browser clock, from generated_at
    live: [],
    viewing: null, // interaction id shown read-only
    viewGeneration: 0,
    reassigning: null,
    calls: [], // the live phone calls
    supervising: new Set(), // interaction ids whose supervise request is under way
  };

  const serverNow = () => Date.now() + state.offset;
  const placeholder = (columns, text) =>
    h("tr", { class: "placeholder" }, h("td", { colspan: columns }, text));
  const elapsed = () => (Date.now() - state.fetchedAt) / 1000;

  // --- queues -----------------------------------------------------------------------------

  function serviceLevelClass(queue) {
    const level = queue.service_level_today;
    if (level === null || level === undefined) return "sl-none";
    if (level >= queue.service_level_target) return "sl-good";
    if (level >= queue.service_level_target - 10) return "sl-warn";
    return "sl-bad";
  }

  function stat(label, field, value) {
    return h(
      "div",
      { class: "tile-stat" },
      h("dt", {}, label),
      h("dd", { "data-field": field }, String(value)),
    );
  }

  function tile(queue) {
    const sl = queue.service_level_today;
    return h(
      "article",
      {
        class: `tile ${queue.waiting ? "has-waiting" : ""}`,
        "data-queue-id": queue.queue_id,
        "data-testid": "queue-tile",
      },
      h(
        "header",
        { class: "tile-head" },
        h("h3", {}, queue.name),
        h(
          "span",
          { class: `badge ${queue.is_open ? "ok" : "off"}` },
          t(queue.is_open ? "queue_open" : "queue_closed"),
        ),
      ),
      h(
        "div",
        { class: "tile-main" },
        h("span", { class: "tile-big", "data-field": "waiting" }, String(queue.waiting)),
        h(
          "span",
          { class: "tile-big-label" },
          t("waiting"),
          h("span", {
            class: "tile-longest",
            "data-field": "longest",
            "data-base": queue.longest_wait_seconds,
          }),
        ),
      ),
      h(
        "dl",
        { class: "tile-stats" },
        stat(t("offered_today"), "offered", queue.offered_today),
        stat(t("answered_today"), "answered", queue.answered_today),
        stat(t("abandoned_today"), "abandoned", queue.abandoned_today),
        voiceQueues.has(queue.queue_id) || callsIn(queue.queue_id)
          ? stat(t("calls_now"), "calls", callsIn(queue.queue_id))
          : null,
      ),
      h(
        "div",
        {
          class: `sl ${serviceLevelClass(queue)}`,
          "data-field": "service-level",
          title: t("sl_explained", { seconds: queue.service_level_seconds }),
        },
        h("span", { class: "sl-value" }, sl === null || sl === undefined ? "—" : `${sl}%`),
        h(
          "span",
          { class: "sl-target" },
          t("sl_target", {
            target: `${queue.service_level_target}%`,
            seconds: queue.service_level_seconds,
          }),
        ),
        h(
          "span",
          { class: "sl-bar", "aria-hidden": "true" },
          h("span", { class: "sl-fill", style: `width:${Math.max(0, Math.min(100, sl || 0))}%` }),
          h("span", { class: "sl-mark", style: `left:${queue.service_level_target}%` }),
        ),
      ),
    );
  }

  // --- agents -----------------------------------------------------------------------------

  const ORDER = { available: 0, busy: 1, break: 2, offline: 3 };
  const stateOf = (agent) =>
    agent.presence === "available" && agent.busy ? "busy" : agent.presence;

  function stateBadge(agent) {
    const kind = stateOf(agent);
    const label =
      kind === "break" && agent.break_reason
        ? t("presence_break_reason", { reason: agent.break_reason })
        : t(`presence_${kind}`);
    return h(
      "span",
      { class: `state state-${kind}`, "data-field": "state", "data-state": kind },
      label,
    );
  }

  function loadText(agent) {
    const parts = [];
    for (const pool of ["chat", "voice"]) {
      const capacity = (agent.capacity || {})[pool] || 0;
      if (!capacity) continue;
      parts.push(`${t(`pool_${pool}`)} ${(agent.load || {})[pool] || 0}/${capacity}`);
    }
    return parts.join(" · ") || "—";
  }

  function forceSelect(agent) {
    const select = h(
      "select",
      {
        class: "force",
        "aria-label": t("force_state_for", { name: agent.name }),
        "data-testid": "force-state",
      },
      h("option", { value: "" }, t("force_state")),
      h(
        "option",
        { value: "available", disabled: agent.presence === "available" },
        t("presence_available"),
      ),
      h(
        "optgroup",
        { label: t("presence_break") },
        breakReasons.map((reason) => h("option", { value: `break:${reason.id}` }, reason.name)),
      ),
      h(
        "option",
        { value: "offline", disabled: agent.presence === "offline" },
        t("presence_offline"),
      ),
    );
    select.addEventListener("change", async () => {
      if (!select.value) return;
      const [presence, reasonId] = select.value.split(":");
      const body = { presence };
      if (reasonId) body.break_reason_id = reasonId;
      select.disabled = true;
      try {
        await api("PUT", `/api/v1/agents/${agent.agent_id}/presence`, body);
        D.toast(message, "success", t("state_forced", { name: agent.name }));
        refreshBoard();
      } catch (error) {
        D.toast(message, "error", errorMessage(error));
        select.value = "";
        select.disabled = false;
      }
    });
    return select;
  }

  // --- phone calls ------------------------------------------------------------------------

  const callsIn = (queueId) => state.calls.filter((c) => c.queue_id === queueId).length;

  /** The call the agent answered (talking, on hold or being forwarded), or undefined. */
  const agentCall = (agentId) =>
    state.calls.find(
      (c) => c.agent_id === agentId && ["bridged", "on_hold", "transferring"].includes(c.state),
    );

  /** What the agent's phone is doing: consulting, transferring, on hold, talking, or ringing
   * (null: none of these). A consultation or a forward hides the on-hold / talking state. */
  function callOf(agentId) {
    const mine = agentCall(agentId);
    if (mine) {
      if (mine.consult_state) return "consulting";
      if (mine.state === "transferring") return "transferring";
      return mine.on_hold || mine.state === "on_hold" ? "on_hold" : "talking";
    }
    const ringing = state.calls.some((c) => (c.ringing_agent_ids || []).includes(agentId));
    return ringing ? "ringing" : null;
  }

  /** Whom the agent consults: the agent's name (or an agent not on the board), or the number. */
  function consultLabel(call) {
    if (call.consult_agent_id) {
      const name = names()[call.consult_agent_id];
      return name ? t("board_call_consulting", { name }) : t("board_call_consulting_agent");
    }
    return t("board_call_consulting", { name: call.consult_number || "" });
  }

  function callBadge(agentId) {
    const kind = callOf(agentId);
    if (!kind) return null;
    const call = agentCall(agentId);
    let label;
    if (kind === "consulting") label = consultLabel(call);
    else if (kind === "transferring")
      label = t("board_call_forwarding", { number: call.forwarded_to || "" });
    else
      label = t(
        {
          talking: "call_state_bridged",
          on_hold: "call_state_on_hold",
          ringing: "call_state_offering",
        }[kind],
      );
    const attributes = { class: "call-badge", "data-call": kind, "data-testid": "agent-call" };
    if (kind === "consulting") attributes["data-consult"] = call.consult_state;
    return h("span", attributes, A.icon("phone"), label);
  }

  // --- joining a call: listen, whisper, barge ----------------------------------------------

  const SUPERVISE_MODES = ["listen", "whisper", "barge"];

  /** The call the agent is talking on (answered, maybe on hold), or null. */
  const talkingCall = (agentId) =>
    state.calls.find((c) => c.agent_id === agentId && ["bridged", "on_hold"].includes(c.state)) ||
    null;

  function superviseButtons(agent) {
    const found = talkingCall(agent.agent_id);
    if (!found) return null;
    const busy = state.supervising.has(found.interaction_id);
    return h(
      "span",
      {
        class: "supervise",
        role: "group",
        "aria-label": t("supervise_for", { name: agent.name }),
        "data-testid": "supervise",
        "data-interaction-id": found.interaction_id,
      },
      SUPERVISE_MODES.map((mode) =>
        h(
          "button",
          {
            type: "button",
            class: "button small",
            title: t(`supervise_${mode}_hint`),
            "data-mode": mode,
            "data-testid": `supervise-${mode}`,
            disabled: busy,
            onclick: () => supervise(found, agent, mode),
          },
          t(`supervise_${mode}`),
        ),
      ),
    );
  }

  /** Rings the supervisor's phone; answering it joins the call in the chosen mode. */
  async function supervise(found, agent, mode) {
    const id = found.interaction_id;
    if (state.supervising.has(id)) return;
    state.supervising.add(id);
    renderBoard();
    try {
      await api("POST", `/api/v1/interactions/${encodeURIComponent(id)}/call/supervise`, {
        mode,
      });
      D.toast(message, "success", t("supervise_ringing", { name: agent.name }));
    } catch (error) {
      D.toast(message, "error", errorMessage(error));
      if (error instanceof A.ApiError && [404, 409].includes(error.status)) refreshCalls();
    } finally {
      state.supervising.delete(id);
      renderBoard();
    }
  }

  async function loadCalls() {
    state.calls = await api("GET", "/api/v1/voice/calls");
  }

  const refreshCalls = D.throttle(
    () =>
      loadCalls()
        .then(renderBoard)
        .catch(() => {}),
    1000,
  );

  function agentRow(agent) {
    return h(
      "tr",
      { "data-agent-id": agent.agent_id, "data-state": stateOf(agent) },
      h(
        "td",
        {},
        h(
          "span",
          { class: "person" },
          h("span", { class: "avatar small", "aria-hidden": "true" }, agent.name.slice(0, 1)),
          h("span", { class: "person-name" }, agent.name),
        ),
      ),
      h("td", {}, stateBadge(agent), callBadge(agent.agent_id), superviseButtons(agent)),
      h(
        "td",
        { class: "nowrap mono", "data-field": "time", "data-base": agent.seconds_in_state },
        D.formatDuration(agent.seconds_in_state),
      ),
      h("td", { class: "nowrap", "data-field": "load" }, loadText(agent)),
      h("td", { class: "actions" }, forceSelect(agent)),
    );
  }

  // --- pulling the board ------------------------------------------------------------------

  async function loadBoard() {
    const board = await api("GET", "/api/v1/wallboard");
    state.board = board;
    state.fetchedAt = Date.now();
    const generated = Date.parse(board.generated_at);
    if (!Number.isNaN(generated)) state.offset = generated - state.fetchedAt;
    for (const queue of board.queues) queueNames.set(queue.queue_id, queue.name);
    renderBoard();
  }

  function renderBoard() {
    const board = state.board;
    if (!board) return;
    tiles.replaceChildren(...board.queues.map(tile));
    tilesEmpty.hidden = board.queues.length > 0;
    const agents = [...board.agents].sort(
      (a, b) => ORDER[stateOf(a)] - ORDER[stateOf(b)] || a.name.localeCompare(b.name),
    );
    const body = $("tbody", agentsTable);
    // Keep a select the supervisor is using: re-render the rest around it.
    const active = document.activeElement && document.activeElement.closest("tr[data-agent-id]");
    if (active && body.contains(active) && document.activeElement.tagName === "SELECT") {
      for (const row of $$("tr[data-agent-id]", body)) {
        if (row === active) continue;
        const fresh = agents.find((a) => a.agent_id === row.dataset.agentId);
        if (fresh) row.replaceWith(agentRow(fresh));
      }
    } else if (agents.length) {
      body.replaceChildren(...agents.map(agentRow));
    } else {
      body.replaceChildren(placeholder(5, t("no_agents")));
    }
    const counts = { available: 0, busy: 0, break: 0, offline: 0 };
    for (const agent of agents) counts[stateOf(agent)] += 1;
    agentsSummary.textContent = ["available", "busy", "break", "offline"]
      .map((kind) => `${t(`presence_${kind}`)} ${counts[kind]}`)
      .join(" · ");
    updated.replaceChildren(t("updated_at", { time: D.clockTime(board.generated_at) }));
    tick();
  }

  function tick() {
    if (!state.board) return;
    const since = elapsed();
    for (const node of $$("[data-field=longest]", tiles)) {
      const tileNode = node.closest("[data-queue-id]");
      const waiting = Number($("[data-field=waiting]", tileNode).textContent);
      node.textContent = waiting
        ? t("longest_wait", { time: D.formatDuration(Number(node.dataset.base) + since) })
        : "";
    }
    for (const node of $$("[data-field=time]", agentsTable)) {
      node.textContent = D.formatDuration(Number(node.dataset.base) + since);
    }
    for (const node of $$("[data-since]", liveTable)) {
      node.textContent = D.formatDuration((serverNow() - Date.parse(node.dataset.since)) / 1000);
    }
  }

  const refreshBoard = D.throttle(
    () => loadBoard().catch((error) => D.toast(message, "error", errorMessage(error))),
    1000,
  );

  // --- live conversations -----------------------------------------------------------------

  const contactName = (item) => {
    const contact = item.contact;
    return (contact && (contact.name || contact.email || contact.phone)) || t("unknown_contact");
  };

  function sinceOf(item) {
    const working = item.status === "assigned" || item.status === "wrap_up";
    return (working ? item.assigned_at : item.enqueued_at) || item.created_at;
  }

  function liveRow(item) {
    const canReassign = ["assigned", "offered", "queued"].includes(item.status);
    return h(
      "tr",
      { "data-interaction-id": item.id, "data-status": item.status },
      h("td", {}, h("strong", {}, contactName(item))),
      h(
        "td",
        {},
        h("span", { class: "with-icon" }, D.channelIcon(item.channel), D.channelLabel(item.channel)),
      ),
      h("td", {}, item.queue ? item.queue.name : "—"),
      h("td", {}, item.agent ? item.agent.name : h("span", { class: "muted" }, "—")),
      h("td", {}, h("span", { class: `badge status-${item.status}` }, D.statusLabel(item.status))),
      h("td", { class: "nowrap mono", "data-since": sinceOf(item) }, ""),
      h(
        "td",
        { class: "actions" },
        h(
          "div",
          { class: "button-row" },
          h(
            "button",
            {
              type: "button",
              class: "button small",
              "data-testid": "view",
              onclick: () => openViewer(item.id),
            },
            t("view"),
          ),
          canReassign
            ? h(
                "button",
                {
                  type: "button",
                  class: "button small",
                  "data-testid": "reassign",
                  onclick: () => openReassign(item),
                },
                t("reassign"),
              )
            : null,
        ),
      ),
    );
  }

  async function loadLive() {
    const params = new URLSearchParams();
    for (const status of ["queued", "offered", "assigned", "wrap_up"]) {
      params.append("status", status);
    }
    params.set("limit", "200");
    state.live = await api("GET", `/api/v1/interactions?${params}`);
    const body = $("tbody", liveTable);
    if (state.live.length) body.replaceChildren(...state.live.map(liveRow));
    else body.replaceChildren(placeholder(7, t("no_live")));
    liveCount.textContent = state.live.length ? String(state.live.length) : "";
    tick();
  }

  const refreshLive = D.throttle(() => loadLive().catch(() => {}), 1000);

  // --- a conversation, read-only ----------------------------------------------------------

  const viewerMessages = $("[data-messages]", viewer);
  const viewerRecording = $("[data-viewer-recording]", viewer);
  const viewerAudio = $("[data-viewer-audio]", viewer);

  /** A call's recording plays in the viewer once the call has ended (audited on play). */
  async function showViewerCall(id) {
    let recorded = false;
    try {
      const found = await api("GET", `/api/v1/interactions/${id}/call`);
      recorded = found.recording === "done";
    } catch {
      recorded = false;
    }
    if (state.viewing !== id) return;
    viewerRecording.hidden = !recorded;
    if (recorded && viewerAudio.dataset.for !== id) {
      viewerAudio.dataset.for = id;
      viewerAudio.src = `/api/v1/interactions/${encodeURIComponent(id)}/recording`;
    }
  }
  const boardAgents = () => (state.board && state.board.agents) || [];
  const names = () => Object.fromEntries(boardAgents().map((a) => [a.agent_id, a.name]));

  function renderViewerHead(details) {
    $("[data-viewer-title]", viewer).replaceChildren(
      D.channelIcon(details.channel),
      h("span", {}, contactName(details)),
    );
    $("[data-viewer-meta]", viewer).textContent = [
      D.channelLabel(details.channel),
      details.queue ? details.queue.name : null,
      details.agent ? details.agent.name : null,
      D.statusLabel(details.status),
    ]
      .filter(Boolean)
      .join(" · ");
  }

  async function openViewer(id, { quiet = false } = {}) {
    const generation = ++state.viewGeneration;
    state.viewing = id;
    viewer.dataset.interactionId = id;
    if (!quiet) {
      viewerMessages.replaceChildren();
      viewerRecording.hidden = true;
      viewerAudio.removeAttribute("src");
      delete viewerAudio.dataset.for;
      $("[data-viewer-title]", viewer).textContent = t("loading");
      $("[data-viewer-meta]", viewer).textContent = "";
      if (!viewer.open) viewer.showModal();
    }
    try {
      const [details, messages] = await Promise.all([
        api("GET", `/api/v1/interactions/${id}`),
        api("GET", `/api/v1/interactions/${id}/messages`),
      ]);
      if (generation !== state.viewGeneration) return;
      renderViewerHead(details);
      if (details.channel === "voice") showViewerCall(id);
      const known = new Set($$("[data-message-id]", viewerMessages).map((n) => n.dataset.messageId));
      for (const item of messages) {
        if (known.has(String(item.id))) continue;
        D.placeMessage(viewerMessages, D.messageNode(item, { names: names() }));
      }
      viewerMessages.scrollTop = viewerMessages.scrollHeight;
    } catch (error) {
      if (generation !== state.viewGeneration) return;
      A.showMessage($("[data-form-message]", viewer), "error", errorMessage(error));
    }
  }

  viewer.addEventListener("close", () => {
    viewerAudio.pause();
    state.viewing = null;
    state.viewGeneration += 1;
  });

  // --- reassign ---------------------------------------------------------------------------

  function openReassign(item) {
    state.reassigning = item;
    const form = $("form", reassignDialog);
    form.reset();
    A.showMessage($("[data-form-message]", form), "", "");
    const what = `${contactName(item)} · ${D.channelLabel(item.channel)}`;
    $("[data-reassign-what]", form).textContent = what;
    const digital = item.channel !== "voice";
    const current = item.agent && item.agent.id;
    const agents = boardAgents()
      .filter((a) => a.agent_id !== current && (!digital || a.licence !== "voice"))
      .sort((a, b) => ORDER[stateOf(a)] - ORDER[stateOf(b)] || a.name.localeCompare(b.name));
    form.elements.namedItem("agent_id").replaceChildren(
      h("option", { value: "" }, t("choose_agent")),
      ...agents.map((a) =>
        h(
          "option",
          { value: a.agent_id },
          t("agent_option", { name: a.name, state: t(`presence_${stateOf(a)}`) }),
          ` — ${loadText(a)}`,
        ),
      ),
    );
    reassignDialog.showModal();
    form.elements.namedItem("agent_id").focus();
  }

  $("form", reassignDialog).addEventListener("submit", async (event) => {
    event.preventDefault();
    const form = event.currentTarget;
    const box = $("[data-form-message]", form);
    const agentId = form.elements.namedItem("agent_id").value;
    if (!agentId) {
      A.showMessage(box, "error", t("error_transfer_target"));
      return;
    }
    const item = state.reassigning;
    const submit = $("button[type=submit]", form);
    submit.disabled = true;
    try {
      await api("POST", `/api/v1/interactions/${item.id}/reassign`, { agent_id: agentId });
      reassignDialog.close();
      D.toast(message, "success", t("reassigned"));
      refreshLive();
      refreshBoard();
    } catch (error) {
      A.showMessage(box, "error", errorMessage(error));
    } finally {
      submit.disabled = false;
    }
  });

  for (const button of $$("[data-dismiss]", page)) {
    button.addEventListener("click", () => button.closest("dialog").close());
  }

  // --- realtime ---------------------------------------------------------------------------

  const BOARD_EVENTS = new Set([
    "interaction.changed",
    "offer.created",
    "offer.closed",
    "agent.state_changed",
  ]);

  const CALL_EVENTS = new Set(["call.updated", "offer.created", "offer.closed"]);

  function apply(event) {
    const data = event.data || {};
    if (BOARD_EVENTS.has(event.type)) refreshBoard();
    if (CALL_EVENTS.has(event.type)) refreshCalls();
    if (event.type === "call.updated" && state.viewing === data.interaction_id) {
      showViewerCall(state.viewing);
    }
    if (event.type === "interaction.changed") refreshLive();
    if (!state.viewing || data.interaction_id !== state.viewing) return;
    if (event.type === "message.added") {
      if ($(`[data-message-id="${CSS.escape(String(data.message_id))}"]`, viewerMessages)) return;
      D.placeMessage(viewerMessages, D.messageNode(data, { names: names() }));
      viewerMessages.scrollTop = viewerMessages.scrollHeight;
    } else if (event.type === "message.status") {
      const node = $(`[data-message-id="${CSS.escape(String(data.message_id))}"]`, viewerMessages);
      if (!node) return;
      const changed = Object.assign({}, node.message, { status: data.status });
      node.replaceWith(D.messageNode(changed, { names: names() }));
    } else if (event.type === "interaction.changed") {
      openViewer(state.viewing, { quiet: true });
    }
  }

  D.liveState({
    status: $("[data-realtime-status]", page),
    load: async () => {
      await Promise.all([loadCalls().catch(() => {}), loadBoard(), loadLive()]);
      renderBoard(); // the calls may arrive after the board was drawn
      if (state.viewing) await openViewer(state.viewing, { quiet: true });
    },
    apply,
  });

  setInterval(() => {
    refreshBoard();
    refreshLive();
    refreshCalls();
  }, REFRESH_EVERY);
  setInterval(tick, 1000);
})();
