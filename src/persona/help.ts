/** Help text and the docs table of persona keys, both generated from PERSONA_TRAITS. */
import { PERSONA_TRAITS, type TraitSpec } from './traits.js';

const TYPE_NAMES: Readonly<Record<TraitSpec['type'], string>> = { number: 'number', enum: 'one of', text: 'text', list: 'list of text' };

function allowed(spec: TraitSpec, code: (s: string) => string): string {
  switch (spec.type) {
    case 'number': return `${spec.min} to ${spec.max}`;
    case 'enum': return spec.values.map(code).join(', ');
    case 'text': return 'string or identifier';
    case 'list': return 'strings or identifiers';
  }
}

function defaultOf(spec: TraitSpec): string {
  if (spec.required) return 'required';
  if (spec.type === 'list') return 'empty';
  return spec.type === 'number' && spec.default !== undefined ? String(spec.default) : 'unset';
}

/** The key table of docs/persona.md (a test checks that the page holds exactly this). */
export function personaTraitsMarkdown(): string {
  const rows = ['| key | type | values | default | repeats | meaning |', '|---|---|---|---|---|---|'];
  for (const spec of PERSONA_TRAITS) {
    const cells = [`\`${spec.key}\``, TYPE_NAMES[spec.type], allowed(spec, (s) => `\`${s}\``), defaultOf(spec), spec.repeatable ? 'yes' : 'no', spec.description];
    rows.push(`| ${cells.map((c) => c.replaceAll('|', '\\|')).join(' | ')} |`);
  }
  return rows.join('\n');
}

/** Plain-text help: one entry per key, for command-line help and error pages. */
export function personaHelp(): string {
  const width = Math.max(...PERSONA_TRAITS.map((s) => s.key.length)) + 2;
  const lines = [
    'Persona: "key: value" statements separated by ";" or line breaks; # starts a comment.',
    'Values: numbers (0.7), strings ("…" or \'…\'), identifiers (withdraw), lists ([a, "b", 0.5]).',
    '',
  ];
  for (const spec of PERSONA_TRAITS) {
    const facts = [spec.type === 'number' || spec.type === 'enum' ? `${TYPE_NAMES[spec.type]} ${allowed(spec, (s) => s)}` : TYPE_NAMES[spec.type]];
    const def = defaultOf(spec);
    if (def === 'required') facts.push('required');
    else if (spec.type === 'number') facts.push(`default ${def}`);
    if (spec.repeatable) facts.push('repeats');
    lines.push(`  ${spec.key.padEnd(width)}${facts.join(', ')}. ${spec.description}`);
  }
  lines.push('', 'Other keys are kept as they are and reported as warnings.');
  return lines.join('\n');
}
