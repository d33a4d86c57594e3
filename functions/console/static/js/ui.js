// Shared view helpers: form fields whose API errors appear beside them, the confirmation dialog, notices,
// the pager, the stock gauge and formatting. Templates are lit-html (vendored, see vendor/lit-html/).

import { html, nothing, render, svg } from '../vendor/lit-html/lit-html.js';

export { html, nothing, render };

/** A labelled control with a place for its error: `name` is the body path the API reports (`content.days`). */
export function field(label, control, hint) {
  return html`<div class="field">
    <label><span class="label">${label}</span>${control}</label>
    ${hint ? html`<small class="hint">${hint}</small>` : nothing}
    <p class="field-error" hidden></p>
  </div>`;
}

export const options = (values, selected) =>
  values.map((v) => html`<option value=${v} ?selected=${v === selected}>${v}</option>`);

const setPath = (target, path, value) => {
  const keys = path.split('.');
  const last = keys.pop();
  const parent = keys.reduce((node, key) => (node[key] ??= {}), target);
  parent[last] = value;
};

/** The form's values as the API's body: dotted names nest, `data-type` converts, empty fields are left out
 * (so optional fields take the API's default). Types: int, datetime (local input → UTC ISO 8601), bool. */
export function readForm(form) {
  const body = {};
  for (const el of form.elements) {
    if (!el.name || el.disabled) continue;
    const type = el.dataset.type;
    if (type === 'bool') { setPath(body, el.name, el.checked); continue; }
    const raw = el.value.trim();
    if (raw === '') continue;
    let value = raw;
    if (type === 'int') value = Number(raw);
    if (type === 'datetime') value = new Date(raw).toISOString();
    setPath(body, el.name, value);
  }
  return body;
}

/** The control named by an API field path (`body.content.COUPON.days` → `content.days`), or null. */
function controlFor(form, fieldPath) {
  const parts = String(fieldPath).split('.').filter((p) => !['body', 'query', 'path'].includes(p));
  const candidates = [parts, parts.filter((p) => !/^[A-Z_]+$/.test(p))];  // drop union tags (COUPON)
  for (const names of candidates) {
    for (let n = names.length; n > 0; n -= 1) {
      const el = form.elements.namedItem(names.slice(0, n).join('.'));
      if (el && el.closest?.('.field')) return el;
    }
  }
  return null;
}

export function clearErrors(form) {
  form.querySelectorAll('.field-error').forEach((p) => { p.hidden = true; p.textContent = ''; });
  form.querySelectorAll('[aria-invalid]').forEach((el) => el.removeAttribute('aria-invalid'));
  const general = form.querySelector('.form-error');
  if (general) { general.hidden = true; general.textContent = ''; }
}

let errorIds = 0;

/** Shows an ApiError on its form: each detail beside the field it names, the rest at the top. */
export function showErrors(form, error) {
  clearErrors(form);
  const unplaced = [];
  let first = null;
  for (const detail of error.details || []) {
    const control = detail.field ? controlFor(form, detail.field) : null;
    if (!control) { unplaced.push(detail.message || error.message); continue; }
    const box = control.closest('.field').querySelector('.field-error');
    box.id ||= `error-${(errorIds += 1)}`;
    box.textContent = box.textContent ? `${box.textContent} ${detail.message}` : detail.message;
    box.hidden = false;
    control.setAttribute('aria-invalid', 'true');
    control.setAttribute('aria-describedby', box.id);
    first ||= control;
  }
  if (!first || unplaced.length) {
    const general = form.querySelector('.form-error');
    general.textContent = [error.message, ...unplaced.filter((m) => m !== error.message)].join(' — ');
    general.hidden = false;
  }
  (first || form.querySelector('.form-error'))?.focus?.();
}

/** The submit handler of a form: reads it, runs `action(body)`, shows API errors by field. */
export function onSubmit(action) {
  return async (event) => {
    event.preventDefault();
    const form = event.currentTarget;
    const button = event.submitter || form.querySelector('[type=submit]');
    clearErrors(form);
    if (button) button.disabled = true;
    try {
      await action(readForm(form), form);
    } catch (error) {
      if (!error.details) throw error;
      showErrors(form, error);
    } finally {
      if (button?.isConnected) button.disabled = false;
    }
  };
}

/** A button's handler: an API refusal becomes a notice instead of an unhandled error. */
export function guarded(action) {
  return async (...args) => {
    try {
      await action(...args);
    } catch (error) {
      if (!error.details) throw error;
      notify(error.message, 'error');
    }
  };
}

/** The top-of-form place for errors that name no field. */
export const formError = () => html`<p class="form-error" role="alert" tabindex="-1" hidden></p>`;

/** Asks before an action; resolves true only on an explicit yes. A native <dialog>: focus stays inside,
 * Escape cancels. */
export function confirmAction(message, { confirm = 'Confirm', danger = false } = {}) {
  return new Promise((resolve) => {
    const dialog = document.createElement('dialog');
    dialog.className = 'confirm';
    document.body.append(dialog);
    const close = (answer) => { dialog.close(); dialog.remove(); resolve(answer); };
    render(html`<form method="dialog" @submit=${(e) => { e.preventDefault(); close(true); }}>
      <p>${message}</p>
      <div class="actions">
        <button type="button" @click=${() => close(false)}>Cancel</button>
        <button type="submit" class=${danger ? 'danger' : 'primary'}>${confirm}</button>
      </div>
    </form>`, dialog);
    dialog.addEventListener('cancel', (e) => { e.preventDefault(); close(false); });
    dialog.showModal();
    dialog.querySelector('[type=submit]').focus();
  });
}

/** A short notice in the page's live region. */
export function notify(message, kind = 'ok') {
  const region = document.getElementById('notices');
  if (!region) return;
  const note = document.createElement('p');
  note.className = `notice ${kind}`;
  note.textContent = message;
  region.append(note);
  setTimeout(() => note.remove(), 6000);
}

/** A list that pages with `next_token`: `load(token)` fetches a page; `draw()` re-renders. */
export function pagedList(load, draw) {
  const list = { items: [], next: null, tokens: [], error: null, loading: false };
  list.fetch = async (token = null) => {
    list.loading = true;
    draw();
    try {
      const page = await load(token);
      Object.assign(list, { items: page.items, next: page.next_token || null, error: null });
    } catch (error) {
      Object.assign(list, { items: [], next: null, error });
    }
    list.loading = false;
    draw();
  };
  list.reload = () => { list.tokens = []; return list.fetch(); };
  list.pager = () => (!list.next && !list.tokens.length ? nothing : html`<nav class="pager" aria-label="Pages">
    <button type="button" ?disabled=${!list.tokens.length}
      @click=${() => { list.tokens.pop(); list.fetch(list.tokens.at(-1) ?? null); }}>Previous page</button>
    <button type="button" ?disabled=${!list.next}
      @click=${() => { list.tokens.push(list.next); list.fetch(list.next); }}>Next page</button>
  </nav>`);
  list.status = (empty) => {
    if (list.error) return html`<p class="form-error" role="alert">${list.error.message}</p>`;
    if (list.loading) return html`<p class="muted" role="status">Loading…</p>`;
    return list.items.length ? nothing : html`<p class="muted">${empty}</p>`;
  };
  return list;
}

/** A page's mount: the item's view when the hash names one (`#/rewards/{id}`), else the list. */
export const listOrItem = (list, item) => (outlet, ctx) =>
  (ctx.params[0] ? item(outlet, ctx, ctx.params[0]) : list(outlet, ctx));

/** A table that scrolls sideways on narrow screens instead of widening the page. */
export const table = (headers, rows, caption) => html`<div class="table-wrap" tabindex="0" role="region"
    aria-label=${caption}><table>
  <caption class="visually-hidden">${caption}</caption>
  <thead><tr>${headers.map((h) => html`<th scope="col">${h}</th>`)}</tr></thead>
  <tbody>${rows}</tbody></table></div>`;

const number = new Intl.NumberFormat('en');
export const count = (n) => (n === null || n === undefined ? '∞' : number.format(n));
export const money = (cents) => (cents / 100).toLocaleString('en', { minimumFractionDigits: 2, maximumFractionDigits: 2 });
export const when = (iso) => (iso ? new Date(iso).toLocaleString('en-GB', { timeZone: 'UTC' }) + ' UTC' : '—');
export const today = () => new Date().toISOString().slice(0, 10);

/** An ISO 8601 instant as a datetime-local input value (the operator's local time). */
export function localInput(iso) {
  if (!iso) return '';
  const d = new Date(iso);
  return new Date(d.getTime() - d.getTimezoneOffset() * 60000).toISOString().slice(0, 16);
}

/** Stock as one bar: available, reserved and issued share the total (unlimited stock: no bar). */
export function stockGauge(stock) {
  const { total, available, reserved, issued } = stock;
  const label = `${count(available)} available, ${count(reserved)} reserved, ${count(issued)} issued of ${count(total)}`;
  if (!total) return html`<span class="gauge-text">${label}</span>`;
  const parts = [['available', available], ['reserved', reserved], ['issued', issued]];
  let x = 0;
  const bars = parts.map(([kind, n]) => {
    const width = (100 * n) / total;
    const bar = svg`<rect class=${kind} x=${`${x}%`} width=${`${width}%`} height="100%"></rect>`;
    x += width;
    return bar;
  });
  return html`<span class="gauge"><svg role="img" aria-label=${label} width="100%" height="12">
    <title>${label}</title>${bars}</svg><span class="gauge-text">${label}</span></span>`;
}

/** Remembers a small list per tenant and app in this browser (the API has no batch listing). */
export function remembered(key, session) {
  const name = `console.${key}.${session.tenant}.${session.app}`;
  return {
    all: () => JSON.parse(localStorage.getItem(name) || '[]'),
    add(item, idKey) {
      const rest = this.all().filter((i) => i[idKey] !== item[idKey]);
      localStorage.setItem(name, JSON.stringify([item, ...rest].slice(0, 20)));
    },
  };
}
