/**
 * Piscina worker: parses and validates character files off the event loop.
 * A hostile file (an alias bomb, deep nesting, megabytes of text) costs this
 * worker's time and memory, bounded by the pool's task timeout and resource
 * limits, never the server's event loop.
 */
import { join } from 'node:path';
import { cardFileName, loadCard } from './cards/convert.js';
import type { Card } from './cards/types.js';
import { readReferencedFile } from './registry.js';
import { parseCharacterScript } from './script.js';
import { type CharacterData, toCharacterData } from './transfer.js';
import type { CharacterIssue } from './types.js';

export type ParseTask = (
  | { readonly kind: 'script'; readonly file: string; readonly text: string }
  /**
   * A Character Card: JSON text or PNG bytes. With `importInto`, the card
   * is being imported into that folder and names its own file there.
   */
  | { readonly kind: 'card'; readonly file: string; readonly bytes: Uint8Array; readonly importInto?: string }
) & {
  /**
   * Shared with the pool: the worker stores the time (Date.now()) it takes
   * the task up, so the deadline counts the parse, not the wait in the queue
   * or a new worker's start-up.
   */
  readonly startedAt?: BigInt64Array;
};

export interface ParseTaskResult {
  readonly character?: CharacterData;
  readonly issues: readonly CharacterIssue[];
  /** Problems that do not stop the character loading. */
  readonly warnings?: readonly CharacterIssue[];
  /** The card as imported (kept for export), for card tasks. */
  readonly card?: Card;
  /** For an import, the file the card names. */
  readonly file?: string;
  /** How long the task ran in this worker (queue wait excluded), for npcd_worker_task_duration_seconds. */
  readonly runMs?: number;
}

export default function parse(task: ParseTask): ParseTaskResult {
  if (task.startedAt) Atomics.store(task.startedAt, 0, BigInt(Date.now()));
  const started = performance.now();
  const result = parseTask(task);
  return { ...result, runMs: performance.now() - started };
}

function parseTask(task: ParseTask): ParseTaskResult {
  switch (task.kind) {
    case 'script': {
      const { character, issues, warnings } = parseCharacterScript(task.text, task.file, { readFile: readReferencedFile });
      return character ? { character: toCharacterData(character), issues, warnings } : { issues, warnings };
    }
    case 'card': {
      const dir = task.importInto;
      const ext = task.bytes[0] === 0x89 ? 'png' : 'json';
      const loaded = loadCard(task.bytes, task.file, dir === undefined ? undefined : (card) => join(dir, cardFileName(card, ext)));
      return loaded.character && loaded.card
        ? { character: toCharacterData(loaded.character), issues: [], warnings: loaded.warnings, card: loaded.card, file: loaded.file }
        : { issues: loaded.issues, warnings: loaded.warnings };
    }
    default:
      return { issues: [{ file: String((task as ParseTask).file), line: 1, column: 1, message: `unknown parse task ${JSON.stringify((task as { kind: unknown }).kind)}` }] };
  }
}
