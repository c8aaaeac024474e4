import assert from 'node:assert/strict';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { after, afterEach, before, beforeEach, describe, it } from 'node:test';
import type { Browser, BrowserContext, Page } from 'playwright-core';
import { launchChromium, openPage, skipWithoutChromium } from '../helpers/browser.ts';
import { startHarness, type Harness } from '../helpers/harness.ts';
import { within } from '../helpers/wait.ts';

/** The README's screenshot is rewritten only when asked (UPDATE_SCREENSHOTS=1); otherwise it goes to the temp dir. */
const SCREENSHOT =
  process.env.UPDATE_SCREENSHOTS === '1'
    ? fileURLToPath(new URL('../../docs/playground.png', import.meta.url))
    : join(tmpdir(), 'llm-connector-playground.png');
const TEST = { timeout: 90_000 };

/** The text --mock answers with, so the screenshot shows what a new user sees. */
const SIMULATED_ANSWER =
  '[Simulated Claude — no real model was called] You asked: "Write a haiku about streaming.". ' +
  'This answer comes from the built-in mock upstream, so no API key was used and nothing left this machine. ' +
  'Run the connector without --mock and with a real Anthropic API key to get genuine answers from Claude.';

interface AnswerState {
  text: string;
  status: string;
}

/** In the page: remember every state the answer passes through and the status shown at that moment. */
const RECORD_ANSWER_STATES = `(() => {
  const answer = document.getElementById('answer');
  const status = document.getElementById('status');
  window.answerStates = [];
  new MutationObserver(() => window.answerStates.push({ text: answer.textContent, status: status.textContent }))
    .observe(answer, { childList: true, characterData: true, subtree: true });
})()`;

function words(text: string): string[] {
  return text.match(/\s*\S+\s*/g) ?? [];
}

describe('playground in headless Chromium', { skip: skipWithoutChromium }, () => {
  let h: Harness;
  let browser: Browser | undefined;
  let context: BrowserContext;
  let page: Page;
  let pageErrors: string[];

  before(async () => {
    h = await startHarness({ SSE_KEEPALIVE_INTERVAL: '0.05' });
    browser = await launchChromium();
  });
  after(async () => {
    await browser?.close();
    await h.close();
  });

  beforeEach(async () => {
    h.fake.reset();
    assert.ok(browser, 'no browser');
    ({ context, page, errors: pageErrors } = await openPage(browser, `${h.url}/`, 800));
  });
  afterEach(async () => {
    await context.close();
    assert.deepEqual(pageErrors, [], 'script errors or CSP violations in the page');
  });

  const status = (text: string) => page.locator('#status', { hasText: text }).waitFor();
  const answerText = async () => (await page.locator('#answer').textContent()) ?? '';

  it('streams the answer word by word, then shows usage and stop reason', TEST, async (t) => {
    const deltas = words(SIMULATED_ANSWER);
    h.fake.queue({
      kind: 'message',
      deltas,
      deltaDelayMs: 60,
      usage: { input_tokens: 14, output_tokens: deltas.length },
    });
    await page.evaluate(RECORD_ANSWER_STATES);
    const request = page.waitForRequest('**/llm/query');
    await page.getByLabel('Prompt', { exact: true }).fill('Write a haiku about streaming.');
    await page.getByRole('button', { name: 'Send' }).click();
    assert.equal(await (await request).headerValue('authorization'), null, 'no client key, no Authorization');

    await status('Done.');
    assert.equal(await answerText(), SIMULATED_ANSWER);
    const meta = (await page.locator('#meta').textContent()) ?? '';
    assert.match(meta, /First token after \d+ ms/);
    assert.match(meta, new RegExp(`14 tokens in, ${deltas.length} out`));
    assert.match(meta, /stop reason: end_turn/);

    // Ordering, not timing: the page showed partial answers, each a prefix of the final one, while streaming.
    const states = await page.evaluate<AnswerState[]>('window.answerStates');
    assert.ok(
      states.every((s) => SIMULATED_ANSWER.startsWith(s.text)),
      'text appeared out of order',
    );
    const partial = states.filter((s) => s.text !== '' && s.text.length < SIMULATED_ANSWER.length);
    assert.ok(partial.length > 0, 'no partial answer was ever shown');
    assert.ok(partial.every((s) => s.status === 'Streaming…'));
    assert.deepEqual((h.fake.requests[0]?.json as { messages: unknown }).messages, [
      { role: 'user', content: 'Write a haiku about streaming.' },
    ]);
    await page.getByLabel('Prompt', { exact: true }).blur();
    await page.screenshot({ path: SCREENSHOT, fullPage: true });
    t.diagnostic(`screenshot: ${SCREENSHOT}`);
  });

  it('Stop aborts the request, and the service hangs up on the upstream', TEST, async () => {
    const full = 'one two three four five six seven eight nine ten '.repeat(4);
    h.fake.queue({ kind: 'message', deltas: words(full), deltaDelayMs: 250 });
    await page.getByLabel('Prompt', { exact: true }).fill('Count slowly.');
    await page.getByRole('button', { name: 'Send' }).click();
    await page.locator('#answer', { hasText: 'one' }).waitFor();
    const cancel = page.waitForRequest('**/llm/answers/*/cancel');
    await page.getByRole('button', { name: 'Stop' }).click();
    assert.equal((await cancel).method(), 'POST', 'Stop cancels the answer on the service');

    const upstream = h.fake.requests[0];
    assert.ok(upstream);
    await within(upstream.closed, 15_000, 'the upstream request to close');
    assert.equal(upstream.closedEarly, true, 'the upstream answer ran to its end');
    await status('Stopped: the answer is incomplete.');
    assert.match((await page.locator('#answer').getAttribute('class')) ?? '', /incomplete/);
    const shown = await answerText();
    assert.ok(shown.length < full.length && full.startsWith(shown), `shown: ${shown}`);
    assert.equal(await page.getByRole('button', { name: 'Send' }).isEnabled(), true);
    assert.equal(await page.getByRole('button', { name: 'Stop' }).isDisabled(), true);
  });

  it(
    'a reload mid-answer resumes the same answer: no word lost or doubled, one upstream request',
    TEST,
    async () => {
      const full =
        'alpha beta gamma delta epsilon zeta eta theta iota kappa lambda mu nu xi omicron pi '.repeat(2);
      h.fake.queue({ kind: 'message', deltas: words(full), deltaDelayMs: 80 });
      const sent = page.waitForRequest('**/llm/query');
      await page.getByLabel('Prompt', { exact: true }).fill('Recite slowly.');
      await page.getByRole('button', { name: 'Send' }).click();
      assert.equal(((await sent).postDataJSON() as { resumable?: boolean }).resumable, true);
      await page.locator('#answer', { hasText: 'gamma' }).waitFor();
      const resumed = page.waitForRequest('**/llm/answers/*/events?after=*');
      await page.reload();
      assert.match((await resumed).url(), /\/llm\/answers\/[0-9a-f-]{36}\/events\?after=\d+$/);
      await status('Done.');
      assert.equal(await answerText(), full);
      assert.equal(await page.getByLabel('Prompt', { exact: true }).inputValue(), 'Recite slowly.');
      assert.equal(h.fake.requests.length, 1, 'the reload asked the upstream again');
      assert.equal(h.fake.requests[0]?.closedEarly, false, 'the upstream answer was cut');
      // Done: a further reload starts afresh.
      await page.reload();
      await status('Ready');
      assert.equal(await answerText(), '');
    },
  );

  it('shows an upstream 429 as an error with status and message', TEST, async () => {
    h.fake.setScenario(() => ({
      kind: 'error',
      status: 429,
      retryAfterMs: '10',
      message: 'Slow down, playground',
    }));
    await page.getByLabel('Prompt', { exact: true }).fill('Hello?');
    await page.getByRole('button', { name: 'Send' }).click();
    await status('429');
    const shown = (await page.locator('#status').textContent()) ?? '';
    assert.match(
      shown,
      /^Error 429 rate_limit_error: Slow down, playground \(request [\w-]+\)\. Retry after \d+ s\.$/,
    );
    assert.equal(await page.locator('#status').getAttribute('class'), 'error');
    assert.equal(await answerText(), '');
  });

  it('marks an answer cut by a mid-stream error as incomplete', TEST, async () => {
    h.fake.queue({
      kind: 'message',
      deltas: ['Half ', 'an ', 'answer ', 'and ', 'then more'],
      fault: {
        type: 'error',
        afterDeltas: 3,
        errorType: 'overloaded_error',
        message: 'Overloaded mid-answer',
      },
    });
    await page.getByLabel('Prompt', { exact: true }).fill('Tell me everything.');
    await page.getByRole('button', { name: 'Send' }).click();
    await status('Incomplete answer');
    assert.equal(
      await page.locator('#status').textContent(),
      'Incomplete answer: overloaded_error: Overloaded mid-answer',
    );
    assert.equal(await answerText(), 'Half an answer ');
    assert.match((await page.locator('#answer').getAttribute('class')) ?? '', /incomplete/);
    assert.equal(await page.locator('#meta').textContent(), '', 'usage shown for an incomplete answer');
  });

  it(
    'multi-turn sends the earlier turns as messages, adding a turn only once its answer is done',
    TEST,
    async () => {
      await page.getByLabel('Keep the conversation').check();
      await page.getByLabel('System prompt').fill('You are terse.');
      await page.getByLabel('Client key').fill('client-key-123');
      const prompt = page.getByLabel('Prompt', { exact: true });
      const send = page.getByRole('button', { name: 'Send' });

      h.fake.queue({ kind: 'message', deltas: ['7'] });
      const first = page.waitForRequest('**/llm/query');
      await prompt.fill('Name a prime.');
      await send.click();
      await status('Done.');
      assert.equal(await (await first).headerValue('authorization'), 'Bearer client-key-123');
      assert.equal(await prompt.inputValue(), '', 'prompt kept after a completed turn');

      h.fake.queue({ kind: 'error', status: 400, message: 'Rejected once' });
      await prompt.fill('Another?');
      await send.click();
      await status('Rejected once');
      assert.equal(await prompt.inputValue(), 'Another?', 'prompt lost after a failed turn');

      h.fake.queue({ kind: 'message', deltas: ['11'] });
      await send.click();
      await status('Done.');

      const sent = h.fake.requests.map((r) => r.json as { system?: string; messages: unknown });
      assert.equal(sent.length, 3);
      assert.deepEqual(sent[0]?.messages, [{ role: 'user', content: 'Name a prime.' }]);
      const twoTurns = [
        { role: 'user', content: 'Name a prime.' },
        { role: 'assistant', content: '7' },
        { role: 'user', content: 'Another?' },
      ];
      assert.deepEqual(sent[1]?.messages, twoTurns);
      assert.deepEqual(sent[2]?.messages, twoTurns, 'the failed turn was kept in the conversation');
      assert.ok(sent.every((body) => body.system === 'You are terse.'));
      assert.deepEqual(await page.locator('#transcript li').allTextContents(), [
        'You: Name a prime.',
        'Claude: 7',
        'You: Another?',
      ]);

      await page.getByRole('button', { name: 'New conversation' }).click();
      assert.equal(await page.locator('#transcript').isHidden(), true);
    },
  );

  it(
    'works from the keyboard: Tab to the prompt, Ctrl+Enter sends, Send and Stop with Enter, Esc stops',
    TEST,
    async () => {
      const focused = async () => await page.evaluate<string | undefined>('document.activeElement?.id');
      const tabTo = async (id: string) => {
        for (let i = 0; i < 12 && (await focused()) !== id; i++) await page.keyboard.press('Tab');
        assert.equal(await focused(), id, `Tab never reached #${id}`);
      };
      await tabTo('prompt');
      const outline = await page.evaluate<string>('getComputedStyle(document.activeElement).outlineStyle');
      assert.notEqual(outline, 'none', 'no visible focus on the prompt');

      h.fake.queue({ kind: 'message', deltas: ['Sent ', 'by ', 'keyboard.'] });
      await page.keyboard.type('Hello from the keyboard');
      await page.keyboard.press('Control+Enter');
      await status('Done.');
      assert.equal(await answerText(), 'Sent by keyboard.');

      h.fake.queue({ kind: 'message', deltas: words('slow '.repeat(40)), deltaDelayMs: 250 });
      await tabTo('send');
      await page.keyboard.press('Enter');
      await page.locator('#answer', { hasText: 'slow' }).waitFor();
      assert.equal(await focused(), 'stop', 'focus was not handed from Send to Stop');
      await page.keyboard.press('Enter');
      await status('Stopped');
      assert.equal(await focused(), 'prompt', 'focus was not handed back to the prompt');
      const upstream = h.fake.requests[1];
      assert.ok(upstream);
      await within(upstream.closed, 15_000, 'the upstream request to close');
      assert.equal(upstream.closedEarly, true);

      h.fake.queue({ kind: 'message', deltas: words('again '.repeat(40)), deltaDelayMs: 250 });
      await page.keyboard.press('Control+Enter');
      await page.locator('#answer', { hasText: 'again' }).waitFor();
      await page.keyboard.press('Escape');
      await status('Stopped');
      const third = h.fake.requests[2];
      assert.ok(third);
      await within(third.closed, 15_000, 'the upstream request to close');
      assert.equal(third.closedEarly, true);
    },
  );

  it('parses SSE split anywhere, with comments, CRLF and multi-line data', TEST, async () => {
    const stream =
      ': keep-alive\n\nevent: start\ndata: {"id":"r1"}\n\nevent: delta\r\ndata: {"text":"a"}\r\n\r\n' +
      ': keep-alive\n\nevent: delta\rdata: {"text":\rdata: "b"}\r\revent: done\ndata: {}\n\n';
    const expected = [
      { event: 'start', data: '{"id":"r1"}' },
      { event: 'delta', data: '{"text":"a"}' },
      { event: 'delta', data: '{"text":\n"b"}' },
      { event: 'done', data: '{}' },
    ];
    const runs = await page.evaluate(
      async ({ stream, url }) => {
        type Event = { event: string; data: string };
        const sse = (await import(url)) as {
          createSseParser(onEvent: (e: Event) => void): { push(text: string): void };
        };
        const results: Event[][] = [];
        // Split once at every position, then feed one character at a time: every boundary is covered.
        for (let i = 0; i <= stream.length; i++) {
          const events: Event[] = [];
          const parser = sse.createSseParser((e) => events.push(e));
          parser.push(stream.slice(0, i));
          parser.push(stream.slice(i));
          results.push(events);
        }
        const events: Event[] = [];
        const parser = sse.createSseParser((e) => events.push(e));
        for (const char of stream) parser.push(char);
        results.push(events);
        return results;
      },
      { stream, url: `${h.url}/playground/sse.js` },
    );
    assert.equal(runs.length, stream.length + 2);
    for (const events of runs) assert.deepEqual(events, expected);
  });
});
