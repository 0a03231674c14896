/* mp3svc web page: the account flows. Confirming an address (/verify?token=), choosing a new
   password from an emailed link (/reset?token=), "Forgot password?", sending a confirmation link
   again, changing the password and deleting the account. app.js hands in its helpers (api, show,
   signedOut, announce, el); no token is ever visible to this script (the cookie is HttpOnly). */
"use strict";

window.mp3svcAccounts = (page) => {
  const $ = (selector) => document.querySelector(selector);
  const el = {
    authView: $("#auth-view"),
    status: $("#auth-status"),
    forgot: $("#forgot"),
    resend: $("#resend"),
    resetView: $("#reset-view"),
    resetForm: $("#reset-form"),
    resetPassword: $("#reset-password"),
    resetError: $("#reset-error"),
    account: $("#account"),
    passwordForm: $("#password-form"),
    currentPassword: $("#current-password"),
    newPassword: $("#new-password"),
    passwordError: $("#password-error"),
    passwordStatus: $("#password-status"),
    deleteForm: $("#delete-account-form"),
    deletePassword: $("#delete-password"),
    deleteError: $("#delete-account-error"),
    confirm: $("#confirm-account"),
  };
  const { api, announce } = page;
  let resetToken = "";

  // #auth-status is a live region (role=status): screen readers read it out; no second announcement
  function say(message) {
    el.status.textContent = message;
  }

  function clearStatus() {
    el.status.textContent = "";
    el.resend.hidden = true;
  }

  function showAuth() {
    el.resetView.hidden = true;
    page.show("auth");
  }

  // The token leaves the address bar and the history at once: it works once, and a copy of the
  // URL (history, a shared screen) should not carry it.
  function takeToken() {
    const token = new URLSearchParams(window.location.search).get("token") || "";
    window.history.replaceState(null, "", "/");
    return token;
  }

  // --- links from emails ----------------------------------------------------------------------
  function openLink() {
    const path = window.location.pathname;
    if (path === "/verify") {
      confirmAddress(takeToken());
      return true;
    }
    if (path === "/reset") {
      resetToken = takeToken();
      page.show("none");
      el.resetView.hidden = false;
      el.resetPassword.focus();
      return true;
    }
    return false;
  }

  async function confirmAddress(token) {
    showAuth();
    say("Confirming your address…");
    try {
      const answer = await api("POST", "/verify", { token }, { quiet401: true });
      page.el.email.value = answer.email;
      say(`Your address ${answer.email} is confirmed. Log in with your password.`);
      page.el.password.focus();
    } catch (error) {
      el.status.textContent = "";
      page.el.authError.textContent = `${error.message} Log in to get a new link sent.`;
      announce(page.el.authError.textContent);
    }
  }

  el.resetForm.addEventListener("submit", async (event) => {
    event.preventDefault();
    el.resetError.textContent = "";
    const password = el.resetPassword.value;
    if (password.length < 8) {
      el.resetError.textContent = "Choose a password of at least 8 characters.";
      el.resetPassword.focus();
      return;
    }
    const button = el.resetForm.querySelector("button");
    button.disabled = true;
    try {
      await api("POST", "/password/reset", { token: resetToken, password }, { quiet401: true });
      el.resetPassword.value = "";
      showAuth();
      say("Your password is changed. Log in with the new one.");
      page.el.email.focus();
    } catch (error) {
      el.resetError.textContent = error.code === "invalid_token"
        ? `${error.message} Ask for a new one with “Forgot password?”.` : error.message;
      announce(el.resetError.textContent);
    } finally {
      button.disabled = false;
    }
  });

  // --- on the log-in form ---------------------------------------------------------------------
  function emailOrAsk(action) {
    const email = page.el.email.value.trim();
    if (!email || !page.el.email.validity.valid) {
      page.el.email.setAttribute("aria-invalid", "true");
      page.el.authError.textContent = `Enter your email address, then choose “${action}”.`;
      page.el.email.focus();
      return null;
    }
    page.el.email.removeAttribute("aria-invalid");
    page.el.authError.textContent = "";
    return email;
  }

  el.forgot.addEventListener("click", async () => {
    const email = emailOrAsk("Forgot password?");
    if (!email) return;
    el.forgot.disabled = true;
    try {
      await api("POST", "/password/forgot", { email }, { quiet401: true });
      say(`If ${email} has an account, we sent it a link to choose a new password.`);
    } catch (error) {
      page.el.authError.textContent = error.message;
    } finally {
      el.forgot.disabled = false;
    }
  });

  el.resend.addEventListener("click", async () => {
    const email = emailOrAsk("Send the link again");
    if (!email) return;
    try {
      await api("POST", "/verify/resend", { email }, { quiet401: true });
      say(`We sent a new link to ${email}; earlier links no longer work.`);
    } catch (error) {
      page.el.authError.textContent = error.message;
    }
  });

  // A registration (new address) or a log-in before the address is confirmed: say what to do.
  function unconfirmed(error, registered, email) {
    if (error.code !== "email_unverified" && !(registered && error.code === "invalid_credentials")) {
      return false;
    }
    page.el.password.value = "";
    say(registered
      ? `Almost done: we sent a link to ${email}. Open it to confirm the address, then log in.`
      : `Confirm ${email} first: open the link we sent to it, then log in.`);
    el.resend.hidden = false;
    return true;
  }

  // --- the account panel ----------------------------------------------------------------------
  el.passwordForm.addEventListener("submit", async (event) => {
    event.preventDefault();
    el.passwordError.textContent = "";
    el.passwordStatus.textContent = "";
    const current = el.currentPassword.value;
    const next = el.newPassword.value;
    if (!current) {
      el.passwordError.textContent = "Enter your current password.";
      el.currentPassword.focus();
      return;
    }
    if (next.length < 8) {
      el.passwordError.textContent = "Choose a new password of at least 8 characters.";
      el.newPassword.focus();
      return;
    }
    const button = el.passwordForm.querySelector("button");
    button.disabled = true;
    try {
      // the answer's new token goes into the cookie (Set-Cookie); this script never sees it
      await api("PUT", "/account/password", { current_password: current, new_password: next });
      el.currentPassword.value = "";
      el.newPassword.value = "";
      el.passwordStatus.textContent = "Password changed. Your other devices are logged out.";
    } catch (error) {
      el.passwordError.textContent = error.message;
      announce(error.message);
    } finally {
      button.disabled = false;
    }
  });

  function confirmDeletion() {
    return new Promise((resolve) => {
      el.confirm.returnValue = "";
      el.confirm.addEventListener("close", () => resolve(el.confirm.returnValue === "ok"), { once: true });
      el.confirm.showModal();
    });
  }

  el.deleteForm.addEventListener("submit", async (event) => {
    event.preventDefault();
    el.deleteError.textContent = "";
    const password = el.deletePassword.value;
    if (!password) {
      el.deleteError.textContent = "Enter your password to confirm.";
      el.deletePassword.focus();
      return;
    }
    if (!(await confirmDeletion())) return;
    try {
      await api("DELETE", "/account", { password });
      el.deletePassword.value = "";
      el.account.open = false;
      page.signedOut("");
      say("Your account and all its conversions are deleted.");
    } catch (error) {
      el.deleteError.textContent = error.message;
      announce(error.message);
    }
  });

  return { openLink, unconfirmed, clearStatus };
};
