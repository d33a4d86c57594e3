// Rewards: the list with stock gauges, the typed creation form, one reward's stock with top-up and delete.
import { seg } from '../api.js';
import {
  confirmAction, count, field, formError, guarded, html, listOrItem, nothing, notify, onSubmit, options, pagedList,
  render, stockGauge, table, when,
} from '../ui.js';

const TYPES = ['COUPON', 'POINTS', 'REDEEM_CODE', 'VIP_CARD', 'SUBSCRIPTION'];
const int = (name, attrs = {}) => html`<input type="number" name=${name} data-type="int" min=${attrs.min ?? 0}
  ?required=${attrs.required}>`;

// The content of each reward type (the API's union on reward_type): the form shows the chosen one's fields.
const CONTENT = {
  COUPON: () => html`
    ${field('Discount kind', html`<select name="content.discount_type">${options(['AMOUNT', 'PERCENT'])}</select>`)}
    ${field('Discount', int('content.discount_value', { min: 1, required: true }), 'cents for AMOUNT, 1-100 for PERCENT')}
    ${field('Minimum order (cents)', int('content.min_order_cents'))}`,
  POINTS: () => field('Points', int('content.amount', { min: 1, required: true })),
  REDEEM_CODE: () => field('Description', html`<input name="content.description" maxlength="500">`),
  VIP_CARD: () => field('Days', int('content.days', { min: 1, required: true })),
  SUBSCRIPTION: () => html`${field('Plan', html`<input name="content.plan" required>`)}
    ${field('Days', int('content.days', { min: 1, required: true }))}`,
};

// How a grant reaches the user (the reward's distributor).
const DISTRIBUTORS = {
  auto: () => nothing,
  webhook: () => html`${field('Webhook URL', html`<input type="url" name="distributor.url" required>`)}
    ${field('Signing secret name', html`<input name="distributor.secret_name">`, "one of the tenant's secrets")}`,
  email: () => field('E-mail template', html`<input name="distributor.template" required>`),
  sms: () => field('SMS template', html`<input name="distributor.template" required>`),
};

function createForm(ctx, state, draw) {
  const submit = onSubmit(async (body) => {
    const reward = await ctx.api.post('/v1/rewards', body);
    notify(`Reward “${reward.name}” created.`);
    ctx.go(`#/rewards/${seg(reward.reward_id)}`);
  });
  const pick = (key) => (e) => { state[key] = e.target.value; draw(); };
  return html`<form class="card grid" @submit=${submit} aria-labelledby="new-reward">
    <h2 id="new-reward">New reward</h2>
    ${formError()}
    ${field('Name', html`<input name="name" required maxlength="128">`)}
    ${field('Type', html`<select name="reward_type" @change=${pick('type')}>${options(TYPES, state.type)}</select>`)}
    ${CONTENT[state.type]()}
    ${field('Stock', int('total_stock'), 'empty: unlimited')}
    ${field('Per user', int('per_user_limit', { min: 1 }), 'empty: no limit')}
    ${field('Valid for (days after the grant)', int('valid_days', { min: 1 }))}
    ${field('Stock shards', int('shards', { min: 1 }), '1-32: more for flash sales')}
    ${field('Distribution', html`<select name="distributor.type" @change=${pick('distributor')}>
      ${options(Object.keys(DISTRIBUTORS), state.distributor)}</select>`)}
    ${DISTRIBUTORS[state.distributor]()}
    <div class="actions"><button type="submit" class="primary">Create reward</button>
      <button type="button" @click=${() => { state.creating = false; draw(); }}>Cancel</button></div>
  </form>`;
}

function listView(outlet, ctx) {
  const state = { creating: false, type: 'COUPON', distributor: 'auto' };
  const draw = () => ctx.alive() && render(view(), outlet);
  const list = pagedList((token) => ctx.api.get('/v1/rewards', { limit: 20, next_token: token }), draw);
  const rows = () => list.items.map((r) => html`<tr>
    <td><a href=${`#/rewards/${seg(r.reward_id)}`}>${r.name}</a></td><td>${r.reward_type}</td>
    <td class="wide">${stockGauge(r.stock)}</td><td>${count(r.per_user_limit)}</td><td>${when(r.created_at)}</td>
  </tr>`);
  const view = () => html`
    <div class="page-head"><h1>Rewards</h1>
      ${ctx.isAdmin && !state.creating ? html`<button type="button" class="primary"
        @click=${() => { state.creating = true; draw(); outlet.querySelector('[name=name]')?.focus(); }}>
        New reward</button>` : nothing}</div>
    ${state.creating ? createForm(ctx, state, draw) : nothing}
    ${list.status('No rewards yet.')}
    ${list.items.length ? table(['Name', 'Type', 'Stock', 'Per user', 'Created'], rows(), 'Rewards') : nothing}
    ${list.pager()}`;
  list.fetch();
}

function detailView(outlet, ctx, rewardId) {
  const state = { reward: null, error: null };
  const draw = () => ctx.alive() && render(view(), outlet);
  const path = `/v1/rewards/${seg(rewardId)}`;
  const load = async () => {
    try { state.reward = await ctx.api.get(path); } catch (error) { state.error = error; }
    draw();
  };
  const topUp = onSubmit(async ({ delta }, form) => {
    if (delta < 0 && !await confirmAction(`Remove ${count(-delta)} from the stock?`, { confirm: 'Reduce stock' })) return;
    state.reward = await ctx.api.post(`${path}/stock`, { delta });
    form.reset();
    notify(`Stock changed by ${count(delta)}.`);
    draw();
  });
  const remove = guarded(async () => {
    if (!await confirmAction(`Delete “${state.reward.name}”? New reservations and redemptions stop; this cannot be
      undone.`, { confirm: 'Delete reward', danger: true })) return;
    await ctx.api.del(path);
    notify('Reward deleted.');
    ctx.go('#/rewards');
  });
  const view = () => {
    if (state.error) return html`<h1>Reward</h1><p class="form-error" role="alert">${state.error.message}</p>`;
    const r = state.reward;
    if (!r) return html`<h1>Reward</h1><p class="muted" role="status">Loading…</p>`;
    return html`<p><a href="#/rewards">← Rewards</a></p>
      <div class="page-head"><h1>${r.name}</h1>
        ${ctx.isAdmin ? html`<button type="button" class="danger" @click=${remove}>Delete</button>` : nothing}</div>
      <section class="card" aria-labelledby="stock-title"><h2 id="stock-title">Stock</h2>
        <div class="stock-big">${stockGauge(r.stock)}</div>
        ${ctx.isAdmin ? html`<form class="inline" @submit=${topUp}>${formError()}
          ${field('Top up by', html`<input type="number" name="delta" data-type="int" required>`,
            'negative to reduce')}
          <button type="submit" class="primary">Change stock</button></form>` : nothing}
      </section>
      <section class="card"><h2>Settings</h2><dl class="facts">
        <dt>Type</dt><dd>${r.reward_type}${r.kind_no ? ` (${r.kind_no})` : ''}</dd>
        <dt>Content</dt><dd><code>${JSON.stringify(r.content)}</code></dd>
        <dt>Per user</dt><dd>${count(r.per_user_limit)}</dd>
        <dt>Valid</dt><dd>${r.valid_days ? `${r.valid_days} days after the grant`
          : `${when(r.valid_from)} – ${when(r.valid_until)}`}</dd>
        <dt>Distribution</dt><dd>${r.distributor?.type || 'auto'}</dd>
        <dt>Shards</dt><dd>${r.shards}</dd>
        <dt>Id</dt><dd><code>${r.reward_id}</code></dd>
      </dl></section>`;
  };
  draw();
  load();
}

export default {
  id: 'rewards',
  title: 'Rewards',
  roles: ['admin', 'service', 'user'],
  mount: listOrItem(listView, detailView),
};
