/**
 * Trigger evaluation for one turn. Triggers are checked in file order against
 * the state at the start of the turn: the first matching trigger with `respond`
 * supplies the reply, the first matching trigger with `goto` picks the next
 * state, the first matching trigger with `adjust` changes persona traits (one
 * trigger may do all three). A trigger with `if_trait` conditions matches only
 * while the session's persona meets all of them.
 */
import { evaluateTraitCondition, type Persona } from '../persona/index.js';
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

export function triggerMatches(character: Character, trigger: Trigger, state: string, text: string, lowerText: string, persona?: Persona): boolean {
  if (trigger.inStates && !trigger.inStates.has(state)) return false;
  if (trigger.traitConditions.length > 0 && !(persona && trigger.traitConditions.every((c) => evaluateTraitCondition(persona, c)))) return false;
  if (trigger.onMention && mentions(character, lowerText)) return true;
  if (trigger.keywords.some((k) => lowerText.includes(k))) return true;
  return trigger.regex !== undefined && trigger.regex.test(text);
}

export function evaluateTriggers(character: Character, state: string, text: string, persona: Persona | undefined = character.personaSpec): TriggerOutcome {
  const lowerText = text.toLowerCase();
  let respond: Trigger | undefined;
  let goto: string | undefined;
  let adjust: readonly TraitAdjustment[] | undefined;
  for (const trigger of character.triggers) {
    if (respond && goto !== undefined && adjust) break;
    const wantsRespond = !respond && trigger.respond !== undefined;
    const wantsGoto = goto === undefined && trigger.goto !== undefined;
    const wantsAdjust = !adjust && trigger.adjust.length > 0;
    if (!wantsRespond && !wantsGoto && !wantsAdjust) continue;
    if (!triggerMatches(character, trigger, state, text, lowerText, persona)) continue;
    if (wantsRespond) respond = trigger;
    if (wantsGoto) goto = trigger.goto;
    if (wantsAdjust) adjust = trigger.adjust;
  }
  return { respond, nextState: goto ?? state, adjust: adjust ?? [] };
}
