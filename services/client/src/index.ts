export { RECONNECT_OPTIONS, SocketBridgeClient, tokenAuthEngine, tokenTimes, type ClientOptions, type ClientStats, type SubscribeOptions } from './client.js';
export { ChannelOrder } from './ordering.js';
export type { Envelope, PresenceNotice, RecoverReply } from '@socketbridge/common/wire';
