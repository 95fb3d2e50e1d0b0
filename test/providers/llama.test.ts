/**
 * The llama provider against a tiny random-weight GGUF model written by the
 * test: its replies are gibberish, so these tests check the plumbing
 * (streaming, limits, seeds, aborts, the sequence queue, errors), not quality.
 * Skipped only when node-llama-cpp (an optional dependency) is not installed.
 */
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import t from 'tap';
import { CharacterRegistry } from '../../src/characters/registry.js';
import { NpcdError } from '../../src/errors.js';
import { UpstreamError } from '../../src/providers/api.js';
import { createLlamaProvider, type LlamaProvider, toChatHistory } from '../../src/providers/llama.js';
import type { ChatMessage, GenerateRequest, GenerateResult } from '../../src/providers/types.js';
import { writeTinyGguf } from '../helpers/gguf.js';

const installed = await import('node-llama-cpp').then(
  () => true,
  (err: NodeJS.ErrnoException) => {
    if (err.code === 'ERR_MODULE_NOT_FOUND') return false;
    throw err;
  },
);

const registry = new CharacterRegistry();
registry.loadDirectory(fileURLToPath(new URL('../../characters', import.meta.url)));
const MARA = registry.require('tavern-keeper');

const MESSAGES: ChatMessage[] = [
  { role: 'system', content: 'You are Mara, who keeps the harbor tavern.' },
  { role: 'user', content: 'Where can I sleep tonight?' },
];

function request(over: Partial<GenerateRequest> = {}): GenerateRequest {
  return { character: MARA, messages: MESSAGES, userText: 'Where can I sleep tonight?', state: MARA.initialState, maxTokens: 24, seed: 7, ...over };
}

/** Runs a turn to its end: the pieces it yielded and the result it returned. */
async function run(provider: LlamaProvider, req: GenerateRequest, signal = new AbortController().signal): Promise<{ pieces: string[]; text: string; result: GenerateResult }> {
  const gen = provider.generate(req, signal);
  const pieces: string[] = [];
  for (;;) {
    const step = await gen.next();
    if (step.done) return { pieces, text: pieces.join(''), result: step.value };
    pieces.push(step.value);
  }
}

async function rejection(p: Promise<unknown>): Promise<unknown> {
  return p.then(
    () => undefined,
    (err: unknown) => err,
  );
}

t.test('toChatHistory joins runs of one role and ends with the reply to generate', async (t) => {
  t.same(
    toChatHistory([
      { role: 'system', content: 'a' },
      { role: 'system', content: 'b' },
      { role: 'user', content: 'hi' },
      { role: 'assistant', content: 'hello' },
      { role: 'user', content: 'and?' },
    ]),
    [
      { type: 'system', text: 'a\n\nb' },
      { type: 'user', text: 'hi' },
      { type: 'model', response: ['hello'] },
      { type: 'user', text: 'and?' },
      { type: 'model', response: [] },
    ],
  );
  t.same(toChatHistory([{ role: 'user', content: 'hi' }, { role: 'assistant', content: 'Well' }]).at(-1), { type: 'model', response: ['Well'] }, 'a trailing assistant message is continued');
});

t.test('on a tiny GGUF model', { skip: installed ? false : 'node-llama-cpp is not installed (an optional dependency): the llama provider cannot run' }, async (t) => {
  const dir = mkdtempSync(join(tmpdir(), 'npcd-llama-'));
  t.teardown(() => rmSync(dir, { recursive: true, force: true }));
  const modelPath = join(dir, 'tiny.gguf');
  writeTinyGguf(modelPath);

  const provider = await createLlamaProvider({ modelPath, threads: 1, contextSize: 256, sequences: 1 });
  t.teardown(() => provider.close());

  t.test('describes the model and reports health', async (t) => {
    t.equal(provider.name, 'llama');
    t.match(provider.description, /tiny\.gguf/);
    t.match(provider.description, /llama/);
    t.match(provider.description, /params/);
    t.match(provider.description, /1 thread\b/);
    t.match(provider.description, /General chat format/, 'no chat template in the file: the generic format');
    t.same(provider.health(), [{ name: 'llama:tiny.gguf', healthy: true }]);
    t.equal(provider.contextSize, 256);
  });

  t.test('a turn streams pieces and ends with usage', async (t) => {
    const { pieces, text, result } = await run(provider, request({ maxTokens: 40 }));
    t.ok(pieces.length > 1, `${pieces.length} pieces`);
    t.ok(pieces.every((p) => typeof p === 'string' && p.length > 0), 'no empty pieces');
    t.ok(text.length > 0);
    t.notMatch(text, /\uFFFD/, 'no broken UTF-8');
    t.ok(result.usage && result.usage.promptTokens > 10, `prompt tokens ${result.usage?.promptTokens}`);
    t.ok(result.usage && result.usage.completionTokens > 0 && result.usage.completionTokens <= 40, `completion tokens ${result.usage?.completionTokens}`);
  });

  t.test('maxTokens bounds the reply and finish is "length"', async (t) => {
    for (const maxTokens of [1, 5, 12]) {
      const { text, result } = await run(provider, request({ maxTokens, seed: 100 + maxTokens }));
      t.equal(result.finish, 'length', `maxTokens ${maxTokens}`);
      t.equal(result.usage?.completionTokens, maxTokens, `${maxTokens} tokens generated`);
      // A reply this short may be all held back: text that could begin the chat format's stop marker is not shown.
      if (maxTokens >= 5) t.ok(text.length > 0, 'some text');
    }
    const none = await run(provider, request({ maxTokens: 0 }));
    t.same(none.pieces, [], 'a zero budget generates nothing');
    t.equal(none.result.finish, 'length');
  });

  t.test('the same seed gives the same text; another seed another text', async (t) => {
    const a = await run(provider, request({ seed: 1234, maxTokens: 30 }));
    const b = await run(provider, request({ seed: 1234, maxTokens: 30 }));
    await run(provider, request({ seed: 9, maxTokens: 10, messages: [{ role: 'user', content: 'something else entirely' }] }));
    const c = await run(provider, request({ seed: 1234, maxTokens: 30 }));
    t.equal(b.text, a.text, 'twice in a row');
    t.equal(c.text, a.text, 'after another prompt used the sequence');
    const others = new Set<string>();
    for (const seed of [1, 2, 3, 4]) others.add((await run(provider, request({ seed, maxTokens: 30 }))).text);
    t.ok(others.size > 1, `4 seeds gave ${others.size} different replies`);
  });

  t.test('a stop sequence cuts the reply there', async (t) => {
    const full = await run(provider, request({ seed: 55, maxTokens: 40 }));
    const cut = Math.floor(full.text.length / 2);
    const stop = full.text.slice(cut, cut + 2);
    const at = full.text.indexOf(stop);
    const stopped = await run(provider, request({ seed: 55, maxTokens: 40, stop: [stop] }));
    t.equal(stopped.text, full.text.slice(0, at), `cut before ${JSON.stringify(stop)}`);
    t.equal(stopped.result.finish, 'stop');
  });

  t.test('an abort stops the turn promptly and the next turn still works', async (t) => {
    const controller = new AbortController();
    const gen = provider.generate(request({ maxTokens: 200 }), controller.signal);
    const first = await gen.next();
    t.equal(first.done, false, 'a first piece');
    const started = performance.now();
    controller.abort();
    const err = (await rejection(gen.next())) as Error;
    t.equal(err?.name, 'AbortError');
    t.ok(performance.now() - started < 500, 'promptly');

    const before = new AbortController();
    before.abort();
    t.equal(((await rejection(provider.generate(request(), before.signal).next())) as Error).name, 'AbortError', 'an already aborted signal');

    const next = await run(provider, request({ maxTokens: 8 }));
    t.equal(next.result.finish, 'length');
    t.equal(next.result.usage?.completionTokens, 8);
  });

  t.test('a consumer that stops early frees the sequence', async (t) => {
    const gen = provider.generate(request({ maxTokens: 200 }), new AbortController().signal);
    await gen.next();
    await gen.return({ finish: 'stop' });
    const next = await run(provider, request({ maxTokens: 5 }));
    t.equal(next.result.usage?.completionTokens, 5);
  });

  t.test('with one sequence, concurrent turns wait in order', async (t) => {
    const events: string[] = [];
    const turn = async (label: string, req: GenerateRequest, signal = new AbortController().signal) => {
      const gen = provider.generate(req, signal);
      for (;;) {
        const step = await gen.next();
        if (step.done) {
          events.push(`${label} end`);
          return step.value;
        }
        if (!events.includes(`${label} first`)) events.push(`${label} first`);
      }
    };
    const waiter = new AbortController();
    const [a, b, c] = await Promise.allSettled([
      turn('a', request({ maxTokens: 20, seed: 1 })),
      turn('b', request({ maxTokens: 20, seed: 2 }), waiter.signal),
      turn('c', request({ maxTokens: 20, seed: 3 })),
      Promise.resolve().then(() => waiter.abort()),
    ]);
    t.equal(a.status, 'fulfilled');
    t.equal(c.status, 'fulfilled');
    t.equal(b.status, 'rejected', 'the aborted waiter fails');
    t.equal(b.status === 'rejected' ? (b.reason as Error).name : '', 'AbortError');
    t.same(events, ['a first', 'a end', 'c first', 'c end'], 'the second turn waited for the first; the aborted one left the queue');
  });

  t.test('a prompt longer than the context is rejected', async (t) => {
    const long = 'the harbor bells answer one by one tonight '.repeat(40);
    const err = await rejection(run(provider, request({ messages: [{ role: 'user', content: long }] })));
    t.ok(err instanceof UpstreamError, 'an UpstreamError');
    t.equal((err as UpstreamError).code, 'ERR_UPSTREAM_REJECTED');
    t.equal((err as UpstreamError).reason, 'rejected');
    t.match((err as Error).message, /256/);
    const next = await run(provider, request({ maxTokens: 3 }));
    t.equal(next.result.finish, 'length', 'the provider still works');
  });

  t.test('a missing or non-GGUF file is a configuration error', async (t) => {
    const missing = join(dir, 'missing.gguf');
    const e1 = await rejection(createLlamaProvider({ modelPath: missing, threads: 1, contextSize: 256, sequences: 1 }));
    t.ok(e1 instanceof NpcdError);
    t.equal((e1 as NpcdError).code, 'ERR_CONFIG_INVALID');
    t.match((e1 as Error).message, missing);

    const text = join(dir, 'notes.gguf');
    writeFileSync(text, 'these are not model weights\n');
    const e2 = await rejection(createLlamaProvider({ modelPath: text, threads: 1, contextSize: 256, sequences: 1 }));
    t.equal((e2 as NpcdError).code, 'ERR_CONFIG_INVALID');
    t.match((e2 as Error).message, text);
    t.match((e2 as Error).message, /not a GGUF file/);

    const truncated = join(dir, 'truncated.gguf');
    writeFileSync(truncated, Buffer.from('GGUF\x03\x00\x00\x00', 'latin1'));
    const e3 = await rejection(createLlamaProvider({ modelPath: truncated, threads: 1, contextSize: 256, sequences: 1 }));
    t.equal((e3 as NpcdError).code, 'ERR_CONFIG_INVALID', 'a damaged GGUF file too');
    t.match((e3 as Error).message, truncated);
    t.match((e3 as Error).message, /not a valid GGUF file/);

    const e4 = await rejection(createLlamaProvider({ modelPath, threads: 0, contextSize: 256, sequences: 1 }));
    t.equal((e4 as NpcdError).code, 'ERR_CONFIG_INVALID', 'threads must be positive');
  });

  t.test('a missing node-llama-cpp or binary is a configuration error that says how to install it', async (t) => {
    const real = await import('node-llama-cpp');
    const noBinary = await t.mockImport<typeof import('../../src/providers/llama.js')>('../../src/providers/llama.js', {
      'node-llama-cpp': {
        ...real,
        getLlama: async () => {
          throw new Error('no prebuilt binary');
        },
      },
    });
    const e1 = await rejection(noBinary.createLlamaProvider({ modelPath, threads: 1, contextSize: 256, sequences: 1 }));
    t.equal((e1 as NpcdError).code, 'ERR_CONFIG_INVALID');
    t.match((e1 as Error).message, /no llama\.cpp binary .*no prebuilt binary.*npm install node-llama-cpp/);

    // A module whose evaluation throws, as a missing package's import does.
    const missing = await t.mockImport<typeof import('../../src/providers/llama.js')>('../../src/providers/llama.js', {
      'node-llama-cpp': Object.defineProperty({}, 'getLlama', {
        enumerable: true,
        get() {
          throw new Error("Cannot find package 'node-llama-cpp'");
        },
      }),
    });
    const e2 = await rejection(missing.createLlamaProvider({ modelPath, threads: 1, contextSize: 256, sequences: 1 }));
    t.equal((e2 as NpcdError).code, 'ERR_CONFIG_INVALID');
    t.match((e2 as Error).message, /needs node-llama-cpp .*npm install node-llama-cpp/);
  });

  t.test('two sequences generate at once; a chat template in the file is used', async (t) => {
    const templated = join(dir, 'chatml.gguf');
    writeTinyGguf(templated, {
      chatTemplate:
        "{% for message in messages %}{{ '<|im_start|>' + message['role'] + '\\n' + message['content'] + '<|im_end|>' + '\\n' }}{% endfor %}" +
        "{% if add_generation_prompt %}{{ '<|im_start|>assistant\\n' }}{% endif %}",
    });
    const two = await createLlamaProvider({ modelPath: templated, threads: 1, contextSize: 256, sequences: 2 });
    t.teardown(() => two.close());
    t.match(two.description, /ChatML chat format/);
    t.match(two.description, /2 sequences/);
    const events: string[] = [];
    const turn = async (label: string, seed: number) => {
      const gen = two.generate(request({ maxTokens: 40, seed }), new AbortController().signal);
      for (;;) {
        const step = await gen.next();
        if (step.done) {
          events.push(`${label} end`);
          return step.value;
        }
        if (!events.includes(`${label} first`)) events.push(`${label} first`);
      }
    };
    const [a, b] = await Promise.all([turn('a', 1), turn('b', 2)]);
    t.equal(a.finish, 'length');
    t.equal(b.finish, 'length');
    t.ok(events.indexOf('b first') < events.indexOf('a end'), `both generated at once: ${events.join(', ')}`);

    await two.close();
    t.same(two.health(), [{ name: 'llama:chatml.gguf', healthy: false, reason: 'closed' }]);
    const err = await rejection(run(two, request()));
    t.equal((err as NpcdError).code, 'ERR_UPSTREAM_UNAVAILABLE', 'a closed provider refuses turns');
  });
});
