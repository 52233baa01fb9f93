/** Layer compression as streams: gzip with node:zlib, zstd through the `zstd` CLI (Node 20 has none). */
import { spawn } from 'node:child_process';
import { Duplex, PassThrough, type Transform } from 'node:stream';
import { createGzip } from 'node:zlib';
import type { Compression } from './tar-layer.js';

export function compressor(compression: Compression): Duplex | Transform {
  switch (compression) {
    case 'gzip':
      return createGzip({ level: 1 });
    case 'none':
      return new PassThrough();
    case 'zstd':
      return zstdStream();
  }
}

function zstdStream(): Duplex {
  const child = spawn('zstd', ['-q', '-c', '-3', '-T1'], { stdio: ['pipe', 'pipe', 'pipe'] });
  const duplex = Duplex.from({ writable: child.stdin, readable: child.stdout });
  let stderr = '';
  child.stderr.setEncoding('utf8').on('data', (d: string) => (stderr += d));
  child.on('error', (err) => duplex.destroy(new Error(`zstd could not run (is the zstd CLI installed?): ${err.message}`)));
  child.on('close', (code) => {
    if (code !== 0) duplex.destroy(new Error(`zstd exited with ${code}: ${stderr}`));
  });
  return duplex;
}
