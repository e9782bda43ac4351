/* The vendor's billing back office (/billing) and the installation's licence page
 * (/admin/licence): hand-written, no dependencies.
 *
 * /billing lists what is waiting for payment and records a bank transfer received ("mark
 * paid"), and shows subscriptions, customer accounts and sales requests. /admin/licence shows
 * the installation's licence state and installs a licence file read in the browser. Uses the
 * helpers of atiende.js (window.Atiende) and portal.js (window.AtiendeSales).
 */
"use strict";

(() => {
  const A = window.Atiende;
  const S = window.AtiendeSales;
  if (!A || !S) return;
  const { h, $, $$, api, ApiError, showMessage, clearFieldErrors, markField, fillTable, checkForm, busy } = A;
  const { money, day, dayOf, badge, itemName } = S;

  const LOCAL = Object.assign({}, A.readJson("i18n-billing"), A.readJson("i18n-licence"));
  const t = (key, values) => (key in LOCAL ? A.fillIn(LOCAL[key], values) : S.t(key, values));
  const group = (name) => LOCAL[name] || S.group(name);
  const errorText = (error, values) =>
    error instanceof ApiError && `error_${error.code}` in LOCAL
      ? t(`error_${error.code}`, Object.assign({}, error.details, values))
      : S.errorText(error, values);

  const STATUS_BADGE = { pending: "wait", active: "ok", past_due: "warn", suspended: "bad", cancelled: "off" };
  const INVOICE_BADGE = { open: "wait", past_due: "bad", paid: "ok" };

  /** "432.00" (or "432", "1,234.5") → 43200 cents, in integer arithmetic; null if not an amount. */
  function cents(text) {
    const match = /^(\d{1,9})(?:\.(\d{1,2}))?$/.exec(String(text).trim().replaceAll(",", ""));
    if (!match) return null;
    return Number(match[1]) * 100 + Number((match[2] || "").padEnd(2, "0"));
  }

  /** 43200 → "432.00", for the amount field. */
  const plain = (amount) => `${Math.trunc(amount / 100)}.${String(amount % 100).padStart(2, "0")}`;

  // --- /billing ---------------------------------------------------------------------------

  async function setUpBilling(page) {
    const pageMessage = $("[data-page-message]", page);
    const unpaidTable = $("[data-unpaid]", page);
    const invoicesMessage = $("[data-invoices-message]", page);
    let accounts = {};

    const customer = (accountId) => {
      const account = accounts[accountId];
      if (!account) return h("span", { class: "muted" }, "—");
      return h("div", {}, h("strong", {}, account.company), h("div", { class: "hint email" }, account.email));
    };

    function payRow(invoice, row) {
      const reference = h("input", { name: "reference", required: true, maxlength: 200, autocomplete: "off" });
      const amount = h("input", {
        name: "amount",
        required: true,
        inputmode: "decimal",
        value: plain(invoice.total_cents),
        "data-invalid-hint": t("amount_invalid"),
      });
      const box = h("div", { class: "form-message", "data-form-message": "", role: "status" });
      const form = h(
        "form",
        { class: "pay-form", "data-pay-form": invoice.number, "data-testid": "pay-form", novalidate: true },
        h("label", { class: "field" }, h("span", { class: "field-label" }, t("reference")), reference),
        h(
          "label",
          { class: "field" },
          h("span", { class: "field-label" }, t("amount", { currency: invoice.currency })),
          amount,
        ),
        h(
          "div",
          { class: "form-actions" },
          h("button", { type: "submit", class: "button primary" }, t("record_payment")),
          h("button", { type: "button", class: "button", onclick: () => holder.remove() }, t("cancel")),
        ),
        box,
      );
      const holder = h(
        "tr",
        { class: "pay-row", "data-pay-row": invoice.number },
        h("td", { colspan: $$("thead th", unpaidTable).length }, form),
      );
      form.addEventListener("submit", async (event) => {
        event.preventDefault();
        showMessage(box, "", "");
        if (!checkForm(form)) return;
        const amountCents = cents(amount.value);
        if (amountCents === null || amountCents < 1) {
          clearFieldErrors(form);
          markField(form, "amount", t("amount_invalid"));
          amount.focus();
          return;
        }
        await busy(form, async () => {
          try {
            await api("POST", `/api/v1/billing/invoices/${invoice.id}/payments`, {
              reference: reference.value.trim(),
              amount_cents: amountCents,
            });
            await load();
            showMessage(
              invoicesMessage,
              "success",
              t("paid_ok", { number: invoice.number, amount: money(amountCents, invoice.currency) }),
            );
          } catch (error) {
            S.showError(form, box, error, { total: money(invoice.total_cents, invoice.currency) });
          }
        });
      });
      row.after(holder);
      reference.focus();
    }

    function unpaidRow(invoice) {
      const kinds = group("invoice_kinds");
      const statuses = group("invoice_statuses");
      const row = h(
        "tr",
        { "data-invoice": invoice.number, "data-status": invoice.status },
        h("td", {}, h("strong", {}, invoice.number)),
        h("td", {}, customer(invoice.account_id)),
        h("td", {}, kinds[invoice.kind] || invoice.kind),
        h("td", { class: "nowrap date" }, dayOf(invoice.due_at)),
        h("td", { class: "money" }, money(invoice.total_cents, invoice.currency)),
        h("td", {}, badge(INVOICE_BADGE[invoice.status] || "", statuses[invoice.status] || invoice.status)),
        h("td", { class: "actions" }),
      );
      const mark = h(
        "button",
        {
          type: "button",
          class: "button small positive",
          "data-action": "mark-paid",
          onclick: () => {
            const open = $(`[data-pay-row="${CSS.escape(invoice.number)}"]`, unpaidTable);
            if (open) open.remove();
            else payRow(invoice, row);
          },
        },
        t("mark_paid"),
      );
      row.lastChild.append(mark);
      return row;
    }

    function subscriptionRow(subscription) {
      const statuses = group("statuses");
      const deployments = group("deployments");
      return h(
        "tr",
        { "data-subscription": subscription.id, "data-status": subscription.status },
        h("td", {}, customer(subscription.account_id)),
        h(
          "td",
          {},
          itemName(subscription.license),
          h("div", { class: "hint" }, deployments[subscription.deployment] || subscription.deployment),
        ),
        h("td", { class: "nowrap" }, t("agents_count", { agents: subscription.agents })),
        h(
          "td",
          {},
          badge(STATUS_BADGE[subscription.status] || "", statuses[subscription.status] || subscription.status),
          subscription.cancel_at_period_end && subscription.status !== "cancelled"
            ? h("div", { class: "hint" }, t("cancelling"))
            : null,
        ),
        h("td", { class: "nowrap date" }, subscription.status === "cancelled" ? "—" : day(subscription.current_period_end)),
        h("td", { class: "money" }, money(subscription.monthly_total_cents)),
      );
    }

    const accountRow = (account) =>
      h(
        "tr",
        { "data-account": account.email },
        h("td", {}, h("strong", {}, account.company)),
        h(
          "td",
          { class: "email" },
          account.email,
          h("div", {}, badge(account.email_verified ? "ok" : "warn", t(account.email_verified ? "verified" : "not_verified"))),
        ),
        h("td", { class: "nowrap date" }, dayOf(account.created_at)),
      );

    const leadRow = (lead) =>
      h(
        "tr",
        { "data-lead": lead.email },
        h(
          "td",
          {},
          h("strong", {}, lead.name),
          h("div", { class: "hint" }, lead.company),
          h("div", { class: "hint email" }, [lead.email, lead.phone].filter(Boolean).join(" · ")),
        ),
        h(
          "td",
          { class: "wrap" },
          lead.message,
          lead.deployment || lead.agents
            ? h(
                "div",
                { class: "hint" },
                [
                  lead.deployment ? group("deployments")[lead.deployment] || lead.deployment : null,
                  lead.agents ? t("agents_count", { agents: lead.agents }) : null,
                ]
                  .filter(Boolean)
                  .join(" · "),
              )
            : null,
        ),
        h("td", { class: "nowrap date" }, dayOf(lead.created_at)),
      );

    async function load() {
      let data;
      try {
        const [accountList, unpaid, subscriptions, leads] = await Promise.all([
          api("GET", "/api/v1/billing/accounts"),
          api("GET", "/api/v1/billing/invoices?unpaid=true"),
          api("GET", "/api/v1/billing/subscriptions"),
          api("GET", "/api/v1/billing/leads"),
        ]);
        data = { accountList, unpaid, subscriptions, leads };
      } catch (error) {
        showMessage(pageMessage, "error", errorText(error));
        return;
      }
      accounts = Object.fromEntries(data.accountList.map((account) => [account.id, account]));
      fillTable(unpaidTable, data.unpaid.map(unpaidRow), t("no_unpaid"));
      $("[data-unpaid-count]", page).textContent = data.unpaid.length
        ? t("unpaid_count", { count: data.unpaid.length })
        : "";
      fillTable($("[data-subscriptions]", page), data.subscriptions.map(subscriptionRow), t("no_subscriptions"));
      fillTable($("[data-accounts]", page), data.accountList.map(accountRow), t("no_accounts"));
      fillTable($("[data-leads]", page), data.leads.map(leadRow), t("no_leads"));
    }

    await load();
  }

  // --- /admin/licence ---------------------------------------------------------------------

  async function setUpLicence(page) {
    if (page.dataset.onPremise !== "true") return;
    const stateBox = $("[data-licence-state]", page);
    const alerts = $("[data-licence-alerts]", page);
    const factsBox = $("[data-licence-facts]", page);
    const form = $("[data-licence-form]", page);
    const box = $("[data-form-message]", form);
    const fileInput = form.elements.namedItem("file");
    const STATE_BADGE = { active: "ok", grace: "warn", expired: "bad", missing: "bad" };

    function render(status) {
      const states = group("states");
      page.dataset.state = status.state;
      stateBox.replaceChildren(badge(STATE_BADGE[status.state] || "", states[status.state] || status.state, "licence-state"));
      const notes = [];
      if (status.state === "missing") notes.push(["error", t("alert_missing")]);
      if (status.state === "grace") {
        notes.push([
          "warning",
          t("alert_grace", { date: day(status.terms.valid_until), days: status.days_left, until: day(status.grace_ends_on) }),
        ]);
      }
      if (status.state === "expired") notes.push(["error", t("alert_expired", { date: day(status.grace_ends_on) })]);
      alerts.replaceChildren(...notes.map(([kind, text]) => h("p", { class: `alert ${kind}`, role: "alert" }, text)));
      alerts.hidden = notes.length === 0;
      const terms = status.terms;
      if (!terms) {
        factsBox.replaceChildren();
        return;
      }
      const pairs = [
        [t("customer"), terms.customer],
        [t("licence_type"), itemName(terms.license)],
        [t("agents"), String(terms.agents)],
        [t("addons"), terms.addons.map(itemName).join(", ") || S.t("none")],
        [
          t("valid_until"),
          status.state === "active"
            ? `${day(terms.valid_until)} · ${t("days_left", { days: status.days_left })}`
            : day(terms.valid_until),
        ],
        [t("grace_ends_on"), day(status.grace_ends_on)],
        [t("issued_at"), dayOf(terms.issued_at)],
        [t("licence_id"), h("code", {}, terms.licence_id)],
      ];
      factsBox.replaceChildren(
        h(
          "dl",
          { class: "facts", "data-testid": "licence-facts" },
          pairs.flatMap(([label, value]) => [h("dt", {}, label), h("dd", {}, value)]),
        ),
      );
    }

    const read = (file) =>
      new Promise((resolve, reject) => {
        const reader = new FileReader();
        reader.onload = () => resolve(String(reader.result));
        reader.onerror = () => reject(reader.error);
        reader.readAsText(file);
      });

    fileInput.addEventListener("change", () => {
      showMessage(box, "", "");
      $("[data-file-name]", form).textContent = fileInput.files.length ? fileInput.files[0].name : "";
    });

    form.addEventListener("submit", async (event) => {
      event.preventDefault();
      showMessage(box, "", "");
      clearFieldErrors(form);
      const file = fileInput.files[0];
      if (!file) {
        showMessage(box, "error", t("choose_file"));
        return;
      }
      await busy(form, async () => {
        let licence;
        try {
          licence = JSON.parse(await read(file));
        } catch {
          licence = null;
        }
        if (!licence || typeof licence !== "object" || Array.isArray(licence)) {
          showMessage(box, "error", t("not_json"));
          return;
        }
        try {
          const status = await api("POST", "/api/v1/licence", { document: licence });
          render(status);
          form.reset();
          $("[data-file-name]", form).textContent = "";
          showMessage(box, "success", t("installed", { agents: status.terms.agents, date: day(status.terms.valid_until) }));
        } catch (error) {
          showMessage(box, "error", errorText(error));
        }
      });
    });

    try {
      render(await api("GET", "/api/v1/licence"));
    } catch (error) {
      showMessage(alerts, "error", errorText(error));
    }
  }

  // --- start ------------------------------------------------------------------------------

  const PAGES = { billing: setUpBilling, licence: setUpLicence };

  function start() {
    for (const page of $$("[data-sales]")) {
      const setUp = PAGES[page.dataset.sales];
      if (!setUp) continue;
      Promise.resolve()
        .then(() => setUp(page))
        .then(() => page.setAttribute("data-ready", "true"))
        .catch((error) => {
          const box = $("[data-page-message]", page) || $("[data-form-message]", page);
          if (box) showMessage(box, "error", errorText(error));
        });
    }
  }

  if (document.readyState === "loading") document.addEventListener("DOMContentLoaded", start);
  else start();
})();
