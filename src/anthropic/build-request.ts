/** Pure: a validated `/llm/query` body → the JSON text of an upstream Messages request (always streamed). */
export interface QueryInput {
  prompt?: string | undefined;
  messages?: { role: 'user' | 'assistant'; content: string }[] | undefined;
  system?: string | undefined;
  model?: string | undefined;
  max_tokens?: number | undefined;
  temperature?: number | undefined;
  top_p?: number | undefined;
  top_k?: number | undefined;
  stop_sequences?: string[] | undefined;
}

export interface RequestDefaults {
  model: string;
  maxTokens: number;
}

const OPTIONAL_FIELDS = ['system', 'temperature', 'top_p', 'top_k', 'stop_sequences'] as const;

export function buildMessagesBody(input: QueryInput, defaults: RequestDefaults): string {
  const body: Record<string, unknown> = {
    model: input.model ?? defaults.model,
    max_tokens: input.max_tokens ?? defaults.maxTokens,
    messages: input.messages ?? [{ role: 'user', content: input.prompt }],
    stream: true,
  };
  for (const field of OPTIONAL_FIELDS) {
    if (input[field] !== undefined) body[field] = input[field];
  }
  return JSON.stringify(body);
}
