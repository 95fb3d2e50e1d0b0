/**
 * Hot reload: watches the characters folder and re-parses a file when it
 * (or a lorebook JSON file in the folder it uses) changes (in the worker pool), swapping the new version in with one
 * registry update. A file that fails keeps its last good version serving;
 * the problem is logged with file:line:column, counted, and shown by
 * GET /v1/characters/:id. New files appear and deleted files disappear
 * without a restart.
 */
import { basename } from 'node:path';
import chokidar, { type FSWatcher } from 'chokidar';
import type { Logger } from '../log.js';
import type { ParsePool } from './parse-pool.js';
import { CHARACTER_FILE_RE, type CharacterRegistry, isCharacterFile, readCharacterFile } from './registry.js';
import { formatIssue } from './script.js';

export type ReloadResult = 'loaded' | 'failed' | 'removed';

export interface WatcherOptions {
  readonly registry: CharacterRegistry;
  readonly pool: ParsePool;
  readonly logger: Logger;
  /** Called after each reload (metrics, tests). */
  readonly onReload?: (file: string, result: ReloadResult) => void;
}

export class CharacterWatcher {
  private watcher: FSWatcher | undefined;
  /** Files being reloaded; a change meanwhile asks for one more pass. */
  private readonly busy = new Map<string, { again: boolean }>();
  private readonly log: Logger;
  private closed = false;

  constructor(private readonly options: WatcherOptions) {
    this.log = options.logger.child({ subsystem: 'characters' });
  }

  /** Starts watching `dir`; resolves once the watcher is ready. */
  start(dir: string): Promise<void> {
    const watcher = chokidar.watch(dir, {
      ignoreInitial: true,
      depth: 0,
      // Editors and deploy tools write in steps; wait until the size settles.
      awaitWriteFinish: { stabilityThreshold: 40, pollInterval: 10 },
    });
    this.watcher = watcher;
    const onFile = (file: string) => {
      if (/\.json$/i.test(file)) this.lorebookChanged(file);
      if (isCharacterFile(file) || this.options.registry.bySource(file) || this.options.registry.failures.has(file)) this.reload(file);
    };
    watcher.on('add', onFile).on('change', onFile).on('unlink', (file) => {
      if (CHARACTER_FILE_RE.test(basename(file))) this.remove(file);
      if (/\.json$/i.test(file)) this.lorebookChanged(file);
    });
    watcher.on('error', (err) => this.log.error({ err }, 'character folder watcher failed'));
    return new Promise((resolve) => watcher.once('ready', () => resolve()));
  }

  /** Re-parses `file` and applies it; changes during a reload cause one more. */
  reload(file: string): void {
    const running = this.busy.get(file);
    if (running) {
      running.again = true;
      return;
    }
    const state = { again: false };
    this.busy.set(file, state);
    void (async () => {
      do {
        state.again = false;
        const outcome = await this.options.pool.parseRead(file, readCharacterFile(file));
        if (this.closed) break;
        const previous = this.options.registry.bySource(file);
        const result = this.options.registry.apply(file, outcome);
        for (const w of result.warnings) this.log.warn({ file: w.file, line: w.line, column: w.column }, `character warning: ${formatIssue(w)}`);
        if (result.character) {
          this.log.info({ file, id: result.character.id, replaced: previous !== undefined }, `character ${result.character.id} ${previous ? 'reloaded' : 'added'}`);
          this.options.onReload?.(file, 'loaded');
        } else {
          for (const issue of result.issues) {
            this.log.error({ file: issue.file, line: issue.line, column: issue.column }, `character not reloaded${previous ? `; ${previous.id} keeps its last good version` : ''}: ${formatIssue(issue)}`);
          }
          this.options.onReload?.(file, 'failed');
        }
      } while (state.again && !this.closed);
      this.busy.delete(file);
    })().catch((err: unknown) => {
      this.busy.delete(file);
      this.log.error({ err, file }, 'character reload failed');
    });
  }

  /**
   * A JSON file in the folder changed: the scripts built from it (their
   * `lorebooks`) are parsed again, and so are the files that failed (one may
   * have been waiting for it).
   */
  private lorebookChanged(file: string): void {
    const { registry } = this.options;
    const scripts = new Set(registry.list().filter((c) => c.lorebookFiles.includes(file)).map((c) => c.source));
    for (const failed of registry.failures.keys()) if (/\.ya?ml$/i.test(failed)) scripts.add(failed);
    for (const script of scripts) this.reload(script);
  }

  /**
   * A file went away. Files that failed are parsed again: one may have been
   * refused for the id or name this file held (a rename reports the new name
   * before the old one is gone, so the new file was refused as a duplicate).
   */
  private remove(file: string): void {
    const { registry } = this.options;
    const id = registry.deleteSource(file);
    this.log.info({ file, id }, id ? `character ${id} removed` : 'character file removed');
    this.options.onReload?.(file, 'removed');
    for (const failed of [...registry.failures.keys()]) if (failed !== file && CHARACTER_FILE_RE.test(basename(failed))) this.reload(failed);
  }

  async close(): Promise<void> {
    this.closed = true;
    await this.watcher?.close();
  }
}
