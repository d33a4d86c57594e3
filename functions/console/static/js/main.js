// The console's shell: sign-in, the header (who is signed in), the navigation and a hash router that mounts
// one page module at a time. A page is `{id, title, roles, mount(outlet, ctx)}` (see pages/index.js).

import { createApi } from './api.js';
import {
  completeOidc, currentSession, devSignIn, devSignInAvailable, loadConfig, ROLES, signOut, startOidc,
} from './auth.js';
import { PAGES } from './pages/index.js';
import { field, formError, html, nothing, onSubmit, options, render } from './ui.js';

const root = document.getElementById('app');
root.replaceChildren();  // lit renders beside what is there: drop the loading text
let config = { oidc: null };
let session = null;
let generation = 0;
let signInMessage = '';

const api = createApi(() => session?.token, () => {
  signOut();
  signInMessage = 'Your session ended: sign in again.';
  start();
});

const visiblePages = () => PAGES.filter((page) => page.roles.includes(session.role));

function parseHash() {
  const [path, query = ''] = location.hash.replace(/^#\/?/, '').split('?');
  const [id = '', ...params] = path.split('/').filter(Boolean).map(decodeURIComponent);
  return { id, params, query: new URLSearchParams(query) };
}

function shell(pages, current) {
  const skip = (e) => { e.preventDefault(); document.getElementById('main').focus(); };
  return html`
    <a class="skip" href="#main" @click=${skip}>Skip to content</a>
    <header class="top">
      <a class="brand" href="#/">Marketing console</a>
      <p class="who" aria-label="Signed in">
        <span title="user">${session.sub}</span>
        <span title="tenant">tenant <b>${session.tenant}</b></span>
        <span title="app">app <b>${session.app}</b></span>
        <span class="role role-${session.role}" title="role">${session.role}</span>
      </p>
      <button type="button" class="sign-out" @click=${() => { signOut(); start(); }}>Sign out</button>
    </header>
    <nav class="sections" aria-label="Sections">
      ${pages.map((page) => html`<a href=${`#/${page.id}`}
        aria-current=${page.id === current ? 'page' : nothing}>${page.title}</a>`)}
    </nav>
    <main id="main" tabindex="-1"><div id="page"></div></main>
    <div id="notices" class="notices" aria-live="polite"></div>`;
}

function route() {
  const pages = visiblePages();
  if (!pages.length) {
    render(html`<main class="signin"><h1>No access</h1><p>Your role (${session.role}) opens no page of the
      console.</p><button type="button" @click=${() => { signOut(); start(); }}>Sign out</button></main>`, root);
    return;
  }
  const { id, params, query } = parseHash();
  const page = pages.find((p) => p.id === id);
  if (!page) { location.replace(`#/${pages[0].id}`); return; }
  generation += 1;
  const mine = generation;
  render(shell(pages, page.id), root);
  document.title = `${page.title} · Marketing console`;
  const outlet = document.getElementById('page');
  render(nothing, outlet);
  const ctx = {
    api, session, params, query,
    isAdmin: session.role === 'admin',
    alive: () => mine === generation && outlet.isConnected,
    go: (hash) => { location.hash = hash; },
  };
  page.mount(outlet, ctx);
}

function signInView(devAvailable) {
  let body;
  if (config.oidc) {
    body = html`<button type="button" class="primary" @click=${() => startOidc(config.oidc)}>
      Sign in</button><p class="muted">You sign in with your organisation's account.</p>`;
  } else if (devAvailable) {
    const submit = onSubmit(async (fields) => {
      const failed = await devSignIn({ ...fields, roles: [fields.roles] });
      if (failed) throw Object.assign(new Error(failed.error.message), failed.error);
      start();
    });
    body = html`<p class="muted">Development sign-in (local stack only): pick who you are.</p>
      <form class="stack" @submit=${submit} novalidate>
        ${formError()}
        ${field('Tenant', html`<input name="tenant" value="t1" required autocomplete="off">`)}
        ${field('App', html`<input name="app" value="app1" required autocomplete="off">`)}
        ${field('Role', html`<select name="roles">${options(ROLES, 'admin')}</select>`)}
        ${field('User (sub)', html`<input name="sub" value="ops" required autocomplete="off">`)}
        <button type="submit" class="primary">Sign in</button>
      </form>`;
  } else {
    body = html`<p class="form-error" role="alert">No sign-in is configured: deploy with the Console*
      parameters (docs/console.md).</p>`;
  }
  return html`<main class="signin" id="main" tabindex="-1">
    <h1>Marketing console</h1>
    ${signInMessage ? html`<p class="notice warn" role="status">${signInMessage}</p>` : nothing}
    ${body}
  </main>`;
}

async function start() {
  session = currentSession();
  if (session) {
    signInMessage = '';
    route();
    return;
  }
  generation += 1;
  render(signInView(!config.oidc && await devSignInAvailable()), root);
  root.querySelector('input, .primary')?.focus();
}

window.addEventListener('hashchange', () => { if (session) route(); });

config = await loadConfig();
if (config.oidc) signInMessage = (await completeOidc(config.oidc)) || '';
start();
