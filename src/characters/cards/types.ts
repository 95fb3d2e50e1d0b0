/**
 * Shapes of Character Cards (V1, V2, V3) as npcd holds them. A card is plain
 * JSON data (it crosses worker boundaries by structured clone and is written
 * back out by export), so every object type here also admits the keys no spec
 * defines: they are kept verbatim and exported again.
 *
 * Specs: V2 https://github.com/malfoyslastname/character-card-spec-v2/blob/main/spec_v2.md
 *        V3 https://github.com/kwaroran/character-card-spec-v3/blob/main/SPEC_V3.md
 */

export type JsonValue = null | boolean | number | string | JsonValue[] | JsonObject;
/** `undefined` only stands for an absent optional key; JSON.stringify drops it. */
export interface JsonObject {
  [key: string]: JsonValue | undefined;
}

export type CardSpec = 'chara_card_v1' | 'chara_card_v2' | 'chara_card_v3';

/**
 * A lorebook entry. Validated where present (types of the known fields;
 * `null` is let through as "absent") but never filled with defaults or
 * rewritten: the lorebook module gets the object as the card had it.
 */
export interface CharacterBookEntry {
  keys: string[];
  content: string;
  extensions?: JsonObject | null;
  enabled?: boolean | null;
  insertion_order?: number | null;
  case_sensitive?: boolean | null;
  /** V3: keys are regular expressions. */
  use_regex?: boolean | null;
  constant?: boolean | null;
  name?: string | null;
  priority?: number | null;
  /** A number in V2; V3 allows a string too. */
  id?: number | string | null;
  comment?: string | null;
  selective?: boolean | null;
  secondary_keys?: string[] | null;
  /** 'before_char' | 'after_char' in the specs; other values are kept (with a warning). */
  position?: string | null;
  [key: string]: JsonValue | undefined;
}

/** `data.character_book`: a character-specific lorebook, kept as the card had it. */
export interface CharacterBook {
  name?: string | null;
  description?: string | null;
  scan_depth?: number | null;
  token_budget?: number | null;
  recursive_scanning?: boolean | null;
  extensions?: JsonObject | null;
  entries: CharacterBookEntry[];
  [key: string]: JsonValue | undefined;
}

/** V3 `data.assets[i]`. */
export interface CardAsset {
  type: string;
  uri: string;
  name: string;
  ext: string;
  [key: string]: JsonValue | undefined;
}

/**
 * The card's `data`, normalised to the V3 superset: every V2 field is present
 * (missing strings become '', missing lists []), V3's optional fields are
 * present only when the card had them, `extensions` is kept deep and verbatim,
 * and so is every key no spec defines.
 */
export interface CardData {
  name: string;
  description: string;
  personality: string;
  scenario: string;
  first_mes: string;
  mes_example: string;
  creator_notes: string;
  system_prompt: string;
  post_history_instructions: string;
  alternate_greetings: string[];
  character_book?: CharacterBook;
  tags: string[];
  creator: string;
  character_version: string;
  extensions: JsonObject;
  // V3
  group_only_greetings: string[];
  assets?: CardAsset[];
  nickname?: string;
  creator_notes_multilingual?: Record<string, string>;
  source?: string[];
  /** Unix time in seconds. */
  creation_date?: number;
  /** Unix time in seconds. */
  modification_date?: number;
  [key: string]: JsonValue | undefined;
}

export interface Card {
  /** The spec the card came as (a V1 card has no `spec`). */
  spec: CardSpec;
  /** `spec_version` as the card gave it; '1.0' for V1 cards. */
  specVersion: string;
  data: CardData;
  /**
   * Top-level keys besides `spec`, `spec_version` and `data` — e.g. the V1
   * mirror (name, description, …) and SillyTavern's avatar/chat/create_date
   * that many V2 cards carry — kept verbatim. For a V1 card: every top-level
   * key other than its six fields.
   */
  extra: JsonObject;
}

/** Where a card was read from. */
export type CardContainer = 'json' | 'png:ccv3' | 'png:chara';

/** One problem with a card file. */
export interface CardIssue {
  /** An `error` means no card; a `warning` is reported and the card still imports. */
  readonly severity: 'error' | 'warning';
  /**
   * Where: a JSON path into the card (`data.character_book.entries[3].keys`,
   * `''` for the whole document), or `png` for the PNG container.
   */
  readonly path: string;
  readonly message: string;
  /** The PNG text chunk whose JSON the path points into. */
  readonly chunk?: 'chara' | 'ccv3';
  /** 1-based position in the JSON text, for syntax errors. */
  readonly line?: number;
  readonly column?: number;
}

export interface CardParseResult {
  /** The card, or undefined when any issue is an error. */
  readonly card: Card | undefined;
  readonly issues: readonly CardIssue[];
  /** Where the card was read from; undefined when nothing was read. */
  readonly container: CardContainer | undefined;
}
