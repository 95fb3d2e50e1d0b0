/**
 * The shapes of lorebooks (SillyTavern World Info files and Character Card
 * V2/V3 `character_book`s) once parsed into one form, and of an activation.
 *
 * A parsed `Lorebook` is plain data (no RegExp, no functions): it can be sent
 * between worker threads with `postMessage` and stored as JSON. Regex keys are
 * compiled when the book is first activated. Treat a parsed book as immutable
 * (the parser freezes it): compiled matchers are cached per book object.
 */

/** A problem found while parsing; `path` is a JSON path into the input (`$.entries[2].keys[0]`). */
export interface LorebookIssue {
  readonly path: string;
  readonly message: string;
  /** `error`: the value was ignored or the entry dropped; `warning`: a default or a repair was applied. */
  readonly severity: 'error' | 'warning';
}

export type LorebookFormat = 'character_book' | 'world_info';

/**
 * SillyTavern's secondary-key logic (`selectiveLogic` 0..3), applied when an
 * entry is selective and has secondary keys, after a primary key matched.
 */
export type SelectiveLogic = 'and_any' | 'not_all' | 'not_any' | 'and_all';

/**
 * Where the caller should put the entry. `before_char` / `after_char` are the
 * card spec's two values; the others are SillyTavern World Info positions
 * (2..7), kept so a caller can honour them. `formatLore` ignores positions.
 */
export type LorePosition = 'before_char' | 'after_char' | 'an_top' | 'an_bottom' | 'at_depth' | 'em_top' | 'em_bottom' | 'outlet';

/** A key matched as text (substring, or whole word when the entry asks for it). */
export interface PlainKey {
  readonly kind: 'plain';
  /** The key as written in the book. */
  readonly source: string;
}

/** A key written `/pattern/flags` (or any key of a `use_regex` card entry); checked by `checkRegex`. */
export interface RegexKey {
  readonly kind: 'regex';
  readonly source: string;
  readonly pattern: string;
  /** Flags without `g` and `y` (which would make matching stateful). */
  readonly flags: string;
}

export type LoreKey = PlainKey | RegexKey;

export interface LorebookEntry {
  /** 0-based position among the parsed entries (World Info: in the order of the `entries` object). */
  readonly index: number;
  /** Card `id` or World Info `uid` (the `entries` map key when `uid` is missing); may repeat in a bad book. */
  readonly id: number | string;
  readonly name: string | undefined;
  readonly comment: string;
  /** Primary keys that can match; refused keys (unsafe regex, empty) are left out and reported. */
  readonly keys: readonly LoreKey[];
  readonly secondaryKeys: readonly LoreKey[];
  readonly content: string;
  readonly enabled: boolean;
  readonly constant: boolean;
  readonly selective: boolean;
  readonly selectiveLogic: SelectiveLogic;
  /** Insertion order: lower is placed earlier in the lore text. */
  readonly order: number;
  /** Card `priority`: when the budget runs out, lower priority is dropped first. Defaults to `order`. */
  readonly priority: number | undefined;
  readonly caseSensitive: boolean;
  /** undefined: use the activation option `matchWholeWords` (default false). */
  readonly matchWholeWords: boolean | undefined;
  /** Per-entry scan depth; undefined: the book's, then the activation option's. */
  readonly scanDepth: number | undefined;
  readonly position: LorePosition;
  /** Depth for `at_depth` entries (World Info `depth`). */
  readonly depth: number | undefined;
  /** 0..100 (undefined: 100), used only when `useProbability` and the caller passes `random`. */
  readonly probability: number | undefined;
  /** Default true, as in SillyTavern (harmless while `probability` is 100 or unset). */
  readonly useProbability: boolean;
  /** Cannot be activated by other entries' content (recursion), only by the chat. */
  readonly excludeRecursion: boolean;
  /** Its content does not activate other entries. */
  readonly preventRecursion: boolean;
  /** Card entry `extensions`, verbatim (World Info: `{}`). */
  readonly extensions: Readonly<Record<string, unknown>>;
  /** Every other field of the input entry that is not interpreted here, verbatim. */
  readonly extra: Readonly<Record<string, unknown>>;
}

export interface Lorebook {
  readonly format: LorebookFormat;
  readonly name: string | undefined;
  readonly description: string | undefined;
  readonly scanDepth: number | undefined;
  readonly tokenBudget: number | undefined;
  readonly recursiveScanning: boolean | undefined;
  readonly entries: readonly LorebookEntry[];
  /** Card book `extensions`, verbatim (World Info: `{}`). */
  readonly extensions: Readonly<Record<string, unknown>>;
  /** Other top-level fields of the input, verbatim. */
  readonly extra: Readonly<Record<string, unknown>>;
}

export interface ParseResult {
  /** undefined only when the input is not a lorebook at all (not an object, no `entries`). */
  readonly lorebook: Lorebook | undefined;
  readonly issues: readonly LorebookIssue[];
}

export interface ActivateOptions {
  /** Recent chat messages, oldest first, newest last. */
  readonly messages: readonly string[];
  /** The caller's cap on lore tokens; the effective budget is the smaller of this and the book's `token_budget`. */
  readonly budgetTokens?: number;
  /** Messages scanned when neither the entry nor the book sets a scan depth (default 2). */
  readonly scanDepth?: number;
  /** Recursive scanning when the book does not say (default false). */
  readonly recursive?: boolean;
  /** Whole-word matching for entries that do not say (default false). */
  readonly matchWholeWords?: boolean;
  /**
   * Random numbers in [0, 1) for entries with `useProbability`. Without it,
   * probability is not rolled (the entry activates as if it were 100), so the
   * lore stays the same turn after turn.
   */
  readonly random?: () => number;
  /** Turns entry content into prompt text (e.g. `{{char}}`/`{{user}}` macros) before tokens are counted. */
  readonly render?: (content: string, entry: LorebookEntry) => string;
}

export interface ActivatedEntry {
  readonly entry: LorebookEntry;
  /** The content as it goes into the prompt (after `render`). */
  readonly content: string;
  readonly tokens: number;
  /** `constant`, or `key` with the first primary key that matched. */
  readonly trigger: 'constant' | 'key';
  readonly matchedKey: string | undefined;
  /** 0: activated by the chat; 1..3: by the content of entries activated in the pass before. */
  readonly pass: number;
}

export type SkipReason = 'budget' | 'probability' | 'empty_content';

export interface SkippedEntry {
  readonly entry: LorebookEntry;
  readonly reason: SkipReason;
  /** Tokens of the rendered content (0 for `probability`, which is decided before rendering). */
  readonly tokens: number;
}

export interface ActivationResult {
  /** The entries that go into the prompt, in prompt order (insertion order, then id, then index). */
  readonly entries: readonly ActivatedEntry[];
  /** Sum of `entries[].tokens` (equal to `countTokens(formatLore(entries))`). */
  readonly tokens: number;
  /** Entries that activated but are not in the prompt, in prompt order. */
  readonly skipped: readonly SkippedEntry[];
  /** The budget that was applied. */
  readonly budget: number;
  /** Scan passes run: 1 without recursion, up to 1 + MAX_RECURSION_PASSES. */
  readonly passes: number;
}
