/**
 * One turn: triggers → state machine → prompt → provider. It hands the
 * events of the reply to a sink as they happen and returns the finished
 * reply; the session layer numbers them and persists the result. Nothing here
 * knows about sockets or sessions.
 */
import type { TemplateContext } from '../characters/template.js';
import { evaluateTriggers } from '../characters/triggers.js';
import { adjustTrait, NUMERIC_TRAIT_KEYS, type Persona, traitSpec, traitValue } from '../persona/index.js';
import type { Character } from '../characters/types.js';
import { NpcdError } from '../errors.js';
import { pause } from '../providers/pace.js';
import { relayReply } from '../providers/relay.js';
import type { GenerateResult, ModelProvider } from '../providers/types.js';
import type { FinishReason, Usage } from '../protocol/types.js';
import type { Turn } from '../session/types.js';
import { fnv1a } from '../text/random.js';
import { SpanKind } from '@opentelemetry/api';
import { ATTR, endWithError, headersOf, SPAN, type TraceHeaders, type TurnTrace } from '../tracing/tracing.js';
import { countTokens, streamPieces } from '../text/tokens.js';
import { buildPrompt, type ClientMessages } from './prompt.js';
import { StopScanner } from './stop.js';

export interface TurnInput {
  readonly sessionId: string;
  readonly character: Character;
  /** State at the start of the turn. */
  readonly state: string;
  /** Persona traits this session changed before the turn (see SessionData.traits). */
  readonly traits?: Readonly<Record<string, number>>;
  readonly text: string;
  /** Approximate token count of `text`. */
  readonly textTokens: number;
  /** Session history before this turn. */
  readonly history: readonly Turn[];
  /** 1-based number of this user turn in the session. */
  readonly turnNumber: number;
  readonly provider: ModelProvider;
  readonly maxTokens: number;
  /** The client's own conversation, used in the prompt instead of `history` (see prompt.ts). */
  readonly client?: ClientMessages;
  /** Sampling options the client asked for. */
  readonly sampling?: Sampling;
  /** Pacing of scripted (trigger) replies. */
  readonly scriptTokenDelayMs: number;
  /** Memories recalled for this message, best first (see memory/recall.ts). */
  readonly memories?: readonly string[];
  readonly signal: AbortSignal;
  /** The turn's spans when tracing is on (npc.triggers and llm.request are started here). */
  readonly trace?: TurnTrace;
  /** When tracing is off: the client's trace context, forwarded unchanged to the upstream. */
  readonly forwardTrace?: TraceHeaders;
}

export interface Sampling {
  readonly temperature?: number;
  readonly topP?: number;
  /**
   * Sequences that end the reply. Passed to the provider and also applied
   * here, so that replies of providers whose API has no stop sequences, and
   * scripted replies, end there too.
   */
  readonly stop?: readonly string[];
  /** The client's seed: the same seed and message give the same reply, whatever the session. */
  readonly seed?: number;
}

/** Receives a turn's events as they happen. */
export interface TurnSink {
  /**
   * The reply starts, in `state` (after this turn's transitions), with the
   * session's changed persona traits after it; the turn waits for it.
   * `promptTokens` is what the turn's usage counts for its prompt unless the
   * provider reports its own (the message alone for a scripted reply), so
   * that a reply cancelled midway can report it too.
   */
  start(state: string, traits: Readonly<Record<string, number>>, promptTokens: number): Promise<void>;
  /** A piece of the reply. A returned promise pauses the turn until it settles. */
  token(text: string): void | Promise<void>;
}

/** How the turn ended; the reply's text is what the sink received. */
export interface TurnResult {
  readonly state: string;
  /** The session's changed persona traits after the turn. */
  readonly traits: Readonly<Record<string, number>>;
  readonly finish: FinishReason;
  readonly usage: Usage;
  /** A script trigger fired on the message (a scripted reply, a state change or a persona adjustment): a key event. */
  readonly triggered: boolean;
}

export function turnSeed(sessionId: string, turnNumber: number, text: string): number {
  return fnv1a(`${sessionId}\u0000${turnNumber}\u0000${text}`);
}

/** The provider seed for a turn whose client chose a seed. */
export function clientSeed(seed: number, text: string): number {
  return fnv1a(`seed\u0000${seed}\u0000${text}`);
}

/**
 * Runs the turn. Rejects with the AbortError when `input.signal` aborts (the
 * sink has seen every piece produced until then), with the provider's
 * NpcdError (ERR_UPSTREAM_*) when it throws one, and with ERR_PROVIDER_FAILED
 * when it fails otherwise.
 */
export async function runTurn(input: TurnInput, sink: TurnSink): Promise<TurnResult> {
  const { character, text, signal } = input;
  const before = withTraits(character.personaSpec, input.traits);
  const triggerSpan = input.trace?.child(SPAN.triggers);
  let evaluated: ReturnType<typeof evaluateTriggers>;
  try {
    evaluated = evaluateTriggers(character, input.state, text, before);
  } catch (err) {
    if (triggerSpan) endWithError(triggerSpan, err);
    throw err;
  }
  const { respond, nextState, adjust } = evaluated;
  const triggered = respond !== undefined || nextState !== input.state || adjust.length > 0;
  let persona = before;
  for (const a of adjust) if (persona) persona = adjustTrait(persona, a.key, a.change);
  const traits = changedTraits(character.personaSpec, persona);
  if (triggerSpan) {
    triggerSpan.setAttributes({ [ATTR.triggered]: triggered, [ATTR.state]: nextState, 'npc.scripted_reply': respond?.respond !== undefined });
    triggerSpan.end();
  }
  const context: TemplateContext = {
    UserInput: text,
    CharacterName: character.name,
    UserName: character.userName,
    State: nextState,
    PreviousState: input.state,
    Turn: String(input.turnNumber),
  };
  const prompt = buildPrompt({ character, state: nextState, traits, history: input.history, userText: text, userTokens: input.textTokens, context, client: input.client, memories: input.memories });
  await sink.start(nextState, traits, respond?.respond ? input.textTokens : prompt.tokens);

  const sampling = input.sampling ?? {};
  const stops = sampling.stop && sampling.stop.length > 0 ? new StopScanner(sampling.stop) : undefined;
  // Pieces handed to the sink, and their text when a stop sequence may cut it.
  let tokens = 0;
  let shown = '';
  const emit = (piece: string): void | Promise<void> => {
    if (piece === '') return;
    tokens++;
    if (stops) shown += piece;
    return sink.token(piece);
  };
  /** Feeds a piece through the stop sequences (when there are some); true when one ended the reply. */
  const feed = async (piece: string): Promise<boolean> => {
    const step = stops ? stops.push(piece) : { text: piece, stopped: false };
    const paused = emit(step.text);
    if (paused) await paused;
    return step.stopped;
  };
  const flush = async (): Promise<void> => {
    const paused = stops ? emit(stops.flush()) : undefined;
    if (paused) await paused;
  };

  if (respond?.respond) {
    const rendered = respond.respond.render(context);
    const pieces = streamPieces(rendered);
    const sent = pieces.slice(0, input.maxTokens);
    let stopped = false;
    for (let i = 0; i < sent.length && !stopped; i++) {
      await pause(i === 0 ? 0 : input.scriptTokenDelayMs, signal);
      stopped = await feed(sent[i]!);
    }
    if (!stopped) await flush();
    const finish: FinishReason = !stopped && sent.length < pieces.length ? 'length' : 'stop';
    const replyText = stops ? shown : sent.join('');
    return { state: nextState, traits, finish, usage: { prompt_tokens: input.textTokens, completion_tokens: countTokens(replyText) }, triggered };
  }

  // The provider call's span; its context goes upstream as traceparent. Off: the client's own, unchanged.
  const llmSpan = input.trace?.child(SPAN.llm, { [ATTR.model]: input.provider.modelName ?? input.provider.name, [ATTR.provider]: input.provider.name }, SpanKind.CLIENT);
  const propagated = llmSpan ? headersOf(llmSpan) : input.forwardTrace;
  const request = {
    character,
    get messages() {
      return prompt.messages;
    },
    userText: text,
    state: nextState,
    maxTokens: input.maxTokens,
    seed: sampling.seed === undefined ? turnSeed(input.sessionId, input.turnNumber, text) : clientSeed(sampling.seed, text),
    ...(sampling.temperature === undefined ? {} : { temperature: sampling.temperature }),
    ...(sampling.topP === undefined ? {} : { topP: sampling.topP }),
    ...(sampling.stop && sampling.stop.length > 0 ? { stop: sampling.stop } : {}),
    ...(propagated && { traceparent: propagated.traceparent }),
    ...(propagated?.tracestate !== undefined && { tracestate: propagated.tracestate }),
  };
  let result: GenerateResult | undefined;
  try {
    // Pieces go straight from the provider to the sink; a stop sequence ends
    // the provider's reply (an HTTP provider closes its request).
    let stopped = false;
    const generated = await relayReply(input.provider, request, signal, (piece) => {
      if (!stops) return emit(piece);
      const step = stops.push(piece);
      const paused = emit(step.text);
      if (!step.stopped) return paused;
      stopped = true;
      return false;
    });
    if (!stopped) {
      result = generated;
      await flush();
    }
  } catch (err) {
    if (signal.aborted) {
      llmSpan?.setAttribute('npc.cancelled', true);
      llmSpan?.end();
      throw err;
    }
    // Upstream failures keep their own codes (timed out, rate limited, ...).
    const failure = err instanceof NpcdError ? err : new NpcdError('ERR_PROVIDER_FAILED', `provider ${input.provider.name} failed: ${(err as Error).message}`, { cause: err });
    if (llmSpan) endWithError(llmSpan, failure);
    throw failure;
  }
  if (llmSpan) {
    if (result?.usage) llmSpan.setAttributes({ [ATTR.promptTokens]: result.usage.promptTokens, [ATTR.completionTokens]: result.usage.completionTokens });
    llmSpan.setAttribute(ATTR.finish, result?.finish ?? 'stop');
    llmSpan.end();
  }
  if (!result) {
    // Cut at a stop sequence: what was shown is the reply.
    return { state: nextState, traits, finish: 'stop', usage: { prompt_tokens: prompt.tokens, completion_tokens: countTokens(shown) }, triggered };
  }
  const usage: Usage = result.usage
    ? { prompt_tokens: result.usage.promptTokens, completion_tokens: result.usage.completionTokens }
    : { prompt_tokens: prompt.tokens, completion_tokens: tokens };
  return { state: nextState, traits, finish: result.finish, usage, triggered };
}

/** The character's persona with this session's changed traits. */
function withTraits(base: Persona | undefined, traits: Readonly<Record<string, number>> | undefined): Persona | undefined {
  if (!base || !traits) return base;
  let p = base;
  // A trait a reloaded persona no longer allows is dropped.
  for (const [key, value] of Object.entries(traits)) if (traitSpec(key)?.type === 'number') p = adjustTrait(p, key, { set: value });
  return p;
}

/** Numeric traits of `now` that differ from the character's own persona. */
function changedTraits(base: Persona | undefined, now: Persona | undefined): Record<string, number> {
  const out: Record<string, number> = {};
  if (!base || !now || base === now) return out;
  for (const key of NUMERIC_TRAIT_KEYS) {
    const v = traitValue(now, key);
    if (typeof v === 'number' && v !== traitValue(base, key)) out[key] = v;
  }
  return out;
}
