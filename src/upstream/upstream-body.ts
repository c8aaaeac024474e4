import type { Dispatcher } from 'undici';

/** Receives an upstream body as it arrives; exactly one of `end` or `error` ends it. */
export interface BodySink {
  data(chunk: Buffer): void;
  end(): void;
  error(error: Error): void;
}

type Controller = Pick<Dispatcher.DispatchController, 'pause' | 'resume' | 'abort'>;

const IGNORE: BodySink = {
  data() {
    // Discarded: the rest of a body nobody reads any more.
  },
  end() {
    // Nothing to do.
  },
  error() {
    // Nothing to do.
  },
};

/**
 * An upstream response body fed by an undici dispatch handler: each chunk goes straight to one sink
 * as the socket delivers it, without a Readable stream, its buffering and its events and ticks per
 * chunk. Chunks that arrive before a sink is attached are held (and the upstream paused) until then.
 */
export class UpstreamBody {
  private sink: BodySink | null = null;
  private held: Buffer[] = [];
  private ended = false;
  private failure: Error | null = null;
  private readonly controller: Controller;

  constructor(controller: Controller) {
    this.controller = controller;
  }

  /** Attaches the one reader; what arrived before is delivered now. */
  pipeTo(sink: BodySink): void {
    if (this.sink !== null) throw new Error('The upstream body is already being read');
    this.sink = sink;
    const held = this.held;
    this.held = [];
    for (const chunk of held) sink.data(chunk);
    if (this.failure !== null) sink.error(this.failure);
    else if (this.ended) sink.end();
    else if (held.length > 0) this.controller.resume();
  }

  pause(): void {
    this.controller.pause();
  }

  /** Bound, so that it can be handed to a `drain` listener as it is. */
  readonly resume = (): void => {
    this.controller.resume();
  };

  /** Reads nothing more but lets the body finish, so that the connection goes back to the pool. */
  discardRest(): void {
    this.sink = IGNORE;
    this.held = [];
    this.controller.resume();
  }

  /** Stops reading and closes the upstream request. */
  destroy(): void {
    this.sink = IGNORE;
    this.held = [];
    if (!this.ended && this.failure === null)
      this.controller.abort(new Error('The service closed the upstream request'));
  }

  /** The whole body, once it has ended. */
  bytes(): Promise<Buffer> {
    return new Promise((resolve, reject) => {
      const chunks: Buffer[] = [];
      this.pipeTo({
        data: (chunk) => chunks.push(chunk),
        end: () => {
          resolve(chunks.length === 1 && chunks[0] ? chunks[0] : Buffer.concat(chunks));
        },
        error: reject,
      });
    });
  }

  /** The whole body parsed as JSON. */
  async json(): Promise<unknown> {
    return JSON.parse((await this.bytes()).toString('utf8'));
  }

  // Called by the dispatch handler.

  push(chunk: Buffer): void {
    if (this.sink !== null) {
      this.sink.data(chunk);
      return;
    }
    this.held.push(chunk);
    this.controller.pause();
  }

  finish(): void {
    this.ended = true;
    this.sink?.end();
  }

  fail(error: Error): void {
    if (this.ended || this.failure !== null) return;
    this.failure = error;
    this.sink?.error(error);
  }
}
