/**
 * Runs a synchronous chunk decoder over a streamed body as an async
 * generator: each chunk's results are yielded in order, and a decoder that
 * throws has the results it completed before the bad input yielded first.
 */
export async function* decodeChunks<T>(
  body: AsyncIterable<Uint8Array>,
  push: (chunk: Uint8Array, out: T[]) => void,
  end?: (out: T[]) => void,
  /** Checked after each chunk: true stops reading (the body is given up). */
  stop?: () => boolean,
): AsyncGenerator<T, void, void> {
  const out: T[] = [];
  function* step(run: () => void): Generator<T, void, void> {
    let failure: unknown;
    try {
      run();
    } catch (err) {
      failure = err;
    }
    yield* out;
    empty(out);
    if (failure !== undefined) throw failure;
  }
  for await (const chunk of body) {
    yield* step(() => push(chunk, out));
    if (stop?.()) return;
  }
  if (end) yield* step(() => end(out));
}

/**
 * Empties an array that is refilled for every chunk, keeping its storage:
 * `length = 0` makes V8 free the backing store, and the next push allocate
 * a new one, once per chunk.
 */
export function empty(array: unknown[]): void {
  while (array.length > 0) array.pop();
}

/** `chunk` as a Buffer over the same memory (no copy): the readers compare and decode with Buffer's methods. */
export function asBuffer(chunk: Uint8Array): Buffer {
  return Buffer.isBuffer(chunk) ? chunk : Buffer.from(chunk.buffer, chunk.byteOffset, chunk.byteLength);
}
