/**
 * Persona validation: statements → a typed, frozen Persona, checked against
 * PERSONA_TRAITS. Pure and total.
 *
 * - Known keys are typed and bounded; a wrong value is an error at the value.
 * - A non-repeatable key given twice is an error at the second one.
 * - Repeatable (list) keys add up in order; a repeated entry is a warning and
 *   is kept once.
 * - Unknown keys are kept in `persona.extra` and reported as warnings with a
 *   suggestion, so that a file written for a newer server still loads.
 * - Statements whose value could not be read (`invalid`) count as present and
 *   are not reported again.
 */
import { atPosition, clip, IssueSink } from './issues.js';
import {
  type ConflictReaction, didYouMean, type EnumTraitKey, expectedOf, type ListTraitKey, type Mood,
  type OptionalNumericTraitKey, PERSONA_KEYS, PERSONA_TRAITS, type TraitSpec, traitSpec,
} from './traits.js';
import type { Persona, PersonaValue, Position, Statement, ValidateResult, ValueNode } from './types.js';

const REPEATABLE = PERSONA_TRAITS.filter((s) => s.repeatable).map((s) => s.key).join(', ');

/** How a value is named in messages: `identifier "high"`, `string "0.7"`, `number 2`, `a list`. */
export function describeValue(v: ValueNode): string {
  switch (v.kind) {
    case 'number': return `number ${v.value}`;
    case 'string': return `string ${JSON.stringify(clip(v.value))}`;
    case 'identifier': return `identifier "${clip(v.value)}"`;
    case 'list': return 'a list';
    case 'invalid': return 'an unreadable value';
  }
}

/** An unknown key's value as plain data; undefined for unreadable parts. */
function plain(v: ValueNode): PersonaValue | undefined {
  switch (v.kind) {
    case 'number':
    case 'string':
    case 'identifier':
      return v.value;
    case 'list':
      return Object.freeze(v.items.map(plain).filter((x): x is PersonaValue => x !== undefined));
    case 'invalid':
      return undefined;
  }
}

/** Freezes a persona and everything in it. */
export function freezePersona(p: Persona): Persona {
  Object.freeze(p.coreValues);
  Object.freeze(p.likes);
  Object.freeze(p.dislikes);
  Object.freeze(p.taboos);
  Object.freeze(p.traits);
  for (const key of Object.keys(p.extra)) Object.freeze(p.extra[key]);
  Object.freeze(p.extra);
  return Object.freeze(p);
}

export function validate(statements: readonly Statement[]): ValidateResult {
  const sink = new IssueSink();
  const error = (at: Position, message: string) => sink.add(at, message);
  const present = new Map<string, Position>();
  const numbers = new Map<string, number>();
  const enums = new Map<EnumTraitKey, string>();
  const texts = new Map<string, string>();
  const lists = new Map<ListTraitKey, string[]>();
  const listed = new Map<ListTraitKey, Set<string>>();
  const extra = Object.create(null) as Record<string, PersonaValue[]>;

  for (const st of Array.isArray(statements) ? statements : []) {
    const spec = traitSpec(st.key);
    if (spec === undefined) {
      sink.add(st, `unknown key "${clip(st.key)}" (kept in persona.extra)${didYouMean(st.key, PERSONA_KEYS)}`, 'warning');
      const v = plain(st.value);
      if (v !== undefined) (extra[st.key] ??= []).push(v);
      continue;
    }
    const earlier = present.get(spec.key);
    if (earlier !== undefined && !spec.repeatable) {
      sink.add(st, `duplicate key "${spec.key}": it is already set ${atPosition(earlier)}; expected each key once (only ${REPEATABLE} repeat)`, 'error', earlier);
      continue;
    }
    if (earlier === undefined) present.set(spec.key, st);
    if (st.value.kind !== 'invalid') check(spec, st.value);
  }

  for (const spec of PERSONA_TRAITS) {
    if (spec.required && !present.has(spec.key)) {
      error({ line: 1, column: 1 }, `missing required key "${spec.key}": expected e.g. "${spec.key}: 0.5" (${expectedOf(spec)})`);
    }
  }

  const issues = sink.issues;
  if (issues.some((i) => i.severity === 'error')) return { persona: undefined, issues };
  const traits = {} as Record<OptionalNumericTraitKey, number | undefined>;
  for (const spec of PERSONA_TRAITS) {
    if (spec.type === 'number' && spec.key !== 'trust') traits[spec.key] = numbers.get(spec.key);
  }
  const persona = freezePersona({
    trust: numbers.get('trust')!,
    reactToConflict: enums.get('react_to_conflict') as ConflictReaction | undefined,
    coreValues: lists.get('core_value') ?? [],
    traits,
    mood: enums.get('mood') as Mood | undefined,
    speechStyle: texts.get('speech_style'),
    likes: lists.get('likes') ?? [],
    dislikes: lists.get('dislikes') ?? [],
    taboos: lists.get('taboo') ?? [],
    extra,
  });
  return { persona, issues };

  function check(spec: TraitSpec, v: ValueNode): void {
    switch (spec.type) {
      case 'number': {
        if (v.kind !== 'number') {
          const hint = v.kind === 'string' && v.value.trim() !== '' && Number.isFinite(Number(v.value)) ? '; numbers are written without quotes' : '';
          return error(v, `"${spec.key}" must be ${expectedOf(spec)}, found ${describeValue(v)}${hint}`);
        }
        if (v.value < spec.min || v.value > spec.max) return error(v, `"${spec.key}" must be ${expectedOf(spec)}, found ${v.value}`);
        numbers.set(spec.key, v.value);
        return;
      }
      case 'enum': {
        if ((v.kind === 'string' || v.kind === 'identifier') && spec.values.includes(v.value)) {
          enums.set(spec.key as EnumTraitKey, v.value);
          return;
        }
        const hint = v.kind === 'string' || v.kind === 'identifier' ? didYouMean(v.value, spec.values) : '';
        return error(v, `"${spec.key}" must be ${expectedOf(spec)}, found ${describeValue(v)}${hint}`);
      }
      case 'text': {
        if (v.kind !== 'string' && v.kind !== 'identifier') return error(v, `"${spec.key}" must be ${expectedOf(spec)}, found ${describeValue(v)}`);
        const text = v.value.trim();
        if (text === '') return error(v, `"${spec.key}" must not be empty; expected some text`);
        texts.set(spec.key, text);
        return;
      }
      case 'list': {
        const key = spec.key as ListTraitKey;
        const out = lists.get(key) ?? [];
        const seen = listed.get(key) ?? new Set<string>();
        lists.set(key, out);
        listed.set(key, seen);
        for (const item of v.kind === 'list' ? v.items : [v]) {
          if (item.kind === 'invalid') continue;
          if (item.kind !== 'string' && item.kind !== 'identifier') {
            const hint = item.kind === 'number' ? `; write it in quotes ("${item.value}")` : '';
            error(item, `each "${key}" entry must be a string or identifier, found ${describeValue(item)}${hint}`);
            continue;
          }
          const text = item.value.trim();
          if (text === '') {
            error(item, `"${key}" entries must not be empty; expected some text`);
          } else if (seen.has(text)) {
            sink.add(item, `"${clip(text)}" is already in ${key}; the repeat is ignored`, 'warning');
          } else {
            seen.add(text);
            out.push(text);
          }
        }
        return;
      }
    }
  }
}
