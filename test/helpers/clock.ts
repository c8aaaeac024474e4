/** Rate and token windows are whole minutes of the limits' clock. */
const MINUTE_MS = 60_000;

/**
 * A clock for the limits (`setUpGuard`'s `now`) that runs at real speed but starts `intoMinuteMs`
 * into a minute: a test checking exact per-minute numbers has `60 s - intoMinuteMs` before the
 * next window boundary, whatever the wall clock says.
 */
export function clockInsideMinute(intoMinuteMs = 1_000): () => number {
  const real = Date.now();
  const offset = Math.floor(real / MINUTE_MS) * MINUTE_MS + intoMinuteMs - real;
  return () => Date.now() + offset;
}

/**
 * For service processes, which read the real clock: waits, only when fewer than `neededMs` are
 * left in the current minute, until the next one has begun.
 */
export async function awayFromMinuteBoundary(neededMs: number): Promise<void> {
  const left = MINUTE_MS - (Date.now() % MINUTE_MS);
  if (left < neededMs) await new Promise((resolve) => setTimeout(resolve, left + 50));
}
