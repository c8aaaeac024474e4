/**
 * The rows waiting to be written, oldest first, bounded in rows and in estimated bytes: past either
 * bound the oldest rows are dropped (and reported to `onDrop`). The one batch being written is held
 * beside the bounds until it is written, or put back in front when the write failed (where, being the
 * oldest, its rows are the first dropped if the buffer is over a bound).
 */
export class RowBuffer<T extends { readonly bytes: number }> {
  private rows: T[] = [];
  private head = 0;
  private inFlight = 0;
  private inFlightBytes = 0;
  private waitingBytes = 0;

  private readonly maxRows: number;
  private readonly maxBytes: number;
  private readonly onDrop: (count: number) => void;

  constructor(maxRows: number, maxBytes: number, onDrop: (count: number) => void) {
    this.maxRows = maxRows;
    this.maxBytes = maxBytes;
    this.onDrop = onDrop;
  }

  /** Rows held: waiting plus being written. */
  get size(): number {
    return this.waiting + this.inFlight;
  }

  get bytes(): number {
    return this.waitingBytes + this.inFlightBytes;
  }

  /** Rows waiting (not being written). */
  get waiting(): number {
    return this.rows.length - this.head;
  }

  push(row: T): void {
    this.rows.push(row);
    this.waitingBytes += row.bytes;
    this.enforce();
  }

  /** Takes up to `max` of the oldest waiting rows for a write (one write at a time). */
  take(max: number): T[] {
    if (this.inFlight > 0) throw new Error('a write is already in flight');
    const end = Math.min(this.rows.length, this.head + max);
    const batch = this.rows.slice(this.head, end);
    this.head = end;
    this.compact();
    let bytes = 0;
    for (const row of batch) bytes += row.bytes;
    this.waitingBytes -= bytes;
    this.inFlight = batch.length;
    this.inFlightBytes = bytes;
    return batch;
  }

  /** The batch taken was written. */
  written(): void {
    this.inFlight = 0;
    this.inFlightBytes = 0;
  }

  /** The batch taken could not be written: it goes back in front (its oldest rows dropped if now over a bound). */
  putBack(batch: readonly T[]): void {
    this.inFlight = 0;
    this.inFlightBytes = 0;
    this.rows = [...batch, ...this.rows.slice(this.head)];
    this.head = 0;
    for (const row of batch) this.waitingBytes += row.bytes;
    this.enforce();
  }

  /** Empties the buffer, returning how many rows were waiting or being written. */
  clear(): number {
    const count = this.size;
    this.rows = [];
    this.head = 0;
    this.waitingBytes = 0;
    this.inFlight = 0;
    this.inFlightBytes = 0;
    return count;
  }

  private enforce(): void {
    let dropped = 0;
    while (this.waiting > this.maxRows || (this.waiting > 0 && this.waitingBytes > this.maxBytes)) {
      const row = this.rows[this.head] as T;
      this.rows[this.head] = undefined as unknown as T;
      this.head++;
      this.waitingBytes -= row.bytes;
      dropped++;
    }
    if (dropped > 0) {
      this.compact();
      this.onDrop(dropped);
    }
  }

  /** Forgets the slots before `head` once they are the larger part of the array. */
  private compact(): void {
    if (this.head === this.rows.length) {
      this.rows = [];
      this.head = 0;
    } else if (this.head > 1024 && this.head * 2 > this.rows.length) {
      this.rows = this.rows.slice(this.head);
      this.head = 0;
    }
  }
}
