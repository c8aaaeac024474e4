// The playground's Usage view: spend per UTC day as a small SVG bar chart, and tokens and dollars per
// key and model, from the service's cost and usage reports, read with the client key typed above.
const $ = (id) => document.getElementById(id);
const SVG = 'http://www.w3.org/2000/svg';
const DAY_MS = 86_400_000;
/** 1 cent = 1e10 pico-dollars: amounts are summed as integers, never as floats. */
const PICO_PER_CENT = 10_000_000_000n;

/** A cost report amount (cents, a decimal string) in integer pico-dollars. */
export function centsToPico(cents) {
  const [whole, fraction = ''] = cents.split('.');
  return BigInt(whole) * PICO_PER_CENT + BigInt(fraction.slice(0, 10).padEnd(10, '0'));
}

/** Pico-dollars as "$1.2346" (rounded to 1/100 of a cent). */
export function dollars(pico) {
  const units = (pico + 50_000_000n) / 100_000_000n; // 1e-4 dollars
  const text = units.toString().padStart(5, '0');
  return `$${text.slice(0, -4)}.${text.slice(-4)}`;
}

const isoDay = (ms) => new Date(ms).toISOString().slice(0, 10);

async function report(path, params, key) {
  const headers = key === '' ? {} : { authorization: `Bearer ${key}` };
  const res = await fetch(`${path}?${params}`, { headers });
  const body = await res.json().catch(() => null);
  if (!res.ok) {
    const error = body?.error;
    throw new Error(
      error ? `${res.status} ${error.type}: ${error.message}` : `${res.status} ${res.statusText}`,
    );
  }
  return body;
}

function drawChart(svg, days) {
  const max = days.reduce((m, d) => (d.pico > m ? d.pico : m), 0n);
  const width = 24;
  const height = 100;
  svg.setAttribute('viewBox', `0 0 ${days.length * width} ${height + 14}`);
  svg.replaceChildren(
    ...days.flatMap((day, i) => {
      const bar = document.createElementNS(SVG, 'rect');
      const h = max === 0n ? 0 : Number((day.pico * BigInt(height)) / max);
      bar.setAttribute('x', String(i * width + 3));
      bar.setAttribute('y', String(height - h));
      bar.setAttribute('width', String(width - 6));
      bar.setAttribute('height', String(h));
      bar.setAttribute('class', 'bar');
      bar.dataset.day = day.day;
      const title = document.createElementNS(SVG, 'title');
      title.textContent = `${day.day}: ${dollars(day.pico)}`;
      bar.append(title);
      const label = document.createElementNS(SVG, 'text');
      label.setAttribute('x', String(i * width + width / 2));
      label.setAttribute('y', String(height + 12));
      label.setAttribute('class', 'day');
      label.textContent = day.day.slice(8);
      return [bar, label];
    }),
  );
}

function cell(text, numeric = false) {
  const td = document.createElement('td');
  td.textContent = text;
  if (numeric) td.className = 'num';
  return td;
}

async function showUsage() {
  const key = $('key').value;
  const days = Number($('usage-days').value);
  const status = $('usage-status');
  const button = $('usage-load');
  const today = Math.floor(Date.now() / DAY_MS) * DAY_MS;
  const start = today - (days - 1) * DAY_MS;
  const range = `starting_at=${new Date(start).toISOString()}&limit=${days}`;
  status.textContent = 'Loading…';
  status.className = '';
  button.disabled = true;
  try {
    const [totals, costs, usage] = await Promise.all([
      report('v1/organizations/cost_report', range, key),
      report('v1/organizations/cost_report', `${range}&group_by[]=api_key_id&group_by[]=model`, key),
      report(
        'v1/organizations/usage_report/messages',
        `${range}&group_by[]=api_key_id&group_by[]=model`,
        key,
      ),
    ]);
    const perDay = new Map();
    for (const bucket of totals.data)
      perDay.set(
        bucket.starting_at.slice(0, 10),
        bucket.results.reduce((s, r) => s + centsToPico(r.amount), 0n),
      );
    const chartDays = [];
    for (let day = start; day <= today; day += DAY_MS)
      chartDays.push({ day: isoDay(day), pico: perDay.get(isoDay(day)) ?? 0n });
    drawChart($('usage-chart-svg'), chartDays);
    const total = chartDays.reduce((s, d) => s + d.pico, 0n);
    $('usage-caption').textContent = `Spend per UTC day, last ${days} days: ${dollars(total)} in all`;

    const rows = new Map();
    const rowOf = (r) => {
      const id = `${r.api_key_id}\n${r.model}`;
      if (!rows.has(id))
        rows.set(id, {
          key: r.api_key_id,
          model: r.model,
          input: 0,
          cache: 0,
          output: 0,
          pico: 0n,
          unpriced: 0,
        });
      return rows.get(id);
    };
    for (const bucket of usage.data)
      for (const r of bucket.results) {
        const row = rowOf(r);
        row.input += r.uncached_input_tokens;
        row.cache +=
          r.cache_read_input_tokens +
          r.cache_creation.ephemeral_5m_input_tokens +
          r.cache_creation.ephemeral_1h_input_tokens;
        row.output += r.output_tokens;
      }
    for (const bucket of costs.data)
      for (const r of bucket.results) {
        const row = rowOf(r);
        row.pico += centsToPico(r.amount);
        row.unpriced += r.unpriced_tokens ?? 0;
      }
    const sorted = [...rows.values()].sort((a, b) => (b.pico > a.pico ? 1 : b.pico < a.pico ? -1 : 0));
    $('usage-rows').replaceChildren(
      ...sorted.map((row) => {
        const tr = document.createElement('tr');
        const cost = row.unpriced > 0 && row.pico === 0n ? 'unpriced' : dollars(row.pico);
        tr.append(
          cell(row.key),
          cell(row.model),
          cell(row.input.toLocaleString('en-US'), true),
          cell(row.cache.toLocaleString('en-US'), true),
          cell(row.output.toLocaleString('en-US'), true),
          cell(cost, true),
        );
        return tr;
      }),
    );
    $('usage-result').hidden = false;
    status.textContent = sorted.length === 0 ? 'No usage in this period.' : '';
  } catch (error) {
    $('usage-result').hidden = true;
    status.textContent = `Error ${error.message}`;
    status.className = 'error';
  } finally {
    button.disabled = false;
  }
}

$('usage-load').addEventListener('click', () => void showUsage());
