// The playground: sends the form to POST /llm/query and renders the SSE answer as it arrives.
import { createSseParser } from './sse.js';

const $ = (id) => document.getElementById(id);
const form = $('ask');
const fields = {
  prompt: $('prompt'),
  system: $('system'),
  model: $('model'),
  maxTokens: $('max-tokens'),
  key: $('key'),
};
const multiTurn = $('multi-turn');
const newConversation = $('new-conversation');
const sendButton = $('send');
const stopButton = $('stop');
const transcript = $('transcript');
const statusLine = $('status');
const answer = $('answer');
const meta = $('meta');

/** Completed turns of the conversation: a turn joins only once its answer is `done`. */
let history = [];
/** The AbortController of the request in flight, or null. */
let inFlight = null;

function setStatus(text, kind = '') {
  statusLine.textContent = text;
  statusLine.className = kind;
}

function setBusy(busy) {
  // A button that gets disabled drops keyboard focus: hand it on instead of losing it.
  const refocus = document.activeElement === (busy ? sendButton : stopButton);
  sendButton.disabled = busy;
  stopButton.disabled = !busy;
  if (refocus) (busy ? stopButton : fields.prompt).focus();
  answer.setAttribute('aria-busy', String(busy));
}

/** Shows the conversation so far, with the prompt being sent (if any) as its last turn. */
function renderTranscript(pendingPrompt) {
  const pending = pendingPrompt === undefined ? [] : [{ role: 'user', content: pendingPrompt }];
  const turns = multiTurn.checked ? [...history, ...pending] : [];
  transcript.replaceChildren(
    ...turns.map((turn) => {
      const item = document.createElement('li');
      item.className = turn.role;
      const who = document.createElement('strong');
      who.textContent = turn.role === 'user' ? 'You: ' : 'Claude: ';
      item.append(who, turn.content);
      return item;
    }),
  );
  transcript.hidden = turns.length === 0;
}

function requestBody(prompt) {
  const body = multiTurn.checked ? { messages: [...history, { role: 'user', content: prompt }] } : { prompt };
  if (fields.system.value.trim() !== '') body.system = fields.system.value;
  if (fields.model.value.trim() !== '') body.model = fields.model.value.trim();
  if (fields.maxTokens.value !== '') body.max_tokens = Number(fields.maxTokens.value);
  return body;
}

/** "429 rate_limit_error: message" from the service's JSON error envelope, or the bare status. */
async function describeErrorResponse(res) {
  let text = `${res.status} ${res.statusText}`.trim();
  try {
    const { error, request_id: requestId } = await res.json();
    text = `${res.status} ${error.type}: ${error.message}`;
    if (requestId) text += ` (request ${requestId})`;
  } catch {
    // Not the envelope: the status alone says what there is to say.
  }
  const retryAfter = res.headers.get('retry-after');
  return retryAfter ? `${text}. Retry after ${retryAfter} s.` : text;
}

function formatMeta(firstTokenMs, done) {
  const parts = [];
  if (firstTokenMs !== null) parts.push(`First token after ${Math.round(firstTokenMs)} ms`);
  parts.push(`${done.usage.input_tokens} tokens in, ${done.usage.output_tokens} out`);
  parts.push(`stop reason: ${done.stop_reason ?? 'none'}`);
  return parts.join(' · ');
}

async function send(prompt) {
  const controller = new AbortController();
  inFlight = controller;
  renderTranscript(prompt);
  answer.className = '';
  meta.textContent = '';
  const text = document.createTextNode('');
  answer.replaceChildren(text);
  setBusy(true);
  setStatus('Waiting for the answer…');

  const headers = { 'content-type': 'application/json' };
  if (fields.key.value !== '') headers.authorization = `Bearer ${fields.key.value}`;
  const started = performance.now();
  let firstTokenMs = null;
  let done = null;
  let failure = null;
  let streaming = false;
  try {
    const res = await fetch('llm/query', {
      method: 'POST',
      headers,
      body: JSON.stringify(requestBody(prompt)),
      signal: controller.signal,
    });
    if (!res.ok) {
      setStatus(`Error ${await describeErrorResponse(res)}`, 'error');
      return;
    }
    streaming = true;
    setStatus('Streaming…');
    const parser = createSseParser(({ event, data }) => {
      if (done || failure) return;
      const payload = JSON.parse(data);
      if (event === 'delta') {
        firstTokenMs ??= performance.now() - started;
        text.appendData(payload.text);
      } else if (event === 'done') {
        done = payload;
      } else if (event === 'error') {
        failure = payload;
      }
    });
    const reader = res.body.pipeThrough(new TextDecoderStream()).getReader();
    for (let chunk = await reader.read(); !chunk.done; chunk = await reader.read()) parser.push(chunk.value);
  } catch (error) {
    if (controller.signal.aborted) {
      markIncomplete('Stopped: the answer is incomplete.');
    } else if (!streaming) {
      setStatus(`Error: the service could not be reached (${error.message}).`, 'error');
    } else {
      markIncomplete(`Incomplete answer: the connection failed (${error.message}).`);
    }
    return;
  } finally {
    inFlight = null;
    setBusy(false);
  }
  if (failure) {
    markIncomplete(`Incomplete answer: ${failure.error.type}: ${failure.error.message}`);
  } else if (!done) {
    markIncomplete('Incomplete answer: the stream ended without a done event.');
  } else {
    setStatus('Done.', 'done');
    meta.textContent = formatMeta(firstTokenMs, done);
    if (multiTurn.checked) {
      history.push({ role: 'user', content: prompt }, { role: 'assistant', content: text.data });
      newConversation.hidden = false;
      fields.prompt.value = '';
    }
  }
}

function markIncomplete(message) {
  answer.className = 'incomplete';
  setStatus(message, 'error');
}

function resetConversation() {
  inFlight?.abort();
  history = [];
  newConversation.hidden = true;
  renderTranscript();
  answer.className = '';
  answer.replaceChildren();
  meta.textContent = '';
  setStatus('Ready.');
}

form.addEventListener('submit', (event) => {
  event.preventDefault();
  if (inFlight) return;
  const prompt = fields.prompt.value;
  if (prompt.trim() === '') {
    setStatus('Type a prompt first.', 'error');
    fields.prompt.focus();
    return;
  }
  void send(prompt);
});

form.addEventListener('keydown', (event) => {
  if (event.key === 'Enter' && (event.ctrlKey || event.metaKey)) {
    event.preventDefault();
    form.requestSubmit();
  }
});

document.addEventListener('keydown', (event) => {
  if (event.key === 'Escape' && inFlight) inFlight.abort();
});

stopButton.addEventListener('click', () => inFlight?.abort());
newConversation.addEventListener('click', resetConversation);
multiTurn.addEventListener('change', resetConversation);
