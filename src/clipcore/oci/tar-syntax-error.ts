/**
 * A malformed tar structure, raised by the pure decoders. The streaming parser catches it and
 * rethrows a ClipError that names the layer and the byte offset, which the decoders don't know.
 */
export class TarSyntaxError extends Error {
  constructor(message: string) {
    super(message);
    this.name = 'TarSyntaxError';
  }
}
