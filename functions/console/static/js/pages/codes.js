// Redeem codes: generate a batch (a progress bar while a large one generates), export it as CSV or XLSX
// and download the file, list its codes masked with a status filter, revoke a code.
import { seg } from '../api.js';
import {
  confirmAction, count, field, formError, html, listOrItem, nothing, notify, onSubmit, options, pagedList,
  remembered, render, table, when,
} from '../ui.js';

const POLL_MS = 1000;
const CODE_STATUSES = ['UNUSED', 'USED', 'REVOKED'];
const percent = (batch) => (batch.total ? Math.floor((100 * batch.generated) / batch.total) : 100);

function generateView(outlet, ctx) {
  const state = { campaigns: [], rewards: [], error: null };
  const batches = remembered('batches', ctx.session);
  const draw = () => ctx.alive() && render(view(), outlet);
  const generate = onSubmit(async ({ campaign_id: campaignId, ...body }) => {
    if (!await confirmAction(`Generate ${count(body.count)} codes? Codes cannot be deleted once made (revoke them
      one by one).`, { confirm: 'Generate' })) return;
    const created = await ctx.api.post(`/v1/campaigns/${seg(campaignId)}/redeem-codes`, body);
    batches.add({ batch_id: created.batch_id, total: created.total, campaign_id: campaignId,
      created_at: new Date().toISOString() }, 'batch_id');
    ctx.go(`#/codes/${seg(created.batch_id)}`);
  });
  const open = (e) => {
    e.preventDefault();
    const id = new FormData(e.currentTarget).get('batch_id').trim();
    if (id) ctx.go(`#/codes/${seg(id)}`);
  };
  const view = () => html`
    <h1>Redeem codes</h1>
    ${state.error ? html`<p class="form-error" role="alert">${state.error.message}</p>` : nothing}
    ${ctx.isAdmin ? html`<form class="card grid" @submit=${generate} aria-labelledby="generate-title">
      <h2 id="generate-title">Generate a batch</h2>
      ${formError()}
      ${field('Campaign', html`<select name="campaign_id" required><option value="">Choose…</option>
        ${state.campaigns.map((c) => html`<option value=${c.campaign_id}>${c.name}</option>`)}</select>`)}
      ${field('Reward', html`<select name="reward_id" required><option value="">Choose…</option>
        ${state.rewards.map((r) => html`<option value=${r.reward_id}>${r.name}</option>`)}</select>`)}
      ${field('How many', html`<input type="number" name="count" data-type="int" min="1" max="100000" required>`,
        'up to 100,000; above 1,000 they generate in the background')}
      ${field('Prefix', html`<input name="prefix" maxlength="8" autocapitalize="characters">`, 'A-Z and 0-9')}
      ${field('Length', html`<input type="number" name="length" data-type="int" min="6">`)}
      ${field('Expires', html`<input type="datetime-local" name="expire_time" data-type="datetime">`,
        'your local time')}
      ${field('Remark', html`<input name="remark" maxlength="500">`)}
      <div class="actions"><button type="submit" class="primary">Generate</button></div>
    </form>` : nothing}
    <section class="card" aria-labelledby="batches-title"><h2 id="batches-title">Batches</h2>
      <form class="inline" @submit=${open}>
        ${field('Batch id', html`<input name="batch_id" required autocomplete="off">`)}
        <button type="submit">Open</button></form>
      ${batches.all().length ? html`<p class="muted">Generated in this browser:</p><ul class="plain">
        ${batches.all().map((b) => html`<li><a href=${`#/codes/${seg(b.batch_id)}`}>${b.batch_id}</a>
          — ${count(b.total)} codes, ${when(b.created_at)}</li>`)}</ul>` : nothing}
    </section>`;
  draw();
  if (ctx.isAdmin) {
    Promise.all([ctx.api.get('/v1/campaigns', { limit: 100 }), ctx.api.get('/v1/rewards', { limit: 100 })])
      .then(([campaigns, rewards]) => Object.assign(state, { campaigns: campaigns.items, rewards: rewards.items }))
      .catch((error) => { state.error = error; })
      .then(draw);
  }
}

function batchView(outlet, ctx, batchId) {
  const state = { batch: null, error: null, status: '', exported: null };
  const draw = () => ctx.alive() && render(view(), outlet);
  const path = `/v1/redeem-code-batches/${seg(batchId)}`;
  const list = pagedList((token) => ctx.api.get('/v1/redeem-codes',
    { batch_id: batchId, status: state.status, limit: 50, next_token: token }), draw);
  const poll = async () => {
    try { state.batch = await ctx.api.get(path); } catch (error) { state.error = error; }
    draw();
    if (state.batch?.status === 'GENERATING' && ctx.alive()) setTimeout(poll, POLL_MS);
    else if (state.batch) list.reload();
  };
  const exportCodes = onSubmit(async (body) => {
    const how = body.count ? `the next ${count(body.count)}` : 'all remaining';
    if (!await confirmAction(`Export ${how} codes of this batch as ${body.format.toUpperCase()}? Each code is
      exported only once.`, { confirm: 'Export' })) return;
    state.exported = await ctx.api.post(`${path}/export`, body);
    notify(`${count(state.exported.count)} codes exported: the download starts.`);
    draw();
    outlet.querySelector('a.download')?.click();
    state.batch = await ctx.api.get(path);
    draw();
  });
  const revoke = onSubmit(async ({ code }, form) => {
    if (!await confirmAction(`Revoke code …${code.slice(-4)}? It can never be redeemed after this.`,
      { confirm: 'Revoke code', danger: true })) return;
    await ctx.api.post(`/v1/redeem-codes/${seg(code)}/revoke`);
    form.reset();
    notify(`Code …${code.slice(-4)} revoked.`);
    list.reload();
  });
  const filter = (e) => { state.status = e.target.value; list.reload(); };
  const progress = (b) => html`<div class="progress">
    <progress id="batch-progress" max=${b.total} .value=${b.generated} aria-label="Generation progress"></progress>
    <output for="batch-progress">${count(b.generated)} of ${count(b.total)} (${percent(b)} %)</output></div>`;
  const rows = () => list.items.map((c) => html`<tr><td><code>${c.masked_code}</code></td>
    <td><span class="badge status-${c.status.toLowerCase()}">${c.status}</span></td>
    <td>${c.exported ? 'yes' : 'no'}</td><td>${c.assigned_to || '—'}</td><td>${c.used_by || '—'}</td>
    <td>${when(c.used_at)}</td></tr>`);
  const view = () => {
    if (state.error) return html`<h1>Batch</h1><p class="form-error" role="alert">${state.error.message}</p>`;
    const b = state.batch;
    if (!b) return html`<h1>Batch</h1><p class="muted" role="status">Loading…</p>`;
    const done = b.status === 'DONE';
    return html`<p><a href="#/codes">← Redeem codes</a></p>
      <h1>Batch <code>${b.batch_id}</code></h1>
      <section class="card" aria-labelledby="batch-title"><h2 id="batch-title">${done ? 'Generated' : 'Generating…'}</h2>
        ${progress(b)}
        <dl class="facts"><dt>Exported</dt><dd>${count(b.exported)} of ${count(b.total)}</dd>
          <dt>Prefix</dt><dd>${b.prefix || '—'}</dd><dt>Expires</dt><dd>${when(b.expire_time)}</dd>
          <dt>Made by</dt><dd>${b.created_by}, ${when(b.created_at)}</dd>
          <dt>Campaign</dt><dd><a href=${`#/campaigns/${seg(b.campaign_id)}`}>${b.campaign_id}</a></dd>
          <dt>Reward</dt><dd><a href=${`#/rewards/${seg(b.reward_id)}`}>${b.reward_id}</a></dd></dl>
      </section>
      ${ctx.isAdmin && done ? html`<section class="card" aria-labelledby="export-title">
        <h2 id="export-title">Export</h2>
        <form class="inline" @submit=${exportCodes}>${formError()}
          ${field('Format', html`<select name="format">${options(['csv', 'xlsx'])}</select>`)}
          ${field('How many', html`<input type="number" name="count" data-type="int" min="1">`, 'empty: all remaining')}
          <button type="submit" class="primary">Export</button></form>
        ${state.exported ? html`<p>${count(state.exported.count)} codes, ${state.exported.format.toUpperCase()}:
          <a class="download" href=${state.exported.url} download>Download the file</a>
          (the link works for 15 minutes).</p>` : nothing}
      </section>` : nothing}
      <section aria-labelledby="codes-title"><h2 id="codes-title">Codes</h2>
        <div class="toolbar">${field('Status', html`<select name="status" @change=${filter}>
          <option value="">all</option>${options(CODE_STATUSES, state.status)}</select>`)}</div>
        ${list.status('No codes match.')}
        ${list.items.length ? table(['Code', 'Status', 'Exported', 'Assigned to', 'Used by', 'Used at'], rows(),
          'Codes of the batch, masked') : nothing}
        ${list.pager()}
      </section>
      ${ctx.isAdmin ? html`<section class="card" aria-labelledby="revoke-title"><h2 id="revoke-title">Revoke a code</h2>
        <form class="inline" @submit=${revoke}>${formError()}
          ${field('Full code', html`<input name="code" required autocomplete="off" spellcheck="false">`)}
          <button type="submit" class="danger">Revoke</button></form></section>` : nothing}`;
  };
  draw();
  poll();
}

export default {
  id: 'codes',
  title: 'Redeem codes',
  roles: ['admin', 'service'],
  mount: listOrItem(generateView, batchView),
};
