/**
 * The `trust_domain` key of the server's and the agent's configuration.
 * @module
 */
import { TrustDomain } from '@steeple/spiffe/core';
import * as z from 'zod/mini';

/**
 * A trust domain name, kept as its normalised name. A SPIFFE ID (`spiffe://example.org`) is
 * accepted as input too; anything else is an issue that names the value and the rule.
 */
export const trustDomainNameSchema = z.pipe(
  z.string(),
  z.transform((input: string, ctx) => {
    const td = TrustDomain.tryParse(input);
    if (td instanceof Error) {
      ctx.issues.push({
        code: 'custom',
        message: `${JSON.stringify(input)} is not a trust domain name: ${td.message}`,
        input,
      });
      return z.NEVER;
    }
    return td.name;
  }),
);
