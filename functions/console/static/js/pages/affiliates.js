// Affiliates: look one up; its invite link and QR code, upline, downline by level, earnings and ledger.
import { seg } from '../api.js';
import { field, formError, html, money, nothing, notify, onSubmit, options, pagedList, render, table, when } from '../ui.js';

const ENTRY_STATUSES = ['pending', 'available', 'reversed'];
const userLink = (id) => html`<a href=${`#/affiliates/${seg(id)}`}>${id}</a>`;

function lookupForm(ctx, userId) {
  const look = (e) => {
    e.preventDefault();
    const id = new FormData(e.currentTarget).get('user_id').trim();
    if (id) ctx.go(`#/affiliates/${seg(id)}`);
  };
  return html`<form class="inline" @submit=${look} role="search">
    ${field('User id', html`<input name="user_id" required autocomplete="off" .value=${userId || ''}>`)}
    <button type="submit" class="primary">Look up</button></form>`;
}

function registerForm(ctx, userId, done) {
  const submit = onSubmit(async (body) => {
    await ctx.api.post('/v1/affiliates', { user_id: userId, ...body });
    notify(`${userId} is now an affiliate.`);
    done();
  });
  return html`<form class="card inline" @submit=${submit}><h2>Register ${userId} as an affiliate</h2>
    ${formError()}
    ${field('Invite code used', html`<input name="invite_code" autocomplete="off">`, 'optional: puts them under its owner')}
    <button type="submit" class="primary">Register</button></form>`;
}

function profileView(outlet, ctx, userId) {
  const state = { affiliate: null, upline: [], earnings: null, levels: 2, level: 1, entryStatus: '', error: null };
  const draw = () => ctx.alive() && render(view(), outlet);
  const base = `/v1/affiliates/${seg(userId)}`;
  const downline = pagedList((token) => ctx.api.get(`${base}/downline`,
    { level: state.level, limit: 20, next_token: token }), draw);
  const ledger = pagedList((token) => ctx.api.get(`${base}/commissions`,
    { status: state.entryStatus, limit: 20, next_token: token }), draw);
  const load = async () => {
    state.error = null;
    try {
      state.affiliate = await ctx.api.get(base);
      const [upline, earnings, settings] = await Promise.all([ctx.api.get(`${base}/upline`),
        ctx.api.get(`${base}/earnings`), ctx.session.role === 'user' ? null : ctx.api.get('/v1/cps/settings')]);
      Object.assign(state, { upline: upline.items, earnings, levels: settings?.levels || state.levels });
      downline.reload();
      ledger.reload();
    } catch (error) { state.error = error; }
    draw();
  };
  const choose = (key, list) => (e) => { state[key] = e.target.value; list.reload(); };
  const mayRegister = ctx.session.role !== 'user' || ctx.session.sub === userId;
  const view = () => {
    const a = state.affiliate;
    const head = html`<h1>Affiliates</h1>${lookupForm(ctx, userId)}`;
    if (state.error?.status === 404) {
      return html`${head}<p class="muted">${userId} is not an affiliate.</p>
        ${mayRegister ? registerForm(ctx, userId, load) : nothing}`;
    }
    if (state.error) return html`${head}<p class="form-error" role="alert">${state.error.message}</p>`;
    if (!a) return html`${head}<p class="muted" role="status">Loading…</p>`;
    const e = state.earnings;
    const qr = `data:image/svg+xml;charset=utf-8,${encodeURIComponent(a.qrcode_svg)}`;
    return html`${head}
      <div class="columns">
        <section class="card" aria-labelledby="profile-title"><h2 id="profile-title">${a.user_id}</h2>
          <img class="qr" src=${qr} width="132" height="132" alt=${`QR code of ${a.user_id}'s invite link`}>
          <dl class="facts"><dt>Invite code</dt><dd><code>${a.invite_code}</code></dd>
            <dt>Invite link</dt><dd><a href=${a.invite_url} rel="noopener noreferrer" target="_blank">${a.invite_url}</a></dd>
            <dt>PID</dt><dd><code>${a.pid}</code></dd>
            <dt>Invited by</dt><dd>${a.inviter_id ? userLink(a.inviter_id) : '—'}</dd>
            <dt>Since</dt><dd>${when(a.created_at)}</dd></dl>
        </section>
        <section class="card" aria-labelledby="earnings-title"><h2 id="earnings-title">Earnings</h2>
          <dl class="figures"><div><dt>Pending</dt><dd>${money(e.pending)}</dd></div>
            <div><dt>Available</dt><dd>${money(e.available)}</dd></div>
            <div><dt>Reversed</dt><dd>${money(e.reversed)}</dd></div></dl>
          ${Object.keys(e.by_level).length ? table(['Level', 'Net'], Object.entries(e.by_level).map(([level, cents]) =>
            html`<tr><td>${level}</td><td class="num">${money(cents)}</td></tr>`), 'Earnings by level')
            : html`<p class="muted">No earnings by level yet.</p>`}
        </section>
      </div>
      <section aria-labelledby="upline-title"><h2 id="upline-title">Upline</h2>
        ${state.upline.length ? html`<ol class="plain">${state.upline.map((r) => html`<li>Level ${r.level}:
          ${userLink(r.user_id)}</li>`)}</ol>` : html`<p class="muted">Nobody above.</p>`}</section>
      <section aria-labelledby="downline-title"><h2 id="downline-title">Downline</h2>
        <div class="toolbar">${field('Level', html`<select @change=${choose('level', downline)}>
          ${options(Array.from({ length: state.levels }, (_, i) => String(i + 1)), String(state.level))}</select>`)}</div>
        ${downline.status('Nobody at this level.')}
        ${downline.items.length ? table(['User', 'Level', 'Since'], downline.items.map((r) => html`<tr>
          <td>${userLink(r.user_id)}</td><td>${r.level}</td><td>${when(r.created_at)}</td></tr>`), 'Downline') : nothing}
        ${downline.pager()}</section>
      <section aria-labelledby="ledger-title"><h2 id="ledger-title">Ledger</h2>
        <div class="toolbar">${field('Status', html`<select @change=${choose('entryStatus', ledger)}>
          <option value="">all</option>${options(ENTRY_STATUSES, state.entryStatus)}</select>`)}</div>
        ${ledger.status('No ledger entries.')}
        ${ledger.items.length ? table(['Recorded', 'Order', 'Level', 'Kind', 'Status', 'Amount'], ledger.items.map((c) =>
          html`<tr><td>${when(c.recorded_at)}</td><td>${c.platform} <code>${c.order_id}</code> ${c.title || ''}</td>
          <td>${c.level}</td><td>${c.kind}</td><td>${c.status}</td><td class="num">${money(c.amount)}</td></tr>`),
          'Ledger entries') : nothing}
        ${ledger.pager()}</section>`;
  };
  draw();
  load();
}

export default {
  id: 'affiliates',
  title: 'Affiliates',
  roles: ['admin', 'service', 'user'],
  mount(outlet, ctx) {
    const own = ctx.session.role === 'user' ? ctx.session.sub : null;
    const userId = ctx.params[0] || own;
    if (userId) profileView(outlet, ctx, userId);
    else render(html`<h1>Affiliates</h1>${lookupForm(ctx, '')}`, outlet);
  },
};
