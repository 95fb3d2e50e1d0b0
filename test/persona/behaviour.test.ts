import t from 'tap';
import {
  adjustTrait, describePersona, evaluateTraitCondition, formatPersonaIssue, formatTraitCondition, parsePersona,
  parseTraitCondition, type Persona, PERSONA_TRAITS, quotePersonaString, type TraitCondition, traitLevel, traitValue,
} from '../../src/persona/index.js';

const persona = (text: string): Persona => {
  const r = parsePersona(text);
  if (!r.persona) throw new Error(`does not parse: ${r.issues.map(formatPersonaIssue).join('\n')}`);
  return r.persona;
};
const SEED = persona('trust: 0.7; react_to_conflict: "withdraw"; core_value: "autonomy"');
const FULL_TEXT = [
  'trust: 0.25',
  'react_to_conflict: confront',
  'core_value: [loyalty, "honour"]',
  'warmth: 0.8; formality: 0; humor: 1; verbosity: 0.3; patience: 0.45; aggression: 0.1',
  'mood: weary',
  "speech_style: '  clipped,\\n   dry.  '",
  'likes: [tea, chess]; likes: "rain"',
  'dislikes: noise',
  'taboo: [politics]; taboo: 她的过去',
  'zeta: 1; alpha: [a, [1, "b c"]]; alpha: x',
];
const FULL = persona(FULL_TEXT.join('\n'));

t.test('describePersona: compact, stable English', async (t) => {
  t.equal(describePersona(SEED), 'Trust: 0.70 (open). Reacts to conflict by withdrawing. Core values: autonomy.');
  t.equal(describePersona(persona('trust: 0.4; react_to_conflict: "defer"; core_value: "safety"; core_value: "precision"')),
    'Trust: 0.40 (guarded). Reacts to conflict by deferring to others. Core values: safety, precision.');
  t.equal(describePersona(persona('trust: 0.6; react_to_conflict: "confront"')), 'Trust: 0.60 (open). Reacts to conflict by confronting it.');
  t.equal(describePersona(FULL),
    'Trust: 0.25 (wary). Reacts to conflict by confronting it. Core values: loyalty, honour. '
    + 'Warmth: 0.80 (affectionate). Formality: 0.00 (very casual). Humor: 1.00 (always joking). Verbosity: 0.30 (brief). '
    + 'Patience: 0.45 (moderate). Aggression: 0.10 (gentle). Mood: weary. Speech style: clipped, dry. '
    + 'Likes: tea, chess, rain. Dislikes: noise. Refuses to discuss: politics, 她的过去. Other traits: alpha: [a, [1, b c]], x; zeta: 1.');
  t.equal(describePersona(persona('trust: 0')), 'Trust: 0.00 (suspicious).', 'unset traits are left out');
  t.equal(describePersona(persona('trust: 1; speech_style: "说话含蓄。"')), 'Trust: 1.00 (trusting). Speech style: 说话含蓄。', 'no period after a closing 。');
});

t.test('describePersona does not depend on the order the author wrote', async (t) => {
  const reordered = persona([...FULL_TEXT].reverse().join('\n').replace('likes: [tea, chess]; likes: "rain"', 'likes: [tea, chess]\nlikes: rain'));
  t.equal(describePersona(reordered).replace('rain, tea, chess', 'tea, chess, rain'), describePersona(FULL), 'known keys in table order, extra keys sorted');
  t.equal(describePersona(persona('core_value: a; trust: 0.5; mood: calm')), describePersona(persona('mood: calm\ntrust: 0.5\ncore_value: a')));
  t.equal(describePersona(FULL), describePersona(FULL), 'same input, same text');
});

t.test('trait levels: five equal bands, taken on the value as shown', async (t) => {
  const trust = PERSONA_TRAITS[0];
  const cases: [number, string][] = [
    [0, 'suspicious'], [0.194, 'suspicious'], [0.199, 'wary'], [0.2, 'wary'], [0.39, 'wary'], [0.4, 'guarded'], [0.5, 'guarded'],
    [0.6, 'open'], [0.7, 'open'], [0.799, 'trusting'], [0.8, 'trusting'], [1, 'trusting'], [0.3999999, 'guarded'],
  ];
  for (const [v, word] of cases) t.equal(traitLevel(trust, v), word, `${v} → ${word}`);
  for (const spec of PERSONA_TRAITS) {
    if (spec.type === 'number') t.equal(new Set(spec.levels).size, 5, `${spec.key} has five distinct level words`);
  }
});

t.test('traitValue: values, defaults, lists', async (t) => {
  t.equal(traitValue(SEED, 'trust'), 0.7);
  t.equal(traitValue(SEED, 'warmth'), 0.5, 'an unset number reads its default');
  t.equal(traitValue(FULL, 'warmth'), 0.8);
  t.equal(traitValue(SEED, 'react_to_conflict'), 'withdraw');
  t.equal(traitValue(SEED, 'mood'), undefined);
  t.equal(traitValue(FULL, 'speech_style'), 'clipped,\n   dry.');
  t.same(traitValue(SEED, 'core_value'), ['autonomy']);
  t.same(traitValue(FULL, 'taboo'), ['politics', '她的过去']);
  t.throws(() => traitValue(SEED, 'trsut'), new TypeError('traitValue: unknown persona trait "trsut"; did you mean "trust"?'));
  t.throws(() => traitValue(SEED, 'qqq'), new TypeError('traitValue: unknown persona trait "qqq"; expected one of trust, react_to_conflict, core_value, warmth, formality, humor, verbosity, patience, aggression, mood, speech_style, likes, dislikes, taboo'));
  t.throws(() => traitValue(SEED, '__proto__'), TypeError);
});

t.test('adjustTrait: a delta or a set value, clamped to the bounds', async (t) => {
  const lower = adjustTrait(SEED, 'trust', -0.1);
  t.equal(lower.trust, 0.6, '0.7 - 0.1 is 0.6 (no floating-point drift)');
  t.equal(SEED.trust, 0.7, 'the original is unchanged');
  t.ok(Object.isFrozen(lower) && Object.isFrozen(lower.traits), 'the result is frozen');
  t.equal(adjustTrait(SEED, 'trust', -5).trust, 0, 'clamped at the minimum');
  t.equal(adjustTrait(SEED, 'trust', 5).trust, 1, 'clamped at the maximum');
  t.equal(adjustTrait(SEED, 'trust', { set: 0.05 }).trust, 0.05);
  t.equal(adjustTrait(SEED, 'trust', { set: 7 }).trust, 1, 'a set value is clamped too');
  t.equal(adjustTrait(SEED, 'trust', { set: -1 }).trust, 0);
  const warmer = adjustTrait(SEED, 'warmth', 0.2);
  t.equal(warmer.traits.warmth, 0.7, 'an unset trait starts from its default');
  t.same({ ...warmer, traits: SEED.traits }, SEED, 'nothing else changes');
  let p = SEED;
  for (let k = 0; k < 7; k++) p = adjustTrait(p, 'trust', -0.1);
  t.equal(p.trust, 0, 'repeated insults');
  t.equal(adjustTrait(SEED, 'trust', 0).trust, 0.7);
  t.equal(adjustTrait(FULL, 'aggression', 0.05).traits.aggression, 0.15);
});

t.test('adjustTrait: clear errors for unknown or non-numeric keys and bad changes', async (t) => {
  t.throws(() => adjustTrait(SEED, 'trsut', -0.1), new TypeError('adjustTrait: unknown persona trait "trsut"; did you mean "trust"?'));
  t.throws(() => adjustTrait(SEED, 'mood', 1), new TypeError('adjustTrait: "mood" is not a numeric trait (it is one of calm, cheerful, playful, serious, melancholy, anxious, irritable, weary); expected one of trust, warmth, formality, humor, verbosity, patience, aggression'));
  t.throws(() => adjustTrait(SEED, 'core_value', 1), { message: /"core_value" is not a numeric trait/ });
  t.throws(() => adjustTrait(SEED, 'trust', NaN), new TypeError('adjustTrait: the change to "trust" must be a finite number (a delta) or { set: <finite number> }, found NaN'));
  t.throws(() => adjustTrait(SEED, 'trust', Infinity), { message: /found Infinity$/ });
  t.throws(() => adjustTrait(SEED, 'trust', { set: '0.5' } as unknown as number), { message: /found \{"set":"0.5"\}$/ });
  t.throws(() => adjustTrait(SEED, 'trust', null as unknown as number), { message: /found null$/ });
});

t.test('parseTraitCondition: the accepted forms', async (t) => {
  const cases: [string, TraitCondition][] = [
    ['trust < 0.3', { kind: 'compare', key: 'trust', op: '<', value: 0.3 }],
    ['trust >= 0.5', { kind: 'compare', key: 'trust', op: '>=', value: 0.5 }],
    ['  warmth<=1  ', { kind: 'compare', key: 'warmth', op: '<=', value: 1 }],
    ['patience > 0', { kind: 'compare', key: 'patience', op: '>', value: 0 }],
    ['humor == 0.5', { kind: 'compare', key: 'humor', op: '==', value: 0.5 }],
    ['humor != 0.5', { kind: 'compare', key: 'humor', op: '!=', value: 0.5 }],
    ['react_to_conflict == confront', { kind: 'equals', key: 'react_to_conflict', op: '==', value: 'confront' }],
    ['react_to_conflict != "withdraw"', { kind: 'equals', key: 'react_to_conflict', op: '!=', value: 'withdraw' }],
    ['mood == weary', { kind: 'equals', key: 'mood', op: '==', value: 'weary' }],
    ['speech_style == "clipped, dry."', { kind: 'equals', key: 'speech_style', op: '==', value: 'clipped, dry.' }],
    ['core_value has autonomy', { kind: 'has', key: 'core_value', value: 'autonomy' }],
    ["likes has 'green tea'", { kind: 'has', key: 'likes', value: 'green tea' }],
    ['taboo has 她的过去', { kind: 'has', key: 'taboo', value: '她的过去' }],
    ['trust<0.3 # a comment', { kind: 'compare', key: 'trust', op: '<', value: 0.3 }],
  ];
  for (const [text, condition] of cases) t.same(parseTraitCondition(text), { condition }, text);
});

t.test('parseTraitCondition: errors with their column, checked against PERSONA_TRAITS', async (t) => {
  const cases: [string, string, number][] = [
    ['', 'expected a trait name (such as trust) at the start of the condition, found the end of the condition', 1],
    ['< 0.3', 'expected a trait name (such as trust) at the start of the condition, found "<"', 1],
    ['trsut < 0.3', 'unknown trait "trsut"; did you mean "trust"?', 1],
    ['trust = 0.3', 'expected an operator (<, <=, >, >=, ==, != or has) after "trust", found "="; equality is written ==', 7],
    ['trust', 'expected an operator (<, <=, >, >=, ==, != or has) after "trust", found the end of the condition', 6],
    ['trust < ', 'expected a value after "<", found the end of the condition', 9],
    ['trust < 1.5', '"trust" is a number from 0 to 1: expected a number in that range after "<", found 1.5', 9],
    ['trust < -1', '"trust" is a number from 0 to 1: expected a number in that range after "<", found -1', 9],
    ['trust < high', '"trust" is a number from 0 to 1: expected a number after "<", found identifier "high"', 9],
    ['trust has x', '"has" tests list traits (core_value, likes, dislikes, taboo); "trust" is a number from 0 to 1: expected <, <=, >, >=, == or !=', 7],
    ['mood < 3', '"mood" is one of calm, cheerful, playful, serious, melancholy, anxious, irritable, weary: expected == or != after it, found "<"', 6],
    ['mood == happy', 'expected one of calm, cheerful, playful, serious, melancholy, anxious, irritable, weary after "==", found identifier "happy"', 9],
    ['react_to_conflict == withdrew', 'expected one of withdraw, confront, defer after "==", found identifier "withdrew"; did you mean "withdraw"?', 22],
    ['react_to_conflict == 1', '"react_to_conflict" is one of withdraw, confront, defer: expected a string or identifier after "==", found number 1', 22],
    ['core_value == autonomy', '"core_value" is a list: expected "has" after it (core_value has …), found "=="', 12],
    ['core_value has 5', '"core_value" holds text: expected a string or identifier after "has", found number 5', 16],
    ['core_value has a b', 'expected the end of the condition after the value, found identifier "b"', 18],
    ['core_value has [a]', 'expected a value (number, string or identifier) after "has", found "["', 16],
    ['core_value has "a', 'unterminated string: expected a closing " before the end of the text', 16],
    ['自由 has 自由', 'unknown trait "自由"; expected one of trust, react_to_conflict, core_value, warmth, formality, humor, verbosity, patience, aggression, mood, speech_style, likes, dislikes, taboo', 1],
    ['likes has 😀 x', 'unexpected character "😀" (U+1F600); expected a key, a value, or one of : ; , [ ] #', 11],
    ['likes has "😀" x', 'expected the end of the condition after the value, found identifier "x"', 15],
    ['trust hasx', 'expected an operator (<, <=, >, >=, ==, != or has) after "trust", found "h"', 7],
  ];
  for (const [text, error, column] of cases) t.same(parseTraitCondition(text), { error, column }, JSON.stringify(text));
  t.same(parseTraitCondition(42 as unknown as string), { error: 'expected a condition as text, such as "trust < 0.3"', column: 1 });
  t.same(parseTraitCondition(`trust < ${'1'.repeat(2000)}`), { error: 'condition too long: expected at most 1000 characters', column: 1 });
});

t.test('evaluateTraitCondition', async (t) => {
  const check = (p: Persona, text: string) => {
    const r = parseTraitCondition(text);
    if (!('condition' in r)) throw new Error(r.error);
    return evaluateTraitCondition(p, r.condition);
  };
  const cases: [Persona, string, boolean][] = [
    [SEED, 'trust < 0.3', false], [SEED, 'trust >= 0.5', true], [SEED, 'trust > 0.7', false], [SEED, 'trust <= 0.7', true],
    [SEED, 'trust == 0.7', true], [SEED, 'trust != 0.7', false],
    [adjustTrait(SEED, 'trust', -0.5), 'trust < 0.3', true],
    [SEED, 'warmth == 0.5', true], [SEED, 'warmth > 0.4', true],
    [SEED, 'react_to_conflict == withdraw', true], [SEED, 'react_to_conflict == confront', false], [SEED, 'react_to_conflict != confront', true],
    [SEED, 'mood == calm', false], [SEED, 'mood != calm', true], [FULL, 'mood == weary', true],
    [SEED, 'core_value has autonomy', true], [SEED, 'core_value has freedom', false], [SEED, 'likes has tea', false],
    [FULL, 'likes has rain', true], [FULL, 'taboo has 她的过去', true],
    [FULL, 'speech_style == "clipped,\\n   dry."', true], [SEED, 'speech_style != "x"', true],
  ];
  for (const [p, text, expected] of cases) t.equal(check(p, text), expected, `${text} → ${expected}`);
  t.throws(() => evaluateTraitCondition(SEED, { kind: 'nope' } as unknown as TraitCondition), TypeError);
});

t.test('formatTraitCondition gives text that parses back to the same condition', async (t) => {
  for (const text of ['trust < 0.3', 'trust >= 1e-7', 'mood == weary', 'core_value has 自由', 'likes has "green tea"', 'speech_style != "a \\"q\\" b\\\\\\n\\t\\u0001"']) {
    const r = parseTraitCondition(text);
    if (!('condition' in r)) {
      t.fail(`${text}: ${r.error}`);
      continue;
    }
    const formatted = formatTraitCondition(r.condition);
    t.same(parseTraitCondition(formatted), r, `${text} → ${formatted}`);
  }
  t.equal(formatTraitCondition({ kind: 'has', key: 'likes', value: 'green tea' }), 'likes has "green tea"');
  t.equal(quotePersonaString('a"b\\c\nd\te\u0001'), '"a\\"b\\\\c\\nd\\te\\u0001"');
});
