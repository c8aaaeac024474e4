/**
 * Requests that Node's parser or Fastify's router refuse before any route runs still get the
 * service's error envelope, with X-Request-ID and the status Node or Fastify chose; on /v1/* paths
 * in the route family's shape. Raw sockets, since fetch cannot send most of these.
 */
import assert from 'node:assert/strict';
import { after, before, beforeEach, describe, it } from 'node:test';
import { requestLogs, startHarness, type Harness } from '../helpers/harness.ts';
import { rawConnection, type RawAnswer } from '../helpers/raw-http.ts';
import { within } from '../helpers/wait.ts';

const UUID = /^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$/;

type Shape = 'default' | 'anthropic' | 'openai';

/** Checks the body is the given shape's error, with `type` and the header's request id where the shape carries one. */
function assertShape(answer: RawAnswer, shape: Shape, type: string): void {
  const body = JSON.parse(answer.body) as Record<string, unknown>;
  const id = answer.headers['x-request-id'];
  const error = body.error as Record<string, unknown> | undefined;
  assert.ok(error, answer.body);
  assert.equal(typeof error.message, 'string');
  assert.ok((error.message as string).length > 0 && (error.message as string).length < 300, answer.body);
  if (shape === 'openai') {
    assert.deepEqual(Object.keys(body), ['error']);
    assert.equal(error.code, type, answer.body);
    assert.ok('param' in error && 'type' in error, answer.body);
    return;
  }
  assert.equal(body.request_id, id, answer.body);
  if (shape === 'anthropic') assert.equal(body.type, 'error', answer.body);
  else assert.equal(body.type, undefined, answer.body);
  assert.equal(error.type, type, answer.body);
}

interface Case {
  name: string;
  request: string;
  status: number;
  shape: Shape;
  /** error.type (default and Anthropic shapes: Anthropic's own type name) or, for OpenAI, error.code. */
  type: string;
}

const JSON_POST = 'Content-Type: application/json\r\n';

/** Refused by Node's HTTP parser: answered on the raw socket, which is then closed. */
const PARSER_CASES: Case[] = [
  {
    name: 'a malformed request line',
    request: 'GARBAGE\r\n\r\n',
    status: 400,
    shape: 'default',
    type: 'invalid_request_error',
  },
  {
    name: 'an unknown method',
    request: 'FOO /v1/messages HTTP/1.1\r\nHost: x\r\n\r\n',
    status: 400,
    shape: 'anthropic',
    type: 'invalid_request_error',
  },
  {
    name: 'two Content-Lengths',
    request: `POST /v1/chat/completions HTTP/1.1\r\nHost: x\r\n${JSON_POST}Content-Length: 2\r\nContent-Length: 3\r\n\r\n{}`,
    status: 400,
    shape: 'openai',
    type: 'invalid_request_error',
  },
  {
    name: 'Content-Length with Transfer-Encoding (request smuggling)',
    request: `POST /llm/query HTTP/1.1\r\nHost: x\r\n${JSON_POST}Content-Length: 5\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\n`,
    status: 400,
    shape: 'default',
    type: 'invalid_request_error',
  },
  {
    name: 'a bare LF line ending',
    request: 'GET /healthz HTTP/1.1\nHost: x\n\n',
    status: 400,
    shape: 'default',
    type: 'invalid_request_error',
  },
  {
    name: 'a NUL in a header value',
    request: 'GET /v1/models HTTP/1.1\r\nHost: x\r\nX-A: a\0b\r\n\r\n',
    status: 400,
    shape: 'anthropic',
    type: 'invalid_request_error',
  },
  {
    name: 'headers over 16 KiB',
    request: `GET /healthz HTTP/1.1\r\nHost: x\r\nX-A: ${'a'.repeat(20_000)}\r\n\r\n`,
    status: 431,
    shape: 'default',
    type: 'request_too_large',
  },
  {
    name: 'a URL over 16 KiB',
    request: `GET /v1/models/${'a'.repeat(20_000)} HTTP/1.1\r\nHost: x\r\n\r\n`,
    status: 431,
    shape: 'anthropic',
    type: 'request_too_large',
  },
];

/** Refused by Fastify or by the HTTP rules Node leaves to the application: answered on the connection, which stays usable. */
const ROUTER_CASES: Case[] = [
  {
    name: 'a malformed percent-encoding',
    request: 'GET /%zz HTTP/1.1\r\nHost: x\r\n\r\n',
    status: 400,
    shape: 'default',
    type: 'invalid_request_error',
  },
  {
    name: 'a malformed percent-encoding under /v1',
    request: 'GET /v1/models/%zz HTTP/1.1\r\nHost: x\r\n\r\n',
    status: 400,
    shape: 'anthropic',
    type: 'invalid_request_error',
  },
  {
    name: 'a 5,000-character model id',
    request: `GET /v1/models/${'m'.repeat(5000)} HTTP/1.1\r\nHost: x\r\n\r\n`,
    status: 414,
    shape: 'anthropic',
    type: 'request_too_large',
  },
  {
    name: 'HTTP/1.1 without Host',
    request: 'GET /healthz HTTP/1.1\r\n\r\n',
    status: 400,
    shape: 'default',
    type: 'invalid_request_error',
  },
  {
    name: 'HTTP/1.1 without Host on the OpenAI route',
    request: `POST /v1/chat/completions HTTP/1.1\r\n${JSON_POST}Content-Length: 2\r\n\r\n{}`,
    status: 400,
    shape: 'openai',
    type: 'invalid_request_error',
  },
  {
    name: 'Expect: 200-ok',
    request: 'GET /healthz HTTP/1.1\r\nHost: x\r\nExpect: 200-ok\r\n\r\n',
    status: 417,
    shape: 'default',
    type: 'invalid_request_error',
  },
  {
    name: 'Expect: 200-ok on the Anthropic route',
    request: `POST /v1/messages HTTP/1.1\r\nHost: x\r\n${JSON_POST}Expect: 200-ok\r\nContent-Length: 2\r\n\r\n{}`,
    status: 417,
    shape: 'anthropic',
    type: 'invalid_request_error',
  },
  {
    name: 'a path escaping the docs assets',
    request: 'GET /docs/static/.. HTTP/1.1\r\nHost: x\r\n\r\n',
    status: 403,
    shape: 'default',
    type: 'permission_error',
  },
];

describe('errors before any route runs are in the envelope', () => {
  let h: Harness;
  before(async () => {
    h = await startHarness();
  });
  after(() => h.close());
  beforeEach(() => {
    h.fake.reset();
  });

  for (const c of PARSER_CASES) {
    it(`${c.name}: ${c.status}, ${c.shape} shape, fresh X-Request-ID, connection closed`, async () => {
      const connection = rawConnection(h.url, c.request);
      const answer = await within(connection.answer, 5000, 'the answer');
      assert.equal(answer.status, c.status, answer.body);
      assert.match(answer.headers['content-type'] ?? '', /^application\/json/);
      assert.match(answer.headers['x-request-id'] ?? '', UUID);
      assert.equal(answer.headers.connection, 'close');
      assertShape(answer, c.shape, c.type);
      await within(connection.closed, 5000, 'the server to close the connection');
      assert.ok(connection.closedByServer());
    });
  }

  for (const c of ROUTER_CASES) {
    it(`${c.name}: ${c.status}, ${c.shape} shape, with X-Request-ID`, async () => {
      const connection = rawConnection(h.url, c.request);
      try {
        const answer = await within(connection.answer, 5000, 'the answer');
        assert.equal(answer.status, c.status, answer.body);
        assert.match(answer.headers['content-type'] ?? '', /^application\/json/);
        assert.match(answer.headers['x-request-id'] ?? '', UUID);
        assertShape(answer, c.shape, c.type);
        assert.ok(!answer.body.includes('mmmmmmmmmm'), 'the long path was echoed');
      } finally {
        connection.socket.destroy();
      }
    });
  }

  it('a broken chunk on a request whose body is arriving: its own response and id answer, and the log line says so', async () => {
    h.logs.length = 0;
    const id = 'broken-chunk-1';
    const request = `POST /v1/messages HTTP/1.1\r\nHost: x\r\nX-Request-ID: ${id}\r\n${JSON_POST}Transfer-Encoding: chunked\r\n\r\nzz\r\n`;
    const connection = rawConnection(h.url, request);
    const answer = await within(connection.answer, 5000, 'the answer');
    assert.equal(answer.status, 400);
    assert.equal(answer.headers['x-request-id'], id);
    assert.equal(answer.headers.connection, 'close');
    assertShape(answer, 'anthropic', 'invalid_request_error');
    await within(connection.closed, 5000, 'the server to close the connection');
    const line = requestLogs(h).find((l) => l.reqId === id);
    assert.equal(line?.status, 400);
    assert.equal(h.fake.requests.length, 0);
  });

  it('an answer already under way is never followed by an error written into it', async () => {
    h.fake.queue({
      kind: 'message',
      deltas: Array.from({ length: 10 }, (_, i) => `w${i} `),
      deltaDelayMs: 30,
    });
    const body = JSON.stringify({ prompt: 'Hi' });
    const connection = rawConnection(
      h.url,
      `POST /llm/query HTTP/1.1\r\nHost: x\r\n${JSON_POST}Content-Length: ${body.length}\r\n\r\n${body}`,
    );
    let received = '';
    let sent = false;
    connection.socket.on('data', (chunk: Buffer) => {
      received += chunk.toString('latin1');
      // Once the stream has begun, send garbage as a pipelined request.
      if (!sent && received.includes('event: delta')) {
        sent = true;
        connection.socket.write('GARBAGE\r\n\r\n');
      }
    });
    await within(connection.closed, 5000, 'the server to close the connection');
    assert.equal(received.match(/HTTP\/1\.1 /g)?.length, 1, received);
  });
});
