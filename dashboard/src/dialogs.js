// Modal dialogs on the native <dialog>: showModal() makes the rest of the page
// inert, so focus stays inside; Escape closes. Each dialog is removed from the
// page when it closes.
import { announce, h } from "./dom.js";

/** Opens a modal with `title` and `body`; resolves with the close value. */
export function modal(title, body, { onclose, label } = {}) {
  const heading = h("h2", { id: `dialog-${Date.now()}` }, title);
  const dialog = h("dialog", { class: "dialog", "aria-labelledby": heading.id, "aria-label": label }, heading, body);
  document.body.append(dialog);
  const closed = new Promise((resolve) => {
    dialog.addEventListener("close", () => {
      onclose?.();
      dialog.remove();
      resolve(dialog.returnValue);
    });
  });
  dialog.showModal();
  return { dialog, closed, close: (value = "") => dialog.close(value) };
}

/** A message for an error answer: the API's own `error` text. */
export function errorBox(err) {
  return h("p", { class: "error", role: "alert" }, err?.message ?? String(err));
}

/** Asks to confirm `what`; resolves true only on the confirm button. */
export async function confirmAction(title, message, confirmLabel) {
  const m = modal(
    title,
    h(
      "form",
      { method: "dialog", class: "stack" },
      h("p", {}, message),
      h(
        "div",
        { class: "actions" },
        h("button", { value: "cancel", class: "secondary", autofocus: true }, "Cancel"),
        h("button", { value: "confirm", class: "danger" }, confirmLabel),
      ),
    ),
  );
  return (await m.closed) === "confirm";
}

/**
 * The show-once panel for a new secret: shown with a Copy button and the warning
 * that it will not be shown again. When it closes, the secret leaves the page
 * (input emptied, dialog removed) and no reference to it is kept.
 */
export function showSecret(key, secret) {
  const input = h("input", {
    id: "secret",
    class: "secret",
    readonly: true,
    value: secret,
    spellcheck: "false",
    autocomplete: "off",
    "aria-describedby": "secret-warning",
  });
  secret = null;
  const copied = h("span", { class: "muted", role: "status" });
  const copy = h(
    "button",
    {
      type: "button",
      onclick: async () => {
        try {
          await navigator.clipboard.writeText(input.value);
          copied.textContent = "Copied to the clipboard";
        } catch {
          input.select();
          copied.textContent = "Select the key and copy it (the clipboard is not available here)";
        }
      },
    },
    "Copy",
  );
  const m = modal(
    "Copy your new API key",
    h(
      "form",
      { method: "dialog", class: "stack" },
      h("p", {}, `Key `, h("strong", {}, key.name), ` (${key.prefix}) is ready.`),
      h("label", { for: "secret", class: "label" }, "Secret"),
      h("div", { class: "row" }, input, copy),
      copied,
      h(
        "p",
        { id: "secret-warning", class: "warning" },
        "This is the only time the full key is shown. Store it in a secure place now: it cannot be shown again.",
      ),
      h("div", { class: "actions" }, h("button", { value: "done" }, "I have stored it")),
    ),
    { onclose: () => (input.value = "") },
  );
  input.focus();
  input.select();
  m.closed.then(() => announce("The secret was removed from the page"));
  return m.closed;
}
