/**
 * A cancellation that costs next to nothing until somebody waits on it. Node 20 spends ~3 µs making
 * an AbortController and ~2 µs more adding and removing one `abort` listener (EventTarget); every
 * request made one and listened on it, and almost none is ever cancelled. This is a flag and a list;
 * an AbortSignal is made only for an API that takes one (a retry's wait), on first use.
 */
export class Cancel {
  #aborted = false;
  #listeners: (() => void)[] | null = null;
  #controller: AbortController | null = null;

  get aborted(): boolean {
    return this.#aborted;
  }

  /** Cancels: the listeners run once, in order (and an AbortSignal made from this aborts). */
  abort(): void {
    if (this.#aborted) return;
    this.#aborted = true;
    const listeners = this.#listeners;
    this.#listeners = null;
    if (listeners !== null) for (const listener of listeners) listener();
    this.#controller?.abort();
  }

  /** Runs `listener` once when cancelled; never if it already was (look at `aborted` first). */
  onAbort(listener: () => void): void {
    if (this.#aborted) return;
    (this.#listeners ??= []).push(listener);
  }

  offAbort(listener: () => void): void {
    const listeners = this.#listeners;
    if (listeners === null) return;
    const index = listeners.indexOf(listener);
    if (index !== -1) listeners.splice(index, 1);
  }

  /** The same cancellation as an AbortSignal, for APIs that take one. */
  get signal(): AbortSignal {
    if (this.#controller === null) {
      this.#controller = new AbortController();
      if (this.#aborted) this.#controller.abort();
    }
    return this.#controller.signal;
  }
}
