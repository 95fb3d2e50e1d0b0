/**
 * Trait conditions for script triggers: `trust < 0.3`, `trust >= 0.5`,
 * `react_to_conflict == confront`, `core_value has autonomy`.
 *
 *   condition = trait operator value
 *   operator  = "<" | "<=" | ">" | ">=" | "==" | "!=" | "has"
 *
 * Values are read with the persona lexer (numbers, quoted strings,
 * identifiers). Conditions are checked against PERSONA_TRAITS when parsed,
 * so a script with `mood < 3` or `trust has x` fails at load, not at run time:
 * numbers compare with any operator but `has` and must lie within the trait's
 * bounds; enum and text traits take == and != (an enum value must be one of
 * its set); list traits take `has`.
 */
import { lex, showCharacter } from './lexer.js';
import { MAX_CONDITION_LENGTH } from './limits.js';
import { describeToken } from './parser.js';
import { traitValue } from './adjust.js';
import {
  didYouMean, type EnumTraitKey, expectedOf, LIST_TRAIT_KEYS, type ListTraitKey, type NumericTraitKey,
  PERSONA_KEYS, type TextTraitKey, traitSpec,
} from './traits.js';
import { IDENTIFIER_RE } from './lexer.js';
import type { Persona } from './types.js';

export type CompareOp = '<' | '<=' | '>' | '>=' | '==' | '!=';

export type TraitCondition =
  | { readonly kind: 'compare'; readonly key: NumericTraitKey; readonly op: CompareOp; readonly value: number }
  | { readonly kind: 'equals'; readonly key: EnumTraitKey | TextTraitKey; readonly op: '==' | '!='; readonly value: string }
  | { readonly kind: 'has'; readonly key: ListTraitKey; readonly value: string };

/** A condition, or what is wrong with the text and where (1-based column, in code points). */
export type ConditionParseResult =
  | { readonly condition: TraitCondition }
  | { readonly error: string; readonly column: number };

const KEY = /[\p{L}_][\p{L}\p{M}\p{Nd}_-]*/uy;
const OPERATOR = /<=|>=|==|!=|<|>|has(?![\p{L}\p{M}\p{Nd}_-])/uy;
const SPACE = /^\s$/u;

export function parseTraitCondition(text: string): ConditionParseResult {
  if (typeof text !== 'string') return { error: 'expected a condition as text, such as "trust < 0.3"', column: 1 };
  if (text.length > MAX_CONDITION_LENGTH) return { error: `condition too long: expected at most ${MAX_CONDITION_LENGTH} characters`, column: 1 };
  const column = (k: number) => [...text.slice(0, k)].length + 1;
  const fail = (k: number, error: string): ConditionParseResult => ({ error, column: column(k) });
  const found = (k: number) => {
    if (k >= text.length) return 'the end of the condition';
    return showCharacter(String.fromCodePoint(text.codePointAt(k)!));
  };
  let i = 0;
  const skipSpace = () => {
    while (i < text.length && SPACE.test(text[i]!)) i++;
  };

  skipSpace();
  KEY.lastIndex = i;
  const key = KEY.exec(text)?.[0];
  if (key === undefined) return fail(i, `expected a trait name (such as trust) at the start of the condition, found ${found(i)}`);
  const keyAt = i;
  i += key.length;
  const spec = traitSpec(key);
  if (spec === undefined) return fail(keyAt, `unknown trait "${key}"${didYouMean(key, PERSONA_KEYS) || `; expected one of ${PERSONA_KEYS.join(', ')}`}`);

  skipSpace();
  OPERATOR.lastIndex = i;
  const op = OPERATOR.exec(text)?.[0];
  if (op === undefined) {
    const hint = text[i] === '=' ? '; equality is written ==' : '';
    return fail(i, `expected an operator (<, <=, >, >=, ==, != or has) after "${key}", found ${found(i)}${hint}`);
  }
  const opAt = i;
  i += op.length;
  skipSpace();

  // The value: exactly one number, string or identifier, read by the persona lexer.
  const valueAt = i;
  const base = column(valueAt) - 1;
  const lexed = lex(text.slice(valueAt));
  const firstError = lexed.errors[0];
  if (firstError !== undefined) return { error: firstError.message, column: base + firstError.column };
  const tokens = lexed.tokens.filter((t) => t.kind !== 'eof');
  const v = tokens[0];
  if (v === undefined) return fail(text.length, `expected a value after "${op}", found the end of the condition`);
  if (v.kind !== 'number' && v.kind !== 'string' && v.kind !== 'identifier') {
    return { error: `expected a value (number, string or identifier) after "${op}", found ${describeToken(v)}`, column: base + v.column };
  }
  const extra = tokens[1];
  if (extra !== undefined) return { error: `expected the end of the condition after the value, found ${describeToken(extra)}`, column: base + extra.column };
  const valueError = (message: string) => ({ error: message, column: base + v.column });

  switch (spec.type) {
    case 'number': {
      if (op === 'has') return fail(opAt, `"has" tests list traits (${LIST_TRAIT_KEYS.join(', ')}); "${key}" is ${expectedOf(spec)}: expected <, <=, >, >=, == or !=`);
      if (v.kind !== 'number') return valueError(`"${key}" is ${expectedOf(spec)}: expected a number after "${op}", found ${describeToken(v)}`);
      if (v.value < spec.min || v.value > spec.max) return valueError(`"${key}" is ${expectedOf(spec)}: expected a number in that range after "${op}", found ${v.text}`);
      return { condition: { kind: 'compare', key: spec.key as NumericTraitKey, op: op as CompareOp, value: v.value } };
    }
    case 'enum':
    case 'text': {
      if (op !== '==' && op !== '!=') return fail(opAt, `"${key}" is ${expectedOf(spec)}: expected == or != after it, found "${op}"`);
      if (v.kind === 'number') return valueError(`"${key}" is ${expectedOf(spec)}: expected a string or identifier after "${op}", found ${describeToken(v)}`);
      const value = v.value as string;
      if (spec.type === 'enum' && !spec.values.includes(value)) {
        return valueError(`expected ${expectedOf(spec)} after "${op}", found ${describeToken(v)}${didYouMean(value, spec.values)}`);
      }
      return { condition: { kind: 'equals', key: spec.key as EnumTraitKey | TextTraitKey, op, value } };
    }
    case 'list': {
      if (op !== 'has') return fail(opAt, `"${key}" is a list: expected "has" after it (${key} has …), found "${op}"`);
      if (v.kind === 'number') return valueError(`"${key}" holds text: expected a string or identifier after "has", found ${describeToken(v)}`);
      return { condition: { kind: 'has', key: spec.key as ListTraitKey, value: v.value as string } };
    }
  }
}

export function evaluateTraitCondition(persona: Persona, condition: TraitCondition): boolean {
  switch (condition.kind) {
    case 'compare': {
      const v = traitValue(persona, condition.key) as number;
      switch (condition.op) {
        case '<': return v < condition.value;
        case '<=': return v <= condition.value;
        case '>': return v > condition.value;
        case '>=': return v >= condition.value;
        case '==': return v === condition.value;
        case '!=': return v !== condition.value;
      }
      break;
    }
    case 'equals': {
      const v = traitValue(persona, condition.key);
      return condition.op === '==' ? v === condition.value : v !== condition.value;
    }
    case 'has':
      return traitValue(persona, condition.key).includes(condition.value);
  }
  throw new TypeError(`evaluateTraitCondition: not a condition: ${JSON.stringify(condition)}`);
}

/** A string as the DSL writes it: "…" with \" \\ \n \t and \uXXXX for other control characters. */
export function quotePersonaString(s: string): string {
  let out = '"';
  for (const ch of s) {
    const c = ch.codePointAt(0)!;
    if (ch === '"' || ch === '\\') out += `\\${ch}`;
    else if (ch === '\n') out += '\\n';
    else if (ch === '\t') out += '\\t';
    else if (c < 0x20 || c === 0x7f) out += `\\u${c.toString(16).padStart(4, '0')}`;
    else out += ch;
  }
  return `${out}"`;
}

/** The canonical text of a condition; parseTraitCondition reads it back to the same condition. */
export function formatTraitCondition(condition: TraitCondition): string {
  const op = condition.kind === 'has' ? 'has' : condition.op;
  const v = condition.value;
  const value = typeof v === 'number' ? String(v) : IDENTIFIER_RE.test(v) ? v : quotePersonaString(v);
  return `${condition.key} ${op} ${value}`;
}
