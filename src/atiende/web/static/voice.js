/* The voice page (/admin/voice): hand-written, no dependencies.
 *
 * Lists the tenant's phone numbers with their queues and IVR menus (GET
 * /api/v1/voice/numbers) and its IVR menus (GET /api/v1/voice/ivr-menus); the PBXs, phones
 * and recordings are voice_pbxs.js's. Administrators add a number to a queue that takes calls,
 * give it a menu, move it or delete it, and build menus: the prompt, what each key does (a
 * queue, another menu, a repeat, a hang-up, an outside number or voicemail) and what happens
 * when the attempts run out. Supervisors read (the API decides; the server
 * renders no form for them). Uses window.Atiende.
 */
"use strict";

(() => {
  const A = window.Atiende;
  if (!A) return;
  const { h, $, $$, api, errorMessage, showMessage, clearFieldErrors, checkForm, busy, fillTable } =
    A;
  const KEYS = ["1", "2", "3", "4", "5", "6", "7", "8", "9", "0", "*", "#"];
  const OPTION_ACTIONS = ["queue", "menu", "repeat", "hangup", "number", "voicemail"];
  const TIMEOUT_ACTIONS = ["queue", "menu", "hangup", "number", "voicemail"];

  const LOCAL = A.readJson("i18n-admin");
  const t = (key, values) => (key in LOCAL ? A.fillIn(LOCAL[key], values) : A.t(key, values));
  // This page's error sentences join the shared ones, where errorMessage looks them up.
  for (const [key, text] of Object.entries(LOCAL)) {
    if (key.startsWith("error_")) A.STRINGS[key] = text;
  }

  function smallButton(label, className, onclick, testid) {
    return h(
      "button",
      { type: "button", class: `button small ${className}`, onclick, "data-testid": testid },
      label,
    );
  }

  async function setUp(page) {
    const canWrite = page.dataset.canWrite === "true";
    const list = $("[data-list]", page);
    const listMessage = $("[data-list-message]", page);
    const form = $("[data-form]", page);
    const title = $("[data-form-title]", page);
    const formMessage = form ? $("[data-form-message]", form) : null;
    const submit = form ? $("button[type=submit]", form) : null;
    const cancel = form ? $("[data-cancel]", form) : null;
    let queues = [];
    let menus = [];
    let numbers = [];
    let editing = null;

    const queueName = (id) => (queues.find((q) => q.id === id) || {}).name || "—";
    const menuName = (id) => (menus.find((m) => m.id === id) || {}).name || "—";

    function setEditing(item) {
      if (!form) return;
      editing = item;
      title.textContent = item
        ? title.dataset.edit.replace("{name}", item.number)
        : title.dataset.new;
      submit.textContent = item ? submit.dataset.labelEdit : submit.dataset.labelNew;
      cancel.hidden = !item;
      clearFieldErrors(form);
      form.reset();
      if (item) {
        form.elements.namedItem("number").value = item.number;
        form.elements.namedItem("queue_id").value = item.queue_id;
        form.elements.namedItem("ivr_menu_id").value = item.ivr_menu_id || "";
      }
    }

    function row(item) {
      const actions = [];
      if (canWrite) {
        actions.push(
          smallButton(A.t("edit"), "", () => {
            setEditing(item);
            title.scrollIntoView({ block: "start" });
          }, "edit"),
          smallButton(A.t("delete"), "danger", async () => {
            if (!window.confirm(t("confirm_delete_number", { name: item.number }))) return;
            try {
              await api("DELETE", `/api/v1/voice/numbers/${item.id}`);
              showMessage(listMessage, "success", A.t("deleted", { name: item.number }));
              if (editing && editing.id === item.id) setEditing(null);
              await loadMenus(); // the numbers, and the menus' list of numbers
            } catch (error) {
              showMessage(listMessage, "error", errorMessage(error));
            }
          }, "delete"),
        );
      }
      return h(
        "tr",
        { "data-number": item.number },
        h("td", {}, h("strong", { class: "mono" }, item.number)),
        h("td", {}, queueName(item.queue_id)),
        h("td", { "data-menu": "" }, item.ivr_menu_id ? menuName(item.ivr_menu_id) : "—"),
        h("td", {}, A.timeElement(item.created_at, A.formats.date)),
        h("td", { class: "actions" }, h("div", { class: "row-actions" }, actions)),
      );
    }

    async function loadNumbers() {
      try {
        numbers = await api("GET", "/api/v1/voice/numbers");
        fillTable(list, numbers.map(row), t("no_numbers"));
      } catch (error) {
        showMessage(listMessage, "error", errorMessage(error));
      }
    }

    // --- IVR menus ---------------------------------------------------------------------------

    const ivrTable = $("[data-ivr-list]", page);
    const ivrMessage = $("[data-ivr-message]", page);
    const ivrForm = $("[data-ivr-form]", page);
    const ivrTitle = $("[data-ivr-form-title]", page);
    const ivrFormMessage = ivrForm ? $("[data-form-message]", ivrForm) : null;
    const optionRows = ivrForm ? $("[data-ivr-options]", ivrForm) : null;
    const timeoutSelect = ivrForm ? ivrForm.elements.namedItem("timeout_action") : null;
    const timeoutTarget = ivrForm ? $("[data-timeout-target]", ivrForm) : null;
    let editingMenu = null;

    const actionLabel = (action) => (LOCAL.ivr_actions || {})[action] || action;
    const voiceQueues = () => queues.filter((q) => (q.channels || []).includes("voice"));
    const targetKey = (action) =>
      action === "menu" ? "menu_id" : action === "number" ? "number" : "queue_id";
    /** An option's destination as its form control holds it. */
    const targetOf = (option) =>
      (option && (option.queue_id || option.menu_id || option.number)) || "";

    /** What an option (or the timeout action) does, in words. */
    function describe(option) {
      if (!option || option.action === "queue") {
        return option && option.queue_id
          ? t("ivr_to_queue", { name: queueName(option.queue_id) })
          : t("numbers_queue");
      }
      if (option.action === "menu") return t("ivr_to_menu", { name: menuName(option.menu_id) });
      if (option.action === "number") return t("ivr_to_number", { number: option.number });
      if (option.action === "voicemail") {
        return option.queue_id
          ? t("ivr_to_voicemail", { name: queueName(option.queue_id) })
          : t("ivr_voicemail_numbers_queue");
      }
      return actionLabel(option.action);
    }

    /** The destination chooser of an action: queues that take calls (or the number's queue)
     * for queue and voicemail, menus, or the outside number; nothing for repeat and hang up. */
    function targetSelect(action, value, label, testid) {
      if (action === "number") {
        const input = h("input", {
          type: "tel",
          inputmode: "tel",
          maxlength: "40",
          autocomplete: "off",
          placeholder: "+525512345678",
          "data-target": "",
          "aria-label": t("label_number"),
          "data-testid": `${testid}-number`,
        });
        input.value = value || "";
        return input;
      }
      if (action !== "queue" && action !== "menu" && action !== "voicemail") return null;
      const choices =
        action !== "menu"
          ? [
              h("option", { value: "" }, t("numbers_queue")),
              ...voiceQueues().map((q) => h("option", { value: q.id }, q.name)),
            ]
          : [
              h("option", { value: "" }, "—"),
              ...menus.map((m) => h("option", { value: m.id }, m.name)),
            ];
      const select = h(
        "select",
        { "data-target": "", "aria-label": label, "data-testid": `${testid}-target` },
        choices,
      );
      select.value = value || "";
      return select;
    }

    function actionSelect(actions, value, label) {
      const select = h(
        "select",
        { "data-action": "", "aria-label": label },
        actions.map((action) => h("option", { value: action }, actionLabel(action))),
      );
      select.value = value;
      return select;
    }

    function optionRow(key, option) {
      const keySelect = h(
        "select",
        { "data-key": "", "aria-label": t("label_key"), "data-testid": "ivr-key" },
        KEYS.map((k) => h("option", { value: k }, k)),
      );
      keySelect.value = key;
      const action = actionSelect(OPTION_ACTIONS, option.action, t("label_action"));
      action.setAttribute("data-testid", "ivr-action");
      const target = h("td", {});
      const fill = (value) =>
        target.replaceChildren(
          targetSelect(action.value, value, t("label_destination"), "ivr-option") || "",
        );
      action.addEventListener("change", () => fill(""));
      fill(targetOf(option));
      const tr = h("tr", { "data-option": "" }, h("td", {}, keySelect), h("td", {}, action), target);
      tr.append(
        h("td", { class: "actions" }, smallButton(t("remove"), "", () => tr.remove(), "ivr-remove")),
      );
      return tr;
    }

    function addOption() {
      const used = new Set($$("[data-key]", optionRows).map((select) => select.value));
      const key = KEYS.find((k) => !used.has(k)) || KEYS[0];
      optionRows.append(optionRow(key, { action: "queue" }));
    }

    function setTimeoutAction(option) {
      timeoutSelect.value = option ? option.action : "queue";
      const target = targetSelect(
        timeoutSelect.value,
        targetOf(option),
        t("label_destination"),
        "ivr-timeout",
      );
      timeoutTarget.replaceChildren(target || "");
      timeoutTarget.dataset.field = `timeout_action.${targetKey(timeoutSelect.value)}`;
    }

    function setEditingMenu(item) {
      if (!ivrForm) return;
      editingMenu = item;
      ivrTitle.textContent = item
        ? ivrTitle.dataset.edit.replace("{name}", item.name)
        : ivrTitle.dataset.new;
      const button = $("button[type=submit]", ivrForm);
      button.textContent = item ? button.dataset.labelEdit : button.dataset.labelNew;
      $("[data-cancel]", ivrForm).hidden = !item;
      clearFieldErrors(ivrForm);
      ivrForm.reset();
      optionRows.replaceChildren();
      if (item) {
        for (const name of ["name", "prompt", "invalid_prompt", "timeout_seconds", "max_attempts"]) {
          ivrForm.elements.namedItem(name).value = item[name];
        }
        for (const [key, option] of Object.entries(item.options)) {
          optionRows.append(optionRow(key, option));
        }
      }
      setTimeoutAction(item ? item.timeout_action : null);
    }

    /** The form's options as the API takes them; marks a key listed twice. */
    function readOptions() {
      const options = {};
      let duplicate = null;
      for (const tr of $$("[data-option]", optionRows)) {
        const key = $("[data-key]", tr).value;
        const action = $("[data-action]", tr).value;
        const target = $("[data-target]", tr);
        const [keyCell, actionCell, targetCell] = tr.children;
        keyCell.dataset.field = key in options ? `options.${key}.twice` : `options.${key}`;
        actionCell.dataset.field = `options.${key}.action`;
        targetCell.dataset.field = `options.${key}.${targetKey(action)}`;
        if (key in options) {
          duplicate = duplicate || keyCell.dataset.field;
          continue;
        }
        const option = { action };
        if (target && target.value.trim()) option[targetKey(action)] = target.value.trim();
        options[key] = option;
      }
      return { options, duplicate };
    }

    function readTimeoutAction() {
      const action = timeoutSelect.value;
      const target = $("[data-target]", timeoutTarget);
      if (action === "queue" && !(target && target.value)) return null;
      const option = { action };
      if (target && target.value.trim()) option[targetKey(action)] = target.value.trim();
      return option;
    }

    function menuRow(item) {
      const keys = Object.entries(item.options).map(([key, option]) =>
        h("li", { "data-key": key }, h("code", {}, key), " → ", describe(option)),
      );
      const playing = numbers.filter((n) => n.ivr_menu_id === item.id).map((n) => n.number);
      const actions = [];
      if (canWrite) {
        actions.push(
          smallButton(A.t("edit"), "", () => {
            setEditingMenu(item);
            ivrTitle.scrollIntoView({ block: "start" });
          }, "edit"),
          smallButton(A.t("delete"), "danger", async () => {
            if (!window.confirm(t("confirm_delete_menu", { name: item.name }))) return;
            try {
              await api("DELETE", `/api/v1/voice/ivr-menus/${item.id}`);
              showMessage(ivrMessage, "success", A.t("deleted", { name: item.name }));
              if (editingMenu && editingMenu.id === item.id) setEditingMenu(null);
              await loadMenus();
            } catch (error) {
              showMessage(ivrMessage, "error", errorMessage(error));
            }
          }, "delete"),
        );
      }
      return h(
        "tr",
        { "data-menu": item.name },
        h("td", {}, h("strong", {}, item.name)),
        h("td", {}, h("code", {}, item.prompt)),
        h(
          "td",
          {},
          keys.length ? h("ul", { class: "ivr-keys" }, keys) : t("ivr_no_keys"),
          h("div", { class: "muted" }, t("ivr_after", { action: describe(item.timeout_action) })),
        ),
        h("td", { class: "mono" }, playing.join(", ") || "—"),
        h("td", { class: "actions" }, h("div", { class: "row-actions" }, actions)),
      );
    }

    /** Menus, then everything that shows their names: the list, the numbers and the
     * number form's menu choice. */
    async function loadMenus() {
      let loaded = true;
      try {
        menus = await api("GET", "/api/v1/voice/ivr-menus");
      } catch (error) {
        loaded = false;
        showMessage(ivrMessage, "error", errorMessage(error));
      }
      if (form) {
        const select = form.elements.namedItem("ivr_menu_id");
        const chosen = select.value;
        select.replaceChildren(
          select.querySelector("option[value='']"),
          ...menus.map((m) => h("option", { value: m.id }, m.name)),
        );
        select.value = menus.some((m) => m.id === chosen) ? chosen : "";
      }
      await loadNumbers();
      if (loaded) fillTable(ivrTable, menus.map(menuRow), t("no_menus"));
    }

    async function loadQueues() {
      queues = await api("GET", "/api/v1/queues").catch(() => []);
      if (!form) return;
      const select = form.elements.namedItem("queue_id");
      const voice = queues.filter((q) => (q.channels || []).includes("voice"));
      select.replaceChildren(
        select.querySelector("option[value='']"),
        ...voice.map((q) => h("option", { value: q.id }, q.name)),
      );
      $("[data-queue-hint]", form).textContent = voice.length
        ? t("voice_queues_only")
        : t("no_voice_queue");
    }

    if (form && canWrite) {
      form.addEventListener("submit", async (event) => {
        event.preventDefault();
        showMessage(formMessage, "", "");
        if (!checkForm(form)) return;
        const body = {
          number: form.elements.namedItem("number").value.trim(),
          queue_id: form.elements.namedItem("queue_id").value,
          ivr_menu_id: form.elements.namedItem("ivr_menu_id").value || null,
        };
        const key = editing ? "saved" : "created";
        const saved = await busy(form, async () => {
          try {
            return editing
              ? await api("PATCH", `/api/v1/voice/numbers/${editing.id}`, body)
              : await api("POST", "/api/v1/voice/numbers", body);
          } catch (error) {
            A.showFormError(form, formMessage, error, true);
            return null;
          }
        });
        if (!saved) return;
        setEditing(null); // after busy() has put the button's label back
        await loadMenus(); // the numbers, and the menus' list of numbers
        showMessage(formMessage, "success", A.t(key, { name: saved.number }));
      });
      cancel.addEventListener("click", () => setEditing(null));
    }

    if (ivrForm && canWrite) {
      timeoutSelect.replaceChildren(
        ...TIMEOUT_ACTIONS.map((action) => h("option", { value: action }, actionLabel(action))),
      );
      timeoutSelect.addEventListener("change", () =>
        setTimeoutAction({ action: timeoutSelect.value }),
      );
      $("[data-add-option]", ivrForm).addEventListener("click", addOption);
      $("[data-cancel]", ivrForm).addEventListener("click", () => setEditingMenu(null));
      ivrForm.addEventListener("submit", async (event) => {
        event.preventDefault();
        showMessage(ivrFormMessage, "", "");
        if (!checkForm(ivrForm)) return;
        const { options, duplicate } = readOptions();
        if (duplicate) {
          A.markField(ivrForm, duplicate, t("error_duplicate_key"));
          showMessage(ivrFormMessage, "error", t("error_duplicate_key"));
          return;
        }
        const value = (name) => ivrForm.elements.namedItem(name).value.trim();
        const body = {
          name: value("name"),
          prompt: value("prompt"),
          invalid_prompt: value("invalid_prompt"),
          timeout_seconds: Number(value("timeout_seconds")),
          max_attempts: Number(value("max_attempts")),
          options,
          timeout_action: readTimeoutAction(),
        };
        const key = editingMenu ? "saved" : "created";
        const saved = await busy(ivrForm, async () => {
          try {
            return editingMenu
              ? await api("PATCH", `/api/v1/voice/ivr-menus/${editingMenu.id}`, body)
              : await api("POST", "/api/v1/voice/ivr-menus", body);
          } catch (error) {
            const field = (error.details || {}).field || "";
            if (error.code === "ivr_option_invalid" && field.endsWith(".number")) {
              // an outside number that is not one: say how to write it, on its field
              clearFieldErrors(ivrForm);
              const control = A.markField(ivrForm, field, t("error_ivr_number_invalid"));
              showMessage(ivrFormMessage, "error", t("error_ivr_number_invalid"));
              if (control) control.focus();
            } else {
              A.showFormError(ivrForm, ivrFormMessage, error, true);
            }
            return null;
          }
        });
        if (!saved) return;
        setEditingMenu(null);
        await loadMenus();
        showMessage(ivrFormMessage, "success", A.t(key, { name: saved.name }));
      });
    }

    await loadQueues();
    await loadMenus();
    if (ivrForm && canWrite) setEditingMenu(null); // the destinations need the queues
  }

  function start() {
    const page = document.querySelector("[data-page=admin][data-admin=voice]");
    if (!page) return;
    setUp(page)
      .then(() => page.setAttribute("data-ready", "true"))
      .catch((error) => showMessage($("[data-list-message]", page), "error", errorMessage(error)));
  }

  if (document.readyState === "loading") document.addEventListener("DOMContentLoaded", start);
  else start();
})();
