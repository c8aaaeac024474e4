import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { Registry } from 'prom-client';
import { Tally } from '../../src/observability/tally.ts';

describe('Tally', () => {
  it('adds up increments by series and hands them to the counter when it is read', async () => {
    const registry = new Registry();
    const tally = Tally.counter<'route' | 'status'>({
      name: 't_requests_total',
      help: 'h',
      labelNames: ['route', 'status'],
      registers: [registry],
    });
    let made = 0;
    const labels = (route: string, status: string) => () => {
      made++;
      return { route, status };
    };
    tally.add('a 200', labels('/a', '200'));
    tally.add('a 200', labels('/a', '200'), 2);
    tally.add('b 500', labels('/b', '500'));
    assert.equal(made, 2, 'labels made once per series');
    const values = async () =>
      Object.fromEntries(
        (await registry.getSingleMetric('t_requests_total')?.get())?.values.map((v) => [
          `${v.labels.route} ${v.labels.status}`,
          v.value,
        ]) ?? [],
      );
    assert.deepEqual(await values(), { '/a 200': 3, '/b 500': 1 });
    tally.add('a 200', labels('/a', '200'), 4);
    assert.deepEqual(await values(), { '/a 200': 7, '/b 500': 1 }, 'a second read adds only what came since');
    assert.match(await registry.metrics(), /t_requests_total\{route="\/a",status="200"\} 7/);
  });

  it('moves a gauge up and down', async () => {
    const registry = new Registry();
    const open = Tally.gauge<'route'>({
      name: 't_open',
      help: 'h',
      labelNames: ['route'],
      registers: [registry],
    });
    const route = () => ({ route: '/q' });
    open.add('/q', route, 1);
    open.add('/q', route, 1);
    open.add('/q', route, -1);
    assert.match(await registry.metrics(), /t_open\{route="\/q"\} 1/);
    open.add('/q', route, -1);
    assert.match(await registry.metrics(), /t_open\{route="\/q"\} 0/);
  });
});
