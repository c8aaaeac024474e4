/**
 * The usage and cost reports in the shapes of Anthropic's Admin API (`GET
 * /v1/organizations/usage_report/messages` and `GET /v1/organizations/cost_report`), built from the
 * hourly usage rows. Pure: the query in, the report out (or a ReportError naming the parameter).
 */
import { HOUR_MS, addCounts, emptyCounts, type UsageCounts, type UsageRow } from './usage-store.ts';

export type ReportKind = 'usage' | 'cost';
export type BucketWidth = '1d' | '1h';
export type GroupBy = 'model' | 'api_key_id' | 'description';

export class ReportError extends Error {}

const DAY_MS = 24 * HOUR_MS;
const WIDTH_MS: Record<BucketWidth, number> = { '1d': DAY_MS, '1h': HOUR_MS };
/** Default and largest `limit` (buckets per page), as Anthropic has them. */
const LIMITS: Record<BucketWidth, { default: number; max: number }> = {
  '1d': { default: 7, max: 31 },
  '1h': { default: 24, max: 168 },
};
const GROUPS: Record<ReportKind, readonly GroupBy[]> = {
  usage: ['api_key_id', 'model'],
  cost: ['api_key_id', 'model', 'description'],
};
const PARAMETERS: Record<ReportKind, readonly string[]> = {
  usage: ['starting_at', 'ending_at', 'bucket_width', 'group_by', 'models', 'api_key_ids', 'limit', 'page'],
  cost: ['starting_at', 'ending_at', 'bucket_width', 'group_by', 'limit', 'page'],
};
const RFC3339 = /^\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}(\.\d{1,9})?(Z|[+-]\d{2}:\d{2})$/i;
const PAGE = /^page_([A-Za-z0-9+/=_-]{1,64})$/;

export interface ReportQuery {
  readonly kind: ReportKind;
  /** Start of the first bucket of the report (snapped to the bucket width), epoch ms. */
  readonly startMs: number;
  /** The report ends here (exclusive): `ending_at`, or the end of the current hour. */
  readonly endMs: number;
  readonly width: BucketWidth;
  readonly groupBy: ReadonlySet<GroupBy>;
  readonly models: ReadonlySet<string> | undefined;
  readonly keys: ReadonlySet<string> | undefined;
  readonly limit: number;
  /** Start of this page's first bucket. */
  readonly pageMs: number;
}

type RawQuery = Readonly<Record<string, string | readonly string[] | undefined>>;

/** A parameter given as `name[]=a&name[]=b` or `name=a`, as a list. */
function list(raw: RawQuery, name: string): string[] | undefined {
  const values = [raw[`${name}[]`], raw[name]].flatMap((v) => (v === undefined ? [] : [v].flat()));
  return values.length === 0 ? undefined : values;
}

function single(raw: RawQuery, name: string): string | undefined {
  const values = list(raw, name);
  if (values === undefined) return undefined;
  if (values.length > 1) throw new ReportError(`${name} must be given once`);
  return values[0];
}

function timestamp(value: string | undefined, name: string): number | undefined {
  if (value === undefined) return undefined;
  const ms = RFC3339.test(value) ? Date.parse(value) : Number.NaN;
  if (!Number.isFinite(ms))
    throw new ReportError(`${name} must be an RFC 3339 timestamp such as 2025-08-01T00:00:00Z`);
  return ms;
}

function snap(ms: number, widthMs: number): number {
  return Math.floor(ms / widthMs) * widthMs;
}

export function pageToken(ms: number): string {
  return `page_${Buffer.from(new Date(ms).toISOString().replace('.000Z', 'Z')).toString('base64')}`;
}

function pageStart(token: string | undefined): number | undefined {
  if (token === undefined) return undefined;
  const match = PAGE.exec(token);
  const ms = match?.[1] === undefined ? Number.NaN : Date.parse(Buffer.from(match[1], 'base64').toString());
  if (!Number.isFinite(ms)) throw new ReportError('page must be the next_page of an earlier answer');
  return ms;
}

/** Reads and checks the query of a report; throws a ReportError naming the parameter at fault. */
export function parseReportQuery(kind: ReportKind, raw: RawQuery, nowMs: number): ReportQuery {
  for (const name of Object.keys(raw)) {
    const base = name.endsWith('[]') ? name.slice(0, -2) : name;
    if (!PARAMETERS[kind].includes(base))
      throw new ReportError(
        `${name} is not a query parameter of this report (expected ${PARAMETERS[kind].join(', ')})`,
      );
  }
  const width = single(raw, 'bucket_width') ?? '1d';
  if (width === '1m' && kind === 'usage')
    throw new ReportError('bucket_width 1m is not available: usage is kept per hour; use 1h or 1d');
  const widths = kind === 'usage' ? ['1d', '1h'] : ['1d'];
  if (!widths.includes(width))
    throw new ReportError(`bucket_width must be ${widths.map((w) => `"${w}"`).join(' or ')}`);
  const widthMs = WIDTH_MS[width as BucketWidth];
  const starting = timestamp(single(raw, 'starting_at'), 'starting_at');
  if (starting === undefined) throw new ReportError('starting_at is required');
  const startMs = snap(starting, widthMs);
  const ending = timestamp(single(raw, 'ending_at'), 'ending_at');
  const endMs = ending ?? snap(nowMs, HOUR_MS) + HOUR_MS;
  if (endMs <= starting) throw new ReportError('ending_at must be after starting_at');
  const bounds = LIMITS[width as BucketWidth];
  const rawLimit = single(raw, 'limit');
  const limit = rawLimit === undefined ? bounds.default : /^\d{1,4}$/.test(rawLimit) ? Number(rawLimit) : 0;
  if (limit < 1 || limit > bounds.max)
    throw new ReportError(`limit must be an integer from 1 to ${bounds.max} for bucket_width ${width}`);
  const groupBy = new Set<GroupBy>();
  for (const group of list(raw, 'group_by') ?? []) {
    if (!(GROUPS[kind] as readonly string[]).includes(group))
      throw new ReportError(
        `group_by must be one or more of ${GROUPS[kind].map((g) => `"${g}"`).join(', ')}; got "${group.slice(0, 40)}"`,
      );
    groupBy.add(group as GroupBy);
  }
  const page = pageStart(single(raw, 'page'));
  if (page !== undefined && (page < startMs || page >= endMs || page % widthMs !== 0))
    throw new ReportError('page must be the next_page of an earlier answer with the same parameters');
  const models = list(raw, 'models');
  const keys = list(raw, 'api_key_ids');
  return {
    kind,
    startMs,
    endMs,
    width: width as BucketWidth,
    groupBy,
    models: models && new Set(models),
    keys: keys && new Set(keys),
    limit,
    pageMs: page ?? startMs,
  };
}

/** The hours this page reads: from its first bucket to the end of its last (or of the report). */
export function pageRange(query: ReportQuery): { fromMs: number; toMs: number } {
  const widthMs = WIDTH_MS[query.width];
  return { fromMs: query.pageMs, toMs: Math.min(query.endMs, query.pageMs + query.limit * widthMs) };
}

/** pico-dollars as cents, a decimal string without float drift: 1 cent = 1e10 pico-dollars. */
export function centsString(pico: bigint): string {
  const whole = pico / 10_000_000_000n;
  const fraction = (pico % 10_000_000_000n).toString().padStart(10, '0').replace(/0+$/, '');
  return fraction === '' ? whole.toString() : `${whole}.${fraction}`;
}

interface Group {
  key: string | null;
  model: string | null;
  counts: UsageCounts;
}

function usageResult(group: Group): object {
  const { counts } = group;
  return {
    uncached_input_tokens: counts.uncachedInput,
    cache_creation: {
      ephemeral_1h_input_tokens: counts.cacheWrite1h,
      ephemeral_5m_input_tokens: counts.cacheWrite5m + counts.cacheWriteUnsplit,
    },
    cache_read_input_tokens: counts.cacheRead,
    output_tokens: counts.output,
    server_tool_use: { web_search_requests: 0 },
    api_key_id: group.key,
    workspace_id: null,
    model: group.model,
    service_tier: null,
    context_window: null,
    request_count: counts.requests,
  };
}

function costRow(
  group: Group,
  pico: bigint,
  unpriced: number,
  description?: [string, string | null],
): object {
  return {
    currency: 'USD',
    amount: centsString(pico),
    workspace_id: null,
    description: description === undefined ? null : `${group.model ?? ''} Usage - ${description[0]}`,
    cost_type: description === undefined ? null : 'tokens',
    context_window: null,
    model: group.model,
    service_tier: null,
    token_type: description === undefined ? null : description[1],
    api_key_id: group.key,
    unpriced_tokens: unpriced,
  };
}

/** Anthropic's token types, with the tokens and the cost of each. */
const TOKEN_TYPES: readonly [string, string, (c: UsageCounts) => [number, bigint]][] = [
  ['Input Tokens', 'uncached_input_tokens', (c) => [c.uncachedInput, c.costInput]],
  ['Output Tokens', 'output_tokens', (c) => [c.output, c.costOutput]],
  ['Cache Read', 'cache_read_input_tokens', (c) => [c.cacheRead, c.costCacheRead]],
  [
    'Cache Write (5 min)',
    'cache_creation.ephemeral_5m_input_tokens',
    (c) => [c.cacheWrite5m + c.cacheWriteUnsplit, c.costCacheWrite5m],
  ],
  [
    'Cache Write (1 h)',
    'cache_creation.ephemeral_1h_input_tokens',
    (c) => [c.cacheWrite1h, c.costCacheWrite1h],
  ],
];

/** The cost rows of a group: one total, or with `description` one per kind of token (and the unpriced tokens). */
function costResults(group: Group, byDescription: boolean): object[] {
  const { counts } = group;
  if (!byDescription) return [costRow(group, counts.costPicoUsd, counts.unpricedTokens)];
  const rows: object[] = [];
  for (const [label, type, of] of TOKEN_TYPES) {
    const [tokens, pico] = of(counts);
    // A kind with tokens but no cost is listed (at 0) only for a priced model.
    if (pico > 0n || (tokens > 0 && counts.unpricedTokens === 0))
      rows.push(costRow(group, pico, 0, [label, type]));
  }
  if (counts.unpricedTokens > 0)
    rows.push(costRow(group, 0n, counts.unpricedTokens, ['Unpriced Tokens', null]));
  // Costs recorded without their split by kind (none is known for them): one row for the rest.
  const split =
    counts.costInput +
    counts.costOutput +
    counts.costCacheRead +
    counts.costCacheWrite5m +
    counts.costCacheWrite1h;
  if (counts.costPicoUsd > split) rows.push(costRow(group, counts.costPicoUsd - split, 0, ['Tokens', null]));
  return rows;
}

/**
 * One page of the report from the rows of its hours: buckets of `width` from the page's start, each
 * with its rows grouped by `group_by`; `reader` is the key names this reader may see (undefined: all).
 */
export function buildReport(
  query: ReportQuery,
  rows: readonly UsageRow[],
  reader: string | undefined,
): object {
  const widthMs = WIDTH_MS[query.width];
  const { fromMs, toMs } = pageRange(query);
  const byModel = query.groupBy.has('model') || query.groupBy.has('description');
  const byKey = query.groupBy.has('api_key_id');
  const data: object[] = [];
  for (let bucket = fromMs; bucket < toMs; bucket += widthMs) {
    const groups = new Map<string, Group>();
    for (const row of rows) {
      if (row.hourMs < bucket || row.hourMs >= bucket + widthMs || row.hourMs >= query.endMs) continue;
      if (reader !== undefined && row.key !== reader) continue;
      if (query.models && !query.models.has(row.model)) continue;
      if (query.keys && !query.keys.has(row.key)) continue;
      const key = byKey ? row.key : null;
      const model = byModel ? row.model : null;
      const id = `${key ?? ''}\n${model ?? ''}`;
      let group = groups.get(id);
      if (group === undefined) {
        group = { key, model, counts: emptyCounts() };
        groups.set(id, group);
      }
      addCounts(group.counts, row);
    }
    const sorted = [...groups.values()].sort(
      (a, b) => (a.key ?? '').localeCompare(b.key ?? '') || (a.model ?? '').localeCompare(b.model ?? ''),
    );
    data.push({
      starting_at: new Date(bucket).toISOString().replace('.000Z', 'Z'),
      ending_at: new Date(bucket + widthMs).toISOString().replace('.000Z', 'Z'),
      results: sorted.flatMap((group) =>
        query.kind === 'usage' ? [usageResult(group)] : costResults(group, query.groupBy.has('description')),
      ),
    });
  }
  const hasMore = toMs < query.endMs;
  return { data, has_more: hasMore, next_page: hasMore ? pageToken(toMs) : null };
}
