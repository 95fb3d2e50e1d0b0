import { readdirSync, readFileSync } from 'node:fs';
import t from 'tap';
import { parse as parseYaml } from 'yaml';
import {
  formatPersonaIssue, MAX_ISSUES, MAX_LIST_DEPTH, MAX_PERSONA_LENGTH, MAX_STATEMENTS, MAX_STRING_LENGTH, parsePersona,
} from '../../src/persona/index.js';
import { mulberry32 } from '../../src/text/random.js';

const issues = (text: string, file?: string): string[] => parsePersona(text, file).issues.map(formatPersonaIssue);

t.test('parsePersona runs the three stages; issues carry the file when given', async (t) => {
  const r = parsePersona('trust: 0.7; react_to_conflict: "withdraw"; core_value: "autonomy"', 'characters/gufeng-jianke.yaml');
  t.same(r.issues, []);
  t.equal(r.persona?.trust, 0.7);
  t.same(parsePersona('trust: 2').issues, [{ line: 1, column: 8, message: '"trust" must be a number from 0 to 1, found 2', severity: 'error' }]);
  t.same(parsePersona('trust: 2', 'a.yaml').issues, [{ file: 'a.yaml', line: 1, column: 8, message: '"trust" must be a number from 0 to 1, found 2', severity: 'error' }]);
  t.same(issues('trust: 2', 'chars/a.yaml'), ['chars/a.yaml:1:8: "trust" must be a number from 0 to 1, found 2']);
  t.same(issues('trust: 0.5; trsut: 1', 'a.yaml'), ['a.yaml:1:13: warning: unknown key "trsut" (kept in persona.extra); did you mean "trust"?']);
});

t.test('errors from every stage are reported together, in text order', async (t) => {
  const text = [
    'trust: 1.7            # out of range (validation)',
    'react_to_conflict: ;  # no value (parser)',
    'mood: "calm',
    'warmth: 0.5x          # bad number (lexer)',
    'core_value: [a b]     # list (parser)',
    'humor: 0.5; humor: 1  # duplicate (validation)',
    'likes: [tea, cake',
    'patience: 9',
    'flavour: mild         # unknown (warning)',
  ].join('\n');
  const r = parsePersona(text);
  t.equal(r.persona, undefined);
  t.same(r.issues.map(formatPersonaIssue), [
    '1:8: "trust" must be a number from 0 to 1, found 1.7',
    '2:20: expected a value (number, string, identifier or list) after ":", found ";"',
    '3:7: unterminated string: expected a closing " before the end of the line',
    '4:9: invalid number "0.5x"; expected a number such as 0.5, -2 or 1e-3',
    '5:16: expected "," or "]" after a list item, found identifier "b"',
    '6:13: duplicate key "humor": it is already set at 6:1; expected each key once (only core_value, likes, dislikes, taboo repeat)',
    '8:1: unterminated list: expected "]" to close the "[" at 7:8, found the next statement "patience:"',
    '8:11: "patience" must be a number from 0 to 1, found 9',
    '9:1: warning: unknown key "flavour" (kept in persona.extra)',
  ]);
});

t.test('Chinese text: strings, identifiers, values and keys', async (t) => {
  const r = parsePersona('trust: 0.6\ncore_value: [自由, "守信"]\nspeech_style: "自称“在下”，说话含蓄"\nlikes: 明月; likes: \'酒\'\n性格: 冷静');
  t.same(r.issues.map(formatPersonaIssue), ['5:1: warning: unknown key "性格" (kept in persona.extra)']);
  t.same(r.persona?.coreValues, ['自由', '守信']);
  t.equal(r.persona?.speechStyle, '自称“在下”，说话含蓄');
  t.same(r.persona?.likes, ['明月', '酒']);
  t.same(r.persona?.extra, { 性格: ['冷静'] });
  t.same(issues('trust: 0.6; 信任：0.5'), [
    '1:13: warning: unknown key "信任" (kept in persona.extra)',
    '1:15: full-width "：" (U+FF1A) is not part of the syntax; expected ":"',
  ], 'columns count characters, not bytes');
});

t.test('the bundled characters\' personas parse cleanly', async (t) => {
  const dir = new URL('../../characters/', import.meta.url);
  const files = readdirSync(dir).filter((f) => /\.ya?ml$/.test(f)).sort();
  t.ok(files.length >= 3, `found ${files.join(', ')}`);
  for (const file of files) {
    const doc = parseYaml(readFileSync(new URL(file, dir), 'utf8')) as { persona?: unknown };
    t.type(doc.persona, 'string', `${file} has a persona`);
    const r = parsePersona(String(doc.persona), `characters/${file}`);
    t.same(r.issues.map(formatPersonaIssue), [], `${file}: no issues`);
    t.ok(r.persona, `${file}: valid`);
  }
});

t.test('hostile input: bounded work, a short report, never a throw', async (t) => {
  const MB = 1 << 20;
  const cases: [string, string][] = [
    ['1 MB of "["', '['.repeat(MB)],
    ['a list opened 1 MB deep', `x: ${'['.repeat(MB)}`],
    ['1 MB of "]"', ']'.repeat(MB)],
    ['1 MB of "a:1;"', 'a:1;'.repeat(MB / 4)],
    ['1 MB of "@ "', '@ '.repeat(MB / 2)],
    ['1 MB of line breaks', '\n'.repeat(MB)],
    ['1 MB of quotes', '"'.repeat(MB)],
    ['an unterminated 1 MB string', `trust: "${'x'.repeat(MB)}`],
    ['a 1 MB string', `trust: 0.5; speech_style: "${'x'.repeat(MB)}"`],
    ['1 MB of backslashes in a string', `x: "${'\\'.repeat(MB)}"`],
    ['1 MB identifier', `${'k'.repeat(MB)}: 1`],
    ['1 MB of "x: [" lines', 'x: [\n'.repeat(MB / 5)],
    ['1 MB of emoji', '😀'.repeat(MB / 2)],
    ['lone surrogates', '\ud800\udc00\ud800x\udc00'.repeat(1000)],
    ['1 MB of commas in a list', `x: [${','.repeat(MB)}]`],
  ];
  for (const [name, text] of cases) {
    const start = performance.now();
    const r = parsePersona(text);
    const ms = performance.now() - start;
    t.ok(ms < 2000, `${name}: ${ms.toFixed(0)} ms`);
    t.ok(r.issues.length >= 1 && r.issues.length <= MAX_ISSUES + 1, `${name}: ${r.issues.length} issues`);
    t.equal(r.persona, undefined, `${name}: invalid`);
  }
});

t.test('the limits are reported by name', async (t) => {
  t.same(issues(`trust: 0.5; x: ${'['.repeat(MAX_LIST_DEPTH + 1)}`), [
    '1:13: warning: unknown key "x" (kept in persona.extra)',
    `1:${16 + MAX_LIST_DEPTH}: lists nested too deep: expected at most ${MAX_LIST_DEPTH} levels of [ ]`,
  ]);
  const many = `trust: 0.5\n${'likes: []\n'.repeat(MAX_STATEMENTS)}`;
  t.same(issues(many), [`${MAX_STATEMENTS + 1}:1: too many statements: expected at most ${MAX_STATEMENTS}; the rest is not read`]);
  t.same(issues(`trust: 0.5; speech_style: "${'x'.repeat(MAX_STRING_LENGTH + 1)}"`), [`1:27: string of ${MAX_STRING_LENGTH + 1} characters is too long; expected at most ${MAX_STRING_LENGTH}`]);
  t.same(issues(`trust: 0.5\n${' '.repeat(MAX_PERSONA_LENGTH)}`), [
    `2:${MAX_PERSONA_LENGTH - 11 + 1}: the persona text is too long: expected at most ${MAX_PERSONA_LENGTH} characters (UTF-16 code units); the rest is not read`,
  ]);
});

t.test('more than MAX_ISSUES problems: the first ones, then one note', async (t) => {
  const text = `trust: 0.5\n${'x: ;\n'.repeat(MAX_ISSUES + 20)}`;
  const r = parsePersona(text);
  t.equal(r.issues.length, MAX_ISSUES + 1);
  t.equal(r.issues[0]!.line, 2, 'in text order');
  t.same(r.issues.at(-1), { line: 2 + Math.floor(MAX_ISSUES / 2), column: 1, message: `too many problems: only the first ${MAX_ISSUES} are reported`, severity: 'error' });
  const warnings = parsePersona(`trust: 0.5\n${'x: 1\n'.repeat(MAX_ISSUES + 5)}`);
  t.ok(warnings.persona, 'many warnings alone leave the persona valid');
  t.equal(warnings.issues.at(-1)?.severity, 'warning', 'and the note is then a warning');
  t.equal(warnings.issues.length, MAX_ISSUES + 1);
});

t.test('random input never throws and every issue has a sane position', async (t) => {
  const alphabet = ['trust', 'core_value', 'x', '自由', ':', ';', ',', '[', ']', '"', "'", '\\', '\\u', 'D83D', '#', '\n', '\r', ' ', '0.5', '-', '.', 'e', '1', '“', '：', '@', '😀', '\u0000', '\ud800'];
  const rng = mulberry32(20240607);
  let issueCount = 0;
  for (let n = 0; n < 3000; n++) {
    let text = '';
    const len = Math.floor(rng() * 40);
    for (let k = 0; k < len; k++) text += alphabet[Math.floor(rng() * alphabet.length)];
    let r;
    try {
      r = parsePersona(text);
    } catch (err) {
      t.fail(`threw on ${JSON.stringify(text)}: ${(err as Error).stack}`);
      continue;
    }
    const lines = text.split(/\r\n|\r|\n/);
    for (const i of r.issues) {
      issueCount++;
      const lineText = lines[i.line - 1];
      if (lineText === undefined || i.column < 1 || i.column > [...lineText].length + 1 || i.message === '') {
        t.fail(`bad issue ${JSON.stringify(i)} for ${JSON.stringify(text)}`);
      }
    }
    if (r.persona === undefined && !r.issues.some((i) => i.severity === 'error')) t.fail(`no persona but no error for ${JSON.stringify(text)}`);
  }
  t.ok(issueCount > 1000, `${issueCount} issues checked`);
});
