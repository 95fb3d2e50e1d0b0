/**
 * The llama provider: a local GGUF model run in-process by node-llama-cpp
 * (llama.cpp bindings, an optional dependency loaded only when this provider
 * is used). One context holds `sequences` sequences; each turn takes a free
 * sequence (turns beyond that wait, in order), formats the messages with the
 * model's chat template (or a generic one when the file has none), and streams
 * the text as llama.cpp samples it. Evaluation runs on llama.cpp's own
 * threads; the event loop only relays text.
 */
import { open, stat } from 'node:fs/promises';
import { basename } from 'node:path';
import type { ChatHistoryItem, ChatWrapper, Llama, LlamaChat, LlamaContext, LlamaModel, Token } from 'node-llama-cpp';
import { NpcdError } from '../errors.js';
import type { Logger } from '../log.js';
import { UpstreamError } from './api.js';
import type { ChatMessage, GenerateRequest, GenerateResult, ModelProvider, ProviderHealth } from './types.js';
import { WaitLine } from './wait-line.js';

type NodeLlamaCpp = typeof import('node-llama-cpp');

export interface LlamaProviderOptions {
  /** Path of the .gguf model file. */
  readonly modelPath: string;
  /** CPU threads llama.cpp evaluates with (on a 2-core machine 1 is fastest). */
  readonly threads: number;
  /** Tokens each sequence holds: prompt and reply together. */
  readonly contextSize: number;
  /** Turns that generate at once; further turns wait for a free sequence. */
  readonly sequences: number;
  readonly logger?: Logger;
}

/** Sampling temperature when the request sets none. */
export const DEFAULT_TEMPERATURE = 0.8;

const INSTALL = 'npm install node-llama-cpp@3.21.1';

/** One sequence of the context with the chat driver bound to it. */
interface Slot {
  readonly chat: LlamaChat;
  /** Lower runs first among equally good free slots: least recently used. */
  lastUsed: number;
}

/**
 * Hands out the context's sequences, one turn each. Waiters are served in
 * arrival order; a free sequence whose cached tokens share the longest prefix
 * with a turn's prompt is preferred, so a session's next turn reuses the
 * evaluated history when it can.
 */
class SequencePool {
  private readonly free: Slot[];
  private readonly waiters = new WaitLine<Slot, readonly Token[]>();
  private clock = 0;

  constructor(slots: readonly Slot[]) {
    this.free = [...slots];
  }

  acquire(prompt: readonly Token[], signal: AbortSignal): Promise<Slot> {
    signal.throwIfAborted();
    if (this.waiters.length === 0 && this.free.length > 0) return Promise.resolve(this.take(prompt));
    return this.waiters.wait(signal, prompt);
  }

  release(slot: Slot): void {
    slot.lastUsed = ++this.clock;
    this.free.push(slot);
    this.waiters.serve((prompt) => this.take(prompt));
  }

  /** Rejects every waiting turn (the provider is closing). */
  rejectAll(err: unknown): void {
    this.waiters.rejectAll(err);
  }

  private take(prompt: readonly Token[]): Slot {
    let best = 0;
    let bestShared = -1;
    this.free.forEach((slot, i) => {
      const shared = sharedPrefix(slot.chat.sequence.contextTokens, prompt);
      const better = shared > bestShared || (shared === bestShared && slot.lastUsed < this.free[best]!.lastUsed);
      if (better) {
        best = i;
        bestShared = shared;
      }
    });
    return this.free.splice(best, 1)[0]!;
  }
}

function sharedPrefix(a: readonly Token[], b: readonly Token[]): number {
  const n = Math.min(a.length, b.length);
  let i = 0;
  while (i < n && a[i] === b[i]) i++;
  return i;
}

/**
 * The request's messages as node-llama-cpp chat history: consecutive messages
 * of one role are joined (some chat templates insist on alternating roles),
 * and the history ends with the model response to generate. When the last
 * message is the assistant's, the model continues it.
 */
export function toChatHistory(messages: readonly ChatMessage[]): ChatHistoryItem[] {
  const merged: { role: ChatMessage['role']; content: string }[] = [];
  for (const m of messages) {
    const last = merged.at(-1);
    if (last?.role === m.role) last.content = `${last.content}\n\n${m.content}`;
    else merged.push({ role: m.role, content: m.content });
  }
  const history = merged.map((m): ChatHistoryItem => {
    if (m.role === 'assistant') return { type: 'model', response: [m.content] };
    return m.role === 'system' ? { type: 'system', text: m.content } : { type: 'user', text: m.content };
  });
  if (merged.at(-1)?.role !== 'assistant') history.push({ type: 'model', response: [] });
  return history;
}

/** "1.2B", "350M", "0.5M": a parameter count for humans. */
function formatParams(n: number): string {
  if (n >= 1e9) return `${(n / 1e9).toFixed(1)}B`;
  if (n >= 1e6) return `${n >= 1e8 ? Math.round(n / 1e6) : (n / 1e6).toFixed(1)}M`;
  return `${(n / 1e3).toFixed(1)}K`;
}

/** Loads node-llama-cpp; ERR_CONFIG_INVALID naming `user` and how to install it when it is missing or does not load. */
async function importNodeLlamaCpp(user = 'the llama provider'): Promise<NodeLlamaCpp> {
  try {
    return await import('node-llama-cpp');
  } catch (err) {
    throw new NpcdError('ERR_CONFIG_INVALID', `${user} needs node-llama-cpp (an optional dependency of npcd), which is not installed or does not load: ${(err as Error).message}; install it with \`${INSTALL}\``, { cause: err });
  }
}

/** Fails with ERR_CONFIG_INVALID unless `path` is a readable file starting with the GGUF magic. */
async function checkGgufFile(path: string): Promise<void> {
  try {
    const info = await stat(path);
    if (!info.isFile()) throw new NpcdError('ERR_CONFIG_INVALID', `model file ${path} is not a regular file`);
  } catch (err) {
    if (err instanceof NpcdError) throw err;
    throw new NpcdError('ERR_CONFIG_INVALID', `model file ${path} cannot be read: ${(err as Error).message}`, { cause: err });
  }
  const magic = Buffer.alloc(4);
  let handle;
  try {
    handle = await open(path, 'r');
    await handle.read(magic, 0, 4, 0);
  } catch (err) {
    throw new NpcdError('ERR_CONFIG_INVALID', `model file ${path} cannot be read: ${(err as Error).message}`, { cause: err });
  } finally {
    await handle?.close();
  }
  if (magic.toString('latin1') !== 'GGUF') throw new NpcdError('ERR_CONFIG_INVALID', `model file ${path} is not a GGUF file (it does not start with "GGUF")`);
}

/** ERR_CONFIG_INVALID unless `value` is a positive integer; `name` says whose option it is ("llama threads"). */
export function checkCount(name: string, value: number): void {
  if (!Number.isInteger(value) || value < 1) throw new NpcdError('ERR_CONFIG_INVALID', `${name} must be a positive integer, got ${value}`);
}

/**
 * Checks that `path` is a GGUF model file whose header parses, then loads
 * node-llama-cpp (`user` names who needs it in the error). Fails with
 * ERR_CONFIG_INVALID, naming the file, before any backend is loaded.
 */
export async function openGgufModelFile(path: string, user?: string): Promise<NodeLlamaCpp> {
  await checkGgufFile(path);
  const lib = await importNodeLlamaCpp(user);
  // Parsing the header first turns a damaged file into a clear error before the backend loads.
  let problem: string | undefined;
  let cause: unknown;
  try {
    const info = await lib.readGgufFileInfo(path, {
      sourceType: 'filesystem',
      logWarnings: false,
      ignoreKeys: ['tokenizer.ggml.tokens', 'tokenizer.ggml.scores', 'tokenizer.ggml.token_type', 'tokenizer.ggml.merges'],
    });
    const metadata = info.metadata as Partial<typeof info.metadata> | undefined;
    if (typeof metadata?.general?.architecture !== 'string') problem = 'it names no general.architecture';
    else if (!info.tensorInfo?.length) problem = 'it holds no tensors';
  } catch (err) {
    problem = (err as Error).message;
    cause = err;
  }
  if (problem !== undefined) throw new NpcdError('ERR_CONFIG_INVALID', `model file ${path} is not a valid GGUF file: ${problem}`, { cause });
  return lib;
}

/** The llama.cpp backend on the CPU, its log lines going to `logger`; ERR_CONFIG_INVALID when no binary of node-llama-cpp loads. */
export async function loadLlamaBackend(lib: NodeLlamaCpp, logger: Logger | undefined): Promise<Llama> {
  try {
    return await lib.getLlama({
      gpu: false,
      build: 'never',
      skipDownload: true,
      progressLogs: false,
      // No cap from the Llama instance: the context's `threads` is then exact.
      maxThreads: 0,
      logLevel: lib.LlamaLogLevel.warn,
      logger: (level, message) => logLlamaCpp(logger, level, message),
    });
  } catch (err) {
    throw new NpcdError('ERR_CONFIG_INVALID', `node-llama-cpp is installed but no llama.cpp binary of it loads on ${process.platform}-${process.arch}: ${(err as Error).message}; reinstall it with \`${INSTALL}\` so that its prebuilt binary package (@node-llama-cpp/${process.platform}-${process.arch}) is installed too`, { cause: err });
  }
}

/**
 * Loads the model and creates its context. Fails with ERR_CONFIG_INVALID when
 * node-llama-cpp is missing or its binary does not load, when the file is
 * missing or not a GGUF model, or when the context cannot be created.
 */
export async function createLlamaProvider(options: LlamaProviderOptions): Promise<LlamaProvider> {
  checkCount('llama threads', options.threads);
  checkCount('llama contextSize', options.contextSize);
  checkCount('llama sequences', options.sequences);
  const lib = await openGgufModelFile(options.modelPath);
  const llama = await loadLlamaBackend(lib, options.logger);
  let model: LlamaModel | undefined;
  try {
    model = await llama.loadModel({ modelPath: options.modelPath, gpuLayers: 0 });
    let context: LlamaContext;
    try {
      context = await model.createContext({
        contextSize: options.contextSize,
        sequences: options.sequences,
        threads: options.threads,
        failedCreationRemedy: false,
      });
    } catch (err) {
      throw new NpcdError('ERR_CONFIG_INVALID', `cannot create a llama context of ${options.sequences} × ${options.contextSize} tokens for ${options.modelPath}: ${(err as Error).message}`, { cause: err });
    }
    return new LlamaProvider(lib, llama, model, context, options);
  } catch (err) {
    await model?.dispose().catch(() => undefined);
    await llama.dispose().catch(() => undefined);
    if (err instanceof NpcdError) throw err;
    throw new NpcdError('ERR_CONFIG_INVALID', `cannot load model file ${options.modelPath}: ${(err as Error).message}`, { cause: err });
  }
}

function logLlamaCpp(logger: Logger | undefined, level: string, message: string): void {
  if (!logger) return;
  const text = message.trimEnd();
  if (!text) return;
  if (level === 'fatal' || level === 'error') logger.error({ llamaCpp: level }, text);
  else if (level === 'warn') logger.warn({ llamaCpp: level }, text);
  else logger.debug({ llamaCpp: level }, text);
}

export class LlamaProvider implements ModelProvider {
  readonly name = 'llama';
  readonly description: string;
  /** Tokens each sequence holds. */
  readonly contextSize: number;

  private readonly chatWrapper: ChatWrapper;
  private readonly pool: SequencePool;
  private readonly slots: Slot[] = [];
  private readonly file: string;
  /** Turns generating now: their abort controllers and when they end. */
  private readonly running = new Map<AbortController, Promise<void>>();
  private closed = false;

  constructor(
    lib: NodeLlamaCpp,
    private readonly llama: Llama,
    private readonly model: LlamaModel,
    private readonly context: LlamaContext,
    options: LlamaProviderOptions,
  ) {
    this.file = basename(options.modelPath);
    const metadata = model.fileInfo.metadata;
    const template = metadata.tokenizer?.chat_template;
    this.chatWrapper = typeof template === 'string' && template.trim() !== '' ? lib.resolveChatWrapper(model, { warningLogs: false }) : new lib.GeneralChatWrapper();
    for (let i = 0; i < context.totalSequences; i++) {
      this.slots.push({ chat: new lib.LlamaChat({ contextSequence: context.getSequence(), chatWrapper: this.chatWrapper }), lastUsed: 0 });
    }
    this.pool = new SequencePool(this.slots);
    this.contextSize = this.slots[0]!.chat.sequence.contextSize;

    const params = (model.fileInfo.tensorInfo ?? []).reduce((sum, t) => sum + t.dimensions.reduce<number>((p, d) => p * Number(d), 1), 0);
    const fileType = metadata.general.file_type;
    const parts = [metadata.general.architecture, params > 0 ? `${formatParams(params)} params` : undefined, fileType === undefined ? undefined : lib.GgufFileType[fileType]];
    const seqs = options.sequences === 1 ? '1 sequence' : `${options.sequences} sequences`;
    this.description =
      `llama.cpp: ${this.file} (${parts.filter(Boolean).join(', ')}), ${this.chatWrapper.wrapperName} chat format, ` +
      `${options.threads} thread${options.threads === 1 ? '' : 's'}, ${seqs} of ${this.contextSize} tokens`;
  }

  health(): readonly ProviderHealth[] {
    const name = `llama:${this.file}`;
    return this.closed ? [{ name, healthy: false, reason: 'closed' }] : [{ name, healthy: true }];
  }

  /** The prompt's tokens as the chat format lays it out. */
  private promptTokens(history: ChatHistoryItem[]): Token[] {
    const { contextText } = this.chatWrapper.generateContextState({ chatHistory: history });
    return contextText.tokenize(this.model.tokenizer);
  }

  async *generate(request: GenerateRequest, signal: AbortSignal): AsyncGenerator<string, GenerateResult, void> {
    signal.throwIfAborted();
    if (this.closed) throw new UpstreamError('unavailable', `llama provider for ${this.file} is closed`);
    const history = toChatHistory(request.messages);
    const prompt = this.promptTokens(history);
    if (prompt.length >= this.contextSize) {
      throw new UpstreamError('rejected', `the prompt is ${prompt.length} tokens; the llama context holds ${this.contextSize} (prompt and reply together)`);
    }
    if (request.maxTokens <= 0) return { finish: 'length', usage: { promptTokens: prompt.length, completionTokens: 0 } };

    const slot = await this.pool.acquire(prompt, signal);
    if (this.closed) throw new UpstreamError('unavailable', `llama provider for ${this.file} is closed`);
    const chunks: string[] = [];
    let wake: (() => void) | undefined;
    const notify = () => {
      const w = wake;
      wake = undefined;
      w?.();
    };
    const controller = new AbortController();
    const onAbort = () => {
      controller.abort(signal.reason);
      notify();
    };
    signal.addEventListener('abort', onAbort, { once: true });

    const sequence = slot.chat.sequence;
    const outputBefore = sequence.tokenMeter.usedOutputTokens;
    let outcome: { ok: true; stopReason: string } | { ok: false; error: unknown } | undefined;
    const stop = (request.stop ?? []).filter((s) => s !== '');
    const generation = slot.chat
      .generateResponse(history, {
        signal: controller.signal,
        maxTokens: request.maxTokens,
        temperature: request.temperature ?? DEFAULT_TEMPERATURE,
        ...(request.topP === undefined ? {} : { topP: request.topP }),
        seed: request.seed >>> 0,
        ...(stop.length > 0 ? { customStopTriggers: stop } : {}),
        onTextChunk: (text) => {
          if (text === '') return;
          chunks.push(text);
          notify();
        },
      })
      .then(
        (r) => {
          outcome = { ok: true, stopReason: r.metadata.stopReason };
        },
        (error: unknown) => {
          outcome = { ok: false, error };
        },
      )
      .finally(notify);
    // The sequence is free again once llama.cpp has stopped with it, even when
    // this generator already returned (aborted, or its consumer stopped early).
    const settled = generation.then(async () => {
      if (outcome && !outcome.ok && !controller.signal.aborted) await sequence.clearHistory().catch(() => undefined);
      this.running.delete(controller);
      if (!this.closed) this.pool.release(slot);
    });
    this.running.set(controller, settled);

    try {
      for (;;) {
        if (signal.aborted) throw signal.reason;
        const text = chunks.shift();
        if (text !== undefined) {
          yield text;
          continue;
        }
        if (outcome) break;
        await new Promise<void>((resolve) => (wake = resolve));
      }
      if (!outcome.ok) {
        if (signal.aborted) throw signal.reason;
        if (this.closed) throw new UpstreamError('unavailable', `llama provider for ${this.file} closed during the turn`, { cause: outcome.error });
        throw new NpcdError('ERR_PROVIDER_FAILED', `llama.cpp failed on ${this.file}: ${(outcome.error as Error).message}`, { cause: outcome.error });
      }
      return {
        finish: outcome.stopReason === 'maxTokens' ? 'length' : 'stop',
        usage: { promptTokens: prompt.length, completionTokens: sequence.tokenMeter.usedOutputTokens - outputBefore },
      };
    } finally {
      signal.removeEventListener('abort', onAbort);
      if (!outcome) controller.abort(signal.aborted ? signal.reason : new DOMException('The turn was abandoned', 'AbortError'));
    }
  }

  /** Stops running turns, rejects waiting ones, and frees the context, model and llama.cpp backend. */
  async close(): Promise<void> {
    if (this.closed) return;
    this.closed = true;
    this.pool.rejectAll(new UpstreamError('unavailable', `llama provider for ${this.file} is closed`));
    for (const controller of this.running.keys()) controller.abort(new DOMException('The llama provider is closing', 'AbortError'));
    await Promise.all(this.running.values());
    for (const slot of this.slots) slot.chat.dispose();
    await this.context.dispose();
    await this.model.dispose();
    await this.llama.dispose();
  }
}
