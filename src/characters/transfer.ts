/**
 * A character as plain data, for crossing from a parse worker to the main
 * thread (structured clone keeps no functions: compiled templates cannot
 * cross). The worker has validated everything; rebuilding compiles the
 * template sources and regexes again, which is cheap next to parsing YAML.
 */
import { compileTemplate } from './template.js';
import type { Character, Trigger } from './types.js';

export interface TriggerData {
  readonly index: number;
  readonly onMention: boolean;
  readonly keywords: readonly string[];
  readonly regex: { readonly source: string; readonly flags: string } | undefined;
  readonly inStates: readonly string[] | undefined;
  readonly respond: string | undefined;
  readonly goto: string | undefined;
  readonly traitConditions: Trigger['traitConditions'];
  readonly adjust: Trigger['adjust'];
}

export type CharacterData = Omit<Character, 'triggers'> & { readonly triggers: readonly TriggerData[] };

export function toCharacterData(c: Character): CharacterData {
  return {
    ...c,
    triggers: c.triggers.map((t) => ({
      index: t.index,
      onMention: t.onMention,
      keywords: t.keywords,
      regex: t.regex ? { source: t.regex.source, flags: t.regex.flags } : undefined,
      inStates: t.inStates ? [...t.inStates] : undefined,
      respond: t.respond?.source,
      goto: t.goto,
      traitConditions: t.traitConditions,
      adjust: t.adjust,
    })),
  };
}

export function fromCharacterData(d: CharacterData): Character {
  const triggers: Trigger[] = d.triggers.map((t) => ({
    index: t.index,
    onMention: t.onMention,
    keywords: Object.freeze([...t.keywords]),
    regex: t.regex ? new RegExp(t.regex.source, t.regex.flags) : undefined,
    inStates: t.inStates ? new Set(t.inStates) : undefined,
    respond: t.respond === undefined ? undefined : compileTemplate(t.respond),
    goto: t.goto,
    traitConditions: t.traitConditions,
    adjust: t.adjust,
  }));
  return Object.freeze({
    ...d,
    aliases: Object.freeze([...d.aliases]),
    examples: Object.freeze([...d.examples]),
    states: Object.freeze([...d.states]),
    triggers: Object.freeze(triggers),
  });
}
