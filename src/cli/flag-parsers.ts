/** Commander argument parsers shared by the commands. */
import { InvalidArgumentError } from 'commander';

/** A repeatable flag: each occurrence adds one value. */
export const collect = (value: string, previous: string[]): string[] => [...previous, value];

export function seconds(value: string): number {
  const parsed = Number(value);
  if (!Number.isFinite(parsed) || parsed < 0) throw new InvalidArgumentError(`${JSON.stringify(value)} is not a number of seconds`);
  return parsed;
}

export function positiveInteger(value: string): number {
  const parsed = Number(value);
  if (!Number.isInteger(parsed) || parsed < 1) throw new InvalidArgumentError(`${JSON.stringify(value)} is not a positive integer`);
  return parsed;
}
