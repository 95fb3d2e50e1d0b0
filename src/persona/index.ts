/**
 * The persona DSL (docs/persona.md): `trust: 0.7; react_to_conflict: withdraw`.
 * Pure functions only: lexing, parsing and validation, and the helpers the
 * dialogue layer and scripts use on a validated Persona. No I/O, no globals.
 */
import { orderIssues } from './issues.js';
import { lex } from './lexer.js';
import { parse } from './parser.js';
import type { PersonaParseResult } from './types.js';
import { validate } from './validate.js';

/**
 * Lexes, parses and validates persona text. The persona is undefined when any
 * issue is an error; warnings (unknown keys, repeated list entries) leave it
 * valid. Issues are ordered by position, capped at MAX_ISSUES, and carry
 * `file` when one is given. Never throws.
 */
export function parsePersona(text: string, file?: string): PersonaParseResult {
  const lexed = lex(text);
  const parsed = parse(lexed.tokens);
  const validated = validate(parsed.statements);
  const all = [...lexed.errors, ...parsed.errors, ...validated.issues];
  const persona = all.some((i) => i.severity === 'error') ? undefined : validated.persona;
  let issues = orderIssues(all);
  if (file !== undefined) issues = issues.map((i) => ({ file, ...i }));
  return { persona, issues };
}

export { adjustTrait, type TraitChange, traitValue } from './adjust.js';
export {
  type CompareOp, type ConditionParseResult, evaluateTraitCondition, formatTraitCondition, parseTraitCondition,
  quotePersonaString, type TraitCondition,
} from './condition.js';
export { describePersona, traitLevel } from './describe.js';
export { personaHelp, personaTraitsMarkdown } from './help.js';
export { atPosition, formatPersonaIssue } from './issues.js';
export { IDENTIFIER_RE, lex } from './lexer.js';
export * from './limits.js';
export { describeToken, parse } from './parser.js';
export {
  type ConflictReaction, type EnumTraitKey, type ListTraitKey, type Mood, type NumericTraitKey,
  type OptionalNumericTraitKey, PERSONA_KEYS, PERSONA_TRAITS, type PersonaKey, type PersonaTraitValues,
  type TextTraitKey, type TraitSpec, traitSpec, NUMERIC_TRAIT_KEYS,
} from './traits.js';
export type * from './types.js';
export { validate } from './validate.js';
