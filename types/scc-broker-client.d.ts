// The parts of scc-broker-client 9.x we use; the package ships no types.
declare module 'scc-broker-client' {
  import type { AGClientSocket } from 'socketcluster-client';

  export interface ClientPool {
    selectClient(channel: string): AGClientSocket;
    clients: AGClientSocket[];
    targetURI: string;
    subscribe(channel: string): unknown;
    unsubscribe(channel: string): void;
    closeChannel(channel: string): void;
    isSubscribed(channel: string, includePending?: boolean): boolean;
    subscriptions(includePending?: boolean): string[];
    invokePublish(channel: string, data: unknown): Promise<void>;
    destroy(): void;
  }

  export interface ClusterBrokerClient {
    broker: LocalBroker;
    isReady: boolean;
    sccBrokerURIList: string[];
    sccBrokerClientPools: Record<string, ClientPool>;
    setBrokers(uris: string[]): void;
    subscribe(channel: string): void;
    unsubscribe(channel: string): void;
    invokePublish(channel: string, data: unknown): void;
    mapChannelNameToBrokerURI(channel: string): string;
    listener(event: 'error'): AsyncIterable<{ error: Error }>;
    listener(event: 'updateBrokers'): AsyncIterable<{ brokerURIs: string[] }>;
    listener(event: 'updateWorkers'): AsyncIterable<{ workerURIs: string[]; sourceWorkerURI: string }>;
    listener(event: 'subscribeFail' | 'publishFail'): AsyncIterable<{ targetURI: string; channel: string; error: Error }>;
    listener(event: 'message'): AsyncIterable<{ channel: string; packet: unknown }>;
    listener(event: string): AsyncIterable<unknown>;
  }

  export interface AttachOptions {
    instanceId: string;
    instancePort: number;
    instanceIp?: string | null;
    instanceIpFamily?: 'IPv4' | 'IPv6';
    stateServerHost: string;
    stateServerPort?: number;
    authKey?: string | null;
    stateServerConnectTimeout?: number;
    stateServerAckTimeout?: number;
    stateServerReconnectRandomness?: number;
    brokerRetryDelay?: number;
    clientPoolSize?: number;
    pubSubBatchDuration?: number | null;
    mappingEngine?: 'skeletonRendezvous' | 'simple';
  }

  export function attach(broker: LocalBroker, options: AttachOptions): ClusterBrokerClient;
  /** socketcluster-server's brokerEngine or a bare ag-simple-broker. */
  export interface LocalBroker {
    subscriptions(): string[];
    invokePublish(channel: string, data: unknown, suppressEvent?: boolean): unknown;
  }
}

declare module 'skeleton-rendezvous' {
  export default class SkeletonRendezvousHasher {
    constructor(options?: { sites?: string[] });
    setSites(sites: string[]): void;
    getSites(): string[];
    findSite(key: string): string;
  }
}
