// Parsing of lorebooks: the two real fixtures, every field of both formats,
// and malformed books (issues with JSON paths, never a throw).
import { readFileSync } from 'node:fs';
import t from 'tap';
import {
  MAX_KEY_LENGTH,
  MAX_KEYS_PER_ENTRY,
  MAX_LOREBOOK_ENTRIES,
  MAX_REGEX_KEYS,
  parseCharacterBook,
  parseLorebook,
  parseLorebookJson,
  parseRegexKey,
  parseWorldInfo,
  type Lorebook,
  type LorebookIssue,
  type ParseResult,
} from '../../src/lore/index.js';
import { book, CARDS, ELDORIA_TEXT, readCardFromPng } from '../helpers/lore.js';


const paths = (issues: readonly LorebookIssue[]) => issues.map((i) => i.path);
const entry = (over: Record<string, unknown> = {}) => ({ keys: ['k'], content: 'c', extensions: {}, enabled: true, insertion_order: 10, ...over });
const card = (entries: unknown[], over: Record<string, unknown> = {}) => ({ entries, extensions: {}, ...over });

t.test('the Eldoria World Info fixture', async (t) => {
  const r = parseLorebookJson(ELDORIA_TEXT);
  t.same(r.issues, []);
  const b = book(r);
  t.equal(b.format, 'world_info');
  t.equal(b.entries.length, 4);
  t.same(
    b.entries.map((e) => [e.id, e.keys.map((k) => k.source)]),
    [
      [0, ['eldoria', 'wood', 'forest', 'magical forest']],
      [1, ['shadowfang', 'beast', 'monster', 'monsters', 'beasts']],
      [2, ['glade', 'safe haven', 'refuge']],
      [3, ['power', 'magic', 'ability']],
    ],
  );
  for (const e of b.entries) {
    t.equal(e.enabled, true);
    t.equal(e.constant, false);
    t.equal(e.selective, false);
    t.equal(e.order, 100);
    t.equal(e.position, 'before_char');
    t.equal(e.caseSensitive, false);
    t.same(e.secondaryKeys, []);
    t.ok(e.keys.every((k) => k.kind === 'plain'));
    t.match(e.content, /^\{\{user\}\}: "What/);
  }
  t.ok(Object.isFrozen(b) && Object.isFrozen(b.entries[0]) && Object.isFrozen(b.entries[0]!.keys));
  // Plain data: survives structured cloning (postMessage between workers).
  t.same(structuredClone(b), b);
});

t.test('the Seraphina card book (PNG chara chunk)', async (t) => {
  const cardJson = readCardFromPng(new URL('seraphina.v2.png', CARDS)) as { spec: string; data: { character_book: unknown } };
  t.equal(cardJson.spec, 'chara_card_v2');
  const whole = parseLorebook(cardJson);
  t.same(whole.issues, []);
  const b = book(whole);
  t.equal(b.format, 'character_book');
  t.equal(b.name, 'Eldoria');
  t.equal(b.entries.length, 4);
  t.same(b.entries.map((e) => e.keys.map((k) => k.source)), book(parseLorebookJson(ELDORIA_TEXT)).entries.map((e) => e.keys.map((k) => k.source)));
  const e0 = b.entries[0]!;
  t.equal(e0.id, 0);
  t.equal(e0.order, 100);
  t.equal(e0.enabled, true);
  t.equal(e0.position, 'before_char');
  t.equal(e0.probability, undefined, 'probability: null is not set');
  t.same(e0.extensions, { position: 0, probability: null, useProbability: false }, 'extensions verbatim');
  // The book alone parses the same way, with paths from its own root.
  const alone = parseCharacterBook(cardJson.data.character_book);
  t.same(alone.issues, []);
  t.same(alone.lorebook, b);
});

t.test('card entry fields', async (t) => {
  const r = parseCharacterBook(
    card(
      [
        entry({
          id: 7,
          name: 'North',
          comment: 'c1',
          keys: ['Ice'],
          secondary_keys: ['snow', 'wind'],
          selective: true,
          constant: false,
          case_sensitive: true,
          priority: 5,
          insertion_order: 3,
          position: 'after_char',
          extensions: {
            selectiveLogic: 3,
            match_whole_words: true,
            scan_depth: 4,
            probability: 40,
            useProbability: true,
            exclude_recursion: true,
            prevent_recursion: true,
            depth: 2,
            'x/custom': { deep: [1, 2] },
          },
          vendor_field: 'kept',
        }),
        entry({ id: 'str-id', enabled: false, constant: true, keys: [], extensions: { position: 4 } }),
      ],
      { name: 'B', description: 'D', scan_depth: 6, token_budget: 300, recursive_scanning: true, extensions: { a: 1 }, other: [1] },
    ),
  );
  t.same(r.issues, []);
  const b = book(r);
  t.match(b, { name: 'B', description: 'D', scanDepth: 6, tokenBudget: 300, recursiveScanning: true, extensions: { a: 1 }, extra: { other: [1] } });
  t.match(b.entries[0], {
    index: 0,
    id: 7,
    name: 'North',
    comment: 'c1',
    selective: true,
    selectiveLogic: 'and_all',
    caseSensitive: true,
    matchWholeWords: true,
    scanDepth: 4,
    priority: 5,
    order: 3,
    position: 'after_char',
    depth: 2,
    probability: 40,
    useProbability: true,
    excludeRecursion: true,
    preventRecursion: true,
    extra: { vendor_field: 'kept' },
  });
  t.same(b.entries[0]!.secondaryKeys.map((k) => k.source), ['snow', 'wind']);
  t.same(b.entries[0]!.extensions['x/custom'], { deep: [1, 2] });
  t.match(b.entries[1], { id: 'str-id', enabled: false, constant: true, position: 'at_depth', useProbability: true });
  // Like SillyTavern's importer: without extensions.position, anything but "before_char" is after the character.
  const pos = book(parseCharacterBook(card([entry({ position: 'before_char' }), entry({}), entry({ position: 'after_char' })])));
  t.same(pos.entries.map((e) => e.position), ['before_char', 'after_char', 'after_char']);
});

t.test('World Info entry fields', async (t) => {
  const r = parseWorldInfo({
    entries: {
      '5': {
        uid: 5,
        key: ['a'],
        keysecondary: ['b'],
        comment: 'note',
        content: 'x',
        constant: true,
        selective: true,
        selectiveLogic: 2,
        order: 7,
        position: 1,
        disable: true,
        probability: 50,
        useProbability: true,
        depth: 4,
        scanDepth: 3,
        caseSensitive: true,
        matchWholeWords: false,
        excludeRecursion: true,
        preventRecursion: false,
        group: 'g',
        sticky: 2,
        displayIndex: 0,
      },
      named: { key: ['z'], content: 'y', caseSensitive: null, matchWholeWords: null, scanDepth: null },
    },
    name: 'file-level',
  });
  t.same(r.issues, []);
  const b = book(r);
  t.same(b.extra, { name: 'file-level' });
  t.match(b.entries[0], {
    id: 5,
    comment: 'note',
    constant: true,
    selective: true,
    selectiveLogic: 'not_any',
    order: 7,
    position: 'after_char',
    enabled: false,
    probability: 50,
    useProbability: true,
    depth: 4,
    scanDepth: 3,
    caseSensitive: true,
    matchWholeWords: false,
    excludeRecursion: true,
    preventRecursion: false,
    extra: { group: 'g', sticky: 2, displayIndex: 0 },
  });
  t.match(b.entries[1], { id: 'named', caseSensitive: false, matchWholeWords: undefined, scanDepth: undefined, order: 100, enabled: true, position: 'before_char', useProbability: true, probability: undefined });
});

t.test('regex keys', async (t) => {
  t.same(parseRegexKey('/dragon(s)?/i'), { pattern: 'dragon(s)?', flags: 'i' });
  t.same(parseRegexKey('/a/b/'), { pattern: 'a/b', flags: '' });
  t.equal(parseRegexKey('/r/writing'), undefined, 'text after the last slash is not flags: plain key');
  t.equal(parseRegexKey('//'), undefined);
  t.equal(parseRegexKey('plain'), undefined);

  const r = parseCharacterBook(
    card([
      entry({ keys: ['/dragons?/i', '/(a+)+$/', '/x\\1/', '/[/', '/ok/gy', 'plain'] }),
      entry({ keys: ['^king', 'queen'], use_regex: true }),
      entry({ keys: ['Case'], use_regex: true, case_sensitive: true }),
    ]),
  );
  const b = book(r);
  t.same(paths(r.issues), ['$.entries[0].keys[1]', '$.entries[0].keys[2]', '$.entries[0].keys[3]']);
  t.ok(r.issues.every((i) => i.severity === 'error' && i.message.startsWith('regex key refused: ')));
  t.match(r.issues[0]!.message, /nested quantifiers/);
  t.match(r.issues[1]!.message, /back-references/);
  t.same(b.entries[0]!.keys, [
    { kind: 'regex', source: '/dragons?/i', pattern: 'dragons?', flags: 'i' },
    { kind: 'regex', source: '/ok/gy', pattern: 'ok', flags: '' },
    { kind: 'plain', source: 'plain' },
  ]);
  t.same(b.entries[1]!.keys, [
    { kind: 'regex', source: '^king', pattern: '^king', flags: 'i' },
    { kind: 'regex', source: 'queen', pattern: 'queen', flags: 'i' },
  ]);
  t.same(b.entries[2]!.keys, [{ kind: 'regex', source: 'Case', pattern: 'Case', flags: '' }]);

  const many = parseCharacterBook(card(Array.from({ length: 5 }, () => entry({ keys: Array.from({ length: 60 }, (_, i) => `/k${i}/`) }))));
  t.equal(many.issues.length, 5 * 60 - MAX_REGEX_KEYS);
  t.match(many.issues[0], { path: `$.entries[${Math.floor(MAX_REGEX_KEYS / 60)}].keys[${MAX_REGEX_KEYS % 60}]`, severity: 'error' });
});

t.test('malformed input gives issues with paths, never a throw', async (t) => {
  const cases: [string, unknown, string[]][] = [
    ['not an object', 42, ['$']],
    ['an array', [], ['$']],
    ['no entries', { name: 'x' }, ['$.entries']],
    ['a card without a book', { spec: 'chara_card_v2', data: { name: 'n' } }, ['$.data.character_book']],
    ['entries of the wrong type', { entries: 'nope' }, ['$.entries']],
  ];
  for (const [name, input, want] of cases) {
    const r = parseLorebook(input);
    t.equal(r.lorebook, undefined, name);
    t.same(paths(r.issues), want, name);
  }
  const notJson = parseLorebookJson('{"entries": [');
  t.equal(notJson.lorebook, undefined);
  t.match(notJson.issues, [{ path: '$', message: /^not JSON: /, severity: 'error' }]);
  t.same(book(parseLorebookJson('\ufeff{"entries": []}')).entries, [], 'a BOM is skipped');

  const r = parseLorebook({
    name: 3,
    scan_depth: -1,
    token_budget: 'big',
    recursive_scanning: 'yes',
    extensions: [],
    entries: [
      null,
      { keys: ['a'] },
      { keys: 'alpha, beta', content: 'x', enabled: 'true', insertion_order: '5', extensions: 'e' },
      { keys: [1, '', '  ', 'ok'], secondary_keys: {}, content: 'y', enabled: true, insertion_order: 1, id: {}, position: 'middle', extensions: { selectiveLogic: 9, position: 12 } },
      { keys: ['b'], content: 'z', enabled: true, insertion_order: 1, id: 9 },
      { keys: ['c'], content: 'w', enabled: true, insertion_order: 1, id: 9, priority: Infinity, case_sensitive: 1 },
      { keys: [], content: 'never', enabled: true, insertion_order: 1 },
    ],
  });
  const b = book(r);
  t.same(
    r.issues.map((i) => `${i.severity} ${i.path}`),
    [
      'error $.entries[0]',
      'error $.entries[1].content',
      'warning $.entries[2].extensions',
      'warning $.entries[2].keys',
      'warning $.entries[2].enabled',
      'warning $.entries[2].insertion_order',
      'error $.entries[3].keys[0]',
      'warning $.entries[3].keys[1]',
      'warning $.entries[3].keys[2]',
      'error $.entries[3].secondary_keys',
      'warning $.entries[3].id',
      'warning $.entries[3].extensions.position',
      'warning $.entries[3].position',
      'warning $.entries[3].extensions.selectiveLogic',
      'warning $.entries[5].case_sensitive',
      'warning $.entries[5].priority',
      'warning $.entries[5]',
      'warning $.entries[6]',
      'warning $.token_budget',
      'warning $.name',
      'warning $.scan_depth',
      'warning $.recursive_scanning',
      'warning $.extensions',
    ],
  );
  t.match(r.issues.find((i) => i.path === '$.entries[5]')!.message, /id 9 is used by an earlier entry/);
  t.match(r.issues.find((i) => i.path === '$.entries[6]')!.message, /never activates/);
  t.equal(b.entries.length, 5, 'entries without content are dropped, the others kept');
  t.same(b.entries[0]!.keys.map((k) => k.source), ['alpha', 'beta']);
  t.match(b.entries[0], { enabled: true, order: 100, index: 0, id: 2 });
  t.match(b.entries[1], { id: 3, position: 'after_char', selectiveLogic: 'and_any' });
  t.same(b.entries[1]!.keys.map((k) => k.source), ['ok']);
  t.match(b, { name: undefined, scanDepth: undefined, tokenBudget: undefined, recursiveScanning: undefined, extensions: {} });

  const wi = parseWorldInfo({ entries: { a: 'x', b: { key: ['k'] }, c: { key: ['k'], content: 'ok', uid: [], order: 'high', position: 9, disable: 0 } } });
  t.same(paths(wi.issues), ['$.entries.a', '$.entries.b.content', '$.entries.c.uid', '$.entries.c.disable', '$.entries.c.order', '$.entries.c.position']);
  t.match(book(wi).entries[0], { id: 'c', order: 100, position: 'before_char', enabled: true });
  t.same(paths(parseWorldInfo({ entries: { '0': { key: ['k'], content: '', uid: 0 } } }).issues), []);
});

t.test('a throwing getter becomes an issue', async (t) => {
  const evil = { entries: [{ get keys(): string[] { throw new Error('boom'); }, content: 'x' }] };
  const r = parseLorebook(evil);
  t.equal(r.lorebook, undefined);
  t.match(r.issues, [{ path: '$', message: /boom/, severity: 'error' }]);
});

t.test('unknown fields are copied, not shared; cycles and non-JSON values dropped', async (t) => {
  const ext: Record<string, unknown> = { keep: { a: [1, 'x', null, true] }, fn: () => 1, big: 10n, inf: Infinity };
  ext.self = ext;
  const input = card([entry({ extensions: ext })]);
  // JSON.parse makes `__proto__` an own property; do the same here.
  Object.defineProperty(input.entries[0] as object, '__proto__', { value: 'ordinary', enumerable: true });
  const r = parseCharacterBook(input);
  const e = book(r).entries[0]!;
  t.same(e.extensions, { keep: { a: [1, 'x', null, true] }, inf: null });
  t.not(e.extensions.keep, ext.keep, 'a copy');
  t.notOk(Object.isFrozen(ext.keep), "the caller's object is not frozen");
  t.equal(Object.getPrototypeOf(e.extra), Object.prototype);
  t.equal((e.extra as Record<string, unknown>)['__proto__'], 'ordinary');
  t.same(paths(r.issues).sort(), ['$.entries[0].extensions.big', '$.entries[0].extensions.fn', '$.entries[0].extensions.self']);

  let deep: unknown = 'leaf';
  for (let i = 0; i < 100; i++) deep = { d: deep };
  const d = parseCharacterBook(card([entry({ extensions: { deep } })]));
  t.equal(d.issues.length, 1);
  t.match(d.issues[0]!.message, /nested deeper than/);
});

t.test('limits', async (t) => {
  const big = parseCharacterBook(card(Array.from({ length: MAX_LOREBOOK_ENTRIES + 2 }, (_, i) => entry({ id: i }))));
  t.equal(book(big).entries.length, MAX_LOREBOOK_ENTRIES);
  t.match(big.issues, [{ path: '$.entries', message: /only the first 10000/ }]);

  const wiEntries: Record<string, unknown> = {};
  for (let i = 0; i < MAX_LOREBOOK_ENTRIES + 1; i++) wiEntries[i] = { key: ['k'], content: 'c' };
  const wi = parseWorldInfo({ entries: wiEntries });
  t.equal(book(wi).entries.length, MAX_LOREBOOK_ENTRIES);
  t.same(paths(wi.issues), ['$.entries']);

  const keys = parseCharacterBook(card([entry({ keys: Array.from({ length: MAX_KEYS_PER_ENTRY + 5 }, (_, i) => `k${i}`), secondary_keys: ['x'.repeat(MAX_KEY_LENGTH + 1)] })]));
  t.equal(book(keys).entries[0]!.keys.length, MAX_KEYS_PER_ENTRY);
  t.same(paths(keys.issues), ['$.entries[0].keys', '$.entries[0].secondary_keys[0]']);

  t.match(parseLorebookJson(' '.repeat(32 * 1024 * 1024 + 1)).issues, [{ path: '$', message: /limit/ }]);
});

t.test('a lorebook without entries says the field is missing', async (t) => {
  const { issues } = parseLorebookJson('{"name":"x"}');
  t.match(issues, [{ path: '$.entries', severity: 'error', message: /got nothing \(the field is missing\)$/ }]);
});
