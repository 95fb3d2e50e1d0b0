// Activation of lorebook entries: keys, selective logic, case, regex keys,
// whole words, scan depth, recursion, budget, stable prompt order, limits.
import { readFileSync } from 'node:fs';
import t from 'tap';
import {
  activate,
  formatLore,
  MAX_RECURSION_PASSES,
  MAX_SCAN_CHARS,
  MAX_SEGMENT_CHARS,
  parseCharacterBook,
  parseLorebook,
  parseLorebookJson,
  parseWorldInfo,
  type ActivateOptions,
  type ActivationResult,
  type Lorebook,
  type ParseResult,
} from '../../src/lore/index.js';
import { countTokens } from '../../src/text/tokens.js';
import { book, CARDS, ELDORIA_TEXT, readCardFromPng } from '../helpers/lore.js';


let nextId = 0;
/** A card entry; `content` defaults to a distinct text. */
const entry = (over: Record<string, unknown> = {}) => {
  const id = nextId++;
  return { id, keys: [], content: `lore ${id}`, extensions: {}, enabled: true, insertion_order: 100, ...over };
};
const cardBook = (entries: unknown[], over: Record<string, unknown> = {}) => book(parseCharacterBook({ entries, extensions: {}, ...over }));

/** ids of the entries in the prompt. */
function ids(b: Lorebook, messages: string[], opts: Partial<ActivateOptions> = {}): (number | string)[] {
  return activate(b, { messages, ...opts }).entries.map((a) => a.entry.id);
}

const ELDORIA = book(parseLorebookJson(ELDORIA_TEXT));

t.test('the Eldoria World Info fixture activates on its keys', async (t) => {
  const cases: [string, number[], string | undefined][] = [
    ['Tell me about the forest.', [0], 'forest'],
    ['What is Eldoria?', [0], 'eldoria'],
    ['The Shadowfangs are coming!', [1], 'shadowfang'],
    ['A MONSTER!', [1], 'monster'],
    ['Is this a safe haven?', [2], 'safe haven'],
    ['I seek refuge.', [2], 'refuge'],
    ['Your MAGIC healed me', [3], 'magic'],
    ['hello there', [], undefined],
  ];
  for (const [text, want, key] of cases) {
    const r = activate(ELDORIA, { messages: [text] });
    t.same(r.entries.map((a) => a.entry.id), want, text);
    t.equal(r.entries[0]?.matchedKey, key, `${text}: matched key`);
    if (want.length) t.match(r.entries[0], { trigger: 'key', pass: 0, content: ELDORIA.entries[want[0]!]!.content });
  }
  // Plain keys match inside words unless whole words are asked for.
  t.same(ids(ELDORIA, ['into the woods']), [0]);
  t.same(ids(ELDORIA, ['into the woods'], { matchWholeWords: true }), []);
  t.same(ids(ELDORIA, ['into the wood'], { matchWholeWords: true }), [0]);
  t.same(ids(ELDORIA, ['a powerful spell']), [3]);
  t.same(ids(ELDORIA, ['a powerful spell'], { matchWholeWords: true }), []);
});

t.test('Eldoria: scan depth, every entry, budget, constant', async (t) => {
  // Default scan depth is 2 messages (newest last).
  t.same(ids(ELDORIA, ['the forest', 'hi', 'hello']), []);
  t.same(ids(ELDORIA, ['the forest', 'hi', 'hello'], { scanDepth: 3 }), [0]);

  const all = activate(ELDORIA, { messages: ['magic and monsters', 'the glade in the forest'], budgetTokens: 100_000 });
  t.same(all.entries.map((a) => a.entry.id), [0, 1, 2, 3], 'insertion order ties broken by id');
  t.same(all.skipped, []);
  t.equal(all.tokens, countTokens(formatLore(all.entries)));
  t.equal(formatLore(all.entries), ELDORIA.entries.map((e) => e.content).join('\n'));

  // All four have order 100: the budget goes by id, and the first that does not fit closes it.
  const sizes = ELDORIA.entries.map((e) => countTokens(e.content));
  const cut = activate(ELDORIA, { messages: ['magic and monsters', 'the glade in the forest'], budgetTokens: sizes[0]! + sizes[1]! + sizes[2]! - 1 });
  t.same(cut.entries.map((a) => a.entry.id), [0, 1]);
  t.same(cut.skipped.map((s) => [s.entry.id, s.reason, s.tokens]), [
    [2, 'budget', sizes[2]],
    [3, 'budget', sizes[3]],
  ]);
  t.equal(cut.tokens, sizes[0]! + sizes[1]!);

  const json = JSON.parse(ELDORIA_TEXT) as { entries: Record<string, Record<string, unknown>> };
  json.entries['2']!.constant = true;
  const withConstant = book(parseLorebook(json));
  for (const messages of [[], ['hello'], ['the forest']]) {
    const r = activate(withConstant, { messages });
    t.ok(r.entries.some((a) => a.entry.id === 2 && a.trigger === 'constant'), `constant entry with ${JSON.stringify(messages)}`);
  }
  t.same(ids(withConstant, ['the forest']), [0, 2]);
});

t.test('the Seraphina card book activates like the World Info file', async (t) => {
  const seraphina = book(parseLorebook(readCardFromPng(new URL('seraphina.v2.png', CARDS))));
  for (const messages of [['a beast in the woods'], ['refuge', 'your power'], ['nothing here']]) {
    const a = activate(seraphina, { messages });
    const b = activate(ELDORIA, { messages });
    t.same(a.entries.map((x) => x.entry.id), b.entries.map((x) => x.entry.id), JSON.stringify(messages));
    t.equal(formatLore(a.entries), formatLore(b.entries));
  }
});

t.test('selective logic', async (t) => {
  const logic = ['and_any', 'not_all', 'not_any', 'and_all'];
  const table: [string, boolean[]][] = [
    // message                  AND ANY NOT ALL NOT ANY AND ALL
    ['a dragon', [false, true, true, false]],
    ['a red dragon', [true, true, false, false]],
    ['a red dragon breathing fire', [true, false, false, true]],
    ['red fire, no primary', [false, false, false, false]],
  ];
  const b = cardBook(logic.map((_, i) => entry({ id: i, keys: ['dragon'], secondary_keys: ['red', 'fire'], selective: true, extensions: { selectiveLogic: i } })));
  for (const [text, want] of table) {
    const got = ids(b, [text]);
    t.same(logic.map((_, i) => got.includes(i)), want, text);
  }
  // World Info numbering is the same.
  const wi = book(parseWorldInfo({ entries: { '0': { key: ['dragon'], keysecondary: ['red'], selective: true, selectiveLogic: 2, content: 'x' } } }));
  t.same(ids(wi, ['dragon']), [0]);
  t.same(ids(wi, ['red dragon']), []);
  // Secondary keys count only when the entry is selective and has some.
  const loose = cardBook([
    entry({ id: 'off', keys: ['dragon'], secondary_keys: ['red'], selective: false }),
    entry({ id: 'none', keys: ['dragon'], secondary_keys: [], selective: true, extensions: { selectiveLogic: 3 } }),
  ]);
  t.same(ids(loose, ['a dragon']), ['none', 'off']);
  // Secondary keys may be in another scanned message than the primary one.
  const and = cardBook([entry({ id: 'x', keys: ['dragon'], secondary_keys: ['red'], selective: true })]);
  t.same(ids(and, ['red sky', 'a dragon']), ['x']);
});

t.test('case sensitivity', async (t) => {
  const b = cardBook([
    entry({ id: 'cs', keys: ['Rome'], case_sensitive: true }),
    entry({ id: 'ci', keys: ['Paris'] }),
    entry({ id: 'de', keys: ['Ärger'] }),
    entry({ id: 'cs2', keys: ['City'], secondary_keys: ['Gate'], selective: true, case_sensitive: true }),
    entry({ id: 'ext', keys: ['Oslo'], extensions: { case_sensitive: true } }),
  ]);
  t.same(ids(b, ['rome']), []);
  t.same(ids(b, ['Rome']), ['cs']);
  t.same(ids(b, ['PARIS']), ['ci']);
  t.same(ids(b, ['so viel ärger']), ['de']);
  t.same(ids(b, ['City gate']), [], 'secondary keys follow the entry');
  t.same(ids(b, ['City Gate']), ['cs2']);
  t.same(ids(b, ['oslo']), [], 'extensions.case_sensitive (SillyTavern export) counts when the field is absent');
});

t.test('regex keys', async (t) => {
  const r = parseCharacterBook({
    entries: [
      entry({ id: 'i', keys: ['/dragons?/i'] }),
      entry({ id: 'anchored', keys: ['/^hello/'] }),
      entry({ id: 'whole', keys: ['/drag/'], extensions: { match_whole_words: true } }),
      entry({ id: 'flags', keys: ['/Rome/'] }),
      entry({ id: 'unsafe', keys: ['/(a+)+$/'] }),
      entry({ id: 'v3', keys: ['k[0-9]+ng'], use_regex: true }),
    ],
    extensions: {},
  });
  t.match(r.issues, [{ path: '$.entries[4].keys[0]', severity: 'error', message: /^regex key refused/ }, { path: '$.entries[4]', message: /never activates/ }]);
  const b = book(r);
  t.same(ids(b, ['DRAGONS!']), ['i']);
  t.same(ids(b, ['hello you']), ['anchored']);
  t.same(ids(b, ['well, hello']), [], '^ anchors at the start of each message');
  t.same(ids(b, ['hello', 'mid', 'new']), [], 'only scanned messages count (depth 2)');
  t.same(ids(b, ['hello', 'new']), ['anchored']);
  t.same(ids(b, ['a dragon'], { matchWholeWords: true }).includes('whole'), true, 'regex keys ignore whole-word matching');
  t.same(ids(b, ['rome']), [], 'the regex flags decide the case, not the entry');
  t.same(ids(b, ['Rome']), ['flags']);
  t.same(ids(b, ['aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa!']), [], 'the refused key never matches');
  t.same(ids(b, ['K42NG']), ['v3']);
  const wi = book(parseWorldInfo({ entries: { '0': { key: ['/sh(a|e)dows?/i', 'plain'], content: 'x' } } }));
  t.same(ids(wi, ['SHEDOW']), [0], 'World Info keys may be regexes too');
  t.same(ids(wi, ['shodow']), []);

  // A book built by hand (not by the parser) is checked when compiled.
  const hand: Lorebook = {
    ...b,
    entries: [{ ...b.entries[0]!, id: 'hand', keys: [{ kind: 'regex', source: '/(a|aa)*$/', pattern: '(a|aa)*$', flags: '' }] }],
  };
  t.same(ids(hand, ['aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa!']), []);
});

t.test('whole words', async (t) => {
  const b = cardBook([
    entry({ id: 'cat', keys: ['cat'] }),
    entry({ id: 'haven', keys: ['safe haven'] }),
    entry({ id: 'tag', keys: ['#tag'] }),
    entry({ id: 'cjk', keys: ['剑客'] }),
    entry({ id: 'ai', keys: ['AI'] }),
    entry({ id: 'sub', keys: ['cat'], extensions: { match_whole_words: false } }),
  ]);
  const whole = (text: string) => ids(b, [text], { matchWholeWords: true }).filter((id) => id !== 'sub');
  t.same(whole('the cat.'), ['cat']);
  t.same(whole("Cat's toy"), ['cat']);
  t.same(whole('cat'), ['cat']);
  t.same(whole('concatenate'), []);
  t.same(whole('cats'), []);
  t.same(whole('cat_x'), []);
  t.same(whole('cat1'), []);
  t.same(whole('a safe haven.'), ['haven']);
  t.same(whole('an unsafe haven'), []);
  t.same(whole('x#tag'), ['tag'], 'an edge that is not a letter needs no boundary');
  t.same(whole('#tags'), []);
  t.same(whole('古风剑客来了'), ['cjk'], 'CJK keys match inside CJK text');
  t.same(whole('我喜欢AI技术'), ['ai'], 'CJK neighbours are not part of a Latin word');
  t.same(whole('AIR'), []);
  t.same(whole('a concatenated cat'), ['cat'], 'a later whole-word occurrence counts');
  t.same(ids(b, ['concatenate'], { matchWholeWords: true }), ['sub'], "the entry's own setting wins");
  t.same(ids(b, ['concatenate']), ['cat', 'sub']);
  const wi = book(parseWorldInfo({ entries: { '0': { key: ['cat'], content: 'x', matchWholeWords: true } } }));
  t.same(ids(wi, ['concatenate']), []);
  t.same(ids(wi, ['a cat']), [0]);
});

t.test('scan depth: entry, then book, then option, then 2', async (t) => {
  const msgs = ['alpha', 'beta', 'gamma', 'delta']; // newest last
  const b = cardBook([entry({ id: 'a', keys: ['alpha'] }), entry({ id: 'b', keys: ['beta'] }), entry({ id: 'deep', keys: ['alpha'], extensions: { scan_depth: 4 } })]);
  t.same(ids(b, msgs), ['deep']);
  t.same(ids(b, msgs, { scanDepth: 3 }), ['b', 'deep']);
  t.same(ids(b, msgs, { scanDepth: 4 }), ['a', 'b', 'deep']);
  const withBook = cardBook([entry({ id: 'b', keys: ['beta'] })], { scan_depth: 3 });
  t.same(ids(withBook, msgs, { scanDepth: 1 }), ['b'], "the book's scan_depth wins over the option");
  const zero = cardBook([entry({ id: 'z', keys: ['delta'] })], { scan_depth: 0 });
  t.same(ids(zero, msgs), [], 'depth 0 scans no message');
  t.same(ids(b, []), []);
  const wi = book(parseWorldInfo({ entries: { '0': { key: ['alpha'], content: 'x', scanDepth: 4 } } }));
  t.same(ids(wi, msgs), [0]);
});

t.test('disabled entries never activate', async (t) => {
  const b = cardBook([entry({ id: 'off', keys: ['x'], enabled: false }), entry({ id: 'offc', constant: true, enabled: false }), entry({ id: 'on', keys: ['x'] })]);
  t.same(ids(b, ['x']), ['on']);
  const wi = book(parseWorldInfo({ entries: { '0': { key: ['x'], content: 'c', disable: true }, '1': { key: [], content: 'c', constant: true, disable: true } } }));
  t.same(ids(wi, ['x']), []);
});

t.test('budget: constants first, then priority, first overflow closes it', async (t) => {
  const five = 'one two three four five';
  const b = cardBook([
    entry({ id: 'c', constant: true, content: five, insertion_order: 50, priority: 0 }),
    entry({ id: 'hi', keys: ['x'], content: five, insertion_order: 10, priority: 9 }),
    entry({ id: 'lo', keys: ['x'], content: five, insertion_order: 1, priority: 1 }),
    entry({ id: 'small', keys: ['x'], content: 'tiny', insertion_order: 0, priority: 0 }),
  ]);
  const r = activate(b, { messages: ['x'], budgetTokens: 12 });
  t.same(r.entries.map((a) => a.entry.id), ['hi', 'c'], 'prompt order is insertion order');
  t.same(r.skipped.map((s) => [s.entry.id, s.reason]), [
    ['small', 'budget'],
    ['lo', 'budget'],
  ], 'a smaller, lower-priority entry does not slip in after the cut');
  t.equal(r.tokens, 10);
  t.equal(r.budget, 12);
  t.same(activate(b, { messages: ['x'], budgetTokens: 10 }).entries.map((a) => a.entry.id), ['hi', 'c'], 'the budget is inclusive');
  t.same(activate(b, { messages: ['x'], budgetTokens: 4 }).entries, [], 'the constant entry does not fit: nothing does');
  t.same(activate(b, { messages: ['x'], budgetTokens: 0 }).skipped.length, 4);
  t.equal(activate(b, { messages: ['x'] }).budget, 1024, 'default budget');
  const capped = cardBook([entry({ keys: ['x'], content: five })], { token_budget: 3 });
  t.equal(activate(capped, { messages: ['x'] }).budget, 3);
  t.equal(activate(capped, { messages: ['x'], budgetTokens: 2 }).budget, 2, 'the smaller of book and caller');
  t.equal(activate(capped, { messages: ['x'], budgetTokens: 100 }).budget, 3);

  // Without priority, insertion order ranks (higher first, as in SillyTavern).
  const byOrder = cardBook([entry({ id: 'early', keys: ['x'], content: five, insertion_order: 1 }), entry({ id: 'late', keys: ['x'], content: five, insertion_order: 2 })]);
  t.same(ids(byOrder, ['x'], { budgetTokens: 5 }), ['late']);
  t.same(ids(byOrder, ['x'], { budgetTokens: 10 }), ['early', 'late']);
});

t.test('recursive scanning', async (t) => {
  const chain = [
    entry({ id: 'A', keys: ['alpha'], content: 'about beta' }),
    entry({ id: 'B', keys: ['beta'], content: 'about gamma' }),
    entry({ id: 'C', keys: ['gamma'], content: 'about delta' }),
    entry({ id: 'D', keys: ['delta'], content: 'about epsilon' }),
    entry({ id: 'E', keys: ['epsilon'], content: 'the end' }),
  ];
  const rec = cardBook(chain, { recursive_scanning: true });
  const r = activate(rec, { messages: ['alpha'] });
  t.equal(MAX_RECURSION_PASSES, 3);
  t.same(r.entries.map((a) => [a.entry.id, a.pass]), [
    ['A', 0],
    ['B', 1],
    ['C', 2],
    ['D', 3],
  ], 'bounded: the chat pass and 3 recursion passes');
  t.equal(r.passes, 4);
  t.same(ids(cardBook(chain), ['alpha']), ['A'], 'off unless the book or caller turns it on');
  t.same(ids(cardBook(chain), ['alpha'], { recursive: true }).length, 4);
  t.same(ids(cardBook(chain, { recursive_scanning: false }), ['alpha'], { recursive: true }), ['A'], "the book's setting wins");

  const cycle = cardBook([entry({ id: 'X', keys: ['xeno'], content: 'yotta' }), entry({ id: 'Y', keys: ['yotta'], content: 'xeno' })], { recursive_scanning: true });
  const c = activate(cycle, { messages: ['xeno'] });
  t.same(c.entries.map((a) => a.entry.id), ['X', 'Y'], 'no entry twice');
  t.equal(c.passes, 3, "the third pass reads Y's content and finds nothing new");

  const flags = cardBook(
    [
      entry({ id: 'P', keys: ['alpha'], content: 'beta', extensions: { prevent_recursion: true } }),
      entry({ id: 'Q', keys: ['alpha'], content: 'gamma' }),
      entry({ id: 'R', keys: ['beta'] }),
      entry({ id: 'S', keys: ['gamma'], extensions: { exclude_recursion: true } }),
    ],
    { recursive_scanning: true },
  );
  t.same(ids(flags, ['alpha']), ['P', 'Q'], 'prevent_recursion and exclude_recursion');
  t.same(ids(flags, ['alpha gamma']), ['P', 'Q', 'S'], 'an excluded entry still activates from the chat');

  const sel = cardBook([entry({ id: 'T', keys: ['tower'], content: 'the red wizard' }), entry({ id: 'W', keys: ['wizard'], secondary_keys: ['tower'], selective: true, extensions: { selectiveLogic: 3 } })], { recursive_scanning: true });
  t.same(ids(sel, ['the tower']), ['T', 'W'], 'secondary key in the chat, primary in activated lore');

  const over = cardBook([entry({ id: 'big', keys: ['alpha'], content: 'beta beta beta', insertion_order: 2 }), entry({ id: 'no', keys: ['zzz'], content: 'x', insertion_order: 1 }), entry({ id: 'R', keys: ['beta'] })], { recursive_scanning: true });
  const o = activate(over, { messages: ['alpha zzz'], budgetTokens: 3 });
  t.same(o.entries.map((a) => a.entry.id), ['big']);
  t.equal(o.passes, 1, 'a full budget stops recursion');

  const wi = book(parseWorldInfo({ entries: { '0': { key: ['alpha'], content: 'beta' }, '1': { key: ['beta'], content: 'x', excludeRecursion: true }, '2': { key: ['beta'], content: 'y' } } }));
  t.same(ids(wi, ['alpha'], { recursive: true }), [0, 2]);
});

t.test('stable prompt order and byte-identical lore', async (t) => {
  const b = cardBook([
    entry({ id: 'z', keys: ['k'], insertion_order: 5 }),
    entry({ id: 3, keys: ['k'], insertion_order: 5 }),
    entry({ id: 'a', keys: ['k'], insertion_order: 5 }),
    entry({ id: 1, keys: ['k', 'other'], insertion_order: 5 }),
    entry({ id: 'first', keys: ['k'], insertion_order: -1 }),
    entry({ id: 'last', keys: ['k'], insertion_order: 99, priority: 1000 }),
  ]);
  const first = activate(b, { messages: ['k'] });
  t.same(first.entries.map((a) => a.entry.id), ['first', 1, 3, 'a', 'z', 'last'], 'order, then numeric ids, then string ids');
  const text = formatLore(first.entries);
  for (let turn = 0; turn < 5; turn++) {
    t.equal(formatLore(activate(b, { messages: ['k', `turn ${turn}`, 'k other'] }).entries), text, `turn ${turn}`);
  }
  t.equal(formatLore([...first.entries].reverse()), text, 'formatLore sorts');
  t.equal(formatLore([]), '');
  // Same ids, order and content: the index decides.
  const dup = book(parseWorldInfo({ entries: { '0': { uid: 1, key: ['k'], content: 'first' }, '1': { uid: 1, key: ['k'], content: 'second' } } }));
  t.equal(formatLore(activate(dup, { messages: ['k'] }).entries), 'first\nsecond');
});

t.test('probability, render and empty content', async (t) => {
  const b = cardBook([
    entry({ id: 'p', keys: ['x'], extensions: { useProbability: true, probability: 50 } }),
    entry({ id: 'never', keys: ['x'], extensions: { useProbability: true, probability: 0 } }),
    entry({ id: 'off', keys: ['x'], extensions: { useProbability: false, probability: 0 } }),
    entry({ id: 'dflt', keys: ['x'], extensions: { probability: 20 } }),
    entry({ id: 'macro', keys: ['x'], content: '{{char}} knows {{user}}' }),
    entry({ id: 'empty', keys: ['x'], content: '  \n' }),
  ]);
  t.same(ids(b, ['x']), ['dflt', 'macro', 'never', 'off', 'p'], 'without random, probability is not rolled');
  const high = activate(b, { messages: ['x'], random: () => 0.9 });
  t.same(high.entries.map((a) => a.entry.id), ['macro', 'off']);
  t.same(high.skipped.map((s) => [s.entry.id, s.reason]), [
    ['dflt', 'probability'],
    ['empty', 'empty_content'],
    ['never', 'probability'],
    ['p', 'probability'],
  ], 'useProbability defaults to true');
  t.same(ids(b, ['x'], { random: () => 0.1 }), ['dflt', 'macro', 'off', 'p']);
  t.same(ids(b, ['x'], { random: () => 0.3 }), ['macro', 'off', 'p']);
  const render = (s: string) => s.replaceAll('{{char}}', 'Seraphina').replaceAll('{{user}}', 'Traveler');
  const r = activate(b, { messages: ['x'], render });
  const macro = r.entries.find((a) => a.entry.id === 'macro')!;
  t.equal(macro.content, 'Seraphina knows Traveler');
  t.equal(macro.tokens, 3);
  t.equal(macro.entry.content, '{{char}} knows {{user}}', 'the book is unchanged');
});

t.test('bounded work', async (t) => {
  // Text beyond MAX_SEGMENT_CHARS of one message is not scanned.
  const b = cardBook([entry({ id: 'far', keys: ['needle'] })]);
  t.same(ids(b, ['x'.repeat(MAX_SEGMENT_CHARS - 6) + 'needle']), ['far']);
  t.same(ids(b, ['x'.repeat(MAX_SEGMENT_CHARS - 5) + 'needle']), []);
  // At most MAX_SCAN_CHARS of chat, newest first.
  const filler = Array.from({ length: MAX_SCAN_CHARS / MAX_SEGMENT_CHARS }, () => 'y'.repeat(MAX_SEGMENT_CHARS));
  t.same(ids(b, ['needle', ...filler], { scanDepth: 100 }), []);
  t.same(ids(b, ['needle', ...filler.slice(1)], { scanDepth: 100 }), ['far']);

  // Many entries and a worst case for the automaton (keys a, aa, aaa, ... on a run of a's).
  const entries = [];
  for (let i = 0; i < 10_000; i++) entries.push(entry({ id: i, keys: [`word${i}`, `other${i}x`, 'a'.repeat((i % 200) + 1)], content: `c${i}`, insertion_order: i % 7 }));
  const big = cardBook(entries);
  const text = 'a'.repeat(MAX_SEGMENT_CHARS);
  const start = performance.now();
  const r1 = activate(big, { messages: [text, text, text, text], scanDepth: 4, budgetTokens: 100_000 });
  const first = performance.now() - start;
  const again = performance.now();
  const r2 = activate(big, { messages: [text, text, text, text], scanDepth: 4, budgetTokens: 100_000 });
  const second = performance.now() - again;
  t.equal(r1.entries.length, 10_000);
  t.equal(formatLore(r1.entries), formatLore(r2.entries));
  t.ok(first < 5000, `10,000 entries, 32,000 chars: ${first.toFixed(0)} ms (compile + scan)`);
  t.ok(second < 3000, `again (compiled book cached): ${second.toFixed(0)} ms`);
});

t.test('options are checked', async (t) => {
  const b = cardBook([]);
  const bad: [unknown, RegExp][] = [
    [{}, /options\.messages/],
    [{ messages: [1] }, /options\.messages/],
    [{ messages: [], budgetTokens: -1 }, /options\.budgetTokens/],
    [{ messages: [], budgetTokens: 1.5 }, /options\.budgetTokens/],
    [{ messages: [], scanDepth: '2' }, /options\.scanDepth/],
    [{ messages: [], recursive: 1 }, /options\.recursive/],
    [{ messages: [], matchWholeWords: 'yes' }, /options\.matchWholeWords/],
    [{ messages: [], random: 0.5 }, /options\.random/],
    [{ messages: [], render: 'x' }, /options\.render/],
  ];
  for (const [opts, msg] of bad) t.throws(() => activate(b, opts as ActivateOptions), { name: 'TypeError', message: msg });
  const ok: ActivationResult = activate(b, { messages: [] });
  t.same(ok, { entries: [], tokens: 0, skipped: [], budget: 1024, passes: 1 });
});
