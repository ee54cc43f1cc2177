// Drives the admin status page (src/admin/status.html) in headless Debian Chromium.
//
// Run through scripts/browser-check.sh, which starts Headroom and the simulator. Environment:
//   ADMIN_URL         admin listener, e.g. http://127.0.0.1:9090 (required)
//   ADMIN_TOKEN       the token Headroom was started with (default: test-token)
//   EXPECT_UPSTREAMS  comma-separated upstream names the table must show (default: any two or more)
//   SCREENSHOT        where to save the picture (default: artifacts/status-page.png)
// Prints one line per check and closes with "N passed, M failed"; exits non-zero on a failure.
import { mkdirSync, statSync } from 'node:fs';
import { dirname } from 'node:path';
import { chromium } from 'playwright-core';

const ADMIN_URL = (process.env.ADMIN_URL || '').replace(/\/+$/, '');
const TOKEN = process.env.ADMIN_TOKEN || 'test-token';
const EXPECT = (process.env.EXPECT_UPSTREAMS || '').split(',').map((s) => s.trim()).filter(Boolean);
const SCREENSHOT = process.env.SCREENSHOT || 'artifacts/status-page.png';
const WAIT_MS = 10_000;

let passed = 0;
let failed = 0;
let skipped = 0;

class Skip extends Error {}

async function check(name, fn) {
  try {
    await fn();
    passed += 1;
    console.log(`ok ${passed + skipped} - ${name}`);
  } catch (e) {
    if (e instanceof Skip) {
      skipped += 1;
      console.log(`ok ${passed + skipped} - ${name} # SKIP ${e.message}`);
      return;
    }
    failed += 1;
    const msg = String(e.message || e).replace(/\x1b\[[0-9;]*m/g, '').trim();
    console.log(`not ok ${passed + skipped + failed} - ${name}\n  ${msg.split('\n').join('\n  ')}`);
    throw e;
  }
}

function exact(text) {
  return new RegExp(`^\\s*${text.replace(/[.*+?^${}()|[\]\\]/g, '\\$&')}\\s*$`);
}

// Waits (bounded) until the locator's text matches `want` (a string for an exact match or a
// RegExp); fails with what the page showed instead.
async function expectText(locator, want, what) {
  const re = typeof want === 'string' ? exact(want) : want;
  try {
    await locator.filter({ hasText: re }).first().waitFor({ state: 'visible', timeout: WAIT_MS });
  } catch {
    const seen = await locator.first().textContent({ timeout: 1000 }).catch(() => '<element missing>');
    throw new Error(`${what}: expected ${re} within ${WAIT_MS / 1000} s, page shows ${JSON.stringify(seen)}`);
  }
}

function assert(cond, msg) {
  if (!cond) throw new Error(msg);
}

async function main() {
  if (!ADMIN_URL) throw new Error('ADMIN_URL is not set (scripts/browser-check.sh sets it)');
  const origin = new URL(ADMIN_URL).origin;

  const browser = await chromium.launch({
    executablePath: process.env.CHROMIUM || '/usr/bin/chromium',
    args: ['--headless', '--no-sandbox', '--disable-gpu', '--disable-quic', '--no-first-run',
      '--disable-background-networking', '--disable-component-update', '--disable-sync'],
    timeout: 30_000,
  });
  const context = await browser.newContext({ viewport: { width: 1100, height: 420 } });
  const page = await context.newPage();
  page.setDefaultTimeout(WAIT_MS);
  const foreign = [];
  const jsErrors = [];
  page.on('request', (r) => {
    const u = r.url();
    if (!u.startsWith(origin + '/') && !u.startsWith('data:')) foreign.push(u);
  });
  page.on('pageerror', (e) => jsErrors.push(String(e)));
  page.on('console', (m) => { if (m.type() === 'error' && !/^Failed to load resource/.test(m.text())) jsErrors.push(m.text()); });

  const status = page.locator('#status');
  const rows = page.locator('#upstreams tr[data-upstream]');
  const rowOf = (name) => page.locator(`#upstreams tr[data-upstream="${name}"]`);
  let names = [];

  try {
    await check('admin listener answers /healthz', async () => {
      const deadline = Date.now() + WAIT_MS;
      let last = '';
      while (Date.now() < deadline) {
        try {
          const res = await fetch(`${ADMIN_URL}/healthz`);
          if (res.ok) return;
          last = `HTTP ${res.status}`;
        } catch (e) {
          last = e.cause?.code || e.message;
        }
        await new Promise((r) => setTimeout(r, 100));
      }
      throw new Error(`${ADMIN_URL}/healthz did not answer 200 within ${WAIT_MS / 1000} s (${last})`);
    });

    await check('GET / serves the status page', async () => {
      const pre = await fetch(`${ADMIN_URL}/`);
      assert(pre.ok, `GET ${ADMIN_URL}/ answered ${pre.status} (is status.html served at / on the admin listener?)`);
      const ctype = pre.headers.get('content-type') || '';
      assert(/^text\/html/.test(ctype), `GET / has content-type "${ctype}", expected text/html`);
      await page.goto(`${ADMIN_URL}/`);
      await page.locator('#token').waitFor();
      await page.locator('#save-token').waitFor();
      await page.locator('table#upstreams').waitFor();
    });

    await check('without a token the page asks for one', async () => {
      await expectText(status, /token/i, '#status');
    });

    await check('a wrong token shows "wrong token"', async () => {
      await page.fill('#token', 'not-the-token');
      await page.click('#save-token');
      await expectText(status, /wrong token/i, '#status');
      assert((await rows.count()) === 0, 'rows shown for a wrong token');
    });

    await check('the right token lists the upstreams, every breaker closed', async () => {
      await page.fill('#token', TOKEN);
      await page.click('#save-token');
      await rows.first().waitFor();
      if (EXPECT.length) {
        await page.waitForFunction(
          (n) => document.querySelectorAll('#upstreams tr[data-upstream]').length === n, EXPECT.length,
          { timeout: WAIT_MS }).catch(() => {});
      }
      names = await rows.evaluateAll((trs) => trs.map((tr) => tr.getAttribute('data-upstream')));
      if (EXPECT.length) {
        assert(JSON.stringify([...names].sort()) === JSON.stringify([...EXPECT].sort()),
          `table shows ${JSON.stringify(names)}, expected ${JSON.stringify(EXPECT)}`);
      } else {
        assert(names.length >= 2, `table shows ${JSON.stringify(names)}, expected two upstreams or more`);
      }
      for (const n of names) await expectText(rowOf(n).locator('.breaker-state'), 'closed', `${n} breaker`);
      assert(!/wrong token/i.test(await status.textContent()), 'status still says wrong token');
    });

    await check('quota, queue depth and in-flight cells show numbers or "unknown"', async () => {
      for (const n of names) {
        const r = rowOf(n);
        await expectText(r.locator('.quota-text'), /^\s*(\d+|unknown) \/ (\d+|unknown)\s*$/, `${n} quota`);
        await expectText(r.locator('.quota-source'), /^\s*source: \S+/, `${n} source`);
        await expectText(r.locator('.reset-in'), /^\s*(resets in \d|reset: unknown)/, `${n} reset`);
        const store = process.env.EXPECT_STORE ? new RegExp(`^\\s*store: ${process.env.EXPECT_STORE}\\s*$`) : /^\s*store: (local|redis|degraded)\s*$/;
        await expectText(r.locator('.store'), store, `${n} store`);
        await expectText(r.locator('.queue-depth'), /^\s*(\d+|unknown)\s*$/, `${n} queue depth`);
        await expectText(r.locator('.in-flight'), /^\s*(\d+|unknown)\s*$/, `${n} in flight`);
      }
    });

    await check('the reset countdown ticks between refreshes', async () => {
      const counting = page.locator('#upstreams .reset-in', { hasText: /resets in \d/ });
      if ((await counting.count()) === 0) throw new Skip('no upstream has a known reset time');
      // Stop the refreshes; what changes now is the page's own countdown.
      await page.route('**/admin/upstreams', (route) => route.abort());
      const cell = counting.first();
      const before = (await cell.textContent()).trim();
      try {
        await page.waitForFunction(
          ([el, t]) => el.textContent.trim() !== t, [await cell.elementHandle(), before], { timeout: 3000 });
      } catch {
        throw new Error(`countdown stayed at "${before}" for 3 s with refreshes stopped`);
      } finally {
        await page.unroute('**/admin/upstreams');
      }
      await page.locator('#upstreams:not(.stale)').waitFor({ timeout: WAIT_MS });
    });

    await check('the token is in sessionStorage, not in the URL, and survives a reload', async () => {
      assert(!page.url().includes(TOKEN), `URL contains the token: ${page.url()}`);
      const stored = await page.evaluate(() => Object.values(sessionStorage));
      assert(stored.includes(TOKEN), 'token not found in sessionStorage');
      const local = await page.evaluate(() => Object.values(localStorage));
      assert(!local.includes(TOKEN), 'token leaked into localStorage');
      await page.reload();
      await expectText(rowOf(names[0]).locator('.breaker-state'), 'closed', `${names[0]} breaker after reload`);
    });

    const target = names[0];
    const other = names[1];

    await check(`Trip forces the ${target} breaker open`, async () => {
      await rowOf(target).locator('button.trip').click();
      await expectText(rowOf(target).locator('.breaker-state'), 'forced_open', `${target} breaker`);
      await expectText(rowOf(other).locator('.breaker-state'), 'closed', `${other} breaker (not tripped)`);
    });

    await check(`Reset closes the ${target} breaker again`, async () => {
      await rowOf(target).locator('button.reset').click();
      await expectText(rowOf(target).locator('.breaker-state'), 'closed', `${target} breaker`);
    });

    await check(`screenshot saved to ${SCREENSHOT}`, async () => {
      mkdirSync(dirname(SCREENSHOT), { recursive: true });
      await page.screenshot({ path: SCREENSHOT, fullPage: true });
      assert(statSync(SCREENSHOT).size > 1000, 'screenshot is empty');
    });

    await check('no request left the admin origin and no JavaScript error', async () => {
      assert(foreign.length === 0, `requests to other origins: ${foreign.join(', ')}`);
      assert(jsErrors.length === 0, `JavaScript errors: ${jsErrors.join(' | ')}`);
    });
  } catch (e) {
    const shot = SCREENSHOT.replace(/\.png$/, '') + '-failure.png';
    mkdirSync(dirname(shot), { recursive: true });
    await page.screenshot({ path: shot, fullPage: true }).then(
      () => console.log(`  page at the failure: ${shot}`), () => {});
    const st = await status.textContent({ timeout: 1000 }).catch(() => null);
    if (st !== null) console.log(`  #status: ${JSON.stringify(st)}`);
    if (jsErrors.length) console.log(`  JavaScript errors: ${jsErrors.join(' | ')}`);
  } finally {
    await browser.close();
  }
}

try {
  await main();
} catch (e) {
  if (passed + failed === 0) {
    failed += 1;
    console.log(`not ok 1 - browser check could not run\n  ${e.message || e}`);
  }
}
console.log(`${passed} passed, ${failed} failed${skipped ? `, ${skipped} skipped` : ''}`);
process.exit(failed ? 1 : 0);
