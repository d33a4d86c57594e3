// Statistics of one topic: a date range and a channel, the daily chart of a metric (the API's SVG), the totals
// and the operation records of a day.
import { seg } from '../api.js';
import { count, field, html, nothing, options, pagedList, render, table, today, when } from '../ui.js';

const daysBefore = (iso, n) => new Date(Date.parse(iso) - n * 86400000).toISOString().slice(0, 10);

function filterForm(ctx, f) {
  const submit = (e) => {
    e.preventDefault();
    const data = Object.fromEntries([...new FormData(e.currentTarget)].filter(([, v]) => v.trim() !== ''));
    const { topic_type: type, topic_id: id, ...query } = data;
    ctx.go(`#/stats/${seg(type)}/${seg(id)}?${new URLSearchParams(query)}`);
  };
  return html`<form class="card grid" @submit=${submit} aria-label="Topic and range">
    ${field('Topic type', html`<input name="topic_type" required list="topic-types" .value=${f.type}>`)}
    <datalist id="topic-types">${options(['activity', 'page', 'campaign'])}</datalist>
    ${field('Topic id', html`<input name="topic_id" required .value=${f.id}>`)}
    ${field('From', html`<input type="date" name="from" .value=${f.from}>`)}
    ${field('To', html`<input type="date" name="to" .value=${f.to}>`)}
    ${field('Channel', html`<input name="channel_type" .value=${f.channel}>`, 'empty: every channel')}
    <div class="actions"><button type="submit" class="primary">Show</button></div>
  </form>`;
}

function topicView(outlet, ctx) {
  const q = ctx.query;
  const to = q.get('to') || today();
  const f = { type: ctx.params[0] || '', id: ctx.params[1] || '', to, from: q.get('from') || daysBefore(to, 29),
    channel: q.get('channel_type') || '' };
  const state = { report: null, error: null, metric: q.get('metric') || '', chart: null, day: to, allMetrics: false };
  const draw = () => ctx.alive() && render(view(), outlet);
  const path = `/v1/stats/${seg(f.type)}/${seg(f.id)}`;
  const range = { from: f.from, to: f.to, channel_type: f.channel };
  const records = pagedList((token) => ctx.api.get(`${path}/records`, { day: state.day, limit: 20, next_token: token }),
    draw);
  const loadChart = async () => {
    const url = await ctx.api.objectUrl(`${path}/chart.svg`, { ...range, metric: state.metric });
    if (state.chart) URL.revokeObjectURL(state.chart);
    state.chart = url;
    draw();
  };
  const load = async () => {
    try {
      state.report = await ctx.api.get(path, range);
      const moved = Object.entries(state.report.totals).find(([, n]) => n > 0);
      state.metric ||= moved ? moved[0] : 'visits';
      draw();
      await Promise.all([loadChart(), records.reload()]);
    } catch (error) { state.error = error; draw(); }
  };
  const pickMetric = (e) => { state.metric = e.target.value; loadChart(); };
  const pickDay = (e) => { state.day = e.target.value || to; records.reload(); };
  const view = () => {
    const head = html`<div class="page-head"><h1>Statistics</h1>${state.report ? html`<button type="button"
      @click=${load}>Refresh</button>` : nothing}</div>${filterForm(ctx, f)}`;
    if (state.error) return html`${head}<p class="form-error" role="alert">${state.error.message}</p>`;
    const r = state.report;
    if (!r) return html`${head}<p class="muted" role="status">Loading…</p>`;
    const totals = Object.entries(r.totals).filter(([, n]) => state.allMetrics || n > 0);
    const zeros = Object.values(r.totals).filter((n) => n === 0).length;
    return html`${head}
      <section class="card" aria-labelledby="chart-title">
        <h2 id="chart-title">${f.type} ${f.id}: daily ${state.metric}</h2>
        <div class="toolbar">${field('Metric', html`<select @change=${pickMetric}>
          ${options(Object.keys(r.totals), state.metric)}</select>`)}</div>
        ${state.chart ? html`<img class="chart" src=${state.chart} alt=${`Daily ${state.metric} from ${r.from} to ${r.to}`}>`
          : html`<p class="muted">Drawing…</p>`}
      </section>
      <section aria-labelledby="totals-title"><h2 id="totals-title">Totals, ${r.from} to ${r.to}
        ${r.channel_type ? `(channel ${r.channel_type})` : '(every channel)'}</h2>
        <label class="check"><input type="checkbox" .checked=${state.allMetrics}
          @change=${(e) => { state.allMetrics = e.target.checked; draw(); }}> Show the ${zeros} metrics at zero</label>
        ${totals.length ? table(['Metric', 'Total'], totals.map(([name, n]) =>
          html`<tr><td>${name}</td><td class="num">${count(n)}</td></tr>`), 'Totals')
          : html`<p class="muted">Nothing counted in this range.</p>`}
      </section>
      <section aria-labelledby="records-title"><h2 id="records-title">Operation records</h2>
        <div class="toolbar">${field('Day', html`<input type="date" .value=${state.day} @change=${pickDay}>`)}</div>
        ${records.status('No events counted that day.')}
        ${records.items.length ? table(['Processed', 'Event', 'Origin', 'Sender', 'Channel', 'Id'],
          records.items.map((x) => html`<tr><td>${when(x.processed_at)}</td><td><code>${x.event_type}</code></td>
            <td>${x.origin}</td><td>${x.sender || '—'}</td><td>${x.channel || '—'}</td><td><code>${x.event_id}</code></td>
          </tr>`), 'Operation records of the day') : nothing}
        ${records.pager()}
      </section>`;
  };
  draw();
  load();
}

export default {
  id: 'stats',
  title: 'Statistics',
  roles: ['admin', 'service'],
  mount(outlet, ctx) {
    if (ctx.params.length >= 2) topicView(outlet, ctx);
    else {
      const to = today();
      render(html`<h1>Statistics</h1>${filterForm(ctx, { type: 'activity', id: '', from: daysBefore(to, 29), to,
        channel: '' })}`, outlet);
    }
  },
};
