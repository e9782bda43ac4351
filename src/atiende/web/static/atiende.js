/* Atiende browser script: hand-written, no dependencies, no build step.
 *
 * Pages are rendered on the server; this file makes them interactive by calling the JSON API
 * under /api/v1 (same-origin cookie, plus the X-CSRF-Token header on writes) and by following
 * the websocket hub at /ws. Every text it shows comes from the page: the server renders the
 * translated strings into <script type="application/json" id="i18n"> (shared) and
 * id="i18n-page" (this page), so the interface is entirely in the user's language.
 */
"use strict";

(() => {
  // --- strings ----------------------------------------------------------------------------

  function readJson(id) {
    const node = document.getElementById(id);
    if (!node) return {};
    try {
      return JSON.parse(node.textContent || "{}");
    } catch {
      return {};
    }
  }

  const STRINGS = Object.assign(readJson("i18n"), readJson("i18n-page"));

  /** text with its {placeholders} filled in from values (anything but a string as it is). */
  function fillIn(text, values) {
    if (typeof text !== "string" || !values) return text;
    return text.replace(/\{(\w+)\}/g, (match, name) =>
      name in values ? String(values[name]) : match,
    );
  }

  /** The translated string for key, with {placeholders} filled in. */
  function t(key, values) {
    return fillIn(key in STRINGS ? STRINGS[key] : key, values);
  }

  // --- DOM helpers ------------------------------------------------------------------------

  /** Builds an element; children are nodes or strings (always inserted as text). */
  function h(tag, attributes, ...children) {
    const node = document.createElement(tag);
    for (const [name, value] of Object.entries(attributes || {})) {
      if (value === null || value === undefined || value === false) continue;
      if (name === "class") node.className = value;
      else if (name === "text") node.textContent = value;
      else if (name.startsWith("on") && typeof value === "function") {
        node.addEventListener(name.slice(2), value);
      } else node.setAttribute(name, value === true ? "" : String(value));
    }
    for (const child of children.flat()) {
      if (child === null || child === undefined || child === false) continue;
      node.append(child instanceof Node ? child : document.createTextNode(String(child)));
    }
    return node;
  }

  const ICONS = {
    power: ["M12 3.5v8", "M6.6 6.6a7.5 7.5 0 1 0 10.8 0"],
    trash: ["M4 7h16", "M9.5 7V4.5h5V7", "M6.5 7l1 13h9l1-13", "M10 11v5.5M14 11v5.5"],
  };

  /** One of the few inline icons scripts need (the rest are drawn by the templates). */
  function icon(name) {
    const ns = "http://www.w3.org/2000/svg";
    const svg = document.createElementNS(ns, "svg");
    for (const [key, value] of Object.entries({
      class: "icon",
      viewBox: "0 0 24 24",
      width: "16",
      height: "16",
      fill: "none",
      stroke: "currentColor",
      "stroke-width": "1.8",
      "stroke-linecap": "round",
      "stroke-linejoin": "round",
      "aria-hidden": "true",
      focusable: "false",
    })) {
      svg.setAttribute(key, value);
    }
    for (const d of ICONS[name] || []) {
      const path = document.createElementNS(ns, "path");
      path.setAttribute("d", d);
      svg.append(path);
    }
    return svg;
  }

  /** A small button with an icon; its label shows on small screens, and as a tooltip. */
  function iconButton(name, label, className, onclick) {
    return h(
      "button",
      { type: "button", class: `button small icon-label ${className}`, title: label, onclick },
      icon(name),
      h("span", { class: "label" }, label),
    );
  }

  const $ = (selector, root = document) => root.querySelector(selector);
  const $$ = (selector, root = document) => Array.from(root.querySelectorAll(selector));

  const dateTimeFormat = new Intl.DateTimeFormat(undefined, {
    dateStyle: "medium",
    timeStyle: "short",
  });
  const dateFormat = new Intl.DateTimeFormat(undefined, { dateStyle: "medium" });
  const timeFormat = new Intl.DateTimeFormat(undefined, { timeStyle: "medium" });
  const preciseFormat = new Intl.DateTimeFormat(undefined, {
    dateStyle: "medium",
    timeStyle: "medium",
  });

  /** A date from the API, in the browser's locale and time zone. */
  function formatDate(value, format = dateTimeFormat) {
    if (!value) return t("never");
    const date = new Date(value);
    return Number.isNaN(date.getTime()) ? String(value) : format.format(date);
  }

  /** A <time> showing value in format, with the full date and time on hover. */
  function timeElement(value, format) {
    if (!value) return h("span", { class: "muted" }, t("never"));
    return h(
      "time",
      { datetime: value, title: formatDate(value, preciseFormat) },
      formatDate(value, format),
    );
  }

  // --- the API ----------------------------------------------------------------------------

  const UNSAFE = new Set(["POST", "PUT", "PATCH", "DELETE"]);

  class ApiError extends Error {
    constructor(status, body) {
      super((body && body.message) || `HTTP ${status}`);
      this.status = status;
      this.code = (body && body.code) || (status === 0 ? "network_error" : `http_${status}`);
      this.details = (body && body.details) || {};
    }
  }

  function csrfToken() {
    const meta = document.querySelector('meta[name="csrf-token"]');
    return meta ? meta.getAttribute("content") : "";
  }

  /** Calls the JSON API; resolves with the decoded body (or null), rejects with ApiError. */
  async function api(method, path, body) {
    const headers = { Accept: "application/json" };
    if (body !== undefined) headers["Content-Type"] = "application/json";
    if (UNSAFE.has(method)) headers["X-CSRF-Token"] = csrfToken();
    let response;
    try {
      response = await fetch(path, {
        method,
        headers,
        credentials: "same-origin",
        body: body === undefined ? undefined : JSON.stringify(body),
      });
    } catch {
      throw new ApiError(0, null);
    }
    let payload = null;
    if (response.status !== 204) {
      try {
        payload = await response.json();
      } catch {
        payload = null;
      }
    }
    if (!response.ok) {
      if (response.status === 401 && payload && payload.code === "not_authenticated") {
        const next = window.location.pathname + window.location.search;
        window.location.assign(`/login?next=${encodeURIComponent(next)}`);
      }
      throw new ApiError(response.status, payload);
    }
    return payload;
  }

  /** The sentence to show for an API error, in the page's language. */
  function errorMessage(error) {
    if (!(error instanceof ApiError)) return t("error_generic");
    const specific = error.details && error.details.code;
    if (specific && `error_${specific}` in STRINGS) return t(`error_${specific}`);
    if (error.code === "network_error") return t("network_error");
    if (error.code === "validation_error") return t("error_validation");
    if (`error_${error.code}` in STRINGS) return t(`error_${error.code}`);
    if (error.code.endsWith("_not_found") || error.status === 404) return t("error_not_found");
    if (error.status === 409) return t("error_conflict");
    if (error.status === 403) return t("error_permission_denied");
    return t("error_generic");
  }

  /** The names of the form fields an error points at. */
  function errorFields(error) {
    if (!(error instanceof ApiError)) return [];
    const fields = [];
    if (error.details && typeof error.details.field === "string") fields.push(error.details.field);
    for (const item of (error.details && error.details.errors) || []) {
      if (item && typeof item.field === "string" && item.field) {
        fields.push(item.field.split(".")[0]);
      }
    }
    return fields;
  }

  // --- forms ------------------------------------------------------------------------------

  function showMessage(box, kind, text) {
    if (!box) return;
    box.replaceChildren();
    if (!text) return;
    box.append(h("p", { class: `alert ${kind}`, "data-testid": `message-${kind}` }, text));
  }

  function clearFieldErrors(form) {
    for (const input of $$("[aria-invalid]", form)) input.removeAttribute("aria-invalid");
    for (const note of $$(".field-error", form)) note.remove();
  }

  /** Puts text next to the field called name: a [data-field] box or the named control.
   * Returns the control it marked invalid, or null. */
  function markField(form, name, text) {
    let box = $(`[data-field="${CSS.escape(name)}"]`, form);
    let control = box ? $("input, select, textarea", box) : null;
    if (!box) {
      const named = form.elements.namedItem(name);
      if (!(named instanceof Element)) return null;
      control = named;
      box = named.closest(".field") || named.parentElement;
    }
    if (control) control.setAttribute("aria-invalid", "true");
    if (box && !$(".field-error", box)) {
      const note = text || (control && control.dataset.invalidHint) || t("error_field");
      box.append(h("span", { class: "field-error", "data-error-for": name }, note));
    }
    return control;
  }

  /** Shows an API error next to the form: the sentence, and the fields it names. With
   * sentenceOnField, the field the error is about (details.field) shows the sentence too. */
  function showFormError(form, box, error, sentenceOnField = false) {
    clearFieldErrors(form);
    const text = errorMessage(error);
    const about = sentenceOnField && error instanceof ApiError ? error.details.field : null;
    let first = null;
    for (const name of errorFields(error)) {
      const control = markField(form, name, name === about ? text : "");
      first = first || control;
    }
    showMessage(box, "error", text);
    if (first && typeof first.focus === "function") first.focus();
  }

  /** Checks the browser's constraints without its (browser-language) bubbles. */
  function checkForm(form) {
    clearFieldErrors(form);
    let first = null;
    for (const input of Array.from(form.elements)) {
      if (!input.willValidate || input.checkValidity()) continue;
      markField(form, input.name, input.dataset.invalidHint || t("error_field"));
      first = first || input;
    }
    if (first) first.focus();
    return first === null;
  }

  function formValues(form) {
    const values = {};
    for (const [name, value] of new FormData(form).entries()) {
      values[name] = typeof value === "string" ? value.trim() : value;
    }
    return values;
  }

  /** Runs work while the submit button says "Saving…", so nothing is sent twice. */
  async function busy(form, work) {
    const button = $("button[type=submit]", form);
    const label = button ? button.textContent : "";
    if (button) {
      button.disabled = true;
      button.textContent = t("saving");
    }
    form.setAttribute("aria-busy", "true");
    try {
      return await work();
    } finally {
      form.removeAttribute("aria-busy");
      if (button) {
        button.disabled = false;
        button.textContent = label;
      }
    }
  }

  function fillTable(table, rows, emptyText) {
    const body = $("tbody", table);
    const columns = $$("thead th", table).length;
    if (!rows.length) {
      body.replaceChildren(
        h("tr", { class: "placeholder" }, h("td", { colspan: columns }, emptyText ?? t("empty"))),
      );
      return;
    }
    body.replaceChildren(...rows);
  }

  function loadingTable(table) {
    fillTable(table, [], t("loading"));
  }

  // --- the frame: side navigation and language ---------------------------------------------

  function setUpNavigation() {
    const toggle = $("[data-nav-toggle]");
    const nav = $("#sidenav");
    const backdrop = $("[data-nav-backdrop]");
    if (!toggle || !nav) return;
    const setOpen = (open) => {
      document.body.classList.toggle("nav-open", open);
      toggle.setAttribute("aria-expanded", String(open));
      if (backdrop) backdrop.hidden = !open;
      if (open) {
        const current = $("a[aria-current]", nav) || $("a", nav);
        if (current) current.focus();
      }
    };
    toggle.addEventListener("click", () =>
      setOpen(!document.body.classList.contains("nav-open")),
    );
    if (backdrop) backdrop.addEventListener("click", () => setOpen(false));
    document.addEventListener("keydown", (event) => {
      if (event.key === "Escape" && document.body.classList.contains("nav-open")) {
        setOpen(false);
        toggle.focus();
      }
    });
    window.matchMedia("(min-width: 900px)").addEventListener("change", (query) => {
      if (query.matches) setOpen(false);
    });
  }

  function setUpLanguage() {
    for (const form of $$("[data-language-form]")) {
      const select = $("select", form);
      if (!select) continue;
      const initial = select.value;
      select.addEventListener("change", async () => {
        if (!csrfToken()) {
          form.submit(); // anonymous: the server keeps the choice in a cookie
          return;
        }
        // Signed in: saved on the profile (which also sets the cookie), then shown.
        select.disabled = true;
        try {
          await api("PUT", "/api/v1/auth/preferences", { locale: select.value });
          window.location.reload();
        } catch (error) {
          select.value = initial;
          select.disabled = false;
          window.alert(errorMessage(error));
        }
      });
    }
  }

  // --- the staff websocket: one client, used by the live panel and the work pages ----------

  const LAST_EVENT_KEY = "atiende.lastEventId";
  const MAX_EVENTS = 50;
  const POLICY_VIOLATION = 1008;

  /** Follows /ws with resume: reconnects with backoff from the last event id this tab saw,
   * hands each event over once, and reports its state. Handlers (all optional):
   * onStatus(state, text); onHello(helloId) after every (re)connection, once the hub has
   * replayed what this tab missed; onReset() when the hub no longer has that history (reload
   * your state); onEvent(event) for events newer than where the tab started. */
  function connectRealtime(handlers = {}) {
    const notify = (name, ...args) => {
      if (typeof handlers[name] === "function") handlers[name](...args);
    };
    let socket = null;
    let attempt = 0;
    let timer = null;
    let countdown = null;
    let closing = false;
    const shown = new Set();

    const setStatus = (state, text) => notify("onStatus", state, text);

    const lastEventId = () => {
      const stored = Number.parseInt(sessionStorage.getItem(LAST_EVENT_KEY) || "", 10);
      return Number.isFinite(stored) && stored >= 0 ? stored : null;
    };
    const remember = (id) => {
      if (typeof id !== "number" || !Number.isFinite(id)) return;
      const known = lastEventId();
      if (known === null || id > known) sessionStorage.setItem(LAST_EVENT_KEY, String(id));
    };

    const connect = () => {
      clearTimeout(timer);
      clearInterval(countdown);
      const scheme = window.location.protocol === "https:" ? "wss:" : "ws:";
      const since = lastEventId();
      const query = since === null ? "" : `?last_event_id=${since}`;
      setStatus(attempt ? "reconnecting" : "connecting", t(attempt ? "reconnecting" : "connecting"));
      const ws = new WebSocket(`${scheme}//${window.location.host}/ws${query}`);
      socket = ws;
      // Only what is newer than where this connection started is handed over, each event
      // once (a resumed hub may send an event the page already has).
      let floor = since;
      let helloId = null;
      ws.addEventListener("message", (message) => {
        let data;
        try {
          data = JSON.parse(message.data);
        } catch {
          return;
        }
        if (data.type === "hello") {
          attempt = 0;
          setStatus("connected", t("connected"));
          helloId = typeof data.last_event_id === "number" ? data.last_event_id : null;
          if (floor === null) floor = helloId;
          remember(helloId);
          notify("onHello", helloId);
        } else if (data.type === "reset") {
          // The hub no longer has the history after our id: start over from the present.
          floor = helloId;
          if (helloId !== null) sessionStorage.setItem(LAST_EVENT_KEY, String(helloId));
          shown.clear();
          notify("onReset");
        } else if (data.type === "event" && data.event) {
          const id = data.event.id;
          if ((floor !== null && id <= floor) || shown.has(id)) return;
          if (shown.size > 1000) shown.clear();
          shown.add(id);
          remember(id);
          notify("onEvent", data.event);
        } else if (data.type === "heartbeat") {
          if (typeof data.last_event_id === "number" && data.last_event_id > 0) {
            remember(data.last_event_id);
          }
          ws.send(JSON.stringify({ type: "pong" }));
        }
      });
      ws.addEventListener("close", (event) => {
        if (socket === ws) socket = null;
        if (closing) return;
        if (event.code === POLICY_VIOLATION && event.reason === "session_ended") {
          // Signed out elsewhere, deactivated or the password changed: back to the login.
          closing = true;
          const next = window.location.pathname + window.location.search;
          window.location.assign(`/login?next=${encodeURIComponent(next)}`);
          return;
        }
        if (helloId === null) {
          // Refused before it opened: if the session is gone this call leads to the login page.
          api("GET", "/api/v1/auth/me").catch(() => {});
        }
        scheduleReconnect();
      });
    };

    const scheduleReconnect = () => {
      attempt += 1;
      if (!navigator.onLine) {
        setStatus("reconnecting", t("offline"));
        window.addEventListener("online", connect, { once: true });
        return;
      }
      // 1 s, 2 s, 4 s … up to 30 s, with jitter so a restart does not bring everyone at once.
      const delay = Math.min(30000, 1000 * 2 ** (attempt - 1)) * (0.75 + Math.random() * 0.5);
      const until = Date.now() + delay;
      const tick = () => {
        const seconds = Math.max(1, Math.ceil((until - Date.now()) / 1000));
        setStatus("reconnecting", t("reconnecting_in", { seconds }));
      };
      tick();
      countdown = setInterval(tick, 1000);
      timer = setTimeout(connect, delay);
    };

    window.addEventListener("pagehide", () => {
      closing = true;
      if (socket) socket.close(1000);
    });
    connect();
    return {
      /** Drops the connection now; the client reconnects (and resumes) by itself. */
      drop() {
        if (socket) socket.close(1000);
      },
    };
  }

  // --- home: live activity over the websocket ----------------------------------------------

  function setUpRealtime(panel) {
    const status = $("[data-realtime-status]", panel);
    const log = $("[data-realtime-log]", panel);
    const empty = $("[data-realtime-empty]", panel);

    const addEvent = (event) => {
      const label = t(`event_${event.type}`);
      const item = h(
        "li",
        { class: "event", "data-event-id": event.id, "data-event-type": event.type },
        h("span", { class: "event-dot", "aria-hidden": "true" }),
        h(
          "span",
          { class: "event-body" },
          h("span", { class: "event-label" }, label === `event_${event.type}` ? event.type : label),
          h("code", { class: "event-type" }, event.type),
        ),
        timeElement(event.occurred_at, timeFormat),
      );
      log.prepend(item);
      while (log.children.length > MAX_EVENTS) log.lastElementChild.remove();
      if (empty) empty.hidden = true;
    };

    connectRealtime({
      onStatus: (state, text) => {
        status.dataset.state = state;
        status.textContent = text;
      },
      onReset: () => {
        log.replaceChildren();
        if (empty) empty.hidden = false;
      },
      onEvent: addEvent,
    });
  }

  // --- users ------------------------------------------------------------------------------

  function setUpUsers(page) {
    const canManage = page.dataset.canManage === "true";
    const selfId = page.dataset.selfId;
    const table = $("[data-users-table]", page);
    const listMessage = $("[data-list-message]", page);
    const count = $("[data-count]", page);
    const form = $("[data-user-form]", page);
    const formMessage = form ? $("[data-form-message]", form) : null;
    const roles = STRINGS.roles || {};

    const statusBadge = (user) =>
      h(
        "span",
        { class: `badge ${user.is_active ? "ok" : "off"}` },
        t(user.is_active ? "active" : "inactive"),
      );

    const actions = (user) => {
      if (!canManage || user.id === selfId) return h("td", { class: "actions" });
      const toggle = iconButton(
        "power",
        t(user.is_active ? "deactivate" : "activate"),
        user.is_active ? "" : "positive",
        async () => {
          if (user.is_active && !window.confirm(t("confirm_deactivate", { name: user.name }))) {
            return;
          }
          toggle.disabled = true;
          try {
            await api("PATCH", `/api/v1/users/${user.id}`, { is_active: !user.is_active });
            showMessage(
              listMessage,
              "success",
              t(user.is_active ? "deactivated" : "activated", { name: user.name }),
            );
            await load();
          } catch (error) {
            toggle.disabled = false;
            showMessage(listMessage, "error", errorMessage(error));
          }
        },
      );
      const remove = iconButton("trash", t("delete"), "danger", async () => {
        if (!window.confirm(t("confirm_delete", { name: user.name }))) return;
        remove.disabled = true;
        try {
          await api("DELETE", `/api/v1/users/${user.id}`);
          showMessage(listMessage, "success", t("deleted", { name: user.name }));
          await load();
        } catch (error) {
          remove.disabled = false;
          showMessage(listMessage, "error", errorMessage(error));
        }
      });
      return h("td", { class: "actions" }, h("div", { class: "button-row" }, toggle, remove));
    };

    const row = (user) =>
      h(
        "tr",
        { "data-user-id": user.id, class: user.is_active ? "" : "inactive" },
        h(
          "td",
          {},
          h(
            "span",
            { class: "person" },
            h("span", { class: "avatar small", "aria-hidden": "true" }, user.name.slice(0, 1)),
            h("span", { class: "person-name" }, user.name),
            user.id === selfId ? h("span", { class: "muted" }, ` (${t("you")})`) : null,
          ),
        ),
        h("td", { class: "email" }, user.email),
        h("td", {}, h("span", { class: `role-tag role-${user.role}` }, roles[user.role] || user.role)),
        h("td", {}, statusBadge(user)),
        h("td", { class: "nowrap date" }, timeElement(user.created_at, dateFormat)),
        canManage ? actions(user) : null,
      );

    async function load() {
      try {
        const users = await api("GET", "/api/v1/users");
        fillTable(table, users.map(row), t("no_users"));
        if (count) {
          count.textContent =
            users.length === 1 ? t("count_one") : t("count", { count: users.length });
        }
      } catch (error) {
        fillTable(table, [], "");
        showMessage(listMessage, "error", errorMessage(error));
      }
    }

    if (form) {
      const tenantSelect = $("[data-tenant-select]", form);
      if (tenantSelect) {
        api("GET", "/api/v1/tenants")
          .then((tenants) => {
            for (const tenant of tenants) {
              tenantSelect.append(h("option", { value: tenant.id }, `${tenant.name} (${tenant.slug})`));
            }
          })
          .catch(() => {});
      }
      form.addEventListener("submit", async (event) => {
        event.preventDefault();
        showMessage(formMessage, "", "");
        if (!checkForm(form)) return;
        const values = formValues(form);
        const body = {
          name: values.name,
          email: values.email,
          role: values.role,
          password: new FormData(form).get("password"),
        };
        if (values.tenant_id) body.tenant_id = values.tenant_id;
        await busy(form, async () => {
          try {
            const user = await api("POST", "/api/v1/users", body);
            form.reset();
            showMessage(formMessage, "success", t("created", { name: user.name }));
            await load();
          } catch (error) {
            showFormError(form, formMessage, error);
          }
        });
      });
    }
    loadingTable(table);
    load();
  }

  // --- audit ------------------------------------------------------------------------------

  function setUpAudit(page) {
    const table = $("[data-audit-table]", page);
    const listMessage = $("[data-list-message]", page);
    const more = $("[data-load-more]", page);
    const filter = $("[data-audit-filter]", page);
    const PAGE = 50;
    const actionNames = STRINGS.actions || {};
    const resourceNames = STRINGS.resources || {};
    let lastId = null;
    let action = "";

    const json = (value) => h("pre", { class: "json" }, JSON.stringify(value, null, 2));

    const changes = (entry) => {
      if (!entry.before && !entry.after) return h("span", { class: "muted" }, t("none"));
      const parts = [];
      if (entry.before) parts.push(h("div", {}, h("h4", {}, t("before")), json(entry.before)));
      if (entry.after) parts.push(h("div", {}, h("h4", {}, t("after")), json(entry.after)));
      return h(
        "details",
        { class: "changes" },
        h("summary", {}, t("show")),
        h("div", { class: "diff" }, parts),
      );
    };

    const row = (entry) =>
      h(
        "tr",
        { "data-entry-id": entry.id },
        h("td", { class: "nowrap" }, timeElement(entry.occurred_at, preciseFormat)),
        h(
          "td",
          { class: "email" },
          entry.actor_email && !entry.actor_email.startsWith("<")
            ? entry.actor_email
            : h("span", { class: "muted" }, t("system")),
        ),
        h(
          "td",
          {},
          h("span", { class: "action-name" }, actionNames[entry.action] || entry.action),
          h("code", { class: "subtle" }, entry.action),
        ),
        h(
          "td",
          {},
          resourceNames[entry.resource_type] || entry.resource_type,
          entry.resource_id
            ? h("code", { class: "subtle", title: entry.resource_id }, entry.resource_id.slice(0, 8))
            : null,
        ),
        h("td", {}, changes(entry)),
      );

    async function load(append) {
      const params = new URLSearchParams({ limit: String(PAGE) });
      if (append && lastId) params.set("before_id", lastId);
      if (action) params.set("action", action);
      if (!append) loadingTable(table);
      more.disabled = true;
      try {
        const entries = await api("GET", `/api/v1/audit?${params}`);
        showMessage(listMessage, "", "");
        if (append) $("tbody", table).append(...entries.map(row));
        else fillTable(table, entries.map(row), t("no_entries"));
        lastId = entries.length ? entries[entries.length - 1].id : lastId;
        more.hidden = entries.length < PAGE;
      } catch (error) {
        if (!append) fillTable(table, [], "");
        showMessage(listMessage, "error", errorMessage(error));
      } finally {
        more.disabled = false;
      }
    }

    more.addEventListener("click", () => load(true));
    if (filter) {
      filter.addEventListener("submit", (event) => {
        event.preventDefault();
        action = formValues(filter).action || "";
        lastId = null;
        load(false);
      });
    }
    load(false);
  }

  // --- tenants ----------------------------------------------------------------------------

  function setUpTenants(page) {
    const table = $("[data-tenants-table]", page);
    const listMessage = $("[data-list-message]", page);
    const count = $("[data-count]", page);
    const form = $("[data-tenant-form]", page);
    const formMessage = form ? $("[data-form-message]", form) : null;
    const locales = STRINGS.locales || {};
    const modes = STRINGS.modes || {};

    const row = (tenant) =>
      h(
        "tr",
        { "data-tenant-id": tenant.id },
        h("td", {}, h("strong", {}, tenant.name)),
        h("td", {}, h("code", {}, tenant.slug)),
        h("td", {}, tenant.time_zone),
        h("td", {}, locales[tenant.locale] || tenant.locale),
        h("td", {}, h("span", { class: "badge" }, modes[tenant.deployment_mode] || tenant.deployment_mode)),
        h("td", { class: "nowrap date" }, timeElement(tenant.created_at, dateFormat)),
      );

    async function load() {
      try {
        const tenants = await api("GET", "/api/v1/tenants");
        fillTable(table, tenants.map(row), t("no_tenants"));
        if (count) {
          count.textContent =
            tenants.length === 1 ? t("count_one") : t("count", { count: tenants.length });
        }
      } catch (error) {
        fillTable(table, [], "");
        showMessage(listMessage, "error", errorMessage(error));
      }
    }

    if (form) {
      const zones = $("[data-time-zones]", form);
      if (zones && typeof Intl.supportedValuesOf === "function") {
        zones.append(...Intl.supportedValuesOf("timeZone").map((zone) => h("option", { value: zone })));
      }
      const slug = form.elements.namedItem("slug");
      const name = form.elements.namedItem("name");
      let slugTouched = false;
      slug.addEventListener("input", () => {
        slugTouched = slug.value !== "";
      });
      name.addEventListener("input", () => {
        if (slugTouched) return;
        slug.value = name.value
          .normalize("NFD")
          .replace(/[\u0300-\u036f]/g, "")
          .toLowerCase()
          .replace(/[^a-z0-9]+/g, "-")
          .replace(/^-+|-+$/g, "")
          .slice(0, 63);
      });
      form.addEventListener("submit", async (event) => {
        event.preventDefault();
        showMessage(formMessage, "", "");
        if (!checkForm(form)) return;
        const values = formValues(form);
        await busy(form, async () => {
          try {
            const tenant = await api("POST", "/api/v1/tenants", {
              name: values.name,
              slug: values.slug,
              time_zone: values.time_zone,
              locale: values.locale,
              deployment_mode: values.deployment_mode,
            });
            form.reset();
            slugTouched = false;
            showMessage(formMessage, "success", t("created", { name: tenant.name }));
            await load();
          } catch (error) {
            showFormError(form, formMessage, error);
          }
        });
      });
    }
    loadingTable(table);
    load();
  }

  // --- my account -------------------------------------------------------------------------

  function setUpAccount(page) {
    const roles = STRINGS.roles || {};
    const profile = $("[data-profile]", page);

    api("GET", "/api/v1/auth/me")
      .then((me) => {
        $('[data-field="name"]', profile).textContent = me.name;
        $('[data-field="email"]', profile).textContent = me.email;
        $('[data-field="role"]', profile).textContent = roles[me.role] || me.role;
        $('[data-field="created_at"]', profile).replaceChildren(timeElement(me.created_at));
      })
      .catch((error) => showMessage($("[data-profile-message]", page), "error", errorMessage(error)));

    const preferences = $("[data-preferences-form]", page);
    preferences.addEventListener("submit", async (event) => {
      event.preventDefault();
      const message = $("[data-form-message]", preferences);
      await busy(preferences, async () => {
        try {
          await api("PUT", "/api/v1/auth/preferences", formValues(preferences));
          window.location.reload();
        } catch (error) {
          showFormError(preferences, message, error);
        }
      });
    });

    const password = $("[data-password-form]", page);
    password.addEventListener("submit", async (event) => {
      event.preventDefault();
      const message = $("[data-form-message]", password);
      showMessage(message, "", "");
      if (!checkForm(password)) return;
      const data = new FormData(password);
      if (data.get("new_password") !== data.get("confirm_password")) {
        markField(password, "confirm_password", t("password_mismatch"));
        password.elements.namedItem("confirm_password").focus();
        return;
      }
      await busy(password, async () => {
        try {
          await api("POST", "/api/v1/auth/password", {
            current_password: data.get("current_password"),
            new_password: data.get("new_password"),
          });
          password.reset();
          showMessage(message, "success", t("password_changed"));
        } catch (error) {
          if (error instanceof ApiError && error.code === "invalid_credentials") {
            clearFieldErrors(password);
            markField(password, "current_password", t("wrong_current_password"));
            showMessage(message, "error", t("wrong_current_password"));
          } else {
            showFormError(password, message, error);
          }
        }
      });
    });

    const tokenForm = $("[data-token-form]", page);
    const tokenMessage = $("[data-token-message]", page);
    const secret = $("[data-token-secret]", page);
    const secretValue = $("[data-token-value]", page);
    const copy = $("[data-copy]", page);
    const tokens = $("[data-tokens-table]", page);

    const tokenRow = (token) => {
      const revoked = Boolean(token.revoked_at);
      const revoke = revoked
        ? null
        : h(
            "button",
            {
              type: "button",
              class: "button small danger",
              onclick: async () => {
                if (!window.confirm(t("confirm_revoke", { name: token.name }))) return;
                revoke.disabled = true;
                try {
                  await api("DELETE", `/api/v1/tokens/${token.id}`);
                  showMessage(tokenMessage, "success", t("token_revoked", { name: token.name }));
                  await loadTokens();
                } catch (error) {
                  revoke.disabled = false;
                  showMessage(tokenMessage, "error", errorMessage(error));
                }
              },
            },
            t("revoke"),
          );
      return h(
        "tr",
        { "data-token-id": token.id, class: revoked ? "inactive" : "" },
        h("td", {}, h("strong", {}, token.name)),
        h("td", {}, h("code", {}, `${token.prefix}…`)),
        h("td", { class: "nowrap date" }, timeElement(token.created_at, dateFormat)),
        h("td", { class: "nowrap" }, timeElement(token.last_used_at)),
        h(
          "td",
          {},
          h("span", { class: `badge ${revoked ? "off" : "ok"}` }, t(revoked ? "revoked" : "active")),
        ),
        h("td", { class: "actions" }, revoke),
      );
    };

    async function loadTokens() {
      try {
        const list = await api("GET", "/api/v1/tokens");
        fillTable(tokens, list.map(tokenRow), t("no_tokens"));
      } catch (error) {
        fillTable(tokens, [], "");
        showMessage(tokenMessage, "error", errorMessage(error));
      }
    }

    tokenForm.addEventListener("submit", async (event) => {
      event.preventDefault();
      showMessage(tokenMessage, "", "");
      secret.hidden = true;
      if (!checkForm(tokenForm)) return;
      await busy(tokenForm, async () => {
        try {
          const created = await api("POST", "/api/v1/tokens", formValues(tokenForm));
          tokenForm.reset();
          secretValue.textContent = created.token;
          secret.hidden = false;
          copy.textContent = copy.dataset.label || copy.textContent;
          showMessage(tokenMessage, "success", t("token_created", { name: created.name }));
          await loadTokens();
        } catch (error) {
          showFormError(tokenForm, tokenMessage, error);
        }
      });
    });

    copy.dataset.label = copy.textContent;
    copy.addEventListener("click", async () => {
      try {
        await navigator.clipboard.writeText(secretValue.textContent);
        copy.textContent = t("copied");
      } catch {
        const range = document.createRange();
        range.selectNodeContents(secretValue);
        const selection = window.getSelection();
        selection.removeAllRanges();
        selection.addRange(range);
      }
    });

    loadingTable(tokens);
    loadTokens();
  }

  // --- shared with the page scripts (desktop.js, wallboard.js, admin.js) -----------------------

  window.Atiende = Object.freeze({
    STRINGS,
    readJson,
    fillIn,
    t,
    h,
    $,
    $$,
    icon,
    icons: ICONS, // page scripts may add their own drawings
    api,
    csrfToken,
    ApiError,
    errorMessage,
    showMessage,
    clearFieldErrors,
    markField,
    showFormError,
    checkForm,
    busy,
    fillTable,
    formatDate,
    timeElement,
    formats: { dateTime: dateTimeFormat, date: dateFormat, time: timeFormat, precise: preciseFormat },
    connectRealtime,
  });

  // --- start ------------------------------------------------------------------------------

  const PAGES = {
    users: setUpUsers,
    audit: setUpAudit,
    tenants: setUpTenants,
    account: setUpAccount,
  };

  function start() {
    setUpNavigation();
    setUpLanguage();
    const realtime = $("[data-realtime]");
    if (realtime) setUpRealtime(realtime);
    for (const page of $$("[data-page]")) {
      const setUp = PAGES[page.dataset.page];
      if (setUp) setUp(page);
    }
  }

  if (document.readyState === "loading") document.addEventListener("DOMContentLoaded", start);
  else start();
})();
