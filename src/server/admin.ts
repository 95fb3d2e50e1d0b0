/**
 * Admin routes (enabled by --admin-keys, "Authorization: Bearer KEY"):
 * importing a Character Card into the characters folder, and exporting any
 * character as a card (JSON, or PNG with both `chara` and `ccv3` chunks).
 */
import { existsSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { basename, dirname, join } from 'node:path';
import { exportCardJson, exportCardPng } from '../characters/cards/export.js';
import type { Card } from '../characters/cards/types.js';
import type { ParsePool } from '../characters/parse-pool.js';
import type { CharacterRegistry } from '../characters/registry.js';
import { formatIssue } from '../characters/script.js';
import type { Character } from '../characters/types.js';
import { NpcdError } from '../errors.js';
import { checkApiKey, bearerToken } from './auth.js';
import type { HttpExchange } from './http.js';

export interface AdminDeps {
  readonly adminKeys: readonly string[];
  readonly registry: CharacterRegistry;
  readonly pool: ParsePool | undefined;
  /** The characters folder imported cards are written to (undefined: no folder). */
  readonly charactersDir: string | undefined;
  readonly maxCardBytes: number;
}

/** Throws unless the request carries an admin key (and admin routes are on). */
export function requireAdmin(x: HttpExchange, keys: readonly string[]): void {
  if (keys.length === 0) throw new NpcdError('ERR_ADMIN_DISABLED', 'admin routes are off; start npcd with --admin-keys');
  const problem = checkApiKey(keys, bearerToken(x.headers.authorization ?? ''));
  if (problem) throw problem;
}

/** POST /v1/admin/characters: a card (JSON or PNG body) becomes a file in the characters folder and a character. */
export async function importCard(x: HttpExchange, deps: AdminDeps): Promise<void> {
  requireAdmin(x, deps.adminKeys);
  if (!deps.pool || !deps.charactersDir) throw new NpcdError('ERR_ADMIN_DISABLED', 'this server has no characters folder to import into');
  const body = await x.readBody(deps.maxCardBytes);
  // One parse (in the pool): the card names the file it will be, and its
  // character's id follows from that name.
  const outcome = await deps.pool.importCard(deps.charactersDir, body);
  if (!outcome.character || !outcome.card || !outcome.file) {
    throw new NpcdError('ERR_CARD_INVALID', `the card does not import: ${outcome.issues.map((i) => formatIssue(i).replace(/^[^:]*:/, '')).slice(0, 10).join('; ')}`);
  }
  const file = outcome.file;
  const { registry } = deps;
  const incoming = outcome.character;
  // The same card imported before (same id and name, from a card file in this folder) is replaced, in either format.
  const sameCard = (c: Character | undefined): boolean =>
    !!c && c.id === incoming.id && c.name.toLowerCase() === incoming.name.toLowerCase() && registry.cards.has(c.source) && dirname(c.source) === dirname(file);
  // Whatever is at the card's file name already (a lorebook, another card whose name gives the same id, a file that failed to load) stays.
  const there = registry.bySource(file);
  if (existsSync(file) && !sameCard(there)) {
    throw new NpcdError('ERR_CARD_CONFLICT', `${basename(file)} already exists in the characters folder${there ? ` and holds character ${there.id} (${there.name})` : ''}; remove it first or import a card with another name`);
  }
  const other = registry.get(incoming.id) ?? registry.get(incoming.name);
  const replaces = other && other.source !== file && sameCard(other) ? other.source : undefined;
  if (other && other.source !== file && !replaces) {
    throw new NpcdError('ERR_CARD_CONFLICT', `character ${other.id} (${other.name}) already comes from another file; remove it first or import a card with another name`);
  }
  writeFileSync(file, body);
  if (replaces) {
    registry.deleteSource(replaces);
    rmSync(replaces, { force: true });
  }
  const applied = registry.apply(file, outcome);
  if (!applied.character) throw new NpcdError('ERR_CARD_INVALID', applied.issues.map((i) => i.message).join('; '));
  x.json(201, {
    id: applied.character.id,
    name: applied.character.name,
    file: basename(file),
    lorebook_entries: applied.character.lorebooks.reduce((n, b) => n + b.entries.length, 0),
    // What the card has that npcd read anyway (an unknown spec_version, a lorebook entry that can never activate).
    warnings: applied.warnings.map((w) => w.message),
  });
}

/** GET /v1/admin/characters/:id/card?format=json|png */
export function exportCard(x: HttpExchange, deps: AdminDeps, ref: string): void {
  requireAdmin(x, deps.adminKeys);
  const c = deps.registry.require(ref);
  const format = new URLSearchParams(x.query).get('format') ?? 'json';
  if (format !== 'json' && format !== 'png') throw new NpcdError('ERR_PROTOCOL_INVALID_FIELD', 'format must be json or png');
  const card = deps.registry.cards.get(c.source) ?? cardOf(c);
  const disposition = { 'Content-Disposition': `attachment; filename="${c.id}.${format}"` };
  if (format === 'json') return x.send(200, 'application/json; charset=utf-8', exportCardJson(card), disposition);
  // A card imported from a PNG keeps its image.
  const base = /\.png$/i.test(c.source) && existsSync(c.source) ? readFileSync(c.source) : undefined;
  x.send(200, 'image/png', pngOf(card, base), disposition);
}

/** The card as a PNG on its image; on the default image when the file is no longer a valid PNG (it failed to reload: the last good version serves). */
function pngOf(card: Card, base: Uint8Array | undefined): Uint8Array {
  try {
    return exportCardPng(card, base);
  } catch (err) {
    if (err instanceof TypeError && base) return pngOf(card, undefined);
    if (err instanceof RangeError) throw new NpcdError('ERR_CARD_INVALID', `the card does not fit in a PNG card (${err.message}); export it as JSON`);
    throw err;
  }
}

/** A V3 card for a character defined by a script (its persona travels in extensions.npcd). */
function cardOf(c: Character): Card {
  const examples = c.examples.map((e) => `<START>\n{{char}}: ${e}`).join('\n');
  return {
    spec: 'chara_card_v3',
    specVersion: '3.0',
    data: {
      name: c.name,
      description: c.description,
      personality: '',
      scenario: '',
      first_mes: c.greeting,
      mes_example: examples,
      creator_notes: '',
      system_prompt: c.systemPrompt,
      post_history_instructions: '',
      alternate_greetings: [],
      tags: [],
      creator: '',
      character_version: '',
      extensions: { npcd: { id: c.id, persona: c.persona, user_name: c.userName } },
      group_only_greetings: [],
    },
    extra: {},
  };
}
