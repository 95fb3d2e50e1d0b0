/**
 * The persona as compact English for an LLM system prompt. Deterministic: the
 * known keys come in PERSONA_TRAITS order whatever order the author wrote
 * them in, and unknown keys in code-unit order of their names, so the same
 * persona always gives the same text and upstream prompt caches keep hitting.
 * Numeric traits the persona does not set are left out (the model is not told
 * about defaults). The text holds the author's words as they are: a caller
 * that puts it into a template escapes it there.
 */
import { traitValue } from './adjust.js';
import { type ConflictReaction, type NumberTraitSpec, PERSONA_TRAITS } from './traits.js';
import type { Persona, PersonaValue } from './types.js';

const CONFLICT: Readonly<Record<ConflictReaction, string>> = {
  withdraw: 'Reacts to conflict by withdrawing',
  confront: 'Reacts to conflict by confronting it',
  defer: 'Reacts to conflict by deferring to others',
};

/** The level word for a value: five equal bands of the range, taken on the value as shown (2 decimals). */
export function traitLevel(spec: NumberTraitSpec, value: number): string {
  const shown = Math.round(value * 100) / 100;
  const band = Math.floor(((shown - spec.min) / (spec.max - spec.min)) * 5 + 1e-9);
  return spec.levels[Math.max(0, Math.min(4, band))]!;
}

const clean = (s: string) => s.replace(/\s+/gu, ' ').trim();
const sentence = (s: string) => (/[.!?。！？…]$/u.test(s) ? s : `${s}.`);
const show = (v: PersonaValue): string => (typeof v === 'number' ? String(v) : typeof v === 'string' ? clean(v) : `[${v.map(show).join(', ')}]`);

export function describePersona(persona: Persona): string {
  const out: string[] = [];
  for (const spec of PERSONA_TRAITS) {
    switch (spec.type) {
      case 'number': {
        const v = spec.key === 'trust' ? persona.trust : persona.traits[spec.key];
        if (v !== undefined) out.push(`${spec.label}: ${v.toFixed(2)} (${traitLevel(spec, v)})`);
        break;
      }
      case 'enum': {
        if (spec.key === 'react_to_conflict') {
          const v = persona.reactToConflict;
          if (v !== undefined) out.push(CONFLICT[v]);
        } else {
          const v = traitValue(persona, spec.key);
          if (v !== undefined) out.push(`${spec.label}: ${v}`);
        }
        break;
      }
      case 'text': {
        const v = traitValue(persona, spec.key);
        if (v !== undefined) out.push(`${spec.label}: ${clean(v)}`);
        break;
      }
      case 'list': {
        const v = traitValue(persona, spec.key);
        if (v.length > 0) out.push(`${spec.label}: ${v.map(clean).join(', ')}`);
        break;
      }
    }
  }
  const keys = Object.keys(persona.extra).sort();
  if (keys.length > 0) {
    out.push(`Other traits: ${keys.map((k) => `${k}: ${(persona.extra[k] ?? []).map(show).join(', ')}`).join('; ')}`);
  }
  return out.map(sentence).join(' ');
}
