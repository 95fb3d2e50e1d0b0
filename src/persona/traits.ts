/**
 * The known persona keys. This table is the single source for validation
 * (validate.ts), the prompt rendering (describe.ts), script conditions
 * (condition.ts), the help text and the key table in docs/persona.md (help.ts;
 * a test checks that the page matches it).
 *
 * Adding a key: add a row here and, for a list/enum/text key, a field to
 * `Persona` in types.ts; everything else follows from the row.
 */

interface BaseSpec {
  /** The key as written in the DSL. */
  readonly key: string;
  /** Name used in the prompt rendering and help. */
  readonly label: string;
  /** One or two sentences for docs and help. */
  readonly description: string;
  /** The persona is invalid without it. */
  readonly required: boolean;
  /** Each occurrence adds to the value instead of being a duplicate. */
  readonly repeatable: boolean;
}

/** A number within [min, max]; scripts can test and change it. */
export interface NumberTraitSpec extends BaseSpec {
  readonly type: 'number';
  readonly min: number;
  readonly max: number;
  /** Value read by scripts when the persona does not set it; undefined for required keys. */
  readonly default: number | undefined;
  /** Words for five equal bands of the range, low to high, used in the prompt rendering. */
  readonly levels: readonly [string, string, string, string, string];
}

/** One of a fixed set of words (written as an identifier or a string). */
export interface EnumTraitSpec extends BaseSpec {
  readonly type: 'enum';
  readonly values: readonly string[];
  readonly field: string;
}

/** Free text (a string or an identifier). */
export interface TextTraitSpec extends BaseSpec {
  readonly type: 'text';
  readonly field: string;
}

/** A list of texts; the key repeats, and a list value adds each item. */
export interface ListTraitSpec extends BaseSpec {
  readonly type: 'list';
  readonly field: string;
}

export type TraitSpec = NumberTraitSpec | EnumTraitSpec | TextTraitSpec | ListTraitSpec;

export const PERSONA_TRAITS = [
  {
    key: 'trust', type: 'number', min: 0, max: 1, default: undefined, required: true, repeatable: false,
    label: 'Trust', levels: ['suspicious', 'wary', 'guarded', 'open', 'trusting'],
    description: 'How readily the character believes the user and opens up: 0 suspects everything, 1 takes the user at their word. Scripts lower it after an insult and raise it after kindness.',
  },
  {
    key: 'react_to_conflict', type: 'enum', values: ['withdraw', 'confront', 'defer'], field: 'reactToConflict', required: false, repeatable: false,
    label: 'Reaction to conflict',
    description: 'What the character does when challenged: withdraw (goes quiet, changes the subject or leaves), confront (stands its ground and argues back), defer (gives way and accommodates).',
  },
  {
    key: 'core_value', type: 'list', field: 'coreValues', required: false, repeatable: true,
    label: 'Core values',
    description: 'What the character cares about most (autonomy, loyalty, safety). Each occurrence adds one value; a list adds each item.',
  },
  {
    key: 'warmth', type: 'number', min: 0, max: 1, default: 0.5, required: false, repeatable: false,
    label: 'Warmth', levels: ['cold', 'cool', 'even', 'warm', 'affectionate'],
    description: 'Friendliness and emotional openness toward the user.',
  },
  {
    key: 'formality', type: 'number', min: 0, max: 1, default: 0.5, required: false, repeatable: false,
    label: 'Formality', levels: ['very casual', 'casual', 'neutral', 'formal', 'very formal'],
    description: 'Register of speech: 0 slang and banter, 1 ceremonious.',
  },
  {
    key: 'humor', type: 'number', min: 0, max: 1, default: 0.5, required: false, repeatable: false,
    label: 'Humor', levels: ['humorless', 'rarely jokes', 'sometimes jokes', 'often jokes', 'always joking'],
    description: 'How often the character jokes or teases.',
  },
  {
    key: 'verbosity', type: 'number', min: 0, max: 1, default: 0.5, required: false, repeatable: false,
    label: 'Verbosity', levels: ['terse', 'brief', 'moderate', 'talkative', 'long-winded'],
    description: 'Length of replies: 0 a few words, 1 long speeches.',
  },
  {
    key: 'patience', type: 'number', min: 0, max: 1, default: 0.5, required: false, repeatable: false,
    label: 'Patience', levels: ['very impatient', 'impatient', 'moderate', 'patient', 'very patient'],
    description: 'How much repetition, slowness or provocation the character tolerates before reacting.',
  },
  {
    key: 'aggression', type: 'number', min: 0, max: 1, default: 0.5, required: false, repeatable: false,
    label: 'Aggression', levels: ['gentle', 'mild', 'assertive', 'aggressive', 'hostile'],
    description: 'Readiness to threaten, insult or fight.',
  },
  {
    key: 'mood', type: 'enum', values: ['calm', 'cheerful', 'playful', 'serious', 'melancholy', 'anxious', 'irritable', 'weary'], field: 'mood', required: false, repeatable: false,
    label: 'Mood',
    description: 'The prevailing emotional tone. A closed set so that scripts can test it (mood == weary); put finer shades in speech_style.',
  },
  {
    key: 'speech_style', type: 'text', field: 'speechStyle', required: false, repeatable: false,
    label: 'Speech style',
    description: 'Free-text notes on the voice, e.g. "short clipped sentences" or "calls himself 在下".',
  },
  {
    key: 'likes', type: 'list', field: 'likes', required: false, repeatable: true,
    label: 'Likes',
    description: 'Things the character enjoys talking about or receiving.',
  },
  {
    key: 'dislikes', type: 'list', field: 'dislikes', required: false, repeatable: true,
    label: 'Dislikes',
    description: 'Things that annoy or upset the character.',
  },
  {
    key: 'taboo', type: 'list', field: 'taboos', required: false, repeatable: true,
    label: 'Refuses to discuss',
    description: 'Topics the character refuses to discuss; it declines in character.',
  },
] as const satisfies readonly TraitSpec[];

type Row = (typeof PERSONA_TRAITS)[number];

/** Every known persona key. */
export type PersonaKey = Row['key'];
export type NumericTraitKey = Extract<Row, { type: 'number' }>['key'];
/** Numeric traits other than the required `trust`: unset unless the persona gives them. */
export type OptionalNumericTraitKey = Exclude<NumericTraitKey, 'trust'>;
export type EnumTraitKey = Extract<Row, { type: 'enum' }>['key'];
export type TextTraitKey = Extract<Row, { type: 'text' }>['key'];
export type ListTraitKey = Extract<Row, { type: 'list' }>['key'];
export type ConflictReaction = Extract<Row, { key: 'react_to_conflict' }>['values'][number];
export type Mood = Extract<Row, { key: 'mood' }>['values'][number];

type ValueOf<R> = R extends { type: 'number' } ? number
  : R extends { type: 'enum'; values: readonly (infer V)[] } ? V | undefined
  : R extends { type: 'text' } ? string | undefined
  : readonly string[];

/** What `traitValue` returns for each key (numbers fall back to their default). */
export type PersonaTraitValues = { [R in Row as R['key']]: ValueOf<R> };

// A Map, not an object: a key such as "__proto__" or "constructor" must not
// find anything.
const BY_KEY: ReadonlyMap<string, TraitSpec> = new Map(PERSONA_TRAITS.map((s) => [s.key, s]));

/** The row for a key, or undefined for an unknown key. */
export function traitSpec(key: string): TraitSpec | undefined {
  return BY_KEY.get(key);
}

export const NUMERIC_TRAIT_KEYS: readonly NumericTraitKey[] = PERSONA_TRAITS.filter((s) => s.type === 'number').map((s) => s.key as NumericTraitKey);
export const LIST_TRAIT_KEYS: readonly ListTraitKey[] = PERSONA_TRAITS.filter((s) => s.type === 'list').map((s) => s.key as ListTraitKey);
export const PERSONA_KEYS: readonly PersonaKey[] = PERSONA_TRAITS.map((s) => s.key);

/** "a number from 0 to 1", "one of withdraw, confront, defer", … */
export function expectedOf(spec: TraitSpec): string {
  switch (spec.type) {
    case 'number': return `a number from ${spec.min} to ${spec.max}`;
    case 'enum': return `one of ${spec.values.join(', ')}`;
    case 'text': return 'a string or identifier';
    case 'list': return 'a string, an identifier or a list of them';
  }
}

/**
 * Optimal string alignment distance (Levenshtein plus adjacent transpositions,
 * so "trsut" is one edit from "trust"). Callers bound the lengths.
 */
export function editDistance(a: string, b: string): number {
  const m = a.length;
  const n = b.length;
  let prev2 = new Array<number>(n + 1).fill(0);
  let prev = Array.from({ length: n + 1 }, (_, j) => j);
  let cur = new Array<number>(n + 1).fill(0);
  for (let i = 1; i <= m; i++) {
    cur[0] = i;
    for (let j = 1; j <= n; j++) {
      const cost = a[i - 1] === b[j - 1] ? 0 : 1;
      let d = Math.min(prev[j]! + 1, cur[j - 1]! + 1, prev[j - 1]! + cost);
      if (i > 1 && j > 1 && a[i - 1] === b[j - 2] && a[i - 2] === b[j - 1]) d = Math.min(d, prev2[j - 2]! + 1);
      cur[j] = d;
    }
    [prev2, prev, cur] = [prev, cur, prev2];
  }
  return prev[n]!;
}

const normalize = (s: string) => s.toLowerCase().replace(/[-_\s]/g, '');

/**
 * The candidate closest to `word`, if it is close enough to be a likely typo:
 * case, "-" and "_" are ignored (reactToConflict → react_to_conflict), and up
 * to one edit in short words, two in longer ones.
 */
export function suggest(word: string, candidates: readonly string[]): string | undefined {
  if (word.length > 64) return undefined;
  const w = normalize(word);
  let best: string | undefined;
  let bestDistance = Infinity;
  for (const c of candidates) {
    const d = editDistance(w, normalize(c));
    if (d < bestDistance) [best, bestDistance] = [c, d];
  }
  const allowed = w.length <= 4 ? 1 : 2;
  return bestDistance <= allowed && best !== word ? best : undefined;
}

/** `; did you mean "trust"?` or nothing. */
export function didYouMean(word: string, candidates: readonly string[]): string {
  const s = suggest(word, candidates);
  return s === undefined ? '' : `; did you mean "${s}"?`;
}
