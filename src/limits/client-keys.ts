import { createHash, timingSafeEqual } from 'node:crypto';
import { readFileSync } from 'node:fs';
import { ConfigError } from '../config-error.ts';
import { parseLimitValue, parseUsdBudget, type LimitName, type LimitOverrides } from './limits.ts';

/** An authenticated client: its name (for logs, metrics and limits) and its limit overrides. */
export interface ClientKey {
  readonly name: string;
  readonly limits: LimitOverrides;
  /** An admin key (`ADMIN_API_KEYS`, or `role=admin` in the keys file) reads every key's usage and cost. */
  readonly admin?: boolean;
}

/** A parsed entry, secret included: hand it to ClientKeyring and drop it. */
export interface ClientKeyEntry extends ClientKey {
  readonly key: string;
}

/** Compares two 32-byte SHA-256 digests; must take the same time whatever they hold. */
export type DigestCompare = (a: Buffer, b: Buffer) => boolean;

export const MIN_KEY_LENGTH = 16;
const NAME = /^[A-Za-z0-9_.-]{1,64}$/;
const KEY = /^[\x21-\x7e]+$/;
const OPTION = /^(rpm|tpm|daily|streams|usd_daily|usd_monthly)=(.*)$/;
const ROLE = /^role=(.*)$/;

/** The constant-time compare the keyring uses unless a test injects another. */
export const constantTimeEqual: DigestCompare = (a, b) => a.length === b.length && timingSafeEqual(a, b);

function digest(key: string): Buffer {
  return createHash('sha256').update(key, 'utf8').digest();
}

function checkKey(key: string, where: string): void {
  if (!KEY.test(key)) throw new ConfigError(`${where}: the key must be printable ASCII without spaces`);
  if (key.length < MIN_KEY_LENGTH)
    throw new ConfigError(`${where}: the key must be at least ${MIN_KEY_LENGTH} characters long`);
}

function checkName(name: string, where: string): void {
  // Not echoed: with a mistyped separator the "name" may be part of a key.
  if (!NAME.test(name))
    throw new ConfigError(`${where}: the name must be 1-64 characters of A-Z a-z 0-9 _ . -`);
}

function checkUnique(entries: readonly ClientKeyEntry[], entry: ClientKeyEntry, where: string): void {
  for (const other of entries) {
    if (other.name === entry.name) throw new ConfigError(`${where}: the name "${entry.name}" is used twice`);
    if (other.key === entry.key) throw new ConfigError(`${where}: the same key as "${other.name}"`);
  }
}

/**
 * `SERVICE_API_KEYS` (or `ADMIN_API_KEYS`): comma-separated `name:key` or bare `key` (named `key1`,
 * `key2`… by position, or `admin1`… with `bareName` `admin`).
 */
export function parseServiceApiKeys(
  raw: string,
  variable = 'SERVICE_API_KEYS',
  bareName = 'key',
): ClientKeyEntry[] {
  const entries: ClientKeyEntry[] = [];
  raw.split(',').forEach((part, index) => {
    const where = `${variable} entry ${index + 1}`;
    const item = part.trim();
    if (item === '') throw new ConfigError(`${where} is empty`);
    const colon = item.indexOf(':');
    const name = colon === -1 ? `${bareName}${index + 1}` : item.slice(0, colon);
    const key = colon === -1 ? item : item.slice(colon + 1);
    checkName(name, where);
    checkKey(key, where);
    const entry = { name, key, limits: {} };
    checkUnique(entries, entry, where);
    entries.push(entry);
  });
  return entries;
}

function parseOptions(tokens: readonly string[], where: string): LimitOverrides {
  const limits: { [K in LimitName]?: number } = {};
  for (const token of tokens) {
    const match = OPTION.exec(token);
    if (!match)
      throw new ConfigError(
        `${where}: unknown option "${token}" (expected rpm=, tpm=, daily=, streams=, usd_daily=, usd_monthly=)`,
      );
    const option = match[1] as LimitName;
    if (limits[option] !== undefined) throw new ConfigError(`${where}: ${option} is given twice`);
    const raw = match[2] ?? '';
    limits[option] = option.startsWith('usd_')
      ? parseUsdBudget(raw, `${where}: ${option}`)
      : parseLimitValue(raw, `${where}: ${option}`);
  }
  return limits;
}

/** Takes `role=admin` out of a line's options; true when it was there. */
function takeRole(tokens: string[], where: string): boolean {
  const roles = tokens.filter((token) => ROLE.test(token));
  if (roles.length > 1) throw new ConfigError(`${where}: role is given twice`);
  const role = roles[0];
  if (role === undefined) return false;
  if (role !== 'role=admin') throw new ConfigError(`${where}: role must be admin, got "${role.slice(5)}"`);
  tokens.splice(tokens.indexOf(role), 1);
  return true;
}

/**
 * `SERVICE_API_KEYS_FILE` contents: one `name:key [rpm=N] [tpm=N] [daily=N] [streams=N]
 * [usd_daily=USD] [usd_monthly=USD] [role=admin]` a line; `#` starts a comment; blank lines are skipped.
 */
export function parseServiceApiKeysFile(text: string, variable = 'SERVICE_API_KEYS_FILE'): ClientKeyEntry[] {
  const entries: ClientKeyEntry[] = [];
  text.split(/\r?\n/).forEach((line, index) => {
    const where = `${variable} line ${index + 1}`;
    const tokens = line.trim().split(/\s+/);
    const comment = tokens.findIndex((token) => token.startsWith('#'));
    if (comment !== -1) tokens.length = comment;
    const [first, ...options] = tokens.filter((token) => token !== '');
    if (first === undefined) return;
    const colon = first.indexOf(':');
    if (colon === -1) throw new ConfigError(`${where}: expected name:key`);
    const name = first.slice(0, colon);
    const key = first.slice(colon + 1);
    checkName(name, where);
    checkKey(key, where);
    const admin = takeRole(options, where);
    const entry = { name, key, limits: parseOptions(options, where), ...(admin ? { admin } : {}) };
    checkUnique(entries, entry, where);
    entries.push(entry);
  });
  if (entries.length === 0) throw new ConfigError(`${variable} holds no keys`);
  return entries;
}

type Source = Readonly<Record<string, string | undefined>>;
type ReadFile = (path: string) => string;

const readUtf8: ReadFile = (path) => readFileSync(path, 'utf8');

/** Reads and parses the keys file at `path`; throws a ConfigError naming the file or the line at fault. */
export function readServiceApiKeysFile(path: string, readFile: ReadFile = readUtf8): ClientKeyEntry[] {
  let text: string;
  try {
    text = readFile(path);
  } catch (error) {
    const code = (error as NodeJS.ErrnoException).code ?? 'unreadable';
    throw new ConfigError(`SERVICE_API_KEYS_FILE: cannot read "${path}" (${code})`);
  }
  return parseServiceApiKeysFile(text);
}

/**
 * Client keys from `SERVICE_API_KEYS` or `SERVICE_API_KEYS_FILE` (not both), or null when neither
 * is set (authentication off).
 */
export function loadClientKeys(env: Source, readFile: ReadFile = readUtf8): ClientKeyEntry[] | null {
  const inline = env.SERVICE_API_KEYS?.trim() ?? '';
  const path = env.SERVICE_API_KEYS_FILE?.trim() ?? '';
  if (inline !== '' && path !== '')
    throw new ConfigError('Set only one of SERVICE_API_KEYS and SERVICE_API_KEYS_FILE');
  if (inline !== '') return parseServiceApiKeys(inline);
  if (path === '') return null;
  return readServiceApiKeysFile(path, readFile);
}

/** `ADMIN_API_KEYS`: admin keys in the `SERVICE_API_KEYS` form (bare keys named `admin1`…), or null. */
export function loadAdminKeys(env: Source): ClientKeyEntry[] | null {
  const inline = env.ADMIN_API_KEYS?.trim() ?? '';
  if (inline === '') return null;
  return parseServiceApiKeys(inline, 'ADMIN_API_KEYS', 'admin').map((entry) => ({ ...entry, admin: true }));
}

/** Holds only SHA-256 digests of the keys and finds the client a presented key belongs to. */
export class ClientKeyring {
  #digests: readonly Buffer[];
  #clients: readonly ClientKey[];
  readonly #equal: DigestCompare;

  constructor(entries: readonly ClientKeyEntry[], equal: DigestCompare = constantTimeEqual) {
    this.#digests = entries.map((entry) => digest(entry.key));
    this.#clients = entries.map((entry) =>
      Object.freeze({
        name: entry.name,
        limits: Object.freeze({ ...entry.limits }),
        ...(entry.admin === true ? { admin: true } : {}),
      }),
    );
    this.#equal = equal;
  }

  /**
   * The keys of `first` and then those of `second` (e.g. the client keys and `ADMIN_API_KEYS`); throws a
   * ConfigError naming `secondName` when a name or a key is in both.
   */
  static combine(first: ClientKeyring, second: ClientKeyring, secondName = 'ADMIN_API_KEYS'): ClientKeyring {
    second.#clients.forEach((client, index) => {
      if (first.#clients.some((other) => other.name === client.name))
        throw new ConfigError(`${secondName} entry ${index + 1}: the name "${client.name}" is used twice`);
      const digest = second.#digests[index] as Buffer;
      if (first.#digests.some((other) => other.equals(digest)))
        throw new ConfigError(`${secondName} entry ${index + 1}: the same key as a client key`);
    });
    const combined = new ClientKeyring([], first.#equal);
    combined.#digests = [...first.#digests, ...second.#digests];
    combined.#clients = [...first.#clients, ...second.#clients];
    return combined;
  }

  get names(): readonly string[] {
    return this.#clients.map((client) => client.name);
  }

  /** The clients (names and limit overrides, no keys), in the order given. */
  get clients(): readonly ClientKey[] {
    return this.#clients;
  }

  /**
   * The client whose key was presented, or null. Compares the presented key's digest with every
   * stored digest, without stopping at a match, so the time taken says nothing about which key matched.
   */
  identify(presented: string | undefined): ClientKey | null {
    if (presented === undefined || presented === '') return null;
    const candidate = digest(presented);
    let found: ClientKey | null = null;
    for (let i = 0; i < this.#digests.length; i++) {
      const matches = this.#equal(candidate, this.#digests[i] as Buffer);
      if (matches && found === null) found = this.#clients[i] ?? null;
    }
    return found;
  }
}

type Headers = Readonly<Record<string, string | readonly string[] | undefined>>;

/** The key a request presents: `Authorization: Bearer <key>`, else `x-api-key`. Pure. */
export function extractPresentedKey(headers: Headers): string | undefined {
  const authorization = headers.authorization;
  if (typeof authorization === 'string') {
    const match = /^Bearer[ \t]+(\S+)[ \t]*$/i.exec(authorization);
    if (match?.[1] !== undefined) return match[1];
  }
  const apiKey = headers['x-api-key'];
  if (typeof apiKey === 'string' && apiKey.trim() !== '') return apiKey.trim();
  return undefined;
}
