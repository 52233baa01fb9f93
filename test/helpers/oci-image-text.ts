/**
 * Big, compressible, position-dependent text for random-access tests, generated cheaply: one
 * 1 MiB block of pseudo-random words is made once; chunk i of a file is that block rotated by an
 * amount derived from (seed, i) and stamped with the file and chunk numbers. Gzip compresses it
 * about 3-4x (its 32 KiB window never sees the 1 MiB repeats), and any byte range can be
 * recomputed without producing the file.
 */
import type { GeneratedContent } from '../harness/tar-layer.js';

export const TEXT_CHUNK_BYTES = 1 << 20;

const WORDS = (
  'the of and to in is that for it as was with be by on not he this are or his from at which but have an they you ' +
  'were her she there been one all we their has would when if so no what up out about more into them some could ' +
  'layer image registry span checkpoint inflate window offset mount lazily byte range fetch'
).split(' ');

let baseBlock: Buffer | undefined;

function base(): Buffer {
  if (baseBlock !== undefined) return baseBlock;
  const block = Buffer.alloc(TEXT_CHUNK_BYTES);
  let state = 0x9e3779b9;
  let pos = 0;
  let lineLength = 0;
  while (pos < TEXT_CHUNK_BYTES) {
    state ^= state << 13;
    state ^= state >>> 17;
    state ^= state << 5;
    const word = WORDS[(state >>> 0) % WORDS.length] as string;
    pos += block.write(word, pos, 'latin1');
    lineLength += word.length + 1;
    if (pos < TEXT_CHUNK_BYTES) block[pos++] = lineLength > 72 ? 0x0a : 0x20;
    if (lineLength > 72) lineLength = 0;
  }
  baseBlock = block;
  return block;
}

function chunk(seed: number, index: number): Buffer {
  const block = base();
  const rotation = (Math.imul(seed * 1_000_003 + index, 2_654_435_761) >>> 0) % TEXT_CHUNK_BYTES;
  const out = Buffer.allocUnsafe(TEXT_CHUNK_BYTES);
  block.copy(out, 0, rotation);
  block.copy(out, TEXT_CHUNK_BYTES - rotation, 0, rotation);
  out.write(`\n#file ${seed} chunk ${index}\n`, 0, 'latin1');
  return out;
}

export interface TextContent extends GeneratedContent {
  /** Bytes [start, end) of the content, computed without producing the rest. */
  slice(start: number, end: number): Buffer;
}

export function textContent(size: number, seed: number): TextContent {
  return {
    size,
    *chunks() {
      for (let offset = 0, index = 0; offset < size; offset += TEXT_CHUNK_BYTES, index++) {
        const data = chunk(seed, index);
        yield offset + TEXT_CHUNK_BYTES <= size ? data : data.subarray(0, size - offset);
      }
    },
    slice(start, end) {
      const stop = Math.min(end, size);
      const parts: Buffer[] = [];
      for (let offset = start; offset < stop; ) {
        const index = Math.floor(offset / TEXT_CHUNK_BYTES);
        const within = offset - index * TEXT_CHUNK_BYTES;
        const take = Math.min(TEXT_CHUNK_BYTES - within, stop - offset);
        parts.push(chunk(seed, index).subarray(within, within + take));
        offset += take;
      }
      return Buffer.concat(parts);
    },
  };
}
