import { readFileSync } from 'node:fs';
import t from 'tap';
import * as persona from '../../src/persona/index.js';

const doc = readFileSync(new URL('../../docs/persona.md', import.meta.url), 'utf8');

/** Fenced blocks in document order: their info string and body. */
const blocks: { lang: string; body: string }[] = [];
for (const m of doc.matchAll(/^```(\S*)\n([\s\S]*?)^```$/gm)) blocks.push({ lang: m[1]!, body: m[2]!.replace(/\n$/, '') });
/** Each block of `lang` paired with the block right after it, which must be of `next`. */
const pairs = (lang: string, next: string): [string, string][] =>
  blocks.flatMap((b, i) => (b.lang === lang && blocks[i + 1]?.lang === next ? [[b.body, blocks[i + 1]!.body] as [string, string]] : []));

t.test('the key table in docs/persona.md is the one generated from PERSONA_TRAITS', async (t) => {
  const m = /<!-- persona-traits:begin[^>]*-->\n([\s\S]*?)\n<!-- persona-traits:end -->/.exec(doc);
  t.ok(m, 'the page has the markers');
  t.equal(m?.[1], persona.personaTraitsMarkdown(), 'regenerate with personaTraitsMarkdown() after changing PERSONA_TRAITS');
  for (const spec of persona.PERSONA_TRAITS) t.match(doc, `| \`${spec.key}\` |`, `${spec.key} is documented`);
});

t.test('every error example gives exactly the documented issues', async (t) => {
  const examples = pairs('persona', 'issues');
  t.ok(examples.length >= 5, `${examples.length} examples`);
  for (const [text, expected] of examples) {
    t.same(persona.parsePersona(text).issues.map(persona.formatPersonaIssue), expected.split('\n'), text);
  }
  t.equal(blocks.filter((b) => b.lang === 'persona').length, examples.length, 'every persona block has its issues block');
});

t.test('the documented prompt rendering is what describePersona gives', async (t) => {
  const examples = pairs('describe', 'text');
  t.equal(examples.length, 1);
  for (const [text, expected] of examples) {
    const r = persona.parsePersona(text);
    t.same(r.issues, [], 'the example is valid');
    t.equal(r.persona && persona.describePersona(r.persona), expected);
  }
});

t.test('every documented condition parses', async (t) => {
  const lines = blocks.filter((b) => b.lang === 'conditions').flatMap((b) => b.body.split('\n'));
  t.ok(lines.length >= 5);
  for (const line of lines) t.ok('condition' in persona.parseTraitCondition(line), line);
});

t.test('the documented limits are the constants', async (t) => {
  const rows = [...doc.matchAll(/^\| [^|]+ \| (\d+) \| `(MAX_[A-Z_]+)` \|$/gm)];
  const constants = persona as unknown as Record<string, unknown>;
  const all = Object.keys(persona).filter((k) => k.startsWith('MAX_')).sort();
  t.same(rows.map((r) => r[2]).sort(), all, 'every limit is documented');
  for (const [, value, name] of rows) t.equal(constants[name!], Number(value), `${name} = ${value}`);
});

t.test('the plain-text help names every key with its bounds', async (t) => {
  const help = persona.personaHelp();
  for (const spec of persona.PERSONA_TRAITS) {
    const line = help.split('\n').find((l) => l.trimStart().startsWith(`${spec.key} `));
    t.ok(line, `${spec.key} has a line`);
    if (spec.type === 'number') t.match(line, `number ${spec.min} to ${spec.max}`);
    if (spec.type === 'enum') t.match(line, spec.values.join(', '));
    if (spec.required) t.match(line, 'required');
    if (spec.repeatable) t.match(line, 'repeats');
  }
});
