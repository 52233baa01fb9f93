/** The structured logger the CSI server and node plugin write through (one JSON object per line). */
export type LogLevel = 'debug' | 'info' | 'warn' | 'error';
export type Logger = (level: LogLevel, message: string, fields?: Record<string, unknown>) => void;

/** A logger that drops everything (tests of pieces that log). */
export const silentLogger: Logger = () => undefined;
