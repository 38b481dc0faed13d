// Drives the dashboard in headless Chromium (playwright-core) against a running query service
// and checks what it shows against the JSON API. Started by test_dashboard.py:
//
//   node dashboard.mjs BASE_URL SCREENSHOT.png SOURCE CHROMIUM NODE_MODULES
//
// SOURCE is "sim" (the fleet simulator: every chart has data) or "probes" (fixture probes: no
// inference metrics, so only the temperature and memory-pressure charts must have data).
// Exits 0 when every check passed, 1 with the failed check on stderr otherwise.
import { createRequire } from 'node:module';
import path from 'node:path';

const [base, shot, source, chromiumPath, nodeModules] = process.argv.slice(2);
const require = createRequire(path.join(nodeModules, 'x.js'));
const { chromium } = require('playwright-core');

class Fail extends Error {}
function check(cond, msg) {
  if (!cond) throw new Fail(msg);
}

async function getJSON(p) {
  const r = await fetch(base + p);
  const body = await r.json();
  return { status: r.status, body };
}

// The state counts the API reports: fleet/summary when the service has it, else the devices list
// (then the page computes states itself, and only the total is comparable).
async function apiCounts() {
  const s = await getJSON('/api/v1/fleet/summary');
  if (s.status === 200) {
    const st = s.body.states || s.body.counts || s.body.by_state;
    check(st && typeof st === 'object', `fleet/summary has no state counts: ${JSON.stringify(s.body).slice(0, 300)}`);
    const total = typeof s.body.devices === 'number' ? s.body.devices
      : ['ok', 'stale', 'silent', 'degraded'].reduce((a, k) => a + (st[k] || 0), 0);
    return { exact: true, total, ok: st.ok || 0, stale: st.stale || 0, silent: st.silent || 0,
      degraded: st.degraded || 0 };
  }
  const d = await getJSON('/api/v1/devices');
  check(d.status === 200, `devices: HTTP ${d.status}`);
  return { exact: false, total: d.body.devices.length };
}

// Runs action (a click, a hash change) and waits until the view it leads to has finished a
// refresh: app.js sets body[data-loaded] to the view's generation, which every navigation bumps,
// so a value other than the one before the action is the new view's.
async function nav(page, action) {
  const before = await page.evaluate(() => document.body.dataset.loaded || '');
  await action();
  await page.waitForFunction((g) => (document.body.dataset.loaded && document.body.dataset.loaded !== g) ||
    document.body.dataset.failed, before, { timeout: 30000 });
  const failed = await page.evaluate(() => document.body.dataset.failed);
  check(!failed, `the page failed to load its data: ${failed} (at ${await page.evaluate(() => location.hash)})`);
}

async function tiles(page) {
  return page.$$eval('#state-tiles .tile', (els) => Object.fromEntries(
    els.map((e) => [e.dataset.state, Number(e.querySelector('.tile-count').textContent)])));
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

async function main() {
  const browser = await chromium.launch({ executablePath: chromiumPath });
  const errors = [];
  try {
    const page = await browser.newPage({ viewport: { width: 1400, height: 1000 } });
    page.on('pageerror', (e) => errors.push(`page error: ${e.message}`));
    page.on('console', (m) => {
      // An endpoint this service lacks (a 404 the page falls back from) is logged by Chromium
      // as a failed resource; anything else the page logs as an error is a failure.
      if (m.type() === 'error' && !/^Failed to load resource/.test(m.text())) {
        errors.push(`console: ${m.text()}`);
      }
    });

    // 1. Overview: the tiles show what the API says. States can move between two reads (a device
    // turning stale), so a comparison counts only when the API said the same before and after
    // the page's refresh; that happens at once on a steady fleet.
    await nav(page, () => page.goto(`${base}/#/`));
    let compared = false;
    for (let attempt = 0; attempt < 5 && !compared; attempt++) {
      const before = await apiCounts();
      await nav(page, () => page.evaluate((n) => { window.location.hash = `#/?r=${n}`; }, attempt));
      const shown = await tiles(page);
      const after = await apiCounts();
      if (JSON.stringify(before) !== JSON.stringify(after)) continue;
      compared = true;
      check(shown.total === before.total, `total tile ${shown.total}, API ${before.total}`);
      if (before.exact) {
        for (const s of ['ok', 'stale', 'silent', 'degraded']) {
          check(shown[s] === before[s], `${s} tile ${shown[s]}, API ${before[s]}`);
        }
      }
      console.log(`tiles match the API: ${JSON.stringify(shown)}`);
    }
    check(compared, 'the API\'s state counts changed on every one of 5 reads');
    check((await page.locator('#model-table tbody tr').count()) >= 1, 'no rows in the model table');

    // 2. Charts have data and drew it.
    await page.waitForFunction(() => document.querySelectorAll('.chart').length === 4);
    const charts = await chartInfo(page, '.chart');
    const mustHave = source === 'sim' ? charts.map((c) => c.title)
      : charts.filter((c) => /temperature|pressure/i.test(c.title)).map((c) => c.title);
    check(mustHave.length >= 2, `expected charts missing: ${JSON.stringify(charts)}`);
    for (const c of charts) {
      if (!mustHave.includes(c.title)) continue;
      check(c.points > 0 && c.lines > 0, `chart "${c.title}" has no data: ${JSON.stringify(c)}`);
      check(c.painted > 0, `chart "${c.title}" drew none of its line: ${JSON.stringify(c)}`);
    }
    console.log(`overview charts: ${JSON.stringify(charts)}`);
    await page.screenshot({ path: shot, fullPage: true });

    // 3. Devices table: the API's first page in the API's order.
    await nav(page, () => page.click('nav a[data-nav="devices"]'));
    const api = await getJSON('/api/v1/devices?limit=100');
    const apiIds = (api.status === 200 ? api.body.devices
      : (await getJSON('/api/v1/devices')).body.devices.slice(0, 100)).map((d) => d.device);
    const rowIds = await page.$$eval('#devices-table tbody tr[data-device]', (rs) => rs.map((r) => r.dataset.device));
    check(JSON.stringify(rowIds) === JSON.stringify(apiIds),
      `devices table ${JSON.stringify(rowIds.slice(0, 5))}... != API ${JSON.stringify(apiIds.slice(0, 5))}...`);

    // Sorting by a column is a link that puts sort= in the URL, and the rows follow the API.
    const sorted = await getJSON('/api/v1/devices?limit=100&sort=-temperature_celsius');
    if (sorted.status === 200) {
      const sortLink = '#devices-table th a[title="sort by temperature_celsius"]';
      await nav(page, () => page.click(sortLink));
      check((await page.evaluate(() => location.hash)).includes('sort=temperature_celsius'),
        'first click on the temperature column does not sort ascending');
      await nav(page, () => page.click(sortLink));
      check((await page.evaluate(() => location.hash)).includes('sort=-temperature_celsius'),
        'second click on the temperature column does not sort descending');
      const ids = await page.$$eval('#devices-table tbody tr[data-device]', (rs) => rs.map((r) => r.dataset.device));
      const want = sorted.body.devices.map((d) => d.device);
      check(JSON.stringify(ids) === JSON.stringify(want), `sorted table ${ids.slice(0, 5)} != API ${want.slice(0, 5)}`);
    } else {
      console.log(`sort not checked: the API answers sort= with ${sorted.status}`);
    }

    // 4. A device opens from the table, with its identity, values and charts.
    const first = page.locator('#devices-table tbody a.device-link').first();
    const id = await first.textContent();
    await nav(page, () => first.click());
    check(await page.evaluate((d) => decodeURIComponent(location.hash) === `#/device/${d}`, id),
      `clicking ${id} did not open #/device/${id}`);
    check(await page.locator(`h1[data-device="${id}"]`).count() === 1, `device page of ${id} has no heading`);
    check(await page.locator('#latest tbody tr td.num').count() >= 1, `device ${id}: no latest values`);
    const dcharts = await chartInfo(page, '.chart');
    const withData = dcharts.filter((c) => c.points > 0 && c.painted > 0);
    check(withData.length >= 3, `device ${id}: ${withData.length} charts with data: ${JSON.stringify(dcharts)}`);
    console.log(`device ${id}: ${dcharts.length} charts, ${withData.length} with data`);
    await page.screenshot({ path: shot.replace(/\.png$/, '-device.png'), fullPage: true });

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
