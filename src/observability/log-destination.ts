import { writeSync } from 'node:fs';
import { pino, type DestinationStream } from 'pino';

/** Lines are handed to the writer once this many characters wait (a request's line is about 500)… */
const LOG_BATCH_CHARS = 4096;
/** …or at the latest this long after the first line that waits. */
const LOG_FLUSH_MS = 100;
/** What may wait to be written while the output is stuck (a full pipe nobody reads); more is dropped. */
const LOG_BUFFER_MAX_BYTES = 16 * 1024 * 1024;

export interface LogDestination extends DestinationStream {
  /** Hands what waits to the writer now; `callback` as pino's asynchronous destination calls it. */
  flush(callback?: (error?: Error) => void): void;
  /** Called with the number of lines dropped because the writer's buffer was full. */
  onDrop(listener: (lines: number) => void): void;
}

export interface LogDestinationOptions {
  batchChars?: number;
  flushMs?: number;
  maxBytes?: number;
}

/** How long the exit may wait, in all, for an output that takes nothing (a full pipe nobody reads). */
const EXIT_WRITE_PATIENCE_MS = 1_000;
const EXIT_WRITE_RETRY_MS = 10;

/**
 * The service's log output. Lines are written off the event loop by pino's asynchronous writer, and
 * handed to it in batches (`batchChars`, or after `flushMs`): each of its writes is a round trip through
 * libuv's thread pool (a write, two wake-ups, an eventfd), which at one request at a time was a tenth
 * of the request's CPU. The writer holds at most `maxBytes`; further lines are dropped (`onDrop`).
 *
 * When the process exits, what the writer holds and then what waits here are written synchronously,
 * in that order (a write already under way in the thread pool still ends on its own, possibly after
 * them). A process killed by SIGKILL loses what waits here (at most the last `flushMs` of lines) and
 * what the writer has not written yet (nothing while the output keeps up; up to `maxBytes` when stuck).
 */
export function logDestination(fd: number, options: LogDestinationOptions = {}): LogDestination {
  const batchChars = options.batchChars ?? LOG_BATCH_CHARS;
  const flushMs = options.flushMs ?? LOG_FLUSH_MS;
  const writer = pino.destination({
    dest: fd,
    sync: false,
    maxLength: options.maxBytes ?? LOG_BUFFER_MAX_BYTES,
  });
  let waiting = '';
  let timer: NodeJS.Timeout | undefined;
  const handOver = (): void => {
    clearTimeout(timer);
    timer = undefined;
    if (waiting === '') return;
    const batch = waiting;
    waiting = '';
    writer.write(batch);
  };
  process.on('exit', () => {
    clearTimeout(timer);
    try {
      writer.flushSync();
      writeAllSync(fd, waiting);
    } catch {
      // Nowhere left to say it.
    }
    waiting = '';
  });
  return {
    write(line: string): void {
      waiting += line;
      if (waiting.length >= batchChars) handOver();
      else timer ??= setTimeout(handOver, flushMs).unref();
    },
    flush(callback?: (error?: Error) => void): void {
      handOver();
      if (callback) writer.flush(callback);
    },
    onDrop(listener: (lines: number) => void): void {
      writer.on('drop', (batch: string) => {
        listener(batch.split('\n').length - 1);
      });
    },
  };
}

/** Writes `text` to `fd` before returning; gives up after EXIT_WRITE_PATIENCE_MS of EAGAIN. */
function writeAllSync(fd: number, text: string): void {
  let rest = Buffer.from(text);
  let patience = EXIT_WRITE_PATIENCE_MS;
  while (rest.length > 0) {
    try {
      rest = rest.subarray(writeSync(fd, rest));
    } catch (error) {
      if ((error as NodeJS.ErrnoException).code !== 'EAGAIN' || patience <= 0) throw error;
      patience -= EXIT_WRITE_RETRY_MS;
      Atomics.wait(new Int32Array(new SharedArrayBuffer(4)), 0, 0, EXIT_WRITE_RETRY_MS);
    }
  }
}
