import { randomUUID } from 'node:crypto';
import type { RedisClient } from '@socketbridge/common';
import { registryKeys } from '@socketbridge/common';
import { hashPassword, verifyPassword } from './passwords.js';

export interface ClientRecord {
  clientId: string;
  name: string;
  email: string;
  createdAt: string;
}

export class DuplicateEmailError extends Error {
  override name = 'DuplicateEmailError';
}

// Claims the email and writes the client in one atomic step: either both exist or neither does.
const CREATE = `
if redis.call('HSETNX', KEYS[1], ARGV[1], ARGV[2]) == 0 then return 0 end
redis.call('HSET', KEYS[2], 'clientId', ARGV[2], 'name', ARGV[3], 'email', ARGV[1], 'passwordHash', ARGV[4], 'createdAt', ARGV[5])
redis.call('SADD', KEYS[3], ARGV[2])
return 1`;

/** Emails compare case-insensitively, as people type them. */
const normalizeEmail = (email: string) => email.trim().toLowerCase();

export class ClientStore {
  constructor(private readonly redis: RedisClient) {}

  async create(input: { name: string; email: string; password: string }): Promise<ClientRecord> {
    const clientId = randomUUID();
    const email = normalizeEmail(input.email);
    const createdAt = new Date().toISOString();
    const passwordHash = await hashPassword(input.password);
    const created = await this.redis.eval(
      CREATE,
      3,
      registryKeys.emails,
      registryKeys.client(clientId),
      registryKeys.clientIds,
      email,
      clientId,
      input.name,
      passwordHash,
      createdAt,
    );
    if (created !== 1) throw new DuplicateEmailError(`a client with email ${email} already exists`);
    return { clientId, name: input.name, email, createdAt };
  }

  /** The client whose email and password these are, or undefined (the caller cannot tell which was wrong). */
  async verify(emailInput: string, password: string): Promise<ClientRecord | undefined> {
    const clientId = await this.redis.hget(registryKeys.emails, normalizeEmail(emailInput));
    const stored = clientId ? await this.redis.hgetall(registryKeys.client(clientId)) : undefined;
    // Hash even when there is no such client, so response time does not reveal which emails exist.
    const ok = await verifyPassword(password, stored?.passwordHash ?? DUMMY_HASH);
    return ok && stored ? toRecord(stored) : undefined;
  }

  async get(clientId: string): Promise<ClientRecord | undefined> {
    const stored = await this.redis.hgetall(registryKeys.client(clientId));
    return stored.clientId ? toRecord(stored) : undefined;
  }

  async list(limit: number): Promise<ClientRecord[]> {
    const [, ids] = await this.redis.sscan(registryKeys.clientIds, 0, 'COUNT', limit);
    const records = await Promise.all(ids.slice(0, limit).map((id) => this.get(id)));
    return records.filter((r): r is ClientRecord => r !== undefined);
  }
}


const DUMMY_HASH = 'scrypt$32768$8$1$AAAAAAAAAAAAAAAAAAAAAA$AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA';

function toRecord(stored: Record<string, string>): ClientRecord {
  return { clientId: stored.clientId!, name: stored.name!, email: stored.email!, createdAt: stored.createdAt! };
}
