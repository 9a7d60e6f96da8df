import type { Channel, Message } from 'amqplib';

/**
 * A channel's acks, one frame per turn of the event loop: the acks asked for in one turn go out
 * together once its work is done, as a single `basic.ack` with `multiple` up to the highest
 * delivery tag below which every delivery is settled, and one plain ack for each message past a
 * delivery still in flight (so no ack waits for a slower message of another channel). Nacks go out
 * at once and count as settled. Delivery tags on a channel are consecutive from 1, and `multiple`
 * acks only what is still unacked, so a nacked tag inside the range is left alone. An ack is still
 * sent only when the caller asks, after the shard acknowledged; it leaves in the same turn.
 */
export class AckBatcher {
  /** Every delivery tag up to here is settled (acked, queued for an ack, or nacked). */
  private settledUpTo = 0;
  /** Settled tags above settledUpTo (a delivery below them is still in flight). */
  private readonly settledAbove = new Set<number>();
  /** Tags asked to be acked this turn, not sent yet. */
  private pending: number[] = [];
  private scheduled = false;

  constructor(
    private readonly channel: Pick<Channel, 'ack' | 'nack'>,
    /** An ack on a channel that closed meanwhile throws; RabbitMQ redelivers those messages. */
    private readonly onError: (error: unknown) => void = () => undefined,
  ) {}

  ack(message: Message): void {
    this.settle(message.fields.deliveryTag);
    this.pending.push(message.fields.deliveryTag);
    if (!this.scheduled) {
      this.scheduled = true;
      process.nextTick(() => this.flush());
    }
  }

  /** Throws, as channel.nack does, when the channel has closed. */
  nack(message: Message, requeue: boolean): void {
    this.channel.nack(message, false, requeue);
    this.settle(message.fields.deliveryTag);
  }

  private settle(tag: number): void {
    if (tag !== this.settledUpTo + 1) {
      this.settledAbove.add(tag);
      return;
    }
    this.settledUpTo = tag;
    while (this.settledAbove.delete(this.settledUpTo + 1)) this.settledUpTo++;
  }

  private flush(): void {
    this.scheduled = false;
    const tags = this.pending;
    this.pending = [];
    let upTo = 0;
    for (const tag of tags) if (tag <= this.settledUpTo && tag > upTo) upTo = tag;
    try {
      if (upTo > 0) this.channel.ack(deliveryOf(upTo), true);
      for (const tag of tags) if (tag > this.settledUpTo) this.channel.ack(deliveryOf(tag), false);
    } catch (error) {
      this.onError(error);
    }
  }
}

/** amqplib's ack reads only the delivery tag. */
const deliveryOf = (deliveryTag: number) => ({ fields: { deliveryTag } }) as Message;
