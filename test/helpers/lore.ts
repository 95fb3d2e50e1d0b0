/** Shared pieces of the lorebook tests: the fixtures and small accessors. */
import { readFileSync } from 'node:fs';
import { pathToFileURL } from 'node:url';
import { parseCard } from '../../src/characters/cards/card.js';
import type { Lorebook, ParseResult } from '../../src/lore/index.js';
import { sharedFixture } from './fixtures.js';

export const CARDS = pathToFileURL(sharedFixture('cards/'));
export const ELDORIA_TEXT = readFileSync(new URL('eldoria.lorebook.json', CARDS), 'utf8');

/** The card JSON of a PNG card, read by the card parser (src/characters/cards). */
export function readCardFromPng(file: URL): unknown {
  const { card } = parseCard(readFileSync(file));
  if (!card) throw new Error(`${file.pathname}: not a card`);
  return { spec: card.spec, spec_version: card.specVersion, data: card.data };
}

/** The parsed lorebook, or a thrown error listing the issues. */
export function book(r: ParseResult): Lorebook {
  if (!r.lorebook) throw new Error(`no lorebook: ${JSON.stringify(r.issues)}`);
  return r.lorebook;
}
