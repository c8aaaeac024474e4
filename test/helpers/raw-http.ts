import { connect, type Socket } from 'node:net';
import { once } from 'node:events';

/** One HTTP/1.1 answer as read off a socket: status, headers (lower-case names) and body text. */
export interface RawAnswer {
  status: number;
  headers: Record<string, string>;
  body: string;
}

export interface RawConnection {
  socket: Socket;
  /** Resolves with the first complete answer; rejects if the socket closes before one arrived. */
  answer: Promise<RawAnswer>;
  /** Resolves when the socket has closed (by either side). */
  closed: Promise<void>;
  /** True once the server has ended or reset the connection. */
  closedByServer(): boolean;
  /** Resolves once the bytes received so far match `pattern` (e.g. an interim `100 Continue`). */
  received(pattern: RegExp): Promise<void>;
  /** Everything received so far, as latin1 text (one character per byte). */
  text(): string;
}

/**
 * Parses one complete answer (Content-Length or chunked) at the start of `data`, after any interim
 * `1xx` answers, or undefined if it is not all there yet.
 */
export function parseAnswer(data: Buffer): RawAnswer | undefined {
  const end = data.indexOf('\r\n\r\n');
  if (end === -1) return undefined;
  const [statusLine = '', ...lines] = data.toString('latin1', 0, end).split('\r\n');
  if (/^HTTP\/1\.[01] 1\d\d /.test(statusLine)) return parseAnswer(data.subarray(end + 4));
  const headers: Record<string, string> = {};
  for (const line of lines) {
    const colon = line.indexOf(':');
    headers[line.slice(0, colon).trim().toLowerCase()] = line.slice(colon + 1).trim();
  }
  const status = Number(statusLine.split(' ')[1]);
  const rest = data.subarray(end + 4);
  if (headers['transfer-encoding'] === 'chunked') {
    const chunks: Buffer[] = [];
    let at = 0;
    for (;;) {
      const lineEnd = rest.indexOf('\r\n', at);
      if (lineEnd === -1) return undefined;
      const sizeLine = rest.toString('latin1', at, lineEnd);
      if (!/^[0-9a-f]+$/i.test(sizeLine))
        throw new Error(`malformed chunk size ${JSON.stringify(sizeLine.slice(0, 40))}`);
      const size = parseInt(sizeLine, 16);
      if (size === 0) return { status, headers, body: Buffer.concat(chunks).toString('utf8') };
      if (rest.length < lineEnd + 2 + size + 2) return undefined;
      chunks.push(rest.subarray(lineEnd + 2, lineEnd + 2 + size));
      at = lineEnd + 2 + size + 2;
    }
  }
  const length = Number(headers['content-length'] ?? 0);
  if (rest.length < length) return undefined;
  return { status, headers, body: rest.toString('utf8', 0, length) };
}

/** Opens a raw TCP connection to `url` and writes `bytes` (if any) once connected. */
export function rawConnection(url: string, bytes?: string | Buffer): RawConnection {
  const { hostname, port } = new URL(url);
  const socket = connect(Number(port), hostname);
  let received = Buffer.alloc(0);
  let serverClosed = false;
  const answer = new Promise<RawAnswer>((resolve, reject) => {
    socket.on('data', (chunk: Buffer) => {
      received = Buffer.concat([received, chunk]);
      socket.emit('received');
      try {
        const parsed = parseAnswer(received);
        if (parsed) resolve(parsed);
      } catch (error) {
        reject(error instanceof Error ? error : new Error(String(error)));
      }
    });
    socket.once('close', () => {
      reject(
        new Error(
          `the connection closed before a complete answer; received ${JSON.stringify(received.toString('latin1').slice(0, 200))}`,
        ),
      );
    });
  });
  answer.catch(() => undefined); // a test that expects no answer need not await it
  socket.on('end', () => (serverClosed = true));
  socket.on('error', () => (serverClosed = true));
  const closed = new Promise<void>((resolve) =>
    socket.once('close', () => {
      resolve();
    }),
  );
  if (bytes !== undefined) socket.write(bytes);
  const matching = (pattern: RegExp): Promise<void> =>
    new Promise((resolve, reject) => {
      const look = (): void => {
        if (!pattern.test(received.toString('latin1'))) return;
        socket.off('received', look);
        resolve();
      };
      socket.on('received', look);
      socket.once('close', () => {
        reject(new Error(`the connection closed before ${String(pattern)} was received`));
      });
      look();
    });
  return {
    socket,
    answer,
    closed,
    closedByServer: () => serverClosed,
    received: matching,
    text: () => received.toString('latin1'),
  };
}

/** Resolves once `socket` is connected. */
export async function connected(socket: Socket): Promise<void> {
  if (!socket.connecting) return;
  await once(socket, 'connect');
}
