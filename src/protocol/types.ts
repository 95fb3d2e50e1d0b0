/** Protocol v1 frame shapes (see docs/protocol.md). */

export const PROTOCOL_VERSION = 1;

// Client → server
export interface HelloFrame {
  t: 'hello';
  v: number;
  session?: string;
  resume?: number;
  token?: string;
  /** The client reads several MessagePack frames from one binary message. */
  batch?: boolean;
}
export interface ChatFrame {
  t: 'chat';
  id: string;
  character: string;
  text: string;
  /** W3C traceparent of the client's span (docs/tracing.md); an invalid one is ignored. */
  traceparent?: string;
  /** W3C tracestate going with it. */
  tracestate?: string;
}
export interface CancelFrame {
  t: 'cancel';
  id: string;
}
export interface PingFrame {
  t: 'ping';
  ts?: number;
}
export type ClientFrame = HelloFrame | ChatFrame | CancelFrame | PingFrame;
export type ClientFrameType = ClientFrame['t'];
export const CLIENT_FRAME_TYPES: readonly ClientFrameType[] = ['hello', 'chat', 'cancel', 'ping'];

export interface Usage {
  prompt_tokens: number;
  completion_tokens: number;
}

/** Why a reply ended: the model stopped, it hit the token limit, or it was cancelled. */
export type FinishReason = 'stop' | 'length' | 'cancelled';

// Server → client
export interface WelcomeFrame {
  t: 'welcome';
  session: string;
  seq: number;
  heartbeat_ms: number;
  resumed: boolean;
  /** Present (true) when the server will batch stream frames for this client. */
  batch?: boolean;
}
export interface StartFrame {
  t: 'start';
  seq: number;
  id: string;
  character: string;
  state: string;
}
export interface TokenFrame {
  t: 'token';
  seq: number;
  id: string;
  text: string;
}
export interface DoneFrame {
  t: 'done';
  seq: number;
  id: string;
  text: string;
  state: string;
  usage: Usage;
  finish: FinishReason;
}
export interface ErrorFrame {
  t: 'error';
  seq?: number;
  id?: string;
  code: string;
  message: string;
}
export interface PongFrame {
  t: 'pong';
  ts: number;
}

/** Frames that belong to a session's stream: they carry a seq and are kept for resume. */
export type StreamFrame = StartFrame | TokenFrame | DoneFrame | (ErrorFrame & { seq: number });
export type ServerFrame = WelcomeFrame | StartFrame | TokenFrame | DoneFrame | ErrorFrame | PongFrame;
export type ServerFrameType = ServerFrame['t'];
export const SERVER_FRAME_TYPES: readonly ServerFrameType[] = ['welcome', 'start', 'token', 'done', 'error', 'pong'];
