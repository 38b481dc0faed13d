// Drives the dashboard in headless Chromium (playwright-core) against a running query service
// and checks what it shows against the JSON API. Started by test_dashboard.py:
//
//   node dashboard.mjs BASE_URL SCREENSHOT.png CHROMIUM NODE_MODULES
//
// The fleet is fleetpulse-sim's, so every chart has data; the service runs an alert rule that
// fires for one site's devices, so some devices are degraded.
// Exits 0 when every check passed, 1 with the failed check on stderr otherwise.
import { createRequire } from 'node:module';
import path from 'node:path';

const [base, shot, chromiumPath, nodeModules] = process.argv.slice(2);
const require = createRequire(path.join(nodeModules, 'x.js'));
const { chromium } = require('playwright-core');

const STATES = ['ok', 'stale', 'silent', 'degraded'];

class Fail extends Error {}
function check(cond, msg) {
  if (!cond) throw new Fail(msg);
}

async function api(p) {
  const r = await fetch(base + p);
  const body = await r.json();
  check(r.status === 200, `${p}: HTTP ${r.status} ${JSON.stringify(body)}`);
  return body;
}

async function hash(page) {
  return page.evaluate(() => decodeURIComponent(location.hash));
}

// Runs action (a click, a hash change) and waits until the view has its data: app.js counts
// completed refreshes of the current view in body[data-loaded] and drops it on every navigation,
// so a value other than the one before the action is the new view's.
async function nav(page, action) {
  const before = await page.evaluate(() => document.body.dataset.loaded || '');
  await action();
  await page.waitForFunction((g) => (document.body.dataset.loaded && document.body.dataset.loaded !== g) ||
    document.body.dataset.failed, before, { timeout: 30000 });
  const failed = await page.evaluate(() => document.body.dataset.failed);
  check(!failed, `the page failed to load its data: ${failed} (at ${await hash(page)})`);
}

// Compares what the page shows with what the API says. The fleet keeps sending, so values can
// move between two reads (a temperature, a state): a comparison counts only when the API said the
// same before and after a refresh of the page (which fetches after it is asked to), so the page's
// data is the API's; on a steady fleet that is the first try.
async function agree(page, what, fromApi, fromPage, compare) {
  for (let attempt = 0; attempt < 8; attempt++) {
    const before = JSON.stringify(await fromApi());
    await page.evaluate(() => window.fleetpulse.refresh());
    const failed = await page.evaluate(() => document.body.dataset.failed);
    check(!failed, `${what}: the page failed to refresh: ${failed}`);
    const shown = await fromPage();
    const after = JSON.stringify(await fromApi());
    if (before === after) {
      compare(JSON.parse(before), shown);
      return;
    }
  }
  throw new Fail(`${what}: the API's answer changed on every one of 8 reads`);
}

function same(what) {
  return (want, shown) => check(JSON.stringify(shown) === JSON.stringify(want),
    `${what}: page ${JSON.stringify(shown).slice(0, 300)} != API ${JSON.stringify(want).slice(0, 300)}`);
}

async function tiles(page) {
  return page.$$eval('#state-tiles .tile', (els) => Object.fromEntries(
    els.map((e) => [e.dataset.state, Number(e.querySelector('.tile-count').textContent)])));
}

async function apiTiles() {
  const s = await api('/api/v1/fleet/summary');
  return { total: s.devices, ...Object.fromEntries(STATES.map((st) => [st, s.states[st]])) };
}

const rowIds = (page) => page.$$eval('#devices-table tbody tr[data-device]',
  (rs) => rs.map((r) => r.dataset.device));

async function apiIds(q) {
  return (await api(`/api/v1/devices?${q}`)).devices.map((d) => d.device);
}

// Per chart: its points and how many canvas pixels have its first line's colour; the colour
// check proves uPlot drew the data, not just axes and grid.
async function chartInfo(page, selector) {
  return page.$$eval(selector, (els) => els.map((el) => {
    const u = el.uplot;
    const canvas = el.querySelector('canvas');
    let painted = 0;
    if (u && canvas && u.series.length > 1) {
      const m = /^#(..)(..)(..)$/.exec(u.series[1].stroke());
      const want = m.slice(1).map((x) => parseInt(x, 16));
      const img = canvas.getContext('2d').getImageData(0, 0, canvas.width, canvas.height).data;
      for (let i = 0; i < img.length; i += 4) {
        if (img[i + 3] > 128 && Math.abs(img[i] - want[0]) < 40 &&
            Math.abs(img[i + 1] - want[1]) < 40 && Math.abs(img[i + 2] - want[2]) < 40) painted++;
      }
    }
    return { title: el.dataset.title, points: Number(el.dataset.points), painted,
      lines: u ? u.series.length - 1 : 0 };
  }));
}

// The device page of id: heading, state, identity, latest values, alerts and charts as the API has
// them.
async function checkDevicePage(page, id) {
  check(await page.locator(`h1[data-device="${id}"]`).count() === 1, `device page of ${id} has no heading`);
  await agree(page, `device ${id}`, async () => {
    const d = await api(`/api/v1/devices/${encodeURIComponent(id)}`);
    return { state: d.state, model: d.identity.model || undefined, values: Object.keys(d.metrics).length,
      alerts: d.alerts.map((a) => a.labels.alertname) };
  }, () => page.evaluate(() => {
    const dl = Object.fromEntries([...document.querySelectorAll('dl.identity dt')]
      .map((dt) => [dt.textContent, dt.nextElementSibling.textContent]));
    return { state: document.querySelector('h1 [data-state]').dataset.state, model: dl.model,
      values: document.querySelectorAll('#latest tbody tr td.num').length,
      alerts: [...document.querySelectorAll('#device-alerts tbody tr[data-alert]')]
        .map((r) => r.dataset.alert) };
  }), same(`device ${id}`));
  const charts = await chartInfo(page, '.chart');
  const withData = charts.filter((c) => c.points > 0 && c.painted > 0);
  check(withData.length >= 3, `device ${id}: ${withData.length} charts with data: ${JSON.stringify(charts)}`);
  return `${charts.length} charts, ${withData.length} with data`;
}

async function main() {
  const browser = await chromium.launch({ executablePath: chromiumPath });
  const errors = [];
  try {
    const page = await browser.newPage({ viewport: { width: 1400, height: 1000 } });
    page.on('pageerror', (e) => errors.push(`page error: ${e.message}`));
    page.on('console', (m) => {
      if (m.type() === 'error') errors.push(`console: ${m.text()}`);
    });

    // 1. Overview: tiles, the per-model table and the four charts.
    await nav(page, () => page.goto(`${base}/#/`));
    await agree(page, 'state tiles', apiTiles, () => tiles(page), (want, shown) => {
      same('state tiles')(want, shown);
      check(shown.degraded > 0 && shown.ok > 0, `expected ok and degraded devices: ${JSON.stringify(shown)}`);
      console.log(`tiles match the API: ${JSON.stringify(shown)}`);
    });
    await agree(page, 'model table', async () => (await api('/api/v1/fleet/summary'))
      .groups.model.map((g) => [g.value || '(none)', g.devices]),
    () => page.$$eval('#model-table[data-group="model"] tbody tr', (rs) => rs
      .filter((r) => r.cells.length > 2)
      .map((r) => [r.cells[0].textContent, Number(r.cells[1].textContent.replace(/,/g, ''))])),
    same('model table'));
    const charts = await chartInfo(page, '.chart');
    check(charts.length === 4, `overview has ${charts.length} charts`);
    for (const c of charts) {
      check(c.points > 0 && c.lines > 0, `chart "${c.title}" has no data: ${JSON.stringify(c)}`);
      check(c.painted > 0, `chart "${c.title}" drew none of its line: ${JSON.stringify(c)}`);
    }
    console.log(`overview charts: ${JSON.stringify(charts)}`);
    await page.screenshot({ path: shot, fullPage: true });

    // 2. The degraded tile lists the degraded devices; the first one's page shows its alert.
    await nav(page, () => page.click('#state-tiles .tile[data-state="degraded"]'));
    check((await hash(page)).includes('state=degraded'), `degraded tile led to ${await hash(page)}`);
    await agree(page, 'degraded devices', () => apiIds('state=degraded&limit=100'), () => rowIds(page),
      same('degraded devices'));
    const hot = page.locator('#devices-table tbody a.device-link').first();
    const hotId = await hot.textContent();
    await nav(page, () => hot.click());
    check(await hash(page) === `#/device/${hotId}`, `clicking ${hotId} opened ${await hash(page)}`);
    console.log(`degraded device ${hotId}: ${await checkDevicePage(page, hotId)}`);
    check(await page.locator('#device-alerts tbody tr[data-alert="BrowserTestSiteHot"]').count() === 1,
      `device ${hotId} does not show its firing alert`);
    await page.screenshot({ path: shot.replace(/\.png$/, '-device.png'), fullPage: true });

    // 3. Devices table: the API's first page in its order; a column click sorts; pages by cursor.
    await nav(page, () => page.click('nav a[data-nav="devices"]'));
    await agree(page, 'devices table', () => apiIds('limit=100'), () => rowIds(page), same('devices'));
    const sortLink = '#devices-table th a[title="sort by temperature_celsius"]';
    await nav(page, () => page.click(sortLink));
    check((await hash(page)).includes('sort=temperature_celsius'), 'first click does not sort ascending');
    await nav(page, () => page.click(sortLink));
    check((await hash(page)).includes('sort=-temperature_celsius'), 'second click does not sort descending');
    await agree(page, 'sorted table', () => apiIds('limit=100&sort=-temperature_celsius'),
      () => rowIds(page), same('sorted by -temperature_celsius'));
    // 50 a page through the form (the sort stays), then the next page by its link.
    await page.selectOption('select[name="limit"]', '50');
    await nav(page, () => page.click('form.filters button[type="submit"]'));
    check((await hash(page)).includes('limit=50'), 'limit not in the URL');
    const q50 = 'limit=50&sort=-temperature_celsius';
    await agree(page, 'page 1 of 50', () => apiIds(q50), () => rowIds(page), same('page 1'));
    await nav(page, () => page.click('nav.pager a[rel="next"]'));
    await agree(page, 'page 2 of 50', async () => {
      const first = await api(`/api/v1/devices?${q50}`);
      return apiIds(`${q50}&cursor=${encodeURIComponent(first.next_cursor)}`);
    }, () => rowIds(page), same('page 2'));
    console.log('devices table, sorting and paging match the API');

    // A device opens from the table.
    const first = page.locator('#devices-table tbody a.device-link').first();
    const id = await first.textContent();
    await nav(page, () => first.click());
    check(await hash(page) === `#/device/${id}`, `clicking ${id} opened ${await hash(page)}`);
    console.log(`device ${id}: ${await checkDevicePage(page, id)}`);

    // 4. Compare: two cohorts of the model_version label, as the API computes them.
    const versions = (await api('/api/v1/labels/model_version/values')).values;
    check(versions.length >= 2, `the simulator reports model versions ${JSON.stringify(versions)}`);
    const cq = `metric=llamacpp_generation_tokens_per_second&by=model_version&a=${versions[0]}` +
      `&b=${versions[1]}&window=15m`;
    await nav(page, () => page.click('nav a[data-nav="compare"]'));
    await page.fill('input[name="metric"]', 'llamacpp_generation_tokens_per_second');
    await page.fill('input[name="by"]', 'model_version');
    await page.fill('input[name="a"]', versions[0]);
    await page.fill('input[name="b"]', versions[1]);
    await page.selectOption('select[name="window"]', '15m');
    await nav(page, () => page.click('form.filters button[type="submit"]'));
    await agree(page, 'compare', async () => {
      const r = await api(`/api/v1/compare?${cq}`);
      return [r.a.devices, r.b.devices, r.summary];
    }, () => page.evaluate(() => [
      Number(document.querySelector('.cohort-a [data-field="devices"]').textContent),
      Number(document.querySelector('.cohort-b [data-field="devices"]').textContent),
      document.querySelector('.verdict').textContent]), same('compare'));
    const cc = await chartInfo(page, '#compare-result .chart');
    check(cc.length === 1 && cc[0].points > 0 && cc[0].painted > 0,
      `compare chart has no data: ${JSON.stringify(cc)}`);
    console.log(`compare ${versions[0]} vs ${versions[1]} matches the API`);
    await page.screenshot({ path: shot.replace(/\.png$/, '-compare.png'), fullPage: true });

    // 5. Alerts: one row per alert of the API, in its order; the firing filter keeps them all.
    const alertNames = async () => {
      const b = await api('/api/v1/alerts');
      return (Array.isArray(b) ? b : b.alerts).map((a) => [a.labels.alertname, a.labels.device]);
    };
    const alertRows = () => page.$$eval('#alerts-table tbody tr[data-alert]',
      (rs) => rs.map((r) => [r.dataset.alert, r.cells[4].textContent]));
    await nav(page, () => page.click('nav a[data-nav="alerts"]'));
    await agree(page, 'alerts', alertNames, alertRows, (want, shown) => {
      check(want.length > 0, 'no alerts from the API');
      same('alerts')(want, shown);
    });
    await nav(page, () => page.click('a[href="#/alerts?state=firing"]'));
    await agree(page, 'firing alerts', alertNames, alertRows, same('firing alerts'));
    console.log('alerts table matches the API');

    check(errors.length === 0, `errors in the page:\n${errors.join('\n')}`);
  } finally {
    await browser.close();
  }
}

main().then(() => {
  console.log(`screenshot: ${shot}`);
}).catch((e) => {
  console.error(e instanceof Fail ? `FAIL: ${e.message}` : e);
  process.exit(1);
});
