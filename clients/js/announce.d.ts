// TypeScript declarations of announce.js, the browser client of announce.
// As a module: import announce from "/announce.mjs"; as a script: the global announce.

export as namespace announce;

/** A message of a channel, as the server stores it. */
export interface Message {
  /** Grows by exactly 1 per message on its channel. */
  id: number;
  channel: string;
  content: string;
  /** When the server accepted it (RFC 3339, UTC). */
  time: string;
  /** On the message that ends another one's TTL: that message's id (content is ""). */
  expired?: number;
}

export type Transport = "websocket" | "eventsource" | "longpoll";
export type State = "connecting" | "live" | "reconnecting" | "closed";

export interface StateDetail {
  state: State;
  transport: Transport | null;
}

/** History no longer reached back to the cursor: messages after since up to first were lost. */
export interface TruncatedDetail {
  since: number;
  first: number;
}

export interface ErrorDetail {
  error: string;
  status?: number;
}

export interface SubscribeOptions {
  /** The order to try, default ["websocket", "eventsource", "longpoll"]. */
  transports?: Transport[];
  /** Resume after this id; without it, start from the current message. */
  since?: number;
  /** A token for a private channel. */
  token?: string;
  /** Called for a token before connecting, on 401, and when the token is about to expire. */
  getToken?: () => Promise<string> | string;
  /** The presence name (?name=). */
  name?: string;
  /** Send cookies cross-origin (EventSource, XMLHttpRequest). */
  withCredentials?: boolean;
  /** One connection per browser for all tabs of this origin (Web Locks + BroadcastChannel). */
  shared?: boolean;
  /** Milliseconds to connect, and for a stream to deliver what the log has (10000). */
  timeout?: number;
  /** Seconds a long-poll waits on the server (25; the server caps it). */
  pollWait?: number;
  /** Long-poll with JSONP (chosen by itself for a cross-origin page without CORS). */
  jsonp?: boolean;
}

export interface SubscriptionEventMap {
  message: CustomEvent<Message>;
  state: CustomEvent<StateDetail>;
  truncated: CustomEvent<TruncatedDetail>;
  error: CustomEvent<ErrorDetail>;
}

export interface Subscription extends EventTarget {
  /** The id of the last message delivered (null before the first answer). */
  readonly lastId: number | null;
  readonly transport: Transport | null;
  readonly state: State;
  close(): void;
  addEventListener<K extends keyof SubscriptionEventMap>(type: K, listener: (ev: SubscriptionEventMap[K]) => void, options?: boolean | AddEventListenerOptions): void;
  addEventListener(type: string, listener: EventListenerOrEventListenerObject | null, options?: boolean | AddEventListenerOptions): void;
  removeEventListener<K extends keyof SubscriptionEventMap>(type: K, listener: (ev: SubscriptionEventMap[K]) => void, options?: boolean | EventListenerOptions): void;
  removeEventListener(type: string, listener: EventListenerOrEventListenerObject | null, options?: boolean | EventListenerOptions): void;
}

export interface PublishOptions {
  /** The publish key (Authorization: Bearer). */
  key?: string;
  /** A token granting publishing. */
  token?: string;
  /** Sent as Idempotency-Key on every attempt; a random one when absent. */
  idempotencyKey?: string;
  /** Attempts after a network failure, 429 or 5xx (5). */
  retries?: number;
  /** Milliseconds one attempt may take (30000). */
  timeout?: number;
  withCredentials?: boolean;
}

/** A refused publish: the server's error and status (0: the network). */
export interface PublishError extends Error {
  status: number;
}

/** Observe channelURL (like https://host/channels/ops). */
export function subscribe(channelURL: string, options?: SubscribeOptions): Subscription;

/** Publish content; resolves to the stored message. */
export function publish(channelURL: string, content: string, options?: PublishOptions): Promise<Message>;

declare const announce: {
  subscribe: typeof subscribe;
  publish: typeof publish;
};
export default announce;
