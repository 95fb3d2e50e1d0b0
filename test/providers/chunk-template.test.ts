import t from 'tap';
import { type StreamEvent, UpstreamError } from '../../src/providers/api.js';
import { bytesLiteral, ChunkTemplate, stringLiteral } from '../../src/providers/chunk-template.js';
import { OpenAiAdapter } from '../../src/providers/openai.js';
import { SseDecoder } from '../../src/providers/sse.js';
import { mulberry32 } from '../../src/text/random.js';

const lit = (s: string) => stringLiteral(s, 0, s.length);

t.test('stringLiteral reads exactly one valid JSON string literal', async (t) => {
  t.equal(lit('"hello"'), 'hello');
  t.equal(lit('""'), '');
  t.equal(lit('" 🌧 é"'), ' 🌧 é', 'raw non-ASCII');
  t.equal(lit('"a\\"b\\\\c\\n\\u00e9\\ud83c\\udf27"'), 'a"b\\c\né🌧', 'escapes');
  t.equal(stringLiteral('xx"mid"yy', 2, 7), 'mid', 'a range inside a longer string');
  for (const bad of ['"a"b"', '"a', 'a"', '"', '', '"a\nb"', '"\t"', '"a\\"', '"\\x"', '"\\u12"', '"a","b"', ' "a"', '"a" ', 'null', '1']) {
    t.equal(lit(bad), undefined, `not one literal: ${JSON.stringify(bad)}`);
  }
});

t.test('bytesLiteral reads the same literals from UTF-8 bytes', async (t) => {
  const cases = ['"hello"', '""', '" 🌧 é"', '"a\\"b\\\\c\\n\\u00e9\\ud83c\\udf27"', '"a"b"', '"a', 'a"', '"', '', '"a\nb"', '"\t"', '"a\\"', '"\\x"', '"a","b"', ' "a"', 'null'];
  for (const c of cases) {
    const b = Buffer.from(`xx${c}yy`);
    t.equal(bytesLiteral(b, 2, b.length - 2), lit(c), `as stringLiteral: ${JSON.stringify(c)}`);
  }
  // Bytes that are not UTF-8 decode to U+FFFD, as decoding the whole chunk would.
  const bad = Buffer.from([0x22, 0x61, 0xff, 0xc3, 0x22]);
  t.equal(bytesLiteral(bad, 0, bad.length), lit(bad.toString('utf8')));
  t.equal(bytesLiteral(bad, 0, bad.length), 'a\ufffd\ufffd');
});

const head = '{"id":"chatcmpl-1","object":"chat.completion.chunk","created":1,"model":"m","choices":[{"index":0,"delta":{"content":';
const tail = '},"logprobs":null,"finish_reason":null}]}';
const chunk = (text: string) => `${head}${JSON.stringify(text)}${tail}`;
const probeIsText = (data: string, probe: string) => JSON.parse(data).choices[0].delta.content === probe;

t.test('ChunkTemplate matches chunks that differ from the learnt one only in the text', async (t) => {
  const tpl = new ChunkTemplate('content');
  t.equal(tpl.match(chunk('a')), undefined, 'nothing learnt yet');
  tpl.learn(chunk('Hello'), 'Hello', probeIsText);
  t.ok(tpl.ready);
  t.equal(tpl.match(chunk(' world')), ' world');
  t.equal(tpl.match(chunk('')), '', 'an empty text');
  t.equal(tpl.match(chunk('say "hi"\\\n')), 'say "hi"\\\n', 'escaped text');
  t.equal(tpl.match(`${head}"\\u00e9"${tail}`), 'é', 'another escaping of the text');
  t.equal(tpl.match(chunk('x').replace('"created":1', '"created":2')), undefined, 'another field changed');
  t.equal(tpl.match(chunk('x').replace('"finish_reason":null', '"finish_reason":"stop"')), undefined, 'a finish reason');
  t.equal(tpl.match(`${head}"a","b"${tail}`), undefined, 'two strings where the text was');
  t.equal(tpl.match(`${head}"a"b"${tail}`), undefined, 'an unescaped quote');
  t.equal(tpl.match(`${head}"bad \\x"${tail}`), undefined, 'a bad escape');
  t.equal(tpl.match(`${head}null${tail}`), undefined, 'not a string');
  t.equal(tpl.match(`${head}""`), undefined, 'cut short');
});

t.test('ChunkTemplate learns only where it can prove the text is', async (t) => {
  const twoKeys = '{"meta":{"content":"Hi"},"choices":[{"index":0,"delta":{"content":"Hi"},"finish_reason":null}]}';
  let tpl = new ChunkTemplate('content');
  tpl.learn(twoKeys, 'Hi', probeIsText);
  t.notOk(tpl.ready, 'two members of that name');

  const otherKey = '{"meta":{"content":"Hi"},"choices":[{"index":0,"delta":{"\\u0063ontent":"Hi"},"finish_reason":null}]}';
  tpl = new ChunkTemplate('content');
  tpl.learn(otherKey, 'Hi', probeIsText);
  t.notOk(tpl.ready, 'the one raw member is not where the text is: the probe lands elsewhere');

  tpl = new ChunkTemplate('content');
  tpl.learn(`${head}"\\u00e9"${tail}`, 'é', probeIsText);
  t.notOk(tpl.ready, 'escaped differently from JSON.stringify: not found in the raw text');

  tpl = new ChunkTemplate('content');
  tpl.learn(chunk('x'), 'x', () => {
    throw new Error('parse failed');
  });
  t.notOk(tpl.ready, 'a check that throws proves nothing');

  tpl = new ChunkTemplate('content');
  for (let i = 0; i < 10; i++) tpl.learn(twoKeys, 'Hi', probeIsText);
  tpl.learn(chunk('x'), 'x', probeIsText);
  t.notOk(tpl.ready, 'a stream stops trying after a few chunks that cannot be learnt');

  tpl = new ChunkTemplate('content');
  tpl.learn(chunk('x'), 'x', probeIsText);
  const other = (text: string) => chunk(text).replace('"created":1', '"created":2');
  tpl.learn(other('y'), 'y', probeIsText);
  t.equal(tpl.match(other('z')), 'z', 'learning again replaces the template');
  t.equal(tpl.match(chunk('z')), undefined);
});

t.test('ChunkTemplate.readFramed reads whole framed chunks from their bytes', async (t) => {
  const sse = { before: 'data: ', after: '\n\n' };
  const tpl = new ChunkTemplate('content', sse);
  const event = (data: string) => Buffer.from(`data: ${data}\n\n`);
  /** The texts readFramed gives, or undefined when it declines (and then leaves the list as it was). */
  const read = (template: ChunkTemplate, bytes: Uint8Array): string[] | undefined => {
    const texts = ['before'];
    if (template.readFramed(bytes, texts)) return texts.slice(1);
    t.same(texts, ['before'], 'declined: the list is as it was');
    return undefined;
  };
  t.equal(read(tpl, event(chunk('a'))), undefined, 'nothing learnt yet');
  tpl.learn(chunk('Hello'), 'Hello', probeIsText);
  t.same(read(tpl, event(chunk(' world'))), [' world']);
  t.same(read(tpl, event(chunk(' café 🌧'))), [' café 🌧'], 'non-ASCII text');
  t.same(read(tpl, event(chunk('say "hi"\\\n'))), ['say "hi"\\\n'], 'escaped text');
  t.same(read(tpl, event(`${head}"\\u00e9"${tail}`)), ['é'], 'another escaping of the text');
  t.same(read(tpl, event(chunk(''))), [''], 'an empty text');
  t.same(read(tpl, new Uint8Array(event(chunk('u8')))), ['u8'], 'a Uint8Array');
  t.same(read(tpl, Buffer.concat([event(chunk('x')), event(chunk('"y"')), event(chunk('z'))])), ['x', '"y"', 'z'], 'three events in one chunk');
  t.equal(read(tpl, Buffer.concat([event(chunk('x')), event(chunk('y')).subarray(0, 40)])), undefined, 'an event and the start of the next');
  t.equal(read(tpl, Buffer.concat([event(chunk('x')), Buffer.from('data: [DONE]\n\n')])), undefined, 'an event and the end marker');
  t.equal(read(tpl, Buffer.concat([event(chunk('x')), Buffer.from('\n')])), undefined, 'an extra blank line');
  t.equal(read(tpl, event(chunk('x')).subarray(0, -1)), undefined, 'the blank line cut');
  t.equal(read(tpl, Buffer.from(`data:${chunk('x')}\n\n`)), undefined, 'no space after the colon');
  t.equal(read(tpl, Buffer.from(`data: ${chunk('x')}\r\n\r\n`)), undefined, 'CRLF line ends');
  t.equal(read(tpl, Buffer.from(`event: other\ndata: ${chunk('x')}\n\n`)), undefined, 'another event type');
  t.equal(read(tpl, event(chunk('x').replace('"created":1', '"created":2'))), undefined, 'another field changed');
  t.equal(read(tpl, event(chunk('x').replace('"finish_reason":null', '"finish_reason":"stop"'))), undefined, 'a finish reason');
  t.equal(read(tpl, event(`${head}"a\nb"${tail}`)), undefined, 'a raw line end in the text');
  t.equal(read(tpl, event(`${head}"a\\\nb"${tail}`)), undefined, 'a raw line end after a backslash');
  t.equal(read(tpl, event(`${head}"bad \\x"${tail}`)), undefined, 'a bad escape');
  t.equal(read(tpl, event(`${head}"a","b"${tail}`)), undefined, 'two strings where the text was');
  t.equal(read(tpl, Buffer.alloc(0)), undefined, 'nothing');
  t.equal(read(new ChunkTemplate('content'), event(chunk('x'))), undefined, 'no framing: strings only');

  // Learnt from an event of two data lines: its bytes are not one line, so only match() reads such chunks.
  const twoLines = new ChunkTemplate('content', sse);
  const multi = (text: string) => chunk(text).replace('"choices"', '\n"choices"');
  twoLines.learn(multi('Hi'), 'Hi', probeIsText);
  t.ok(twoLines.ready);
  t.equal(twoLines.match(multi('Yo')), 'Yo');
  t.equal(read(twoLines, event(multi('Yo'))), undefined);
});

t.test('SseDecoder.atEventStart: only between events, past the first line', async (t) => {
  const d = new SseDecoder();
  const out: unknown[] = [];
  t.notOk(d.atEventStart, 'at the start, where a byte order mark may come');
  d.push(Buffer.from('data: a\n\n'), out as never);
  t.ok(d.atEventStart);
  d.push(Buffer.from('data: b'), out as never);
  t.notOk(d.atEventStart, 'a line begun');
  d.push(Buffer.from('\n'), out as never);
  t.notOk(d.atEventStart, 'an event begun');
  d.push(Buffer.from('\r'), out as never);
  t.notOk(d.atEventStart, 'a CR that a LF may follow');
  d.push(Buffer.from('\n'), out as never);
  t.ok(d.atEventStart);
  for (const line of ['id: 7\n', 'event: x\n', 'retry: 5\n', ': comment\n']) {
    d.push(Buffer.from(line), out as never);
    t.notOk(d.atEventStart, `after ${JSON.stringify(line)}`);
    d.push(Buffer.from('\n'), out as never);
    t.ok(d.atEventStart, 'and again after the blank line');
  }
  t.equal(out.length, 2);
});

// ------------------------------------------------- the OpenAI decoder with it

/**
 * Events of a stream read by the adapter's decoder, and the failure, if any.
 * The bytes come one chunk per SSE event, or, with `cut`, cut at the
 * offsets it picks from where each event ends (events split and merged, as
 * TCP reads may).
 */
function decode(events: string[], cut?: (ends: number[]) => number[]): { events: StreamEvent[]; error?: unknown; chunks: number } {
  const d = new OpenAiAdapter({ model: 'm' }).decoder();
  const out: StreamEvent[] = [];
  let chunks = events.map((e) => Buffer.from(e));
  if (cut) {
    const all = Buffer.concat(chunks);
    let end = 0;
    const ends = chunks.map((c) => (end += c.length));
    const at = [...new Set([0, ...cut(ends), all.length])].sort((a, b) => a - b);
    chunks = at.slice(1).map((e, i) => all.subarray(at[i], e));
  }
  try {
    for (const c of chunks) d.push(c, out);
    d.end(out);
  } catch (error) {
    return { events: out, error, chunks: chunks.length };
  }
  return { events: out, chunks: chunks.length };
}

/** What reading each chunk whole gives: the text of choices[0].delta.content, the end at [DONE]. */
function reference(datas: string[]): { texts: string[]; failsAt?: number } {
  const texts: string[] = [];
  for (let i = 0; i < datas.length; i++) {
    const data = datas[i]!;
    if (data === '[DONE]') return { texts };
    let c: any;
    try {
      c = JSON.parse(data);
    } catch {
      return { texts, failsAt: i };
    }
    if (c === null || typeof c !== 'object' || Array.isArray(c) || (c.error !== undefined && c.error !== null) || !Array.isArray(c.choices)) return { texts, failsAt: i };
    const content = c.choices[0]?.delta?.content;
    if (typeof content === 'string' && content !== '') texts.push(content);
  }
  return { texts, failsAt: datas.length };
}

const PIECES = ['a', ' word', '"', '\\', '\n', 'é', '🌧', '\u2028', '{"content":"x"}', '","finish_reason":"stop', '\u0000', '  '];

t.test('OpenAI decoder: chunks read through the template give what parsing each whole gives', async (t) => {
  const rand = mulberry32(7);
  const pick = <T>(xs: readonly T[]) => xs[Math.floor(rand() * xs.length)]!;
  let fastStreams = 0;
  let byteStreams = 0;
  const splits = countSplits();
  t.teardown(splits.restore);
  // One event per chunk (most read from their bytes), and the same bytes cut elsewhere.
  const cuts = [
    undefined,
    // Anywhere: events split and merged.
    (ends: number[]) => Array.from({ length: 1 + Math.floor(rand() * 8) }, () => Math.floor(rand() * ends.at(-1)!)),
    // Between events only: one to three whole events a chunk.
    (ends: number[]) => ends.filter(() => rand() < 0.5),
  ];
  for (let round = 0; round < 900; round++) {
    const cut = cuts[round % 3];
    const datas: string[] = [chunk('').replace('"delta":{', '"delta":{"role":"assistant",')];
    const n = 1 + Math.floor(rand() * 12);
    for (let i = 0; i < n; i++) {
      const text = Array.from({ length: Math.floor(rand() * 4) }, () => pick(PIECES)).join('');
      const r = rand();
      if (r < 0.7) datas.push(chunk(text));
      else if (r < 0.75) datas.push(`${head}"\\u00e9${JSON.stringify(text).slice(1)}${tail}`);
      else if (r < 0.8) datas.push(chunk(text).replace('"created":1', '"created":2'));
      else if (r < 0.84) datas.push(`${head}"broken"quote"${tail}`);
      else if (r < 0.88) datas.push(`${head}"bad \\q escape"${tail}`);
      else if (r < 0.91) datas.push(`${head}${JSON.stringify(text)}${tail.replace('null}', '"length"}')}`);
      else if (r < 0.94) datas.push(chunk(text).replace('"choices"', '"usage":null,"choices"'));
      else if (r < 0.97) datas.push(`{"error":{"message":"boom"},${head.slice(1)}${JSON.stringify(text)}${tail}`);
      else datas.push(`${head}${JSON.stringify(text)}${tail.slice(0, -1)}`);
    }
    datas.push('[DONE]');
    const want = reference(datas);
    const before = splits.count;
    const parses = countParses(() => decode(datas.map((d) => `data: ${d}\n\n`), cut));
    if (cut !== cuts[1] && splits.count - before < parses.result.chunks) byteStreams++;
    const got = parses.result;
    const texts = got.events.flatMap((e) => (e.type === 'text' ? [e.text] : []));
    if (parses.count < datas.length - 1) fastStreams++;
    if (want.failsAt !== undefined) {
      if (!(got.error instanceof UpstreamError)) {
        t.fail(`round ${round}: expected a failure at chunk ${want.failsAt}, got ${String(got.error)}`);
        break;
      }
      t.equal(got.error.reason, 'bad_response', `round ${round}: bad_response`);
    } else if (got.error !== undefined) {
      t.fail(`round ${round}: unexpected failure ${String(got.error)}`);
      break;
    }
    t.same(texts, want.texts, `round ${round}: same texts`);
  }
  t.ok(fastStreams > 300, `most streams skipped JSON.parse for some chunks (${fastStreams} of 900)`);
  t.ok(byteStreams > 300, `most streams of whole events per chunk read some chunks from their bytes (${byteStreams} of 600)`);
});

t.test('OpenAI decoder: a plain stream parses two chunks whole, whatever its length', async (t) => {
  const datas = [chunk('').replace('"delta":{', '"delta":{"role":"assistant",'), ...Array.from({ length: 200 }, (_, i) => chunk(` w${i}`)), chunk('').replace('null}', '"stop"}'), '[DONE]'];
  const splits = countSplits();
  t.teardown(splits.restore);
  const { count, result } = countParses(() => decode(datas.map((d) => `data: ${d}\n\n`)));
  t.equal(result.error, undefined);
  t.same(
    result.events.flatMap((e) => (e.type === 'text' ? [e.text] : [])),
    Array.from({ length: 200 }, (_, i) => ` w${i}`),
  );
  t.same(result.events.at(-1), { type: 'end', finish: 'stop' });
  // The role chunk, the first text chunk and its probe, and the finish chunk.
  t.equal(count, 4, 'JSON.parse calls');
  // The role chunk, the first text chunk, the finish chunk and [DONE]: the other 199 are read from their bytes.
  t.equal(splits.count, 4, 'chunks split into SSE lines');
});

/** Counts the chunks SseDecoder splits into lines, until restore(). */
function countSplits(): { count: number; restore: () => void } {
  const split = SseDecoder.prototype.push;
  const counter = {
    count: 0,
    restore: () => {
      SseDecoder.prototype.push = split;
    },
  };
  SseDecoder.prototype.push = function (this: SseDecoder, ...args: Parameters<typeof split>) {
    counter.count++;
    return split.apply(this, args);
  };
  return counter;
}

function countParses<R>(fn: () => R): { count: number; result: R } {
  const parse = JSON.parse;
  let count = 0;
  JSON.parse = ((text: string, reviver?: (this: unknown, key: string, value: unknown) => unknown) => {
    count++;
    return parse(text, reviver);
  }) as typeof JSON.parse;
  try {
    const result = fn();
    return { count, result };
  } finally {
    JSON.parse = parse;
  }
}
