/**
 * Piscina worker: parses and validates character files off the event loop.
 * A hostile file (an alias bomb, deep nesting, megabytes of text) costs this
 * worker's time and memory, bounded by the pool's task timeout and resource
 * limits, never the server's event loop.
 */
import { loadCard } from './cards/convert.js';
import type { Card } from './cards/types.js';
import { readReferencedFile } from './registry.js';
import { parseCharacterScript } from './script.js';
import { type CharacterData, toCharacterData } from './transfer.js';
import type { CharacterIssue } from './types.js';

export type ParseTask =
  | { readonly kind: 'script'; readonly file: string; readonly text: string }
  /** A Character Card: JSON text or PNG bytes. */
  | { readonly kind: 'card'; readonly file: string; readonly bytes: Uint8Array };

export interface ParseTaskResult {
  readonly character?: CharacterData;
  readonly issues: readonly CharacterIssue[];
  /** The card as imported (kept for export), for card tasks. */
  readonly card?: Card;
}

export default function parse(task: ParseTask): ParseTaskResult {
  switch (task.kind) {
    case 'script': {
      const { character, issues } = parseCharacterScript(task.text, task.file, { readFile: readReferencedFile });
      return character ? { character: toCharacterData(character), issues } : { issues };
    }
    case 'card': {
      const loaded = loadCard(task.bytes, task.file);
      return loaded.character && loaded.card ? { character: toCharacterData(loaded.character), issues: [], card: loaded.card } : { issues: loaded.issues };
    }
    default:
      return { issues: [{ file: String((task as ParseTask).file), line: 1, column: 1, message: `unknown parse task ${JSON.stringify((task as { kind: unknown }).kind)}` }] };
  }
}
