/** Self-signed certificates made with the openssl CLI, valid for 127.0.0.1 and localhost. */
import { readFile } from 'node:fs/promises';
import { join } from 'node:path';
import { run } from './run.js';

export interface CertFiles {
  certPath: string;
  keyPath: string;
  certPem: string;
  keyPem: string;
}

export async function createSelfSignedCert(dir: string, name: string, commonName = 'localhost'): Promise<CertFiles> {
  const certPath = join(dir, `${name}.crt`);
  const keyPath = join(dir, `${name}.key`);
  await run('openssl', [
    'req', '-x509', '-newkey', 'rsa:2048', '-nodes', '-sha256', '-days', '2',
    '-keyout', keyPath, '-out', certPath,
    '-subj', `/CN=${commonName}`,
    '-addext', 'subjectAltName=IP:127.0.0.1,DNS:localhost',
  ]);
  return { certPath, keyPath, certPem: await readFile(certPath, 'utf8'), keyPem: await readFile(keyPath, 'utf8') };
}
