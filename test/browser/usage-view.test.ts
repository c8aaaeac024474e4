/**
 * The playground's Usage view in headless Chromium: spend per day as an SVG chart and a table per key
 * and model, read from the reports with the key typed into the page; a key sees only its own rows.
 */
import assert from 'node:assert/strict';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, afterEach, before, beforeEach, describe, it } from 'node:test';
import type { Browser, BrowserContext, Page } from 'playwright-core';
import { launchChromium, openPage, skipWithoutChromium } from '../helpers/browser.ts';
import { HOUR_MS, MemoryUsageStore, emptyCounts } from '../../src/reports/usage-store.ts';
import { startHarness, type Harness } from '../helpers/harness.ts';

const TEST = { timeout: 90_000 };

const ALICE = 'alice-key-0123456789abcdef';
const BOSS = 'boss-key-0123456789abcdef';
const DAY_MS = 24 * HOUR_MS;
const TODAY = Math.floor(Date.now() / DAY_MS) * DAY_MS;
const isoDay = (ms: number) => new Date(ms).toISOString().slice(0, 10);

describe('the playground Usage view in headless Chromium', { skip: skipWithoutChromium }, () => {
  let h: Harness;
  let browser: Browser | undefined;
  let context: BrowserContext;
  let page: Page;
  let pageErrors: string[];
  let clock = TODAY;
  const store = new MemoryUsageStore({ retentionHours: 35 * 24, now: () => clock });

  before(async () => {
    // Two days ago: alice $1.50 on sonnet; today: alice $0.25 more, bob $2 on haiku and an unpriced model.
    clock = TODAY - 2 * DAY_MS + HOUR_MS;
    store.record('alice', 'claude-sonnet-5', {
      ...emptyCounts(),
      requests: 1,
      uncachedInput: 1_000,
      cacheRead: 500,
      output: 200,
      costPicoUsd: 1_500_000_000_000n,
    });
    clock = TODAY + 60_000;
    store.record('alice', 'claude-sonnet-5', {
      ...emptyCounts(),
      requests: 1,
      output: 10,
      costPicoUsd: 250_000_000_000n,
    });
    store.record('bob', 'claude-haiku-5', {
      ...emptyCounts(),
      requests: 1,
      uncachedInput: 7,
      costPicoUsd: 2_000_000_000_000n,
    });
    store.record('bob', 'mystery-model', { ...emptyCounts(), requests: 1, output: 3, unpricedTokens: 3 });
    clock = Date.now();
    h = await startHarness(
      { SERVICE_API_KEYS: `alice:${ALICE},bob:bob-key-0123456789abcdef`, ADMIN_API_KEYS: `boss:${BOSS}` },
      { usage: store },
    );
    browser = await launchChromium();
  });
  after(async () => {
    await browser?.close();
    await h.close();
  });
  beforeEach(async () => {
    assert.ok(browser);
    ({ context, page, errors: pageErrors } = await openPage(browser, `${h.url}/`, 900));
  });
  afterEach(async () => {
    await context.close();
    assert.deepEqual(pageErrors, [], 'script errors or CSP violations in the page');
  });

  const show = async (key: string, days: '7' | '30') => {
    await page.getByLabel('Client key (optional)').fill(key);
    await page.getByLabel('Period').selectOption(days);
    await page.getByRole('button', { name: 'Show usage' }).click();
  };
  const tableRows = () =>
    page.evaluate<string[][]>(
      "[...document.querySelectorAll('#usage-rows tr')].map((row) => [...row.querySelectorAll('td')].map((td) => td.textContent))",
    );

  it(
    'an admin key: a bar per day with the day’s spend, and every key and model in the table',
    TEST,
    async () => {
      await show(BOSS, '7');
      await page.locator('#usage-result').waitFor({ state: 'visible' });
      const bars = await page.evaluate<[string, number, string][]>(
        "[...document.querySelectorAll('#usage-chart-svg rect.bar')].map((r) => [r.getAttribute('data-day'), Number(r.getAttribute('height')), r.textContent])",
      );
      assert.equal(bars.length, 7);
      assert.equal(bars[6]?.[0], isoDay(TODAY));
      assert.deepEqual(bars[4], [isoDay(TODAY - 2 * DAY_MS), 66, `${isoDay(TODAY - 2 * DAY_MS)}: $1.5000`]);
      assert.deepEqual(bars[6], [isoDay(TODAY), 100, `${isoDay(TODAY)}: $2.2500`]);
      assert.ok(bars.slice(0, 4).every((bar) => bar[1] === 0));
      assert.match(
        (await page.locator('#usage-caption').textContent()) ?? '',
        /last 7 days: \$3\.7500 in all/,
      );
      await page.locator('#usage-heading').scrollIntoViewIfNeeded();
      await page.screenshot({ path: join(tmpdir(), 'llm-connector-usage-view.png'), fullPage: true });
      assert.deepEqual(await tableRows(), [
        ['bob', 'claude-haiku-5', '7', '0', '0', '$2.0000'],
        ['alice', 'claude-sonnet-5', '1,000', '500', '210', '$1.7500'],
        ['bob', 'mystery-model', '0', '0', '3', 'unpriced'],
      ]);
    },
  );

  it('another key sees only its own rows; 30 days draws 30 bars', TEST, async () => {
    await show(ALICE, '30');
    await page.locator('#usage-result').waitFor({ state: 'visible' });
    assert.equal(await page.locator('#usage-chart-svg rect.bar').count(), 30);
    assert.deepEqual(await tableRows(), [['alice', 'claude-sonnet-5', '1,000', '500', '210', '$1.7500']]);
  });

  it('a wrong key: the error in words, no table', TEST, async () => {
    await show('not-a-valid-key-0123456789', '7');
    await page.locator('#usage-status.error').waitFor();
    assert.match((await page.locator('#usage-status').textContent()) ?? '', /401 authentication_error/);
    assert.equal(await page.locator('#usage-result').isVisible(), false);
  });
});
