/** One pending timer per response; stop() cancels it and blocks further scheduling. */
export class Pacer {
  stopped = false;
  private timeout: NodeJS.Timeout | undefined;
  private immediate: NodeJS.Immediate | undefined;

  after(ms: number, fn: () => void): void {
    if (this.stopped) return;
    if (ms > 0) this.timeout = setTimeout(fn, ms);
    else this.immediate = setImmediate(fn);
  }

  stop(): void {
    this.stopped = true;
    clearTimeout(this.timeout);
    clearImmediate(this.immediate);
  }
}
