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

// Runs action (a click, a hash change, a refresh) and waits until the view has finished loading
// its data afterwards: app.js counts completed refreshes of the current view in body[data-loaded]
// and drops it on every navigation, so a value other than the one before the action is new.
async function nav(page, action) {
  const before = await page.evaluate(() => document.body.dataset.loaded || '');
  await action();
  await page.waitForFunction((g) => (document.body.dataset.loaded && document.body.dataset.loaded !== g) ||
    document.body.dataset.failed, before, { timeout: 30000 });
  const failed = await page.evaluate(() => document.body.dataset.failed);
  check(!failed, `the page failed to load its data: ${failed} (at ${await page.evaluate(() => location.hash)})`);
}

// Compares what the page shows with what the API says. The fleet keeps sending, so values can
// move between two reads (a device's temperature, a state): a comparison counts only when the API
// said the same before and after the page's refresh, which on a steady fleet is at once.
async function agree(page, what, fromApi, fromPage, compare) {
  for (let attempt = 0; attempt < 8; attempt++) {
    const before = JSON.stringify(await fromApi());
    await nav(page, () => page.evaluate(() => window.fleetpulse.refresh()));
    const shown = await fromPage();
    const after = JSON.stringify(await fromApi());
    if (before === after) {
      compare(JSON.parse(before), shown);
      return;
    }
  }
  throw new Fail(`${what}: the API's answer changed on every one of 8 reads`);
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

    // 1. Overview: the tiles show what the API says.
    await nav(page, () => page.goto(`${base}/#/`));
    await agree(page, 'state tiles', apiCounts, () => tiles(page), (want, shown) => {
      check(shown.total === want.total, `total tile ${shown.total}, API ${want.total}`);
      if (want.exact) {
        for (const s of ['ok', 'stale', 'silent', 'degraded']) {
          check(shown[s] === want[s], `${s} tile ${shown[s]}, API ${want[s]}`);
        }
      }
      console.log(`tiles match the API: ${JSON.stringify(shown)}`);
    });
    const summary = await getJSON('/api/v1/fleet/summary');
    if (summary.status === 200) {
      // The per-model table: one row per model of the summary, with its device count.
      const modelRows = () => page.$$eval('#model-table[data-group="model"] tbody tr', (rs) => rs
        .filter((r) => r.cells.length > 2)
        .map((r) => [r.cells[0].textContent, Number(r.cells[1].textContent.replace(/,/g, ''))]));
      await agree(page, 'model table', async () => (await getJSON('/api/v1/fleet/summary'))
        .body.groups.model.map((g) => [g.value || '(none)', g.devices]), modelRows, (want, shown) => {
        check(want.length >= 1, 'the summary has no models');
        check(JSON.stringify(shown) === JSON.stringify(want),
          `model table ${JSON.stringify(shown)} != API ${JSON.stringify(want)}`);
      });
    }

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
    const rowIds = () => page.$$eval('#devices-table tbody tr[data-device]',
      (rs) => rs.map((r) => r.dataset.device));
    const apiIds = async (q) => {
      const r = await getJSON(`/api/v1/devices?${q}`);
      check(r.status === 200, `/api/v1/devices?${q}: HTTP ${r.status}`);
      return r.body.devices.map((d) => d.device);
    };
    const sameIds = (what) => (want, shown) => check(JSON.stringify(shown) === JSON.stringify(want),
      `${what}: table ${JSON.stringify(shown.slice(0, 5))}... != API ${JSON.stringify(want.slice(0, 5))}...`);
    await nav(page, () => page.click('nav a[data-nav="devices"]'));
    const listed = await getJSON('/api/v1/devices?limit=100');
    const paged = listed.status === 200; // a service with filters, sorting and pages
    if (paged) {
      await agree(page, 'devices table', () => apiIds('limit=100'), rowIds, sameIds('devices'));

      // Sorting by a column is a link that puts sort= in the URL; the rows follow the API.
      const sortLink = '#devices-table th a[title="sort by temperature_celsius"]';
      await nav(page, () => page.click(sortLink));
      check((await page.evaluate(() => location.hash)).includes('sort=temperature_celsius'),
        'first click on the temperature column does not sort ascending');
      await nav(page, () => page.click(sortLink));
      check((await page.evaluate(() => location.hash)).includes('sort=-temperature_celsius'),
        'second click on the temperature column does not sort descending');
      await agree(page, 'sorted table', () => apiIds('limit=100&sort=-temperature_celsius'), rowIds,
        sameIds('sorted by -temperature_celsius'));

      // 50 a page through the form (the sort stays), then the next page by its link: the API's
      // cursor order.
      await page.selectOption('select[name="limit"]', '50');
      await nav(page, () => page.click('form.filters button[type="submit"]'));
      check((await page.evaluate(() => location.hash)).includes('limit=50'), 'limit not in the URL');
      const q50 = 'limit=50&sort=-temperature_celsius';
      await agree(page, 'page 1 of 50', () => apiIds(q50), rowIds, sameIds('page 1'));
      await nav(page, () => page.click('nav.pager a[rel="next"]'));
      await agree(page, 'page 2 of 50', async () => {
        const first = await getJSON(`/api/v1/devices?${q50}`);
        return apiIds(`${q50}&cursor=${encodeURIComponent(first.body.next_cursor)}`);
      }, rowIds, sameIds('page 2'));
      console.log('devices table, sorting and paging match the API');
    } else {
      // A service without the devices parameters lists everything; the page shows the first 100.
      const all = (await getJSON('/api/v1/devices')).body.devices.slice(0, 100).map((d) => d.device);
      sameIds('devices')(all, await rowIds());
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

    // 5. Compare: two cohorts of the model_version label, as the API computes them.
    const versions = (await getJSON('/api/v1/labels/model_version/values')).body.values || [];
    const cq = `metric=llamacpp_generation_tokens_per_second&by=model_version&a=${versions[0]}` +
      `&b=${versions[1]}&window=15m`;
    if (versions.length >= 2 && (await getJSON(`/api/v1/compare?${cq}`)).status === 200) {
      await nav(page, () => page.click('nav a[data-nav="compare"]'));
      await page.fill('input[name="metric"]', 'llamacpp_generation_tokens_per_second');
      await page.fill('input[name="by"]', 'model_version');
      await page.fill('input[name="a"]', versions[0]);
      await page.fill('input[name="b"]', versions[1]);
      await page.selectOption('select[name="window"]', '15m');
      await nav(page, () => page.click('form.filters button[type="submit"]'));
      await agree(page, 'compare', async () => {
        const r = (await getJSON(`/api/v1/compare?${cq}`)).body;
        return [r.a.devices, r.b.devices, r.summary];
      }, () => page.evaluate(() => [
        Number(document.querySelector('.cohort-a [data-field="devices"]').textContent),
        Number(document.querySelector('.cohort-b [data-field="devices"]').textContent),
        document.querySelector('.verdict').textContent]), (want, shown) => {
        check(JSON.stringify(shown) === JSON.stringify(want),
          `compare shows ${JSON.stringify(shown)}, API ${JSON.stringify(want)}`);
      });
      const cc = await chartInfo(page, '#compare-result .chart');
      check(cc.length === 1 && cc[0].points > 0 && cc[0].painted > 0,
        `compare chart has no data: ${JSON.stringify(cc)}`);
      console.log(`compare ${versions[0]} vs ${versions[1]} matches the API`);
      await page.screenshot({ path: shot.replace(/\.png$/, '-compare.png'), fullPage: true });
    } else {
      console.log('compare not checked: no /api/v1/compare or fewer than 2 model versions');
    }

    // 6. Alerts: one row per alert the API lists (none without rules).
    const alerts = await getJSON('/api/v1/alerts');
    if (alerts.status === 200) {
      await nav(page, () => page.click('nav a[data-nav="alerts"]'));
      await agree(page, 'alerts', async () => {
        const b = (await getJSON('/api/v1/alerts')).body;
        return (Array.isArray(b) ? b : b.alerts).map((a) => a.labels.alertname);
      }, () => page.$$eval('#alerts-table tbody tr[data-alert]', (rs) => rs.map((r) => r.dataset.alert)),
      (want, shown) => check(JSON.stringify(shown) === JSON.stringify(want),
        `alerts table ${JSON.stringify(shown)} != API ${JSON.stringify(want)}`));
      console.log('alerts table matches the API');
    } else {
      console.log(`alerts not checked: /api/v1/alerts answers ${alerts.status}`);
    }

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
