/**
 * Character Cards out: JSON text, or a PNG carrying the card twice — a `chara`
 * tEXt chunk (V2 JSON, for V2-only readers) and a `ccv3` tEXt chunk (V3 JSON),
 * both base64 of UTF-8, as the V3 spec describes. The card's data goes out as
 * it was imported: unknown keys and `extensions` included, so import → export
 * → import gives the same data. Pure: no I/O. See docs/cards.md.
 */
import { CARD_LIMITS, SPEC_VERSIONS, V1_FIELDS, V2_SPEC, V3_SPEC } from './card.js';
import { MAX_PNG_BYTES, minimalPng, writePngTexts } from './png.js';
import type { Card, JsonObject } from './types.js';

export type ExportSpec = typeof V2_SPEC | typeof V3_SPEC;

export interface ExportJsonOptions {
  /**
   * The spec to write. Default: the one the card came as — V3 for V3 cards,
   * V2 for V2 cards, and V2 for V1 cards (V1 has no place for extensions).
   */
  readonly spec?: ExportSpec;
  /** JSON.stringify indentation; default 2 (0 for one line). */
  readonly indent?: number;
}

/** The spec exportCardJson writes by default for a card. */
export function defaultExportSpec(card: Card): ExportSpec {
  return card.spec === V3_SPEC ? V3_SPEC : V2_SPEC;
}

/**
 * The card as a JSON document of `spec`. Top-level keys the card carried
 * besides spec/spec_version/data come first, as they were; among them the V1
 * mirror fields (name, description, … that SillyTavern writes beside `data`)
 * are refreshed from `data` so they cannot disagree with it. A V1 card gets
 * its six fields back at the top level, beside `data`.
 */
export function cardDocument(card: Card, spec: ExportSpec = defaultExportSpec(card)): JsonObject {
  const mirror: JsonObject = {};
  for (const key of V1_FIELDS) {
    if (card.spec === 'chara_card_v1' || Object.hasOwn(card.extra, key)) mirror[key] = card.data[key];
  }
  // Spread (not assignment) so that a key named "__proto__" stays a plain key.
  return {
    ...card.extra,
    ...mirror,
    spec,
    spec_version: card.spec === spec ? card.specVersion : SPEC_VERSIONS[spec],
    data: spec === V2_SPEC ? v2Data(card.data) : card.data,
  };
}

/**
 * The data as a V2 document carries it: without V3's group_only_greetings
 * when it is empty (reading fills it in as [] for every card; V2 has no
 * such field, so writing it would add one the card never had).
 */
function v2Data(data: Card['data']): JsonObject {
  if (data.group_only_greetings.length > 0) return data as JsonObject;
  const { group_only_greetings: _, ...rest } = data;
  return rest as JsonObject;
}

function serialise(card: Card, spec: ExportSpec, indent: number): string {
  const text = JSON.stringify(cardDocument(card, spec), null, indent);
  const bytes = Buffer.byteLength(text, 'utf8');
  // Export never writes what import would refuse.
  if (bytes > CARD_LIMITS.jsonBytes) throw new RangeError(`card JSON is ${bytes} bytes; the import limit is ${CARD_LIMITS.jsonBytes}`);
  return text;
}

/** The card as JSON text (see ExportJsonOptions for which spec). Throws RangeError above the import size limit. */
export function exportCardJson(card: Card, options: ExportJsonOptions = {}): string {
  const indent = options.indent ?? 2;
  if (!Number.isInteger(indent) || indent < 0 || indent > 10) throw new TypeError('options.indent must be an integer from 0 to 10');
  const spec = options.spec ?? defaultExportSpec(card);
  if (spec !== V2_SPEC && spec !== V3_SPEC) throw new TypeError(`options.spec must be "${V2_SPEC}" or "${V3_SPEC}"`);
  return serialise(card, spec, indent);
}

const CARD_KEYWORDS: ReadonlySet<string> = new Set(['chara', 'ccv3']);

/**
 * The card as a PNG: `basePng` (default: a 1×1 transparent image) with its
 * existing `chara`/`ccv3` text chunks (any case, tEXt/zTXt/iTXt) removed and
 * two tEXt chunks added before IEND: `chara` (V2 JSON) then `ccv3` (V3 JSON),
 * each base64 of compact UTF-8 JSON. Every other chunk of the base image is
 * copied unchanged. Throws TypeError when basePng is not a valid PNG, and
 * RangeError above the import size limits.
 */
export function exportCardPng(card: Card, basePng?: Uint8Array): Uint8Array {
  const texts = ([V2_SPEC, V3_SPEC] as const).map((spec) => ({
    keyword: spec === V2_SPEC ? 'chara' : 'ccv3',
    text: Buffer.from(serialise(card, spec, 0), 'utf8').toString('base64'),
  }));
  let png: Uint8Array;
  try {
    png = writePngTexts(basePng ?? minimalPng(), texts, (keyword) => CARD_KEYWORDS.has(keyword.toLowerCase()));
  } catch (err) {
    if (err instanceof TypeError && basePng) throw new TypeError(`basePng: ${err.message}`, { cause: err });
    throw err;
  }
  if (png.length > MAX_PNG_BYTES) throw new RangeError(`the PNG would be ${png.length} bytes; the import limit is ${MAX_PNG_BYTES}`);
  return png;
}
