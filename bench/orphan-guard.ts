/** For the benchmark's own child processes: exit when the benchmark that started us is gone. */
export function exitWithParent(): void {
  const parent = Number(process.env.BENCH_PARENT_PID);
  if (!Number.isInteger(parent) || parent <= 1) return;
  setInterval(() => {
    try {
      process.kill(parent, 0);
    } catch {
      process.exit(0);
    }
  }, 1000).unref();
}
