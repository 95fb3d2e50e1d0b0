import { readFileSync } from 'node:fs';
import { deflateSync } from 'node:zlib';
import t, { type Test } from 'tap';
import { CARD_LIMITS, checkJsonSyntax, formatCardIssue, parseCard, parseCardJson, parseCardObject, parseCardPng } from '../../src/characters/cards/card.js';
import {
  cardIssuesToCharacterIssues,
  cardToCharacter,
  idFromCardFileName,
  loadCard,
  parseExamples,
  templateSafe,
} from '../../src/characters/cards/convert.js';
import { cardDocument, exportCardJson, exportCardPng } from '../../src/characters/cards/export.js';
import { decodeTextChunk, encodeChunk, encodeTextChunk, minimalPng, PNG_SIGNATURE, readPngChunks, textChunkKeyword } from '../../src/characters/cards/png.js';
import type { Card, CardIssue, CardParseResult } from '../../src/characters/cards/types.js';
import { compileTemplate, type TemplateContext } from '../../src/characters/template.js';
import { mulberry32 } from '../../src/text/random.js';
import { sharedFixture } from '../helpers/fixtures.js';
import { pathToFileURL } from 'node:url';

// ---------------------------------------------------------------------------
// Samples
const FIXTURE_URL = pathToFileURL(sharedFixture('cards/seraphina.v2.png'));
const LOREBOOK_URL = pathToFileURL(sharedFixture('cards/eldoria.lorebook.json'));

const V1_CARD = {
  name: 'Mara Quill',
  description: '{{char}} keeps the Salt & Lantern inn.',
  personality: 'warm, dry-witted',
  scenario: 'A rainy night in the port of Vell.',
  first_mes: 'Come in out of the rain, {{user}}.',
  mes_example: '<START>\n{{user}}: Any rooms?\n{{char}}: One left. Ocean view, if you squint.\n',
  // Unknown top-level keys of a V1 card (older editors write these).
  avatar: 'none',
  chat: 'Mara - 2023-5-1',
};

function v2Card(): Record<string, unknown> {
  return {
    spec: 'chara_card_v2',
    spec_version: '2.0',
    data: {
      name: 'HALCYON',
      description: 'The station AI of Deepwell-7.',
      personality: 'terse',
      scenario: '',
      first_mes: 'STATUS: NOMINAL. STATE YOUR BUSINESS, {{user}}.',
      mes_example: '',
      creator_notes: 'Made for tests.',
      system_prompt: '{{original}} Answer in capitals.',
      post_history_instructions: 'Stay terse.',
      alternate_greetings: ['AIRLOCK CYCLING.', 'HELLO AGAIN.'],
      tags: ['sci-fi', 'AI'],
      creator: 'npcd',
      character_version: '1.2',
      extensions: {
        talkativeness: '0.5',
        depth_prompt: { prompt: 'Be brief.', depth: 4, role: 'system' },
        'agnai/voice': { kind: 'tts', rate: 1.1, tags: [null, true, 'x'] },
      },
      character_book: {
        name: 'Deepwell',
        extensions: { 'st/world': 'Deepwell' },
        entries: [
          {
            keys: ['reactor', 'core'],
            content: 'The reactor is in ring C.',
            extensions: { position: 0, probability: null, useProbability: false },
            enabled: true,
            insertion_order: 100,
            id: 0,
            comment: '',
            selective: false,
            secondary_keys: [],
            constant: false,
            position: 'before_char',
          },
        ],
      },
      // A data key no spec defines.
      x_custom: { kept: [1, 2, 3] },
    },
  };
}

function v3Card(): Record<string, unknown> {
  return {
    spec: 'chara_card_v3',
    spec_version: '3.0',
    data: {
      name: 'Gu Feng',
      description: 'A wandering swordsman.',
      tags: ['wuxia'],
      creator: 'npcd',
      character_version: '3',
      mes_example: '<START>\n{{char}}: 天色已晚。\n',
      extensions: { risu: { utilityBot: false }, npcd: { persona: 'trust: 0.7' } },
      system_prompt: '',
      post_history_instructions: '',
      first_mes: '在下行走江湖多年，阁下有何贵干？',
      alternate_greetings: [],
      personality: '',
      scenario: '',
      creator_notes: 'English notes',
      character_book: {
        entries: [
          { keys: ['^sw(or)?d$'], content: 'His sword is named Qingfeng.', extensions: {}, enabled: true, insertion_order: 1, use_regex: true, id: 'sword', case_sensitive: false },
        ],
        extensions: {},
        scan_depth: 4,
        token_budget: 512,
        recursive_scanning: false,
      },
      assets: [{ type: 'icon', uri: 'ccdefault:', name: 'main', ext: 'png' }],
      nickname: 'Feng',
      creator_notes_multilingual: { en: 'English notes', zh: '中文说明' },
      source: ['https://example.com/cards/gufeng'],
      group_only_greetings: ['诸位好。'],
      creation_date: 1700000000,
      modification_date: 1700000500,
    },
  };
}

/** A PNG (the minimal 1×1 image) with the given chunks before IEND. */
function pngWith(...extra: Uint8Array[]): Buffer {
  const base = readPngChunks(minimalPng()).chunks!;
  const keep = base.filter((c) => c.type !== 'IEND').map((c) => encodeChunk(c.type, c.data));
  return Buffer.concat([PNG_SIGNATURE, ...keep, ...extra, encodeChunk('IEND', new Uint8Array(0))]);
}

const b64 = (value: unknown): string => Buffer.from(typeof value === 'string' ? value : JSON.stringify(value), 'utf8').toString('base64');
const textChunk = (keyword: string, value: unknown): Uint8Array => encodeTextChunk(keyword, b64(value));
const ztxtChunk = (keyword: string, value: unknown): Uint8Array =>
  encodeChunk('zTXt', Buffer.concat([Buffer.from(`${keyword}\0\0`, 'latin1'), deflateSync(Buffer.from(b64(value), 'latin1'))]));
const itxtChunk = (keyword: string, text: string): Uint8Array =>
  encodeChunk('iTXt', Buffer.concat([Buffer.from(`${keyword}\0\0\0\0\0`, 'latin1'), Buffer.from(text, 'utf8')]));


const FIXTURE = readFileSync(FIXTURE_URL);
const CTX: TemplateContext = { UserInput: 'hi', CharacterName: 'Bot', UserName: 'Pal', State: 'default', PreviousState: 'default', Turn: '1' };

/** The fixture's `chara` JSON, decoded without card.ts. */
function fixtureJson(): { data: Record<string, unknown> } & Record<string, unknown> {
  const at = FIXTURE.indexOf('tEXtchara\0', 0, 'latin1');
  const length = FIXTURE.readUInt32BE(at - 4);
  const base64 = FIXTURE.toString('latin1', at + 10, at + 4 + length);
  return JSON.parse(Buffer.from(base64, 'base64').toString('utf8'));
}

const lines = (r: CardParseResult): string[] => r.issues.map(formatCardIssue);
const errors = (r: CardParseResult): CardIssue[] => r.issues.filter((i) => i.severity === 'error');
function cardOf(t: Test, r: CardParseResult): Card {
  t.same(errors(r), [], 'no errors');
  if (!r.card) throw new Error(`no card: ${lines(r).join('; ')}`);
  return r.card;
}
const withData = (patch: Record<string, unknown>) => {
  const c = v2Card();
  return { ...c, data: { ...(c.data as object), ...patch } };
};
const parseObj = (v: unknown) => parseCardJson(JSON.stringify(v));

// ---------------------------------------------------------------------------
// Import

t.test('imports the V2 fixture PNG (chara chunk, character_book)', async (t) => {
  const r = parseCard(FIXTURE);
  const card = cardOf(t, r);
  t.same(r.issues, []);
  t.equal(r.container, 'png:chara');
  t.equal(card.spec, 'chara_card_v2');
  t.equal(card.specVersion, '2.0');
  t.equal(card.data.name, 'Seraphina');
  t.equal(card.data.creator, 'OtisAlejandro');
  t.same(card.data.extensions, { talkativeness: '0.5', fav: false, world: 'Eldoria' });
  t.equal(card.data.character_book?.name, 'Eldoria');
  t.equal(card.data.character_book?.entries.length, 4);
  t.same(card.data.character_book?.entries[0]?.keys, ['eldoria', 'wood', 'forest', 'magical forest']);
  t.same(card.data.character_book?.entries[0]?.extensions, { position: 0, probability: null, useProbability: false });
  t.same(card.data.group_only_greetings, [], 'V3 superset: defaulted');
  const raw = fixtureJson();
  t.same(card.extra, Object.fromEntries(Object.entries(raw).filter(([k]) => !['spec', 'spec_version', 'data'].includes(k))), 'top-level V1 mirror and SillyTavern keys kept');
  t.same(card.data.character_book, raw.data.character_book, 'the lorebook is the card\'s, unchanged');
  for (const [k, v] of Object.entries(raw.data)) t.same(card.data[k], v, `data.${k} as in the card`);
});

t.test('V1 JSON normalises to the V3 superset', async (t) => {
  const r = parseObj(V1_CARD);
  const card = cardOf(t, r);
  t.same(r.issues, []);
  t.equal(r.container, 'json');
  t.equal(card.spec, 'chara_card_v1');
  t.equal(card.specVersion, '1.0');
  t.same(card.data, {
    name: 'Mara Quill',
    description: V1_CARD.description,
    personality: 'warm, dry-witted',
    scenario: V1_CARD.scenario,
    first_mes: V1_CARD.first_mes,
    mes_example: V1_CARD.mes_example,
    creator_notes: '',
    system_prompt: '',
    post_history_instructions: '',
    creator: '',
    character_version: '',
    alternate_greetings: [],
    tags: [],
    group_only_greetings: [],
    extensions: {},
  });
  t.same(card.extra, { avatar: 'none', chat: 'Mara - 2023-5-1' });
  t.same(cardOf(t, parseObj({ name: 'Only a name' })).data.description, '', 'V1 fields default to ""');
  const odd = parseObj({ ...V1_CARD, spec: null, spec_version: '1.0', data: { name: 'ignored' } });
  t.same(lines(odd), [
    'warning: spec_version: ignored: a card without "spec" is read as V1, which has no "spec_version"',
    'warning: data: ignored: a card without "spec" is read as V1, which has no "data"',
  ]);
  t.same(odd.card?.extra, { avatar: 'none', chat: 'Mara - 2023-5-1' }, 'keys export would overwrite are not kept');
});

t.test('V2 JSON keeps unknown fields and extensions verbatim', async (t) => {
  const src = v2Card();
  const card = cardOf(t, parseObj(src));
  t.equal(card.spec, 'chara_card_v2');
  const data = src.data as Record<string, unknown>;
  t.same(card.data, { ...data, group_only_greetings: [] });
  t.same(card.data.x_custom, { kept: [1, 2, 3] });
  t.same(card.data.extensions['agnai/voice'], { kind: 'tts', rate: 1.1, tags: [null, true, 'x'] });
  t.same(card.extra, {});
});

t.test('V3 JSON: the V3 fields are read and kept', async (t) => {
  const src = v3Card();
  const card = cardOf(t, parseObj(src));
  t.equal(card.spec, 'chara_card_v3');
  t.equal(card.specVersion, '3.0');
  t.same(card.data, src.data);
  t.equal(card.data.nickname, 'Feng');
  t.same(card.data.assets, [{ type: 'icon', uri: 'ccdefault:', name: 'main', ext: 'png' }]);
  t.equal(card.data.character_book?.entries[0]?.use_regex, true);
  t.equal(card.data.character_book?.entries[0]?.id, 'sword');
  t.equal(card.data.creation_date, 1700000000);
  t.same(card.data.source, ['https://example.com/cards/gufeng']);
});

t.test('validation: every problem is reported, with its JSON path', async (t) => {
  const src = v2Card();
  const data = src.data as Record<string, unknown>;
  const book = data.character_book as { entries: Record<string, unknown>[] };
  const entry = book.entries[0]!;
  book.entries = [entry, entry, { ...entry, enabled: 'yes', insertion_order: 'first', id: true }, { ...entry, keys: 'reactor', content: 7 }, 'not an entry' as never];
  const r = parseObj({
    ...src,
    data: { ...data, name: undefined, tags: [1], extensions: [], alternate_greetings: 'hi', creator: {}, nickname: 3, creation_date: '2024-01-01', assets: [{ type: 'icon' }], source: 'x', creator_notes_multilingual: { en: 1 } },
  });
  t.equal(r.card, undefined);
  t.same(lines(r), [
    'data.name: is required',
    'data.creator: expected a string',
    'data.alternate_greetings: expected an array of strings',
    'data.tags: expected an array of strings (item 0 is a number)',
    'data.extensions: expected an object',
    'data.character_book.entries[2].enabled: expected true or false',
    'data.character_book.entries[2].insertion_order: expected a number',
    'data.character_book.entries[2].id: expected a number or a string',
    'data.character_book.entries[3].keys: expected an array of strings',
    'data.character_book.entries[3].content: expected a string',
    'data.character_book.entries[4]: expected an entry object {keys, content, ...}',
    'data.nickname: expected a string of at most 256 characters',
    'data.creator_notes_multilingual: expected an object of language code → string',
    'data.source: expected an array of strings',
    'data.creation_date: expected a number (Unix time in seconds)',
    'data.assets[0].uri: is required (a string)',
    'data.assets[0].name: is required (a string)',
    'data.assets[0].ext: is required (a string)',
  ]);

  const more = (patch: Record<string, unknown>) => lines(parseObj(withData(patch)));
  t.same(more({ name: '  ' }), ['data.name: must not be empty']);
  t.same(more({ name: 'a\nb' }), ['data.name: must be one line without control characters']);
  t.same(more({ name: 'n'.repeat(257) }), ['data.name: is 257 characters; the limit is 256']);
  t.same(more({ character_book: [] }), ['data.character_book: expected an object (a lorebook with "entries")']);
  t.same(more({ character_book: {} }), ['data.character_book.entries: is required (an array of entries)']);
  t.same(more({ character_book: { entries: {}, scan_depth: 'deep', extensions: 1 } }), [
    'data.character_book.scan_depth: expected a number',
    'data.character_book.extensions: expected an object',
    'data.character_book.entries: expected an array of entries',
  ]);
  t.same(more({ character_book: { entries: [{ content: '' }] } }), ['data.character_book.entries[0].keys: is required (an array of strings)']);
  t.same(more({ tags: new Array(CARD_LIMITS.listItems + 1).fill('t') }), ['data.tags: has 10001 items; the limit is 10000']);
  t.same(more({ 'odd key': 1, extensions: { 'a b': [] } }), [], 'unknown keys of any spelling are fine');
  t.same(lines(parseObj({ ...V1_CARD, name: 5, description: [] })), ['description: expected a string'], 'V1 paths are top-level; numbers are text');
});

t.test('warnings do not stop the import', async (t) => {
  const bookWith = (position: unknown) => withData({ character_book: { entries: [{ keys: [], content: '', position }] } });
  const r = parseObj(bookWith('at_depth'));
  t.ok(r.card);
  t.same(lines(r), ['warning: data.character_book.entries[0].position: unknown position "at_depth" (expected before_char or after_char); kept as is']);
  t.same(lines(parseObj(bookWith(1))), ['data.character_book.entries[0].position: expected a string']);

  const newer = parseObj({ ...v3Card(), spec_version: '3.1' });
  t.ok(newer.card);
  t.same(lines(newer), ['warning: spec_version: "3.1" is newer than "3.0": the card is read as 3.0; fields it adds are kept but not used']);
  t.equal(newer.card?.specVersion, '3.1');
  t.same(lines(parseObj({ ...v2Card(), spec_version: 2 })), ['warning: spec_version: "2" is not "2.0"; the card is read as chara_card_v2 2.0']);
  t.same(lines(parseObj({ ...v2Card(), spec_version: undefined })), ['warning: spec_version: missing; assumed "2.0"']);
  t.same(lines(parseObj({ ...v2Card(), spec_version: [] })), ['spec_version: expected a string']);
});

t.test('spec detection', async (t) => {
  const noSpec = parseObj({ data: (v2Card().data as object) });
  t.equal(noSpec.card?.spec, 'chara_card_v2');
  t.same(lines(noSpec), ['warning: spec: missing; read as chara_card_v2 because the card has a "data" object']);
  const noSpec3 = parseObj({ spec_version: '3.0', data: (v3Card().data as object) });
  t.equal(noSpec3.card?.spec, 'chara_card_v3');
  t.same(lines(noSpec3), ['warning: spec: missing; read as chara_card_v3 because the card has a "data" object']);
  t.same(lines(parseObj({ spec: 'chara_card_v4', data: {} })), ['spec: unsupported spec "chara_card_v4"; expected "chara_card_v2" or "chara_card_v3" (or a V1 card, which has no spec)']);
  t.same(lines(parseObj({ spec: 'lorebook_v3', data: { entries: [] } })), ['spec: "lorebook_v3" is a lorebook, not a character card']);
  t.same(lines(parseCardJson(readFileSync(LOREBOOK_URL))), ['(card): this looks like a lorebook (World Info) file, not a character card'], 'the Eldoria World Info fixture');
  t.same(lines(parseObj({ spec: 'chara_card_v2', spec_version: '2.0' })), ['data: is required for chara_card_v2: an object with the card\'s fields']);
  t.same(lines(parseObj({ spec: 'chara_card_v3', spec_version: '3.0', data: [] })), ['data: expected an object']);
  t.same(lines(parseObj([v2Card()])), ['(card): a character card must be a JSON object, found an array']);
  t.same(lines(parseCardJson('null')), ['(card): a character card must be a JSON object, found null']);
  t.same(lines(parseCardJson('"card"')), ['(card): a character card must be a JSON object, found string']);
});

t.test('JSON syntax errors carry line and column; input is bounded', async (t) => {
  const r = parseCardJson('{\n  "name": "x",\n}');
  t.same(r.issues, [{ severity: 'error', path: '', message: 'invalid JSON: expected a "key"', line: 3, column: 1 }]);
  t.same(lines(r), ['(card) 3:1: invalid JSON: expected a "key"']);
  const msg = (text: string) => parseCardJson(text).issues.map((i) => `${i.line}:${i.column} ${i.message}`);
  t.same(msg(''), ['undefined:undefined empty input: expected a JSON object']);
  t.same(msg('{"name": "x"'), ['1:13 invalid JSON: unexpected end of input: expected "," or "}"']);
  t.same(msg('{"name": "x\ny"}'), ['1:12 invalid JSON: control character in string (escape it, e.g. \\n)']);
  t.same(msg('{"name": "\\x"}'), ['1:11 invalid JSON: invalid escape sequence in string']);
  t.same(msg('{"name": 01}'), ['1:11 invalid JSON: expected "," or "}"']);
  t.same(msg('{"name": tru}'), ['1:10 invalid JSON: expected a value']);
  t.same(msg('{} {}'), ['1:4 invalid JSON: unexpected text after the JSON value']);
  t.same(msg('{"name": "unterminated'), ['1:10 invalid JSON: unterminated string']);

  const deep = (n: number) => `{"name":"x","extensions":${'['.repeat(n - 1)}${']'.repeat(n - 1)}}`;
  t.ok(parseCardJson(deep(64)).card, '64 levels are fine');
  t.same(msg(deep(65)), ['1:89 invalid JSON: nesting deeper than 64 levels']);
  t.same(msg('['.repeat(1_000_000)), ['1:65 invalid JSON: nesting deeper than 64 levels'], 'a deep bomb stops at the limit');

  const big = JSON.stringify({ name: 'x', description: 'd'.repeat(CARD_LIMITS.jsonBytes) });
  t.same(lines(parseCardJson(big)), [`(card): card JSON is larger than the limit of ${CARD_LIMITS.jsonBytes} bytes`]);
  t.same(lines(parseCardJson(Buffer.from(big))), [`(card): card JSON is ${big.length} bytes; the limit is ${CARD_LIMITS.jsonBytes}`]);
  const multiByte = JSON.stringify({ name: 'x', description: '字'.repeat(CARD_LIMITS.jsonBytes / 3) });
  t.match(lines(parseCardJson(multiByte)), [/larger than the limit/], 'the limit counts UTF-8 bytes, not characters');
});

t.test('checkJsonSyntax accepts exactly what JSON.parse accepts (seeded fuzz)', async (t) => {
  const rand = mulberry32(42);
  const alphabet = '{}[]",:0123456789.eE+-truefalsn \\u\n\t\r/bx\u00e9\u2028';
  const seeds = [JSON.stringify(v3Card()), JSON.stringify(v2Card(), null, 2), '{"a":[1,-2.5e+3,true,false,null,"\\u00e9\\n"]}', '[]', '0', '"x"'];
  let disagreements = 0;
  for (let n = 0; n < 3000; n++) {
    let s = seeds[n % seeds.length]!;
    const edits = 1 + Math.floor(rand() * 3);
    for (let e = 0; e < edits; e++) {
      const at = Math.floor(rand() * (s.length + 1));
      const op = rand();
      const ch = alphabet[Math.floor(rand() * alphabet.length)]!;
      s = op < 0.4 ? s.slice(0, at) + s.slice(at + 1) : op < 0.8 ? s.slice(0, at) + ch + s.slice(at) : s.slice(0, at) + ch + s.slice(at + 1);
    }
    let parses = true;
    try {
      JSON.parse(s);
    } catch {
      parses = false;
    }
    if (parses !== (checkJsonSyntax(s, 1000) === undefined)) {
      disagreements++;
      t.fail(`disagrees on ${JSON.stringify(s.slice(0, 200))}`);
    }
  }
  t.equal(disagreements, 0);
});

t.test('strings: unpaired surrogates, BOM, invalid UTF-8', async (t) => {
  t.same(lines(parseCardJson('{"name": "x", "description": "a\\ud800b", "extensions": {"k\\udc00": 1}}')), [
    'description: contains an unpaired UTF-16 surrogate escape (\\uD800-\\uDFFF); it cannot be encoded as UTF-8',
    'extensions["k\\udc00"]: key contains an unpaired UTF-16 surrogate escape (\\uD800-\\uDFFF); it cannot be encoded as UTF-8',
  ]);
  t.ok(parseCardJson('{"name": "\\ud83d\\ude00 ok"}').card, 'escaped pairs are fine');
  t.ok(parseCardJson('\ufeff{"name": "bom"}').card, 'a BOM is skipped');
  t.ok(parseCardJson(Buffer.from('\ufeff{"name": "bom"}')).card, 'a UTF-8 BOM in bytes is skipped');
  t.same(lines(parseCardJson(Buffer.from([0x7b, 0x22, 0x6e, 0xff, 0x22, 0x7d]))), ['(card): the file is not valid UTF-8']);
});

t.test('"__proto__" keys stay plain data', async (t) => {
  const text = '{"spec":"chara_card_v2","spec_version":"2.0","data":{"name":"x","extensions":{"__proto__":{"polluted":true},"ok":1}},"__proto__":{"top":1}}';
  const card = cardOf(t, parseCardJson(text));
  t.equal(({} as Record<string, unknown>).polluted, undefined, 'no prototype pollution');
  t.ok(Object.hasOwn(card.data.extensions, '__proto__'), 'kept as an own key');
  t.same(Object.getPrototypeOf(card.data.extensions), Object.prototype);
  t.ok(Object.hasOwn(card.extra, '__proto__'));
  const exported = exportCardJson(card, { indent: 0 });
  t.ok(exported.includes('"extensions":{"__proto__":{"polluted":true},"ok":1}'), 'exported as a key');
  const again = cardOf(t, parseCardJson(exported));
  t.equal(JSON.stringify(again.data.extensions), '{"__proto__":{"polluted":true},"ok":1}');
  t.equal(JSON.stringify(again.extra), '{"__proto__":{"top":1}}');
});

t.test('nulls and numbers in known fields', async (t) => {
  const card = cardOf(t, parseObj(withData({ character_book: null, nickname: null, assets: null, tags: null, creator: null, extensions: null, character_version: 2 })));
  t.notOk('character_book' in card.data, 'null lorebook: none');
  t.notOk('nickname' in card.data);
  t.notOk('assets' in card.data);
  t.same(card.data.tags, []);
  t.equal(card.data.creator, '');
  t.same(card.data.extensions, {});
  t.equal(card.data.character_version, '2', 'a number where a string belongs becomes text');
  const book = cardOf(t, parseObj(withData({ character_book: { entries: [{ keys: [], content: '', name: null, priority: null }] } }))).data.character_book;
  t.same(book?.entries[0], { keys: [], content: '', name: null, priority: null }, 'nulls inside the lorebook are kept verbatim');
  t.same(lines(parseCardJson('{"spec":"chara_card_v3","spec_version":"3.0","data":{"name":"x","creation_date":1e400}}')), ['data.creation_date: expected a number (Unix time in seconds)'], 'a number too large for a double');
});

// ---------------------------------------------------------------------------
// PNG import

t.test('ccv3 is preferred over chara when both are present', async (t) => {
  const v2 = withData({ name: 'From chara' });
  const v3 = v3Card();
  for (const order of [[textChunk('chara', v2), textChunk('ccv3', v3)], [textChunk('ccv3', v3), textChunk('chara', v2)]]) {
    const r = parseCardPng(pngWith(...order));
    t.same(r.issues, []);
    t.equal(r.container, 'png:ccv3');
    t.equal(r.card?.data.name, 'Gu Feng');
    t.equal(r.card?.spec, 'chara_card_v3');
  }
  const only = parseCardPng(pngWith(textChunk('chara', v2)));
  t.equal(only.container, 'png:chara');
  t.equal(only.card?.data.name, 'From chara');
  t.equal(parseCardPng(pngWith(textChunk('ccv3', v3))).container, 'png:ccv3');
});

t.test('a ccv3 chunk with no usable card falls back to chara, with warnings', async (t) => {
  const v2 = withData({ name: 'From chara' });
  const badV3 = { ...v3Card(), data: { name: 5, tags: 'x' } };
  const r = parseCardPng(pngWith(textChunk('ccv3', badV3), textChunk('chara', v2)));
  t.equal(r.card?.data.name, 'From chara');
  t.equal(r.container, 'png:chara');
  t.same(lines(r), [
    'warning: png: the "ccv3" chunk holds no usable card; the card was read from the "chara" chunk',
    'warning: [ccv3] data.tags: expected an array of strings',
  ]);
  const garbage = parseCardPng(pngWith(encodeTextChunk('ccv3', '!!not base64!!'), textChunk('chara', v2)));
  t.equal(garbage.card?.data.name, 'From chara');
  t.match(lines(garbage), [/holds no usable card/, 'warning: [ccv3] (card): the chunk is not base64 (expected base64 of UTF-8 JSON)']);

  const both = parseCardPng(pngWith(encodeTextChunk('ccv3', '!!'), encodeTextChunk('chara', '??')));
  t.equal(both.card, undefined);
  t.same(lines(both), ['[ccv3] (card): the chunk is not base64 (expected base64 of UTF-8 JSON)', '[chara] (card): the chunk is not base64 (expected base64 of UTF-8 JSON)']);
});

t.test('base64 garbage, invalid UTF-8 and bad JSON inside chunks', async (t) => {
  const one = (c: Uint8Array) => lines(parseCardPng(pngWith(c)));
  t.same(one(encodeTextChunk('chara', 'eyJuYW1lIjoieCJ9$$')), ['[chara] (card): the chunk is not base64 (expected base64 of UTF-8 JSON)']);
  t.same(one(encodeTextChunk('chara', 'eyJu=YW1l')), ['[chara] (card): the chunk is not base64 (expected base64 of UTF-8 JSON)'], 'padding in the middle');
  t.same(one(encodeTextChunk('chara', 'QUJDR')), ['[chara] (card): the chunk is not base64 (expected base64 of UTF-8 JSON)'], 'impossible length');
  t.same(one(encodeTextChunk('chara', '')), ['[chara] (card): the chunk is empty']);
  t.same(one(encodeTextChunk('chara', Buffer.from([0x7b, 0xff, 0xfe, 0x7d]).toString('base64'))), ['[chara] (card): the chunk decodes to bytes that are not valid UTF-8']);
  t.same(one(textChunk('chara', '{"name": }')), ['[chara] (card) 1:10: invalid JSON: expected a value']);
  t.same(one(textChunk('chara', { name: '' })), ['[chara] name: must not be empty']);
  t.same(one(encodeChunk('tEXt', Buffer.from('chara', 'latin1'))), ['[chara] (card): chunk 2 (tEXt) at byte 33: no keyword (1-79 bytes ending in a NUL byte)'].map(() => 'png: no "ccv3" or "chara" text chunk: this PNG holds no character card'), 'a keyword without NUL is no keyword');
  t.same(one(encodeTextChunk('chara', 'A'.repeat(Math.ceil(CARD_LIMITS.jsonBytes / 3) * 4 + 4))), [`[chara] (card): the chunk decodes to more than the limit of ${CARD_LIMITS.jsonBytes} bytes`]);
  const wrapped = b64(V1_CARD).replace(/(.{76})/g, '$1\n');
  t.ok(parseCardPng(pngWith(encodeTextChunk('chara', wrapped))).card, 'line-wrapped base64 is read');
  t.ok(parseCardPng(pngWith(encodeTextChunk('chara', b64(V1_CARD).replace(/=+$/, '')))).card, 'unpadded base64 is read');
});

t.test('zTXt and iTXt chunks, keyword case, duplicates, raw JSON', async (t) => {
  t.equal(parseCardPng(pngWith(ztxtChunk('chara', V1_CARD))).card?.data.name, 'Mara Quill', 'zTXt');
  t.equal(parseCardPng(pngWith(itxtChunk('ccv3', b64(v3Card())))).card?.data.name, 'Gu Feng', 'iTXt');
  t.equal(parseCardPng(pngWith(textChunk('Chara', V1_CARD))).card?.data.name, 'Mara Quill', 'keywords match in any case');

  const dup = parseCardPng(pngWith(textChunk('chara', { name: 'first' }), textChunk('chara', { name: 'second' })));
  t.equal(dup.card?.data.name, 'first');
  t.same(lines(dup), ['warning: png: 2 "chara" chunks; the first (chunk 2) is read']);

  const raw = parseCardPng(pngWith(encodeChunk('tEXt', Buffer.concat([Buffer.from('chara\0'), Buffer.from(JSON.stringify({ name: 'Zoë' }), 'utf8')]))));
  t.equal(raw.card?.data.name, 'Zoë', 'raw UTF-8 JSON in a tEXt chunk');
  t.same(lines(raw), ['warning: [chara] (card): the chunk holds raw JSON, not base64 of it']);
  t.equal(parseCardPng(pngWith(itxtChunk('chara', JSON.stringify({ name: '日本' })))).card?.data.name, '日本', 'raw JSON in iTXt');

  const v2InCcv3 = parseCardPng(pngWith(textChunk('ccv3', v2Card())));
  t.equal(v2InCcv3.card?.spec, 'chara_card_v2');
  t.same(lines(v2InCcv3), ['warning: [ccv3] spec: the ccv3 chunk holds a chara_card_v2 card']);
});

t.test('corrupt PNGs give issues, never throw', async (t) => {
  const one = (bytes: Uint8Array) => {
    const r = parseCard(bytes);
    t.equal(r.card, undefined);
    return lines(r);
  };
  const badCrc = Buffer.from(FIXTURE);
  const at = FIXTURE.indexOf('tEXtchara', 0, 'latin1') + 100;
  badCrc[at] = badCrc[at]! ^ 0x20;
  t.same(one(badCrc), ['png: chunk 2 (tEXt) at byte 511550: CRC mismatch (stored 0xda5e825f, computed 0x83bba55c)'], 'the example in docs/cards.md');
  t.match(one(FIXTURE.subarray(0, FIXTURE.length - 2)), [/^png: truncated: chunk 3 \(IEND\) at byte 529600 needs 12 bytes, the file has 10 left/]);
  t.match(one(FIXTURE.subarray(0, 200_000)), [/^png: truncated: chunk 1 \(IDAT\)/]);
  const huge = Buffer.from(FIXTURE);
  huge.writeUInt32BE(0x7ffffff0, 33);
  t.match(one(huge), [/^png: chunk 1 \(IDAT\) at byte 33: length 2147483632 exceeds the limit of 16 MiB/]);
  t.same(one(minimalPng()), ['png: no "ccv3" or "chara" text chunk: this PNG holds no character card']);
  t.same(one(PNG_SIGNATURE), ['png: truncated: no IEND chunk (file ends at byte 8)']);

  // Every prefix and many random corruptions of a small card PNG: issues, no exceptions.
  const png = pngWith(textChunk('chara', v2Card()));
  const wrong: number[] = [];
  for (let n = 0; n < png.length; n++) {
    const r = parseCard(png.subarray(0, n));
    if (r.card || !r.issues.some((i) => i.severity === 'error')) wrong.push(n);
  }
  t.same(wrong, [], 'every prefix: no card, an error');
  const rand = mulberry32(7);
  let cards = 0;
  let silent = 0;
  for (let i = 0; i < 1000; i++) {
    const bad = Buffer.from(png);
    for (let k = 0; k < 1 + Math.floor(rand() * 4); k++) bad[Math.floor(rand() * bad.length)] = Math.floor(rand() * 256);
    const r = parseCard(bad);
    if (r.card) cards++;
    else if (!r.issues.some((i) => i.severity === 'error')) silent++;
  }
  t.equal(silent, 0, '1000 random corruptions: no exception, and no card always comes with an error');
  t.ok(cards < 50, `corruptions are noticed (${cards} of 1000 gave a card: a byte replaced by itself)`);
});

t.test('parseCard tells PNG from JSON; parseCardObject', async (t) => {
  t.equal(parseCard(FIXTURE).container, 'png:chara');
  t.equal(parseCard(JSON.stringify(v3Card())).container, 'json');
  t.equal(parseCard(Buffer.from(JSON.stringify(v3Card()))).container, 'json');
  t.same(lines(parseCard(Buffer.from('GIF89a'))), ['(card) 1:1: invalid JSON: expected a value']);
  const obj = parseCardObject(v3Card());
  t.equal(obj.card?.data.name, 'Gu Feng');
  const cyclic: Record<string, unknown> = { name: 'x' };
  cyclic.self = cyclic;
  t.match(lines(parseCardObject(cyclic)), [/^\(card\): not JSON data: /]);
  t.same(lines(parseCardObject(undefined)), ['(card): not JSON data']);
});

// ---------------------------------------------------------------------------
// Export

t.test('the fixture exported to PNG imports as the same card', async (t) => {
  const card = cardOf(t, parseCard(FIXTURE));
  const png = exportCardPng(card);
  const again = parseCard(png);
  const card2 = cardOf(t, again);
  t.same(again.issues, []);
  t.equal(again.container, 'png:ccv3');
  t.equal(card2.spec, 'chara_card_v3', 'read from the ccv3 chunk');
  t.same(card2.data, card.data, 'data deep-equal, extensions included');
  t.equal(JSON.stringify(card2.data), JSON.stringify(card.data), 'and in the same key order');
  t.same(card2.extra, card.extra);

  // The chara chunk alone is the V2 card with the same data.
  const chunks = readPngChunks(png).chunks!;
  t.same(chunks.map((c) => textChunkKeyword(c) ?? c.type), ['IHDR', 'IDAT', 'chara', 'ccv3', 'IEND']);
  const chara = decodeTextChunk(chunks[2]!, 2);
  if (typeof chara === 'string') return t.fail(chara);
  const v2 = JSON.parse(Buffer.from(chara.text, 'base64').toString('utf8'));
  t.equal(v2.spec, 'chara_card_v2');
  t.equal(v2.spec_version, '2.0');
  const { group_only_greetings: greetingsOnlyInV3, ...v2Fields } = card.data;
  t.same(v2.data, greetingsOnlyInV3.length > 0 ? card.data : v2Fields, 'the V2 chunk has the data, without an empty V3-only group_only_greetings');
  t.same(cardOf(t, parseCardPng(pngWith(encodeTextChunk('chara', chara.text)))), card, 'the chara chunk alone gives the original card');

  t.same(cardOf(t, parseCard(exportCardJson(card))), card, 'JSON round trip gives the identical card');
});

t.test('export onto a base image keeps the image and replaces its card chunks', async (t) => {
  const card = cardOf(t, parseObj(v3Card()));
  const png = exportCardPng(card, FIXTURE);
  const before = readPngChunks(FIXTURE).chunks!;
  const after = readPngChunks(png).chunks!;
  t.same(after.map((c) => textChunkKeyword(c) ?? c.type), ['IHDR', 'IDAT', 'chara', 'ccv3', 'IEND'], 'the old chara chunk is gone');
  t.ok(Buffer.from(after[0]!.data).equals(Buffer.from(before[0]!.data)) && Buffer.from(after[1]!.data).equals(Buffer.from(before[1]!.data)), 'IHDR and IDAT unchanged');
  const back = parseCard(png);
  t.same(back.card, card);
  t.equal(back.card?.data.name, 'Gu Feng', 'the new card, not Seraphina');

  // Case variants and compressed card chunks of the base are replaced too.
  const base = pngWith(textChunk('CHARA', { name: 'old' }), ztxtChunk('ccv3', { name: 'old' }), encodeTextChunk('Comment', 'kept'));
  const out = readPngChunks(exportCardPng(card, base)).chunks!;
  t.same(out.map((c) => textChunkKeyword(c) ?? c.type), ['IHDR', 'IDAT', 'Comment', 'chara', 'ccv3', 'IEND']);
});

t.test('unknown extension keys survive JSON and PNG round trips', async (t) => {
  const weird = {
    'x/deep': { a: [{ b: { c: [1, 2.5, -0.125, 1e21, null, false, 'ü', '😀'] } }], empty: {}, list: [] },
    risu: { lorebookExt: true },
    depth_prompt: { prompt: 'p', depth: 4 },
  };
  const samples = {
    v1: { ...V1_CARD, extra_top: { y: 1 } },
    v2: withData({ extensions: weird, unknown_field: ['kept'] }),
    v3: { ...v3Card(), top_level_extra: 'kept', data: { ...(v3Card().data as object), extensions: weird, x_v4_field: { future: true } } },
  };
  for (const [name, sample] of Object.entries(samples)) {
    const card = cardOf(t, parseObj(sample));
    for (const spec of ['chara_card_v2', 'chara_card_v3'] as const) {
      const viaJson = cardOf(t, parseCardJson(exportCardJson(card, { spec })));
      t.same(viaJson.data, card.data, `${name} → ${spec} JSON → same data`);
      t.same(viaJson.extra, card.spec === 'chara_card_v1' ? { ...V1_CARD_TOP(card), ...card.extra } : card.extra, `${name} → ${spec} JSON → same top-level extras`);
    }
    const viaPng = cardOf(t, parseCard(exportCardPng(card)));
    t.same(viaPng.data, card.data, `${name} → PNG → same data`);
    if (name !== 'v1') t.same(viaPng.data.extensions, weird, `${name}: extensions verbatim`);
  }
});

/** The six V1 fields at the top level, as export writes them for a V1 card. */
function V1_CARD_TOP(card: Card): Record<string, string> {
  const { name, description, personality, scenario, first_mes, mes_example } = card.data;
  return { name, description, personality, scenario, first_mes, mes_example };
}

t.test('exportCardJson: which spec, top-level mirror, options', async (t) => {
  const v1 = cardOf(t, parseObj(V1_CARD));
  const v2 = cardOf(t, parseObj(v2Card()));
  const v3 = cardOf(t, parseObj(v3Card()));
  const doc = (c: Card, o = {}) => JSON.parse(exportCardJson(c, o));
  t.same([doc(v1).spec, doc(v1).spec_version], ['chara_card_v2', '2.0'], 'V1 goes out as V2');
  t.same([doc(v2).spec, doc(v2).spec_version], ['chara_card_v2', '2.0'], 'V2 stays V2');
  t.same([doc(v3).spec, doc(v3).spec_version], ['chara_card_v3', '3.0'], 'V3 stays V3');
  t.same([doc(v2, { spec: 'chara_card_v3' }).spec, doc(v2, { spec: 'chara_card_v3' }).spec_version], ['chara_card_v3', '3.0']);
  t.same([doc(v3, { spec: 'chara_card_v2' }).spec, doc(v3, { spec: 'chara_card_v2' }).spec_version], ['chara_card_v2', '2.0']);
  const newer = cardOf(t, parseObj({ ...v3Card(), spec_version: '3.1' }));
  t.equal(doc(newer).spec_version, '3.1', 'the version is kept when the spec is');

  const { group_only_greetings: _v3Only, ...v1AsV2 } = v1.data;
  t.same(doc(v1), { ...V1_CARD_TOP(v1), avatar: 'none', chat: 'Mara - 2023-5-1', spec: 'chara_card_v2', spec_version: '2.0', data: v1AsV2 }, 'V1 fields stay at the top level for V1 readers');
  t.notOk('group_only_greetings' in (doc(v1).data as object), 'a V2 document gets no V3-only field the card did not have');
  t.notOk('name' in doc(v2), 'no mirror is added to a card that had none');

  const seraphina = cardOf(t, parseCard(FIXTURE));
  const renamed: Card = { ...seraphina, data: { ...seraphina.data, name: 'Renamed' } };
  const out = doc(renamed);
  t.equal(out.name, 'Renamed', 'the top-level mirror follows data');
  t.equal(out.chat, seraphina.extra.chat, 'other top-level keys as they were');
  t.same(Object.keys(cardDocument(seraphina)).slice(-3), ['spec', 'spec_version', 'data']);
  t.equal(out.data.modification_date, undefined, 'no dates are invented');

  t.equal(exportCardJson(v3, { indent: 0 }).includes('\n'), false);
  t.match(exportCardJson(v3), /^\{\n {2}"spec"/);
  t.throws(() => exportCardJson(v3, { indent: -1 }), { name: 'TypeError', message: 'options.indent must be an integer from 0 to 10' });
  t.throws(() => exportCardJson(v3, { spec: 'chara_card_v1' as never }), { name: 'TypeError', message: /options.spec must be/ });
});

t.test('export errors', async (t) => {
  const card = cardOf(t, parseObj(v3Card()));
  t.throws(() => exportCardPng(card, FIXTURE.subarray(0, 50)), { name: 'TypeError', message: /^basePng: not a valid PNG: truncated/ });
  t.throws(() => exportCardPng(card, Buffer.from('not a png')), { name: 'TypeError', message: /^basePng: not a valid PNG: not a PNG file/ });
  const big: Card = { ...card, data: { ...card.data, description: 'x'.repeat(CARD_LIMITS.jsonBytes) } };
  t.throws(() => exportCardJson(big), { name: 'RangeError', message: /the import limit is 4194304/ });
  t.throws(() => exportCardPng(big), RangeError);
});

// ---------------------------------------------------------------------------
// Conversion to npcd characters

t.test('the fixture converts to a Character, with its lorebook unchanged', async (t) => {
  const card = cardOf(t, parseCard(FIXTURE));
  const { character: c, lorebook, issues } = cardToCharacter(card, 'cards/default_Seraphina.png');
  t.same(issues, []);
  if (!c) return t.fail('no character');
  t.equal(c.id, 'default-seraphina');
  t.equal(c.name, 'Seraphina');
  t.same(c.aliases, []);
  t.match(c.description, /^\[Seraphina's Personality= "caring"/);
  t.notMatch(c.description, /\r/, 'CRLF became LF');
  t.equal(c.description, card.data.description.replace(/\r\n/g, '\n').trim(), 'personality and scenario are empty in this card');
  t.equal(c.persona, '');
  t.equal(c.systemPrompt, '');
  t.equal(c.greeting, card.data.first_mes);
  t.equal(c.userName, 'User');
  t.same(c.examples, [], 'mes_example is empty');
  t.equal(c.initialState, 'default');
  t.same(c.states, ['default']);
  t.same(c.triggers, []);
  t.equal(c.source, 'cards/default_Seraphina.png');
  t.ok(Object.isFrozen(c));
  t.equal(c.lorebooks.length, 1, 'the character_book, parsed by the lore module');
  t.equal(c.lorebooks[0]?.entries.length, 4);
  t.same(c.lorebooks[0]?.entries[0]?.keys.map((k) => k.source), ['eldoria', 'wood', 'forest', 'magical forest']);
  t.same(c.lorebookFiles, []);
  t.equal(lorebook, card.data.character_book, 'the same object');
  t.same(lorebook, fixtureJson().data.character_book, 'and as the file has it');
  const rendered = compileTemplate(c.description).render(CTX);
  t.match(rendered, /\nPal: "Describe your traits\?"\nBot: \*Seraphina's gentle smile/, 'macros render through the template layer');
});

t.test('texts: description parts, system prompt, legacy macros, stray braces', async (t) => {
  const card = cardOf(t, parseObj(withData({
    description: 'Desc of <BOT>.\r\n',
    personality: 'terse; says {{random:yes,no}}',
    scenario: '<USER> docks at {{char}}\'s station.',
    system_prompt: '{{original}} Use {{ User }}\'s name. {{// a comment}}',
    first_mes: 'Hello {{user}} {{{char}}} {{',
  })));
  const { character: c } = cardToCharacter(card, 'halcyon.json');
  if (!c) return t.fail('no character');
  const r = (s: string) => compileTemplate(s).render(CTX);
  t.equal(r(c.description), "Desc of Bot.\n\nBot's personality: terse; says {{random:yes,no}}\n\nScenario: Pal docks at Bot's station.");
  t.equal(r(c.systemPrompt), "You are Bot. Stay in character. Use Pal's name. {{// a comment}}");
  t.equal(r(c.greeting), 'Hello Pal {Bot} {{');
  t.equal(c.id, 'halcyon');
});

t.test('templateSafe keeps only the card macros', async (t) => {
  const cases: [string, string][] = [
    ['plain', 'plain'],
    ['{{char}} and {{user}}', 'Bot and Pal'],
    ['{{CHAR}} {{ user }}', 'Bot Pal'],
    ['{{.UserInput}}', '{{.UserInput}}'],
    ['{{- char -}}', '{{- char -}}'],
    ['{{"{{"}}', '{{"{{"}}'],
    ['{{', '{{'],
    ['}}{{}}{{', '}}{{}}{{'],
    ['{{{{char}}', '{{Bot'],
    ['{{{char}}}', '{Bot}'],
    ['{{{', '{{{'],
    ['{{{x}}}', '{{{x}}}'],
    ['a {{random::x}} b {{char}}', 'a {{random::x}} b Bot'],
    ['{{user}}{{', 'Pal{{'],
  ];
  for (const [input, expected] of cases) t.equal(compileTemplate(templateSafe(input)).render(CTX), expected, JSON.stringify(input));
  const rand = mulberry32(3);
  const parts = ['{{', '}}', 'char', 'user', '{{char}}', '{{user}}', ' ', '"', '|', '.', '-', 'x', '\n', '{', '}'];
  const wrong: string[] = [];
  for (let n = 0; n < 5000; n++) {
    let s = '';
    for (let k = Math.floor(rand() * 12); k > 0; k--) s += parts[Math.floor(rand() * parts.length)];
    // What a left-to-right regex replace of the two macros gives (SillyTavern's way).
    const expected = s.replace(/\{\{\s*(char|user)\s*\}\}/gi, (_m, w: string) => (w.toLowerCase() === 'char' ? 'Bot' : 'Pal'));
    let got: string;
    try {
      got = compileTemplate(templateSafe(s)).render(CTX);
    } catch (err) {
      got = `threw ${(err as Error).message}`;
    }
    if (got !== expected) wrong.push(s);
  }
  t.same(wrong, [], '5000 random texts compile and render as the regex replace does');
});

t.test('parseExamples: the {{char}} lines of mes_example', async (t) => {
  const mes = [
    'Narration before any speaker is skipped.',
    '<START>',
    '{{user}}: Hi there.',
    'still the user',
    '{{char}}: *waves* Hello, {{user}}.',
    'A second line of the same reply.',
    '',
    '{{user}}: Bye.',
    '<start>',
    '  {{Char}}:No space after the colon.',
    '<BOT>: Legacy <USER> macro.',
    'Mara: Said with my name.',
    'Marathon: not my name',
    '{{char}}:   ',
    '<START>',
  ].join('\r\n');
  t.same(parseExamples(mes, ['Mara']), [
    '*waves* Hello, {{user}}.\nA second line of the same reply.',
    'No space after the colon.',
    'Legacy {{user}} macro.',
    'Said with my name.\nMarathon: not my name',
  ]);
  t.same(parseExamples(''), []);
  const card = cardOf(t, parseObj(V1_CARD));
  t.same(cardToCharacter(card, 'mara.json').character?.examples, ['One left. Ocean view, if you squint.']);
});

t.test('npcd extension data, ids, nickname', async (t) => {
  const v3 = cardOf(t, parseObj(v3Card()));
  const c = cardToCharacter(v3, 'cards/古风剑客.png').character;
  t.equal(c?.persona, 'trust: 0.7', 'persona DSL from extensions.npcd.persona');
  t.equal(c?.id, 'gu-feng', 'a file name without usable characters: the id comes from the name');
  t.same(c?.aliases, ['Feng'], 'the V3 nickname is an alias');
  t.same(c?.examples, ['天色已晚。']);

  const withNpcd = (npcd: unknown) => cardOf(t, parseObj(withData({ extensions: { npcd } })));
  const custom = cardToCharacter(withNpcd({ id: 'station-ai', persona: 'trust: 0.2\r\nreact_to_conflict: "confront"', user_name: ' Crew ', future_key: 1 }), 'x.png').character;
  t.equal(custom?.id, 'station-ai');
  t.equal(custom?.persona, 'trust: 0.2\nreact_to_conflict: "confront"');
  t.equal(custom?.userName, 'Crew');

  const bad = cardToCharacter(withNpcd({ id: 'Bad Id', persona: 3, user_name: [] }), 'x.png');
  t.equal(bad.character, undefined);
  t.same(bad.issues.map((i) => `${i.file}:${i.line}:${i.column}: ${i.message}`), [
    'x.png:1:1: data.extensions.npcd.id: must be lower-case letters, digits and - (up to 64), got "Bad Id"',
    'x.png:1:1: data.extensions.npcd.persona: expected a string',
    'x.png:1:1: data.extensions.npcd.user_name: expected a string',
  ]);
  t.same(cardToCharacter(withNpcd('text'), 'x.png').issues.map((i) => i.message), ['data.extensions.npcd: expected an object']);
  t.ok(bad.lorebook, 'the lorebook comes back even when the character does not');

  const unicode = cardOf(t, parseObj({ name: '剑客' }));
  t.match(cardToCharacter(unicode, '剑客.json').character?.id, /^card-[0-9a-f]{8}$/, 'no latin letters anywhere: a hash of the name');
  t.equal(idFromCardFileName('/a/b/Ünïcode Név_v2.PNG'), 'unicode-nev-v2');
  t.equal(idFromCardFileName('C:\\cards\\seraphina.v2.png'), 'seraphina-v2');
  t.equal(idFromCardFileName('--x--.json'), 'x');
  t.equal(idFromCardFileName(`${'a'.repeat(63)}_b.png`), 'a'.repeat(63));
});

t.test('loadCard and issue mapping', async (t) => {
  const ok = loadCard(FIXTURE, 'cards/seraphina.png');
  t.equal(ok.character?.id, 'seraphina');
  t.equal(ok.container, 'png:chara');
  t.equal(ok.lorebook?.entries.length, 4);
  t.same([ok.issues, ok.warnings], [[], []]);

  const syntax = loadCard('{\n "name": ,\n}', 'cards/broken.json');
  t.equal(syntax.character, undefined);
  t.same(syntax.issues, [{ file: 'cards/broken.json', line: 2, column: 10, message: '(card): invalid JSON: expected a value' }]);

  const inChunk = loadCard(pngWith(textChunk('chara', '{\n"name": ,}')), 'cards/broken.png');
  t.same(inChunk.issues, [{ file: 'cards/broken.png', line: 1, column: 1, message: 'chara chunk (line 2, column 9 of its JSON): (card): invalid JSON: expected a value' }]);

  const warned = loadCard(JSON.stringify({ ...v3Card(), spec_version: '3.5' }), 'gufeng.json');
  t.ok(warned.character);
  t.same(warned.warnings.map((w) => w.message), ['spec_version: "3.5" is newer than "3.0": the card is read as 3.0; fields it adds are kept but not used']);

  const regex = withData({ character_book: { entries: [{ keys: ['(a+)+$'], content: 'x', use_regex: true }, { keys: ['ok'], content: 'y' }] } });
  const lore = loadCard(JSON.stringify(regex), 'halcyon.json');
  t.ok(lore.character, 'a lorebook key the lore module refuses does not stop the character');
  t.equal(lore.character?.lorebooks[0]?.entries.length, 2);
  t.same(lore.issues, []);
  t.match(lore.warnings, [{ file: 'halcyon.json', line: 1, column: 1, message: /^lorebook: data\.character_book\.entries\[0\]\.keys\[0\]: regex key refused: / }]);
  t.equal(lore.warnings.length, 1, 'lore defaults (missing insertion_order, enabled) are not reported');
  t.same(cardToCharacter(cardOf(t, parseObj(V1_CARD)), 'mara.json').character?.lorebooks, [], 'no character_book, no lorebooks');

  const mapped = cardIssuesToCharacterIssues([{ severity: 'error', path: 'png', message: 'truncated' }], 'f.png');
  t.same(mapped, [{ file: 'f.png', line: 1, column: 1, message: 'png: truncated' }]);
});
