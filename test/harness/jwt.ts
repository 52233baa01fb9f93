/** RS256 JSON Web Tokens as Distribution's token auth expects: the signing cert travels in `x5c`. */
import { createSign, X509Certificate } from 'node:crypto';

const b64url = (data: Buffer | string): string => Buffer.from(data).toString('base64url');

export function signJwt(claims: Record<string, unknown>, keyPem: string, certPem: string): string {
  const header = { typ: 'JWT', alg: 'RS256', x5c: [new X509Certificate(certPem).raw.toString('base64')] };
  const signingInput = `${b64url(JSON.stringify(header))}.${b64url(JSON.stringify(claims))}`;
  const signature = createSign('RSA-SHA256').update(signingInput).sign(keyPem);
  return `${signingInput}.${b64url(signature)}`;
}
