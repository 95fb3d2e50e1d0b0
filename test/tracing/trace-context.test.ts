/** W3C traceparent / tracestate parsing (pure): what is accepted, and everything ignored. */
import t from 'tap';
import { formatTraceparent, parseTraceparent, parseTracestate, traceHeaders } from '../../src/tracing/trace-context.js';
import { tracesUrl } from '../../src/tracing/tracing.js';

const TRACE = '4bf92f3577b34da6a3ce929d0e0e4736';
const PARENT = '00f067aa0ba902b7';
const VALID = `00-${TRACE}-${PARENT}-01`;

t.test('a valid traceparent parses into its fields', async (t) => {
  t.same(parseTraceparent(VALID), { version: '00', traceId: TRACE, parentId: PARENT, flags: 1 });
  t.same(parseTraceparent(`  ${VALID}\t`), { version: '00', traceId: TRACE, parentId: PARENT, flags: 1 }, 'surrounding whitespace');
  t.equal(parseTraceparent(`00-${TRACE}-${PARENT}-00`)?.flags, 0, 'not sampled');
  t.same(parseTraceparent(`cc-${TRACE}-${PARENT}-01-what-the-future-holds`)?.traceId, TRACE, 'a later version may append fields');
  t.equal(formatTraceparent(TRACE, PARENT, 1), VALID);
});

t.test('an invalid traceparent is ignored', async (t) => {
  const bad = [
    undefined,
    '',
    'garbage',
    `00-${TRACE}-${PARENT}-1`,
    `00-${TRACE}-${PARENT}`,
    `00-${TRACE.toUpperCase()}-${PARENT}-01`,
    `00-${'0'.repeat(32)}-${PARENT}-01`,
    `00-${TRACE}-${'0'.repeat(16)}-01`,
    `ff-${TRACE}-${PARENT}-01`,
    `00-${TRACE}-${PARENT}-01-extra`,
    `0-${TRACE}-${PARENT}-01`,
    `00-${TRACE}x-${PARENT}-01`,
    `00_${TRACE}_${PARENT}_01`,
    `cc-${TRACE}-${PARENT}-01x`,
    `cc-${TRACE}-${PARENT}-01-${'x'.repeat(300)}`,
  ];
  for (const v of bad) t.equal(parseTraceparent(v), undefined, JSON.stringify(v));
  t.equal(traceHeaders('nope', 'a=b'), undefined, 'no tracestate without a traceparent');
});

t.test('tracestate: valid lists are kept (normalised), anything invalid dropped', async (t) => {
  t.equal(parseTracestate('congo=t61rcWkgMzE,rojo=00f067aa0ba902b7'), 'congo=t61rcWkgMzE,rojo=00f067aa0ba902b7');
  t.equal(parseTracestate(' congo=t61rcWkgMzE , ,rojo=1 '), 'congo=t61rcWkgMzE,rojo=1', 'spaces and empty members');
  t.equal(parseTracestate('tenant@vendor=v'), 'tenant@vendor=v', 'multi-tenant key');
  for (const v of ['', 'novalue', 'UPPER=1', 'a=b,a=c', 'a=b=c', 'a= ', `a=${'x'.repeat(600)}`, Array.from({ length: 33 }, (_, i) => `k${i}=v`).join(',')]) {
    t.equal(parseTracestate(v), undefined, JSON.stringify(v.slice(0, 40)));
  }
  t.same(traceHeaders(VALID, 'congo=1'), { traceparent: VALID, tracestate: 'congo=1' });
  t.same(traceHeaders(VALID, 'BAD'), { traceparent: VALID }, 'a bad tracestate alone is dropped');
});

t.test('the OTLP traces URL', async (t) => {
  t.equal(tracesUrl('http://127.0.0.1:4318'), 'http://127.0.0.1:4318/v1/traces');
  t.equal(tracesUrl('http://collector:4318/'), 'http://collector:4318/v1/traces');
  t.equal(tracesUrl('https://otel.example/v1/traces'), 'https://otel.example/v1/traces');
});
