/**
 * What the simulated Claude knows and says: the models list, the text of a request's prompt and
 * the default answer (an echo in tests, a clearly marked notice in --mock mode). No I/O.
 */
import { asArray, isObject } from './wire.ts';
import type { JsonObject } from './wire.ts';

export const MODELS = [
  {
    type: 'model',
    id: 'claude-sonnet-5',
    display_name: 'Claude Sonnet 5',
    created_at: '2025-11-24T00:00:00Z',
  },
  { type: 'model', id: 'claude-opus-5', display_name: 'Claude Opus 5', created_at: '2025-11-24T00:00:00Z' },
  {
    type: 'model',
    id: 'claude-haiku-4-5',
    display_name: 'Claude Haiku 4.5',
    created_at: '2025-10-15T00:00:00Z',
  },
] as const;

export const MODEL_LIST = {
  data: MODELS,
  has_more: false,
  first_id: MODELS[0].id,
  last_id: MODELS[MODELS.length - 1]?.id ?? null,
};

/** Words with their following whitespace: joining the pieces gives back `text` exactly. */
export function splitWords(text: string): string[] {
  return text.match(/\s*\S+\s*/g) ?? (text === '' ? [] : [text]);
}

function textOf(content: unknown): string {
  if (typeof content === 'string') return content;
  const parts: string[] = [];
  for (const block of asArray(content)) {
    if (isObject(block) && block.type === 'text' && typeof block.text === 'string') parts.push(block.text);
  }
  return parts.join('\n');
}

function lastUserText(body: JsonObject): string {
  const messages = asArray(body.messages);
  for (let i = messages.length - 1; i >= 0; i--) {
    const message = messages[i];
    if (isObject(message) && message.role === 'user') return textOf(message.content);
  }
  return '';
}

/** The system prompt and every message's text, one per line. */
export function promptText(body: JsonObject): string {
  const texts = asArray(body.messages).map((m) => (isObject(m) ? textOf(m.content) : ''));
  return [textOf(body.system), ...texts].join('\n');
}

export function defaultText(body: JsonObject, simulated: boolean): string {
  const prompt = lastUserText(body);
  if (!simulated) return `You said: ${prompt}`;
  const shown = prompt.length > 200 ? `${prompt.slice(0, 200)}…` : prompt;
  return (
    `[Simulated Claude — no real model was called] You asked: "${shown}". ` +
    'This answer comes from the built-in mock upstream, so no API key was used and nothing left this machine. ' +
    'Run the connector without --mock and with a real Anthropic API key to get genuine answers from Claude.'
  );
}
