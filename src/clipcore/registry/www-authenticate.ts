/** Parses `WWW-Authenticate` (RFC 7235): one or more challenges, each a scheme plus auth-params. */

export interface Challenge {
  /** Lowercase scheme, e.g. `bearer`, `basic`. */
  scheme: string;
  /** Lowercase parameter names, e.g. realm, service, scope, error. */
  params: Record<string, string>;
}

const TOKEN = /[!#$%&'*+.^_`|~0-9A-Za-z-]+/y;
const SPACE_OR_COMMA = /[\s,]*/y;
const SPACE = /\s*/y;

function matchAt(re: RegExp, text: string, pos: number): string | undefined {
  re.lastIndex = pos;
  const m = re.exec(text);
  return m === null ? undefined : m[0];
}

/** Reads a quoted-string starting at `pos` (on the opening quote); returns value and end position. */
function readQuoted(text: string, pos: number): { value: string; end: number } {
  let value = '';
  let i = pos + 1;
  while (i < text.length && text[i] !== '"') {
    if (text[i] === '\\' && i + 1 < text.length) i++;
    value += text[i];
    i++;
  }
  return { value, end: i + 1 };
}

export function parseWwwAuthenticate(header: string | string[] | undefined): Challenge[] {
  if (header === undefined) return [];
  const text = Array.isArray(header) ? header.join(', ') : header;
  const challenges: Challenge[] = [];
  let current: Challenge | undefined;
  let pos = 0;
  while (pos < text.length) {
    pos += (matchAt(SPACE_OR_COMMA, text, pos) ?? '').length;
    const token = matchAt(TOKEN, text, pos);
    if (token === undefined) break;
    const afterToken = pos + token.length;
    const afterSpace = afterToken + (matchAt(SPACE, text, afterToken) ?? '').length;
    if (text[afterSpace] === '=' && current !== undefined && text[afterSpace + 1] !== '=') {
      let valuePos = afterSpace + 1;
      valuePos += (matchAt(SPACE, text, valuePos) ?? '').length;
      if (text[valuePos] === '"') {
        const { value, end } = readQuoted(text, valuePos);
        current.params[token.toLowerCase()] = value;
        pos = end;
      } else {
        const value = matchAt(TOKEN, text, valuePos) ?? '';
        current.params[token.toLowerCase()] = value;
        pos = valuePos + value.length;
      }
    } else {
      current = { scheme: token.toLowerCase(), params: {} };
      challenges.push(current);
      pos = afterToken;
    }
  }
  return challenges;
}
