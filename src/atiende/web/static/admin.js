/* Contact-center configuration pages (/admin/...): hand-written, no dependencies.
 *
 * Each page is a list and a form over one JSON resource of /api/v1 (see
 * docs/routing-admin.md). Admins write; for supervisors the server renders the forms disabled
 * and this script offers "View" instead of "Edit". API errors are shown next to the fields they
 * name (details.field, details.errors[].field) and in the form's message box.
 * Uses the helpers atiende.js exposes as window.Atiende.
 */
"use strict";

(() => {
  const A = window.Atiende;
  if (!A) return;
  const { h, $, $$, api, errorMessage, showMessage, clearFieldErrors, checkForm, busy, fillTable } = A;

  // This page's own strings (id="i18n-admin") first, then the shared ones.
  const LOCAL = A.readJson("i18n-admin");
  const t = (key, values) => (key in LOCAL ? A.fillIn(LOCAL[key], values) : A.t(key, values));
  const labels = (group) => LOCAL[group] || A.STRINGS[group] || {};
  // A page's own error sentences join the shared ones, so A.errorMessage finds them.
  for (const [key, value] of Object.entries(LOCAL)) {
    if (key.startsWith("error_")) A.STRINGS[key] = value;
  }

  // --- forms ------------------------------------------------------------------------------

  /** The API's error: its sentence in the message box, next to the field it is about, and a
   * hint next to every other field it names. */
  const showFormError = (form, box, error) => A.showFormError(form, box, error, true);

  const text = (form, name) => {
    const input = form.elements.namedItem(name);
    return input ? input.value.trim() : "";
  };
  const orNull = (value) => (value === "" ? null : value);
  const number = (form, name) => {
    const value = text(form, name);
    return value === "" ? null : Number(value);
  };
  const checked = (form, name) => {
    const input = form.elements.namedItem(name);
    return Boolean(input && input.checked);
  };
  const checkedValues = (form, name) =>
    $$(`input[name="${name}"]`, form)
      .filter((input) => input.checked)
      .map((input) => input.value);

  function setValue(form, name, value) {
    const input = form.elements.namedItem(name);
    if (!input) return;
    if (input.type === "checkbox") input.checked = Boolean(value);
    else input.value = value === null || value === undefined ? "" : String(value);
  }

  function setChecked(form, name, values) {
    for (const input of $$(`input[name="${name}"]`, form)) {
      input.checked = values.includes(input.value);
    }
  }

  function fillSelect(select, items, keepFirst = true) {
    const first = keepFirst ? select.querySelector("option[value='']") : null;
    const current = select.value;
    select.replaceChildren(...(first ? [first] : []));
    for (const item of items) select.append(h("option", { value: item.value }, item.label));
    select.value = current;
  }

  /** Skill id → level editor: a checkbox and a level per skill. */
  function levelEditor(container, skills, disabled) {
    container.replaceChildren();
    if (!skills.length) {
      container.append(h("span", { class: "hint" }, t("no_skills_yet")));
    }
    for (const skill of skills) {
      const box = h("input", { type: "checkbox", "data-skill": skill.id, disabled });
      const level = h("input", {
        type: "number",
        min: 1,
        max: 10,
        value: 1,
        "data-level": skill.id,
        "aria-label": skill.name,
        disabled,
      });
      container.append(h("div", { class: "level-row" }, h("label", {}, box, skill.name), level));
    }
    return {
      get() {
        const levels = {};
        for (const box of $$("[data-skill]", container)) {
          if (!box.checked) continue;
          const level = $(`[data-level="${box.dataset.skill}"]`, container);
          levels[box.dataset.skill] = Number(level.value);
        }
        return levels;
      },
      set(levels) {
        for (const box of $$("[data-skill]", container)) {
          const id = box.dataset.skill;
          box.checked = id in (levels || {});
          $(`[data-level="${id}"]`, container).value = String((levels || {})[id] || 1);
        }
      },
    };
  }

  function smallButton(label, className, onclick, testid) {
    return h(
      "button",
      { type: "button", class: `button small ${className}`, onclick, "data-testid": testid },
      label,
    );
  }

  /**
   * A list and its form over one collection. options:
   *   endpoint, list (table or container), form, canWrite, empty (text),
   *   row(item, actions) → element, body(form, editing) → JSON, fill(form, item),
   *   name(item), canEdit(item), canDelete(item), onEdit(item|null), onLoaded(items)
   */
  function collection(page, options) {
    const form = options.form;
    const formMessage = form ? $("[data-form-message]", form) : null;
    const listMessage = $("[data-list-message]", page) || formMessage;
    const title = options.title || null;
    const submit = form ? $("button[type=submit]", form) : null;
    const cancel = form ? $("[data-cancel]", form) : null;
    let editing = null;
    let items = [];

    function setEditing(item) {
      editing = item;
      if (title) {
        title.textContent = item
          ? title.dataset.edit.replace("{name}", options.name(item))
          : title.dataset.new;
      }
      if (submit) submit.textContent = item ? submit.dataset.labelEdit : submit.dataset.labelNew;
      if (cancel) cancel.hidden = !item;
      if (form) {
        clearFieldErrors(form);
        if (item) options.fill(form, item);
        else {
          form.reset();
          if (options.reset) options.reset(form);
        }
      }
      if (options.onEdit) options.onEdit(item);
    }

    function actions(item) {
      const list = [];
      const editable = !options.canEdit || options.canEdit(item);
      if (form && (editable || !options.canWrite)) {
        list.push(
          smallButton(options.canWrite ? t("edit") : t("view"), "", () => {
            setEditing(item);
            (title || form).scrollIntoView({ block: "start" });
          }, "edit"),
        );
      }
      if (options.canWrite && editable && (!options.canDelete || options.canDelete(item))) {
        list.push(
          smallButton(t("delete"), "danger", async () => {
            const name = options.name(item);
            if (!window.confirm(t("confirm_delete", { name }))) return;
            try {
              await api("DELETE", `${options.endpoint}/${item.id}`);
              showMessage(listMessage, "success", t("deleted", { name }));
              if (editing && editing.id === item.id) setEditing(null);
              await load();
            } catch (error) {
              showMessage(listMessage, "error", errorMessage(error));
            }
          }, "delete"),
        );
      }
      return h("div", { class: "row-actions" }, list);
    }

    async function load() {
      try {
        items = await api("GET", options.listPath || options.endpoint);
        const rows = items.map((item) => options.row(item, actions(item)));
        if (options.list.tagName === "TABLE") fillTable(options.list, rows, options.empty);
        else options.list.replaceChildren(...(rows.length ? rows : [h("p", { class: "muted" }, options.empty)]));
        if (options.onLoaded) await options.onLoaded(items);
      } catch (error) {
        showMessage(listMessage, "error", errorMessage(error));
      }
      return items;
    }

    if (form && options.canWrite) {
      form.addEventListener("submit", async (event) => {
        event.preventDefault();
        showMessage(formMessage, "", "");
        if (!checkForm(form)) return;
        const body = options.body(form, editing);
        await busy(form, async () => {
          try {
            const saved = editing
              ? await api("PATCH", `${options.endpoint}/${editing.id}`, body)
              : await api("POST", options.endpoint, body);
            const wasEditing = Boolean(editing);
            if (options.afterSave) await options.afterSave(saved, form);
            await load();
            const fresh = items.find((item) => item.id === saved.id) || saved;
            if (wasEditing || options.keepEditing) setEditing(fresh);
            else setEditing(null);
            showMessage(
              formMessage,
              "success",
              t(wasEditing ? "saved" : "created", { name: options.name(fresh) }),
            );
          } catch (error) {
            showFormError(form, formMessage, error);
          }
        });
      });
      if (cancel) cancel.addEventListener("click", () => setEditing(null));
    }

    return { load, setEditing, items: () => items, editing: () => editing };
  }

  const canWriteOf = (page) => page.dataset.canWrite === "true";

  // --- queues -----------------------------------------------------------------------------

  async function setUpQueues(page) {
    const form = $("[data-form]", page);
    const canWrite = canWriteOf(page);
    const extra = $("[data-queue-extra]", page);
    const membersForm = $("[data-members-form]", page);
    const membersSelect = $("select[name=agent_ids]", membersForm);
    const dispositions = $("[data-dispositions]", page);
    const dispositionForm = $("[data-disposition-form]", page);
    const channelNames = labels("channels");
    const strategyNames = labels("strategies");
    let levels = levelEditor($("[data-levels]", form), [], !canWrite);
    let current = null;

    const [skills, schedules, agents] = await Promise.all([
      api("GET", "/api/v1/skills").catch(() => []),
      api("GET", "/api/v1/schedules").catch(() => []),
      api("GET", "/api/v1/agents").catch(() => []),
    ]);
    levels = levelEditor($("[data-levels]", form), skills, !canWrite);
    fillSelect(
      $("[data-options=schedules]", form),
      schedules.map((s) => ({ value: s.id, label: s.name })),
    );
    fillSelect(
      membersSelect,
      agents.map((a) => ({ value: a.id, label: `${a.name} (${a.email})` })),
      false,
    );

    async function loadDispositions() {
      if (!current) return;
      const queueId = current.id;
      try {
        const list = await api("GET", `/api/v1/queues/${queueId}/dispositions`);
        fillTable(
          dispositions,
          list.map((d) =>
            h(
              "tr",
              { "data-disposition": d.code },
              h("td", {}, h("code", {}, d.code)),
              h("td", {}, d.label),
              h(
                "td",
                { class: "actions" },
                canWrite
                  ? smallButton(t("delete"), "danger", async () => {
                      if (!window.confirm(t("confirm_delete", { name: d.label }))) return;
                      try {
                        await api("DELETE", `/api/v1/queues/${queueId}/dispositions/${d.id}`);
                        await loadDispositions();
                      } catch (error) {
                        showMessage($("[data-form-message]", membersForm), "error", errorMessage(error));
                      }
                    }, "delete-disposition")
                  : null,
              ),
            ),
          ),
          t("no_dispositions"),
        );
      } catch (error) {
        fillTable(dispositions, [], errorMessage(error));
      }
    }

    async function showExtra(queue) {
      current = queue;
      extra.hidden = !queue;
      if (!queue) return;
      showMessage($("[data-form-message]", membersForm), "", "");
      // Locked until this queue's members are in: a choice made before they arrive would
      // be overwritten by them (and then saved as an empty list).
      membersSelect.disabled = true;
      try {
        const members = await api("GET", `/api/v1/queues/${queue.id}/members`);
        if (current !== queue) return; // another queue was opened meanwhile
        for (const option of membersSelect.options) {
          option.selected = members.agent_ids.includes(option.value);
        }
      } catch (error) {
        showMessage($("[data-form-message]", membersForm), "error", errorMessage(error));
      } finally {
        if (current === queue) membersSelect.disabled = !canWrite;
      }
      await loadDispositions();
    }

    const queues = collection(page, {
      endpoint: "/api/v1/queues",
      list: $("[data-list]", page),
      form,
      title: $("[data-form-title]", page),
      canWrite,
      empty: t("no_queues"),
      keepEditing: true,
      name: (q) => q.name,
      row: (q, actions) =>
        h(
          "tr",
          { "data-queue": q.name },
          h("td", {}, h("strong", {}, q.name)),
          h("td", {}, q.channels.map((c) => channelNames[c] || c).join(", ")),
          h("td", { "data-strategy": q.strategy }, strategyNames[q.strategy] || q.strategy),
          h("td", {}, String(q.priority)),
          h("td", { class: "actions" }, actions),
        ),
      body: (f) => ({
        name: text(f, "name"),
        channels: checkedValues(f, "channels"),
        strategy: text(f, "strategy"),
        required_skills: levels.get(),
        priority: number(f, "priority"),
        service_level_seconds: number(f, "service_level_seconds"),
        service_level_target: number(f, "service_level_target"),
        schedule_id: orNull(text(f, "schedule_id")),
        closed_action: text(f, "closed_action"),
        closed_message: orNull(text(f, "closed_message")),
        closed_queue_id: orNull(text(f, "closed_queue_id")),
        max_wait_seconds: number(f, "max_wait_seconds"),
        overflow_queue_id: orNull(text(f, "overflow_queue_id")),
        max_wait_action: text(f, "max_wait_action"),
        forward_number: orNull(text(f, "forward_number")),
        voicemail_prompt: orNull(text(f, "voicemail_prompt")),
        message_prompt: orNull(text(f, "message_prompt")),
        announce_every_seconds: number(f, "announce_every_seconds"),
        max_queue_length: number(f, "max_queue_length"),
        wrap_up_seconds: number(f, "wrap_up_seconds"),
        offer_timeout_seconds: number(f, "offer_timeout_seconds"),
        auto_accept: checked(f, "auto_accept"),
        sticky_seconds: number(f, "sticky_seconds"),
        ageing_seconds: number(f, "ageing_seconds"),
        recording: text(f, "recording"),
      }),
      fill: (f, q) => {
        for (const name of [
          "name", "strategy", "priority", "service_level_seconds", "service_level_target",
          "schedule_id", "closed_action", "closed_message", "closed_queue_id",
          "max_wait_seconds", "overflow_queue_id", "max_wait_action", "forward_number",
          "voicemail_prompt", "message_prompt", "announce_every_seconds", "max_queue_length",
          "wrap_up_seconds", "offer_timeout_seconds", "auto_accept", "sticky_seconds",
          "ageing_seconds", "recording",
        ]) {
          setValue(f, name, q[name]);
        }
        setChecked(f, "channels", q.channels);
        levels.set(q.required_skills);
      },
      reset: () => levels.set({}),
      onEdit: (q) => showExtra(q),
      onLoaded: (list) => {
        for (const select of $$("[data-options=queues]", form)) {
          fillSelect(select, list.map((q) => ({ value: q.id, label: q.name })));
        }
      },
    });

    if (canWrite) {
      membersForm.addEventListener("submit", async (event) => {
        event.preventDefault();
        const box = $("[data-form-message]", membersForm);
        if (membersSelect.disabled) return; // the queue's members are still loading
        const ids = Array.from(membersSelect.selectedOptions).map((o) => o.value);
        await busy(membersForm, async () => {
          try {
            await api("PUT", `/api/v1/queues/${current.id}/members`, { agent_ids: ids });
            clearFieldErrors(membersForm);
            showMessage(box, "success", t("members_saved"));
          } catch (error) {
            showFormError(membersForm, box, error);
          }
        });
      });
      dispositionForm.addEventListener("submit", async (event) => {
        event.preventDefault();
        const box = $("[data-form-message]", dispositionForm);
        showMessage(box, "", "");
        if (!checkForm(dispositionForm)) return;
        await busy(dispositionForm, async () => {
          try {
            const made = await api("POST", `/api/v1/queues/${current.id}/dispositions`, {
              code: text(dispositionForm, "code"),
              label: text(dispositionForm, "label"),
            });
            dispositionForm.reset();
            showMessage(box, "success", t("created", { name: made.label }));
            await loadDispositions();
          } catch (error) {
            showFormError(dispositionForm, box, error);
          }
        });
      });
    }
    await queues.load();
  }

  // --- agent profiles ---------------------------------------------------------------------

  async function setUpAgents(page) {
    const form = $("[data-form]", page);
    const canWrite = canWriteOf(page);
    const userSelect = form.elements.namedItem("user_id");
    const userField = userSelect.closest(".field");
    const licences = labels("licences");
    const skills = await api("GET", "/api/v1/skills").catch(() => []);
    const skillNames = Object.fromEntries(skills.map((s) => [s.id, s.name]));
    const levels = levelEditor($("[data-levels]", form), skills, !canWrite);
    let users = [];
    try {
      users = await api("GET", "/api/v1/users");
    } catch {
      users = [];
    }

    const agents = collection(page, {
      endpoint: "/api/v1/agents",
      list: $("[data-list]", page),
      form,
      title: $("[data-form-title]", page),
      canWrite,
      empty: t("no_agents"),
      name: (a) => a.name,
      row: (a, actions) =>
        h(
          "tr",
          { "data-agent": a.email },
          h("td", {}, h("strong", {}, a.name), h("div", { class: "muted" }, a.email)),
          h("td", {}, licences[a.licence] || a.licence),
          h("td", {}, `${a.voice_capacity} / ${a.chat_capacity}`),
          h("td", {}, a.extension || "—"),
          h(
            "td",
            {},
            Object.entries(a.skills)
              .map(([id, level]) => `${skillNames[id] || id} ${level}`)
              .join(", ") || "—",
          ),
          h("td", { class: "actions" }, actions),
        ),
      body: (f, editing) => {
        const body = {
          licence: text(f, "licence"),
          voice_capacity: number(f, "voice_capacity"),
          max_no_answer: number(f, "max_no_answer"),
          extension: orNull(text(f, "extension")),
        };
        const chat = number(f, "chat_capacity");
        if (chat !== null || editing) body.chat_capacity = chat;
        if (!editing) body.user_id = text(f, "user_id");
        return body;
      },
      afterSave: async (saved) => {
        await api("PUT", `/api/v1/agents/${saved.id}/skills`, { skills: levels.get() });
      },
      fill: (f, a) => {
        for (const name of ["licence", "voice_capacity", "chat_capacity", "max_no_answer", "extension"]) {
          setValue(f, name, a[name]);
        }
        levels.set(a.skills);
      },
      reset: () => levels.set({}),
      onEdit: (a) => {
        userField.hidden = Boolean(a);
        userSelect.disabled = Boolean(a) || !canWrite;
      },
      onLoaded: (list) => {
        const taken = new Set(list.map((a) => a.id));
        fillSelect(
          userSelect,
          users
            .filter((u) => ["agent", "supervisor"].includes(u.role) && !taken.has(u.id))
            .map((u) => ({ value: u.id, label: `${u.name} (${u.email})` })),
        );
      },
    });
    await agents.load();
  }

  // --- small collections ------------------------------------------------------------------

  async function setUpSkills(page) {
    const skills = collection(page, {
      endpoint: "/api/v1/skills",
      list: $("[data-list]", page),
      form: $("[data-form]", page),
      title: $("[data-form-title]", page),
      canWrite: canWriteOf(page),
      empty: t("no_skills"),
      name: (s) => s.name,
      row: (s, actions) =>
        h(
          "tr",
          { "data-skill": s.name },
          h("td", {}, h("strong", {}, s.name)),
          h("td", { class: "nowrap date" }, A.timeElement(s.created_at, A.formats.date)),
          h("td", { class: "actions" }, actions),
        ),
      body: (f) => ({ name: text(f, "name") }),
      fill: (f, s) => setValue(f, "name", s.name),
    });
    await skills.load();
  }

  const DAYS = ["mon", "tue", "wed", "thu", "fri", "sat", "sun"];
  const TIME = "^(([01][0-9]|2[0-3]):[0-5][0-9]|24:00)$";

  function weekEditor(container, disabled) {
    const dayNames = labels("days");
    const rows = {};
    const interval = (list, start = "", end = "") => {
      const node = h(
        "span",
        { class: "interval" },
        h("input", { value: start, placeholder: "09:00", pattern: TIME, required: true, "aria-label": t("from"), disabled, "data-start": "" }),
        "–",
        h("input", { value: end, placeholder: "18:00", pattern: TIME, required: true, "aria-label": t("to"), disabled, "data-end": "" }),
        disabled
          ? null
          : h("button", { type: "button", class: "button small ghost", title: t("remove"), onclick: () => node.remove() }, "×"),
      );
      list.append(node);
    };
    for (const day of DAYS) {
      const list = h("span", { class: "day-intervals" });
      const add = disabled
        ? null
        : h("button", { type: "button", class: "button small", "data-add": day, onclick: () => interval(list) }, t("add_interval"));
      rows[day] = list;
      container.append(
        h("div", { class: "day", "data-day": day }, h("strong", {}, dayNames[day] || day), h("div", { class: "day-intervals" }, list, add)),
      );
    }
    return {
      get() {
        const weekly = {};
        for (const day of DAYS) {
          const pairs = $$(".interval", rows[day]).map((node) => [
            $("[data-start]", node).value.trim(),
            $("[data-end]", node).value.trim(),
          ]);
          if (pairs.length) weekly[day] = pairs;
        }
        return weekly;
      },
      set(weekly) {
        for (const day of DAYS) {
          rows[day].replaceChildren();
          for (const [start, end] of (weekly || {})[day] || []) interval(rows[day], start, end);
        }
      },
    };
  }

  async function setUpSchedules(page) {
    const form = $("[data-form]", page);
    const canWrite = canWriteOf(page);
    const week = weekEditor($("[data-week]", form), !canWrite);
    const zones = $("[data-time-zones]", page);
    if (zones && typeof Intl.supportedValuesOf === "function") {
      zones.append(...Intl.supportedValuesOf("timeZone").map((zone) => h("option", { value: zone })));
    }
    const dayNames = labels("days");
    const summary = (weekly) =>
      DAYS.filter((d) => weekly[d])
        .map((d) => `${dayNames[d] || d} ${weekly[d].map((p) => p.join("–")).join(", ")}`)
        .join("; ") || t("closed_all_week");
    const schedules = collection(page, {
      endpoint: "/api/v1/schedules",
      list: $("[data-list]", page),
      form,
      title: $("[data-form-title]", page),
      canWrite,
      empty: t("no_schedules"),
      name: (s) => s.name,
      row: (s, actions) =>
        h(
          "tr",
          { "data-schedule": s.name },
          h("td", {}, h("strong", {}, s.name)),
          h("td", {}, s.time_zone),
          h("td", {}, summary(s.weekly)),
          h("td", { class: "actions" }, actions),
        ),
      body: (f) => {
        const body = { name: text(f, "name"), weekly: week.get() };
        const zone = text(f, "time_zone");
        if (zone) body.time_zone = zone;
        return body;
      },
      fill: (f, s) => {
        setValue(f, "name", s.name);
        setValue(f, "time_zone", s.time_zone);
        week.set(s.weekly);
      },
      reset: () => week.set({}),
    });
    const holidayForm = $("[data-holiday-form]", page);
    const holidays = collection($("[data-holidays]", page), {
      endpoint: "/api/v1/holidays",
      list: $("[data-holiday-list]", page),
      form: holidayForm,
      title: $("[data-holiday-title]", page),
      canWrite,
      empty: t("no_holidays"),
      name: (d) => d.name,
      row: (d, actions) =>
        h(
          "tr",
          { "data-holiday": d.day },
          h("td", { class: "nowrap" }, A.formats.date.format(new Date(`${d.day}T12:00:00`))),
          h("td", {}, d.name),
          h("td", { class: "actions" }, actions),
        ),
      body: (f) => ({ day: text(f, "day"), name: text(f, "name") }),
      fill: (f, d) => {
        setValue(f, "day", d.day);
        setValue(f, "name", d.name);
      },
    });
    await Promise.all([schedules.load(), holidays.load()]);
    if (window.location.pathname === "/admin/holidays") {
      $("[data-holidays]", page).scrollIntoView({ block: "start" });
    }
  }

  async function setUpBreakReasons(page) {
    const reasons = collection(page, {
      endpoint: "/api/v1/break-reasons",
      list: $("[data-list]", page),
      form: $("[data-form]", page),
      title: $("[data-form-title]", page),
      canWrite: canWriteOf(page),
      empty: t("no_reasons"),
      name: (r) => r.name,
      canDelete: (r) => !r.is_no_answer,
      row: (r, actions) =>
        h(
          "tr",
          { "data-reason": r.name },
          h(
            "td",
            {},
            h("strong", {}, r.name),
            r.is_no_answer ? h("span", { class: "badge" }, t("no_answer_reason")) : null,
          ),
          h("td", {}, h("span", { class: `badge ${r.is_active ? "ok" : "off"}` }, t(r.is_active ? "active" : "inactive"))),
          h("td", { class: "actions" }, actions),
        ),
      body: (f) => ({ name: text(f, "name"), is_active: checked(f, "is_active") }),
      fill: (f, r) => {
        setValue(f, "name", r.name);
        setValue(f, "is_active", r.is_active);
      },
    });
    await reasons.load();
  }

  async function setUpCanned(page) {
    const form = $("[data-form]", page);
    const scopes = labels("scopes");
    // Tenant-wide responses are the managers'; agents keep (and change) only their own.
    const manager = ["admin", "supervisor"].includes(page.dataset.role);
    if (!manager) $("option[value=tenant]", form.elements.namedItem("scope")).remove();
    const canned = collection(page, {
      endpoint: "/api/v1/canned-responses",
      listPath: "/api/v1/canned-responses?limit=200",
      list: $("[data-list]", page),
      form,
      title: $("[data-form-title]", page),
      canWrite: canWriteOf(page),
      empty: t("no_canned"),
      name: (c) => c.shortcut,
      canEdit: (c) => manager || c.scope === "personal",
      row: (c, actions) =>
        h(
          "tr",
          { "data-canned": c.shortcut },
          h("td", {}, h("code", {}, c.shortcut)),
          h("td", { class: "wrap" }, c.body),
          h("td", {}, scopes[c.scope] || c.scope),
          h("td", { class: "actions" }, actions),
        ),
      body: (f, editing) => {
        const body = { shortcut: text(f, "shortcut"), body: f.elements.namedItem("body").value };
        if (!editing) body.scope = text(f, "scope");
        return body;
      },
      fill: (f, c) => {
        setValue(f, "shortcut", c.shortcut);
        setValue(f, "body", c.body);
        setValue(f, "scope", c.scope);
      },
      onEdit: (c) => {
        form.elements.namedItem("scope").disabled = Boolean(c);
      },
    });
    await canned.load();
  }

  // --- web chat widgets -------------------------------------------------------------------

  async function setUpWebchat(page) {
    const form = $("[data-form]", page);
    const canWrite = canWriteOf(page);
    const listMessage = $("[data-list-message]", page);
    const queues = await api("GET", "/api/v1/queues").catch(() => []);
    const queueNames = Object.fromEntries(queues.map((q) => [q.id, q.name]));
    fillSelect(
      form.elements.namedItem("queue_id"),
      queues.map((q) => ({ value: q.id, label: q.name })),
    );
    const snippet = (key) =>
      `<script src="${window.location.origin}/widget.js" data-channel="${key}" async></script>`;
    let widgets = null;

    const card = (w, actions) => {
      const code = h("code", { "data-snippet": "" }, snippet(w.key));
      const copy = smallButton(t("copy"), "", async () => {
        try {
          await navigator.clipboard.writeText(code.textContent);
          copy.textContent = t("copied");
        } catch {
          const range = document.createRange();
          range.selectNodeContents(code);
          const selection = window.getSelection();
          selection.removeAllRanges();
          selection.addRange(range);
        }
      }, "copy");
      const rotate = canWrite
        ? smallButton(t("rotate_key"), "", async () => {
            if (!window.confirm(t("confirm_rotate", { name: w.name }))) return;
            try {
              await api("POST", `/api/v1/webchat/widgets/${w.id}/rotate-key`);
              showMessage(listMessage, "success", t("key_rotated", { name: w.name }));
              await widgets.load();
            } catch (error) {
              showMessage(listMessage, "error", errorMessage(error));
            }
          }, "rotate")
        : null;
      return h(
        "article",
        { class: "card", "data-widget": w.name, "data-key": w.key },
        h(
          "h3",
          {},
          h("span", { class: "swatch", style: `background:${w.theme_color}` }),
          w.name,
          h("span", { class: `badge ${w.is_active ? "ok" : "off"}` }, t(w.is_active ? "active" : "inactive")),
        ),
        h("div", { class: "muted" }, `${t("queue")}: ${queueNames[w.queue_id] || "—"} · ${t("origins")}: ${w.allowed_origins.join(", ") || t("any_origin")}`),
        h("div", { class: "snippet" }, code, copy, rotate),
        actions,
      );
    };

    widgets = collection(page, {
      endpoint: "/api/v1/webchat/widgets",
      list: $("[data-list]", page),
      form,
      title: $("[data-form-title]", page),
      canWrite,
      empty: t("no_widgets"),
      name: (w) => w.name,
      row: card,
      body: (f) => ({
        name: text(f, "name"),
        queue_id: text(f, "queue_id"),
        allowed_origins: f.elements
          .namedItem("allowed_origins")
          .value.split(/[\s,]+/)
          .filter(Boolean),
        theme_color: text(f, "theme_color"),
        greeting: orNull(text(f, "greeting")),
        offline_message: orNull(text(f, "offline_message")),
        prechat: {
          name: text(f, "prechat_name"),
          email: text(f, "prechat_email"),
          phone: text(f, "prechat_phone"),
        },
        default_locale: text(f, "default_locale"),
        is_active: checked(f, "is_active"),
      }),
      fill: (f, w) => {
        for (const name of ["name", "queue_id", "theme_color", "greeting", "offline_message", "default_locale", "is_active"]) {
          setValue(f, name, w[name]);
        }
        setValue(f, "allowed_origins", w.allowed_origins.join("\n"));
        for (const part of ["name", "email", "phone"]) setValue(f, `prechat_${part}`, w.prechat[part]);
      },
    });
    await widgets.load();
  }

  const PAGES = {
    queues: setUpQueues,
    agents: setUpAgents,
    skills: setUpSkills,
    schedules: setUpSchedules,
    "break-reasons": setUpBreakReasons,
    canned: setUpCanned,
    webchat: setUpWebchat,
  };

  function start() {
    for (const page of $$("[data-page=admin]")) {
      const setUp = PAGES[page.dataset.admin];
      if (setUp) {
        setUp(page)
          .then(() => page.setAttribute("data-ready", "true"))
          .catch((error) => {
            showMessage($("[data-list-message]", page), "error", errorMessage(error));
          });
      }
    }
  }

  if (document.readyState === "loading") document.addEventListener("DOMContentLoaded", start);
  else start();
})();
