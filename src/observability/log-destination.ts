import { pino, type DestinationStream } from 'pino';

/** Lines are handed to the writer once this many characters wait (a request's line is about 500)… */
export const LOG_BATCH_CHARS = 4096;
/** …or at the latest this long after the first line that waits. */
export const LOG_FLUSH_MS = 100;
/** What may wait to be written while the output is stuck (a full pipe nobody reads); more is dropped. */
export const LOG_BUFFER_MAX_BYTES = 16 * 1024 * 1024;

export interface LogDestination extends DestinationStream {
  /** Hands what waits to the writer now (pino's `logger.flush()`). */
  flush(): void;
  /** Called with the number of lines dropped because the writer's buffer was full. */
  onDrop(listener: (lines: number) => void): void;
}

export interface LogDestinationOptions {
  batchChars?: number;
  flushMs?: number;
  maxBytes?: number;
}

/**
 * The service's log output. Lines are written off the event loop by pino's asynchronous writer, and
 * handed to it in batches (`batchChars`, or after `flushMs`): each of its writes is a round trip through
 * libuv's thread pool (a write, two wake-ups, an eventfd), which at one request at a time was a tenth
 * of the request's CPU. What waits is written synchronously when the process exits; a process killed
 * by SIGKILL loses at most the last `flushMs` of lines. The writer holds at most `maxBytes`.
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
  const flush = (): void => {
    clearTimeout(timer);
    timer = undefined;
    if (waiting === '') return;
    const batch = waiting;
    waiting = '';
    writer.write(batch);
  };
  process.on('exit', () => {
    flush();
    try {
      writer.flushSync();
    } catch {
      // Nowhere left to say it.
    }
  });
  return {
    write(line: string): void {
      waiting += line;
      if (waiting.length >= batchChars) flush();
      else timer ??= setTimeout(flush, flushMs).unref();
    },
    flush,
    onDrop(listener: (lines: number) => void): void {
      writer.on('drop', (batch: string) => {
        listener(batch.split('\n').length - 1);
      });
    },
  };
}
