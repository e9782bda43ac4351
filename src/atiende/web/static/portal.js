/* Sales pages and the customer portal: hand-written, no dependencies.
 *
 * /pricing (the quote calculator and the demo / pre-sale form), /portal/signup,
 * /portal/verify and /portal (orders, subscriptions, changes of plan, cancellation, invoices,
 * licence files) over the JSON API of docs/billing.md. Amounts are integer cents from the API
 * and are only formatted here, never computed. Strings come from the page (id="i18n-sales",
 * id="i18n-portal"); the helpers are shared with billing.js as window.AtiendeSales.
 */
"use strict";

(() => {
  const A = window.Atiende;
  if (!A) return;
  const { h, $, $$, api, ApiError, showMessage, clearFieldErrors, checkForm, busy, fillTable } = A;

  const LOCAL = Object.assign({}, A.readJson("i18n-sales"), A.readJson("i18n-portal"));
  const t = (key, values) => (key in LOCAL ? A.fillIn(LOCAL[key], values) : A.t(key, values));
  const group = (name) => LOCAL[name] || {};
  const PRICES = Object.assign({ names: {}, rules: {}, licences: [], addons: [] }, A.readJson("price-list"));
  const itemName = (code) => PRICES.names[code] || code;

  // --- formatting -------------------------------------------------------------------------

  /** "USD 1,234.50" from integer cents: the same on every page and in every language. */
  function money(cents, currency) {
    const sign = cents < 0 ? "-" : "";
    const whole = Math.abs(cents);
    const units = Math.trunc(whole / 100).toLocaleString("en-US");
    return `${currency || PRICES.currency || "USD"} ${sign}${units}.${String(whole % 100).padStart(2, "0")}`;
  }

  /** A calendar day from the API (YYYY-MM-DD) in the browser's language. */
  const day = (iso) => (iso ? A.formats.date.format(new Date(`${iso}T12:00:00`)) : "—");
  /** The last day a period covers: periods end (exclusive) on the renewal date. */
  const lastDay = (iso) =>
    iso ? A.formats.date.format(new Date(new Date(`${iso}T12:00:00`).getTime() - 86400000)) : "—";
  /** The day of an instant from the API, in the browser's time zone. */
  const dayOf = (instant) => A.formatDate(instant, A.formats.date);

  function badge(kind, text, testid) {
    return h("span", { class: `badge ${kind}`, "data-testid": testid }, text);
  }

  // --- errors -----------------------------------------------------------------------------

  /** The sentence for an API error: ours when we have one (filled in from the error's details
   * and values), else the API's own for a broken rule, else the shared one. */
  function errorText(error, values) {
    if (error instanceof ApiError) {
      const key = `error_${error.code}`;
      if (key in LOCAL) return t(key, Object.assign({}, error.details, values));
      if (error.status === 422 && error.code !== "validation_error" && error.message) {
        return error.message;
      }
    }
    return A.errorMessage(error);
  }

  function showError(form, box, error, values) {
    A.showFormError(form, box, error);
    showMessage(box, "error", errorText(error, values));
  }

  /** Values a price-list refusal can name, from the terms asked for. */
  function ruleValues(terms) {
    const rule = PRICES.rules[terms.deployment] || {};
    return {
      deployment: group("deployments")[terms.deployment] || terms.deployment,
      agents: terms.agents,
      pbx_users: terms.pbx_users,
      minimum: rule.min_agents,
      step: rule.step,
      counts: rule.counts,
    };
  }

  // --- the quote calculator ---------------------------------------------------------------

  const CALCULATOR_FIELDS = new Set(["deployment", "license", "agents", "pbx_users", "addons"]);

  const whole = (value) => {
    const text = String(value ?? "").trim();
    if (text === "") return null;
    return /^\d{1,6}$/.test(text) ? Number(text) : Number.NaN;
  };

  /** The terms in a calculator form, as the quote and order calls take them. */
  function termsOf(form) {
    const data = new FormData(form);
    const deployment = String(data.get("deployment") || "cloud");
    const terms = {
      deployment,
      license: String(data.get("license") || ""),
      agents: whole(data.get("agents")),
      addons: data.getAll("addons").map(String),
    };
    if ((PRICES.rules[deployment] || {}).pbx_users_billed) {
      const pbx = whole(data.get("pbx_users"));
      if (pbx !== null) terms.pbx_users = pbx;
    }
    return terms;
  }

  function quoteLines(quote) {
    return h(
      "table",
      { class: "quote-lines" },
      h(
        "tbody",
        {},
        quote.lines.map((line) =>
          h(
            "tr",
            { "data-line": line.code },
            h(
              "td",
              {},
              itemName(line.code),
              h(
                "span",
                { class: "hint" },
                t("quantity_times", { quantity: line.quantity, unit: money(line.unit_cents, quote.currency) }),
              ),
            ),
            h("td", { class: "amount money" }, money(line.amount_cents, quote.currency)),
          ),
        ),
      ),
    );
  }

  /**
   * Asks for the quote of the form's terms on every change and shows it, or the rule the
   * terms break. onQuote(current) gets {terms, quote}, or null while asking or when refused.
   */
  function calculator(form, output, onQuote) {
    const body = $("[data-quote-body]", output);
    const errorBox = $("[data-quote-error]", output);
    const agents = form.elements.namedItem("agents");
    const pbx = form.elements.namedItem("pbx_users");
    const hint = $("[data-agents-hint]", form);
    let pbxTouched = false;
    let sequence = 0;
    let timer = null;
    let current = null;
    const tell = (value) => {
      current = value;
      if (onQuote) onQuote(value);
    };

    // PBX users follow the agents (every agent is one) until the visitor sets them.
    pbx.addEventListener("input", () => {
      pbxTouched = pbx.value !== "";
    });
    agents.addEventListener("input", () => {
      if (!pbxTouched) pbx.value = agents.value;
    });

    /** Shows what the deployment allows; on a switch, moves the agents to an allowed count. */
    function applyDeployment(snap) {
      const rule = PRICES.rules[termsOf(form).deployment] || {};
      const billed = Boolean(rule.pbx_users_billed);
      for (const node of $$("[data-cloud-only]", form)) {
        node.hidden = !billed;
        for (const input of $$("input, select, textarea", node)) input.disabled = !billed;
      }
      if (hint) hint.textContent = rule.counts ? t("agents_hint", { counts: rule.counts }) : "";
      const count = whole(agents.value);
      if (snap && rule.min_agents && !(count >= rule.min_agents && (count - rule.min_agents) % rule.step === 0)) {
        const steps = count > rule.min_agents ? Math.ceil((count - rule.min_agents) / rule.step) : 0;
        agents.value = String(rule.min_agents + steps * rule.step);
        if (!pbxTouched) pbx.value = agents.value;
      }
    }

    async function refresh() {
      const terms = termsOf(form);
      const mine = ++sequence;
      tell(null);
      output.dataset.state = "asking";
      const refuse = (text) => {
        body.replaceChildren();
        output.dataset.state = "refused";
        showMessage(errorBox, "error", text);
      };
      if (!Number.isInteger(terms.agents)) return refuse(t("error_agents_not_positive"));
      if ("pbx_users" in terms && !Number.isInteger(terms.pbx_users)) {
        return refuse(t("error_pbx_users_not_positive"));
      }
      try {
        const quote = await api("POST", "/api/v1/pricing/quote", terms);
        if (mine !== sequence) return undefined;
        showMessage(errorBox, "", "");
        body.replaceChildren(
          quoteLines(quote),
          h(
            "div",
            { class: "quote-total" },
            h("span", {}, t("total_per_month")),
            h("span", { class: "money", "data-testid": "quote-total" }, money(quote.total_cents, quote.currency)),
          ),
        );
        output.dataset.state = "quoted";
        output.dataset.totalCents = String(quote.total_cents);
        tell({ terms, quote });
      } catch (error) {
        if (mine === sequence) refuse(errorText(error, ruleValues(terms)));
      }
      return undefined;
    }

    const schedule = () => {
      clearTimeout(timer);
      timer = setTimeout(refresh, 150);
    };
    form.addEventListener("input", (event) => {
      if (CALCULATOR_FIELDS.has(event.target.name)) schedule();
    });
    form.addEventListener("change", (event) => {
      if (event.target.name === "deployment") applyDeployment(true);
      if (CALCULATOR_FIELDS.has(event.target.name)) schedule();
    });
    applyDeployment(false);
    refresh();
    return {
      get current() {
        return current;
      },
      refresh,
    };
  }

  /** A short name from a company name, as the tenants page suggests one. */
  function slugOf(text) {
    return text
      .normalize("NFD")
      .replace(/[\u0300-\u036f]/g, "")
      .toLowerCase()
      .replace(/[^a-z0-9]+/g, "-")
      .replace(/^-+|-+$/g, "")
      .slice(0, 63);
  }

  // --- /pricing ---------------------------------------------------------------------------

  function setUpPricing(page) {
    calculator($("[data-calculator]", page), $("[data-quote]", page));
    const form = $("[data-lead-form]", page);
    const box = $("[data-form-message]", form);
    form.addEventListener("submit", async (event) => {
      event.preventDefault();
      showMessage(box, "", "");
      if (!checkForm(form)) return;
      const data = new FormData(form);
      const text = (name) => String(data.get(name) || "").trim();
      const agents = whole(data.get("agents"));
      const body = {
        name: text("name"),
        email: text("email"),
        company: text("company"),
        phone: text("phone") || null,
        deployment: text("deployment") || null,
        agents: Number.isInteger(agents) ? agents : null,
        message: text("message"),
      };
      await busy(form, async () => {
        try {
          const lead = await api("POST", "/api/v1/leads", body);
          form.reset();
          showMessage(box, "success", t("lead_sent", { name: lead.name, email: lead.email }));
        } catch (error) {
          showError(form, box, error);
        }
      });
    });
  }

  // --- /portal/signup and /portal/verify ---------------------------------------------------

  function setUpSignup(page) {
    const form = $("[data-signup-form]", page);
    const box = $("[data-form-message]", form);
    form.addEventListener("submit", async (event) => {
      event.preventDefault();
      showMessage(box, "", "");
      if (!checkForm(form)) return;
      const data = new FormData(form);
      const body = {
        name: String(data.get("name")).trim(),
        company: String(data.get("company")).trim(),
        email: String(data.get("email")).trim(),
        password: String(data.get("password")),
        locale: String(data.get("locale")),
      };
      await busy(form, async () => {
        try {
          const account = await api("POST", "/api/v1/portal/signup", body);
          $("[data-signup]", page).hidden = true;
          $("[data-signup-sent]", page).textContent = t("signup_sent", { email: account.email });
          $("[data-signup-done]", page).hidden = false;
        } catch (error) {
          showError(form, box, error);
        }
      });
    });
  }

  async function setUpVerify(page) {
    const panel = $("[data-verify]", page);
    const title = $("[data-verify-title]", page);
    const box = $("[data-form-message]", page);
    const token = new URLSearchParams(window.location.search).get("token") || "";
    const fail = (text) => {
      panel.dataset.state = "failed";
      title.textContent = t("not_verified_title");
      showMessage(box, "error", text);
    };
    if (!token) {
      fail(t("missing_token"));
      return;
    }
    try {
      const account = await api("POST", "/api/v1/portal/verify", { token });
      panel.dataset.state = "verified";
      title.textContent = t("verified_title");
      showMessage(box, "success", t("verified", { company: account.company, email: account.email }));
      $("[data-verify-done]", page).hidden = false;
    } catch (error) {
      // A token of the wrong shape is refused by the schema: to a person it is the same.
      const invalid = error instanceof ApiError && ["validation_error", "verification_invalid"].includes(error.code);
      fail(invalid ? t("error_verification_invalid") : errorText(error));
    }
  }

  // --- /portal ----------------------------------------------------------------------------

  const STATUS_BADGE = { pending: "wait", active: "ok", past_due: "warn", suspended: "bad", cancelled: "off" };
  const INVOICE_BADGE = { open: "wait", past_due: "bad", paid: "ok" };
  const DAY_MS = 24 * 60 * 60 * 1000;

  function termsSummary(terms) {
    const addons = (terms.addons || []).map(itemName).join(", ") || t("none");
    return terms.pbx_users === null || terms.pbx_users === undefined
      ? t("terms_summary_no_pbx", { agents: terms.agents, addons })
      : t("terms_summary", { agents: terms.agents, pbx_users: terms.pbx_users, addons });
  }

  function facts(pairs) {
    return h(
      "dl",
      { class: "facts" },
      pairs.filter(Boolean).flatMap(([label, value, name]) => [
        h("dt", {}, label),
        h("dd", { "data-fact": name }, value),
      ]),
    );
  }

  async function setUpPortal(page) {
    const graceDays = Number(page.dataset.graceDays || 0);
    const pageMessage = $("[data-page-message]", page);
    const banners = $("[data-banners]", page);
    const subscriptionsBox = $("[data-subscriptions]", page);
    const subscriptionsMessage = $("[data-subscriptions-message]", page);
    const invoicesTable = $("[data-invoices]", page);
    const invoicesMessage = $("[data-invoices-message]", page);
    const licencesPanel = $("[data-licences-panel]", page);
    const licencesTable = $("[data-licences]", page);
    const orderSection = $("[data-order-section]", page);
    const showOrder = $("[data-show-order]", page);
    const accountForm = $("[data-account-form]", page);
    let state = { account: null, subscriptions: [], invoices: [], licences: [] };
    let orderOpen = null;

    async function load() {
      try {
        const [account, subscriptions, invoices, licences] = await Promise.all([
          api("GET", "/api/v1/portal/account"),
          api("GET", "/api/v1/portal/subscriptions"),
          api("GET", "/api/v1/portal/invoices"),
          api("GET", "/api/v1/portal/licences"),
        ]);
        state = { account, subscriptions, invoices, licences };
      } catch (error) {
        showMessage(pageMessage, "error", errorText(error));
        return;
      }
      if (orderOpen === null) orderOpen = state.subscriptions.length === 0;
      renderAccount();
      renderBanners();
      renderSubscriptions();
      renderInvoices();
      renderLicences();
    }

    const unpaid = (subscriptionId) =>
      state.invoices.filter((i) => i.subscription_id === subscriptionId && i.status !== "paid");

    // account

    function renderAccount() {
      const { account } = state;
      $("[data-verified]", page).replaceChildren(
        account.email_verified
          ? badge("ok", t("verified"), "verified")
          : badge("warn", t("not_verified"), "not-verified"),
      );
      for (const name of ["company", "tax_id", "address"]) {
        const input = accountForm.elements.namedItem(name);
        if (document.activeElement !== input) input.value = account[name] || "";
      }
    }

    accountForm.addEventListener("submit", async (event) => {
      event.preventDefault();
      const box = $("[data-form-message]", accountForm);
      showMessage(box, "", "");
      if (!checkForm(accountForm)) return;
      const data = new FormData(accountForm);
      const optional = (name) => String(data.get(name) || "").trim() || null;
      await busy(accountForm, async () => {
        try {
          state.account = await api("PATCH", "/api/v1/portal/account", {
            company: String(data.get("company")).trim(),
            tax_id: optional("tax_id"),
            address: optional("address"),
          });
          renderAccount();
          showMessage(box, "success", t("account_saved"));
        } catch (error) {
          showError(accountForm, box, error);
        }
      });
    });

    // banners: what needs doing now

    function renderBanners() {
      const notes = [];
      if (!state.account.email_verified) {
        notes.push(
          h("p", { class: "alert warning", "data-testid": "banner-unverified" }, t("not_verified_banner", { email: state.account.email })),
        );
      }
      for (const subscription of state.subscriptions) {
        const overdue = unpaid(subscription.id).filter((i) => i.status === "past_due");
        const numbers = overdue.map((i) => i.number).join(", ");
        if (subscription.status === "past_due") {
          const firstDue = Math.min(...overdue.map((i) => Date.parse(i.due_at)));
          const suspendOn = Number.isFinite(firstDue) ? dayOf(new Date(firstDue + graceDays * DAY_MS).toISOString()) : "—";
          notes.push(
            h("p", { class: "alert warning", role: "alert", "data-testid": "banner-past_due" }, t("banner_past_due", { numbers, date: suspendOn })),
          );
        } else if (subscription.status === "suspended") {
          notes.push(
            h("p", { class: "alert error", role: "alert", "data-testid": "banner-suspended" }, t("banner_suspended", { numbers })),
          );
        }
      }
      banners.replaceChildren(...notes);
      banners.hidden = notes.length === 0;
    }

    // subscriptions

    function renderSubscriptions() {
      const list = state.subscriptions;
      subscriptionsBox.replaceChildren(
        ...(list.length ? list.map(subscriptionCard) : [h("p", { class: "muted" }, t("no_subscriptions"))]),
      );
      orderSection.hidden = !orderOpen;
      showOrder.hidden = Boolean(orderOpen);
    }

    showOrder.addEventListener("click", () => {
      orderOpen = true;
      renderSubscriptions();
      orderSection.scrollIntoView({ block: "start" });
    });

    function subscriptionCard(subscription) {
      const statuses = group("statuses");
      const deployments = group("deployments");
      const cloud = subscription.deployment === "cloud";
      const end = subscription.current_period_end;
      const cancelling = subscription.cancel_at_period_end && subscription.status !== "cancelled";
      const notes = [];
      if (subscription.status === "pending") {
        const first = unpaid(subscription.id).find((i) => i.kind === "initial");
        notes.push(
          h("p", { class: "hint" }, first ? t("starts_on_payment", { number: first.number }) : t("starts_on_payment_any")),
        );
      }
      if (subscription.pending_terms && subscription.status !== "cancelled") {
        notes.push(
          h(
            "p",
            { class: "alert", "data-testid": "pending-terms" },
            t("pending_terms", { date: day(end), terms: termsSummary(subscription.pending_terms) }),
          ),
        );
      }
      if (cancelling) {
        notes.push(
          h("p", { class: "alert warning", "data-testid": "cancel-notice", "data-until": end }, t("cancel_notice", { date: lastDay(end) })),
        );
      }
      const node = h(
        "article",
        { class: "sub-card", "data-subscription": subscription.id, "data-status": subscription.status },
        h(
          "header",
          {},
          h(
            "h3",
            {},
            `${itemName(subscription.license)} · ${deployments[subscription.deployment] || subscription.deployment}`,
            badge(STATUS_BADGE[subscription.status] || "", statuses[subscription.status] || subscription.status, "subscription-status"),
          ),
          h("strong", { class: "money", "data-fact": "monthly" }, `${money(subscription.monthly_total_cents)} ${t("per_month")}`),
        ),
        facts([
          [t("agents"), String(subscription.agents), "agents"],
          cloud ? [t("pbx_users"), String(subscription.pbx_users), "pbx_users"] : null,
          [t("addons"), subscription.addons.map(itemName).join(", ") || t("none"), "addons"],
          subscription.current_period_start
            ? [t("period"), t("period_range", { start: day(subscription.current_period_start), end: lastDay(end) }), "period"]
            : null,
          end && subscription.status !== "cancelled"
            ? [cancelling ? t("ends_on") : t("next_renewal"), day(end), "renewal"]
            : null,
        ]),
        notes,
      );
      const actions = subscriptionActions(subscription, node);
      if (actions.length) node.append(h("div", { class: "button-row" }, actions));
      return node;
    }

    function subscriptionActions(subscription, node) {
      const { status } = subscription;
      const end = subscription.current_period_end;
      const buttons = [];
      const button = (label, action, onclick, className = "") =>
        h("button", { type: "button", class: `button small ${className}`, "data-action": action, onclick }, label);
      const live = ["active", "past_due", "suspended"].includes(status);
      if (["active", "past_due"].includes(status) && !subscription.cancel_at_period_end) {
        buttons.push(
          button(t("change_plan"), "change", (event) => {
            const existing = $("[data-change-form]", node);
            if (existing) existing.remove();
            else node.append(changeForm(subscription));
            event.currentTarget.setAttribute("aria-expanded", String(!existing));
          }),
        );
      }
      if ((live && !subscription.cancel_at_period_end) || status === "pending") {
        const pending = status === "pending";
        buttons.push(
          button(pending ? t("cancel_order") : t("cancel"), "cancel", async () => {
            const question = pending ? t("confirm_cancel_order") : t("confirm_cancel", { date: lastDay(end) });
            if (!window.confirm(question)) return;
            await act(`/api/v1/portal/subscriptions/${subscription.id}/cancel`, (updated) =>
              updated.status === "cancelled" ? "" : t("cancelled_ok", { date: lastDay(updated.current_period_end) }),
            );
          }, "danger"),
        );
      }
      if (live && subscription.cancel_at_period_end) {
        buttons.push(
          button(t("withdraw"), "withdraw", () =>
            act(`/api/v1/portal/subscriptions/${subscription.id}/withdraw-cancellation`, (updated) =>
              t("withdrawn_ok", { date: day(updated.current_period_end) }),
            ),
          ),
        );
      }
      return buttons;
    }

    async function act(path, success) {
      showMessage(subscriptionsMessage, "", "");
      try {
        const updated = await api("POST", path);
        await load();
        const text = success(updated);
        if (text) showMessage(subscriptionsMessage, "success", text);
      } catch (error) {
        showMessage(subscriptionsMessage, "error", errorText(error));
      }
    }

    /** Change of plan: preview first (charged now, pro rata; the monthly price from the
     * renewal), then confirm exactly what was previewed. */
    function changeForm(subscription) {
      const base = subscription.pending_terms || subscription;
      const cloud = subscription.deployment === "cloud";
      const number = (name, value) =>
        h("input", { name, type: "number", inputmode: "numeric", min: 1, max: 100000, value, required: true });
      const licence =
        subscription.license === "voice"
          ? h(
              "label",
              { class: "field" },
              h("span", { class: "field-label" }, t("licence_type")),
              h(
                "select",
                { name: "license" },
                PRICES.licences.map((code) =>
                  h("option", { value: code, selected: code === subscription.license }, itemName(code)),
                ),
              ),
              h("span", { class: "hint" }, t("upgrade_only")),
            )
          : h(
              "div",
              { class: "field" },
              h("span", { class: "field-label" }, t("licence_type")),
              h("span", {}, itemName(subscription.license)),
              h("input", { type: "hidden", name: "license", value: subscription.license }),
            );
      const preview = h("div", { class: "preview", "data-preview": "", "data-testid": "change-preview", hidden: true });
      const box = h("div", { class: "form-message", "data-form-message": "", role: "status" });
      const confirm = h(
        "button",
        { type: "button", class: "button primary", "data-confirm-change": "", hidden: true },
        t("confirm_change"),
      );
      const form = h(
        "form",
        { class: "stack", "data-change-form": "", "data-testid": "change-form", novalidate: true },
        h(
          "div",
          { class: "calc-grid" },
          licence,
          h("label", { class: "field" }, h("span", { class: "field-label" }, t("agents")), number("agents", base.agents)),
          cloud
            ? h("label", { class: "field" }, h("span", { class: "field-label" }, t("pbx_users")), number("pbx_users", base.pbx_users))
            : null,
        ),
        h(
          "fieldset",
          {},
          h("legend", {}, t("addons")),
          h(
            "div",
            { class: "choices" },
            PRICES.addons.map((code) =>
              h(
                "label",
                { class: "choice" },
                h("input", { type: "checkbox", name: "addons", value: code, checked: (base.addons || []).includes(code) }),
                h("span", {}, h("strong", {}, itemName(code))),
              ),
            ),
          ),
        ),
        preview,
        h(
          "div",
          { class: "form-actions" },
          h("button", { type: "submit", class: "button" }, t("preview")),
          confirm,
        ),
        box,
      );
      let previewed = null;

      const bodyOf = () => {
        const data = new FormData(form);
        const body = {
          license: String(data.get("license")),
          agents: whole(data.get("agents")),
          addons: data.getAll("addons").map(String),
        };
        if (cloud) body.pbx_users = whole(data.get("pbx_users"));
        return body;
      };
      const values = (body) => ruleValues(Object.assign({ deployment: subscription.deployment }, body));

      form.addEventListener("input", () => {
        previewed = null;
        preview.hidden = true;
        confirm.hidden = true;
      });

      form.addEventListener("submit", async (event) => {
        event.preventDefault();
        showMessage(box, "", "");
        if (!checkForm(form)) return;
        const body = bodyOf();
        await busy(form, async () => {
          try {
            const result = await api("POST", `/api/v1/portal/subscriptions/${subscription.id}/preview-change`, body);
            const charge = result.charge_now;
            const parts = [
              h(
                "strong",
                { "data-testid": "charge-now", "data-cents": charge.total_cents },
                charge.total_cents > 0
                  ? t("charge_now", { amount: money(charge.total_cents, charge.currency), date: dayOf(result.charge_now_due_at) })
                  : t("charge_nothing"),
              ),
              charge.lines.length ? quoteLines(charge) : null,
              h(
                "span",
                { "data-testid": "from-renewal", "data-cents": result.next_renewal_total_cents },
                t("from_renewal", { date: day(result.renewal_on), amount: money(result.next_renewal_total_cents, charge.currency) }),
              ),
              result.effective_at_renewal ? h("span", { class: "hint" }, t("decreases_wait", { date: day(result.renewal_on) })) : null,
            ];
            preview.replaceChildren(...parts.filter(Boolean));
            preview.hidden = false;
            confirm.hidden = false;
            previewed = body;
          } catch (error) {
            showError(form, box, error, values(body));
          }
        });
      });

      confirm.addEventListener("click", async () => {
        if (!previewed) {
          showMessage(box, "error", t("change_needs_preview"));
          return;
        }
        confirm.disabled = true;
        try {
          await api("POST", `/api/v1/portal/subscriptions/${subscription.id}/change`, previewed);
          await load();
          showMessage(subscriptionsMessage, "success", t("changed_ok"));
        } catch (error) {
          confirm.disabled = false;
          showError(form, box, error, values(previewed));
        }
      });
      return form;
    }

    // invoices and licence files

    function renderInvoices() {
      const statuses = group("invoice_statuses");
      const kinds = group("invoice_kinds");
      const rows = state.invoices.map((invoice) =>
        h(
          "tr",
          { "data-invoice": invoice.number, "data-kind": invoice.kind, "data-status": invoice.status },
          h("td", {}, h("strong", {}, invoice.number)),
          h(
            "td",
            {},
            kinds[invoice.kind] || invoice.kind,
            invoice.period_start
              ? h("div", { class: "hint" }, t("period_range", { start: day(invoice.period_start), end: lastDay(invoice.period_end) }))
              : null,
          ),
          h("td", { class: "nowrap date" }, dayOf(invoice.issued_at)),
          h("td", { class: "nowrap date" }, dayOf(invoice.due_at)),
          h("td", { class: "money", "data-testid": "invoice-total" }, money(invoice.total_cents, invoice.currency)),
          h("td", {}, badge(INVOICE_BADGE[invoice.status] || "", statuses[invoice.status] || invoice.status, "invoice-status")),
          h(
            "td",
            { class: "actions" },
            h(
              "a",
              { class: "button small", href: `/api/v1/portal/invoices/${invoice.id}/pdf`, download: `${invoice.number}.pdf` },
              t("download_pdf"),
            ),
          ),
        ),
      );
      fillTable(invoicesTable, rows, t("no_invoices"));
      showMessage(invoicesMessage, "", "");
    }

    function renderLicences() {
      const onPremise = state.subscriptions.some((s) => s.deployment === "on_premise");
      licencesPanel.hidden = !onPremise && state.licences.length === 0;
      const rows = state.licences.map((licence) =>
        h(
          "tr",
          { "data-licence": licence.licence_id },
          h("td", {}, h("code", {}, licence.licence_id)),
          h("td", { class: "nowrap date" }, dayOf(licence.issued_at)),
          h("td", { class: "nowrap date" }, day(licence.valid_until)),
          h(
            "td",
            { class: "actions" },
            h(
              "a",
              { class: "button small", href: `/api/v1/portal/licences/${licence.id}/file`, download: "" },
              t("download_licence"),
            ),
          ),
        ),
      );
      fillTable(licencesTable, rows, t("none"));
    }

    // a new order

    const orderForm = $("[data-order-form]", page);
    const orderBox = $("[data-form-message]", orderForm);
    const place = $("[data-place-order]", page);
    const calc = calculator(orderForm, $("[data-quote]", orderSection), (current) => {
      place.disabled = !current;
    });
    const tenantName = orderForm.elements.namedItem("tenant_name");
    const tenantSlug = orderForm.elements.namedItem("tenant_slug");
    let slugTouched = false;
    tenantSlug.addEventListener("input", () => {
      slugTouched = tenantSlug.value !== "";
    });
    tenantName.addEventListener("input", () => {
      if (!slugTouched) tenantSlug.value = slugOf(tenantName.value);
    });

    place.addEventListener("click", async () => {
      showMessage(orderBox, "", "");
      const current = calc.current;
      if (!current) return;
      if (!checkForm(orderForm)) {
        showMessage(orderBox, "error", t("complete_order"));
        return;
      }
      const body = Object.assign({}, current.terms);
      if ((PRICES.rules[body.deployment] || {}).pbx_users_billed) {
        const data = new FormData(orderForm);
        const name = String(data.get("tenant_name") || "").trim();
        if (name) body.tenant_name = name;
        body.tenant_slug = String(data.get("tenant_slug") || "").trim();
        body.admin_email = String(data.get("admin_email") || "").trim();
      }
      const label = place.textContent;
      place.disabled = true;
      place.textContent = t("saving");
      try {
        const placed = await api("POST", "/api/v1/portal/orders", body);
        const result = $("[data-order-result]", page);
        const invoice = placed.invoice;
        $('[data-result="number"]', result).textContent = invoice.number;
        $('[data-result="total"]', result).textContent = money(invoice.total_cents, invoice.currency);
        $('[data-result="due"]', result).textContent = dayOf(invoice.due_at);
        $('[data-result="instructions"]', result).textContent = placed.payment_instructions;
        result.hidden = false;
        clearFieldErrors(orderForm);
        showMessage(orderBox, "success", t("order_ok", { number: invoice.number, amount: money(invoice.total_cents, invoice.currency) }));
        await load();
        result.scrollIntoView({ block: "nearest" });
      } catch (error) {
        showError(orderForm, orderBox, error, ruleValues(body));
      } finally {
        place.textContent = label;
        place.disabled = !calc.current;
      }
    });

    await load();
  }

  // --- start ------------------------------------------------------------------------------

  window.AtiendeSales = Object.freeze({ t, group, money, day, dayOf, badge, errorText, showError, itemName });

  const PAGES = {
    pricing: setUpPricing,
    signup: setUpSignup,
    verify: setUpVerify,
    portal: setUpPortal,
  };

  function start() {
    for (const page of $$("[data-sales]")) {
      const setUp = PAGES[page.dataset.sales];
      if (!setUp) continue;
      Promise.resolve()
        .then(() => setUp(page))
        .then(() => page.setAttribute("data-ready", "true"))
        .catch((error) => {
          const box = $("[data-page-message]", page) || $("[data-form-message]", page);
          showMessage(box, "error", errorText(error));
        });
    }
  }

  if (document.readyState === "loading") document.addEventListener("DOMContentLoaded", start);
  else start();
})();
