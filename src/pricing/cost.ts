/**
 * What an answer costs, in exact integers: prices are held in micro-dollars per million tokens, which
 * is also pico-dollars (1e-12 USD) per token, so that a price times a token count is an exact number
 * of pico-dollars. Pure: no I/O, no floating point on money.
 */

/** One band of a model's prices, micro-dollars per million tokens (= pico-dollars per token). */
export interface Rates {
  readonly input: bigint;
  readonly cacheWrite5m: bigint;
  readonly cacheWrite1h: bigint;
  readonly cacheRead: bigint;
  readonly output: bigint;
}

/** A model's prices; `longContext` applies to every token of a request whose prompt is above its threshold. */
export interface ModelPrice extends Rates {
  readonly longContext?: (Rates & { readonly abovePromptTokens: number }) | undefined;
}

/** Model id (aliases and snapshots included) → prices. */
export type PriceTable = ReadonlyMap<string, ModelPrice>;

/** The usage counts pricing reads; any may be missing (a partial answer), and the 5m/1h split may be absent. */
export interface PricedUsage {
  readonly input_tokens?: number | null | undefined;
  readonly output_tokens?: number | null | undefined;
  readonly cache_creation_input_tokens?: number | null | undefined;
  readonly cache_read_input_tokens?: number | null | undefined;
  readonly cache_creation?:
    | {
        readonly ephemeral_5m_input_tokens?: number | null | undefined;
        readonly ephemeral_1h_input_tokens?: number | null | undefined;
      }
    | null
    | undefined;
}

export const PICO_PER_USD = 1_000_000_000_000n;
export const MICRO_PER_USD = 1_000_000n;

/** A token count as a non-negative integer (anything else counts as 0). */
export function tokenCount(n: unknown): number {
  return typeof n === 'number' && n > 0 && Number.isFinite(n) ? Math.floor(n) : 0;
}

/** The tokens of a usage by kind, the cache writes split 5m/1h (unsplit writes at the 5-minute price). */
function tokensByKind(usage: PricedUsage): {
  input: number;
  cacheWrite5m: number;
  cacheWrite1h: number;
  cacheRead: number;
  output: number;
} {
  const writes = tokenCount(usage.cache_creation_input_tokens);
  const split = usage.cache_creation;
  let cacheWrite1h = 0;
  let cacheWrite5m = writes;
  if (split !== null && split !== undefined) {
    cacheWrite1h = tokenCount(split.ephemeral_1h_input_tokens);
    // Writes the split does not account for are priced at the 5-minute price.
    cacheWrite5m = Math.max(tokenCount(split.ephemeral_5m_input_tokens), writes - cacheWrite1h);
  }
  return {
    input: tokenCount(usage.input_tokens),
    cacheWrite5m,
    cacheWrite1h,
    cacheRead: tokenCount(usage.cache_read_input_tokens),
    output: tokenCount(usage.output_tokens),
  };
}

/** The prices that apply to a request with `promptTokens` of prompt (input, cache writes and reads). */
function ratesFor(price: ModelPrice, promptTokens: number): Rates {
  const long = price.longContext;
  return long !== undefined && promptTokens > long.abovePromptTokens ? long : price;
}

/** What each kind of token of a usage costs at `price`, in pico-dollars (the usage reports show the parts). */
export function costByKind(price: ModelPrice, usage: PricedUsage): Record<keyof Rates, bigint> {
  const t = tokensByKind(usage);
  const r = ratesFor(price, t.input + t.cacheWrite5m + t.cacheWrite1h + t.cacheRead);
  return {
    input: BigInt(t.input) * r.input,
    cacheWrite5m: BigInt(t.cacheWrite5m) * r.cacheWrite5m,
    cacheWrite1h: BigInt(t.cacheWrite1h) * r.cacheWrite1h,
    cacheRead: BigInt(t.cacheRead) * r.cacheRead,
    output: BigInt(t.output) * r.output,
  };
}

/** The cost of a usage in pico-dollars; null when the model has no price in the table. */
export function costOf(table: PriceTable, model: string | undefined, usage: PricedUsage): bigint | null {
  if (model === undefined) return null;
  const price = table.get(model);
  if (price === undefined) return null;
  const c = costByKind(price, usage);
  return c.input + c.cacheWrite5m + c.cacheWrite1h + c.cacheRead + c.output;
}

/**
 * The most a request can cost before its usage is known: `inputTokens` at the input price (or the
 * 5-minute cache-write price when it is higher, since the prompt may be written to the cache; the
 * 1-hour price, since the request may ask for 1-hour caching), plus `maxTokens` at the output price,
 * in the long-context band when the prompt may reach it. Null for an unpriced model.
 */
export function worstCaseCost(
  table: PriceTable,
  model: string | undefined,
  inputTokens: number,
  maxTokens: number,
): bigint | null {
  if (model === undefined) return null;
  const price = table.get(model);
  if (price === undefined) return null;
  const bands: Rates[] = [price];
  // The prompt has at most `inputTokens`: the long-context band applies only if that is above its threshold.
  if (price.longContext !== undefined && inputTokens > price.longContext.abovePromptTokens)
    bands.push(price.longContext);
  let worst = 0n;
  for (const r of bands) {
    let perInput = r.input;
    for (const p of [r.cacheWrite5m, r.cacheWrite1h, r.cacheRead]) if (p > perInput) perInput = p;
    const cost = BigInt(tokenCount(inputTokens)) * perInput + BigInt(tokenCount(maxTokens)) * r.output;
    if (cost > worst) worst = cost;
  }
  return worst;
}

/** Pico-dollars as an exact decimal string of dollars (`"0.000123"`, `"12.5"`, `"0"`). */
export function usdString(pico: bigint): string {
  const negative = pico < 0n;
  const abs = negative ? -pico : pico;
  const whole = abs / PICO_PER_USD;
  const fraction = (abs % PICO_PER_USD).toString().padStart(12, '0').replace(/0+$/, '');
  return `${negative ? '-' : ''}${whole}${fraction === '' ? '' : `.${fraction}`}`;
}

/**
 * A decimal amount (a string such as `"12.50"`, or a JSON number) as an integer count of
 * 10^-`decimals` units, exactly; null when it is not a plain non-negative decimal with at most
 * `decimals` fraction digits (exponents, signs, NaN and infinities are refused).
 */
export function decimalUnits(value: string | number, decimals: number): bigint | null {
  const text = typeof value === 'number' ? (Number.isFinite(value) ? String(value) : '') : value.trim();
  const match = /^(\d+)(?:\.(\d+))?$/.exec(text);
  if (match === null) return null;
  const fraction = (match[2] ?? '').replace(/0+$/, '');
  if (fraction.length > decimals) return null;
  return BigInt(match[1] ?? '0') * 10n ** BigInt(decimals) + BigInt(fraction.padEnd(decimals, '0') || '0');
}
