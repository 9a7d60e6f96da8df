export type Decoded = { ok: true; data: unknown } | { ok: false; detail: string };

const utf8 = new TextDecoder('utf-8', { fatal: true });

function text(content: Buffer): string | undefined {
  try {
    return utf8.decode(content);
  } catch {
    return undefined;
  }
}

/** Bytes that are not text travel as base64 with their content type, so clients can tell. */
const binary = (content: Buffer, contentType: string): Decoded => ({
  ok: true,
  data: { contentType: contentType || 'application/octet-stream', encoding: 'base64', body: content.toString('base64') },
});

/**
 * What a RabbitMQ body becomes on the channel: JSON as JSON (and it must parse), text as a string,
 * anything else as base64. A body with no content type is JSON if it parses, else text, else binary.
 */
export function decodeBody(content: Buffer, contentType?: string, contentEncoding?: string): Decoded {
  const type = (contentType ?? '').split(';')[0]!.trim().toLowerCase();
  if (contentEncoding && !['identity', 'utf-8', 'utf8'].includes(contentEncoding.toLowerCase())) return binary(content, type);
  if (type === 'application/json' || type.endsWith('+json')) {
    const body = text(content);
    if (body === undefined) return { ok: false, detail: 'content-type says JSON but the body is not UTF-8' };
    try {
      return { ok: true, data: JSON.parse(body) };
    } catch (error) {
      return { ok: false, detail: `content-type says JSON but the body does not parse: ${(error as Error).message}` };
    }
  }
  if (type.startsWith('text/')) {
    const body = text(content);
    return body === undefined ? { ok: false, detail: `content-type ${type} but the body is not UTF-8` } : { ok: true, data: body };
  }
  if (type === '') {
    const body = text(content);
    if (body === undefined) return binary(content, type);
    try {
      return { ok: true, data: JSON.parse(body) };
    } catch {
      return { ok: true, data: body };
    }
  }
  return binary(content, type);
}
