import type { Lorebook } from '../lore/index.js';
import type { NumericTraitKey, Persona, TraitChange, TraitCondition } from '../persona/index.js';
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
  /** Persona conditions (`if_trait`), all of which must hold. */
  readonly traitConditions: readonly TraitCondition[];
  /** Changes to numeric persona traits (`adjust`), kept within their bounds. */
  readonly adjust: readonly TraitAdjustment[];
}

export interface TraitAdjustment {
  readonly key: NumericTraitKey;
  readonly change: TraitChange;
}

/** A validated character, immutable once loaded. */
export interface Character {
  readonly id: string;
  readonly name: string;
  readonly aliases: readonly string[];
  readonly description: string;
  /** Persona DSL text as written. */
  readonly persona: string;
  /** The validated persona (undefined when the script has none). */
  readonly personaSpec: Persona | undefined;
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
