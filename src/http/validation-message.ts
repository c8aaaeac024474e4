/**
 * Schema validation errors (Ajv's, as Fastify reports them) in plain words: which field, and what is
 * allowed. Pure.
 */

/** The part of an Ajv error that is read here. */
export interface ValidationIssue {
  keyword: string;
  instancePath: string;
  params: Record<string, unknown>;
  message?: string | undefined;
}

export interface PlainValidation {
  /** The field at fault, e.g. `messages[0].role` (`body` for the body as a whole). */
  param: string;
  message: string;
}

/** `/messages/0/role` → `messages[0].role`. */
export function fieldPath(instancePath: string, child?: string): string {
  const parts = instancePath.split('/').slice(1);
  if (child !== undefined) parts.push(child);
  let out = '';
  for (const raw of parts) {
    const part = raw.replaceAll('~1', '/').replaceAll('~0', '~');
    out += /^\d+$/.test(part) ? `[${part}]` : out === '' ? part : `.${part}`;
  }
  return out === '' ? 'body' : out;
}

const TYPE_WORDS: Record<string, string> = {
  string: 'a string',
  integer: 'a whole number',
  number: 'a number',
  boolean: 'true or false',
  array: 'an array',
  object: 'an object',
  null: 'null',
};

function quoted(value: unknown): string {
  return JSON.stringify(value);
}

function typeWords(type: unknown): string {
  const types = Array.isArray(type) ? type : [type];
  return types.map((t) => TYPE_WORDS[String(t)] ?? String(t)).join(' or ');
}

/** What one error says about its field, without the field's name. */
function requirement(issue: ValidationIssue): string {
  const { params } = issue;
  const limit = Number(params.limit);
  switch (issue.keyword) {
    case 'type':
      return `must be ${typeWords(params.type)}`;
    case 'pattern':
      return params.pattern === '\\S'
        ? 'must not be blank'
        : `must match the pattern ${String(params.pattern)}`;
    case 'minLength':
      return limit === 1 ? 'must not be empty' : `must be at least ${limit} characters long`;
    case 'maxLength':
      return `must be at most ${limit} characters long`;
    case 'minimum':
      return `must be at least ${limit}`;
    case 'maximum':
      return `must be at most ${limit}`;
    case 'exclusiveMinimum':
      return `must be more than ${limit}`;
    case 'exclusiveMaximum':
      return `must be less than ${limit}`;
    case 'minItems':
      return limit === 1 ? 'must not be empty' : `must have at least ${limit} items`;
    case 'maxItems':
      return `must have at most ${limit} items`;
    case 'const':
      return `must be ${quoted(params.allowedValue)}`;
    case 'enum':
      return `must be one of ${(params.allowedValues as unknown[]).map(quoted).join(', ')}`;
    default:
      return issue.message ?? 'is not valid';
  }
}

/** An `anyOf`/`oneOf` failure: what its branches allow, when they are types or constants. */
function alternatives(branches: readonly ValidationIssue[]): string {
  const consts = branches.filter((b) => b.keyword === 'const').map((b) => quoted(b.params.allowedValue));
  if (consts.length === branches.length && consts.length > 0)
    return `must be ${consts.length === 2 ? consts.join(' or ') : `one of ${consts.join(', ')}`}`;
  const types = branches.filter((b) => b.keyword === 'type').map((b) => typeWords(b.params.type));
  if (types.length === branches.length && types.length > 0) return `must be ${types.join(' or ')}`;
  return branches.map(requirement).join(', or ');
}

/** The first problem Ajv found, in plain words. */
export function plainValidation(issues: readonly ValidationIssue[]): PlainValidation {
  // Ajv lists an anyOf's failed branches before the anyOf itself: read them together.
  const combined = issues.findIndex((i) => i.keyword === 'anyOf' || i.keyword === 'oneOf');
  const first = issues[0];
  if (combined > 0 && first && issues[combined]?.instancePath === first.instancePath) {
    const param = fieldPath(first.instancePath);
    return {
      param,
      message: `"${param}" ${alternatives(issues.slice(0, combined).filter((i) => i.instancePath === first.instancePath))}`,
    };
  }
  if (first === undefined) return { param: 'body', message: 'The request body is not valid' };
  switch (first.keyword) {
    case 'required': {
      const param = fieldPath(first.instancePath, String(first.params.missingProperty));
      return { param, message: `"${param}" is required` };
    }
    case 'additionalProperties': {
      const param = fieldPath(first.instancePath, String(first.params.additionalProperty));
      const where = first.instancePath === '' ? 'the body' : `"${fieldPath(first.instancePath)}"`;
      return {
        param,
        message: `"${param}" is not a field of ${where} (see /docs for the fields this API takes)`,
      };
    }
    default: {
      const param = fieldPath(first.instancePath);
      return { param, message: `"${param}" ${requirement(first)}` };
    }
  }
}
