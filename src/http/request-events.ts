import type { FastifyRequest } from 'fastify';
import type { RequestFinished } from './request-record.ts';

/**
 * Something that wants to know about requests: the log line, the metrics, the limits' settlement
 * (and cost, a ledger or resumable answers). Each request is `finished` exactly once.
 */
export interface RequestSubscriber {
  /** An answer starts streaming (its head is about to be written). */
  streamStarted?(route: string): void;
  finished?(finished: RequestFinished, request: FastifyRequest): void;
}

/** The subscribers, in the order they were added. A subscriber that throws is logged, never breaks the others. */
export class RequestEvents {
  private readonly subscribers: RequestSubscriber[] = [];

  subscribe(subscriber: RequestSubscriber): void {
    this.subscribers.push(subscriber);
  }

  streamStarted(route: string): void {
    for (const s of this.subscribers) s.streamStarted?.(route);
  }

  finished(finished: RequestFinished, request: FastifyRequest): void {
    for (const s of this.subscribers) {
      try {
        s.finished?.(finished, request);
      } catch (error) {
        request.log.error({ err: error }, 'a request subscriber failed');
      }
    }
  }
}
