/**
 * The one loader of npcd's native module (native/, Rust through N-API). It
 * returns the typed module or throws `Failed to load native binding` with
 * the reason as `cause`; callers decide whether to fall back to the pure-JS
 * implementations (msgpackr, hnswlib-node, JS flat search).
 */
import { existsSync } from 'node:fs';
import { createRequire } from 'node:module';
import { fileURLToPath } from 'node:url';

export type NativeModule = typeof import('../../native/index.js');
export type { DecodeTape, FrameTape } from '../../native/index.js';

/** Must equal `abiVersion` exported by the binary (native/src/lib.rs). */
export const NATIVE_ABI_VERSION = 1;

const require = createRequire(import.meta.url);
const NATIVE_DIR = fileURLToPath(new URL('../../native/', import.meta.url));

/** The platform suffix @napi-rs/cli gives the binary, e.g. `linux-x64-gnu`. */
export function platformTriple(): string {
  const { platform, arch } = process;
  if (platform !== 'linux') return `${platform}-${arch}`;
  const report = process.report?.getReport() as { header?: { glibcVersionRuntime?: string } } | undefined;
  return `${platform}-${arch}-${report?.header?.glibcVersionRuntime ? 'gnu' : 'musl'}`;
}

/** Where the binary is looked for: NPCD_NATIVE_PATH, else native/npcd-native.<triple>.node. */
export function nativePath(): string {
  return process.env.NPCD_NATIVE_PATH || `${NATIVE_DIR}npcd-native.${platformTriple()}.node`;
}

let cached: { module: NativeModule } | { error: Error } | undefined;

/** The native module; throws `Error('Failed to load native binding', { cause })` (code ERR_NATIVE_LOAD). */
export function loadNative(): NativeModule {
  cached ??= tryLoad();
  if ('error' in cached) throw cached.error;
  return cached.module;
}

function tryLoad(): { module: NativeModule } | { error: Error } {
  try {
    return { module: loadNativeFrom(nativePath()) };
  } catch (error) {
    return { error: error as Error };
  }
}

/** Loads the binary at `path` without caching; throws as `loadNative` does. */
export function loadNativeFrom(path: string): NativeModule {
  try {
    if (!existsSync(path)) throw new Error(`${path} does not exist; build it with npm run build:native`);
    const module = require(path) as NativeModule;
    if (module.abiVersion !== NATIVE_ABI_VERSION) {
      throw new Error(`${path} has ABI version ${String(module.abiVersion)}, this build needs ${NATIVE_ABI_VERSION}; rebuild with npm run build:native`);
    }
    return module;
  } catch (cause) {
    const error = new Error('Failed to load native binding', { cause }) as Error & { code: string };
    error.code = 'ERR_NATIVE_LOAD';
    throw error;
  }
}

/** Undefined when the native module loads, else why not. */
export function nativeLoadError(): Error | undefined {
  try {
    loadNative();
    return undefined;
  } catch (err) {
    return err as Error;
  }
}

/** The load failure's reason, for logs: "Failed to load native binding: <cause>". */
export function describeLoadError(err: unknown): string {
  const e = err as Error;
  const cause = e.cause instanceof Error ? e.cause.message : e.cause === undefined ? '' : String(e.cause);
  return cause ? `${e.message}: ${cause}` : e.message;
}
