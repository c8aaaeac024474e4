import assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import { closeSync, mkdtempSync, openSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import { logDestination } from '../../src/observability/log-destination.ts';
import { waitFor } from '../helpers/wait.ts';

const MODULE = join(import.meta.dirname, '../../src/observability/log-destination.ts');

describe('logDestination', () => {
  let dir: string;
  const fds: number[] = [];
  before(() => {
    dir = mkdtempSync(join(tmpdir(), 'llmc-log-'));
  });
  after(() => {
    for (const fd of fds) closeSync(fd);
    rmSync(dir, { recursive: true, force: true });
  });
  const output = (name: string): { fd: number; text: () => string } => {
    const path = join(dir, name);
    const fd = openSync(path, 'a');
    fds.push(fd);
    return { fd, text: () => readFileSync(path, 'utf8') };
  };

  it('writes a batch as soon as it is full, and what is left after flushMs', async () => {
    const out = output('batch.log');
    // flushMs long enough never to fire here: the batch is written because it is full.
    const log = logDestination(out.fd, { batchChars: 30, flushMs: 600_000 });
    log.write('line one of twenty\n');
    log.write('line two of twenty\n');
    await waitFor(() => out.text() === 'line one of twenty\nline two of twenty\n', 'the full batch');
    log.write('three\n');
    log.flush();
    await waitFor(() => out.text().endsWith('two of twenty\nthree\n'), 'the flushed line');

    const timed = output('timed.log');
    const soon = logDestination(timed.fd, { batchChars: 4096, flushMs: 20 });
    soon.write('alone\n');
    await waitFor(() => timed.text() === 'alone\n', 'the line, after flushMs');
  });

  it('drops and counts the lines that do not fit while the output has not caught up', async () => {
    const out = output('drop.log');
    const log = logDestination(out.fd, { batchChars: 1, flushMs: 600_000, maxBytes: 100 });
    let dropped = 0;
    log.onDrop((lines) => (dropped += lines));
    // All in one turn of the event loop: no write can complete in between.
    for (let i = 0; i < 50; i++) log.write(`line ${String(i).padStart(13, '0')}\n`);
    assert.equal(dropped, 45);
    await waitFor(() => out.text().split('\n').length === 6, 'the five lines that fit');
    assert.equal(out.text(), [0, 1, 2, 3, 4].map((i) => `line ${String(i).padStart(13, '0')}\n`).join(''));
  });

  for (const ending of ['process.exit(0)', 'the end of the event loop']) {
    it(`writes what waits, synchronously, when the process exits (${ending})`, () => {
      const file = join(dir, `exit-${ending.length}.log`);
      // The child's own 'exit' listener, added after the destination's, reads the file back: what it
      // finds was written before the process could end.
      const code = [
        "import { openSync, readFileSync } from 'node:fs';",
        `import { logDestination } from ${JSON.stringify(MODULE)};`,
        `const path = ${JSON.stringify(file)};`,
        "const log = logDestination(openSync(path, 'a'), { flushMs: 600_000 });",
        "log.write('first\\n');",
        "log.write('last\\n');",
        "process.on('exit', () => process.stdout.write(readFileSync(path, 'utf8')));",
        ending === 'process.exit(0)' ? 'process.exit(0);' : '',
      ].join('\n');
      const stdout = execFileSync(process.execPath, ['--import', 'tsx', '--input-type=module', '-e', code], {
        encoding: 'utf8',
      });
      assert.equal(stdout, 'first\nlast\n');
    });
  }

  it('calls back on flush', async () => {
    const out = output('callback.log');
    const log = logDestination(out.fd, { flushMs: 600_000 });
    log.write('flushed\n');
    await new Promise<void>((resolve, reject) => {
      log.flush((error) => {
        if (error) reject(error);
        else resolve();
      });
    });
    await waitFor(() => out.text() === 'flushed\n', 'the flushed line');
  });
});
