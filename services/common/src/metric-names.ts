/**
 * Every SocketBridge metric, its help text and its labels, in one place (docs/metrics.md lists them).
 * Base units, `socketbridge_` prefix, and never a per-channel or per-client label.
 */
export const metricDefs = {
  clusterBrokers: { name: 'socketbridge_cluster_brokers', help: 'Broker shards in the cluster as this process sees it.' },
  clusterWorkers: { name: 'socketbridge_cluster_workers', help: 'Workers in the cluster as this process sees it.' },
  clusterSnapshots: {
    name: 'socketbridge_cluster_snapshots_total',
    help: 'Cluster membership snapshots pushed to workers, by kind.',
    labelNames: ['kind'] as const,
  },
  clusterRefusals: {
    name: 'socketbridge_cluster_refusals_total',
    help: 'Cluster members refused by the state server, by reason.',
    labelNames: ['reason'] as const,
  },
  clusterRemaps: {
    name: 'socketbridge_cluster_remaps_total',
    help: 'Broker set changes this process applied to its channel mapping.',
  },
  brokerConnections: { name: 'socketbridge_broker_connections', help: 'Sockets (workers, publishers) connected to this broker shard.' },
  brokerSubscriptions: { name: 'socketbridge_broker_subscriptions', help: 'Channels with at least one subscriber on this broker shard.' },
  brokerPublishes: { name: 'socketbridge_broker_messages_total', help: 'Messages published into this broker shard.' },
  connections: { name: 'socketbridge_connections', help: 'Client sockets open on this worker.' },
  subscriptions: { name: 'socketbridge_subscriptions', help: 'Client channel subscriptions on this worker.' },
  handshakeRejections: {
    name: 'socketbridge_handshake_rejections_total',
    help: 'Socket handshakes refused, by reason.',
    labelNames: ['reason'] as const,
  },
  refreshRejections: {
    name: 'socketbridge_refresh_rejections_total',
    help: 'Token refreshes (#authenticate on an open socket) refused, by reason.',
    labelNames: ['reason'] as const,
  },
  subscribeRejections: {
    name: 'socketbridge_subscribe_rejections_total',
    help: 'Channel subscriptions refused, by reason.',
    labelNames: ['reason'] as const,
  },
  publishRejections: {
    name: 'socketbridge_publish_rejections_total',
    help: 'Publishes from client sockets refused, by reason.',
    labelNames: ['reason'] as const,
  },
  evictions: {
    name: 'socketbridge_evictions_total',
    help: 'Client sockets a worker closed on its own, by reason: slow (stopped reading), draining.',
    labelNames: ['reason'] as const,
  },
  recoveries: {
    name: 'socketbridge_recoveries_total',
    help: 'recover calls answered by a worker, by outcome: recovered, gap, refused.',
    labelNames: ['outcome'] as const,
  },
  deliveries: {
    name: 'socketbridge_deliveries_total',
    help: 'Publish frames a worker wrote to client sockets (one per subscribed socket per message).',
  },
  presenceNotices: {
    name: 'socketbridge_presence_notices_total',
    help: 'Presence notices a worker started (a socket of a signed-in client joined or left a presence channel), by action: join, leave.',
    labelNames: ['action'] as const,
  },
  eventsPublished: {
    name: 'socketbridge_events_published_total',
    help: 'Lifecycle events RabbitMQ confirmed (SOCKETBRIDGE_EVENTS_RABBITMQ_URL set).',
  },
  eventsDropped: {
    name: 'socketbridge_events_dropped_total',
    help: 'Lifecycle events not delivered to RabbitMQ, by reason: overflow (the in-memory queue was full, RabbitMQ slow or away), nacked (RabbitMQ refused one).',
    labelNames: ['reason'] as const,
  },
  eventsQueued: {
    name: 'socketbridge_events_queued',
    help: 'Lifecycle events waiting in the worker for RabbitMQ (queued or unconfirmed).',
  },
  clusterQueries: {
    name: 'socketbridge_cluster_queries_total',
    help: 'Channel info and presence queries a publisher asked the workers, by outcome: complete (every live worker answered), partial (some did not in time).',
    labelNames: ['outcome'] as const,
  },
  publishToDelivery: {
    name: 'socketbridge_publish_to_delivery_seconds',
    help: 'From the publisher taking a message (its envelope ts) to a worker writing it to its subscribed sockets.',
    buckets: [0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5],
  },
  messagesConsumed: {
    name: 'socketbridge_messages_consumed_total',
    help: 'Messages taken from RabbitMQ, by queue.',
    labelNames: ['queue'] as const,
  },
  messagesAcked: {
    name: 'socketbridge_messages_acked_total',
    help: 'Messages acknowledged to RabbitMQ after the cluster took them, by queue.',
    labelNames: ['queue'] as const,
  },
  messagesDeadLettered: {
    name: 'socketbridge_messages_dead_lettered_total',
    help: 'Messages sent to the dead-letter exchange, by queue and reason.',
    labelNames: ['queue', 'reason'] as const,
  },
  messagesRequeued: {
    name: 'socketbridge_messages_requeued_total',
    help: 'Messages handed back to RabbitMQ because history or the cluster was unavailable, by queue.',
    labelNames: ['queue'] as const,
  },
  messagesPublished: {
    name: 'socketbridge_messages_published_total',
    help: 'Envelopes published into the cluster and acknowledged by their broker shard, by source.',
    labelNames: ['source'] as const,
  },
  rabbitToPublish: {
    name: 'socketbridge_rabbitmq_to_publish_seconds',
    help: 'From taking a message off RabbitMQ to its broker shard acknowledging the publish.',
    buckets: [0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5],
  },
  rabbitConnected: {
    name: 'socketbridge_rabbitmq_connected',
    help: '1 while the publisher holds a RabbitMQ connection.',
  },
  consumers: {
    name: 'socketbridge_rabbitmq_consumers',
    help: 'Queues this publisher is consuming.',
  },
  defaultQueueRefused: {
    name: 'socketbridge_rabbitmq_default_queue_refused',
    help: '1 while RabbitMQ refuses to declare the default queue as SOCKETBRIDGE_QUEUE_TYPE and SOCKETBRIDGE_QUEUE_SINGLE_ACTIVE_CONSUMER ask (it exists otherwise): the queue is not consumed.',
  },
  operatorReconciles: {
    name: 'socketbridge_operator_reconciles_total',
    help: 'SocketBridge reconciles the operator finished, by result (success, error).',
    labelNames: ['result'] as const,
  },
  operatorReconcileErrors: {
    name: 'socketbridge_operator_reconcile_errors_total',
    help: 'Failed SocketBridge reconciles, by reason (the Ready condition reason, such as InvalidSpec or RabbitMQUnavailable).',
    labelNames: ['reason'] as const,
  },
  operatorReconcileDuration: {
    name: 'socketbridge_operator_reconcile_duration_seconds',
    help: 'How long one SocketBridge reconcile took, RabbitMQ and Redis included.',
    buckets: [0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30],
  },
  operatorLeader: {
    name: 'socketbridge_operator_leader',
    help: '1 while this operator replica holds the leader Lease and reconciles.',
  },
  operatorQueueDepth: {
    name: 'socketbridge_operator_workqueue_depth',
    help: 'SocketBridges waiting to be reconciled (ready or waiting out a backoff).',
  },
  operatorBridges: {
    name: 'socketbridge_operator_bridges',
    help: 'SocketBridges the leader knows, by Ready condition status (True, False, Unknown).',
    labelNames: ['ready'] as const,
  },
  operatorWatchRestarts: {
    name: 'socketbridge_operator_watch_restarts_total',
    help: 'Times the SocketBridge informer listed again, by reason (error: the watch failed; relist: 410 Gone or a restart).',
    labelNames: ['reason'] as const,
  },
} as const;
