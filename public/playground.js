// The playground: sends the form to POST /llm/query as a resumable answer and renders the SSE answer
// as it arrives; a reload (or a lost connection) resumes it, Stop cancels it.
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
/** The answer in flight (`{ controller, state }`), or null. */
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

/** Where the answer in flight is kept, so that a reload resumes it (this tab only). */
const SAVED = 'llmc-playground-answer';
/** A lost connection is resumed this many times in a row before the answer is given up. */
const MAX_RESUMES = 5;

function keyHeaders(key) {
  return key ? { authorization: `Bearer ${key}` } : {};
}

/** The answer being shown: its id (once known), the last event id seen, and what it has said so far. */
function beginAnswer(prompt, { text = '', answerId = null, after = 0, key = fields.key.value } = {}) {
  renderTranscript(prompt);
  answer.className = '';
  meta.textContent = '';
  const node = document.createTextNode(text);
  answer.replaceChildren(node);
  setBusy(true);
  return {
    prompt,
    key,
    node,
    answerId,
    after,
    started: performance.now(),
    firstTokenMs: null,
    done: null,
    failure: null,
    streaming: false,
  };
}

/** Keeps the answer's progress in sessionStorage (the client key too, for this tab, until the answer ends). */
function save(state) {
  if (state.answerId === null) return;
  const saved = {
    answerId: state.answerId,
    after: state.after,
    text: state.node.data,
    prompt: state.prompt,
    key: state.key,
    history,
    multiTurn: multiTurn.checked,
  };
  sessionStorage.setItem(SAVED, JSON.stringify(saved));
}

function forget() {
  sessionStorage.removeItem(SAVED);
}

/** Reads an SSE response into the answer until it ends (or the connection drops). */
async function readAnswer(res, state) {
  const parser = createSseParser(({ event, data, id }) => {
    if (state.done || state.failure) return;
    if (id !== undefined) state.after = Number(id);
    const payload = JSON.parse(data);
    if (event === 'start') {
      state.answerId ??= payload.answer_id ?? null;
    } else if (event === 'delta') {
      state.firstTokenMs ??= performance.now() - state.started;
      state.node.appendData(payload.text);
    } else if (event === 'done') {
      state.done = payload;
    } else if (event === 'error') {
      state.failure = payload;
    }
  });
  const reader = res.body.pipeThrough(new TextDecoderStream()).getReader();
  for (let chunk = await reader.read(); !chunk.done; chunk = await reader.read()) {
    parser.push(chunk.value);
    save(state);
  }
}

function pause(ms, signal) {
  return new Promise((resolve) => {
    const timer = setTimeout(resolve, ms);
    signal.addEventListener('abort', () => {
      clearTimeout(timer);
      resolve();
    });
  });
}

/**
 * Streams an answer: `open` sends the first request (null: follow the saved answer). A connection
 * lost mid-answer is resumed from the last event id, as a reload is.
 */
async function run(state, open) {
  const controller = new AbortController();
  inFlight = { controller, state };
  const follow = (signal) =>
    fetch(`llm/answers/${state.answerId}/events?after=${state.after}`, {
      headers: keyHeaders(state.key),
      signal,
    });
  let request = open ?? follow;
  let resumes = 0;
  try {
    for (;;) {
      try {
        const res = await request(controller.signal);
        if (!res.ok) {
          if (state.streaming) markIncomplete(`Incomplete answer: ${await describeErrorResponse(res)}`);
          else setStatus(`Error ${await describeErrorResponse(res)}`, 'error');
          forget();
          return;
        }
        state.answerId ??= res.headers.get('x-answer-id');
        state.streaming = true;
        setStatus('Streaming…');
        await readAnswer(res, state);
        if (state.done || state.failure || state.answerId === null) break;
        throw new Error('the stream ended early');
      } catch (error) {
        if (controller.signal.aborted) {
          markIncomplete('Stopped: the answer is incomplete.');
          return;
        }
        if (!state.streaming) {
          setStatus(`Error: the service could not be reached (${error.message}).`, 'error');
          return;
        }
        if (state.answerId === null || ++resumes > MAX_RESUMES) {
          markIncomplete(`Incomplete answer: the connection failed (${error.message}).`);
          forget();
          return;
        }
        setStatus('Connection lost: resuming…');
        await pause(250 * resumes, controller.signal);
        request = follow;
      }
    }
  } finally {
    inFlight = null;
    setBusy(false);
  }
  forget();
  if (state.failure) {
    markIncomplete(`Incomplete answer: ${state.failure.error.type}: ${state.failure.error.message}`);
  } else if (!state.done) {
    markIncomplete('Incomplete answer: the stream ended without a done event.');
  } else {
    setStatus('Done.', 'done');
    meta.textContent = formatMeta(state.firstTokenMs, state.done);
    if (multiTurn.checked) {
      history.push({ role: 'user', content: state.prompt }, { role: 'assistant', content: state.node.data });
      newConversation.hidden = false;
      fields.prompt.value = '';
    }
  }
}

/** Sends the form as a resumable answer: a reload or a lost connection resumes it, Stop cancels it. */
function send(prompt) {
  const state = beginAnswer(prompt);
  setStatus('Waiting for the answer…');
  const headers = { 'content-type': 'application/json', ...keyHeaders(state.key) };
  const body = JSON.stringify({ ...requestBody(prompt), resumable: true });
  return run(state, (signal) => fetch('llm/query', { method: 'POST', headers, body, signal }));
}

/** After a reload: the answer that was in flight, followed from where the page was. */
function resumeSaved() {
  let saved;
  try {
    saved = JSON.parse(sessionStorage.getItem(SAVED) ?? 'null');
  } catch {
    saved = null;
  }
  if (!saved?.answerId) return;
  history = Array.isArray(saved.history) ? saved.history : [];
  multiTurn.checked = saved.multiTurn === true;
  newConversation.hidden = history.length === 0;
  fields.prompt.value = saved.prompt;
  fields.key.value = saved.key ?? '';
  const state = beginAnswer(saved.prompt, saved);
  state.streaming = true;
  setStatus('Resuming…');
  void run(state, null);
}

/** Stop: the answer is cancelled on the service (its upstream request aborted), and no longer followed. */
function stop() {
  if (!inFlight) return;
  const { controller, state } = inFlight;
  if (state.answerId !== null) {
    void fetch(`llm/answers/${state.answerId}/cancel`, {
      method: 'POST',
      headers: keyHeaders(state.key),
    }).catch(() => undefined);
  }
  forget();
  controller.abort();
}

function markIncomplete(message) {
  answer.className = 'incomplete';
  setStatus(message, 'error');
}

function resetConversation() {
  stop();
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
  if (event.key === 'Escape' && inFlight) stop();
});

stopButton.addEventListener('click', stop);
newConversation.addEventListener('click', resetConversation);
multiTurn.addEventListener('change', resetConversation);
resumeSaved();
