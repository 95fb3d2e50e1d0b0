/**
 * The OpenTelemetry SDK part of tracing: imported by tracing.ts only when an
 * OTLP endpoint is configured, so that a server without one loads none of it.
 * The provider is kept local (not registered as the global one): npcd starts
 * its spans from this tracer with explicit contexts.
 */
import { diag, DiagLogLevel } from '@opentelemetry/api';
import { OTLPTraceExporter } from '@opentelemetry/exporter-trace-otlp-http';
import { resourceFromAttributes } from '@opentelemetry/resources';
import { BasicTracerProvider, BatchSpanProcessor, ParentBasedSampler, TraceIdRatioBasedSampler } from '@opentelemetry/sdk-trace-base';
import { sdkState, type Tracing, type TracingOptions, tracesUrl } from './tracing.js';

sdkState.loaded = true;

/** How long the batch processor waits for one export before giving it up. */
const EXPORT_TIMEOUT_MS = 30_000;

export function startSdk(options: TracingOptions & { readonly endpoint: string }): Tracing {
  const log = options.logger?.child({ subsystem: 'tracing' });
  const url = tracesUrl(options.endpoint);
  // OTLP/HTTP with JSON bodies. Only the URL is set here: OTEL_EXPORTER_OTLP_HEADERS,
  // OTEL_EXPORTER_OTLP_TIMEOUT (default 10 s) and friends still apply (the exporter reads them).
  const exporter = new OTLPTraceExporter({ url });
  const provider = new BasicTracerProvider({
    resource: resourceFromAttributes({
      'service.name': process.env.OTEL_SERVICE_NAME || 'npcd',
      ...(options.serviceVersion !== undefined && { 'service.version': options.serviceVersion }),
    }),
    // A client's sampled flag decides for its trace; new traces are sampled at the ratio.
    sampler: new ParentBasedSampler({ root: new TraceIdRatioBasedSampler(options.sampleRatio) }),
    spanProcessors: [new BatchSpanProcessor(exporter, { scheduledDelayMillis: 1000, maxQueueSize: 4096, maxExportBatchSize: 512, exportTimeoutMillis: EXPORT_TIMEOUT_MS })],
  });
  // Failed exports (collector down, refused) are reported through OpenTelemetry's diag logger: into ours, as warnings.
  if (log) {
    const warn = (message: string, ...args: unknown[]) => log.warn({ detail: args.map(String).join(' ').slice(0, 500) || undefined }, `tracing: ${message}`);
    const ignore = () => {};
    diag.setLogger({ error: warn, warn, info: ignore, debug: ignore, verbose: ignore }, { logLevel: DiagLogLevel.WARN, suppressOverrideMessage: true });
  }
  log?.info({ url, sampleRatio: options.sampleRatio }, `tracing: exporting spans to ${url}`);
  let stopped = false;
  return {
    enabled: true,
    tracer: provider.getTracer('npcd', options.serviceVersion),
    flush: () => provider.forceFlush(),
    shutdown: async () => {
      if (stopped) return;
      stopped = true;
      await provider.shutdown().catch((err: unknown) => log?.warn({ err }, 'tracing: could not export the last spans'));
    },
  };
}
