#!/usr/bin/env node
// Decoding cost of an OpenAI stream: the mock upstream's reply (the same
// bytes it sends, in the same writes) through npcd's OpenAI adapter decoder,
// in process, no sockets. See bench/README.md ("Decoding").

import { parseArgs } from 'node:util';
import { resolve } from 'node:path';
import { pathToFileURL } from 'node:url';
import { median } from '../sidecar/lib.mjs';
import { openAiChunks, positiveInt, replyTokens } from './lib.mjs';

const HELP = `Usage: node bench/providers/decode.mjs [options]

  --root DIR           the npcd checkout to measure, built (default: this one)
  --baseline-root DIR  another built checkout, measured in the same run, rounds alternating
  --tokens N           tokens per reply (default 64)
  --replies N          replies decoded per round (default 20000)
  --rounds R           rounds per checkout (default 5)
  --json               print one JSON object
  -h, --help

A reply is the upstream's writes, one chunk each: the role chunk, one per
token, and a last one holding the finish, the usage chunk and [DONE].
Prints the median nanoseconds per chunk decoded, and per reply.
`;

const { values: opt } = parseArgs({
  options: {
    root: { type: 'string', default: '.' },
    'baseline-root': { type: 'string' },
    tokens: { type: 'string', default: '64' },
    replies: { type: 'string', default: '20000' },
    rounds: { type: 'string', default: '5' },
    json: { type: 'boolean', default: false },
    help: { type: 'boolean', short: 'h', default: false },
  },
  strict: true,
});
if (opt.help) { process.stdout.write(HELP); process.exit(0); }
const TOKENS = positiveInt(opt.tokens, '--tokens');
const REPLIES = positiveInt(opt.replies, '--replies');
const ROUNDS = positiveInt(opt.rounds, '--rounds');

// The reply as the mock upstream streams it with include_usage (as npcd asks), one Buffer per write.
const c = openAiChunks({ id: 'chatcmpl-bench0', created: 1700000000, model: 'bench-model', usage: true });
const CHUNKS = [c.role(), ...replyTokens(TOKENS).map((t) => c.token(t)), c.end('stop', 40, TOKENS)].map((s) => Buffer.from(s));
const TEXT = replyTokens(TOKENS).join('');

async function load(root) {
  const url = pathToFileURL(resolve(root, 'dist/providers/openai.js')).href;
  const { OpenAiAdapter } = await import(url);
  const adapter = new OpenAiAdapter({ model: 'bench-model' });
  return { root, adapter };
}

/** Decodes `replies` replies; checks the text of the first. */
function decodeReplies({ adapter }, replies) {
  const out = [];
  let texts = 0;
  for (let r = 0; r < replies; r++) {
    const d = adapter.decoder();
    for (const chunk of CHUNKS) d.push(chunk, out);
    d.end(out);
    if (r === 0) {
      const text = out.filter((e) => e.type === 'text').map((e) => e.text).join('');
      if (text !== TEXT || out.at(-1)?.type !== 'end') throw new Error(`decoded reply differs: ${JSON.stringify(text.slice(0, 60))}`);
    }
    texts += out.length;
    out.length = 0;
  }
  return texts;
}

const targets = [await load(opt.root)];
if (opt['baseline-root']) targets.push(await load(opt['baseline-root']));
for (const t of targets) decodeReplies(t, Math.min(REPLIES, 3000)); // warm-up: let V8 optimise
const ns = targets.map(() => []);
for (let round = 0; round < ROUNDS; round++) {
  // Alternate which one goes first, so drift within a round does not favour either.
  const order = round % 2 === 0 ? targets.map((_, i) => i) : targets.map((_, i) => i).reverse();
  for (const i of order) {
    const start = process.hrtime.bigint();
    decodeReplies(targets[i], REPLIES);
    ns[i].push(Number(process.hrtime.bigint() - start) / (REPLIES * CHUNKS.length));
  }
}
const results = targets.map((t, i) => ({ root: t.root, nsPerChunk: median(ns[i]), nsPerReply: median(ns[i]) * CHUNKS.length, rounds: ns[i] }));
if (opt.json) {
  process.stdout.write(`${JSON.stringify({ tokens: TOKENS, chunks: CHUNKS.length, replies: REPLIES, results })}\n`);
} else {
  for (const r of results) console.log(`${r.root}: ${r.nsPerChunk.toFixed(0)} ns per chunk, ${(r.nsPerReply / 1000).toFixed(1)} µs per ${TOKENS}-token reply (rounds: ${r.rounds.map((x) => x.toFixed(0)).join(', ')})`);
  if (results.length === 2) console.log(`${results[0].root} / ${results[1].root}: ${(results[0].nsPerChunk / results[1].nsPerChunk).toFixed(3)}`);
}
