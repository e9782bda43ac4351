/* The channels page (/admin/channels): hand-written, no dependencies.
 *
 * Lists the tenant's channel accounts (GET /api/v1/channels) with their webhook URL and which
 * secrets are stored, and adds, edits, switches off and deletes them. Secrets are write-only:
 * the API never returns them, so the form's secret inputs start empty and an empty one keeps
 * the stored value. Per kind: Telegram registers its webhook, WhatsApp syncs its message
 * templates. The webhook inspector shows what providers sent, rejected requests included.
 * Admins write; supervisors read (the API decides; the server renders the form disabled).
 * Uses window.Atiende (atiende.js) and the channel drawings desktop.js adds to it.
 */
"use strict";

(() => {
  const A = window.Atiende;
  if (!A) return;
  const { h, $, $$, api, ApiError, errorMessage, showMessage, clearFieldErrors, checkForm, busy } = A;

  const LOCAL = A.readJson("i18n-admin");
  const t = (key, values) => (key in LOCAL ? A.fillIn(LOCAL[key], values) : A.t(key, values));
  // This page's error sentences join the shared ones, where errorMessage and showFormError
  // look them up.
  for (const [key, text] of Object.entries(LOCAL)) {
    if (key.startsWith("error_") && !(key in A.STRINGS)) A.STRINGS[key] = text;
  }
  const KIND_NAMES = A.STRINGS.channels || {};
  const FIELD_TEXT = LOCAL.fields || {};
  const EVENT_STATUSES = LOCAL.event_statuses || {};

  /** What each kind's account takes: the adapters' setting_fields and secret_fields. */
  const KINDS = {
    whatsapp: {
      settings: ["phone_number_id", "waba_id", "api_base", "rate_per_second"],
      secrets: ["access_token", "app_secret", "verify_token"],
    },
    telegram: { settings: ["bot_username", "api_base"], secrets: ["bot_token", "webhook_secret"] },
    sms: {
      settings: ["account_sid", "from_number", "messaging_service_sid", "api_base"],
      secrets: ["auth_token"],
    },
    api: {
      settings: ["outbound_url", "allow_private_network"],
      secrets: ["inbound_token", "signing_secret"],
    },
  };
  const INPUT_TYPES = {
    api_base: "url",
    outbound_url: "url",
    rate_per_second: "number",
    allow_private_network: "checkbox",
  };

  const kindName = (kind) => KIND_NAMES[kind] || kind;
  const fieldLabel = (name) => (FIELD_TEXT[name] || [name])[0];
  const fieldHint = (name) => (FIELD_TEXT[name] || [])[1] || "";

  /** The sentence for an API error; a provider's refusal keeps the provider's words. */
  function problem(error) {
    const text = errorMessage(error);
    if (error instanceof ApiError && error.code === "provider_error") {
      return `${text} ${String(error.message).replace(/^The provider refused:\s*/, "")}`;
    }
    return text;
  }

  function smallButton(label, className, onclick, testid) {
    return h(
      "button",
      { type: "button", class: `button small ${className}`, onclick, "data-testid": testid },
      label,
    );
  }

  function kindMark(kind) {
    return h(
      "span",
      { class: "channel-icon", "data-channel": kind, title: kindName(kind) },
      A.icon(kind),
      h("span", { class: "visually-hidden" }, kindName(kind)),
    );
  }

  // --- the form's fields for one kind ----------------------------------------------------------

  function settingInput(name, disabled) {
    const type = INPUT_TYPES[name] || "text";
    const id = `channel-setting-${name}`;
    if (type === "checkbox") {
      return h(
        "div",
        { class: "field" },
        h(
          "label",
          { class: "check" },
          h("input", { type: "checkbox", name, id, "data-setting": name, disabled }),
          fieldLabel(name),
        ),
        fieldHint(name) ? h("span", { class: "hint" }, fieldHint(name)) : null,
      );
    }
    const attributes = { name, id, type, "data-setting": name, autocomplete: "off", disabled };
    if (type === "number") Object.assign(attributes, { min: "0.1", step: "any" });
    else attributes.maxlength = 500;
    return h(
      "label",
      { class: "field" },
      h("span", { class: "field-label" }, fieldLabel(name)),
      h("input", attributes),
      fieldHint(name) ? h("span", { class: "hint" }, fieldHint(name)) : null,
    );
  }

  function secretInput(name, disabled) {
    return h(
      "label",
      { class: "field" },
      h("span", { class: "field-label" }, fieldLabel(name)),
      h("input", {
        type: "password",
        name,
        "data-secret": name,
        autocomplete: "new-password",
        spellcheck: "false",
        maxlength: 2000,
        placeholder: t("not_set"),
        disabled,
      }),
      fieldHint(name) ? h("span", { class: "hint" }, fieldHint(name)) : null,
    );
  }

  function settingValue(input) {
    if (input.type === "checkbox") return input.checked;
    const value = input.value.trim();
    if (value === "") return null;
    return input.type === "number" ? Number(value) : value;
  }

  // --- the page -------------------------------------------------------------------------------

  async function setUp(page) {
    const canWrite = page.dataset.canWrite === "true";
    const list = $("[data-list]", page);
    const listMessage = $("[data-list-message]", page);
    const form = $("[data-form]", page);
    const formMessage = $("[data-form-message]", form);
    const title = $("[data-form-title]", page);
    const submit = $("button[type=submit]", form);
    const cancel = $("[data-cancel]", form);
    const kindSelect = form.elements.namedItem("kind");
    const queueSelect = form.elements.namedItem("queue_id");
    const queueHint = $("[data-queue-hint]", form);
    const settingsBox = $("[data-settings]", form);
    const secretsBox = $("[data-secrets]", form);
    const templatesPanel = $("[data-templates]", page);
    const eventsPanel = $("[data-events]", page);
    const eventsStatus = $("[data-events-status]", page);
    const eventsMessage = $("[data-events-message]", page);

    const queues = await api("GET", "/api/v1/queues").catch(() => []);
    const queueNames = Object.fromEntries(queues.map((q) => [q.id, q.name]));
    let accounts = [];
    let editing = null;
    let inspected = null; // the account whose webhooks are shown

    function showKind(kind, account) {
      const spec = KINDS[kind] || { settings: [], secrets: [] };
      const readOnly = !canWrite;
      settingsBox.replaceChildren(...spec.settings.map((name) => settingInput(name, readOnly)));
      secretsBox.replaceChildren(...spec.secrets.map((name) => secretInput(name, readOnly)));
      const serving = queues.filter((q) => q.channels.includes(kind));
      const chosen = account ? account.queue_id : queueSelect.value;
      const first = queueSelect.querySelector("option[value='']");
      queueSelect.replaceChildren(
        first,
        ...serving.map((q) => h("option", { value: q.id }, q.name)),
      );
      queueSelect.value = serving.some((q) => q.id === chosen) ? chosen : "";
      queueHint.textContent = t(serving.length ? "queues_for" : "no_queue_for", {
        channel: kindName(kind),
      });
      if (!account) return;
      for (const input of $$("[data-setting]", settingsBox)) {
        const value = account.settings[input.dataset.setting];
        if (input.type === "checkbox") input.checked = Boolean(value);
        else input.value = value === null || value === undefined ? "" : String(value);
      }
      for (const input of $$("[data-secret]", secretsBox)) {
        input.placeholder = account.secrets_set.includes(input.dataset.secret)
          ? t("keep_secret")
          : t("not_set");
      }
    }

    function setEditing(account) {
      editing = account;
      title.textContent = account ? title.dataset.edit.replace("{name}", account.name) : title.dataset.new;
      if (submit) submit.textContent = account ? submit.dataset.labelEdit : submit.dataset.labelNew;
      if (cancel) cancel.hidden = !account;
      clearFieldErrors(form);
      if (account) {
        form.elements.namedItem("name").value = account.name;
        kindSelect.value = account.kind;
      } else {
        form.reset();
      }
      kindSelect.disabled = Boolean(account) || !canWrite; // a kind never changes
      showKind(kindSelect.value, account);
    }

    function body() {
      const settings = {};
      for (const input of $$("[data-setting]", settingsBox)) {
        const value = settingValue(input);
        // On edit a cleared setting is removed (null); on create it is left out.
        if (value !== null || editing) settings[input.dataset.setting] = value;
      }
      const secrets = {};
      for (const input of $$("[data-secret]", secretsBox)) {
        if (input.value !== "") secrets[input.dataset.secret] = input.value;
      }
      const data = {
        name: form.elements.namedItem("name").value.trim(),
        queue_id: queueSelect.value,
        settings,
      };
      if (!editing) return Object.assign(data, { kind: kindSelect.value, secrets });
      if (Object.keys(secrets).length) data.secrets = secrets;
      return data;
    }

    // --- the list ---------------------------------------------------------------------------

    function copyButton(source) {
      const button = smallButton(t("copy"), "", async () => {
        try {
          await navigator.clipboard.writeText(source.textContent);
          button.textContent = t("copied");
        } catch {
          const range = document.createRange();
          range.selectNodeContents(source);
          const selection = window.getSelection();
          selection.removeAllRanges();
          selection.addRange(range);
        }
      }, "copy");
      return button;
    }

    function activeSwitch(account) {
      const input = h("input", {
        type: "checkbox",
        "data-testid": "active",
        checked: account.is_active,
        disabled: !canWrite,
      });
      input.addEventListener("change", async () => {
        const wanted = input.checked;
        input.disabled = true;
        try {
          await api("PATCH", `/api/v1/channels/${account.id}`, { is_active: wanted });
          showMessage(listMessage, "success", t(wanted ? "activated" : "deactivated", { name: account.name }));
          await load();
        } catch (error) {
          input.checked = !wanted;
          input.disabled = false;
          showMessage(listMessage, "error", problem(error));
        }
      });
      return h("label", { class: "switch" }, input, t("active"));
    }

    async function action(account, name, done) {
      showMessage(listMessage, "", "");
      try {
        const result = await api("POST", `/api/v1/channels/${account.id}/actions/${name}`);
        await done(result);
      } catch (error) {
        showMessage(listMessage, "error", problem(error));
      }
    }

    function card(account) {
      const spec = KINDS[account.kind] || { secrets: [] };
      const names = [...new Set([...spec.secrets, ...account.secrets_set])];
      const url = h("code", { "data-webhook-url": "" }, account.webhook_url);
      const buttons = [];
      if (canWrite && account.kind === "telegram") {
        buttons.push(
          smallButton(t("register_webhook"), "", () =>
            action(account, "set_webhook", async () =>
              showMessage(listMessage, "success", t("webhook_registered", { name: account.name })),
            ), "register-webhook"),
        );
      }
      if (account.kind === "whatsapp") {
        if (canWrite) {
          buttons.push(
            smallButton(t("sync_templates"), "", () =>
              action(account, "sync_templates", async (result) => {
                const templates = result.templates || [];
                showMessage(listMessage, "success", t("templates_synced", { count: templates.length }));
                await load();
                showTemplates(Object.assign({}, account, { settings: { templates } }));
              }), "sync-templates"),
          );
        }
        buttons.push(smallButton(t("show_templates"), "", () => showTemplates(account), "show-templates"));
      }
      buttons.push(smallButton(t("recent_webhooks"), "", () => inspect(account), "show-events"));
      buttons.push(
        smallButton(canWrite ? t("edit") : t("view"), "", () => {
          setEditing(account);
          title.scrollIntoView({ block: "start" });
        }, "edit"),
      );
      if (canWrite) {
        buttons.push(
          smallButton(t("delete"), "danger", async () => {
            if (!window.confirm(t("confirm_delete_channel", { name: account.name }))) return;
            try {
              await api("DELETE", `/api/v1/channels/${account.id}`);
              showMessage(listMessage, "success", t("deleted", { name: account.name }));
              if (editing && editing.id === account.id) setEditing(null);
              if (inspected && inspected.id === account.id) eventsPanel.hidden = true;
              templatesPanel.hidden = true;
              await load();
            } catch (error) {
              showMessage(listMessage, "error", problem(error));
            }
          }, "delete"),
        );
      }
      return h(
        "article",
        {
          class: "card channel-card",
          "data-channel": account.name,
          "data-kind": account.kind,
          "data-id": account.id,
        },
        h(
          "div",
          { class: "card-title" },
          kindMark(account.kind),
          h("h3", {}, account.name),
          h(
            "span",
            { class: `badge ${account.is_active ? "ok" : "off"}`, "data-testid": "state" },
            t(account.is_active ? "active" : "inactive"),
          ),
          activeSwitch(account),
        ),
        h(
          "div",
          { class: "card-facts muted" },
          h("span", {}, kindName(account.kind)),
          h("span", { "data-testid": "queue" }, `${t("queue")}: ${queueNames[account.queue_id] || "—"}`),
        ),
        h(
          "div",
          { class: "snippet" },
          h("span", { class: "muted" }, `${t("webhook_url")}:`),
          url,
          copyButton(url),
        ),
        h(
          "div",
          { class: "secret-chips", "data-testid": "secrets" },
          h("span", { class: "muted" }, `${t("secrets")}:`),
          names.map((name) => {
            const set = account.secrets_set.includes(name);
            return h(
              "span",
              { class: "secret-chip", "data-secret": name, "data-set": set ? "true" : "false" },
              set ? `${fieldLabel(name)} ✓` : t("secret_missing", { name: fieldLabel(name) }),
            );
          }),
        ),
        h("div", { class: "row-actions" }, buttons),
      );
    }

    async function load() {
      try {
        accounts = await api("GET", "/api/v1/channels");
        list.replaceChildren(
          ...(accounts.length ? accounts.map(card) : [h("p", { class: "muted" }, t("no_channels"))]),
        );
      } catch (error) {
        showMessage(listMessage, "error", problem(error));
      }
      return accounts;
    }

    // --- templates (WhatsApp) ------------------------------------------------------------------

    function showTemplates(account) {
      const templates = (account.settings && account.settings.templates) || [];
      $("[data-templates-title]", templatesPanel).textContent = t("templates_of", { name: account.name });
      A.fillTable(
        $("[data-templates-table]", templatesPanel),
        templates.map((item) =>
          h(
            "tr",
            { "data-template": `${item.name}:${item.language}` },
            h("td", {}, h("code", {}, item.name)),
            h("td", {}, item.language),
            h(
              "td",
              {},
              h("span", { class: `badge ${String(item.status).toUpperCase() === "APPROVED" ? "ok" : "off"}` }, item.status),
            ),
            h("td", { class: "template-body" }, item.body || ""),
            h("td", { class: "actions" }),
          ),
        ),
        t("no_templates"),
      );
      templatesPanel.hidden = false;
      templatesPanel.scrollIntoView({ block: "nearest" });
    }

    // --- the webhook inspector -----------------------------------------------------------------

    function rawBody(text) {
      let shown = text;
      try {
        shown = JSON.stringify(JSON.parse(text), null, 2);
      } catch {
        shown = text;
      }
      return h(
        "details",
        {},
        h("summary", {}, t("raw_body")),
        h("pre", { class: "raw", "data-testid": "raw-body" }, shown),
      );
    }

    async function loadEvents() {
      if (!inspected) return;
      const account = inspected;
      const status = eventsStatus.value;
      const query = status ? `?status=${encodeURIComponent(status)}` : "";
      showMessage(eventsMessage, "", "");
      try {
        const events = await api("GET", `/api/v1/channels/${account.id}/events${query}`);
        if (inspected !== account) return;
        A.fillTable(
          $("[data-events-table]", eventsPanel),
          events.map((event) =>
            h(
              "tr",
              { "data-event": event.id, "data-status": event.status },
              h(
                "td",
                {},
                h(
                  "span",
                  { class: `badge ${event.status === "processed" ? "ok" : event.status === "received" ? "" : "off"}` },
                  EVENT_STATUSES[event.status] || event.status,
                ),
              ),
              h("td", { class: "nowrap date" }, A.timeElement(event.received_at, A.formats.precise)),
              h("td", { class: "wrap event-error", "data-testid": "event-error" }, event.error || "—"),
              h(
                "td",
                {},
                h(
                  "span",
                  { class: "muted event-id", title: event.provider_event_id },
                  t("event_id", { id: event.provider_event_id }),
                ),
                rawBody(event.body),
              ),
              h("td", { class: "actions" }),
            ),
          ),
          t("no_events"),
        );
      } catch (error) {
        showMessage(eventsMessage, "error", problem(error));
      }
    }

    function inspect(account) {
      inspected = account;
      $("[data-events-title]", eventsPanel).textContent = t("webhooks_of", { name: account.name });
      eventsPanel.hidden = false;
      loadEvents().then(() => eventsPanel.scrollIntoView({ block: "nearest" }));
    }

    eventsStatus.addEventListener("change", loadEvents);
    $("[data-events-reload]", eventsPanel).addEventListener("click", loadEvents);

    // --- saving ------------------------------------------------------------------------------

    kindSelect.addEventListener("change", () => {
      clearFieldErrors(form);
      showKind(kindSelect.value, null);
    });

    if (canWrite) {
      form.addEventListener("submit", async (event) => {
        event.preventDefault();
        showMessage(formMessage, "", "");
        if (!checkForm(form)) return;
        const data = body();
        await busy(form, async () => {
          try {
            const wasEditing = Boolean(editing);
            const saved = editing
              ? await api("PATCH", `/api/v1/channels/${editing.id}`, data)
              : await api("POST", "/api/v1/channels", data);
            await load();
            const fresh = accounts.find((a) => a.id === saved.id) || saved;
            setEditing(wasEditing ? fresh : null);
            showMessage(formMessage, "success", t(wasEditing ? "saved" : "created", { name: fresh.name }));
          } catch (error) {
            A.showFormError(form, formMessage, error, true);
            if (error instanceof ApiError && error.code === "provider_error") {
              showMessage(formMessage, "error", problem(error));
            }
          }
        });
      });
      if (cancel) cancel.addEventListener("click", () => setEditing(null));
    }

    setEditing(null);
    await load();
  }

  function start() {
    const page = $("[data-page=admin][data-admin=channels]");
    if (!page) return;
    setUp(page)
      .then(() => page.setAttribute("data-ready", "true"))
      .catch((error) => showMessage($("[data-list-message]", page), "error", errorMessage(error)));
  }

  if (document.readyState === "loading") document.addEventListener("DOMContentLoaded", start);
  else start();
})();
