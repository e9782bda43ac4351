/* The helpdesk pages: hand-written, no dependencies.
 *
 * /helpdesk (a customer's cases and the form to open one), /helpdesk/cases/<id> (one case,
 * for its customer and for support staff) and /support (the support team's queue and the
 * monthly compliance), over the JSON API of docs/helpdesk.md. The API computes every SLA
 * figure; this script only shows them. Due times are shown on the Mexico City wall clock,
 * the clock the terms count in. Strings come from the page (id="i18n-page", shared by the
 * three pages, and id="i18n-helpdesk", this page's own); the helpers are window.Atiende.
 */
"use strict";

(() => {
  const A = window.Atiende;
  if (!A) return;
  const { h, $, $$, api, ApiError, showMessage, checkForm, busy, fillTable } = A;

  const LOCAL = A.readJson("i18n-helpdesk");
  const t = (key, values) => (key in LOCAL ? A.fillIn(LOCAL[key], values) : A.t(key, values));
  const label = (group, value) => (A.STRINGS[group] || {})[value] || value;

  const API = "/api/v1/helpdesk";
  const ZONE = "America/Mexico_City";
  const FILE_MAX_BYTES = 10 * 1024 * 1024;
  const LANGUAGE = document.documentElement.lang || undefined;
  const mexicoFormat = new Intl.DateTimeFormat(LANGUAGE, {
    timeZone: ZONE,
    dateStyle: "medium",
    timeStyle: "short",
  });
  const shortMexicoFormat = new Intl.DateTimeFormat(LANGUAGE, {
    timeZone: ZONE,
    month: "short",
    day: "numeric",
    hour: "numeric",
    minute: "2-digit",
  });

  // --- what a case looks like -------------------------------------------------------------

  /** An instant from the API on the Mexico City wall clock, with the zone named. */
  const mexicoTime = (value) =>
    t("mexico_city_time", { time: mexicoFormat.format(new Date(value)) });

  function mexicoTimeElement(value) {
    return h("time", { datetime: value, title: A.formatDate(value, A.formats.precise) }, mexicoTime(value));
  }

  /** The same, short (no year), where the page names the zone; the full text on hover. */
  function shortMexicoTimeElement(value) {
    const date = new Date(value);
    return h("time", { datetime: value, title: mexicoTime(value) }, shortMexicoFormat.format(date));
  }

  /** The instant on one line and the zone, muted, under it (narrow boxes). */
  const stackedMexicoTime = (value) => [
    h("time", { datetime: value }, mexicoFormat.format(new Date(value))),
    h("span", { class: "zone" }, t("mexico_city")),
  ];

  /** Counted time, "5 h 20 min", rounded up to the minute. */
  function duration(seconds) {
    const minutes = Math.max(0, Math.ceil(seconds / 60));
    const hours = Math.floor(minutes / 60);
    if (hours === 0) return t("minutes_only", { minutes });
    if (minutes % 60 === 0) return t("hours_only", { hours });
    return t("hours_minutes", { hours, minutes: minutes % 60 });
  }

  /** Where a case stands against its first-answer target. */
  function standing(sla) {
    if (sla.met === true) return "met";
    if (sla.met === false) return "late";
    if (sla.breached) return "breached";
    if (sla.at_risk) return "at_risk";
    return "on_time";
  }

  const slaBadge = (sla) => {
    const key = standing(sla);
    return h("span", { class: `badge sla-${key}`, "data-testid": "sla-badge", "data-sla": key }, t(`sla_${key}`));
  };

  const stateBadge = (state, staff) =>
    h(
      "span",
      { class: `badge state-${state}`, "data-testid": "case-state", "data-state": state },
      label("states", !staff && state === "waiting_on_customer" ? "waiting_on_you" : state),
    );

  const severityTag = (severity) =>
    h("span", { class: `severity sev-${severity}`, "data-severity": severity }, label("severities", severity));

  const casePath = (id) => `/helpdesk/cases/${encodeURIComponent(id)}`;

  // --- files ------------------------------------------------------------------------------

  /** Attaches one file to a case (multipart, with the CSRF header); rejects with ApiError. */
  async function upload(caseId, file) {
    if (file.size > FILE_MAX_BYTES) {
      throw new ApiError(413, { code: "attachment_too_large", message: "" });
    }
    const body = new FormData();
    body.append("file", file, file.name);
    let response;
    try {
      response = await fetch(`${API}/cases/${encodeURIComponent(caseId)}/files`, {
        method: "POST",
        headers: { Accept: "application/json", "X-CSRF-Token": A.csrfToken() },
        credentials: "same-origin",
        body,
      });
    } catch {
      throw new ApiError(0, null);
    }
    let payload = null;
    try {
      payload = await response.json();
    } catch {
      payload = null;
    }
    if (!response.ok) throw new ApiError(response.status, payload);
    return payload;
  }

  /** Uploads every chosen file; returns what was stored and a sentence per refusal. */
  async function uploadAll(caseId, input) {
    const stored = [];
    const refused = [];
    for (const file of Array.from((input && input.files) || [])) {
      try {
        stored.push(await upload(caseId, file));
      } catch (error) {
        refused.push(t("file_failed", { name: file.name, reason: A.errorMessage(error) }));
      }
    }
    return { stored, refused };
  }

  const fileLink = (caseId, file) =>
    h(
      "a",
      { href: `${API}/cases/${encodeURIComponent(caseId)}/files/${encodeURIComponent(file.id)}`, download: file.name },
      file.name,
    );

  // --- /helpdesk: the account's cases and a new one ------------------------------------------

  function setUpCustomer(page) {
    const table = $("[data-cases]", page);
    const listMessage = $("[data-list-message]", page);
    const form = $("[data-case-form]", page);
    const formMessage = $("[data-form-message]", form);
    const opened = $("[data-opened]", page);

    const row = (item) =>
      h(
        "tr",
        { "data-case-id": item.id, "data-case-number": item.number },
        h("td", { class: "number" }, h("a", { href: casePath(item.id) }, `#${item.number}`)),
        h("td", {}, h("a", { class: "case-title", href: casePath(item.id) }, item.title)),
        h("td", {}, severityTag(item.severity)),
        h("td", {}, stateBadge(item.state, false)),
        h("td", { class: "due", "data-testid": "case-due" }, mexicoTimeElement(item.sla.due_at)),
        h("td", {}, slaBadge(item.sla)),
      );

    async function load() {
      try {
        const cases = await api("GET", `${API}/cases`);
        showMessage(listMessage, "", "");
        fillTable(table, cases.map(row), t("no_cases"));
      } catch (error) {
        fillTable(table, [], "");
        showMessage(listMessage, "error", A.errorMessage(error));
      }
    }

    form.addEventListener("submit", async (event) => {
      event.preventDefault();
      showMessage(formMessage, "", "");
      if (!checkForm(form)) return;
      const data = new FormData(form);
      const body = {
        severity: String(data.get("severity") || ""),
        title: String(data.get("title") || "").trim(),
        description: String(data.get("description") || "").trim(),
        product_area: String(data.get("product_area") || ""),
      };
      await busy(form, async () => {
        let created;
        try {
          created = await api("POST", `${API}/cases`, body);
        } catch (error) {
          A.showFormError(form, formMessage, error);
          return;
        }
        const files = await uploadAll(created.id, form.elements.namedItem("files"));
        form.reset();
        $("[data-opened-title]", opened).textContent = t("opened_title", {
          number: created.number,
          title: created.title,
        });
        $("[data-opened-due]", opened).replaceChildren(mexicoTimeElement(created.sla.due_at));
        $("[data-opened-link]", opened).setAttribute("href", casePath(created.id));
        const note = $("[data-opened-message]", opened);
        if (files.refused.length) showMessage(note, "error", files.refused.join(" "));
        else if (files.stored.length) {
          showMessage(note, "success", t("opened_files", { names: files.stored.map((f) => f.name).join(", ") }));
        } else showMessage(note, "", "");
        opened.hidden = false;
        opened.scrollIntoView({ block: "nearest" });
        await load();
      });
    });

    return load();
  }

  // --- /helpdesk/cases/<id>: one case ------------------------------------------------------

  function setUpCase(page) {
    const id = page.dataset.caseId;
    const staff = page.dataset.staff === "true";
    const me = page.dataset.userId;
    const path = `${API}/cases/${encodeURIComponent(id)}`;
    const pageMessage = $("[data-page-message]", page);
    const actionsMessage = $("[data-actions-message]", page);
    const reply = $("[data-reply-form]", page);
    const replyMessage = $("[data-form-message]", reply);
    let current = null;

    function author(message) {
      if (message.author_kind === "support") {
        return staff && message.author_id === me ? t("author_support_you") : t("author_support");
      }
      if (staff) return t("author_customer");
      return message.author_id === me ? t("author_you") : t("author_your_team");
    }

    function bubble(message, files) {
      const attached = message.attachment_ids
        .map((fileId) => files.find((file) => file.id === fileId))
        .filter(Boolean);
      return h(
        "li",
        {
          class: `bubble from-${message.author_kind}${message.internal ? " internal" : ""}`,
          "data-message-id": message.id,
          "data-author": message.author_kind,
          "data-internal": message.internal ? "true" : "false",
        },
        h(
          "header",
          {},
          h("strong", {}, author(message)),
          message.internal ? h("span", { class: "badge internal", "data-testid": "internal-note" }, t("internal_note")) : null,
          shortMexicoTimeElement(message.created_at),
        ),
        h("p", { class: "text" }, message.body),
        attached.length ? h("div", { class: "attached" }, attached.map((file) => fileLink(id, file))) : null,
      );
    }

    function eventText(event) {
      const data = event.data || {};
      switch (event.kind) {
        case "opened":
          return t("event_opened", { severity: label("severities", data.severity) });
        case "assigned":
          return data.assignee_id === me ? t("event_assigned_me") : t("event_assigned");
        case "state":
          return t("event_state", { state: label("states", data.after) });
        case "severity":
          return t("event_severity", {
            before: label("severities", data.before),
            after: label("severities", data.after),
            reason: data.reason,
          });
        case "closed":
          return t("event_closed", { reason: label("reasons", data.reason) });
        case "reopened":
          return t("event_reopened");
        case "first_response":
          return t("event_first_response");
        case "file":
          return t("event_file", { name: data.name });
        case "sla_at_risk":
        case "sla_breached":
          return staff ? t(`event_${event.kind}`) : null;
        default:
          return null; // messages and notes are in the thread
      }
    }

    function renderHead(item) {
      document.title = `#${item.number} ${item.title} · Atiende`;
      $("[data-case-number]", page).textContent = t("case_number", { number: item.number });
      $("[data-case-title]", page).textContent = item.title;
      const assignee = item.assignee_id
        ? item.assignee_id === me
          ? t("assigned_to_me")
          : t("assigned_to_other")
        : t("unassigned");
      const tags = [
        severityTag(item.severity),
        stateBadge(item.state, staff),
        h("span", { class: "muted", "data-testid": "case-area" }, t("area", { area: label("areas", item.product_area) })),
      ];
      if (staff) tags.push(h("span", { class: "muted", "data-testid": "case-assignee" }, assignee));
      $("[data-case-tags]", page).replaceChildren(...tags);
      $("[data-description]", page).textContent = item.description;
      $("[data-case-meta]", page).replaceChildren(
        h("span", {}, t("opened_at", { time: mexicoTime(item.opened_at) })),
        h("span", {}, t("opened_by", { email: item.opener_email })),
      );
    }

    function renderSla(item) {
      const sla = item.sla;
      const key = standing(sla);
      $("[data-sla-badge]", page).replaceChildren(slaBadge(sla));
      $("[data-sla-due]", page).replaceChildren(...stackedMexicoTime(sla.due_at));
      const answered = sla.met !== null;
      $("[data-sla-left-label]", page).textContent = answered ? t("answered_at") : t("time_left");
      $("[data-sla-left]", page).replaceChildren(
        ...(answered
          ? stackedMexicoTime(item.first_response_at)
          : [sla.breached
            ? h("span", { class: "muted" }, t("overdue"))
            : duration(sla.remaining_seconds)]),
      );
      $("[data-sla-plan]", page).textContent = t(`plan_${item.plan}`);
      const meter = $("[data-sla-meter]", page);
      meter.hidden = answered;
      meter.className = `meter sla-${key}`;
      $("span", meter).style.width = `${Math.min(100, Math.round(sla.elapsed_fraction * 100))}%`;
      $("[data-sla-hint]", page).hidden = answered;
    }

    function renderThread(item) {
      const list = $("[data-thread]", page);
      list.replaceChildren(...item.messages.map((message) => bubble(message, item.files)));
      $("[data-thread-empty]", page).hidden = item.messages.length > 0;
      const closed = item.state === "closed";
      reply.hidden = closed;
      const note = $("[data-closed-note]", page);
      note.hidden = !closed;
      if (closed) {
        const parts = [
          t("closed_note", {
            time: mexicoTime(item.closed_at),
            reason: label("reasons", item.close_reason),
          }),
        ];
        if (item.excluded_category) {
          parts.push(t("closed_category", { category: label("categories", item.excluded_category) }));
        }
        const days = Number(page.dataset.reopenDays || "0");
        const until = new Date(new Date(item.closed_at).getTime() + days * 86400000);
        if (until > new Date()) parts.push(t("reopen_until", { time: mexicoTime(until.toISOString()) }));
        note.textContent = parts.join(" ");
      }
    }

    function renderSide(item) {
      const closed = item.state === "closed";
      for (const group of $$("[data-open-only]", page)) group.hidden = closed;
      for (const group of $$("[data-closed-only]", page)) group.hidden = !closed;
      const assign = $("[data-assign]", page);
      if (assign) assign.hidden = item.assignee_id === me;
      for (const button of $$("[data-state]", page)) {
        button.disabled = button.dataset.state === item.state;
      }
      const severity = $("[data-severity-form] select", page);
      if (severity) severity.value = item.severity;

      const files = $("[data-files]", page);
      if (item.files.length) {
        files.replaceChildren(
          ...item.files.map((file) =>
            h("li", { "data-file-id": file.id }, fileLink(id, file), h("span", { class: "muted nowrap" }, shortMexicoTimeElement(file.created_at))),
          ),
        );
      } else files.replaceChildren(h("li", { class: "muted" }, t("no_files")));

      const history = $("[data-history]", page);
      history.replaceChildren(
        ...item.events
          .map((event) => [event, eventText(event)])
          .filter(([, text]) => text)
          .map(([event, text]) => h("li", {}, h("span", {}, text), shortMexicoTimeElement(event.created_at))),
      );
    }

    function render(item) {
      current = item;
      renderHead(item);
      renderSla(item);
      renderThread(item);
      renderSide(item);
      $("[data-case-body]", page).hidden = false;
    }

    async function load() {
      try {
        render(await api("GET", path));
      } catch (error) {
        const missing = error instanceof ApiError && (error.status === 404 || error.status === 422);
        $("[data-case-title]", page).textContent = "";
        showMessage(pageMessage, "error", missing ? t("error_case_not_found") : A.errorMessage(error));
      }
    }

    /** Runs one action on the case, then shows the case as it is now. */
    async function act(button, work, done) {
      showMessage(actionsMessage, "", "");
      if (button) button.disabled = true;
      try {
        await work();
        await load();
        if (done) showMessage(actionsMessage, "success", done);
      } catch (error) {
        showMessage(actionsMessage, "error", A.errorMessage(error));
      } finally {
        if (button) button.disabled = false;
        if (current) renderSide(current);
      }
    }

    reply.addEventListener("submit", async (event) => {
      event.preventDefault();
      showMessage(replyMessage, "", "");
      if (!checkForm(reply)) return;
      const internalBox = reply.elements.namedItem("internal");
      const internal = Boolean(internalBox && internalBox.checked);
      await busy(reply, async () => {
        const files = await uploadAll(id, reply.elements.namedItem("files"));
        if (files.refused.length) {
          showMessage(replyMessage, "error", files.refused.join(" "));
          if (files.stored.length) await load();
          return;
        }
        try {
          await api("POST", `${path}/messages`, {
            body: String(new FormData(reply).get("body") || "").trim(),
            internal,
            attachment_ids: files.stored.map((file) => file.id),
          });
        } catch (error) {
          A.showFormError(reply, replyMessage, error);
          if (files.stored.length) await load();
          return;
        }
        reply.reset();
        await load();
        showMessage(replyMessage, "success", internal ? t("note_saved") : t("sent"));
      });
    });

    for (const button of $$("[data-close-as]", page)) {
      button.addEventListener("click", () => {
        const reason = button.dataset.closeAs;
        const question = reason === "customer_confirmed" ? t("confirm_close_confirmed") : t("confirm_close_archived");
        if (!window.confirm(question)) return;
        act(button, () => api("POST", `${path}/close`, { reason }));
      });
    }

    const reopen = $("[data-reopen]", page);
    reopen.addEventListener("click", () => {
      if (!window.confirm(t("confirm_reopen"))) return;
      act(reopen, () => api("POST", `${path}/reopen`));
    });

    if (staff) {
      const assign = $("[data-assign]", page);
      assign.addEventListener("click", () => act(assign, () => api("POST", `${path}/assign`, {})));

      for (const button of $$("[data-state]", page)) {
        button.addEventListener("click", () =>
          act(button, () => api("POST", `${path}/state`, { state: button.dataset.state }), t("changed")),
        );
      }

      const severityForm = $("[data-severity-form]", page);
      severityForm.addEventListener("submit", (event) => {
        event.preventDefault();
        const severity = severityForm.elements.namedItem("severity").value;
        if (current && severity === current.severity) {
          showMessage(actionsMessage, "error", t("error_no_change"));
          return;
        }
        const reason = window.prompt(t("severity_reason"));
        if (reason === null || !reason.trim()) return;
        act($("button", severityForm), () =>
          api("POST", `${path}/severity`, { severity, reason: reason.trim() }),
          t("changed"),
        );
      });

      const closeForm = $("[data-close-form]", page);
      const reasonSelect = closeForm.elements.namedItem("reason");
      const categoryField = $("[data-category-field]", closeForm);
      const categorySelect = closeForm.elements.namedItem("excluded_category");
      const syncCategory = () => {
        const needed = reasonSelect.value === "out_of_scope";
        categoryField.hidden = !needed;
        categorySelect.required = needed;
        if (!needed) categorySelect.value = "";
      };
      reasonSelect.addEventListener("change", syncCategory);
      closeForm.addEventListener("submit", (event) => {
        event.preventDefault();
        showMessage(actionsMessage, "", "");
        if (!checkForm(closeForm)) return;
        const values = new FormData(closeForm);
        const body = { reason: String(values.get("reason")) };
        if (body.reason === "out_of_scope") body.excluded_category = String(values.get("excluded_category"));
        const note = String(values.get("note") || "").trim();
        if (note) body.note = note;
        act($("button[type=submit]", closeForm), async () => {
          await api("POST", `${path}/close`, body);
          closeForm.reset();
          syncCategory();
        });
      });
    }

    return load();
  }

  // --- /support: the queue and the compliance ------------------------------------------------

  function setUpQueue(page) {
    const me = page.dataset.userId;
    const table = $("[data-queue]", page);
    const listMessage = $("[data-list-message]", page);
    const summary = $("[data-summary]", page);
    const monthForm = $("[data-month-form]", page);
    const monthInput = monthForm.elements.namedItem("month");
    const compliance = $("[data-compliance]", page);
    const complianceMessage = $("[data-compliance-message]", page);

    function assignee(item) {
      if (!item.assignee_id) return h("span", { class: "muted" }, t("unassigned"));
      if (item.assignee_id === me) return h("span", { class: "mine" }, t("assignee_me"));
      return h("span", {}, t("assignee_other"));
    }

    /** The badge, and under it the counted time left while there is some. */
    function level(item) {
      const key = standing(item.sla);
      let left = null;
      if (key === "on_time" || key === "at_risk") {
        left = h("span", { class: "left" }, t("left", { time: duration(item.sla.remaining_seconds) }));
      }
      return h("td", { class: "level" }, slaBadge(item.sla), left);
    }

    const row = (item) =>
      h(
        "tr",
        { class: `risk-${standing(item.sla)}`, "data-case-id": item.id, "data-case-number": item.number },
        h("td", { class: "number" }, h("a", { href: casePath(item.id) }, `#${item.number}`)),
        h(
          "td",
          {},
          h("a", { class: "case-title", href: casePath(item.id) }, item.title),
          h("span", { class: "sub" }, `${item.opener_email} · ${label("areas", item.product_area)}`),
        ),
        h("td", {}, severityTag(item.severity)),
        h("td", {}, stateBadge(item.state, true)),
        h("td", { class: "due" }, shortMexicoTimeElement(item.sla.due_at)),
        level(item),
        h("td", { "data-testid": "assignee" }, assignee(item)),
      );

    function summarise(cases) {
      const counts = { breached: 0, at_risk: 0, on_time: 0, answered: 0 };
      for (const item of cases) {
        const key = standing(item.sla);
        counts[key === "met" || key === "late" ? "answered" : key] += 1;
      }
      const badgeClass = { breached: "sla-breached", at_risk: "sla-at_risk", on_time: "sla-on_time", answered: "sla-met" };
      summary.replaceChildren(
        ...Object.entries(counts)
          .filter(([, count]) => count > 0)
          .map(([key, count]) => h("span", { class: `badge ${badgeClass[key]}` }, t(`summary_${key}`, { count }))),
      );
    }

    async function load() {
      try {
        const cases = await api("GET", `${API}/cases?open=true`);
        showMessage(listMessage, "", "");
        fillTable(table, cases.map(row), t("no_open_cases"));
        summarise(cases);
      } catch (error) {
        fillTable(table, [], "");
        showMessage(listMessage, "error", A.errorMessage(error));
      }
    }

    const count = (value) => h("td", { class: "count" }, String(value));

    async function loadCompliance() {
      const month = monthInput.value;
      if (!/^\d{4}-\d{2}$/.test(month)) {
        showMessage(complianceMessage, "error", t("error_invalid_month"));
        return;
      }
      try {
        const report = await api("GET", `${API}/compliance?month=${encodeURIComponent(month)}`);
        showMessage(complianceMessage, "", "");
        fillTable(
          compliance,
          report.rows.map((line) =>
            h(
              "tr",
              { "data-severity": line.severity },
              h("td", {}, severityTag(line.severity)),
              count(line.opened),
              count(line.answered_in_time),
              count(line.answered_late),
              count(line.unanswered_breached),
              count(line.open_in_time),
              h(
                "td",
                { class: "count", "data-testid": "compliance-percent" },
                line.compliance_percent === null ? "—" : `${line.compliance_percent.toFixed(1)} %`,
              ),
            ),
          ),
        );
      } catch (error) {
        fillTable(compliance, [], "");
        showMessage(complianceMessage, "error", A.errorMessage(error));
      }
    }

    // This month on the Mexico City calendar, the one the report counts in.
    const parts = Object.fromEntries(
      new Intl.DateTimeFormat("en-US", { timeZone: ZONE, year: "numeric", month: "2-digit" })
        .formatToParts(new Date())
        .map((part) => [part.type, part.value]),
    );
    monthInput.value = `${parts.year}-${parts.month}`;
    monthForm.addEventListener("submit", (event) => {
      event.preventDefault();
      loadCompliance();
    });
    monthInput.addEventListener("change", loadCompliance);
    $("[data-refresh]", page).addEventListener("click", () => {
      load();
      loadCompliance();
    });
    // The queue moves with the clock: refresh it every minute while the page is open.
    window.setInterval(() => {
      if (document.visibilityState === "visible") load();
    }, 60000);

    return Promise.all([load(), loadCompliance()]);
  }

  // --- start ------------------------------------------------------------------------------

  const PAGES = { customer: setUpCustomer, case: setUpCase, queue: setUpQueue };

  function start() {
    for (const page of $$("[data-helpdesk]")) {
      const setUp = PAGES[page.dataset.helpdesk];
      if (!setUp) continue;
      Promise.resolve(setUp(page))
        .catch(() => {})
        .then(() => page.setAttribute("data-ready", "true"));
    }
  }

  if (document.readyState === "loading") document.addEventListener("DOMContentLoaded", start);
  else start();
})();
