/* The voice page's PBXs, phones and recordings (/admin/voice): hand-written, no dependencies.
 *
 * PBXs (GET/POST/PATCH/DELETE /api/v1/voice/pbxs): administrators add one, change it (the ARI
 * password is write-only: left empty, the stored one stays), check it (POST …/test: the
 * Asterisk version, whether call control holds the application, whether the events
 * WebSocket opens), show its Asterisk files (GET …/config) and download them, and delete it.
 * Phones (GET /api/v1/voice/extensions): each extension, who holds it and whether its phone
 * is registered, asked from the PBXs. Recordings: how many days the PBX keeps a call's
 * recording (PATCH /api/v1/tenant recording_retention_days). Supervisors read. Uses
 * window.Atiende; the page's strings are in i18n-admin.
 */
"use strict";

(() => {
  const A = window.Atiende;
  if (!A) return;
  const { h, $, api, errorMessage, showMessage, clearFieldErrors, checkForm, busy, fillTable } = A;

  const LOCAL = A.readJson("i18n-admin");
  const t = (key, values) => (key in LOCAL ? A.fillIn(LOCAL[key], values) : A.t(key, values));
  for (const [key, text] of Object.entries(LOCAL)) {
    if (key.startsWith("error_") && typeof text === "string") A.STRINGS[key] = text;
  }

  function smallButton(label, className, onclick, testid) {
    return h(
      "button",
      { type: "button", class: `button small ${className}`, onclick, "data-testid": testid },
      label,
    );
  }

  /** Offers text as a file to save. */
  function download(name, text) {
    const url = URL.createObjectURL(new Blob([text], { type: "text/plain;charset=utf-8" }));
    const link = h("a", { href: url, download: name, hidden: true });
    document.body.append(link);
    link.click();
    link.remove();
    setTimeout(() => URL.revokeObjectURL(url), 0);
  }

  /** The files as `atiende pbx config` prints them, one after the other. */
  function allFiles(files) {
    return Object.entries(files)
      .map(([name, text]) => `;;; ---- ${name} ----\n${text}`)
      .join("\n");
  }

  async function setUp(page) {
    const canWrite = page.dataset.canWrite === "true";
    const table = $("[data-pbxs]", page);
    const message = $("[data-pbx-message]", page);
    const check = $("[data-pbx-check]", page);
    const viewer = $("[data-pbx-config]", page);
    const form = $("[data-pbx-form]", page);
    const title = $("[data-pbx-form-title]", page);
    const formMessage = form ? $("[data-form-message]", form) : null;
    const submit = form ? $("button[type=submit]", form) : null;
    const cancel = form ? $("[data-cancel]", form) : null;
    const phones = $("[data-phones]", page);
    const phonesMessage = $("[data-phones-message]", page);
    const retention = $("[data-retention-form]", page);
    const retentionMessage = retention ? $("[data-form-message]", retention) : null;
    let editing = null;

    // --- checking and showing the configuration -----------------------------------------

    async function checkPbx(pbx, button) {
      viewer.hidden = true;
      check.hidden = false;
      check.dataset.outcome = "checking";
      check.replaceChildren(h("p", { class: "muted" }, t("pbx_checking", { name: pbx.name })));
      button.disabled = true;
      try {
        const found = await api("POST", `/api/v1/voice/pbxs/${pbx.id}/test`);
        const lines = [t("pbx_check_ok", { name: pbx.name, version: found.version })];
        if (found.app_active) lines.push(t("pbx_check_app_active", { app: found.app_name }));
        else if (found.websocket_ok) lines.push(t("pbx_check_app_idle", { app: found.app_name }));
        else lines.push(t("pbx_check_websocket_failed", { error: found.websocket_error || "" }));
        check.dataset.outcome = found.websocket_ok ? "ok" : "warning";
        check.replaceChildren(
          h(
            "div",
            { class: `alert ${found.websocket_ok ? "success" : "warning"}` },
            ...lines.map((line) => h("p", {}, line)),
          ),
        );
      } catch (error) {
        check.dataset.outcome = "error";
        check.replaceChildren(h("p", { class: "alert error" }, errorMessage(error)));
      } finally {
        button.disabled = false;
      }
    }

    async function showConfig(pbx) {
      check.hidden = true;
      try {
        const config = await api("GET", `/api/v1/voice/pbxs/${pbx.id}/config`);
        const files = Object.entries(config.files).map(([name, text]) =>
          h(
            "div",
            { class: "pbx-file", "data-file": name },
            h(
              "div",
              { class: "pbx-file-head" },
              h("h4", {}, h("code", {}, name)),
              smallButton(t("download"), "", () => download(name, text), `download-${name}`),
            ),
            h("pre", { class: "pbx-file-text" }, text),
          ),
        );
        viewer.replaceChildren(
          h(
            "div",
            { class: "pbx-file-head" },
            h("h3", {}, t("pbx_config_title", { name: pbx.name })),
            smallButton(
              t("download_all"),
              "primary",
              () => download(`${config.tenant}-${pbx.name}-asterisk.txt`, allFiles(config.files)),
              "download-all",
            ),
            smallButton(t("close"), "", () => (viewer.hidden = true), "close-config"),
          ),
          h("p", { class: "muted" }, t("pbx_config_hint")),
          ...files,
        );
        viewer.hidden = false;
        viewer.scrollIntoView({ block: "start" });
      } catch (error) {
        showMessage(message, "error", errorMessage(error));
      }
    }

    // --- the list and the form ---------------------------------------------------------------

    function setEditing(pbx) {
      if (!form) return;
      editing = pbx;
      title.textContent = pbx ? title.dataset.edit.replace("{name}", pbx.name) : title.dataset.new;
      submit.textContent = pbx ? submit.dataset.labelEdit : submit.dataset.labelNew;
      cancel.hidden = !pbx;
      clearFieldErrors(form);
      form.reset();
      const password = form.elements.namedItem("ari_password");
      password.required = !pbx;
      const hint = $("[data-password-hint]", form);
      hint.textContent = pbx ? t("pbx_password_keep") : t("pbx_password_new");
      if (pbx) {
        for (const field of ["name", "ari_url", "ari_username", "app_name"]) {
          form.elements.namedItem(field).value = pbx[field];
        }
        for (const field of ["outbound_dial", "outbound_caller_id"]) {
          form.elements.namedItem(field).value = pbx[field] || "";
        }
      }
    }

    function row(pbx) {
      const actions = [];
      if (canWrite) {
        const testButton = smallButton(t("pbx_test"), "", () => checkPbx(pbx, testButton), "test");
        actions.push(
          testButton,
          smallButton(t("pbx_config"), "", () => showConfig(pbx), "config"),
          smallButton(A.t("edit"), "", () => {
            setEditing(pbx);
            title.scrollIntoView({ block: "start" });
          }, "edit"),
          smallButton(A.t("delete"), "danger", async () => {
            if (!window.confirm(t("confirm_delete_pbx", { name: pbx.name }))) return;
            try {
              await api("DELETE", `/api/v1/voice/pbxs/${pbx.id}`);
              showMessage(message, "success", A.t("deleted", { name: pbx.name }));
              if (editing && editing.id === pbx.id) setEditing(null);
              await loadPbxs();
            } catch (error) {
              showMessage(message, "error", errorMessage(error));
            }
          }, "delete"),
        );
      }
      return h(
        "tr",
        { "data-pbx": pbx.name },
        h("td", {}, h("strong", {}, pbx.name)),
        h("td", {}, h("code", {}, pbx.ari_url)),
        h("td", {}, pbx.ari_username),
        h("td", {}, h("code", {}, pbx.app_name)),
        h("td", { class: "actions" }, h("div", { class: "row-actions" }, actions)),
      );
    }

    async function loadPbxs() {
      try {
        const pbxs = await api("GET", "/api/v1/voice/pbxs");
        fillTable(table, pbxs.map(row), t(canWrite ? "no_pbxs_admin" : "no_pbxs"));
      } catch (error) {
        showMessage(message, "error", errorMessage(error));
      }
    }

    if (form && canWrite) {
      form.addEventListener("submit", async (event) => {
        event.preventDefault();
        showMessage(formMessage, "", "");
        if (!checkForm(form)) return;
        const body = {};
        for (const field of ["name", "ari_url", "ari_username", "app_name"]) {
          body[field] = form.elements.namedItem(field).value.trim();
        }
        for (const field of ["outbound_dial", "outbound_caller_id"]) {
          const value = form.elements.namedItem(field).value.trim();
          if (value || editing) body[field] = value || null;
        }
        const password = form.elements.namedItem("ari_password").value;
        if (password || !editing) body.ari_password = password;
        const key = editing ? "saved" : "created";
        const saved = await busy(form, async () => {
          try {
            return editing
              ? await api("PATCH", `/api/v1/voice/pbxs/${editing.id}`, body)
              : await api("POST", "/api/v1/voice/pbxs", body);
          } catch (error) {
            A.showFormError(form, formMessage, error, true);
            return null;
          }
        });
        if (!saved) return;
        setEditing(null);
        await Promise.all([loadPbxs(), loadPhones()]);
        showMessage(formMessage, "success", A.t(key, { name: saved.name }));
      });
      cancel.addEventListener("click", () => setEditing(null));
      setEditing(null);
    }

    // --- phones ----------------------------------------------------------------------------

    async function loadPhones() {
      if (!phones) return;
      try {
        const extensions = await api("GET", "/api/v1/voice/extensions");
        fillTable(
          phones,
          extensions.map((extension) =>
            h(
              "tr",
              { "data-extension": extension.number },
              h("td", {}, h("strong", { class: "mono" }, extension.number)),
              h("td", {}, extension.user_name || t("phone_free")),
              h(
                "td",
                {},
                h(
                  "span",
                  {
                    class: "phone-state",
                    "data-state": extension.state,
                    "data-testid": "phone-state",
                  },
                  h("span", { class: "phone-dot", "aria-hidden": "true" }),
                  t(`phone_${extension.state}`),
                ),
              ),
              h("td", { class: "actions" }),
            ),
          ),
          t("no_extensions"),
        );
      } catch (error) {
        showMessage(phonesMessage, "error", errorMessage(error));
      }
    }

    const refresh = $("[data-phones-refresh]", page);
    if (refresh) {
      refresh.addEventListener("click", async () => {
        refresh.disabled = true;
        try {
          await loadPhones();
        } finally {
          refresh.disabled = false;
        }
      });
    }

    // --- recordings ------------------------------------------------------------------------

    async function loadRetention() {
      if (!retention) return;
      try {
        const tenant = await api("GET", "/api/v1/tenant");
        retention.elements.namedItem("recording_retention_days").value = String(
          tenant.recording_retention_days,
        );
      } catch (error) {
        showMessage(retentionMessage, "error", errorMessage(error));
      }
    }

    if (retention && canWrite) {
      retention.addEventListener("submit", async (event) => {
        event.preventDefault();
        showMessage(retentionMessage, "", "");
        if (!checkForm(retention)) return;
        const days = Number(retention.elements.namedItem("recording_retention_days").value);
        const saved = await busy(retention, async () => {
          try {
            return await api("PATCH", "/api/v1/tenant", { recording_retention_days: days });
          } catch (error) {
            A.showFormError(retention, retentionMessage, error, true);
            return null;
          }
        });
        if (!saved) return;
        const savedDays = saved.recording_retention_days;
        showMessage(
          retentionMessage,
          "success",
          savedDays ? t("retention_saved", { days: savedDays }) : t("retention_saved_forever"),
        );
      });
    }

    await Promise.all([loadPbxs(), loadPhones(), loadRetention()]);
  }

  function start() {
    const page = document.querySelector("[data-page=admin][data-admin=voice]");
    if (!page || !$("[data-pbxs]", page)) return;
    setUp(page)
      .then(() => page.setAttribute("data-pbxs-ready", "true"))
      .catch((error) => showMessage($("[data-pbx-message]", page), "error", errorMessage(error)));
  }

  if (document.readyState === "loading") document.addEventListener("DOMContentLoaded", start);
  else start();
})();
