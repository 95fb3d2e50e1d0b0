/**
 * Prompt building, in one place. The order is fixed so the prefix stays the
 * same from turn to turn (upstream prompt caches keep hitting): system prompt,
 * description, persona, greeting, history (newest that fit the budget), then
 * the lore the conversation activates (in a stable order), the character's
 * current state and the user's message; what changes from turn to turn comes
 * last. Token counts are
 * approximate (see text/tokens.ts); each turn's count is taken once, when the
 * turn is stored, so building a prompt costs nothing per past message but a
 * few additions.
 *
 * A client that keeps the conversation itself (the OpenAI-compatible
 * endpoint: the client sends the whole chat on every call, possibly edited or
 * regenerated) supplies `client` messages. They take the place of the greeting
 * and the session's history, whole and in their own order (their system
 * messages stay where they are, after npcd's system prompt); lore scans them
 * instead of the history. The order becomes: system prompt, the client's
 * messages before its last user message, lore, state, the user's message,
 * then whatever the client sent after that message (an assistant prefill, a
 * "continue" instruction). Client texts are not templates: they are passed on
 * as they are.
 */
import { compileTemplate, type Template, type TemplateContext } from '../characters/template.js';
import type { Character } from '../characters/types.js';
import { activate, formatLore } from '../lore/index.js';
import { describePersona } from '../persona/index.js';
import type { ChatMessage } from '../providers/types.js';
import type { Turn } from '../session/types.js';
import { countTokens } from '../text/tokens.js';

/** History kept in a prompt, in approximate tokens. */
export const HISTORY_TOKEN_BUDGET = 2048;
/** Approximate per-message overhead of chat formats (role markers). */
const MESSAGE_OVERHEAD = 4;

/** Fields that are the same for every turn of a character. */
const STATIC_FIELDS: ReadonlySet<string> = new Set(['CharacterName', 'UserName']);

interface Rendered {
  readonly text: string;
  readonly tokens: number;
}

interface CharacterCache {
  /** The system message as one template: system prompt, description, persona. */
  system: string;
  templates: Map<string, Template>;
  /** Renderings of texts that only use static fields, with their token counts. */
  rendered: Map<string, Rendered>;
}

// Character texts were validated as templates at load; compiled forms and
// static renderings are cached per Character object (a reloaded character
// gets new ones), so a prompt costs a few lookups per turn.
const caches = new WeakMap<Character, CharacterCache>();

function cacheOf(c: Character): CharacterCache {
  let cache = caches.get(c);
  if (!cache) {
    const parts = [c.systemPrompt || `You are ${c.name}. Stay in character.`];
    if (c.description) parts.push(c.description);
    // The persona described in words (stable order); it is not a template: escape any "{{".
    if (c.personaSpec) parts.push(`Persona: ${describePersona(c.personaSpec).replaceAll('{{', '{{"{{"}}')}`);
    else if (c.persona) parts.push(`Persona: ${c.persona.replaceAll('{{', '{{"{{"}}')}`);
    caches.set(c, (cache = { system: parts.join('\n\n'), templates: new Map(), rendered: new Map() }));
  }
  return cache;
}

function withText(r: Rendered, more: string): Rendered {
  return { text: r.text + more, tokens: r.tokens + countTokens(more) };
}

function render(c: Character, text: string, ctx: TemplateContext): Rendered {
  const cache = cacheOf(c);
  const hit = cache.rendered.get(text);
  if (hit) return hit;
  let t = cache.templates.get(text);
  if (!t) cache.templates.set(text, (t = compileTemplate(text)));
  const out = t.render(ctx);
  const rendered = { text: out, tokens: countTokens(out) };
  if (t.fields.every((f) => STATIC_FIELDS.has(f))) cache.rendered.set(text, rendered);
  return rendered;
}

export interface PromptInput {
  readonly character: Character;
  readonly state: string;
  /** Persona traits the session changed (name → value). */
  readonly traits?: Readonly<Record<string, number>>;
  readonly history: readonly Turn[];
  readonly userText: string;
  /** Token count of userText when the caller has it. */
  readonly userTokens?: number;
  readonly context: TemplateContext;
  readonly historyBudget?: number;
  /** The client's own conversation, replacing greeting and history (see above). */
  readonly client?: ClientMessages;
  /** Memories recalled for this message, best first (memory/recall.ts); they go after the lore. */
  readonly memories?: readonly string[];
}

/** A conversation kept by the client, split around the user message of the turn. */
export interface ClientMessages {
  /** Messages before the user's message, in order. */
  readonly before: readonly ChatMessage[];
  /** Messages after it, in order (usually none). */
  readonly after: readonly ChatMessage[];
  /** `name` the client gave its user message. */
  readonly userName?: string;
}

export interface Prompt {
  /** The messages, built on first use (providers that do not read them cost nothing). */
  readonly messages: ChatMessage[];
  /** Approximate size of the whole prompt in tokens. */
  readonly tokens: number;
}

export function buildPrompt(input: PromptInput): Prompt {
  if (input.client) return buildClientPrompt(input, input.client);
  const { character: c, context, history } = input;
  const system = render(c, cacheOf(c).system, context);
  const greeting = c.greeting ? render(c, c.greeting, context) : undefined;
  // Traits this session changed go with the state, at the end of the prompt.
  // (Appended after rendering: the render cache holds one entry per state, not per value.)
  const changed = Object.entries(input.traits ?? {}).map(([k, v]) => `${k} ${v.toFixed(2)}`).join(', ');
  const stateBase = render(c, `{{char}}'s current state: ${input.state}.`, context);
  const stateLine = changed ? withText(stateBase, ` Persona now: ${changed}.`) : stateBase;
  const lore = c.lorebooks.length > 0 ? activeLore(c, recentTexts(c, history), input.userText, context) : undefined;
  const recalled = memoryBlock(c, input.memories);

  // Newest history first, while it fits the budget.
  const budget = input.historyBudget ?? HISTORY_TOKEN_BUDGET;
  let used = 0;
  let oldest = history.length;
  for (let i = history.length - 1; i >= 0; i--) {
    const t = history[i]!;
    if (t.character !== c.id) continue;
    const cost = t.tokens + MESSAGE_OVERHEAD;
    if (used + cost > budget) break;
    used += cost;
    oldest = i;
  }
  const tokens =
    system.tokens + (greeting ? greeting.tokens + MESSAGE_OVERHEAD : 0) + used +
    stateLine.tokens + (lore ? lore.tokens + MESSAGE_OVERHEAD : 0) + (recalled ? recalled.tokens + MESSAGE_OVERHEAD : 0) +
    (input.userTokens ?? countTokens(input.userText)) + 3 * MESSAGE_OVERHEAD;

  // The caller's history array changes after this turn starts: keep our part.
  const kept = history.slice(oldest);
  let messages: ChatMessage[] | undefined;
  return {
    tokens,
    get messages(): ChatMessage[] {
      if (messages) return messages;
      messages = [{ role: 'system', content: system.text }];
      if (greeting) messages.push({ role: 'assistant', content: greeting.text });
      for (const t of kept) if (t.character === c.id) messages.push({ role: t.role, content: t.text });
      if (lore) messages.push({ role: 'system', content: lore.text });
      if (recalled) messages.push({ role: 'system', content: recalled.text });
      messages.push({ role: 'system', content: stateLine.text });
      messages.push({ role: 'user', content: input.userText });
      return messages;
    },
  };
}

/** The prompt around a conversation the client keeps (see the top of this file). */
function buildClientPrompt(input: PromptInput, client: ClientMessages): Prompt {
  const { character: c, context } = input;
  const system = render(c, cacheOf(c).system, context);
  const changed = Object.entries(input.traits ?? {}).map(([k, v]) => `${k} ${v.toFixed(2)}`).join(', ');
  const stateBase = render(c, `{{char}}'s current state: ${input.state}.`, context);
  const stateLine = changed ? withText(stateBase, ` Persona now: ${changed}.`) : stateBase;
  let lore: Rendered | undefined;
  if (c.lorebooks.length > 0) {
    const recent: string[] = [];
    for (let i = client.before.length - 1; i >= 0 && recent.length < LORE_SCAN_MESSAGES - 1; i--) {
      const m = client.before[i]!;
      if (m.role !== 'system') recent.push(m.content);
    }
    lore = activeLore(c, recent.reverse(), input.userText, context);
  }
  const recalled = memoryBlock(c, input.memories);
  let tokens = system.tokens + stateLine.tokens + (lore ? lore.tokens + MESSAGE_OVERHEAD : 0) + (recalled ? recalled.tokens + MESSAGE_OVERHEAD : 0) + (input.userTokens ?? countTokens(input.userText)) + 3 * MESSAGE_OVERHEAD;
  for (const m of client.before) tokens += countTokens(m.content) + MESSAGE_OVERHEAD;
  for (const m of client.after) tokens += countTokens(m.content) + MESSAGE_OVERHEAD;
  let messages: ChatMessage[] | undefined;
  return {
    tokens,
    get messages(): ChatMessage[] {
      if (messages) return messages;
      messages = [{ role: 'system', content: system.text }, ...client.before];
      if (lore) messages.push({ role: 'system', content: lore.text });
      if (recalled) messages.push({ role: 'system', content: recalled.text });
      messages.push({ role: 'system', content: stateLine.text });
      messages.push(client.userName === undefined ? { role: 'user', content: input.userText } : { role: 'user', content: input.userText, name: client.userName });
      messages.push(...client.after);
      return messages;
    },
  };
}

/** Characters of one recalled memory kept in the prompt. */
export const MEMORY_TEXT_LIMIT = 500;

/**
 * Recalled memories as one system message. Their texts are what users and
 * the model wrote: passed on as they are, never rendered as templates.
 */
function memoryBlock(c: Character, memories: readonly string[] | undefined): Rendered | undefined {
  if (!memories || memories.length === 0) return undefined;
  const lines = memories.map((m) => `- ${m.length > MEMORY_TEXT_LIMIT ? m.slice(0, MEMORY_TEXT_LIMIT) + '…' : m}`);
  const text = `${c.name} remembers from earlier in this conversation:\n${lines.join('\n')}`;
  return { text, tokens: countTokens(text) };
}

/** Texts of the latest turns with this character, oldest first, for lore activation. */
function recentTexts(c: Character, history: readonly Turn[]): string[] {
  const texts: string[] = [];
  for (let i = history.length - 1; i >= 0 && texts.length < LORE_SCAN_MESSAGES - 1; i--) {
    if (history[i]!.character === c.id) texts.push(history[i]!.text);
  }
  return texts.reverse();
}

const LORE_CHAR_RE = /\{\{\s*char\s*\}\}|<(?:bot|char)>/gi;
const LORE_USER_RE = /\{\{\s*user\s*\}\}|<user>/gi;

/** Lore text per turn within this budget, in approximate tokens. */
export const LORE_TOKEN_BUDGET = 1024;
/** Most recent messages a lorebook scans, the user's message included (books and entries may set their own depth). */
const LORE_SCAN_MESSAGES = 8;

/**
 * The lorebook entries the conversation activates (the user's message and
 * the latest messages before it, oldest first), as one text in the books'
 * stable order, with {{char}}/{{user}} rendered. Undefined when none activate.
 */
function activeLore(c: Character, recent: readonly string[], userText: string, context: TemplateContext): Rendered | undefined {
  const messages = [...recent, userText];
  // As in cards: {{char}} and {{user}} in any case and with inner spaces, and the older <BOT>/<CHAR>/<USER>.
  const macro = (text: string) => text.replace(LORE_CHAR_RE, () => context.CharacterName).replace(LORE_USER_RE, () => context.UserName);
  const parts: string[] = [];
  let budget = LORE_TOKEN_BUDGET;
  for (const book of c.lorebooks) {
    if (budget <= 0) break;
    // Books and entries without a scan depth of their own scan every message given.
    const result = activate(book, { messages, budgetTokens: budget, render: macro, scanDepth: LORE_SCAN_MESSAGES });
    if (result.entries.length === 0) continue;
    parts.push(formatLore(result.entries));
    budget -= result.tokens;
  }
  if (parts.length === 0) return undefined;
  const text = `World info:\n${parts.join('\n')}`;
  return { text, tokens: countTokens(text) };
}
