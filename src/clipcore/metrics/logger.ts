/**
 * clipcore never prints: it reports through a logger the caller passes. A logger takes a level,
 * a message and structured fields; `clip mount` turns each call into one JSON line on stderr.
 */
export type LogLevel = 'debug' | 'info' | 'warn' | 'error';
export type ClipLogger = (level: LogLevel, message: string, fields?: Record<string, unknown>) => void;

export const silentLogger: ClipLogger = () => undefined;

/** A logger writing one JSON object per line (time, level, msg, fields) to `write` (default: stderr). */
export function jsonLogger(write: (line: string) => void = (line) => process.stderr.write(line)): ClipLogger {
  return (level, message, fields = {}) => write(`${JSON.stringify({ time: new Date().toISOString(), level, msg: message, ...fields })}\n`);
}
