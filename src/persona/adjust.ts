/**
 * Reading and changing traits of a validated Persona, for scripts ("trust
 * falls after an insult"). Pure: a change returns a new Persona.
 */
import {
  didYouMean, expectedOf, NUMERIC_TRAIT_KEYS, type NumericTraitKey, type OptionalNumericTraitKey,
  type PersonaKey, PERSONA_KEYS, type PersonaTraitValues, type TraitSpec, traitSpec,
} from './traits.js';
import type { Persona } from './types.js';
import { freezePersona } from './validate.js';

/** A change to a numeric trait: a delta to add, or a value to set. */
export type TraitChange = number | { readonly set: number };

function specOrThrow(fn: string, key: string): TraitSpec {
  const spec = typeof key === 'string' ? traitSpec(key) : undefined;
  if (spec === undefined) {
    const hint = (typeof key === 'string' ? didYouMean(key, PERSONA_KEYS) : '') || `; expected one of ${PERSONA_KEYS.join(', ')}`;
    throw new TypeError(`${fn}: unknown persona trait ${JSON.stringify(key)}${hint}`);
  }
  return spec;
}

/**
 * The value of a known trait: a number (the declared default when the
 * persona does not set it), an enum or text value (undefined when unset), or
 * a list. Throws a TypeError for an unknown key.
 */
export function traitValue<K extends PersonaKey>(persona: Persona, key: K): PersonaTraitValues[K];
export function traitValue(persona: Persona, key: string): PersonaTraitValues[PersonaKey];
export function traitValue(persona: Persona, key: string): PersonaTraitValues[PersonaKey] {
  const spec = specOrThrow('traitValue', key);
  if (spec.type === 'number') {
    if (spec.key === 'trust') return persona.trust;
    return persona.traits[spec.key as OptionalNumericTraitKey] ?? spec.default ?? spec.min;
  }
  return (persona as unknown as Record<string, PersonaTraitValues[PersonaKey]>)[spec.field]!;
}

/** Rounded to 6 decimals, so that repeated small changes do not drift (0.7 - 0.1 is 0.6). */
const round6 = (x: number) => Math.round(x * 1e6) / 1e6;

/**
 * A new Persona with the numeric trait `key` changed by `change` (a delta,
 * or `{ set: value }`) and clamped to the trait's bounds. A delta applies to
 * the default when the persona does not set the trait. Throws a TypeError for
 * an unknown or non-numeric key and for a change that is not a finite number.
 */
export function adjustTrait(persona: Persona, key: NumericTraitKey | (string & {}), change: TraitChange): Persona {
  const spec = specOrThrow('adjustTrait', key);
  if (spec.type !== 'number') {
    throw new TypeError(`adjustTrait: "${spec.key}" is not a numeric trait (it is ${expectedOf(spec)}); expected one of ${NUMERIC_TRAIT_KEYS.join(', ')}`);
  }
  let target: number;
  if (typeof change === 'number' && Number.isFinite(change)) {
    target = (traitValue(persona, spec.key as NumericTraitKey) as number) + change;
  } else if (typeof change === 'object' && change !== null && typeof change.set === 'number' && Number.isFinite(change.set)) {
    target = change.set;
  } else {
    const shown = typeof change === 'object' && change !== null ? JSON.stringify(change) : String(change);
    throw new TypeError(`adjustTrait: the change to "${spec.key}" must be a finite number (a delta) or { set: <finite number> }, found ${shown}`);
  }
  const value = Math.min(spec.max, Math.max(spec.min, round6(target)));
  if (spec.key === 'trust') return freezePersona({ ...persona, trust: value });
  return freezePersona({ ...persona, traits: { ...persona.traits, [spec.key]: value } });
}
