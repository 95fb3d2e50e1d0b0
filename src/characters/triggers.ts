/**
 * Trigger evaluation for one turn. Triggers are checked in file order against
 * the state at the start of the turn: the first matching trigger with `respond`
 * supplies the reply, the first matching trigger with `goto` picks the next
 * state, the first matching trigger with `adjust` changes persona traits (one
 * trigger may do all three). A trigger with `if_trait` conditions matches only
 * while the session's persona meets all of them.
 */
import { evaluateTraitCondition, type Persona } from '../persona/index.js';
import { regexGuard } from '../text/regex-guard.js';
import type { Character, TraitAdjustment, Trigger } from './types.js';

export interface TriggerOutcome {
  /** The trigger whose template becomes the reply, if any. */
  readonly respond: Trigger | undefined;
  /** The state after this turn's transitions. */
  readonly nextState: string;
  /** Persona changes of this turn (empty when none). */
  readonly adjust: readonly TraitAdjustment[];
}

export function mentions(character: Character, lowerText: string): boolean {
  if (lowerText.includes(character.name.toLowerCase()) || lowerText.includes(character.id)) return true;
  return character.aliases.some((a) => lowerText.includes(a.toLowerCase()));
}

/** Whether a trigger matches; `regexHits` holds the triggers whose on_regex matches the text (see regexMatches). */
export function triggerMatches(character: Character, trigger: Trigger, state: string, lowerText: string, regexHits: ReadonlySet<Trigger>, persona?: Persona): boolean {
  if (trigger.inStates && !trigger.inStates.has(state)) return false;
  if (trigger.traitConditions.length > 0 && !(persona && trigger.traitConditions.every((c) => evaluateTraitCondition(persona, c)))) return false;
  if (trigger.onMention && mentions(character, lowerText)) return true;
  if (trigger.keywords.some((k) => lowerText.includes(k))) return true;
  return regexHits.has(trigger);
}

/** The triggers whose on_regex matches `text`: all tested in one job, under the regex guard's deadline. */
export function regexMatches(triggers: readonly Trigger[], text: string): Set<Trigger> {
  const withRegex = triggers.filter((t) => t.regex !== undefined);
  if (withRegex.length === 0) return new Set();
  const hits = regexGuard().test(withRegex.map((t) => t.regex!), text);
  return new Set(withRegex.filter((_, i) => hits[i]));
}

export function evaluateTriggers(character: Character, state: string, text: string, persona: Persona | undefined = character.personaSpec): TriggerOutcome {
  const lowerText = text.toLowerCase();
  const regexHits = regexMatches(character.triggers, text);
  let respond: Trigger | undefined;
  let goto: string | undefined;
  let adjust: readonly TraitAdjustment[] | undefined;
  for (const trigger of character.triggers) {
    if (respond && goto !== undefined && adjust) break;
    const wantsRespond = !respond && trigger.respond !== undefined;
    const wantsGoto = goto === undefined && trigger.goto !== undefined;
    const wantsAdjust = !adjust && trigger.adjust.length > 0;
    if (!wantsRespond && !wantsGoto && !wantsAdjust) continue;
    if (!triggerMatches(character, trigger, state, lowerText, regexHits, persona)) continue;
    if (wantsRespond) respond = trigger;
    if (wantsGoto) goto = trigger.goto;
    if (wantsAdjust) adjust = trigger.adjust;
  }
  return { respond, nextState: goto ?? state, adjust: adjust ?? [] };
}
