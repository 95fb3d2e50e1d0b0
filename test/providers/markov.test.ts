import t from 'tap';
import { MarkovModel } from '../../src/providers/markov.js';
import { mulberry32 } from '../../src/text/random.js';
import { tokenize } from '../../src/text/tokens.js';

const CORPUS = [
  'The lantern swings in the rain and the harbor bells answer.',
  'Sit by the fire and let your boots steam a while.',
  'A bowl of fish stew is two coppers, and it comes with bread.',
  'The harbor master owes me four silver and a proper apology.',
  'Fog rolls in thick around midnight, and then you cannot see.',
  'My late husband built this bar from the hull of a wrecked cutter.',
  'The lighthouse keeper is my cousin, and he never sleeps.',
  'Mind the lower docks after dark, the planks are rotten.',
  'Rainwater is free, but boil it before you drink it.',
  'Storms like this wash up barrels, driftwood and rumors.',
];
const CORPUS_TOKENS = new Set(CORPUS.flatMap(tokenize));

t.test('size and empty inputs', async (t) => {
  t.equal(new MarkovModel(CORPUS).size, CORPUS.length);
  t.equal(new MarkovModel(['', '   ', 'one line']).size, 1, 'lines without tokens are dropped');
  t.same(new MarkovModel([]).generate('hello', mulberry32(1), 50), { tokens: [], length: false }, 'an empty corpus says nothing');
  t.same(new MarkovModel(CORPUS).generate('hello', mulberry32(1), 0), { tokens: [], length: false }, 'a zero budget says nothing');
});

t.test('the same seed gives the same output', async (t) => {
  const m = new MarkovModel(CORPUS);
  for (const seed of [1, 2, 3, 99, 0xdeadbeef]) {
    const a = m.generate('tell me about the harbor', mulberry32(seed), 60);
    const b = m.generate('tell me about the harbor', mulberry32(seed), 60);
    t.same(a, b, `seed ${seed}`);
    t.same(new MarkovModel(CORPUS).generate('tell me about the harbor', mulberry32(seed), 60), a, 'and a fresh model agrees');
  }
});

t.test('different seeds give different outputs', async (t) => {
  const m = new MarkovModel(CORPUS);
  const outputs = new Set<string>();
  for (let seed = 0; seed < 30; seed++) outputs.add(m.generate('xyzzy', mulberry32(seed), 60).tokens.join(' '));
  t.ok(outputs.size >= 5, `30 seeds gave ${outputs.size} different replies`);
});

t.test('every output token comes from the corpus', async (t) => {
  const m = new MarkovModel(CORPUS);
  for (let seed = 0; seed < 50; seed++) {
    const { tokens } = m.generate(seed % 2 ? 'rain and fire' : '古风剑客你好', mulberry32(seed), 80);
    t.ok(tokens.length > 0, `seed ${seed} says something`);
    const foreign = tokens.filter((tok) => !CORPUS_TOKENS.has(tok));
    t.same(foreign, [], `seed ${seed}: no token outside the corpus`);
  }
});

t.test('maxTokens bounds the reply and `length` reports a cut', async (t) => {
  const m = new MarkovModel(CORPUS);
  for (let max = 1; max <= 30; max++) {
    for (let seed = 0; seed < 5; seed++) {
      const { tokens, length } = m.generate('the harbor', mulberry32(seed), max);
      t.ok(tokens.length <= max, `max ${max} seed ${seed}: ${tokens.length} tokens`);
      if (length) t.equal(tokens.length, max, `max ${max} seed ${seed}: cut replies use the whole budget`);
      if (tokens.length < max) t.equal(length, false, `max ${max} seed ${seed}: a reply under budget was not cut`);
    }
  }
  const one = m.generate('the harbor', mulberry32(1), 1);
  t.same(one.length, true, 'one token of a sentence is a cut reply');
  t.equal(one.tokens.length, 1);
});

t.test('a reply ends at a sentence end unless it was cut', async (t) => {
  const m = new MarkovModel(CORPUS);
  for (let seed = 0; seed < 30; seed++) {
    const { tokens, length } = m.generate('the fire', mulberry32(seed), 200);
    t.equal(length, false, `seed ${seed} fits 200 tokens`);
    t.equal(tokens.at(-1), '.', `seed ${seed} ends with the corpus' sentence end`);
  }
});

t.test('the reply starts from a line sharing rare words with the prompt', async (t) => {
  const m = new MarkovModel(CORPUS);
  // Each of these prompts shares words with exactly one line.
  for (let seed = 0; seed < 20; seed++) {
    t.same(m.generate('late husband?', mulberry32(seed), 60).tokens.slice(0, 2), ['My', 'late'], `seed ${seed}: husband`);
    t.same(m.generate('how many COPPERS?', mulberry32(seed), 60).tokens.slice(0, 2), ['A', 'bowl'], `seed ${seed}: coppers (case-insensitive)`);
    t.same(m.generate('lighthouse', mulberry32(seed), 60).tokens.slice(0, 2), ['The', 'lighthouse'], `seed ${seed}: lighthouse`);
  }
  // Rare words weigh more than common ones: "the" is in most lines, "fog" in
  // one. The start line is drawn among the best matches, so count.
  let fog = 0;
  for (let seed = 0; seed < 60; seed++) {
    const first = m.generate('the the the fog', mulberry32(seed), 60).tokens[0];
    if (first === 'Fog') fog++;
  }
  t.ok(fog > 30, `the fog line starts ${fog} of 60 replies`);
});

t.test('CJK corpus', async (t) => {
  const lines = ['在下行走江湖多年，见过的人多，记得的人少。', '今夜月色正好，山风也清，正宜饮酒。', '这壶酒是山下小镇所酿，入口微苦，回味却甘。'];
  const m = new MarkovModel(lines);
  const all = new Set(lines.flatMap(tokenize));
  for (let seed = 0; seed < 10; seed++) {
    const { tokens } = m.generate('月色', mulberry32(seed), 100);
    t.same(tokens.slice(0, 2), ['今', '夜'], `seed ${seed}: starts from the moonlight line`);
    t.ok(tokens.every((x) => all.has(x)));
  }
});
