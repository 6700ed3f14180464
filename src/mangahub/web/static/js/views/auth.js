import * as api from "../api.js";
import { h, field, toast } from "../dom.js";

export function authView(mode, next = "/list") {
  const signup = mode === "signup";
  const error = h("p.error", { role: "alert" });
  const username = h("input", { name: "username", autocomplete: "username", required: true,
    minLength: 3, maxLength: signup ? 50 : 320 });
  const email = h("input", { name: "email", type: "email", autocomplete: "email", required: true });
  const password = h("input", { name: "password", type: "password", required: true, minLength: 8,
    autocomplete: signup ? "new-password" : "current-password" });
  const submit = h("button.primary", { type: "submit" }, signup ? "Create account" : "Sign in");
  const form = h("form.stack", {
    on: {
      submit: async (ev) => {
        ev.preventDefault();
        error.textContent = "";
        submit.disabled = true;
        try {
          if (signup) await api.signUp(username.value.trim(), email.value.trim(), password.value);
          else await api.signIn(username.value.trim(), password.value);
          toast(`Welcome, ${api.currentUser().username}`);
          location.hash = `#${next}`;
        } catch (err) {
          const details = Array.isArray(err.details)
            ? err.details.map((d) => d.field ? `${d.field}: ${d.message || "invalid"}` : "").filter(Boolean) : [];
          error.textContent = [err.message, ...details].join(" — ");
        } finally {
          submit.disabled = false;
        }
      },
    },
  },
  field(signup ? "Username" : "Username or email", username,
    signup ? "3–50 letters, digits, dot, dash or underscore" : null),
  signup ? field("Email", email) : null,
  field("Password", password, signup ? "At least 8 characters" : null),
  error, submit);
  const other = signup
    ? h("p", "Already have an account? ", h("a", { href: "#/signin" }, "Sign in"))
    : h("p", "New here? ", h("a", { href: "#/signup" }, "Create an account"));
  return {
    title: signup ? "Sign up" : "Sign in",
    node: h("section.card.narrow", h("h1", signup ? "Create your account" : "Sign in"), form, other),
  };
}
