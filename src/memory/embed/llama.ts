/**
 * The `llama:PATH.gguf` embedder: a local GGUF model run in-process by
 * node-llama-cpp (the optional dependency the llama chat provider uses, and
 * loaded the same way: src/providers/llama.ts), through an embedding context
 * (`model.createEmbeddingContext()`, one text at a time: llama.cpp's own
 * lock serializes them). Use an embedding model (nomic-embed-text,
 * bge, all-MiniLM, e5 in GGUF form); a chat model gives vectors too, but
 * poor ones. A text longer than the context is cut to its first tokens.
 */
import { basename } from 'node:path';
import type { Llama, LlamaEmbedding, LlamaEmbeddingContext, LlamaModel } from 'node-llama-cpp';
import type { Logger } from '../../log.js';
import { checkCount, loadLlamaBackend, openGgufModelFile } from '../../providers/llama.js';
import { NpcdError } from '../../errors.js';
import { type Embedder, embeddingError, embedNonBlank, notReady, unitVector } from './types.js';

export interface LlamaEmbedderOptions {
  /** Path of the .gguf model file. */
  readonly modelPath: string;
  /** CPU threads llama.cpp evaluates with. */
  readonly threads: number;
  /** Tokens a text may have (longer texts are cut); capped by the model's own context. */
  readonly contextSize: number;
  readonly logger?: Logger;
}

interface Loaded {
  readonly llama: Llama;
  readonly model: LlamaModel;
  readonly context: LlamaEmbeddingContext;
  /** Tokens per text: the context less the begin and end tokens added around it. */
  readonly maxTokens: number;
}

export class LlamaEmbedder implements Embedder {
  readonly name: string;
  #dim = 0;
  #loaded: Loaded | undefined;

  constructor(readonly options: LlamaEmbedderOptions) {
    this.name = `llama:${basename(options.modelPath)}`;
  }

  get dim(): number {
    return this.#dim;
  }

  /**
   * Loads the model and its embedding context, then embeds a probe text to
   * check that the model gives vectors of its stated size. Fails with
   * ERR_CONFIG_INVALID when node-llama-cpp is missing or its binary does not
   * load, or when the file is missing or not a GGUF model; with
   * ERR_EMBEDDING_FAILED when the model cannot embed.
   */
  async init(): Promise<void> {
    if (this.#loaded) return;
    const { modelPath, threads, contextSize, logger } = this.options;
    checkCount('llama embedder threads', threads);
    checkCount('llama embedder contextSize', contextSize);
    const lib = await openGgufModelFile(modelPath, 'the llama embedder');
    const llama = await loadLlamaBackend(lib, logger);
    let model: LlamaModel | undefined;
    try {
      model = await llama.loadModel({ modelPath, gpuLayers: 0 });
      const size = Math.min(contextSize, model.trainContextSize);
      // The whole text goes in one batch: pooled embeddings need it.
      const context = await model.createEmbeddingContext({ contextSize: size, batchSize: size, threads });
      const loaded: Loaded = { llama, model, context, maxTokens: size - 2 };
      const dim = model.embeddingVectorSize;
      const [probe] = await this.#embedAll(loaded, ['The dimension probe of npcd.'], dim, undefined);
      if (probe!.every((x) => x === 0)) throw new Error('it gives all-zero vectors');
      this.#loaded = loaded;
      this.#dim = dim;
    } catch (err) {
      await model?.dispose().catch(() => undefined);
      await llama.dispose().catch(() => undefined);
      if (err instanceof NpcdError) throw err;
      throw embeddingError(this.name, `cannot embed with model file ${modelPath}: ${(err as Error).message}`, err);
    }
  }

  embed(texts: readonly string[], signal?: AbortSignal): Promise<Float32Array[]> {
    const loaded = this.#loaded;
    if (!loaded) return Promise.reject(notReady(this.name));
    return embedNonBlank(texts, this.#dim, (wanted) => this.#embedAll(loaded, wanted, this.#dim, signal));
  }

  async #embedAll({ model, context, maxTokens }: Loaded, texts: readonly string[], dim: number, signal: AbortSignal | undefined): Promise<Float32Array[]> {
    const out: Float32Array[] = [];
    for (const text of texts) {
      signal?.throwIfAborted();
      let embedding: LlamaEmbedding;
      try {
        const tokens = model.tokenize(text);
        embedding = await context.getEmbeddingFor(tokens.length > maxTokens ? tokens.slice(0, maxTokens) : tokens);
      } catch (err) {
        throw embeddingError(this.name, `llama.cpp failed: ${(err as Error).message}`, err);
      }
      try {
        out.push(unitVector(embedding.vector, dim, 'the vector'));
      } catch (err) {
        throw embeddingError(this.name, (err as Error).message, err);
      }
    }
    return out;
  }

  /** Frees the context, the model and the llama.cpp backend. */
  async close(): Promise<void> {
    const loaded = this.#loaded;
    if (!loaded) return;
    this.#loaded = undefined;
    await loaded.context.dispose();
    await loaded.model.dispose();
    await loaded.llama.dispose();
  }
}
