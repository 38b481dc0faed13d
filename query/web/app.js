// The fleetpulse dashboard: hash-routed pages drawn from the JSON API (docs/api.md), charts by
// uPlot. Every page keeps its state in the URL (#/page?param=...), so a link or a reload shows the
// same view; pages refresh in place every REFRESH_MS, updating text and chart data rather than
// rebuilding the DOM, so nothing flickers.
//
// Scale: the overview asks for the fleet summary and a few aggregated series (grouped by model on
// the server), never one request per device; the devices table is paginated by the server. So a
// fleet of 1000 or 10,000 devices costs the browser the same as ten.

const REFRESH_MS = 10000;

// Metric names the fleet summary uses too (docs/metrics.md); the charts follow them.
const M = {
  tps: 'llamacpp_generation_tokens_per_second',
  ttft: 'gen_ai_server_time_to_first_token_seconds',
  temp: 'temperature_celsius',
  psi: 'memory_pressure_some_avg10',
  memAvail: 'memory_available_bytes',
  cpu: 'cpu_utilization_ratio',
};

// Identity labels the store stamps on every series of a device: constant within a device, so a
// device page does not group its series by them.
const IDENTITY_LABELS = ['cohort', 'hw', 'model', 'model_version', 'quant', 'runtime', 'site'];

const WINDOWS = ['15m', '1h', '6h', '24h', '7d'];
const WINDOW_S = { '15m': 900, '1h': 3600, '6h': 21600, '24h': 86400, '7d': 604800 };

// Colour-blind-safe palette (Okabe-Ito plus extras); series keep their colour across refreshes.
const PALETTE = ['#0072b2', '#e69f00', '#009e73', '#cc79a7', '#56b4e9', '#d55e00', '#f0e442',
  '#000000', '#7f7f7f', '#8c564b', '#17becf', '#bcbd22'];

const STATES = ['ok', 'stale', 'silent', 'degraded'];

// ---- small helpers ------------------------------------------------------------------------

function h(tag, attrs, ...children) {
  const el = document.createElement(tag);
  for (const [k, v] of Object.entries(attrs || {})) {
    if (v === undefined || v === null || v === false) continue;
    if (k === 'class') el.className = v;
    else if (k === 'text') el.textContent = v;
    else if (k.startsWith('on')) el.addEventListener(k.slice(2), v);
    else el.setAttribute(k, v === true ? '' : v);
  }
  for (const c of children.flat()) {
    if (c === null || c === undefined || c === false) continue;
    el.append(c instanceof Node ? c : document.createTextNode(String(c)));
  }
  return el;
}

class ApiError extends Error {
  constructor(status, message) {
    super(message);
    this.status = status;
  }
}

// GET path with params (an object; array values repeat the key). Resolves to the parsed JSON or
// rejects with ApiError carrying the service's own error line.
async function api(path, params) {
  const qs = new URLSearchParams();
  for (const [k, v] of Object.entries(params || {})) {
    if (v === undefined || v === null || v === '') continue;
    if (Array.isArray(v)) v.forEach((x) => qs.append(k, x));
    else qs.append(k, String(v));
  }
  const q = qs.toString();
  const r = await fetch(path + (q ? '?' + q : ''), { headers: { Accept: 'application/json' } });
  let body = null;
  try {
    body = await r.json();
  } catch (e) {
    throw new ApiError(r.status, `${path}: HTTP ${r.status}, not JSON`);
  }
  if (!r.ok) throw new ApiError(r.status, (body && body.error) || `${path}: HTTP ${r.status}`);
  return body;
}

function nowS() {
  return Date.now() / 1000;
}

// A step that gives about `buckets` points over the window, at least 60 s for the fleet views
// (the store's 1-minute rollups) or `min` when given.
function stepFor(windowS, buckets, min) {
  const raw = windowS / buckets;
  const nice = [10, 15, 30, 60, 120, 300, 600, 900, 1800, 3600, 7200, 21600, 86400];
  const lo = min || 60;
  return nice.find((s) => s >= raw && s >= lo) || nice[nice.length - 1];
}

function unitOf(metric) {
  if (!metric) return '';
  if (/tokens_per_second$/.test(metric)) return 'tok/s';
  if (/_bytes(_total)?$/.test(metric)) return 'bytes';
  if (/_seconds$/.test(metric)) return 's';
  if (/_ratio$/.test(metric)) return 'ratio';
  if (/_celsius$/.test(metric)) return '°C';
  if (/_hertz$/.test(metric)) return 'Hz';
  if (/^memory_pressure_.*_avg\d+$/.test(metric)) return '%';
  return '';
}

function num(v, digits) {
  if (v === null || v === undefined || Number.isNaN(v)) return '–';
  const a = Math.abs(v);
  if (a >= 1e6) return v.toLocaleString('en', { notation: 'compact', maximumFractionDigits: 2 });
  if (a !== 0 && a < 1e-3) return v.toExponential(2);
  return v.toLocaleString('en', { maximumFractionDigits: digits === undefined ? 3 : digits });
}

// A value in the metric's unit, readable: 1.5 GiB, 230 ms, 41.2 °C, 12 %.
function fmt(v, unit) {
  if (v === null || v === undefined || typeof v !== 'number' || !Number.isFinite(v)) return '–';
  switch (unit) {
    case 'bytes': {
      const units = ['B', 'KiB', 'MiB', 'GiB', 'TiB'];
      let i = 0;
      let x = v;
      while (Math.abs(x) >= 1024 && i < units.length - 1) {
        x /= 1024;
        i++;
      }
      return `${num(x, i ? 1 : 0)} ${units[i]}`;
    }
    case 's':
      if (Math.abs(v) < 1) return `${num(v * 1000, 1)} ms`;
      return `${num(v, 2)} s`;
    case 'ratio':
      return `${num(v * 100, 1)} %`;
    case '%':
      return `${num(v, 2)} %`;
    case '°C':
      return `${num(v, 1)} °C`;
    case 'Hz':
      return v >= 1e9 ? `${num(v / 1e9, 2)} GHz` : `${num(v / 1e6, 0)} MHz`;
    case 'tok/s':
      return `${num(v, 1)} tok/s`;
    default:
      return num(v);
  }
}

function fmtMetric(metric, v) {
  return fmt(v, unitOf(metric));
}

function fmtDuration(s) {
  if (s % 86400 === 0) return `${s / 86400} d`;
  if (s % 3600 === 0) return `${s / 3600} h`;
  if (s % 60 === 0) return `${s / 60} min`;
  return `${num(s, 1)} s`;
}

function ago(ts) {
  if (!ts) return '–';
  const d = Math.max(0, nowS() - ts);
  if (d < 60) return `${Math.round(d)} s ago`;
  if (d < 3600) return `${Math.round(d / 60)} min ago`;
  if (d < 86400) return `${(d / 3600).toFixed(1)} h ago`;
  return `${(d / 86400).toFixed(1)} d ago`;
}

function timeStr(ts) {
  if (!ts) return '–';
  return new Date(ts * 1000).toLocaleString('en-GB', { hour12: false });
}

function stateBadge(state) {
  const s = state || 'unknown';
  return h('span', { class: `badge state-${s}`, 'data-state': s }, s);
}

function deviceLink(id) {
  return h('a', { href: `#/device/${encodeURIComponent(id)}`, class: 'device-link' }, id);
}

// Builds "#/page?k=v" keeping only non-empty values.
function href(page, params) {
  const qs = new URLSearchParams();
  for (const [k, v] of Object.entries(params || {})) {
    if (v === undefined || v === null || v === '') continue;
    if (Array.isArray(v)) v.forEach((x) => qs.append(k, x));
    else qs.set(k, v);
  }
  const q = qs.toString();
  return `#/${page}${q ? '?' + q : ''}`;
}

function regexEscape(s) {
  return s.replace(/[.*+?^${}()|[\]\\]/g, '\\$&');
}

// Sets a table body's rows, replacing the old ones in one step (no empty flash in between).
function setRows(tbody, rows, emptyText, cols) {
  if (rows.length === 0) {
    tbody.replaceChildren(h('tr', {}, h('td', { colspan: cols, class: 'muted' }, emptyText)));
  } else {
    tbody.replaceChildren(...rows);
  }
}

function labelsText(labels, skip) {
  const parts = Object.entries(labels || {})
    .filter(([k]) => !(skip || []).includes(k))
    .map(([k, v]) => `${k}=${v}`);
  return parts.join(', ');
}

// ---- charts ---------------------------------------------------------------------------------

// One time-series chart: a titled box around a uPlot instance. update() takes the API's series
// objects ({labels, metric, points}) and a function naming each one; when the same lines come
// back it only swaps the data (uPlot setData), so the chart never blinks on refresh.
class Chart {
  constructor(title, unit, opts) {
    this.unit = unit;
    this.opts = opts || {};
    this.plot = null;
    this.names = null;
    this.range = null;
    this.colors = new Map();
    this.body = h('div', { class: 'chart-body' });
    this.empty = h('div', { class: 'chart-empty', text: 'no data in this window' });
    this.el = h('figure', { class: 'chart', 'data-title': title, 'data-points': '0' },
      h('figcaption', {}, title), this.body, this.empty);
    this.resize = new ResizeObserver(() => {
      if (this.plot) this.plot.setSize(this.size());
    });
    this.resize.observe(this.body);
  }

  size() {
    return { width: Math.max(200, this.body.clientWidth || 400), height: this.opts.height || 200 };
  }

  color(name) {
    if (!this.colors.has(name)) this.colors.set(name, PALETTE[this.colors.size % PALETTE.length]);
    return this.colors.get(name);
  }

  // series: the API's series objects; nameOf(series) names a line; range: [from, to] in Unix
  // seconds, the window the chart spans whatever the data covers.
  update(series, nameOf, range) {
    this.range = range || null;
    const names = series.map(nameOf);
    const xs = new Set();
    for (const s of series) for (const p of s.points) xs.add(p[0]);
    const x = Array.from(xs).sort((a, b) => a - b);
    const index = new Map(x.map((t, i) => [t, i]));
    let points = 0;
    const ys = series.map((s) => {
      const y = new Array(x.length).fill(null);
      for (const [t, v] of s.points) {
        y[index.get(t)] = v;
        if (v !== null) points++;
      }
      return y;
    });
    this.el.dataset.points = String(points);
    this.el.dataset.series = String(series.length);
    this.el.classList.toggle('is-empty', points === 0);
    const data = [x, ...ys];
    if (this.plot && this.names && this.names.join('\u0000') === names.join('\u0000')) {
      this.plot.setData(data);
      return;
    }
    if (this.plot) this.plot.destroy();
    this.names = names;
    const unit = this.unit;
    const fmtAxis = (u, vals) => vals.map((v) => fmt(v, unit));
    this.plot = new uPlot({
      ...this.size(),
      series: [{}].concat(names.map((n) => ({
        label: n,
        stroke: this.color(n),
        width: 1.5,
        spanGaps: false,
        points: { show: x.length < 60 },
        value: (u, v) => fmt(v, unit),
      }))),
      axes: [{}, { values: fmtAxis, size: 70 }],
      scales: { x: { time: true,
        range: (u, min, max) => (this.range ? this.range : [min, max]) } },
      legend: { live: true },
      cursor: { drag: { x: false, y: false } },
    }, data, this.body);
    this.el.uplot = this.plot;
  }

  destroy() {
    this.resize.disconnect();
    if (this.plot) this.plot.destroy();
    this.plot = null;
  }
}

// ---- pages ----------------------------------------------------------------------------------
// A page: mount(root) builds its skeleton once; refresh() fetches and fills it (called on every
// tick and after mount); destroy() releases charts.

function windowSelect(current, onPick) {
  return h('label', { class: 'control' }, 'Window ',
    h('select', { onchange: (e) => onPick(e.target.value), 'aria-label': 'time window' },
      WINDOWS.map((w) => h('option', { value: w, selected: w === current }, w))));
}

// The tiles' numbers: the total and the count of each state.
function stateCounts(sum) {
  const out = { total: sum.devices };
  for (const st of STATES) out[st] = (sum.states && sum.states[st]) || 0;
  return out;
}

// The summary's groupings (docs/api.md, fleet/summary), each a table the overview can show.
const GROUPINGS = { model: 'model', model_version: 'model version', quant: 'quantisation',
  site: 'site', hw: 'hardware' };

// "9 ok · 1 stale": a group's states, the ones it has.
function statesText(states) {
  return STATES.filter((st) => states && states[st] > 0).map((st) => `${states[st]} ${st}`)
    .join(' · ') || '–';
}

class OverviewPage {
  constructor(params) {
    this.window = WINDOW_S[params.get('window')] ? params.get('window') : '1h';
    this.group = GROUPINGS[params.get('group')] ? params.get('group') : 'model';
  }

  mount(root) {
    this.tiles = {};
    const tiles = h('section', { class: 'tiles', id: 'state-tiles' });
    for (const s of ['total', ...STATES]) {
      const count = h('span', { class: 'tile-count', text: '–' });
      const link = h('a', { class: `tile tile-${s}`, 'data-state': s,
        href: s === 'total' ? '#/devices' : href('devices', { state: s }) },
      count, h('span', { class: 'tile-label' }, s === 'total' ? 'devices' : s));
      this.tiles[s] = count;
      tiles.append(link);
    }
    this.note = h('p', { class: 'muted small' });
    this.modelBody = h('tbody');
    const table = h('table', { class: 'data', id: 'model-table', 'data-group': this.group },
      h('thead', {}, h('tr', {},
        [this.group, 'devices', 'states', 'tok/s p50', 'tok/s p95', 'TTFT p50', 'TTFT p95',
          'TTFT p99', 'errors', 'fallbacks', 'worst mem. pressure', 'max temp.']
          .map((t) => h('th', {}, t)))),
      this.modelBody);
    const groupSel = h('select', { 'aria-label': 'group by', onchange: (e) => {
      location.hash = href('', { window: this.window, group: e.target.value });
    } }, Object.entries(GROUPINGS).map(([k, t]) => h('option', { value: k,
      selected: k === this.group }, t)));
    this.charts = {
      tps: new Chart('Tokens/s p95 by model', 'tok/s'),
      ttft: new Chart('Time to first token p95 by model', 's'),
      temp: new Chart('Highest temperature by model', '°C'),
      psi: new Chart('Memory pressure (PSI some, 10 s) p95 by model', '%'),
    };
    this.hotBody = h('tbody');
    this.slowBody = h('tbody');
    root.append(
      h('div', { class: 'page-head' }, h('h1', {}, 'Fleet overview'),
        windowSelect(this.window, (w) => { location.hash = href('', { window: w, group: this.group }); })),
      tiles,
      h('div', { class: 'section-head' }, h('h2', {}, 'By ', groupSel), this.note),
      h('div', { class: 'scroll' }, table),
      h('h2', {}, 'Performance'),
      h('div', { class: 'charts' }, this.charts.tps.el, this.charts.ttft.el),
      h('h2', {}, 'Temperature and memory pressure'),
      h('div', { class: 'charts' }, this.charts.temp.el, this.charts.psi.el),
      h('div', { class: 'columns' },
        h('section', {}, h('h2', {}, 'Hottest devices'),
          h('table', { class: 'data', id: 'hottest' },
            h('thead', {}, h('tr', {}, h('th', {}, 'device'), h('th', {}, 'model'),
              h('th', {}, 'temperature'))), this.hotBody)),
        h('section', {}, h('h2', {}, 'Slowest devices (vs. their cohort)'),
          h('table', { class: 'data', id: 'slowest' },
            h('thead', {}, h('tr', {}, h('th', {}, 'device'), h('th', {}, 'model'),
              h('th', {}, 'tok/s'), h('th', {}, 'of cohort median'))), this.slowBody))));
  }

  async refresh() {
    const to = Math.floor(nowS());
    const w = WINDOW_S[this.window];
    const from = to - w;
    const step = stepFor(w, 240);
    const series = (metric, agg) => api('/api/v1/series',
      { metric, from, to, step, agg, by: 'model' }).then((b) => b.series);
    const [sum, tps, ttft, temp, psi] = await Promise.all([
      api('/api/v1/fleet/summary'), series(M.tps, 'p95'), series(M.ttft, 'p95'), series(M.temp, 'max'),
      series(M.psi, 'p95')]);

    const counts = stateCounts(sum);
    for (const [s, el] of Object.entries(this.tiles)) el.textContent = String(counts[s]);
    this.note.textContent = `Statistics and top devices over the last ${fmtDuration(sum.window)}.`;

    const label = this.group;
    const groups = (sum.groups && sum.groups[label]) || [];
    const rows = groups.map((g) => h('tr', {},
      h('td', {}, h('a', { href: href('devices', { match: `${label}=${g.value}` }) },
        g.value || '(none)')),
      h('td', { class: 'num' }, num(g.devices)),
      h('td', {}, statesText(g.states)),
      h('td', { class: 'num' }, fmt(g.tokens_per_second && g.tokens_per_second.p50, 'tok/s')),
      h('td', { class: 'num' }, fmt(g.tokens_per_second && g.tokens_per_second.p95, 'tok/s')),
      h('td', { class: 'num' }, fmt(g.ttft_seconds && g.ttft_seconds.p50, 's')),
      h('td', { class: 'num' }, fmt(g.ttft_seconds && g.ttft_seconds.p95, 's')),
      h('td', { class: 'num' }, fmt(g.ttft_seconds && g.ttft_seconds.p99, 's')),
      h('td', { class: 'num' }, fmt(g.error_rate, 'ratio')),
      h('td', { class: 'num' }, fmt(g.fallback_rate, 'ratio')),
      h('td', { class: 'num' }, fmt(g.memory_pressure_max, '%')),
      h('td', { class: 'num' }, fmt(g.temperature_max, '°C'))));
    setRows(this.modelBody, rows, 'no devices', 12);

    const byModel = (s) => s.labels.model || '(no model)';
    this.charts.tps.update(tps, byModel, [from, to]);
    this.charts.ttft.update(ttft, byModel, [from, to]);
    this.charts.temp.update(temp, byModel, [from, to]);
    this.charts.psi.update(psi, byModel, [from, to]);

    const hot = (sum.hottest || []).map((d) => h('tr', {}, h('td', {}, deviceLink(d.device)),
      h('td', {}, d.model || '–'),
      h('td', { class: 'num' }, fmt(d.temperature_max, '°C'))));
    setRows(this.hotBody, hot, 'none', 3);
    const slow = (sum.slowest || []).map((d) => h('tr', {}, h('td', {}, deviceLink(d.device)),
      h('td', {}, d.model || '–'),
      h('td', { class: 'num' }, fmt(d.tokens_per_second, 'tok/s')),
      h('td', { class: 'num' }, fmt(d.ratio, 'ratio'))));
    setRows(this.slowBody, slow, 'none', 4);
  }

  destroy() {
    Object.values(this.charts || {}).forEach((c) => c.destroy());
  }
}

// Devices table columns: a label, the latest value of a metric, or the device's own fields.
// `sort` is what /api/v1/devices?sort= takes for the column (none: not sortable server-side).
const DEVICE_COLUMNS = [
  { title: 'device', get: (d) => deviceLink(d.device) },
  { title: 'state', get: (d) => stateBadge(d.state) },
  { title: 'model', get: (d) => d.info && d.info.model },
  { title: 'version', get: (d) => d.info && d.info.model_version },
  { title: 'site', get: (d) => d.info && d.info.site },
  { title: 'hw', get: (d) => d.info && d.info.hw_class },
  { title: 'last seen', get: (d) => ago(d.last_seen) },
  { title: 'tok/s', metric: M.tps },
  { title: 'TTFT', metric: M.ttft },
  { title: 'temp.', metric: M.temp },
  { title: 'mem. pressure', metric: M.psi },
  { title: 'mem. available', metric: M.memAvail },
  { title: 'CPU', metric: M.cpu },
];

// The latest value of metric on a device: its bare key, or for a metric with several series
// (temperature per zone) the largest of them.
function latest(d, metric) {
  const m = d.metrics || {};
  if (typeof m[metric] === 'number') return m[metric];
  let best = null;
  for (const [k, v] of Object.entries(m)) {
    if (k.startsWith(metric + '{') && typeof v === 'number' && (best === null || v > best)) best = v;
  }
  return best;
}

class DevicesPage {
  constructor(params) {
    this.params = params;
  }

  go(changes) {
    const p = {
      state: this.params.get('state'),
      match: this.params.getAll('match'),
      sort: this.params.get('sort'),
      limit: this.params.get('limit'),
      ...changes,
    };
    location.hash = href('devices', p);
  }

  mount(root) {
    const p = this.params;
    const matchInput = h('input', { type: 'text', name: 'match', size: 40,
      placeholder: 'model=llama-3.2-1b site!=lab hw=~jetson.*',
      value: p.getAll('match').join(' '), 'aria-label': 'label matchers' });
    const stateSel = h('select', { name: 'state', 'aria-label': 'state' },
      h('option', { value: '' }, 'any state'),
      STATES.map((s) => h('option', { value: s, selected: p.get('state') === s }, s)));
    const limitSel = h('select', { name: 'limit', 'aria-label': 'rows per page' },
      ['50', '100', '500', '1000'].map((n) => h('option', { value: n,
        selected: (p.get('limit') || '100') === n }, `${n} per page`)));
    const form = h('form', { class: 'filters', onsubmit: (e) => {
      e.preventDefault();
      this.go({ match: matchInput.value.split(/\s+/).filter(Boolean), state: stateSel.value,
        limit: limitSel.value === '100' ? '' : limitSel.value, cursor: '' });
    } }, h('label', { class: 'control' }, 'Labels ', matchInput),
    h('label', { class: 'control' }, 'State ', stateSel), limitSel,
    h('button', { type: 'submit' }, 'Filter'),
    h('a', { href: '#/devices', class: 'reset' }, 'clear'));

    const sort = p.get('sort') || '';
    const heads = DEVICE_COLUMNS.map((c) => {
      if (!c.metric) return h('th', {}, c.title);
      const desc = sort === '-' + c.metric;
      const asc = sort === c.metric;
      const next = asc ? '-' + c.metric : desc ? '' : c.metric;
      return h('th', { class: 'sortable', 'aria-sort': asc ? 'ascending' : desc ? 'descending' : 'none' },
        h('a', { href: href('devices', { state: p.get('state'), match: p.getAll('match'),
          limit: p.get('limit'), sort: next }), title: `sort by ${c.metric}` },
        c.title, asc ? ' ▲' : desc ? ' ▼' : ''));
    });
    this.tbody = h('tbody');
    this.info = h('span', { class: 'muted' });
    this.pager = h('nav', { class: 'pager' });
    root.append(h('div', { class: 'page-head' }, h('h1', {}, 'Devices'), this.info), form,
      h('div', { class: 'scroll' }, h('table', { class: 'data', id: 'devices-table' },
        h('thead', {}, h('tr', {}, heads)), this.tbody)), this.pager);
  }

  async refresh() {
    const p = this.params;
    const q = {
      match: p.getAll('match'), state: p.get('state'), sort: p.get('sort'),
      limit: p.get('limit') || 100, cursor: p.get('cursor'),
    };
    const body = await api('/api/v1/devices', q);
    const rows = body.devices.map((d) => h('tr', { 'data-device': d.device },
      DEVICE_COLUMNS.map((c) => {
        if (c.metric) return h('td', { class: 'num' }, fmtMetric(c.metric, latest(d, c.metric)));
        return h('td', {}, c.get(d) || '–');
      })));
    setRows(this.tbody, rows, 'no devices match', DEVICE_COLUMNS.length);
    this.info.textContent = `${body.devices.length} shown of ${body.total}`;
    const links = [];
    if (p.get('cursor')) {
      links.push(h('a', { href: href('devices', { state: p.get('state'), match: p.getAll('match'),
        sort: p.get('sort'), limit: p.get('limit') }) }, '⇤ first page'));
    }
    const next = body.next_cursor;
    if (next) {
      links.push(h('a', { href: href('devices', { state: p.get('state'), match: p.getAll('match'),
        sort: p.get('sort'), limit: p.get('limit'), cursor: next }), rel: 'next' }, 'next page →'));
    }
    this.pager.replaceChildren(...links);
  }

  destroy() {}
}

class DevicePage {
  constructor(params, id) {
    this.id = id;
    this.window = WINDOW_S[params.get('window')] ? params.get('window') : '1h';
    this.charts = new Map();
  }

  mount(root) {
    this.stateEl = h('span');
    this.identity = h('dl', { class: 'identity' });
    this.facts = h('dl', { class: 'identity' });
    this.latestBody = h('tbody');
    this.eventsBody = h('tbody');
    this.alertsBody = h('tbody');
    this.chartBox = h('div', { class: 'charts' });
    this.chartNote = h('p', { class: 'muted small' });
    root.append(
      h('div', { class: 'page-head' },
        h('h1', { 'data-device': this.id }, this.id, ' ', this.stateEl),
        windowSelect(this.window, (w) => {
          location.hash = href(`device/${encodeURIComponent(this.id)}`, { window: w });
        })),
      h('div', { class: 'columns' },
        h('section', {}, h('h2', {}, 'Identity'), this.identity),
        h('section', {}, h('h2', {}, 'Telemetry'), this.facts)),
      h('h2', {}, 'Alerts'),
      h('table', { class: 'data', id: 'device-alerts' }, h('thead', {}, h('tr', {},
        ['alert', 'severity', 'state', 'since', 'summary'].map((t) => h('th', {}, t)))),
      this.alertsBody),
      h('h2', {}, 'Series'), this.chartNote, this.chartBox,
      h('div', { class: 'columns' },
        h('section', {}, h('h2', {}, 'Latest values'),
          h('table', { class: 'data', id: 'latest' }, h('thead', {}, h('tr', {},
            h('th', {}, 'series'), h('th', {}, 'value'))), this.latestBody)),
        h('section', {}, h('h2', {}, 'Recent events'),
          h('table', { class: 'data', id: 'device-events' }, h('thead', {}, h('tr', {},
            ['time', 'kind', 'severity', 'message'].map((t) => h('th', {}, t)))),
          this.eventsBody))));
  }

  // Every series of the device over the window, bucketed so no chart has more than ~300 points:
  // gauges averaged, counters (_total) as per-second rates. Grouped by every label but the
  // device's identity, so each series stays its own line (a zone, a core, an outcome).
  async series(from, to) {
    const labels = (await api('/api/v1/labels')).labels
      .filter((l) => l !== 'device' && l !== '__name__' && !IDENTITY_LABELS.includes(l));
    const by = ['__name__', ...labels].slice(0, 16).join(',');
    const step = stepFor(to - from, 300, 10);
    const base = { device: this.id, from, to, step, by };
    const [gauges, counters] = await Promise.all([
      api('/api/v1/series', { ...base, agg: 'avg', match: '__name__!~.*_total' }),
      api('/api/v1/series', { ...base, agg: 'rate', match: '__name__=~.*_total' })]);
    return { step, list: gauges.series.concat(counters.series) };
  }

  async refresh() {
    const to = Math.floor(nowS());
    const from = to - WINDOW_S[this.window];
    const [d, s] = await Promise.all([api(`/api/v1/devices/${encodeURIComponent(this.id)}`),
      this.series(from, to)]);

    this.stateEl.replaceChildren(stateBadge(d.state));
    // The service's named identity fields first (model, version, quantisation, digest, runtime,
    // hardware), then every other pair the device reported (host name, kernel, tags).
    const ident = Object.entries(d.identity || {}).filter(([, v]) => v !== null && v !== '');
    const named = new Set(['hw_class', ...ident.map(([k]) => k)]);
    const rest = Object.entries(d.info || {}).filter(([k]) => !named.has(k)).sort();
    this.identity.replaceChildren(...ident.concat(rest)
      .flatMap(([k, v]) => [h('dt', {}, k), h('dd', {}, String(v))]));
    const facts = [
      ['last seen', `${ago(d.last_seen)} (${timeStr(d.last_seen)})`],
      ['first seen', timeStr(d.first_seen)],
      ['interval', typeof d.interval === 'number' ? fmt(d.interval, 's') : null],
      ['ingest lag', typeof d.ingest_lag === 'number' ? fmt(d.ingest_lag, 's') : null],
      ['batches', num(d.batches)], ['samples', num(d.samples)],
      ['duplicates', num(d.duplicates)], ['dropped samples', num(d.dropped_samples)],
      ['epoch / seq', `${d.epoch} / ${d.last_seq}`],
    ].filter(([, v]) => v !== null);
    this.facts.replaceChildren(...facts.flatMap(([k, v]) => [h('dt', {}, k), h('dd', {}, v)]));

    const metrics = d.metrics || d.latest || {};
    setRows(this.latestBody, Object.entries(metrics).sort().map(([k, v]) => h('tr', {},
      h('td', { class: 'mono' }, withoutIdentity(k)),
      h('td', { class: 'num' }, fmtMetric(k.split('{')[0], v)))), 'no values', 2);

    const events = d.events || [];
    setRows(this.eventsBody, events.slice().reverse().map((e) => h('tr', {},
      h('td', {}, timeStr(e.ts)), h('td', {}, e.kind),
      h('td', {}, h('span', { class: `badge sev-${e.severity}` }, e.severity)),
      h('td', {}, e.message || ''))), 'no events in the last 24 h', 4);

    setRows(this.alertsBody, (d.alerts || []).map(alertRow), 'no alerts for this device', 5);

    // One chart per metric, a line per label set; charts that no longer have series go away.
    const byMetric = new Map();
    for (const x of s.list) {
      const m = x.metric || x.labels.__name__;
      if (!byMetric.has(m)) byMetric.set(m, []);
      byMetric.get(m).push(x);
    }
    for (const [m, c] of this.charts) {
      if (!byMetric.has(m)) {
        c.destroy();
        c.el.remove();
        this.charts.delete(m);
      }
    }
    for (const m of Array.from(byMetric.keys()).sort()) {
      let c = this.charts.get(m);
      const counter = /_total$/.test(m);
      if (!c) {
        c = new Chart(counter ? `${m} (per second)` : m, counter ? '' : unitOf(m), { height: 160 });
        c.el.dataset.metric = m;
        this.charts.set(m, c);
      }
      this.chartBox.append(c.el); // keeps sorted order as metrics come and go
      c.update(byMetric.get(m), (x) => labelsText(x.labels, ['__name__']) || m, [from, to]);
    }
    this.chartNote.textContent = `${byMetric.size} metrics, ${s.list.length} series; ` +
      `${fmt(s.step, 's')} buckets, gauges averaged, counters as rates.`;
  }

  destroy() {
    for (const c of this.charts.values()) c.destroy();
  }
}

// A series key `name{a="1",model="x"}` without the device's identity labels, which every series
// of the device carries and the identity box already shows.
function withoutIdentity(key) {
  const i = key.indexOf('{');
  if (i < 0) return key;
  const pairs = key.slice(i + 1, -1).match(/[a-zA-Z_][a-zA-Z0-9_]*="(?:[^"\\]|\\.)*"/g) || [];
  const kept = pairs.filter((p) => !IDENTITY_LABELS.includes(p.slice(0, p.indexOf('='))));
  return kept.length ? `${key.slice(0, i)}{${kept.join(',')}}` : key.slice(0, i);
}

// pending, firing or resolved: the service's "status" (a string; Alertmanager's own API nests it
// as status.state), else from endsAt as Alertmanager reads a pushed alert.
function alertState(a) {
  if (typeof a.status === 'string') return a.status;
  if (a.status && a.status.state) return a.status.state;
  return a.endsAt && Date.parse(a.endsAt) < Date.now() ? 'resolved' : 'firing';
}

function alertRow(a) {
  const l = a.labels || {};
  const ann = a.annotations || {};
  const state = alertState(a);
  return h('tr', { 'data-alert': l.alertname || '' },
    h('td', {}, a.generatorURL ? h('a', { href: a.generatorURL }, l.alertname || '?') : (l.alertname || '?')),
    h('td', {}, h('span', { class: `badge sev-${l.severity || 'none'}` }, l.severity || '–')),
    h('td', {}, h('span', { class: `badge alert-${state}` }, state)),
    h('td', {}, a.startsAt ? ago(Date.parse(a.startsAt) / 1000) : '–'),
    h('td', {}, ann.summary || ann.description || ''));
}

class ComparePage {
  constructor(params) {
    this.params = params;
    this.chart = null;
  }

  mount(root) {
    const p = this.params;
    const field = (name, placeholder, list) => h('input', { name, value: p.get(name) || '',
      size: name === 'metric' ? 40 : 16,
      placeholder, list, required: name !== 'window', 'aria-label': name });
    this.metricList = h('datalist', { id: 'metric-names' });
    this.byList = h('datalist', { id: 'label-names' });
    this.valueList = h('datalist', { id: 'label-values' });
    const inputs = {
      metric: field('metric', M.tps, 'metric-names'),
      by: field('by', 'model_version', 'label-names'),
      a: field('a', 'v1 (baseline)', 'label-values'),
      b: field('b', 'v2 (candidate)', 'label-values'),
    };
    const win = h('select', { name: 'window', 'aria-label': 'window' },
      // compare reads raw samples: at most a day (docs/api.md).
      WINDOWS.filter((w) => WINDOW_S[w] <= 86400).map((w) => h('option', { value: w,
        selected: (p.get('window') || '1h') === w }, w)));
    inputs.by.addEventListener('change', () => this.loadValues(inputs.by.value));
    const form = h('form', { class: 'filters', onsubmit: (e) => {
      e.preventDefault();
      const q = {};
      for (const [k, el] of Object.entries(inputs)) q[k] = el.value.trim();
      q.window = win.value;
      location.hash = href('compare', q);
    } }, Object.entries(inputs).map(([k, el]) => h('label', { class: 'control' }, `${k} `, el)),
    h('label', { class: 'control' }, 'window ', win), h('button', { type: 'submit' }, 'Compare'),
    this.metricList, this.byList, this.valueList);
    this.result = h('section', { id: 'compare-result' });
    root.append(h('div', { class: 'page-head' }, h('h1', {}, 'Compare cohorts')),
      h('p', { class: 'muted' }, 'Two cohorts of devices, e.g. model_version v1 against v2: ' +
        'per-device means over the window, their medians and p95, and a Mann–Whitney U test.'),
      form, this.result);
    api('/api/v1/labels/__name__/values').then((b) => this.metricList.replaceChildren(
      ...b.values.map((v) => h('option', { value: v })))).catch(() => {});
    api('/api/v1/labels').then((b) => this.byList.replaceChildren(
      ...b.labels.filter((l) => l !== '__name__').map((v) => h('option', { value: v })))).catch(() => {});
    if (p.get('by')) this.loadValues(p.get('by'));
  }

  loadValues(by) {
    if (!/^[a-zA-Z_][a-zA-Z0-9_]*$/.test(by)) return;
    api(`/api/v1/labels/${encodeURIComponent(by)}/values`).then((b) => this.valueList.replaceChildren(
      ...b.values.map((v) => h('option', { value: v })))).catch(() => {});
  }

  async refresh() {
    const p = this.params;
    const q = { metric: p.get('metric'), by: p.get('by'), a: p.get('a'), b: p.get('b'),
      window: p.get('window') || '1h' };
    if (!q.metric || !q.by || !q.a || !q.b) {
      this.result.replaceChildren(h('p', { class: 'muted' },
        'Pick a metric, a label and its two values to compare.'));
      return;
    }
    const to = Math.floor(nowS());
    const w = WINDOW_S[q.window] || 3600;
    const [r, over] = await Promise.all([api('/api/v1/compare', q),
      api('/api/v1/series', { metric: q.metric, from: to - w, to, step: stepFor(w, 120), agg: 'p50',
        by: q.by, match: `${q.by}=~${regexEscape(q.a)}|${regexEscape(q.b)}` })]);
    const ca = r.a || {};
    const cb = r.b || {};
    const unit = unitOf(q.metric);
    const card = (name, c, cls) => h('div', { class: `cohort ${cls}` },
      h('h3', {}, `${q.by} = ${name}`),
      h('dl', {},
        h('dt', {}, 'devices'), h('dd', { 'data-field': 'devices' }, num(c.devices)),
        h('dt', {}, 'median'), h('dd', { 'data-field': 'median' }, fmt(c.median, unit)),
        h('dt', {}, 'p95'), h('dd', { 'data-field': 'p95' }, fmt(c.p95, unit))));
    const rel = r.change;
    const pv = r.p;
    let verdict = 'Not enough devices in one of the cohorts for a test.';
    if (typeof r.summary === 'string') {
      verdict = r.summary;
    } else if (typeof rel === 'number' && typeof pv === 'number') {
      const dir = rel >= 0 ? 'higher' : 'lower';
      const sig = pv < 0.01 ? 'p < 0.01' : `p = ${pv.toPrecision(2)}`;
      verdict = `${q.b}'s median is ${num(Math.abs(rel) * 100, 1)} % ${dir} than ${q.a}'s ` +
        `(${sig}, ${num(cb.devices)} vs ${num(ca.devices)} devices)` +
        (pv < 0.05 ? '.' : ': not significant.');
    }
    if (!this.chart) this.chart = new Chart(`${q.metric} median by ${q.by}`, unit);
    this.result.replaceChildren(
      h('div', { class: 'cohorts' }, card(q.a, ca, 'cohort-a'),
        h('div', { class: 'delta' },
          h('div', { class: 'delta-value', 'data-field': 'relative_change' },
            typeof rel === 'number' ? `${rel >= 0 ? '+' : ''}${num(rel * 100, 1)} %` : '–'),
          h('div', { class: 'muted', 'data-field': 'p_value' },
            typeof pv === 'number' ? `p = ${pv.toPrecision(3)}` : 'p = –')),
        card(q.b, cb, 'cohort-b')),
      h('p', { class: 'verdict' }, verdict), this.chart.el);
    this.chart.update(over.series, (s) => s.labels[q.by] || '(none)', [to - w, to]);
  }

  destroy() {
    if (this.chart) this.chart.destroy();
  }
}

class AlertsPage {
  constructor(params) {
    this.params = params;
  }

  mount(root) {
    const state = this.params.get('state') || '';
    this.body = h('tbody');
    this.info = h('span', { class: 'muted' });
    root.append(h('div', { class: 'page-head' }, h('h1', {}, 'Alerts'), this.info),
      h('nav', { class: 'filters' }, ['', 'firing', 'pending', 'resolved'].map((s) => h('a', {
        href: href('alerts', { state: s }), class: s === state ? 'active' : '' }, s || 'all'))),
      h('div', { class: 'scroll' }, h('table', { class: 'data', id: 'alerts-table' },
        h('thead', {}, h('tr', {}, ['alert', 'severity', 'state', 'since', 'device',
          'summary', 'labels'].map((t) => h('th', {}, t)))), this.body)));
  }

  async refresh() {
    const want = this.params.get('state') || '';
    const body = await api('/api/v1/alerts');
    const list = Array.isArray(body) ? body : body.alerts;
    const shown = list.filter((a) => !want || alertState(a) === want);
    this.info.textContent = `${shown.length} of ${list.length}`;
    setRows(this.body, shown.map((a) => {
      const row = alertRow(a);
      const l = a.labels || {};
      row.insertBefore(h('td', {}, l.device ? deviceLink(l.device) : '–'), row.children[4]);
      row.append(h('td', { class: 'small mono' },
        labelsText(l, ['alertname', 'severity', 'device'])));
      return row;
    }), want ? `no ${want} alerts` : 'no alerts', 7);
  }

  destroy() {}
}

// ---- router and refresh loop ----------------------------------------------------------------

function parseHash() {
  const raw = location.hash.replace(/^#\/?/, '');
  const qi = raw.indexOf('?');
  const path = qi < 0 ? raw : raw.slice(0, qi);
  const params = new URLSearchParams(qi < 0 ? '' : raw.slice(qi + 1));
  const parts = path.split('/').filter(Boolean);
  return { name: parts[0] || 'overview', arg: parts.slice(1).map(decodeURIComponent).join('/'), params };
}

function makePage(route) {
  switch (route.name) {
    case 'overview': return new OverviewPage(route.params);
    case 'devices': return new DevicesPage(route.params);
    case 'device': return route.arg ? new DevicePage(route.params, route.arg) : null;
    case 'compare': return new ComparePage(route.params);
    case 'alerts': return new AlertsPage(route.params);
    default: return null;
  }
}

// gen: bumped by every navigation, so a refresh of a page left behind does not touch the new one.
// loads: refreshes completed; body[data-loaded] carries it, so a script (the browser test) can
// tell that the view it asked for has its data. inFlight / queued: one refresh runs at a time,
// and at most one more waits for it.
const app = { page: null, gen: 0, loads: 0, inFlight: null, queued: null, timer: null };

function setStatus(text, isError) {
  const el = document.getElementById('status');
  el.textContent = text;
  el.classList.toggle('error', !!isError);
}

async function refreshOnce() {
  const page = app.page;
  const gen = app.gen;
  if (!page) return;
  try {
    await page.refresh();
    if (gen === app.gen) {
      setStatus(`updated ${new Date().toLocaleTimeString('en-GB', { hour12: false })}`);
      document.body.dataset.loaded = String(++app.loads);
      delete document.body.dataset.failed;
    }
  } catch (e) {
    if (gen === app.gen) {
      setStatus(e.message, true);
      document.body.dataset.failed = e.message;
    }
    console.error(e);
  }
}

// Refreshes the current view. The promise settles once a refresh that started after the call has
// finished: a call during a refresh queues one more (a slow answer never piles requests up, and
// whoever asked sees data fetched after asking).
function refresh() {
  if (!app.inFlight) {
    app.inFlight = refreshOnce().finally(() => { app.inFlight = null; });
    return app.inFlight;
  }
  if (!app.queued) {
    app.queued = app.inFlight.then(() => {
      app.queued = null;
      return refresh();
    });
  }
  return app.queued;
}

function route() {
  const r = parseHash();
  if (app.page) app.page.destroy();
  app.gen++;
  delete document.body.dataset.loaded;
  delete document.body.dataset.failed;
  const main = document.getElementById('main');
  main.replaceChildren();
  for (const a of document.querySelectorAll('nav a[data-nav]')) {
    a.classList.toggle('active', a.dataset.nav === r.name || (r.name === 'device' && a.dataset.nav === 'devices'));
  }
  app.page = makePage(r);
  if (!app.page) {
    main.append(h('h1', {}, 'Not found'), h('p', {}, 'No such page. ', h('a', { href: '#/' }, 'Overview')));
    return;
  }
  document.title = `fleetpulse · ${r.name === 'device' ? r.arg : r.name}`;
  app.page.mount(main);
  refresh();
}

// For scripts driving the page: refresh the current view now (as the 10 s timer would); the
// promise settles when data fetched after the call is shown.
window.fleetpulse = { refresh };

window.addEventListener('hashchange', route);
document.addEventListener('visibilitychange', () => {
  if (!document.hidden) refresh();
});
// A hidden tab does not poll; the refresh above catches up when it is shown again.
app.timer = setInterval(() => {
  if (!document.hidden) refresh();
}, REFRESH_MS);
route();
