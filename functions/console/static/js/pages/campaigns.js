// Campaigns: the list (pause / activate), the creation and edit form, and a campaign's linked tasks with their
// completion statistics (link an existing task, create one, unlink).
import { seg } from '../api.js';
import {
  confirmAction, count, field, formError, guarded, html, listOrItem, localInput, nothing, notify, onSubmit, options,
  pagedList, render, table, when,
} from '../ui.js';

const STATUSES = ['DRAFT', 'ACTIVE', 'PAUSED', 'ENDED'];
const TASK_TYPES = ['REGISTER', 'INVITE', 'PURCHASE', 'SHARE', 'SIGN_IN', 'CUSTOM'];
const EDITABLE = ['name', 'campaign_type', 'description', 'start_time', 'end_time', 'status', 'audience_id'];

const badge = (status) => html`<span class="badge status-${status.toLowerCase()}">${status}</span>`;
const bodyOf = (campaign) => Object.fromEntries(EDITABLE.filter((k) => campaign[k] != null).map((k) => [k, campaign[k]]));

/** Moves a campaign to `status` (PUT replaces it whole); ENDED freezes it for good, so it asks first. */
async function setStatus(ctx, campaign, status) {
  if (status === 'ENDED' && !await confirmAction(`End “${campaign.name}”? An ended campaign can never be changed
    again.`, { confirm: 'End campaign', danger: true })) return null;
  const updated = await ctx.api.put(`/v1/campaigns/${seg(campaign.campaign_id)}`, { ...bodyOf(campaign), status });
  notify(`“${updated.name}” is now ${updated.status}.`);
  return updated;
}

function statusButtons(ctx, campaign, done) {
  if (!ctx.isAdmin || campaign.status === 'ENDED') return nothing;
  const move = (status, label) => html`<button type="button" @click=${guarded(async () => {
    const updated = await setStatus(ctx, campaign, status);
    if (updated) done(updated);
  })}>${label}</button>`;
  return campaign.status === 'ACTIVE' ? move('PAUSED', 'Pause') : move('ACTIVE', 'Activate');
}

function campaignForm(campaign, submit, cancel) {
  const c = campaign || { status: 'DRAFT' };
  return html`<form class="card grid" @submit=${submit} aria-labelledby="campaign-form">
    <h2 id="campaign-form">${campaign ? 'Edit campaign' : 'New campaign'}</h2>
    ${formError()}
    ${field('Name', html`<input name="name" required maxlength="128" .value=${c.name || ''}>`)}
    ${field('Type', html`<input name="campaign_type" list="campaign-types" .value=${c.campaign_type || ''}>`,
      'e.g. NEW_USER, PROMOTION')}
    <datalist id="campaign-types">${options(['NEW_USER', 'PROMOTION', 'INVITE', 'HOLIDAY'])}</datalist>
    ${field('Starts', html`<input type="datetime-local" name="start_time" data-type="datetime" required
      .value=${localInput(c.start_time)}>`, 'your local time')}
    ${field('Ends', html`<input type="datetime-local" name="end_time" data-type="datetime" required
      .value=${localInput(c.end_time)}>`, 'your local time')}
    ${field('Status', html`<select name="status">${options(STATUSES.slice(0, 3), c.status)}</select>`)}
    ${field('Audience id', html`<input name="audience_id" .value=${c.audience_id || ''}>`, 'empty: everyone')}
    ${field('Description', html`<textarea name="description" rows="2" .value=${c.description || ''}></textarea>`)}
    <div class="actions"><button type="submit" class="primary">${campaign ? 'Save' : 'Create campaign'}</button>
      ${cancel ? html`<button type="button" @click=${cancel}>Cancel</button>` : nothing}</div>
  </form>`;
}

function listView(outlet, ctx) {
  const state = { creating: false };
  const draw = () => ctx.alive() && render(view(), outlet);
  const list = pagedList((token) => ctx.api.get('/v1/campaigns', { limit: 20, next_token: token }), draw);
  const create = onSubmit(async (body) => {
    const campaign = await ctx.api.post('/v1/campaigns', body);
    notify(`Campaign “${campaign.name}” created.`);
    ctx.go(`#/campaigns/${seg(campaign.campaign_id)}`);
  });
  const replace = (updated) => {
    list.items = list.items.map((c) => (c.campaign_id === updated.campaign_id ? updated : c));
    draw();
  };
  const rows = () => list.items.map((c) => html`<tr>
    <td><a href=${`#/campaigns/${seg(c.campaign_id)}`}>${c.name}</a></td><td>${c.campaign_type || '—'}</td>
    <td>${badge(c.status)}</td><td>${when(c.start_time)}</td><td>${when(c.end_time)}</td>
    <td>${statusButtons(ctx, c, replace)}</td></tr>`);
  const view = () => html`
    <div class="page-head"><h1>Campaigns</h1>
      ${ctx.isAdmin && !state.creating ? html`<button type="button" class="primary"
        @click=${() => { state.creating = true; draw(); outlet.querySelector('[name=name]')?.focus(); }}>
        New campaign</button>` : nothing}</div>
    ${state.creating ? campaignForm(null, create, () => { state.creating = false; draw(); }) : nothing}
    ${list.status('No campaigns yet.')}
    ${list.items.length ? table(['Name', 'Type', 'Status', 'Starts', 'Ends', ''], rows(), 'Campaigns') : nothing}
    ${list.pager()}`;
  list.fetch();
}

function taskForm(ctx, state, submit) {
  return html`<form class="card grid" @submit=${submit} aria-labelledby="task-form">
    <h3 id="task-form">New task in this campaign</h3>
    ${formError()}
    ${field('Name', html`<input name="name" required maxlength="128">`)}
    ${field('Kind', html`<select name="task_type">${options(TASK_TYPES)}</select>`)}
    ${field('Event', html`<input name="event_type" required list="event-types">`, 'e.g. USER_REGISTER, track.new_user')}
    <datalist id="event-types">${options(['USER_REGISTER', 'SIGN_IN', 'track.new_user', 'cps.order_paid',
      'code.redeemed'])}</datalist>
    ${field('Counts', html`<select name="condition.type">${options(['count', 'sum'])}</select>`,
      'sum adds event_data[field]')}
    ${field('Sum of field', html`<input name="condition.field">`)}
    ${field('Reaches', html`<input type="number" name="condition.value" data-type="int" min="1" value="1" required>`)}
    ${field('Period', html`<select name="period">${options(['ONCE', 'DAILY', 'WEEKLY'])}</select>`)}
    ${field('Reward', html`<select name="reward_id" required><option value="">Choose…</option>
      ${state.rewards.map((r) => html`<option value=${r.reward_id}>${r.name}</option>`)}</select>`)}
    <div class="actions"><button type="submit" class="primary">Create and link task</button></div>
  </form>`;
}

function detailView(outlet, ctx, campaignId) {
  const state = { campaign: null, error: null, tasks: [], allTasks: [], rewards: [], editing: false };
  const draw = () => ctx.alive() && render(view(), outlet);
  const path = `/v1/campaigns/${seg(campaignId)}`;
  const loadTasks = async () => {
    const links = await ctx.api.get(`${path}/tasks`, { limit: 100 });
    state.tasks = await Promise.all(links.items.map(async ({ task_id: id }) => {
      const [task, stats] = await Promise.all([ctx.api.get(`/v1/tasks/${seg(id)}`),
        ctx.api.get(`/v1/tasks/${seg(id)}/completion-stats`)]);
      return { ...task, stats };
    }));
    draw();
  };
  const load = async () => {
    try {
      state.campaign = await ctx.api.get(path);
      draw();
      await loadTasks();
      if (ctx.isAdmin) {
        const [tasks, rewards] = await Promise.all([ctx.api.get('/v1/tasks', { limit: 100 }),
          ctx.api.get('/v1/rewards', { limit: 100 })]);
        Object.assign(state, { allTasks: tasks.items, rewards: rewards.items });
      }
    } catch (error) { state.error = error; }
    draw();
  };
  const save = onSubmit(async (body) => {
    state.campaign = await ctx.api.put(path, body);
    state.editing = false;
    notify('Campaign saved.');
    draw();
  });
  const link = onSubmit(async ({ task_id: taskId }) => {
    await ctx.api.post(`${path}/tasks`, { task_id: taskId });
    notify('Task linked.');
    await loadTasks();
  });
  const createTask = onSubmit(async (body, form) => {
    const task = await ctx.api.post('/v1/tasks', body);
    await ctx.api.post(`${path}/tasks`, { task_id: task.task_id });
    state.allTasks = [task, ...state.allTasks];
    form.reset();
    notify(`Task “${task.name}” created and linked.`);
    await loadTasks();
  });
  const unlink = (task) => guarded(async () => {
    if (!await confirmAction(`Unlink “${task.name}” from this campaign?`, { confirm: 'Unlink' })) return;
    await ctx.api.del(`${path}/tasks/${seg(task.task_id)}`);
    notify('Task unlinked.');
    await loadTasks();
  });
  const remove = guarded(async () => {
    if (!await confirmAction(`Delete “${state.campaign.name}”? This cannot be undone.`,
      { confirm: 'Delete campaign', danger: true })) return;
    await ctx.api.del(path);
    notify('Campaign deleted.');
    ctx.go('#/campaigns');
  });
  const taskRows = () => state.tasks.map((t) => html`<tr><td>${t.name}</td><td>${t.task_type}</td>
    <td><code>${t.event_type}</code></td><td>${t.condition.type} ${t.condition.operator} ${t.condition.value}</td>
    <td>${t.period}</td><td class="num">${count(t.stats.total_completions)}</td>
    <td class="num">${count(t.stats.unique_users)}</td>
    <td>${ctx.isAdmin ? html`<button type="button" @click=${unlink(t)}>Unlink</button>` : nothing}</td></tr>`);
  const linkable = () => state.allTasks.filter((t) => !state.tasks.some((l) => l.task_id === t.task_id));
  const view = () => {
    if (state.error) return html`<h1>Campaign</h1><p class="form-error" role="alert">${state.error.message}</p>`;
    const c = state.campaign;
    if (!c) return html`<h1>Campaign</h1><p class="muted" role="status">Loading…</p>`;
    const frozen = c.status === 'ENDED';
    return html`<p><a href="#/campaigns">← Campaigns</a></p>
      <div class="page-head"><h1>${c.name} ${badge(c.status)}</h1>
        <div class="actions">${statusButtons(ctx, c, (u) => { state.campaign = u; draw(); })}
        ${ctx.isAdmin && !frozen ? html`
          <button type="button" @click=${() => { state.editing = !state.editing; draw(); }}>Edit</button>
          <button type="button" @click=${guarded(async () => {
            const ended = await setStatus(ctx, c, 'ENDED');
            if (ended) { state.campaign = ended; draw(); }
          })}>End</button>
          <button type="button" class="danger" @click=${remove}>Delete</button>` : nothing}</div></div>
      ${state.editing ? campaignForm(c, save, () => { state.editing = false; draw(); }) : html`
        <dl class="facts card"><dt>Type</dt><dd>${c.campaign_type || '—'}</dd>
          <dt>Runs</dt><dd>${when(c.start_time)} – ${when(c.end_time)}</dd>
          <dt>Audience</dt><dd>${c.audience_id || 'everyone'}</dd>
          <dt>Description</dt><dd>${c.description || '—'}</dd><dt>Id</dt><dd><code>${c.campaign_id}</code></dd></dl>`}
      <section aria-labelledby="tasks-title"><h2 id="tasks-title">Tasks</h2>
        ${state.tasks.length ? table(['Task', 'Kind', 'Event', 'Condition', 'Period', 'Completions', 'Users', ''],
          taskRows(), 'Linked tasks and their completions') : html`<p class="muted">No task linked.</p>`}
        ${ctx.isAdmin && !frozen ? html`
          <form class="inline" @submit=${link}>${formError()}
            ${field('Link a task', html`<select name="task_id" required><option value="">Choose…</option>
              ${linkable().map((t) => html`<option value=${t.task_id}>${t.name}</option>`)}</select>`)}
            <button type="submit">Link</button></form>
          ${taskForm(ctx, state, createTask)}` : nothing}
      </section>`;
  };
  draw();
  load();
}

export default {
  id: 'campaigns',
  title: 'Campaigns',
  roles: ['admin', 'service'],
  mount: listOrItem(listView, detailView),
};
