/**
 * Prompt building, in one place. The order is fixed so the prefix stays the
 * same from turn to turn (upstream prompt caches keep hitting): system prompt,
 * description, persona, greeting, history (newest that fit the budget), then
 * the character's current state and the user's message.
 */
import { compileTemplate, type Template, type TemplateContext } from '../characters/template.js';
import type { Character } from '../characters/types.js';
import type { ChatMessage } from '../providers/types.js';
import type { Turn } from '../session/types.js';
import { countTokens } from '../text/tokens.js';

/** History kept in a prompt, in approximate tokens. */
export const HISTORY_TOKEN_BUDGET = 2048;

// Character texts were validated as templates at load; compiled forms are
// cached per Character object (a reloaded character gets new ones).
const compiled = new WeakMap<Character, Map<string, Template>>();

function macros(c: Character, text: string, ctx: TemplateContext): string {
  let cache = compiled.get(c);
  if (!cache) compiled.set(c, (cache = new Map()));
  let t = cache.get(text);
  if (!t) cache.set(text, (t = compileTemplate(text)));
  return t.render(ctx);
}

export interface PromptInput {
  readonly character: Character;
  readonly state: string;
  readonly history: readonly Turn[];
  readonly userText: string;
  readonly context: TemplateContext;
  readonly historyBudget?: number;
}

export function buildPrompt(input: PromptInput): ChatMessage[] {
  const { character: c, context } = input;
  const system: string[] = [];
  if (c.systemPrompt) system.push(macros(c, c.systemPrompt, context));
  else system.push(`You are ${c.name}. Stay in character.`);
  if (c.description) system.push(macros(c, c.description, context));
  if (c.persona) system.push(`Persona: ${c.persona}`);
  const messages: ChatMessage[] = [{ role: 'system', content: system.join('\n\n') }];
  if (c.greeting) messages.push({ role: 'assistant', content: macros(c, c.greeting, context) });

  const budget = input.historyBudget ?? HISTORY_TOKEN_BUDGET;
  const kept: ChatMessage[] = [];
  let used = 0;
  for (let i = input.history.length - 1; i >= 0; i--) {
    const t = input.history[i]!;
    if (t.character !== c.id) continue;
    const cost = countTokens(t.text) + 4;
    if (used + cost > budget) break;
    used += cost;
    kept.push({ role: t.role, content: t.text });
  }
  messages.push(...kept.reverse());
  messages.push({ role: 'system', content: `${c.name}'s current state: ${input.state}.` });
  messages.push({ role: 'user', content: input.userText });
  return messages;
}

export function promptTokens(messages: readonly ChatMessage[]): number {
  let n = 0;
  for (const m of messages) n += countTokens(m.content) + 4;
  return n;
}
