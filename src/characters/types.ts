import type { Lorebook } from '../lore/index.js';
import type { Template } from './template.js';

export interface Trigger {
  /** 0-based position in the script's `triggers` list. */
  readonly index: number;
  readonly onMention: boolean;
  /** Lower-cased keywords; matched as substrings of the lower-cased message. */
  readonly keywords: readonly string[];
  readonly regex: RegExp | undefined;
  /** States in which the trigger is active; undefined means every state. */
  readonly inStates: ReadonlySet<string> | undefined;
  readonly respond: Template | undefined;
  readonly goto: string | undefined;
}

/** A validated character, immutable once loaded. */
export interface Character {
  readonly id: string;
  readonly name: string;
  readonly aliases: readonly string[];
  readonly description: string;
  /** Raw persona DSL text. */
  readonly persona: string;
  readonly systemPrompt: string;
  readonly greeting: string;
  readonly userName: string;
  /** Lines in the character's own voice. */
  readonly examples: readonly string[];
  readonly initialState: string;
  readonly states: readonly string[];
  readonly triggers: readonly Trigger[];
  /** Lorebooks whose entries the prompt draws on (from `lorebooks` or a card's character_book). */
  readonly lorebooks: readonly Lorebook[];
  /** Lorebook files the character was built from (a change reloads it). */
  readonly lorebookFiles: readonly string[];
  /** File the character was loaded from. */
  readonly source: string;
}

/** One problem in a character file, with its position (1-based). */
export interface CharacterIssue {
  readonly file: string;
  readonly line: number;
  readonly column: number;
  readonly message: string;
}
