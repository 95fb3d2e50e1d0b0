/**
 * Trigger evaluation for one turn. Triggers are checked in file order against
 * the state at the start of the turn: the first matching trigger with `respond`
 * supplies the reply, the first matching trigger with `goto` picks the next
 * state (one trigger may do both).
 */
import type { Character, Trigger } from './types.js';

export interface TriggerOutcome {
  /** The trigger whose template becomes the reply, if any. */
  readonly respond: Trigger | undefined;
  /** The state after this turn's transitions. */
  readonly nextState: string;
}

export function mentions(character: Character, lowerText: string): boolean {
  if (lowerText.includes(character.name.toLowerCase()) || lowerText.includes(character.id)) return true;
  return character.aliases.some((a) => lowerText.includes(a.toLowerCase()));
}

export function triggerMatches(character: Character, trigger: Trigger, state: string, text: string, lowerText: string): boolean {
  if (trigger.inStates && !trigger.inStates.has(state)) return false;
  if (trigger.onMention && mentions(character, lowerText)) return true;
  if (trigger.keywords.some((k) => lowerText.includes(k))) return true;
  return trigger.regex !== undefined && trigger.regex.test(text);
}

export function evaluateTriggers(character: Character, state: string, text: string): TriggerOutcome {
  const lowerText = text.toLowerCase();
  let respond: Trigger | undefined;
  let goto: string | undefined;
  for (const trigger of character.triggers) {
    if (respond && goto !== undefined) break;
    const wantsRespond = !respond && trigger.respond !== undefined;
    const wantsGoto = goto === undefined && trigger.goto !== undefined;
    if (!wantsRespond && !wantsGoto) continue;
    if (!triggerMatches(character, trigger, state, text, lowerText)) continue;
    if (wantsRespond) respond = trigger;
    if (wantsGoto) goto = trigger.goto;
  }
  return { respond, nextState: goto ?? state };
}
