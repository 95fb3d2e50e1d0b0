import t from 'tap';
import { formatPersonaIssue, parsePersona, validate } from '../../src/persona/index.js';
import type { Persona, Statement } from '../../src/persona/types.js';

const issues = (text: string): string[] => parsePersona(text).issues.map(formatPersonaIssue);
const persona = (text: string): Persona => {
  const r = parsePersona(text);
  if (!r.persona) throw new Error(`does not parse: ${r.issues.map(formatPersonaIssue).join('\n')}`);
  return r.persona;
};
const UNSET_TRAITS = { warmth: undefined, formality: undefined, humor: undefined, verbosity: undefined, patience: undefined, aggression: undefined };

t.test('the seed persona', async (t) => {
  const r = parsePersona('trust: 0.7; react_to_conflict: "withdraw"; core_value: "autonomy"');
  t.same(r.issues, []);
  t.same(r.persona, {
    trust: 0.7, reactToConflict: 'withdraw', coreValues: ['autonomy'], traits: UNSET_TRAITS,
    mood: undefined, speechStyle: undefined, likes: [], dislikes: [], taboos: [], extra: {},
  });
});

t.test('every known key', async (t) => {
  const p = persona([
    'trust: 0.25',
    'react_to_conflict: confront',
    'core_value: [loyalty, "honour"]',
    'warmth: 0.8; formality: 0; humor: 1; verbosity: 0.3; patience: 0.45; aggression: 0.1',
    'mood: weary',
    "speech_style: '  clipped,   dry  '",
    'likes: [tea, chess]; likes: "rain"',
    'dislikes: noise',
    'taboo: [politics]; taboo: 她的过去',
  ].join('\n'));
  t.same(p, {
    trust: 0.25, reactToConflict: 'confront', coreValues: ['loyalty', 'honour'],
    traits: { warmth: 0.8, formality: 0, humor: 1, verbosity: 0.3, patience: 0.45, aggression: 0.1 },
    mood: 'weary', speechStyle: 'clipped,   dry', likes: ['tea', 'chess', 'rain'], dislikes: ['noise'], taboos: ['politics', '她的过去'], extra: {},
  });
});

t.test('trust is required and in [0, 1]', async (t) => {
  t.same(issues('warmth: 0.5'), ['1:1: missing required key "trust": expected e.g. "trust: 0.5" (a number from 0 to 1)']);
  t.same(issues(''), ['1:1: missing required key "trust": expected e.g. "trust: 0.5" (a number from 0 to 1)']);
  t.same(issues('trust: 1.5'), ['1:8: "trust" must be a number from 0 to 1, found 1.5']);
  t.same(issues('trust: -0.01'), ['1:8: "trust" must be a number from 0 to 1, found -0.01']);
  t.same(issues('trust: "0.7"'), ['1:8: "trust" must be a number from 0 to 1, found string "0.7"; numbers are written without quotes']);
  t.same(issues('trust: high'), ['1:8: "trust" must be a number from 0 to 1, found identifier "high"']);
  t.same(issues('trust: [0.5]'), ['1:8: "trust" must be a number from 0 to 1, found a list']);
  t.equal(persona('trust: 0').trust, 0, 'the bounds are inclusive');
  t.equal(persona('trust: 1').trust, 1);
  t.equal(persona('trust: 1e-1').trust, 0.1);
  t.same(issues('trust: 0.5; warmth: 2'), ['1:21: "warmth" must be a number from 0 to 1, found 2'], 'other numeric traits are bounded too');
});

t.test('react_to_conflict is one of withdraw, confront, defer', async (t) => {
  for (const v of ['withdraw', 'confront', 'defer']) {
    t.equal(persona(`trust: 0.5; react_to_conflict: ${v}`).reactToConflict, v, `${v} as an identifier`);
    t.equal(persona(`trust: 0.5; react_to_conflict: '${v}'`).reactToConflict, v, `${v} as a string`);
  }
  t.same(issues('trust: 0.5; react_to_conflict: fight'), ['1:32: "react_to_conflict" must be one of withdraw, confront, defer, found identifier "fight"']);
  t.same(issues('trust: 0.5; react_to_conflict: "withdrew"'), ['1:32: "react_to_conflict" must be one of withdraw, confront, defer, found string "withdrew"; did you mean "withdraw"?']);
  t.same(issues('trust: 0.5; react_to_conflict: Defer'), ['1:32: "react_to_conflict" must be one of withdraw, confront, defer, found identifier "Defer"; did you mean "defer"?'], 'case matters');
  t.same(issues('trust: 0.5; react_to_conflict: 1'), ['1:32: "react_to_conflict" must be one of withdraw, confront, defer, found number 1']);
  t.same(issues('trust: 0.5; mood: happy'), ['1:19: "mood" must be one of calm, cheerful, playful, serious, melancholy, anxious, irritable, weary, found identifier "happy"']);
});

t.test('core_value repeats into a list; lists add each item', async (t) => {
  t.same(persona('trust: 0.4; core_value: "safety"; core_value: "precision"').coreValues, ['safety', 'precision']);
  t.same(persona('trust: 0.4; core_value: [a, b]; core_value: c\ncore_value: [d]; core_value: []').coreValues, ['a', 'b', 'c', 'd']);
  t.same(persona('trust: 0.4; core_value: 自由').coreValues, ['自由'], 'Chinese identifiers');
  t.same(persona('trust: 0.4').coreValues, [], 'empty when absent');
  const r = parsePersona('trust: 0.4; core_value: a; core_value: [b, a]');
  t.same(r.issues.map(formatPersonaIssue), ['1:44: warning: "a" is already in core_value; the repeat is ignored']);
  t.same(r.persona?.coreValues, ['a', 'b'], 'a repeated entry is kept once');
  t.same(issues('trust: 0.4; core_value: [a, 42, [b], ""]; likes: "  "'), [
    '1:29: each "core_value" entry must be a string or identifier, found number 42; write it in quotes ("42")',
    '1:33: each "core_value" entry must be a string or identifier, found a list',
    '1:38: "core_value" entries must not be empty; expected some text',
    '1:50: "likes" entries must not be empty; expected some text',
  ]);
});

t.test('speech_style is non-empty text', async (t) => {
  t.equal(persona('trust: 0.5; speech_style: terse').speechStyle, 'terse');
  t.same(issues('trust: 0.5; speech_style: ""'), ['1:27: "speech_style" must not be empty; expected some text']);
  t.same(issues('trust: 0.5; speech_style: 3'), ['1:27: "speech_style" must be a string or identifier, found number 3']);
  t.same(issues('trust: 0.5; speech_style: [a]'), ['1:27: "speech_style" must be a string or identifier, found a list']);
});

t.test('a non-repeatable key given twice is an error at the second', async (t) => {
  t.same(issues('trust: 0.5\ntrust: 0.6'), ['2:1: duplicate key "trust": it is already set at 1:1; expected each key once (only core_value, likes, dislikes, taboo repeat)']);
  t.same(issues('trust: 0.5; mood: calm; warmth: 1; mood: calm'), ['1:36: duplicate key "mood": it is already set at 1:13; expected each key once (only core_value, likes, dislikes, taboo repeat)']);
  t.same(issues('trust: 2\ntrust: 0.6'), [
    '1:8: "trust" must be a number from 0 to 1, found 2',
    '2:1: duplicate key "trust": it is already set at 1:1; expected each key once (only core_value, likes, dislikes, taboo repeat)',
  ], 'a wrong first value still counts as set');
});

t.test('unknown keys: a warning with a suggestion, the value kept in extra', async (t) => {
  const r = parsePersona('trsut: 0.5\ntrust: 0.5\nreactToConflict: defer\nfavorite_color: blue\nsarcasm: 0.8; sarcasm: [a, "b", [1]]\n口头禅: "在下"');
  t.same(r.issues.map(formatPersonaIssue), [
    '1:1: warning: unknown key "trsut" (kept in persona.extra); did you mean "trust"?',
    '3:1: warning: unknown key "reactToConflict" (kept in persona.extra); did you mean "react_to_conflict"?',
    '4:1: warning: unknown key "favorite_color" (kept in persona.extra)',
    '5:1: warning: unknown key "sarcasm" (kept in persona.extra)',
    '5:15: warning: unknown key "sarcasm" (kept in persona.extra)',
    '6:1: warning: unknown key "口头禅" (kept in persona.extra)',
  ]);
  t.ok(r.persona, 'warnings leave the persona valid');
  t.same(r.persona?.extra, { trsut: [0.5], reactToConflict: ['defer'], favorite_color: ['blue'], sarcasm: [0.8, ['a', 'b', [1]]], 口头禅: ['在下'] });
  t.same(issues('trust: 0.5; core_values: a; like: b; taboos: c; speechstyle: d'), [
    '1:13: warning: unknown key "core_values" (kept in persona.extra); did you mean "core_value"?',
    '1:29: warning: unknown key "like" (kept in persona.extra); did you mean "likes"?',
    '1:38: warning: unknown key "taboos" (kept in persona.extra); did you mean "taboo"?',
    '1:49: warning: unknown key "speechstyle" (kept in persona.extra); did you mean "speech_style"?',
  ]);
  t.same(issues('trust: 0.5; x: 1'), ['1:13: warning: unknown key "x" (kept in persona.extra)'], 'no far-fetched suggestions for short keys');
});

t.test('keys such as __proto__ are plain data', async (t) => {
  const p = persona('trust: 0.5; __proto__: [1]; constructor: x; toString: y');
  t.equal(Object.getPrototypeOf(p.extra), null);
  t.same(Object.keys(p.extra), ['__proto__', 'constructor', 'toString']);
  t.same(p.extra['__proto__'], [[1]]);
  t.equal(({} as Record<string, unknown>).constructor, Object, 'Object.prototype is untouched');
});

t.test('the persona is deeply frozen and survives structured cloning', async (t) => {
  const p = persona('trust: 0.5; core_value: a; warmth: 0.2; x: [1, [2]]');
  for (const part of [p, p.coreValues, p.traits, p.likes, p.dislikes, p.taboos, p.extra, p.extra.x, p.extra.x?.[0]]) t.ok(Object.isFrozen(part));
  t.same(structuredClone(p), p, 'can be sent from a worker thread');
});

t.test('unreadable values are not reported twice and do not cause "missing"', async (t) => {
  t.same(issues('trust: @'), ['1:8: unexpected character "@"; expected a key, a value, or one of : ; , [ ] #']);
  t.same(issues('trust: 0.7x'), ['1:8: invalid number "0.7x"; expected a number such as 0.5, -2 or 1e-3']);
  t.same(issues('trust: ;'), ['1:8: expected a value (number, string, identifier or list) after ":", found ";"']);
  t.same(issues('trust = 0.5'), ['1:7: unexpected character "="; expected ":" between a key and its value']);
  t.same(issues('trust: 0.5; core_value: [a, @, b]'), ['1:29: unexpected character "@"; expected a key, a value, or one of : ; , [ ] #']);
  t.same(issues('trust: 0.5; react_to_conflict: "with\\draw"'), ['1:37: unknown escape "\\d"; expected \\" \\\' \\\\ \\n \\t or \\uXXXX']);
});

t.test('validate can be called on statements directly', async (t) => {
  const at = { line: 3, column: 2 };
  const statements: Statement[] = [
    { key: 'trust', ...at, value: { kind: 'number', value: 0.9, line: 3, column: 9 } },
    { key: 'likes', line: 4, column: 1, value: { kind: 'list', line: 4, column: 8, items: [{ kind: 'identifier', value: 'x', line: 4, column: 9 }, { kind: 'invalid', line: 4, column: 11 }] } },
  ];
  const r = validate(statements);
  t.same(r.issues, []);
  t.equal(r.persona?.trust, 0.9);
  t.same(r.persona?.likes, ['x']);
  t.same(validate([]).issues.map((i) => i.message), ['missing required key "trust": expected e.g. "trust: 0.5" (a number from 0 to 1)']);
  t.same(validate(null as unknown as Statement[]).persona, undefined, 'no throw on garbage');
});
