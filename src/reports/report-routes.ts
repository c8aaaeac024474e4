import type { FastifyInstance, FastifyReply, FastifyRequest } from 'fastify';
import { ConnectorError } from '../errors.ts';
import { guardedRoute, type PipelineDeps } from '../http/pipeline.ts';
import { ReportError, buildReport, pageRange, parseReportQuery, type ReportKind } from './reports.ts';
import type { UsageStore } from './usage-store.ts';

export interface ReportRouteDeps extends Pick<PipelineDeps, 'guard' | 'metrics' | 'config'> {
  usage: UsageStore;
  now?: () => number;
}

const list = {
  anyOf: [{ type: 'string' }, { type: 'array', items: { type: 'string' } }],
} as const;
const text = (description: string) => ({ type: 'string', description }) as const;

const COMMON = {
  starting_at: text('RFC 3339; buckets from the one holding it (snapped to the UTC hour or day). Required.'),
  ending_at: text('RFC 3339, exclusive; default: the end of the current hour.'),
  limit: text('Buckets per page: 1d default 7, at most 31; 1h default 24, at most 168.'),
  page: text('The next_page of the previous answer.'),
};

const ERROR = {
  type: 'object',
  properties: {
    type: { const: 'error' },
    error: { type: 'object', properties: { type: { type: 'string' }, message: { type: 'string' } } },
    request_id: { type: 'string' },
  },
} as const;

function reportSchema(kind: ReportKind, summary: string, description: string, result: object) {
  const querystring = {
    type: 'object',
    properties:
      kind === 'usage'
        ? {
            ...COMMON,
            bucket_width: text('1d (default) or 1h; 1m is refused: usage is kept per hour.'),
            'group_by[]': { ...list, description: 'api_key_id and/or model' },
            'models[]': { ...list, description: 'Only these models' },
            'api_key_ids[]': { ...list, description: 'Only these client key names' },
          }
        : {
            ...COMMON,
            bucket_width: text('1d (the default and only width)'),
            'group_by[]': { ...list, description: 'api_key_id, model and/or description' },
          },
  };
  const body = (schema: object, what: string) => ({
    description: what,
    content: { 'application/json': { schema } },
  });
  return {
    summary,
    description,
    tags: ['reports'],
    querystring,
    response: {
      200: body(
        {
          type: 'object',
          properties: {
            data: {
              type: 'array',
              items: {
                type: 'object',
                properties: {
                  starting_at: { type: 'string' },
                  ending_at: { type: 'string' },
                  results: { type: 'array', items: result },
                },
              },
            },
            has_more: { type: 'boolean' },
            next_page: { type: ['string', 'null'] },
          },
        },
        'One page of time buckets',
      ),
      400: body(ERROR, 'A query parameter is not valid (the message names it)'),
      401: body(ERROR, 'A client key is missing or not valid'),
      429: body(ERROR, "The key's RATE_LIMIT_RPM is reached (see Retry-After)"),
      503: body(ERROR, 'The usage store (Redis) cannot be read right now'),
    },
  };
}

const USAGE_RESULT = {
  type: 'object',
  properties: {
    uncached_input_tokens: { type: 'integer' },
    cache_creation: {
      type: 'object',
      properties: {
        ephemeral_1h_input_tokens: { type: 'integer' },
        ephemeral_5m_input_tokens: { type: 'integer' },
      },
    },
    cache_read_input_tokens: { type: 'integer' },
    output_tokens: { type: 'integer' },
    server_tool_use: { type: 'object', properties: { web_search_requests: { type: 'integer' } } },
    api_key_id: { type: ['string', 'null'], description: "The client key's name, or anonymous" },
    workspace_id: { type: 'null' },
    model: { type: ['string', 'null'] },
    service_tier: { type: 'null' },
    context_window: { type: 'null' },
    request_count: { type: 'integer', description: 'Answers counted (not in Anthropic’s report)' },
  },
};

const COST_RESULT = {
  type: 'object',
  properties: {
    currency: { const: 'USD' },
    amount: { type: 'string', description: 'Cents, as a decimal string' },
    workspace_id: { type: 'null' },
    description: { type: ['string', 'null'] },
    cost_type: { type: ['string', 'null'] },
    context_window: { type: 'null' },
    model: { type: ['string', 'null'] },
    service_tier: { type: 'null' },
    token_type: { type: ['string', 'null'] },
    api_key_id: {
      type: ['string', 'null'],
      description: 'With group_by[]=api_key_id (not in Anthropic’s report)',
    },
    unpriced_tokens: {
      type: 'integer',
      description: 'Tokens of models with no known price, not in amount (not in Anthropic’s report)',
    },
  },
};

const WHO =
  'With client keys on, an admin key (ADMIN_API_KEYS, or role=admin) reads every key; any other key only its own rows.';

/**
 * `GET /v1/organizations/usage_report/messages` and `GET /v1/organizations/cost_report`: the usage kept
 * per hour, key and model, in the shapes of Anthropic's Admin API. Guarded routes that never call the
 * upstream: authenticated and counted against the key's `rpm` only, like the stored answers' routes.
 */
export function reportRoutes(deps: ReportRouteDeps) {
  const now = deps.now ?? Date.now;
  const handler =
    (kind: ReportKind) =>
    async (request: FastifyRequest, reply: FastifyReply): Promise<void> => {
      const { client } = request;
      let query;
      try {
        query = parseReportQuery(kind, request.query as Record<string, string | string[]>, now());
      } catch (error) {
        if (error instanceof ReportError)
          throw new ConnectorError('invalid_request_error', 400, error.message);
        throw error;
      }
      // Without client keys every request is the one anonymous client, which sees all there is.
      const reader = client === null || client.admin === true ? undefined : client.name;
      const { fromMs, toMs } = pageRange(query);
      let rows;
      try {
        rows = await deps.usage.read(fromMs, toMs);
      } catch {
        throw new ConnectorError(
          'overloaded_error',
          503,
          'The usage store cannot be read right now; retry shortly',
          {
            retryAfter: '1',
          },
        );
      }
      await reply.type('application/json').send(JSON.stringify(buildReport(query, rows, reader)));
    };

  return (app: FastifyInstance, _options: unknown, done: () => void): void => {
    guardedRoute(app, deps, {
      method: 'GET',
      url: '/v1/organizations/usage_report/messages',
      schema: reportSchema(
        'usage',
        'Token usage per time bucket, in the shape of Anthropic’s usage report',
        `Tokens by kind per UTC hour or day, optionally by api_key_id (the client key's name) and model. ${WHO}`,
        USAGE_RESULT,
      ),
      errorShape: 'anthropic',
      handler: handler('usage'),
    });
    guardedRoute(app, deps, {
      method: 'GET',
      url: '/v1/organizations/cost_report',
      schema: reportSchema(
        'cost',
        'Cost per UTC day in USD cents, in the shape of Anthropic’s cost report',
        `amount is in cents, as a decimal string; tokens of models with no known price are counted in unpriced_tokens, never as $0. ${WHO}`,
        COST_RESULT,
      ),
      errorShape: 'anthropic',
      handler: handler('cost'),
    });
    done();
  };
}
