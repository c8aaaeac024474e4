/**
 * A small Server-Sent Events parser for text that arrives in arbitrary pieces: an event, a line, a
 * field name or a `\r\n` may be split across chunks. Comment lines (`: keep-alive`) are ignored.
 * Push decoded text (TextDecoderStream handles UTF-8 split across chunks); each complete event is
 * handed to `onEvent({ event, data })` with its `data:` lines joined by `\n`, and its `id` when it
 * has an `id:` line (resumable answers number their events).
 */
export function createSseParser(onEvent) {
  let buffer = '';
  let event = '';
  let data = [];
  let id = null;

  function line(text) {
    if (text === '') {
      if (data.length > 0) {
        const parsed = { event: event || 'message', data: data.join('\n') };
        if (id !== null) parsed.id = id;
        onEvent(parsed);
      }
      event = '';
      data = [];
      id = null;
      return;
    }
    if (text.startsWith(':')) return;
    const colon = text.indexOf(':');
    const field = colon === -1 ? text : text.slice(0, colon);
    let value = colon === -1 ? '' : text.slice(colon + 1);
    if (value.startsWith(' ')) value = value.slice(1);
    if (field === 'event') event = value;
    else if (field === 'data') data.push(value);
    else if (field === 'id') id = value;
  }

  return {
    push(text) {
      buffer += text;
      const eol = /\r\n|\r|\n/g;
      let start = 0;
      for (let match = eol.exec(buffer); match !== null; match = eol.exec(buffer)) {
        // A lone trailing \r may be the first half of \r\n: wait for the next piece.
        if (match[0] === '\r' && match.index === buffer.length - 1) break;
        line(buffer.slice(start, match.index));
        start = eol.lastIndex;
      }
      buffer = buffer.slice(start);
    },
  };
}
