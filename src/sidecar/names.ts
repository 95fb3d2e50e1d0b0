/**
 * The sidecar's metric names and label values, shared by the exporter
 * (sidecar.ts) and the advisor that reads them back (advise.ts).
 */

export const SIDECAR_METRIC = {
  srtt: 'npcd_tcp_srtt_seconds',
  connectDuration: 'npcd_tcp_connect_duration_seconds',
  connectFailures: 'npcd_tcp_connect_failures_total',
  handshakeRtt: 'npcd_tcp_handshake_rtt_seconds',
  retransmits: 'npcd_tcp_retransmits_total',
  retransmitErrors: 'npcd_tcp_retransmit_errors_total',
  synackRetransmits: 'npcd_tcp_synack_retransmits_total',
  programUp: 'npcd_sidecar_program_up',
  programRestarts: 'npcd_sidecar_program_restarts_total',
  outputErrors: 'npcd_sidecar_output_errors_total',
  lostEvents: 'npcd_sidecar_lost_events_total',
  advice: 'npcd_tcp_advice',
} as const;

/** The `direction` label: npcd is the server (inbound) or the client (outbound) of the connection. */
export type Direction = 'inbound' | 'outbound';
