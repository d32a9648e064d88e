// POST /api/v1/chat read by the AI SDK's own UI message stream reader.
//
//   ALUMIA_KEY=<bearer key> node check.mjs <base url>
//
// The server must run the built-in `dev/echo` model (every server does).
// `./run` starts one and mints the key. Every stream goes through the real
// `ai` package: `DefaultChatTransport` (what `useChat` uses) or
// `parseJsonEventStream` + `uiMessageChunkSchema`, then `readUIMessageStream`.
// A chunk the SDK rejects fails the check with the SDK's error and the chunk.
// Prints one line per check and exits non-zero if any failed.

import { isDeepStrictEqual } from 'node:util';
import {
  DefaultChatTransport,
  parseJsonEventStream,
  readUIMessageStream,
  uiMessageChunkSchema,
} from 'ai';

const base = process.argv[2]?.replace(/\/+$/, '');
const KEY = process.env.ALUMIA_KEY;
if (!base || !KEY) {
  console.error('usage: ALUMIA_KEY=<key> node check.mjs <base url>');
  process.exit(2);
}
const API = `${base}/api/v1/chat`;
const AUTH = { authorization: `Bearer ${KEY}` };
const CHECK_TIMEOUT_MS = 20_000;

class CheckFailed extends Error {}
const fail = (message) => { throw new CheckFailed(message); };
const check = (cond, message) => { if (!cond) fail(message); };
const show = (v) => JSON.stringify(v);
const plain = (v) => (v === undefined ? undefined : JSON.parse(JSON.stringify(v)));
const expectEqual = (actual, expected, what) =>
  check(isDeepStrictEqual(plain(actual), plain(expected)), `${what}: expected ${show(expected)}, got ${show(actual)}`);

// ---------- HTTP: the SDK's own requests, recorded on the way ----------

/** Every request the transport makes: status, headers, the raw SSE text. */
const exchanges = [];

/** A `fetch` for the transport that records what went over the wire. */
async function recordingFetch(input, init = {}) {
  const res = await fetch(input, init);
  const ex = {
    method: init.method ?? 'GET',
    url: String(input),
    requestBody: init.body,
    status: res.status,
    headers: res.headers,
    raw: '',
    complete: false,
  };
  exchanges.push(ex);
  if (!res.body) return res;
  const decoder = new TextDecoder();
  const body = res.body.pipeThrough(new TransformStream({
    transform(bytes, controller) {
      ex.raw += decoder.decode(bytes, { stream: true });
      controller.enqueue(bytes);
    },
    flush() { ex.complete = true; },
  }));
  return new Response(body, { status: res.status, statusText: res.statusText, headers: res.headers });
}

const transport = new DefaultChatTransport({ api: API, headers: AUTH, fetch: recordingFetch });

function userMessage(id, text) {
  return { id, role: 'user', parts: [{ type: 'text', text }] };
}

/** A submit through `DefaultChatTransport.sendMessages`, as `useChat` sends it. */
async function send(chatId, messages, abortSignal) {
  const before = exchanges.length;
  const stream = await transport.sendMessages({
    chatId,
    messages,
    trigger: 'submit-message',
    messageId: undefined,
    abortSignal,
  });
  return { stream, exchange: exchanges[before] };
}

/**
 * Feeds UI message chunks to `readUIMessageStream`. Returns the last
 * snapshot, every chunk the SDK parsed, what `onError` got, and what the
 * iterator threw.
 */
async function assemble(chunks, { terminateOnError = true } = {}) {
  const seen = [];
  const errors = [];
  let message;
  let threw = null;
  const tapped = chunks.pipeThrough(new TransformStream({
    transform(chunk, controller) { seen.push(chunk); controller.enqueue(chunk); },
  }));
  try {
    for await (const snapshot of readUIMessageStream({
      stream: tapped,
      terminateOnError,
      onError: (e) => errors.push(e),
    })) {
      message = plain(snapshot);
    }
  } catch (e) {
    threw = e;
  }
  return { message, chunks: seen, errors, threw };
}

/** What the SDK said, and for a rejected chunk the chunk itself. */
function describe(e) {
  if (!e) return String(e);
  // A rejected chunk's message lists every branch of the chunk union; the
  // error's name and the chunk itself say what matters.
  if (e.value !== undefined) return `${e.name ?? 'Error'}: rejected chunk ${show(e.value)}`;
  return `${e.name ?? 'Error'}: ${e.message}`;
}

/** Fails unless the SDK read the whole stream without any complaint. */
function assertClean(result, exchange, what) {
  const complaints = [...new Set([...result.errors, ...(result.threw ? [result.threw] : [])])];
  if (complaints.length) {
    const lastRaw = exchange?.raw.trimEnd().split('\n\n').slice(-3).join('\n\n');
    fail(`${what}: the AI SDK reported ${complaints.map(describe).join('; ')}` +
      `\n    after ${result.chunks.length} accepted chunks, the last: ${show(result.chunks.at(-1))}` +
      (lastRaw ? `\n    last raw SSE events:\n${lastRaw.replace(/^/gm, '      ')}` : ''));
  }
  check(result.message, `${what}: readUIMessageStream produced no message`);
  assertWire(result, exchange, what);
}

/** Headers, `start` first, `finish` last, and the `[DONE]` terminator. */
function assertWire(result, exchange, what) {
  if (exchange) {
    check(exchange.status === 200, `${what}: HTTP ${exchange.status}`);
    check(exchange.headers.get('x-vercel-ai-ui-message-stream') === 'v1',
      `${what}: x-vercel-ai-ui-message-stream is ${show(exchange.headers.get('x-vercel-ai-ui-message-stream'))}, want "v1"`);
    check((exchange.headers.get('content-type') ?? '').startsWith('text/event-stream'),
      `${what}: content-type is ${show(exchange.headers.get('content-type'))}`);
    check(exchange.complete && exchange.raw.endsWith('data: [DONE]\n\n'),
      `${what}: the SSE body does not end with "data: [DONE]": …${show(exchange.raw.slice(-80))}`);
  }
  const { chunks } = result;
  check(chunks[0]?.type === 'start', `${what}: first chunk is ${show(chunks[0])}, want type "start"`);
  check(chunks.at(-1)?.type === 'finish', `${what}: last chunk is ${show(chunks.at(-1))}, want type "finish"`);
  check(chunks.filter((c) => c.type === 'start').length === 1, `${what}: more than one "start" chunk`);
}

const partTypes = (m) => m.parts.map((p) => p.type);
const textParts = (m) => m.parts.filter((p) => p.type === 'text');

/** The common shape of a finished assistant message. */
function assertAssistant(result, what) {
  const { message, chunks } = result;
  const start = chunks[0];
  check(message.role === 'assistant', `${what}: role ${show(message.role)}`);
  check(typeof start.messageId === 'string' && start.messageId.length > 0,
    `${what}: start chunk has no messageId: ${show(start)}`);
  check(message.id === start.messageId, `${what}: message id ${show(message.id)} ≠ start.messageId ${show(start.messageId)}`);
  const steps = chunks.filter((c) => c.type === 'start-step').length;
  check(partTypes(message).filter((t) => t === 'step-start').length === steps,
    `${what}: ${steps} start-step chunks but parts ${show(partTypes(message))}`);
}

async function getJson(path) {
  const res = await fetch(`${base}${path}`, { headers: AUTH });
  const body = await res.json().catch(() => null);
  check(res.status === 200, `GET ${path}: HTTP ${res.status} ${show(body)}`);
  return body.data;
}

// ---------- the checks ----------

const state = {}; // what later checks reuse: { plain, tool, reason, reconnect }

async function plainTurn() {
  const sent = userMessage('u1', 'hello from the ai sdk');
  const res = await fetch(API, {
    method: 'POST',
    headers: { ...AUTH, 'content-type': 'application/json' },
    body: JSON.stringify({ messages: [sent] }),
  });
  if (!res.ok) fail(`POST /api/v1/chat: HTTP ${res.status}: ${await res.text()}`);
  const exchange = { status: res.status, headers: res.headers, raw: '', complete: false };
  const decoder = new TextDecoder();
  const bytes = res.body.pipeThrough(new TransformStream({
    transform(b, c) { exchange.raw += decoder.decode(b, { stream: true }); c.enqueue(b); },
    flush() { exchange.complete = true; },
  }));
  const chunks = parseJsonEventStream({ stream: bytes, schema: uiMessageChunkSchema })
    .pipeThrough(new TransformStream({
      transform(r, c) { if (!r.success) throw r.error; c.enqueue(r.value); },
    }));
  const result = await assemble(chunks);
  assertClean(result, exchange, 'plain turn');
  assertAssistant(result, 'plain turn');
  const { message, chunks: seen } = result;
  expectEqual(partTypes(message), ['step-start', 'text'], 'plain turn: part types');
  expectEqual(textParts(message)[0].text, 'echo: hello from the ai sdk', 'plain turn: text');
  check(textParts(message)[0].state === 'done', `plain turn: text part state ${show(textParts(message)[0].state)}`);

  const md = message.metadata ?? {};
  const sessionId = res.headers.get('x-alumia-session-id');
  const turnId = res.headers.get('x-alumia-turn-id');
  check(md.sessionId && md.sessionId === sessionId,
    `plain turn: metadata.sessionId ${show(md.sessionId)} vs x-alumia-session-id ${show(sessionId)}`);
  check(md.turnId && md.turnId === turnId,
    `plain turn: metadata.turnId ${show(md.turnId)} vs x-alumia-turn-id ${show(turnId)}`);
  check(md.model === 'dev/echo', `plain turn: metadata.model ${show(md.model)}`);
  check(typeof md.agentId === 'string', `plain turn: metadata.agentId ${show(md.agentId)}`);
  check(Number.isInteger(md.usage?.inputTokens) && Number.isInteger(md.usage?.outputTokens) && md.usage.outputTokens > 0,
    `plain turn: metadata.usage ${show(md.usage)} (start and finish metadata must merge)`);
  const finish = seen.at(-1);
  check(finish.finishReason === 'stop', `plain turn: finish ${show(finish)}`);
  state.plain = { sessionId, message, sent };
  return `message ${message.id}, text ${show(textParts(message)[0].text)}, ` +
    `metadata {sessionId, turnId, agentId, model, usage ${show(md.usage)}}, header v1`;
}

async function toolTurn() {
  const sent = userMessage('u-tool', '/tool echo {"text":"hi"}\nok');
  const { stream, exchange } = await send('ai-sdk-tool', [sent]);
  const result = await assemble(stream);
  assertClean(result, exchange, 'tool turn');
  assertAssistant(result, 'tool turn');
  const { message } = result;
  expectEqual(partTypes(message), ['step-start', 'tool-echo', 'step-start', 'text'], 'tool turn: part types');
  const tool = message.parts[1];
  check(tool.state === 'output-available', `tool turn: tool part state ${show(tool.state)}`);
  check(typeof tool.toolCallId === 'string' && tool.toolCallId, `tool turn: toolCallId ${show(tool.toolCallId)}`);
  expectEqual(tool.input, { text: 'hi' }, 'tool turn: tool input');
  expectEqual(tool.output, { text: 'hi' }, 'tool turn: tool output');
  expectEqual(textParts(message)[0].text, 'echo: ok\ntool echo returned {"text":"hi"}', 'tool turn: text');
  check(result.chunks.some((c) => c.type === 'data-activity' && c.transient === true),
    'tool turn: no transient data-activity chunk');
  state.tool = { sessionId: message.metadata?.sessionId, message, sent };
  return `tool-echo ${tool.toolCallId} output-available ${show(tool.output)}, 2 steps, ` +
    `text ${show(textParts(message)[0].text)}, transient data-activity kept out of parts`;
}

async function reasoningTurn() {
  const sent = userMessage('u-reason', '/reason thinking hard\nhi');
  const { stream, exchange } = await send('ai-sdk-reason', [sent]);
  const result = await assemble(stream);
  assertClean(result, exchange, 'reasoning turn');
  assertAssistant(result, 'reasoning turn');
  const { message } = result;
  expectEqual(partTypes(message), ['step-start', 'reasoning', 'text'], 'reasoning turn: part types');
  expectEqual(message.parts[1].text, 'thinking hard', 'reasoning turn: reasoning text');
  check(message.parts[1].state === 'done', `reasoning turn: reasoning state ${show(message.parts[1].state)}`);
  expectEqual(message.parts[2].text, 'echo: hi', 'reasoning turn: text');
  state.reason = { sessionId: message.metadata?.sessionId, message, sent };
  return `reasoning ${show(message.parts[1].text)} before text ${show(message.parts[2].text)}`;
}

async function errorTurn() {
  const want = 'dev/echo error: boom';
  // onError, and the stream still completes.
  const first = await send('ai-sdk-error', [userMessage('u-error', '/error boom')]);
  const soft = await assemble(first.stream, { terminateOnError: false });
  check(!soft.threw, `error turn: the iterator threw ${describe(soft.threw)}`);
  check(soft.errors.length === 1 && soft.errors[0]?.message === want,
    `error turn: onError got ${soft.errors.map(describe).join('; ') || 'nothing'}, want exactly ${show(want)}`);
  check(soft.message, 'error turn: no message');
  assertWire(soft, first.exchange, 'error turn');
  const errorAt = soft.chunks.findIndex((c) => c.type === 'error');
  check(errorAt > 0 && soft.chunks[errorAt].errorText === want, `error turn: error chunk ${show(soft.chunks[errorAt])}`);
  expectEqual(soft.chunks.slice(errorAt + 1).map((c) => [c.type, c.finishReason]),
    [['finish', 'error']], 'error turn: chunks after the error');
  check(soft.message.id === soft.chunks[0].messageId, 'error turn: message id ≠ start.messageId');

  // terminateOnError: the iterator itself fails with the error text.
  const second = await send('ai-sdk-error-2', [userMessage('u-error-2', '/error boom')]);
  const hard = await assemble(second.stream, { terminateOnError: true });
  check(hard.threw?.message === want, `error turn (terminateOnError): threw ${describe(hard.threw)}, want ${show(want)}`);
  check(hard.errors.every((e) => e?.message === want), `error turn (terminateOnError): onError got ${hard.errors.map(describe).join('; ')}`);
  return `onError ${show(want)}, stream completed with finish{error} and [DONE]; terminateOnError throws it`;
}

async function reconnect() {
  const words = 'one two three four five six seven eight';
  const want = `echo: ${words}`;
  const abort = new AbortController();
  const { stream } = await send('ai-sdk-reconnect', [userMessage('u-reconnect', `/delay 100\n${words}`)], abort.signal);

  // Read until two text deltas arrived, then hang up.
  const early = [];
  const reader = stream.getReader();
  while (early.filter((c) => c.type === 'text-delta').length < 2) {
    const { value, done } = await reader.read();
    check(!done, `reconnect: the stream ended after ${early.length} chunks, before two text deltas`);
    early.push(value);
  }
  abort.abort();
  await reader.cancel().catch(() => {});
  const start = early[0];
  check(start?.type === 'start', `reconnect: first chunk ${show(start)}`);
  const sessionId = start.messageMetadata?.sessionId;
  check(typeof sessionId === 'string', `reconnect: start has no messageMetadata.sessionId: ${show(start)}`);
  const partial = early.filter((c) => c.type === 'text-delta').map((c) => c.delta).join('');
  check(partial.length < want.length && want.startsWith(partial), `reconnect: early text ${show(partial)}`);

  // DefaultChatTransport's own reconnect: GET {api}/{chatId}/stream.
  const before = exchanges.length;
  const resumed = await transport.reconnectToStream({ chatId: sessionId });
  const exchange = exchanges[before];
  check(exchange?.url === `${API}/${sessionId}/stream`, `reconnect: requested ${show(exchange?.url)}`);
  check(resumed !== null, `reconnect: got 204 (no running turn): the turn ended too soon or was stopped by the disconnect`);
  const result = await assemble(resumed);
  assertClean(result, exchange, 'reconnect');
  assertAssistant(result, 'reconnect');
  const { message } = result;
  check(message.id === start.messageId, `reconnect: message id ${show(message.id)} ≠ the first stream's ${show(start.messageId)}`);
  expectEqual(partTypes(message), ['step-start', 'text'], 'reconnect: part types');
  expectEqual(textParts(message)[0].text, want, 'reconnect: full text');
  check(result.chunks.at(-1).finishReason === 'stop', `reconnect: finish ${show(result.chunks.at(-1))}`);

  // The turn is over: nothing to resume.
  const after = exchanges.length;
  const none = await transport.reconnectToStream({ chatId: sessionId });
  check(none === null, 'reconnect: a second reconnect after the turn returned a stream, want null (204)');
  check(exchanges[after]?.status === 204, `reconnect: second reconnect HTTP ${exchanges[after]?.status}, want 204`);
  state.reconnect = { sessionId, message, sent: userMessage('u-reconnect', `/delay 100\n${words}`) };
  return `aborted after ${show(partial)}; reconnectToStream replayed the whole message ${show(want)}; then null (204)`;
}

async function storedHistory() {
  const done = ['plain', 'tool', 'reason', 'reconnect'].filter((k) => state[k]);
  check(done.length === 4, `stored history: needs checks 1, 2, 3 and 5 to pass first (have ${done.join(', ') || 'none'})`);
  const reasoningIds = new Set();
  for (const name of done) {
    const { sessionId, message, sent } = state[name];
    const page = await getJson(`/api/v1/sessions/${sessionId}/messages`);
    const items = page.items;
    expectEqual(items.map((m) => [m.role, m.id]), [['user', sent.id], ['assistant', message.id]],
      `stored history (${name}): [role, id] of the messages`);
    expectEqual(items[0].parts, sent.parts, `stored history (${name}): user parts`);
    const stored = items[1];
    check(stored.status === 'complete', `stored history (${name}): status ${show(stored.status)}`);
    expectEqual(stored.text, textParts(message).map((p) => p.text).join(''), `stored history (${name}): assistant text`);
    // The one allowed difference: ai@6 keeps the optional `id` of a
    // reasoning part (from `reasoning-start`); spec 03 §3 stores `reasoning {text}`.
    const assembled = plain(message.parts).map((p) => {
      if (p.type !== 'reasoning' || !('id' in p)) return p;
      reasoningIds.add(p.id);
      const { id: _, ...rest } = p;
      return rest;
    });
    expectEqual(stored.parts, assembled, `stored history (${name}): assistant parts vs what the SDK assembled`);
  }
  return `${done.length} sessions: user + assistant with the SDK's message id, text and parts deep-equal` +
    (reasoningIds.size ? ` (except the SDK's optional reasoning part id ${show([...reasoningIds])}, not stored)` : '');
}

async function followUp() {
  // What useChat sends next: the whole history, with id = the chat id.
  const prior = state.plain;
  check(prior, 'follow-up: needs check 1 to pass first');
  const next = userMessage('u2', 'and again');
  const { stream, exchange } = await send(prior.sessionId, [prior.sent, prior.message, next]);
  const result = await assemble(stream);
  assertClean(result, exchange, 'follow-up');
  assertAssistant(result, 'follow-up');
  const { message } = result;
  check(message.metadata?.sessionId === prior.sessionId,
    `follow-up: sessionId ${show(message.metadata?.sessionId)}, want the same chat ${show(prior.sessionId)}`);
  check(message.id !== prior.message.id, 'follow-up: the new assistant message reused the old id');
  expectEqual(textParts(message).map((p) => p.text), ['echo: and again'], 'follow-up: text');
  const items = (await getJson(`/api/v1/sessions/${prior.sessionId}/messages`)).items;
  expectEqual(items.map((m) => [m.role, m.id]),
    [['user', 'u1'], ['assistant', prior.message.id], ['user', 'u2'], ['assistant', message.id]],
    'follow-up: stored [role, id]');
  return `same session, 4 stored messages, text ${show(textParts(message)[0].text)}`;
}

const checks = [
  ['plain turn (fetch + parseJsonEventStream + readUIMessageStream)', plainTurn],
  ['tool turn (DefaultChatTransport)', toolTurn],
  ['reasoning turn', reasoningTurn],
  ['error turn', errorTurn],
  ['reconnect (DefaultChatTransport.reconnectToStream)', reconnect],
  ['stored history matches the SDK', storedHistory],
  ['follow-up turn with the whole history (as useChat sends it)', followUp],
];

let failed = 0;
for (const [i, [name, run]] of checks.entries()) {
  const t0 = performance.now();
  let timer;
  try {
    const detail = await Promise.race([
      run(),
      new Promise((_, reject) => { timer = setTimeout(() => reject(new CheckFailed(`timed out after ${CHECK_TIMEOUT_MS} ms`)), CHECK_TIMEOUT_MS); }),
    ]);
    console.log(`ok   ${i + 1} ${name} (${Math.round(performance.now() - t0)} ms): ${detail}`);
  } catch (e) {
    failed++;
    const why = e instanceof CheckFailed ? e.message : `unexpected ${describe(e)}\n${e?.stack ?? ''}`;
    console.log(`FAIL ${i + 1} ${name}: ${why}`);
  } finally {
    clearTimeout(timer);
  }
}
console.log(failed ? `${failed} of ${checks.length} checks failed` : `all ${checks.length} checks passed`);
process.exit(failed ? 1 : 0);
