/** Headless Debian Chromium for the browser tests (browser downloads are not possible here). */
import { existsSync } from 'node:fs';
import { chromium, type Browser, type BrowserContext, type Page } from 'playwright-core';

export const CHROMIUM = process.env.CHROMIUM_PATH ?? '/usr/bin/chromium';
const IN_CI = Boolean(process.env.CI);
const LAUNCH_ARGS = [
  '--headless',
  '--no-sandbox',
  '--disable-gpu',
  '--disable-quic',
  '--no-first-run',
  '--disable-background-networking',
  '--disable-component-update',
  '--disable-sync',
  '--disable-dev-shm-usage',
];

/** Outside CI a machine without Chromium skips (this says why); in CI `launchChromium` fails instead. */
export const skipWithoutChromium: string | false =
  !existsSync(CHROMIUM) && !IN_CI ? `Chromium not found at ${CHROMIUM}: apt-get install -y chromium` : false;

export async function launchChromium(): Promise<Browser> {
  try {
    return await chromium.launch({ executablePath: CHROMIUM, args: LAUNCH_ARGS, timeout: 60_000 });
  } catch (error) {
    throw new Error(
      `Chromium could not be started from ${CHROMIUM}${IN_CI ? ' (CI is set, so this fails)' : ''}`,
      {
        cause: error,
      },
    );
  }
}

export interface OpenPage {
  context: BrowserContext;
  page: Page;
  /** Script errors and Content Security Policy violations seen in the page. */
  errors: string[];
}

/** A fresh context and page at `url`, collecting the page's script errors and CSP violations. */
export async function openPage(browser: Browser, url: string, height: number): Promise<OpenPage> {
  const context = await browser.newContext({ viewport: { width: 1000, height } });
  const page = await context.newPage();
  page.setDefaultTimeout(30_000);
  const errors: string[] = [];
  page.on('pageerror', (error) => errors.push(error.message));
  page.on('console', (message) => {
    if (/Content Security Policy/i.test(message.text())) errors.push(message.text());
  });
  await page.goto(url);
  return { context, page, errors };
}
