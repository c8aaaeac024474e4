/**
 * The price table: the one shipped in `prices.json` (with the date it was taken and its source),
 * with the file named by MODEL_PRICES_FILE merged over it. Prices arrive as USD per million tokens
 * and are kept as exact integers (micro-dollars per million tokens, see cost.ts).
 */
import { readFileSync } from 'node:fs';
import { createRequire } from 'node:module';
import { ConfigError } from '../config-error.ts';
import { decimalUnits, type ModelPrice, type PriceTable, type Rates } from './cost.ts';

/** The shipped table's own description (its date and source), for the docs and the start-up log. */
export interface PriceTableInfo {
  readonly taken: string;
  readonly source: string;
}

const RATE_FIELDS = ['input', 'cache_write_5m', 'cache_write_1h', 'cache_read', 'output'] as const;
const ENTRY_FIELDS = new Set<string>([...RATE_FIELDS, 'name', 'aliases', 'long_context']);
const LONG_FIELDS = new Set<string>([...RATE_FIELDS, 'above_prompt_tokens']);
const TABLE_FIELDS = new Set(['taken', 'source', 'unit', 'notes', 'models']);

function isObject(value: unknown): value is Record<string, unknown> {
  return typeof value === 'object' && value !== null && !Array.isArray(value);
}

/** A price in USD per million tokens → micro-dollars per million tokens, exactly. */
function price(value: unknown, where: string): bigint {
  const micro = typeof value === 'number' || typeof value === 'string' ? decimalUnits(value, 6) : null;
  if (micro === null)
    throw new ConfigError(
      `${where} must be a non-negative number of USD per million tokens with at most 6 decimals, got ${value === undefined ? 'nothing' : JSON.stringify(value)}`,
    );
  return micro;
}

/** Five rates; missing cache prices default to 1.25×, 2× and 0.1× the input price (rounded to a micro-dollar). */
function rates(entry: Record<string, unknown>, where: string): Rates {
  for (const field of ['input', 'output'] as const)
    if (entry[field] === undefined) throw new ConfigError(`${where}.${field} is missing`);
  const input = price(entry.input, `${where}.input`);
  const optional = (field: string, num: bigint, den: bigint): bigint =>
    entry[field] === undefined ? (input * num + den / 2n) / den : price(entry[field], `${where}.${field}`);
  return {
    input,
    cacheWrite5m: optional('cache_write_5m', 5n, 4n),
    cacheWrite1h: optional('cache_write_1h', 2n, 1n),
    cacheRead: optional('cache_read', 1n, 10n),
    output: price(entry.output, `${where}.output`),
  };
}

function unknownField(entry: Record<string, unknown>, allowed: Set<string>, where: string): void {
  for (const field of Object.keys(entry))
    if (!allowed.has(field))
      throw new ConfigError(`${where} has an unknown field "${field}" (expected ${[...allowed].join(', ')})`);
}

function modelPrice(entry: unknown, where: string): { price: ModelPrice; aliases: string[] } {
  if (!isObject(entry))
    throw new ConfigError(`${where} must be an object of prices, e.g. {"input": 3, "output": 15}`);
  unknownField(entry, ENTRY_FIELDS, where);
  const base = rates(entry, where);
  let longContext: ModelPrice['longContext'];
  if (entry.long_context !== undefined) {
    const long = entry.long_context;
    const at = `${where}.long_context`;
    if (!isObject(long)) throw new ConfigError(`${at} must be an object`);
    unknownField(long, LONG_FIELDS, at);
    const above = long.above_prompt_tokens;
    if (typeof above !== 'number' || !Number.isSafeInteger(above) || above < 0)
      throw new ConfigError(`${at}.above_prompt_tokens must be a whole number of tokens`);
    longContext = { ...rates(long, at), abovePromptTokens: above };
  }
  const aliases = entry.aliases ?? [];
  if (!Array.isArray(aliases) || !aliases.every((a) => typeof a === 'string' && a.trim() !== ''))
    throw new ConfigError(`${where}.aliases must be a list of model ids`);
  if (entry.name !== undefined && typeof entry.name !== 'string')
    throw new ConfigError(`${where}.name must be a string`);
  return { price: longContext ? { ...base, longContext } : base, aliases: aliases as string[] };
}

/**
 * Parses a price file: either the shipped form (`{"taken", "source", "models": {…}}`) or the short
 * form `{"<model id>": {"input": 3, "output": 15, …}}`. Throws a one-line ConfigError naming `where`
 * (the file) and the field at fault.
 */
export function parsePrices(json: unknown, where: string): Map<string, ModelPrice> {
  if (!isObject(json)) throw new ConfigError(`${where} must hold a JSON object of model prices`);
  const wrapped = isObject(json.models) && Object.keys(json).every((k) => TABLE_FIELDS.has(k));
  const models = wrapped ? (json.models as Record<string, unknown>) : json;
  const table = new Map<string, ModelPrice>();
  for (const [model, entry] of Object.entries(models)) {
    if (model.trim() === '') throw new ConfigError(`${where}: a model id is empty`);
    const parsed = modelPrice(entry, `${where}: ${JSON.stringify(model)}`);
    for (const id of [model, ...parsed.aliases]) table.set(id, parsed.price);
  }
  return table;
}

const require = createRequire(import.meta.url);
let shipped: { table: Map<string, ModelPrice>; info: PriceTableInfo } | undefined;

/** The table shipped with the service (read once). */
export function shippedPrices(): { table: PriceTable; info: PriceTableInfo } {
  if (shipped === undefined) {
    const json = require('./prices.json') as { taken: string; source: string };
    shipped = { table: parsePrices(json, 'prices.json'), info: { taken: json.taken, source: json.source } };
  }
  return shipped;
}

/** The shipped table with MODEL_PRICES_FILE (when set) merged over it, entry by entry. */
export function loadPriceTable(file: string | undefined): PriceTable {
  const base = shippedPrices().table;
  if (file === undefined) return base;
  let text: string;
  try {
    text = readFileSync(file, 'utf8');
  } catch (error) {
    throw new ConfigError(
      `MODEL_PRICES_FILE ${file} cannot be read: ${(error as NodeJS.ErrnoException).code ?? String(error)}`,
    );
  }
  let json: unknown;
  try {
    json = JSON.parse(text);
  } catch (error) {
    throw new ConfigError(`MODEL_PRICES_FILE ${file} is not valid JSON: ${(error as Error).message}`);
  }
  const merged = new Map(base);
  for (const [model, p] of parsePrices(json, `MODEL_PRICES_FILE ${file}`)) merged.set(model, p);
  return merged;
}
