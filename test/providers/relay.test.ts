/**
 * The two ways a reply leaves a provider (generator and push) and the
 * adapters between them, on providers written here for the purpose.
 */
import t from 'tap';
import type { Character } from '../../src/characters/types.js';
import { pullReply, relayReply, STOPPED } from '../../src/providers/relay.js';
import type { GenerateRequest, GenerateResult, ModelProvider, TextSink } from '../../src/providers/types.js';

const REQUEST: GenerateRequest = { character: { id: 'mara' } as Character, messages: [], userText: 'hi', state: 'calm', maxTokens: 8, seed: 1 };
const WORDS = ['One', ' two', ' three', ' four'];

/** A generator provider that records whether its stream was closed before its end. */
function generatorProvider() {
  const seen = { produced: 0, closedEarly: false };
  const provider: ModelProvider = {
    name: 'gen',
    description: 'test generator',
    async *generate(): AsyncGenerator<string, GenerateResult, void> {
      let done = false;
      try {
        for (const w of WORDS) {
          seen.produced++;
          yield w;
        }
        done = true;
        return { finish: 'length' };
      } finally {
        if (!done) seen.closedEarly = true;
      }
    },
  };
  return { provider, seen };
}

/** A push provider: pieces on timers, honouring pauses, stops and aborts. */
function pushProvider(fail?: Error) {
  const seen = { pushed: 0, aborted: false };
  const relay = async (signal: AbortSignal, onText: TextSink): Promise<GenerateResult> => {
    for (const w of WORDS) {
      await new Promise((resolve) => setTimeout(resolve, 5));
      if (signal.aborted) {
        seen.aborted = true;
        throw signal.reason;
      }
      seen.pushed++;
      const next = onText(w);
      if (next === false) return STOPPED;
      if (next) await next;
    }
    if (fail) throw fail;
    return { finish: 'stop' };
  };
  return { relay, seen };
}

t.test('relayReply drives a generator provider piece by piece and returns its result', async (t) => {
  const { provider } = generatorProvider();
  const pieces: string[] = [];
  const result = await relayReply(provider, REQUEST, new AbortController().signal, (p) => void pieces.push(p));
  t.same(pieces, WORDS);
  t.same(result, { finish: 'length' });
});

t.test('relayReply: a sink answering false ends the reply and closes the generator', async (t) => {
  const { provider, seen } = generatorProvider();
  const pieces: string[] = [];
  const result = await relayReply(provider, REQUEST, new AbortController().signal, (p) => (pieces.push(p) === 2 ? false : undefined));
  t.same(pieces, WORDS.slice(0, 2));
  t.equal(result, STOPPED);
  t.equal(seen.produced, 2);
  t.ok(seen.closedEarly, 'the generator ran its finally');
});

t.test('relayReply waits for a sink promise before the next piece', async (t) => {
  const { provider } = generatorProvider();
  const order: string[] = [];
  await relayReply(provider, REQUEST, new AbortController().signal, (p) => {
    order.push(p);
    if (p === 'One') return new Promise<void>((resolve) => setTimeout(() => (order.push('resumed'), resolve()), 20));
  });
  t.same(order, ['One', 'resumed', ' two', ' three', ' four']);
});

t.test('pullReply turns a push provider into a generator that holds it until each piece is taken', async (t) => {
  const { relay, seen } = pushProvider();
  const gen = pullReply(new AbortController().signal, relay);
  t.same(await gen.next(), { value: 'One', done: false });
  await new Promise((resolve) => setTimeout(resolve, 40));
  t.equal(seen.pushed, 1, 'the provider waits while the consumer does not take');
  const rest: string[] = [];
  let step = await gen.next();
  while (!step.done) {
    rest.push(step.value);
    step = await gen.next();
  }
  t.same(rest, WORDS.slice(1));
  t.same(step.value, { finish: 'stop' });
});

t.test('pullReply: a consumer that stops early aborts the provider', async (t) => {
  const { relay, seen } = pushProvider();
  const gen = pullReply(new AbortController().signal, relay);
  await gen.next();
  await gen.return(STOPPED);
  t.ok(seen.aborted, 'the provider saw its signal abort');
  t.equal(seen.pushed, 1);
});

t.test('pullReply passes on a failure after the pieces before it, and the caller\'s abort', async (t) => {
  const failing = pushProvider(new Error('upstream went away'));
  const pieces: string[] = [];
  await t.rejects(
    (async () => {
      for await (const p of pullReply(new AbortController().signal, failing.relay)) pieces.push(p);
    })(),
    /upstream went away/,
  );
  t.same(pieces, WORDS);

  const ac = new AbortController();
  const { relay, seen } = pushProvider();
  const gen = pullReply(ac.signal, relay);
  await gen.next();
  ac.abort(new Error('cancelled by the client'));
  await t.rejects(gen.next(), /cancelled by the client/);
  t.ok(seen.aborted);
});
