/**
 * Records the TLS SecureContexts made while `work` runs. Making one is what costs: any context not
 * given its own `ca` parses Node's ~140 bundled root certificates (about 25 ms of CPU).
 */
import { syncBuiltinESMExports } from 'node:module';
import tls, { type SecureContextOptions } from 'node:tls';

export async function recordSecureContexts(work: () => Promise<unknown>): Promise<(SecureContextOptions | undefined)[]> {
  const original = tls.createSecureContext;
  const made: (SecureContextOptions | undefined)[] = [];
  tls.createSecureContext = (options) => {
    made.push(options);
    return original(options);
  };
  syncBuiltinESMExports(); // so that `import { createSecureContext } from 'node:tls'` sees it too
  try {
    await work();
  } finally {
    tls.createSecureContext = original;
    syncBuiltinESMExports();
  }
  return made;
}

/** Whether a context trusts no CA at all (the transport's TLS probe): it parses no roots. */
export function trustsNothing(options: SecureContextOptions | undefined): boolean {
  return Array.isArray(options?.ca) && options.ca.length === 0;
}
