/**
 * The two ways a reply leaves a provider, and adapters between them. A
 * generator (generate()) suits providers that produce text themselves; a push
 * (relay()) suits those that read a socket, where each arriving chunk can go
 * to the client within the socket's own callback instead of through a promise
 * per piece for the generator and another for its consumer.
 */
import type { GenerateRequest, GenerateResult, ModelProvider, TextSink } from './types.js';

/** What a provider returns when its reader ended the reply early. */
export const STOPPED: GenerateResult = Object.freeze({ finish: 'stop' });

/** Streams a reply into `onText`, through the provider's relay() or by driving its generator. */
export async function relayReply(provider: ModelProvider, request: GenerateRequest, signal: AbortSignal, onText: TextSink): Promise<GenerateResult> {
  if (provider.relay) return provider.relay(request, signal, onText);
  const stream = provider.generate(request, signal);
  let done = false;
  try {
    for (;;) {
      const step = await stream.next();
      if (step.done) {
        done = true;
        return step.value;
      }
      const next = onText(step.value);
      if (next === false) return STOPPED;
      if (next) await next;
    }
  } finally {
    // Ended early (stopped, or the sink failed): the provider's stream ends too.
    if (!done) await stream.return(STOPPED).catch(() => undefined);
  }
}

/**
 * A generator over a push-based reply: each piece waits until the consumer
 * takes it (the provider is paused meanwhile). A consumer that stops early
 * aborts the reply.
 */
export async function* pullReply(
  signal: AbortSignal,
  run: (signal: AbortSignal, onText: TextSink) => Promise<GenerateResult>,
): AsyncGenerator<string, GenerateResult, void> {
  const controller = new AbortController();
  const onAbort = () => controller.abort(signal.reason);
  if (signal.aborted) onAbort();
  else signal.addEventListener('abort', onAbort, { once: true });
  const pieces: string[] = [];
  let wake: (() => void) | undefined;
  let taken: (() => void) | undefined;
  let settled: { ok: true; result: GenerateResult } | { ok: false; error: unknown } | undefined;
  const notify = () => {
    const w = wake;
    wake = undefined;
    w?.();
  };
  const finished = run(controller.signal, (text) => {
    pieces.push(text);
    notify();
    return new Promise<void>((resolve) => (taken = resolve));
  }).then(
    (result) => {
      settled = { ok: true, result };
      notify();
    },
    (error: unknown) => {
      settled = { ok: false, error };
      notify();
    },
  );
  try {
    for (;;) {
      const piece = pieces.shift();
      if (piece !== undefined) {
        yield piece;
        const go = taken;
        taken = undefined;
        go?.();
        continue;
      }
      if (settled) {
        if (settled.ok) return settled.result;
        throw settled.error;
      }
      await new Promise<void>((resolve) => (wake = resolve));
    }
  } finally {
    signal.removeEventListener('abort', onAbort);
    if (!settled) {
      controller.abort(new DOMException('the reader stopped', 'AbortError'));
      taken?.();
      await finished;
    }
  }
}
