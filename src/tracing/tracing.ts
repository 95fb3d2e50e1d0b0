/**
 * OpenTelemetry tracing of turns (docs/tracing.md). Off by default and free
 * when off: without --otlp-endpoint no SDK module is loaded and no span is
 * created; a client's traceparent is still forwarded unchanged to the model
 * upstream. With it, the SDK (sdk.ts) is imported on start and each turn
 * gets a span tree exported over OTLP/HTTP:
 *
 *   npc.turn
 *   ├── npc.memory.recall
 *   ├── npc.triggers
 *   ├── llm.request      (its context goes upstream as traceparent)
 *   └── npc.stream       (first token to done)
 *
 * Contexts are passed explicitly (no AsyncLocalStorage context manager):
 * every span is started from its turn's context.
 */
import {
  type Attributes,
  type Context,
  createTraceState,
  ROOT_CONTEXT,
  type Span,
  SpanKind,
  SpanStatusCode,
  trace,
  type Tracer,
} from '@opentelemetry/api';
import type { Logger } from '../log.js';
import { formatTraceparent, parseTraceparent, type TraceHeaders } from './trace-context.js';

export type { TraceHeaders } from './trace-context.js';

/** Span and attribute names, in one place (docs/tracing.md lists them). */
export const SPAN = {
  turn: 'npc.turn',
  triggers: 'npc.triggers',
  recall: 'npc.memory.recall',
  llm: 'llm.request',
  stream: 'npc.stream',
} as const;

export const ATTR = {
  npcId: 'npc.id',
  conversationId: 'npc.conversation_id',
  messageId: 'npc.message_id',
  model: 'llm.request.model',
  provider: 'llm.provider',
  state: 'npc.state',
  finish: 'npc.finish_reason',
  triggered: 'npc.triggered',
  memories: 'npc.memory.count',
  tokens: 'npc.stream.tokens',
  promptTokens: 'llm.usage.prompt_tokens',
  completionTokens: 'llm.usage.completion_tokens',
} as const;

export interface TracingOptions {
  /** OTLP/HTTP base URL (".../v1/traces" is appended unless given); undefined: tracing off. */
  readonly endpoint: string | undefined;
  /** Share of new traces sampled, 0..1; a client's sampled flag decides for its own traces. */
  readonly sampleRatio: number;
  readonly logger?: Logger;
  /** service.version of the exported resource. */
  readonly serviceVersion?: string;
}

/** The tracer turns use; `undefined` tracer when off. */
export interface Tracing {
  readonly enabled: boolean;
  readonly tracer: Tracer | undefined;
  /** Exports what is buffered (shutdown, tests). */
  flush(): Promise<void>;
  /** Flushes and stops exporting. */
  shutdown(): Promise<void>;
}

export const TRACING_OFF: Tracing = Object.freeze({
  enabled: false,
  tracer: undefined,
  flush: () => Promise.resolve(),
  shutdown: () => Promise.resolve(),
});

/** Set by sdk.ts when it is evaluated: tests check that tracing off never loads it. */
export const sdkState = { loaded: false };

/**
 * The tracing the options ask for: TRACING_OFF without an endpoint (nothing
 * imported), else the SDK with an OTLP/HTTP exporter, imported now.
 */
export async function createTracing(options: TracingOptions): Promise<Tracing> {
  if (!options.endpoint) return TRACING_OFF;
  const { startSdk } = await import('./sdk.js');
  return startSdk({ ...options, endpoint: options.endpoint });
}

/** The OTLP/HTTP traces URL for an endpoint: the base URL plus /v1/traces (as OTEL_EXPORTER_OTLP_ENDPOINT is read). */
export function tracesUrl(endpoint: string): string {
  const url = endpoint.replace(/\/+$/, '');
  return /\/v1\/traces$/.test(url) ? url : `${url}/v1/traces`;
}

/** The remote parent a client's traceparent names, as an OpenTelemetry context. */
export function parentContext(headers: TraceHeaders | undefined): Context {
  const p = headers && parseTraceparent(headers.traceparent);
  if (!p) return ROOT_CONTEXT;
  return trace.setSpanContext(ROOT_CONTEXT, {
    traceId: p.traceId,
    spanId: p.parentId,
    traceFlags: p.flags & 0x01,
    isRemote: true,
    ...(headers.tracestate !== undefined && { traceState: createTraceState(headers.tracestate) }),
  });
}

/** The traceparent (and tracestate) that makes a downstream request a child of `span`. */
export function headersOf(span: Span): TraceHeaders {
  const c = span.spanContext();
  const traceparent = formatTraceparent(c.traceId, c.spanId, c.traceFlags);
  const state = c.traceState?.serialize();
  return state ? { traceparent, tracestate: state } : { traceparent };
}

/** Ends a span as failed: the error recorded as an exception event, status ERROR with its message. */
export function endWithError(span: Span, err: unknown): void {
  const e = err instanceof Error ? err : new Error(String(err));
  span.recordException(e);
  const code = (e as { code?: unknown }).code;
  if (typeof code === 'string') span.setAttribute('error.type', code);
  span.setStatus({ code: SpanStatusCode.ERROR, message: e.message });
  span.end();
}

/**
 * The spans of one turn. Created only when tracing is on; its methods are
 * what the session engine and the dialogue layer call.
 */
export class TurnTrace {
  readonly span: Span;
  readonly context: Context;
  private ended = false;

  constructor(
    private readonly tracer: Tracer,
    client: TraceHeaders | undefined,
    attributes: Attributes,
  ) {
    this.span = tracer.startSpan(SPAN.turn, { kind: SpanKind.SERVER, attributes }, parentContext(client));
    this.context = trace.setSpan(ROOT_CONTEXT, this.span);
  }

  /** Starts a child span of the turn. */
  child(name: string, attributes?: Attributes, kind: SpanKind = SpanKind.INTERNAL): Span {
    return this.tracer.startSpan(name, { kind, ...(attributes && { attributes }) }, this.context);
  }

  /** The turn failed: recorded on its span, which ends. */
  fail(err: unknown): void {
    if (this.ended) return;
    this.ended = true;
    endWithError(this.span, err);
  }

  /** Ends the turn's span (once; after fail() it does nothing). */
  end(attributes?: Attributes): void {
    if (this.ended) return;
    this.ended = true;
    if (attributes) this.span.setAttributes(attributes);
    this.span.end();
  }
}

/** A turn's trace when tracing is on; undefined (nothing created) when off. */
export function startTurnTrace(tracing: Tracing | undefined, client: TraceHeaders | undefined, attributes: Attributes): TurnTrace | undefined {
  const tracer = tracing?.tracer;
  return tracer ? new TurnTrace(tracer, client, attributes) : undefined;
}
