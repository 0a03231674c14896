/* mp3svc web page: personal API tokens for scripts. Create one (name, scopes, optional expiry),
   see its secret once with a copy button, list them with when each was last used, revoke one.
   app.js hands in its helpers (api, announce, formatDate); the page's own session stays in its
   HttpOnly cookie, which this script never sees. */
"use strict";

window.mp3svcTokens = (page) => {
  const $ = (selector) => document.querySelector(selector);
  const el = {
    section: $("#api-tokens"),
    form: $("#token-form"),
    name: $("#token-name"),
    scopes: () => [...document.querySelectorAll('#token-form input[name="scope"]')],
    expiry: $("#token-expiry"),
    error: $("#token-error"),
    created: $("#token-created"),
    secret: $("#token-secret"),
    copy: $("#token-copy"),
    copyStatus: $("#token-copy-status"),
    list: $("#tokens"),
    empty: $("#tokens-empty"),
    listError: $("#tokens-error"),
    confirm: $("#confirm-token"),
    confirmText: $("#confirm-token-text"),
  };
  const { api, announce, formatDate } = page;
  let generation = 0; // bumped by reset(): answers for a logged-out page are dropped

  function forgetSecret() {
    el.secret.value = "";
    el.created.hidden = true;
    el.copyStatus.textContent = "";
  }

  async function load() {
    const asked = generation;
    el.listError.textContent = "";
    try {
      const answer = await api("GET", "/tokens");
      if (asked === generation) render(answer.tokens);
    } catch (error) {
      if (asked === generation) el.listError.textContent = error.message;
    }
  }

  function describe(token) {
    const parts = [token.scopes.join(", "), `created ${formatDate(token.created_at)}`];
    parts.push(token.expires_at ? `expires ${formatDate(token.expires_at)}` : "no expiry");
    parts.push(token.last_used_at ? `last used ${formatDate(token.last_used_at)}` : "never used");
    return parts.join(" · ");
  }

  function render(tokens) {
    el.empty.hidden = tokens.length > 0;
    el.list.replaceChildren(...tokens.map((token) => {
      const item = document.createElement("li");
      item.className = "token";
      const text = document.createElement("div");
      const name = document.createElement("span");
      name.className = "token-name";
      name.textContent = token.name;
      const meta = document.createElement("p");
      meta.className = "token-meta muted";
      meta.textContent = describe(token);
      text.append(name, meta);
      const revoke = document.createElement("button");
      revoke.type = "button";
      revoke.className = "ghost";
      revoke.textContent = "Revoke";
      revoke.setAttribute("aria-label", `Revoke ${token.name}`);
      revoke.addEventListener("click", () => onRevoke(token, revoke));
      item.append(text, revoke);
      return item;
    }));
  }

  function confirmRevoke(name) {
    return new Promise((resolve) => {
      el.confirmText.textContent = `Scripts using “${name}” stop working at once.`;
      el.confirm.returnValue = "";
      el.confirm.addEventListener("close", () => resolve(el.confirm.returnValue === "ok"), { once: true });
      el.confirm.showModal();
    });
  }

  async function onRevoke(token, button) {
    if (!(await confirmRevoke(token.name))) {
      button.focus();
      return;
    }
    try {
      await api("DELETE", `/tokens/${encodeURIComponent(token.id)}`);
    } catch (error) {
      if (error.status !== 404) {
        el.listError.textContent = error.message;
        announce(`Could not revoke ${token.name}: ${error.message}`);
        button.focus();
        return;
      }
    }
    await load();
    announce(`${token.name} revoked.`);
    el.name.focus();
  }

  // --- create -------------------------------------------------------------------------------
  function invalid(input, message) {
    if (input) {
      input.setAttribute("aria-invalid", "true");
      input.focus();
    }
    el.error.textContent = message;
  }

  el.form.addEventListener("submit", async (event) => {
    event.preventDefault();
    el.error.textContent = "";
    el.name.removeAttribute("aria-invalid");
    el.expiry.removeAttribute("aria-invalid");
    const name = el.name.value.trim();
    const scopes = el.scopes().filter((box) => box.checked).map((box) => box.value);
    const days = el.expiry.value.trim();
    if (!name) return invalid(el.name, "Give the token a name.");
    if (!scopes.length) return invalid(el.scopes()[0], "Choose at least one scope.");
    const body = { name, scopes };
    if (days) {
      const number = Number(days);
      if (!Number.isInteger(number) || number < 1 || number > 3650) {
        return invalid(el.expiry, "Expiry: a whole number of days from 1 to 3650, or empty.");
      }
      body.expires_in_days = number;
    }
    const button = el.form.querySelector('button[type="submit"]');
    button.disabled = true;
    const asked = generation;
    try {
      const made = await api("POST", "/tokens", body);
      if (asked !== generation) return;
      el.form.reset();
      el.secret.value = made.token;
      el.copyStatus.textContent = "";
      el.created.hidden = false;
      el.secret.focus();
      el.secret.select();
      announce(`Token ${made.name} created. Copy it now: it is shown only this once.`);
      await load();
    } catch (error) {
      invalid(null, error.message);
      announce(error.message);
    } finally {
      button.disabled = false;
    }
  });

  el.secret.addEventListener("focus", () => el.secret.select());

  el.copy.addEventListener("click", async () => {
    let copied = false;
    try {
      await navigator.clipboard.writeText(el.secret.value);
      copied = true;
    } catch (_) {
      // no clipboard API (a page served over plain http elsewhere than localhost): leave it selected
    }
    el.secret.focus();
    el.secret.select();
    el.copyStatus.textContent = copied
      ? "Copied. Keep it somewhere safe."
      : "Selected: press Ctrl+C (⌘C on a Mac) to copy it.";
  });

  el.section.addEventListener("toggle", () => {
    if (el.section.open) load();
    else forgetSecret();
  });

  // logged out (or another person logs in on this page): nothing of the last one stays
  function reset() {
    generation += 1;
    el.section.open = false;
    forgetSecret();
    el.form.reset();
    el.error.textContent = "";
    el.listError.textContent = "";
    el.list.replaceChildren();
    el.empty.hidden = false;
  }

  return { reset };
};
