import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import { describe, it } from 'node:test';
import { SseDecoder, SseLineTooLongError } from '../../src/sse/decoder.ts';

type Ev = [string, string];

function decode(chunks: Buffer[]): Ev[] {
  const events: Ev[] = [];
  const decoder = new SseDecoder((name, data) => events.push([name, data]));
  for (const chunk of chunks) decoder.push(chunk);
  return events;
}

const fixture = readFileSync(new URL('../fixtures/text.sse', import.meta.url));

describe('SseDecoder', () => {
  const whole = decode([fixture]);

  it('decodes the recorded stream into its events, skipping comments', () => {
    assert.deepEqual(
      whole.map(([name]) => name),
      [
        'message_start',
        'content_block_start',
        'ping',
        'content_block_delta',
        'content_block_delta',
        'content_block_stop',
        'message_delta',
        'message_stop',
      ],
    );
    assert.equal(
      (JSON.parse(whole[4]?.[1] ?? '') as { delta: { text: string } }).delta.text,
      'wörld 🌍\n"quoted"',
    );
  });

  it('gives the same events for every split into two chunks (including inside UTF-8 sequences)', () => {
    for (let i = 0; i <= fixture.length; i++) {
      assert.deepEqual(decode([fixture.subarray(0, i), fixture.subarray(i)]), whole, `split at ${i}`);
    }
  });

  it('gives the same events when fed one byte at a time', () => {
    assert.deepEqual(decode([...fixture].map((b) => Buffer.from([b]))), whole);
  });

  for (const [label, eol] of [
    ['CRLF', '\r\n'],
    ['CR', '\r'],
  ] as const) {
    it(`accepts ${label} line endings at every split`, () => {
      const converted = Buffer.from(fixture.toString('utf8').replaceAll('\n', eol));
      for (let i = 0; i <= converted.length; i++) {
        assert.deepEqual(decode([converted.subarray(0, i), converted.subarray(i)]), whole, `split at ${i}`);
      }
    });
  }

  it('accepts LF, CRLF and CR mixed in one stream at every split', () => {
    const mixed = Buffer.from(
      'event: a\r\ndata: 1\r\rdata: é\n\nevent: b\rdata: 2\n\r\n: note\ndata: 3\r\n\r\n',
    );
    const expected: Ev[] = [
      ['a', '1'],
      ['message', 'é'],
      ['b', '2'],
      ['message', '3'],
    ];
    for (let i = 0; i <= mixed.length; i++) {
      assert.deepEqual(decode([mixed.subarray(0, i), mixed.subarray(i)]), expected, `split at ${i}`);
    }
  });

  it('joins multiple data lines, defaults the event name, strips one leading space and a BOM', () => {
    const input = Buffer.from('\uFEFFdata:  a\ndata:b\ndata\n\nevent: x\ndata: 1\n\n');
    assert.deepEqual(decode([input.subarray(0, 2), input.subarray(2)]), [
      ['message', ' a\nb\n'],
      ['x', '1'],
    ]);
  });

  it('does not dispatch an event without data, and ignores unknown fields', () => {
    assert.deepEqual(decode([Buffer.from('event: lonely\n\nid: 5\nretry: 10\nfoo: bar\ndata: ok\n\n')]), [
      ['message', 'ok'],
    ]);
  });

  it('does not dispatch an unterminated event and reports it is not idle', () => {
    const events: Ev[] = [];
    const decoder = new SseDecoder((n, d) => events.push([n, d]));
    decoder.push(Buffer.from('event: a\ndata: 1\n'));
    assert.deepEqual(events, []);
    assert.equal(decoder.idle, false);
    decoder.push(Buffer.from('\n'));
    assert.deepEqual(events, [['a', '1']]);
    assert.equal(decoder.idle, true);
  });

  it('refuses a line longer than its limit', () => {
    const decoder = new SseDecoder(() => undefined, 8);
    assert.throws(() => {
      decoder.push(Buffer.from('data: 0123456789'));
    }, SseLineTooLongError);
  });
});
