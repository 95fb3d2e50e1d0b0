/** The process metrics every npcd registry exports (the server's and the sidecar's). */
import { collectDefaultMetrics, type Registry } from 'prom-client';

/**
 * prom-client's default gauges whose names end in _total, which Prometheus
 * reserves for counters (`promtool check metrics` fails on them). The same
 * counts stay, by type, in nodejs_active_handles, nodejs_active_requests and
 * nodejs_active_resources.
 */
const MISNAMED_DEFAULT_GAUGES = ['nodejs_active_handles_total', 'nodejs_active_requests_total', 'nodejs_active_resources_total'];

/** prom-client's process, event-loop lag and GC metrics, without the gauges named like counters. */
export function collectProcessMetrics(registry: Registry): void {
  collectDefaultMetrics({ register: registry });
  for (const name of MISNAMED_DEFAULT_GAUGES) registry.removeSingleMetric(name);
}
