import { Ajv, type Options } from 'ajv';
import addFormats from 'ajv-formats';

/**
 * Bodies are validated strictly: a wrong type is an error, never coerced, and an unknown field is
 * refused, not silently dropped. Query strings and path parameters arrive as text and are coerced
 * to the numbers and booleans their schemas declare.
 */
function build(options: Options): Ajv {
  const ajv = new Ajv({ allErrors: false, removeAdditional: false, useDefaults: true, strict: false, ...options });
  addFormats.default(ajv);
  return ajv;
}

const strict = build({ coerceTypes: false });
const coercing = build({ coerceTypes: 'array' });

export function validatorCompiler({ schema, httpPart }: { schema: object; httpPart?: string }) {
  return (httpPart === 'body' ? strict : coercing).compile(schema);
}
